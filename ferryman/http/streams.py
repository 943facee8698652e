"""Byte streams: the one shape a request or response body has while it moves.

A body is either fixed bytes (replayable: a redirect or a retry can send it again) or an
iterator (one-shot: a second pass raises :class:`StreamConsumedError` instead of silently
sending nothing). Every stream knows whether it is replayable and, where it can, its length, so
the transport can choose between ``Content-Length`` and chunked framing without reading it.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from typing import TYPE_CHECKING, Any, cast

from ferryman.exceptions import StreamConsumedError

if TYPE_CHECKING:
    from ferryman.http.multipart import BinaryReadable

__all__ = [
    "AsyncByteStream",
    "AsyncIteratorByteStream",
    "ByteStream",
    "IteratorByteStream",
    "RequestContent",
    "SyncByteStream",
    "encode_request_content",
]

RequestContent = bytes | bytearray | memoryview | str | Iterable[bytes] | AsyncIterable[bytes]


class SyncByteStream:
    """Base of streams that can be read from plain code."""

    __slots__ = ()

    def __iter__(self) -> Iterator[bytes]:
        raise TypeError(f"{type(self).__name__} cannot be iterated synchronously")

    def read(self) -> bytes:
        """The whole body; streams that know a faster way than joining chunks override it."""
        return b"".join(self)

    def close(self) -> None:
        """Release what the stream holds (a connection, a file); idempotent."""


class AsyncByteStream:
    """Base of streams that are read inside an event loop."""

    __slots__ = ()

    def __aiter__(self) -> AsyncIterator[bytes]:
        raise TypeError(f"{type(self).__name__} cannot be iterated asynchronously")

    async def aread(self) -> bytes:
        """The whole body; streams that know a faster way than joining chunks override it."""
        return b"".join([chunk async for chunk in self])

    def read_if_complete(self) -> bytes | None:
        """The whole body, read and closed at once, if it is already in memory; else ``None``.

        Lets ``Response.aread()`` skip the coroutine machinery for bodies that arrived with
        their head, which is most API responses."""
        return None

    async def aclose(self) -> None:
        """Release what the stream holds (a connection, a file); idempotent."""


class ByteStream(SyncByteStream, AsyncByteStream):
    """Fixed content: both sync and async, replayable, of known length."""

    __slots__ = ("_content",)

    def __init__(self, content: bytes = b"") -> None:
        self._content = content

    @property
    def content(self) -> bytes:
        return self._content

    def __len__(self) -> int:
        return len(self._content)

    def __iter__(self) -> Iterator[bytes]:
        if self._content:
            yield self._content

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self._content:
            yield self._content

    def read(self) -> bytes:
        return self._content

    async def aread(self) -> bytes:
        return self._content

    def __repr__(self) -> str:
        return f"<ByteStream [{len(self._content)} bytes]>"


def _as_bytes(chunk: Any) -> bytes:
    if isinstance(chunk, bytes):
        return chunk
    if isinstance(chunk, (bytearray, memoryview)):
        return bytes(chunk)
    if isinstance(chunk, str):
        return chunk.encode("utf-8")
    raise TypeError(f"body chunks must be bytes or str, not {type(chunk).__name__}")


class IteratorByteStream(SyncByteStream, AsyncByteStream):
    """A one-shot sync iterable of chunks; async code may read it too (it never blocks long)."""

    __slots__ = ("_consumed", "_iterable")

    def __init__(self, iterable: Iterable[bytes]) -> None:
        self._iterable = iterable
        self._consumed = False

    def _claim(self) -> None:
        if self._consumed:
            raise StreamConsumedError()
        self._consumed = True

    def __iter__(self) -> Iterator[bytes]:
        self._claim()
        for chunk in self._iterable:
            yield _as_bytes(chunk)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        self._claim()
        for chunk in self._iterable:
            yield _as_bytes(chunk)

    def close(self) -> None:
        close = getattr(self._iterable, "close", None)
        if callable(close):
            close()

    async def aclose(self) -> None:
        self.close()


class AsyncIteratorByteStream(AsyncByteStream):
    """A one-shot async iterable of chunks."""

    __slots__ = ("_consumed", "_iterable")

    def __init__(self, iterable: AsyncIterable[bytes]) -> None:
        self._iterable = iterable
        self._consumed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self._consumed:
            raise StreamConsumedError()
        self._consumed = True
        async for chunk in self._iterable:
            yield _as_bytes(chunk)

    async def aclose(self) -> None:
        aclose = getattr(self._iterable, "aclose", None)
        if callable(aclose):
            await aclose()


def encode_request_content(
    content: RequestContent | SyncByteStream | AsyncByteStream | None,
) -> tuple[SyncByteStream | AsyncByteStream, int | None]:
    """Wrap a request body and tell its length (``None``: unknown, so it is sent chunked)."""
    if content is None:
        return EMPTY_STREAM, 0
    if isinstance(content, (bytes, bytearray, memoryview)):
        data = bytes(content)
        return (ByteStream(data) if data else EMPTY_STREAM), len(data)
    if isinstance(content, str):
        data = content.encode("utf-8")
        return (ByteStream(data) if data else EMPTY_STREAM), len(data)
    if isinstance(content, ByteStream):
        return content, len(content)
    if isinstance(content, (SyncByteStream, AsyncByteStream)):
        return content, None
    if isinstance(content, AsyncIterable):
        return AsyncIteratorByteStream(content), None
    if hasattr(content, "read"):
        # A binary file (an async one went above, as an async iterable): read in chunks, with
        # its size as Content-Length when that can be known, as data=file is and as httpx and
        # requests do. Iterated, it would give lines, sent chunked, which S3 presigned PUTs
        # and many upload endpoints refuse.
        from ferryman.http.content import FileByteStream  # built on this module

        stream = FileByteStream(cast("BinaryReadable", content))
        return stream, stream.length
    if isinstance(content, Iterable):
        return IteratorByteStream(content), None
    raise TypeError(
        "request content must be bytes, str, an iterable or an async iterable of bytes, "
        f"not {type(content).__name__}"
    )


EMPTY_STREAM = ByteStream(b"")
