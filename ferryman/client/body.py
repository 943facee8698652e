"""The response body as the session client hands it out: decompressed, with the many-time
events fired per chunk and ``post_request`` fired at its end.

The wrapper is put around a transport stream only when a response needs it (a
``Content-Encoding`` to undo, a data handler, a streamed response with ``post_request``
handlers); a plain response keeps the transport's stream and its fast paths.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TYPE_CHECKING

from ferryman.client.hooks import Handler, fire
from ferryman.exceptions import DecodingError
from ferryman.http.streams import AsyncByteStream

if TYPE_CHECKING:
    from ferryman.http.decoders import ContentDecoder
    from ferryman.http.response import Response

__all__ = ["ClientBodyStream"]


class ClientBodyStream(AsyncByteStream):
    """Decode and observe a response body while it is read.

    ``on_done(exc)`` runs once, when the body has been read to its end, failed, or was closed
    early; the client uses it to fire ``post_request``."""

    __slots__ = ("_decoder", "_done", "_on_done", "_processed", "_raw", "_received", "_response")

    def __init__(
        self,
        raw: AsyncByteStream,
        response: Response,
        decoder: ContentDecoder | None,
        received: tuple[Handler, ...],
        processed: tuple[Handler, ...],
        on_done: Callable[[BaseException | None], Awaitable[None]] | None,
    ) -> None:
        self._raw = raw
        self._response = response
        self._decoder = decoder
        self._received = received
        self._processed = processed
        self._on_done = on_done
        self._done = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        decoder = self._decoder
        received = self._received
        processed = self._processed
        response = self._response
        seen = False
        try:
            async for chunk in self._raw:
                seen = True
                if received:
                    await fire(received, response, "data", chunk)
                if decoder is None:
                    if processed:
                        await fire(processed, response, "data", chunk)
                    yield chunk
                    continue
                # Bounded pieces: one small compressed chunk cannot balloon in memory at once.
                for piece in _pieces(decoder, chunk):
                    if processed:
                        await fire(processed, response, "data", piece)
                    yield piece
            if decoder is not None and seen:  # an empty body (HEAD, 304) has nothing to flush
                tail = _decode(decoder.flush)
                if tail:
                    if processed:
                        await fire(processed, response, "data", tail)
                    yield tail
        except BaseException as exc:
            await self._finish(exc)
            raise
        await self._finish(None)

    async def aread(self) -> bytes:
        decoder = self._decoder
        if decoder is None or self._received or self._processed:
            return b"".join([chunk async for chunk in self])
        # No observers: decode the body in one call rather than chunk by chunk.
        try:
            raw = await self._raw.aread()
            body = _decode(decoder.decode, raw) + _decode(decoder.flush) if raw else b""
        except BaseException as exc:
            await self._finish(exc)
            raise
        await self._finish(None)
        return body

    async def aclose(self) -> None:
        await self._raw.aclose()
        await self._finish(None)

    async def _finish(self, exc: BaseException | None) -> None:
        if not self._done:
            self._done = True
            if self._on_done is not None:
                await self._on_done(exc)


def _pieces(decoder: ContentDecoder, chunk: bytes) -> Iterator[bytes]:
    try:
        for piece in decoder.iter_decode(chunk):
            if piece:
                yield piece
    except DecodingError:
        raise
    except Exception as exc:
        raise DecodingError(f"the response body could not be decoded: {exc}") from exc


def _decode(step: Callable[..., bytes], *args: bytes) -> bytes:
    try:
        return step(*args)
    except DecodingError:
        raise
    except Exception as exc:  # zlib.error, brotli.error, zstd.ZstdError, ...
        raise DecodingError(f"the response body could not be decoded: {exc}") from exc
