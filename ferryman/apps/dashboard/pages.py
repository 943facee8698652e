"""The dashboard's pages: a single-page app (HTML, ES modules, CSS) shipped in ``static/``.

No build step and no Node: the files are served as they are in the package, read once at start
(they are small) with their ETag. Every answer carries a strict Content-Security-Policy (scripts
and styles from this origin only, no inline script, no framing), ``nosniff`` and no referrer:
the pages show traffic, and every byte of traffic is untrusted; the scripts build the DOM with
``textContent`` and never parse it as HTML.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
from importlib import resources
from typing import Final

from ferryman.server.controllers import Receive, Scope, Send

__all__ = ["CONTENT_SECURITY_POLICY", "SECURITY_HEADERS", "Pages"]

CONTENT_SECURITY_POLICY: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS: Final = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)
_TYPES: Final = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}
#: Where the assets are served; ``/`` is the page itself.
ASSETS: Final = "/static/"


class Asset:
    __slots__ = ("body", "content_type", "etag")

    def __init__(self, body: bytes, content_type: str) -> None:
        self.body = body
        self.content_type = content_type.encode()
        self.etag = b'"' + hashlib.sha256(body).hexdigest()[:32].encode() + b'"'


def load_assets() -> dict[str, Asset]:
    """Every file of ``static/`` by the path it is served at."""
    assets: dict[str, Asset] = {}
    root = resources.files("ferryman.apps.dashboard") / "static"

    def walk(directory: resources.abc.Traversable, prefix: str) -> None:
        for entry in directory.iterdir():
            if entry.is_dir():
                walk(entry, f"{prefix}{entry.name}/")
                continue
            name = prefix + entry.name
            extension = "." + name.rsplit(".", 1)[-1] if "." in name else ""
            content_type = _TYPES.get(extension) or (
                mimetypes.guess_type(name)[0] or "application/octet-stream"
            )
            assets[ASSETS + name] = Asset(entry.read_bytes(), content_type)

    walk(root, "")
    assets["/"] = assets[ASSETS + "index.html"]
    return assets


class Pages:
    """The ASGI app mounted at ``/``: the page, its assets, a JSON 404 for anything else."""

    def __init__(self) -> None:
        self.assets = load_assets()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
            return
        method = scope["method"]
        asset = self.assets.get(scope["path"])
        if asset is None:
            await _json(send, 404, "Not Found")
            return
        if method not in ("GET", "HEAD"):
            await _json(send, 405, "Method Not Allowed", [(b"allow", b"GET, HEAD")])
            return
        headers = [
            (b"content-type", asset.content_type),
            (b"etag", asset.etag),
            (b"cache-control", b"no-cache"),
            *SECURITY_HEADERS,
        ]
        if _matches(scope, asset.etag):
            await send({"type": "http.response.start", "status": 304, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        headers.append((b"content-length", str(len(asset.body)).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else asset.body})


def _matches(scope: Scope, etag: bytes) -> bool:
    for name, value in scope.get("headers", ()):
        if name.lower() == b"if-none-match":
            return etag in [tag.strip() for tag in bytes(value).split(b",")]
    return False


async def _json(
    send: Send, status: int, message: str, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = json.dumps({"status": status, "message": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *SECURITY_HEADERS,
                *(extra or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
