"""The bridge between ASGI messages and ferryman's request and response models.

Bodies are never buffered here: the request body is read from ``receive`` as the controller
iterates it, and a streamed response goes out one ``http.response.body`` message per chunk, so
a proxy relaying a large body keeps memory flat and the first bytes leave before the last
arrive.

Header names keep the case they were sent with, where the server allows it. ASGI asks for
lower-case names in ``http.response.start`` (and most applications look request headers up by
their lower-case names), so the names as spelled travel beside them, in the
:data:`RAW_HEADERS` extension: a server that offers it in ``scope["extensions"]`` (ferryman's
own, :mod:`ferryman.server.bridge`) gives the request's headers as received there, and writes a
response's names as spelled when ``http.response.start`` carries them under the same key (with
the reason phrase under :data:`REASON`). A middleware in between that changes the lower-case
list still has the last word: the spelled names only restore the case of the names it kept.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Final
from urllib.parse import quote

from ferryman.exceptions import ReadError, StreamConsumedError
from ferryman.http.headers import Headers
from ferryman.http.models import Request, Response
from ferryman.http.streams import AsyncByteStream, ByteStream
from ferryman.http.url import URL
from ferryman.server.controllers import Receive, Scope, Send

__all__ = [
    "RAW_HEADERS",
    "REASON",
    "AnswerAborted",
    "ReceiveStream",
    "request_from_scope",
    "send_response",
    "spelled_as",
]

#: The ASGI extension (and ``http.response.start`` key) carrying header names as spelled.
RAW_HEADERS: Final = "ferryman.raw_headers"
#: The ``http.response.start`` key carrying the reason phrase (bytes) a server may send.
REASON: Final = "ferryman.reason"

# Like the client's URL cache: a server sees the same few targets again and again, and parsing
# one costs more than the rest of building the request. Bounded so that hostile, ever-new
# targets only cost a clear now and then.
_URL_CACHE_SIZE: Final = 1024
_METHODS_WITH_BODY: Final = frozenset({"POST", "PUT", "PATCH"})
_HTTP1: Final = frozenset({"1.0", "1.1"})
# What ``path`` (decoded) may keep unescaped when a server does not give ``raw_path``.
_PATH_SAFE: Final = "/:@!$&'()*+,;=[]~"


class AnswerAborted(Exception):
    """A response body that cannot be completed, its cause already reported by whoever raised
    this (a proxy's upstream broke off). The answer has started, so no status can say so any
    more: the server cuts the client's connection, and logs no traceback for it."""


def spelled_as(
    headers: Iterable[tuple[bytes, bytes]], raw: Iterable[tuple[bytes, bytes]]
) -> list[tuple[bytes, bytes]]:
    """``headers`` (lower-case names, authoritative) with each name spelled as in ``raw``.

    Usually the two lists hold the same fields in the same order and this is one pass; when a
    middleware added, removed or reordered fields, names are matched by their lower-case form
    and the ones ``raw`` does not know stay as they are.
    """
    headers = list(headers)
    raw = list(raw)
    if len(headers) == len(raw):
        spelled = []
        for (name, value), (raw_name, _) in zip(headers, raw, strict=True):
            if raw_name.lower() != name.lower():
                break
            spelled.append((bytes(raw_name), bytes(value)))
        else:
            return spelled
    case = {bytes(name).lower(): bytes(name) for name, _ in raw}
    return [(case.get(bytes(name).lower(), bytes(name)), bytes(value)) for name, value in headers]


class ReceiveStream(AsyncByteStream):
    """The request body as the ASGI server delivers it: each ``http.request`` message's body
    is one chunk, read when the consumer asks for it. Streamed, it is read once; read whole
    (``aread``) it is kept, and goes again as one chunk: a proxy listener or middleware that
    read the client's body leaves it to be sent upstream, as it does on the fast relay."""

    __slots__ = ("_consumed", "_content", "_receive")

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._consumed = False
        self._content: bytes | None = None

    async def aread(self) -> bytes:
        content = self._content
        if content is None:
            content = self._content = b"".join([chunk async for chunk in self])
        return content

    def read_if_complete(self) -> bytes | None:
        return self._content

    async def __aiter__(self) -> AsyncIterator[bytes]:
        content = self._content
        if content is not None:
            if content:
                yield content
            return
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
    headers = scope["headers"]
    extensions = scope.get("extensions")
    raw = extensions.get(RAW_HEADERS) if extensions else None
    headers = list(headers) if raw is None else spelled_as(headers, raw["headers"])
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
        Headers.from_raw(headers),
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


async def send_response(
    response: Response, send: Send, *, head: bool = False, scope: Scope | None = None
) -> None:
    """Send ``response`` through ASGI, its body streamed chunk by chunk unless it is in memory.

    ``head`` skips reading a streamed body nobody will receive (the server drops it for HEAD).
    When ``scope`` offers the :data:`RAW_HEADERS` extension, the names as spelled and the
    response's reason phrase (its ``reason_phrase`` extension, an upstream's) go along.
    """
    # ASGI wants lower-case names; Headers keeps the case it was given.
    raw = response.headers.raw
    start = {
        "type": "http.response.start",
        "status": response.status_code,
        "headers": [(name.lower(), value) for name, value in raw],
    }
    extensions = scope.get("extensions") if scope is not None else None
    if extensions and RAW_HEADERS in extensions:
        start[RAW_HEADERS] = raw
        reason = response.extensions.get("reason_phrase") if response.extensions else None
        if reason:
            start[REASON] = reason
    stream = response.stream
    if isinstance(stream, ByteStream):
        await send(start)
        await send({"type": "http.response.body", "body": stream.content})
        return
    try:
        await send(start)
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
