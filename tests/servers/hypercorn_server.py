"""Hypercorn (HTTP/2 via h2, HTTP/1.1 via h11) on port-0 sockets, in a background thread.

One server listens twice: TLS with ALPN (``h2`` and ``http/1.1`` unless told otherwise) and
clear text, where hypercorn accepts HTTP/2 with prior knowledge (h2c) as well as HTTP/1.1.
Its app answers the paths the HTTP/2 tests need; the ``http_version`` it reports is the one
hypercorn actually served.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import threading
import time
from typing import Any
from urllib.parse import parse_qs

from hypercorn.asyncio import serve
from hypercorn.config import Config


def pattern(size: int) -> bytes:
    """``size`` deterministic bytes that differ along the body, so order mistakes show."""
    block = bytes(range(256)) * 256
    repeats, rest = divmod(size, len(block))
    return block * repeats + block[:rest]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    query = {key: values[0] for key, values in parse_qs(scope["query_string"].decode()).items()}
    digest = hashlib.sha256()
    received = 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        digest.update(chunk)
        received += len(chunk)
        if not message.get("more_body"):
            break
    path = scope["path"]
    if path == "/bytes":
        await _send_bytes(send, int(query.get("size", "0")), int(query.get("chunk", "65536")))
        return
    if path == "/slow":
        await asyncio.sleep(float(query.get("delay", "1")))
    payload = {
        "method": scope["method"],
        "path": path,
        "query": scope["query_string"].decode(),
        "headers": [[key.decode(), value.decode()] for key, value in scope["headers"]],
        "body_size": received,
        "body_sha256": digest.hexdigest(),
        "http_version": scope["http_version"],
    }
    data = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(data))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": data})


async def _send_bytes(send: Any, size: int, chunk: int) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/octet-stream")],
        }
    )
    body = pattern(size)
    for start in range(0, size, chunk):
        await send(
            {"type": "http.response.body", "body": body[start : start + chunk], "more_body": True}
        )
    await send({"type": "http.response.body", "body": b""})


def _listening_socket() -> tuple[int, int]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    return sock.detach(), port  # hypercorn takes the descriptor over


class HypercornServer:
    """Start with :meth:`start`, stop with :meth:`stop`; ``url`` is https, ``h2c_url`` http."""

    def __init__(
        self,
        certfile: str,
        keyfile: str,
        *,
        alpn_protocols: tuple[str, ...] = ("h2", "http/1.1"),
    ) -> None:
        tls_fd, self.port = _listening_socket()
        plain_fd, self.h2c_port = _listening_socket()
        config = Config()
        config.bind = [f"fd://{tls_fd}"]
        config.insecure_bind = [f"fd://{plain_fd}"]
        config.certfile = certfile
        config.keyfile = keyfile
        config.alpn_protocols = list(alpn_protocols)
        config.accesslog = None
        config.errorlog = None
        self._config = config
        self._loop = asyncio.new_event_loop()
        self._stopping: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="hypercorn", daemon=True)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def h2c_url(self) -> str:
        return f"http://127.0.0.1:{self.h2c_port}"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._stopping = asyncio.Event()
        try:
            self._loop.run_until_complete(
                serve(app, self._config, shutdown_trigger=self._stopping.wait)  # type: ignore[arg-type]
            )
        finally:
            self._loop.close()

    def start(self) -> HypercornServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        for port in (self.port, self.h2c_port):
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError("hypercorn did not start within 10 s") from None
                    time.sleep(0.01)
        return self

    def stop(self) -> None:
        stopping = self._stopping
        if stopping is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(stopping.set)
        self._thread.join(timeout=10)
