"""The bridge between ASGI messages and ferryman's request and response models.

Bodies are never buffered here: the request body is read from ``receive`` as the controller
iterates it, and a streamed response goes out one ``http.response.body`` message per chunk, so
a proxy relaying a large body keeps memory flat and the first bytes leave before the last
arrive.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Final
from urllib.parse import quote

from ferryman.exceptions import ReadError, StreamConsumedError
from ferryman.http.headers import Headers
from ferryman.http.models import Request, Response
from ferryman.http.streams import AsyncByteStream, ByteStream
from ferryman.http.url import URL
from ferryman.server.controllers import Receive, Scope, Send

__all__ = ["ReceiveStream", "request_from_scope", "send_response"]

# Like the client's URL cache: a server sees the same few targets again and again, and parsing
# one costs more than the rest of building the request. Bounded so that hostile, ever-new
# targets only cost a clear now and then.
_URL_CACHE_SIZE: Final = 1024
_METHODS_WITH_BODY: Final = frozenset({"POST", "PUT", "PATCH"})
_HTTP1: Final = frozenset({"1.0", "1.1"})
# What ``path`` (decoded) may keep unescaped when a server does not give ``raw_path``.
_PATH_SAFE: Final = "/:@!$&'()*+,;=[]~"


class ReceiveStream(AsyncByteStream):
    """The request body as the ASGI server delivers it: each ``http.request`` message's body
    is one chunk, read when the consumer asks for it."""

    __slots__ = ("_consumed", "_receive")

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._consumed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self._consumed:
            raise StreamConsumedError()
        self._consumed = True
        receive = self._receive
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ReadError("the client disconnected before sending the whole request body")
            body = message.get("body", b"")
            if body:
                yield body
            if not message.get("more_body", False):
                return

    def __repr__(self) -> str:
        return "<ReceiveStream>"


def request_from_scope(
    scope: Scope, stream: AsyncByteStream, urls: dict[tuple[object, ...], URL]
) -> Request:
    """The request an ASGI ``http`` or ``websocket`` scope describes, its headers as received.

    ``urls`` is the caller's URL cache. Raises :class:`~ferryman.exceptions.InvalidURL` when
    the target cannot be a URL (``OPTIONS *``, a garbled path).
    """
    url = _url_from_scope(scope, urls)
    method = scope.get("method", "GET")
    # from_parts adds framing headers only where the received ones leave the body's end
    # implicit. Over HTTP/1.x that is an empty body (RFC 9112 section 6.3): length 0. Over
    # HTTP/2 and 3, a POST-like request may stream without Content-Length: length unknown.
    # GET-like requests are left as they came.
    length = (
        0
        if scope.get("http_version", "1.1") in _HTTP1 or method not in _METHODS_WITH_BODY
        else None
    )
    return Request.from_parts(
        method,
        url,
        Headers.from_raw(list(scope["headers"])),
        stream,
        length,
        {"asgi_scope": scope},
    )


def _url_from_scope(scope: Scope, urls: dict[tuple[object, ...], URL]) -> URL:
    scheme = scope.get("scheme") or ("ws" if scope["type"] == "websocket" else "http")
    raw_path = scope.get("raw_path") or quote(scope["path"], safe=_PATH_SAFE).encode("ascii")
    query = scope.get("query_string", b"")
    server = scope.get("server")
    site: tuple[str, int] | bytes | None
    if server is not None:
        site = tuple(server)  # the same object when the server gives a tuple, as most do
    else:
        # A UNIX socket: only the client's Host header names the site.
        site = next((value for name, value in scope["headers"] if name == b"host"), None)
    key = (scheme, site, raw_path, query)
    url = urls.get(key)
    if url is None:
        if isinstance(site, tuple):
            host, port = site
            netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        else:
            netloc = "localhost" if site is None else site.decode("latin-1")
        target = raw_path.decode("latin-1")
        if query:
            target = f"{target}?{query.decode('latin-1')}"
        url = URL(f"{scheme}://{netloc}{target}")
        if len(urls) >= _URL_CACHE_SIZE:
            urls.clear()
        urls[key] = url
    return url


async def send_response(response: Response, send: Send, *, head: bool = False) -> None:
    """Send ``response`` through ASGI, its body streamed chunk by chunk unless it is in memory.

    ``head`` skips reading a streamed body nobody will receive (the server drops it for HEAD).
    """
    # ASGI wants lower-case names; Headers keeps the case it was given.
    headers = [(name.lower(), value) for name, value in response.headers.raw]
    stream = response.stream
    if isinstance(stream, ByteStream):
        await send(
            {"type": "http.response.start", "status": response.status_code, "headers": headers}
        )
        await send({"type": "http.response.body", "body": stream.content})
        return
    try:
        await send(
            {"type": "http.response.start", "status": response.status_code, "headers": headers}
        )
        if head:
            pass  # the server would drop the body; do not even read it
        elif isinstance(stream, AsyncByteStream):
            async for chunk in response.aiter_bytes():
                if chunk:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
        else:
            # A synchronous stream is read in the loop, as IteratorByteStream does.
            for chunk in response.iter_bytes():
                if chunk:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    finally:
        # Releases an upstream connection even when the client went away mid-body.
        await response.aclose()
