"""The request model: method, URL, headers, a body stream and an ``extensions`` dict for
everything that does not fit the plain model (timeouts, trace callbacks, the request target...),
as httpcore defines it.

It is deliberately slim: a client builds one per exchange, so every attribute is paid for on the
hot path.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from http import HTTPStatus
from typing import Any

from ferryman.exceptions import ResponseNotRead
from ferryman.http.headers import Headers, HeadersTypes
from ferryman.http.streams import (
    EMPTY_STREAM,
    AsyncByteStream,
    ByteStream,
    RequestContent,
    SyncByteStream,
    encode_request_content,
)
from ferryman.http.url import URL

__all__ = ["Request", "reason_phrase"]

_METHODS_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})
# Methods already in their canonical form: taken as given, since ``upper()`` makes a new
# string (whose hash is then computed again wherever it is looked up) on every request.
_CANONICAL_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"}
)


class Request:
    """An HTTP request ready to be sent: its framing headers (``Host``, ``Content-Length`` or
    ``Transfer-Encoding``) are filled in when the caller did not set them."""

    __slots__ = ("extensions", "headers", "method", "stream", "url")

    def __init__(
        self,
        method: str | bytes,
        url: URL | str,
        *,
        headers: HeadersTypes | None = None,
        content: RequestContent | None = None,
        stream: SyncByteStream | AsyncByteStream | None = None,
        extensions: MutableMapping[str, Any] | None = None,
    ) -> None:
        if isinstance(method, bytes):
            self.method = method.decode("ascii")
        else:
            self.method = method if method in _CANONICAL_METHODS else method.upper()
        self.url = url if isinstance(url, URL) else URL(url)
        self.extensions: MutableMapping[str, Any] = {} if extensions is None else extensions
        length: int | None
        if stream is None:
            if content is None:
                stream, length = EMPTY_STREAM, 0
            else:
                stream, length = encode_request_content(content)
        else:
            length = len(stream) if isinstance(stream, ByteStream) else None
        self.stream = stream
        if headers is None:
            # The common case, built without a single look-up: it runs for every request.
            raw = [(b"Host", self.url.host_header)]
            if length != 0 or self.method in _METHODS_WITH_BODY:
                framing = _framing_header(self.method, length)
                if framing is not None:
                    raw.append(framing)
            self.headers = Headers.from_raw(raw)
        else:
            # A copy: framing headers are added, and a caller's Headers may serve many requests.
            self.headers = headers.copy() if isinstance(headers, Headers) else Headers(headers)
            self._add_framing_headers(length)

    @classmethod
    def from_parts(
        cls,
        method: str,
        url: URL,
        headers: Headers,
        stream: SyncByteStream | AsyncByteStream,
        length: int | None,
        extensions: MutableMapping[str, Any],
    ) -> Request:
        """Build a request from parts a client already prepared (hot path): ``headers`` is taken
        over, not copied, and must hold ``Host``; framing headers are added when missing."""
        request = cls.__new__(cls)
        request.method = method if method in _CANONICAL_METHODS else method.upper()
        request.url = url
        request.headers = headers
        request.stream = stream
        request.extensions = extensions
        if length != 0 or request.method in _METHODS_WITH_BODY:
            request._add_framing_headers(length)
        return request

    def _add_framing_headers(self, length: int | None) -> None:
        headers = self.headers
        if "host" not in headers:
            headers.add(b"Host", self.url.host_header)
        if "content-length" in headers:
            return
        if "transfer-encoding" in headers:
            if self.stream is EMPTY_STREAM:
                # A caller's chunked framing on no body: the terminating chunk still goes.
                self.stream = ByteStream(b"")
            return
        framing = _framing_header(self.method, length)
        if framing is not None:
            headers.add(*framing)

    @property
    def content(self) -> bytes:
        """The body, when it is fixed bytes or was read whole (``aread``); a streamed body has
        to be read by whoever sends it."""
        stream = self.stream
        if isinstance(stream, ByteStream):
            return stream.content
        if isinstance(stream, AsyncByteStream):
            content = stream.read_if_complete()
            if content is not None:
                return content
        raise ResponseNotRead("the request body is a stream; it has no fixed content")

    async def aread(self) -> bytes:
        """Read the whole body (once) and keep it: ``content`` has it afterwards, and the
        request can still be sent (a proxy listener reading the client's body lets it go on).
        A stream that keeps what it read (``read_if_complete``: the proxy's client bodies)
        stays, and with it the framing the body came with; another becomes fixed bytes."""
        stream = self.stream
        if isinstance(stream, ByteStream):
            return stream.content
        if isinstance(stream, AsyncByteStream):
            content = await stream.aread()
            if stream.read_if_complete() is not None:
                return content
        else:
            content = stream.read()
        self.stream = ByteStream(content)
        return content

    def __repr__(self) -> str:
        return f"<Request [{self.method!r} {self.url}]>"


def _framing_header(method: str, length: int | None) -> tuple[bytes, bytes] | None:
    """How the body's end is told: a length, chunks, or nothing for an empty GET-like request."""
    if length is None:
        return (b"Transfer-Encoding", b"chunked")
    if length or method in _METHODS_WITH_BODY:
        return (b"Content-Length", b"%d" % length)
    return None


def reason_phrase(status_code: int) -> str:
    """The standard reason phrase of a status code, or '' for codes HTTP does not name."""
    try:
        return HTTPStatus(status_code).phrase
    except ValueError:
        return ""
