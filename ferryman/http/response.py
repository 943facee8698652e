"""The response model: status, headers, a body that may still be on the wire, and what users
ask of a response (text, JSON, links, cookies, status checks).

A transport builds one per exchange with :meth:`Response.from_transport`, which stores the raw
head and parses it into :class:`Headers` only when somebody looks: a proxy relaying bytes or a
client that only checks the status never pays for header objects.
"""

from __future__ import annotations

import datetime
import json as jsonlib
from collections.abc import AsyncIterator, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ferryman.exceptions import (
    HTTPStatusError,
    ResponseNotRead,
    StreamClosed,
    StreamConsumedError,
)
from ferryman.http.headers import Headers, HeadersTypes, parse_header_block
from ferryman.http.request import Request, reason_phrase
from ferryman.http.streams import EMPTY_STREAM, AsyncByteStream, ByteStream, SyncByteStream
from ferryman.http.url import URL

if TYPE_CHECKING:
    from ferryman.http.cookies import Cookies

__all__ = ["Response"]

_REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})


class Response:
    """An HTTP response whose body may still be on the wire.

    A transport returns it as soon as the head has arrived; reading the body (``aread()``,
    ``aiter_bytes()``) or closing the response hands the connection back to its pool. Always
    close a response you do not read in full: use ``async with``.
    """

    __slots__ = (
        "_closed",
        "_content",
        "_cookies",
        "_elapsed",
        "_encoding",
        "_headers",
        "_iterated",
        "_raw",
        "_raw_head",
        "_text",
        "default_encoding",
        "extensions",
        "history",
        "request",
        "status_code",
        "stream",
    )

    stream: SyncByteStream | AsyncByteStream
    _content: bytes | None

    def __init__(
        self,
        status_code: int,
        *,
        headers: HeadersTypes | None = None,
        content: bytes | None = None,
        text: str | None = None,
        json: Any = None,
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
        self._init_state()
        if stream is None:
            if content is None and text is not None:
                content = text.encode("utf-8")
                self._set_default_content_type(b"text/plain; charset=utf-8")
            elif content is None and json is not None:
                content = jsonlib.dumps(json, separators=(",", ":"), ensure_ascii=False).encode()
                self._set_default_content_type(b"application/json")
            self._content = content or b""
            self.stream = ByteStream(content) if content else EMPTY_STREAM
            if content and "content-length" not in self._headers:
                self._headers.add(b"Content-Length", b"%d" % len(content))
        else:
            self.stream = stream

    def _init_state(self) -> None:
        self._content = None
        self._closed = False
        self._iterated = False
        self._text: str | None = None
        self._encoding: str | None = None
        self._cookies: Cookies | None = None
        self._raw: RawBody | None = None
        self._elapsed: float | None = None
        self.history: list[Response] = []
        self.default_encoding: str | None = None

    def _set_default_content_type(self, value: bytes) -> None:
        headers = self._headers
        assert headers is not None
        if "content-type" not in headers:
            headers.add(b"Content-Type", value)

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
        response._iterated = False
        response._text = None
        response._encoding = None
        response._cookies = None
        response._raw = None
        response._elapsed = None
        response.history = []
        response.default_encoding = None
        return response

    # -- the head ---------------------------------------------------------------------------

    @property
    def headers(self) -> Headers:
        headers = self._headers
        if headers is None:
            headers = self._headers = Headers.from_raw(parse_header_block(self._raw_head))
        return headers

    @headers.setter
    def headers(self, value: Headers) -> None:
        self._headers = value

    def has_header(self, lowercase_name: bytes) -> bool:
        """Whether a header is present, without building :class:`Headers` when it can be avoided.

        The client asks this of every response (``set-cookie``, ``content-encoding``); on a raw
        head it is one scan of a few hundred bytes. A false positive (the name inside another
        header's value) only sends the caller to the exact, parsed check."""
        headers = self._headers
        if headers is None:
            raw = self._raw_head.lower()
            if b"\n" + lowercase_name + b":" not in raw:
                return False
            headers = self.headers
        return lowercase_name.decode("ascii") in headers

    @property
    def reason_phrase(self) -> str:
        raw = self.extensions.get("reason_phrase")
        if isinstance(raw, bytes) and raw:
            return raw.decode("ascii", errors="replace")
        return reason_phrase(self.status_code)

    reason = reason_phrase

    @property
    def http_version(self) -> str:
        raw = self.extensions.get("http_version", b"HTTP/1.1")
        return raw.decode("ascii") if isinstance(raw, bytes) else str(raw)

    @property
    def url(self) -> URL | None:
        """The URL this response answers (the last one, after redirects)."""
        return None if self.request is None else self.request.url

    @property
    def elapsed(self) -> datetime.timedelta:
        """From sending the request to the arrival of the response head (as in requests)."""
        if self._elapsed is None:
            raise RuntimeError("elapsed is set by the client that sent the request")
        return datetime.timedelta(seconds=self._elapsed)

    @elapsed.setter
    def elapsed(self, value: datetime.timedelta | float) -> None:
        self._elapsed = value.total_seconds() if isinstance(value, datetime.timedelta) else value

    @property
    def is_informational(self) -> bool:
        return 100 <= self.status_code < 200

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    @property
    def is_redirect(self) -> bool:
        return self.status_code in _REDIRECT_CODES and "location" in self.headers

    @property
    def is_client_error(self) -> bool:
        return 400 <= self.status_code < 500

    @property
    def is_server_error(self) -> bool:
        return 500 <= self.status_code < 600

    @property
    def is_error(self) -> bool:
        return 400 <= self.status_code < 600

    def raise_for_status(self) -> Response:
        """Raise :class:`HTTPStatusError` for a 4xx or 5xx answer; return the response otherwise,
        so that ``data = (await client.get(url)).raise_for_status().json()`` reads naturally."""
        if not self.is_error:
            return self
        kind = "Client error" if self.status_code < 500 else "Server error"
        message = (
            f"{kind} '{self.status_code} {self.reason_phrase}' for url '{self.url}'\n"
            f"For more information check: https://developer.mozilla.org/en-US/docs/Web/HTTP/Status/"
            f"{self.status_code}"
        )
        raise HTTPStatusError(message, request=self.request, response=self)

    @property
    def links(self) -> dict[str, dict[str, str]]:
        """The ``Link`` headers (RFC 8288), keyed by ``rel`` (or by URL when there is none)."""
        from ferryman.http.links import links_by_rel

        return links_by_rel(self.headers.get_list("link"))

    @property
    def cookies(self) -> Cookies:
        """The cookies this response set (its ``Set-Cookie`` headers)."""
        if self._cookies is None:
            from ferryman.http.cookies import cookies_from_response

            self._cookies = cookies_from_response(self)
        return self._cookies

    # -- the body as bytes, text, JSON ------------------------------------------------------

    @property
    def content(self) -> bytes:
        if self._content is None:
            raise ResponseNotRead()
        return self._content

    @property
    def encoding(self) -> str | None:
        """The charset used by ``text``: set explicitly, else from ``Content-Type``, else the
        client's ``default_encoding``; ``None`` means it will be detected from the bytes."""
        if self._encoding is None:
            from ferryman.http.decoders import encoding_from_content_type

            self._encoding = (
                encoding_from_content_type(self.headers.get("content-type"))
                or self.default_encoding
            )
        return self._encoding

    @encoding.setter
    def encoding(self, value: str | None) -> None:
        if self._text is not None:
            raise ValueError("the encoding cannot change after text has been read")
        self._encoding = value

    @property
    def text(self) -> str:
        if self._text is None:
            content = self.content
            if not content:
                self._text = ""
            else:
                from ferryman.http.decoders import TextDecoder

                decoder = TextDecoder(self.encoding)
                self._text = decoder.decode(content) + decoder.flush()
                if self._encoding is None:
                    self._encoding = decoder.encoding
        return self._text

    def json(self, **kwargs: Any) -> Any:
        """The body parsed as JSON. Bytes go straight to the parser when no charset other than
        UTF-8 was announced (it detects UTF-8/16/32 itself, RFC 8259 section 8.1)."""
        encoding = self.encoding
        if encoding is None or encoding.replace("_", "-").lower() in ("utf-8", "utf8"):
            return jsonlib.loads(self.content, **kwargs)
        return jsonlib.loads(self.text, **kwargs)

    # -- the body as a stream ---------------------------------------------------------------

    @property
    def is_closed(self) -> bool:
        return self._closed

    @property
    def is_stream_consumed(self) -> bool:
        return self._iterated

    @property
    def raw(self) -> RawBody:
        """The body as a one-shot iterable (``async for`` or ``for``) with ``read()``, as pulsar's
        ``response.raw``: a second pass raises :class:`StreamConsumedError`."""
        if self._raw is None:
            self._raw = RawBody(self)
        return self._raw

    def iter_bytes(self) -> BodyIterator:
        """The body in chunks: ``async for`` on an async response, ``for`` on a sync one."""
        return BodyIterator(self, "bytes")

    def iter_text(self) -> BodyIterator:
        return BodyIterator(self, "text")

    def iter_lines(self) -> BodyIterator:
        return BodyIterator(self, "lines")

    def _claim_stream(self) -> None:
        if self._iterated:
            raise StreamConsumedError()
        if self._closed:
            raise StreamClosed()
        self._iterated = True

    # -- async side -------------------------------------------------------------------------

    def _read_if_complete(self) -> bytes | None:
        """The body, taken without waiting when it has all arrived (usual for small bodies);
        ``None`` when ``aread()`` has to wait for it. Saves a client a coroutine per response."""
        if self._content is not None:
            return self._content
        if self._iterated or self._closed:
            return None  # aread() raises the right error
        stream = self.stream
        if not isinstance(stream, AsyncByteStream):
            return None
        ready = stream.read_if_complete()
        if ready is not None:
            self._content = ready
            self._closed = True
        return ready

    async def aread(self) -> bytes:
        """Read the whole body (once), then release the connection."""
        content = self._read_if_complete()
        if content is None:
            if self._iterated:
                raise StreamConsumedError()
            if self._closed:
                raise StreamClosed()
            stream = self.stream
            if not isinstance(stream, AsyncByteStream):
                raise TypeError("this response's stream can only be read synchronously; use read()")
            try:
                content = self._content = await stream.aread()
            finally:
                await self.aclose()
        return content

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        """The body in chunks as they arrive; memory stays flat whatever the body's size."""
        if self._content is not None:
            if self._content:
                yield self._content
            return
        self._claim_stream()
        stream = self.stream
        if not isinstance(stream, AsyncByteStream):
            raise TypeError("this response's stream can only be read synchronously")
        try:
            async for chunk in stream:
                yield chunk
        finally:
            await self.aclose()

    async def aiter_text(self) -> AsyncIterator[str]:
        from ferryman.http.decoders import TextDecoder

        decoder = TextDecoder(self.encoding)
        async for chunk in self.aiter_bytes():
            text = decoder.decode(chunk)
            if text:
                yield text
        text = decoder.flush()
        if text:
            yield text

    async def aiter_lines(self) -> AsyncIterator[str]:
        from ferryman.http.decoders import LineDecoder

        decoder = LineDecoder()
        async for text in self.aiter_text():
            for line in decoder.decode(text):
                yield line
        for line in decoder.flush():
            yield line

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

    # -- sync side --------------------------------------------------------------------------

    def read(self) -> bytes:
        if self._content is None:
            if self._iterated:
                raise StreamConsumedError()
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

    def _iter_bytes(self) -> Iterator[bytes]:
        if self._content is not None:
            if self._content:
                yield self._content
            return
        self._claim_stream()
        stream = self.stream
        if not isinstance(stream, SyncByteStream):
            raise TypeError("this response's stream can only be read asynchronously")
        try:
            yield from stream
        finally:
            self.close()

    def _iter_text(self) -> Iterator[str]:
        from ferryman.http.decoders import TextDecoder

        decoder = TextDecoder(self.encoding)
        for chunk in self._iter_bytes():
            text = decoder.decode(chunk)
            if text:
                yield text
        text = decoder.flush()
        if text:
            yield text

    def _iter_lines(self) -> Iterator[str]:
        from ferryman.http.decoders import LineDecoder

        decoder = LineDecoder()
        for text in self._iter_text():
            yield from decoder.decode(text)
        yield from decoder.flush()

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


class BodyIterator:
    """What ``iter_bytes()``/``iter_text()``/``iter_lines()`` return: one object that an async
    response iterates with ``async for`` and a sync response with ``for``, so both client faces
    share the names users know from requests."""

    __slots__ = ("_kind", "_response")

    def __init__(self, response: Response, kind: str) -> None:
        self._response = response
        self._kind = kind

    def __aiter__(self) -> AsyncIterator[Any]:
        response = self._response
        if self._kind == "bytes":
            return response.aiter_bytes()
        if self._kind == "text":
            return response.aiter_text()
        return response.aiter_lines()

    def __iter__(self) -> Iterator[Any]:
        response = self._response
        if self._kind == "bytes":
            return response._iter_bytes()
        if self._kind == "text":
            return response._iter_text()
        return response._iter_lines()


class RawBody:
    """``response.raw``: the body, iterable once, with ``read()``.

    ``read()`` returns the bytes on a sync response and an awaitable on an async one
    (``await response.raw.read()``), mirroring how each face reads everything else."""

    __slots__ = ("_response", "_used")

    def __init__(self, response: Response) -> None:
        self._response = response
        self._used = False

    def _claim(self) -> None:
        if self._used:
            raise StreamConsumedError()
        self._used = True

    def __aiter__(self) -> AsyncIterator[bytes]:
        self._claim()
        return self._response.aiter_bytes()

    def __iter__(self) -> Iterator[bytes]:
        self._claim()
        return self._response._iter_bytes()

    def read(self) -> Any:
        self._claim()
        stream = self._response.stream
        if isinstance(stream, SyncByteStream) and not isinstance(stream, AsyncByteStream):
            return self._response.read()
        return self._response.aread()
