"""Request and Response as the transport sees them: method, URL, headers, a body stream and
an ``extensions`` dict for everything that does not fit the plain model (timeouts, trace
callbacks, the raw network stream...), as httpcore defines it.

They are deliberately slim: the transport builds one of each per exchange, so every attribute
here is paid for on the hot path.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, MutableMapping
from http import HTTPStatus
from types import TracebackType
from typing import Any

from ferryman.exceptions import ResponseNotRead, StreamClosed
from ferryman.http.headers import Headers, HeadersTypes, parse_header_block
from ferryman.http.streams import (
    EMPTY_STREAM,
    AsyncByteStream,
    ByteStream,
    RequestContent,
    SyncByteStream,
    encode_request_content,
)
from ferryman.http.url import URL

__all__ = ["Request", "Response", "reason_phrase"]

_METHODS_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})


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
        self.method = method.decode("ascii") if isinstance(method, bytes) else method.upper()
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
            framing = _framing_header(self.method, length)
            if framing is not None:
                raw.append(framing)
            self.headers = Headers.from_raw(raw)
        else:
            # A copy: framing headers are added, and a caller's Headers may serve many requests.
            self.headers = headers.copy() if isinstance(headers, Headers) else Headers(headers)
            self._add_framing_headers(length)

    def _add_framing_headers(self, length: int | None) -> None:
        headers = self.headers
        if "host" not in headers:
            headers.add(b"Host", self.url.host_header)
        if "content-length" in headers or "transfer-encoding" in headers:
            return
        framing = _framing_header(self.method, length)
        if framing is not None:
            headers.add(*framing)

    @property
    def content(self) -> bytes:
        """The body, when it is fixed bytes; a streamed body has to be read by whoever sends it."""
        if isinstance(self.stream, ByteStream):
            return self.stream.content
        raise ResponseNotRead("the request body is a stream; it has no fixed content")

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


class Response:
    """An HTTP response whose body may still be on the wire.

    A transport returns it as soon as the head has arrived; reading the body (``aread()``,
    ``aiter_bytes()``) or closing the response hands the connection back to its pool. Always
    close a response you do not read in full: use ``async with``.
    """

    __slots__ = (
        "_closed",
        "_content",
        "_headers",
        "_raw_head",
        "extensions",
        "request",
        "status_code",
        "stream",
    )

    def __init__(
        self,
        status_code: int,
        *,
        headers: HeadersTypes | None = None,
        content: bytes | None = None,
        stream: SyncByteStream | AsyncByteStream | None = None,
        extensions: dict[str, Any] | None = None,
        request: Request | None = None,
    ) -> None:
        self.status_code = status_code
        self._headers: Headers | None = (
            headers if isinstance(headers, Headers) else Headers(headers)
        )
        self._raw_head = b""
        self.extensions: dict[str, Any] = {} if extensions is None else extensions
        self.request = request
        self._closed = False
        if stream is None:
            self._content: bytes | None = content or b""
            self.stream: SyncByteStream | AsyncByteStream = (
                ByteStream(content) if content else EMPTY_STREAM
            )
        else:
            self._content = None
            self.stream = stream

    @classmethod
    def from_transport(
        cls,
        status_code: int,
        raw_head: bytes,
        stream: AsyncByteStream | SyncByteStream,
        extensions: dict[str, Any],
        request: Request,
    ) -> Response:
        """Build a streamed response from parts a transport already validated (hot path).

        ``raw_head`` is the response head as received (status line and header lines), already
        validated by the transport's parser; it is split into ``headers`` only when they are
        first looked at, which many callers (a proxy relaying bytes, a benchmark) never do.
        """
        response = cls.__new__(cls)
        response.status_code = status_code
        response._headers = None
        response._raw_head = raw_head
        response.stream = stream
        response.extensions = extensions
        response.request = request
        response._content = None
        response._closed = False
        return response

    @property
    def headers(self) -> Headers:
        headers = self._headers
        if headers is None:
            headers = self._headers = Headers.from_raw(parse_header_block(self._raw_head))
        return headers

    @headers.setter
    def headers(self, value: Headers) -> None:
        self._headers = value

    @property
    def reason_phrase(self) -> str:
        raw = self.extensions.get("reason_phrase")
        if isinstance(raw, bytes):
            return raw.decode("ascii", errors="replace")
        return reason_phrase(self.status_code)

    @property
    def http_version(self) -> str:
        raw = self.extensions.get("http_version", b"HTTP/1.1")
        return raw.decode("ascii") if isinstance(raw, bytes) else str(raw)

    @property
    def content(self) -> bytes:
        if self._content is None:
            raise ResponseNotRead()
        return self._content

    @property
    def is_closed(self) -> bool:
        return self._closed

    # -- async side ---------------------------------------------------------------------------

    async def aread(self) -> bytes:
        """Read the whole body (once), then release the connection."""
        if self._content is None:
            if self._closed:
                raise StreamClosed()
            stream = self.stream
            if not isinstance(stream, AsyncByteStream):
                raise TypeError("this response's stream can only be read synchronously; use read()")
            ready = stream.read_if_complete()
            if ready is not None:
                self._content = ready
                self._closed = True
                return ready
            try:
                self._content = await stream.aread()
            finally:
                await self.aclose()
        return self._content

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        """The body in chunks as they arrive; memory stays flat whatever the body's size."""
        if self._content is not None:
            if self._content:
                yield self._content
            return
        if self._closed:
            raise StreamClosed()
        stream = self.stream
        if not isinstance(stream, AsyncByteStream):
            raise TypeError("this response's stream can only be read synchronously")
        try:
            async for chunk in stream:
                yield chunk
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            stream = self.stream
            if isinstance(stream, AsyncByteStream):
                await stream.aclose()
            else:
                stream.close()

    async def __aenter__(self) -> Response:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- sync side ----------------------------------------------------------------------------

    def read(self) -> bytes:
        if self._content is None:
            if self._closed:
                raise StreamClosed()
            stream = self.stream
            if not isinstance(stream, SyncByteStream):
                raise TypeError("this response's stream can only be read asynchronously; aread()")
            try:
                self._content = stream.read()
            finally:
                self.close()
        return self._content

    def iter_bytes(self) -> Iterator[bytes]:
        if self._content is not None:
            if self._content:
                yield self._content
            return
        if self._closed:
            raise StreamClosed()
        stream = self.stream
        if not isinstance(stream, SyncByteStream):
            raise TypeError("this response's stream can only be read asynchronously")
        try:
            yield from stream
        finally:
            self.close()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            stream = self.stream
            if isinstance(stream, SyncByteStream):
                stream.close()

    def __enter__(self) -> Response:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Response [{self.status_code} {self.reason_phrase}]>"
