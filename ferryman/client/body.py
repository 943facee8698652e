"""The response body as the session client hands it out: decompressed, bounded, with the
many-time events fired per chunk and ``post_request`` fired at its end.

The wrapper is put around a transport stream only when a response needs it (a
``Content-Encoding`` to undo, a data handler, a streamed response with ``post_request``
handlers, a ``max_body_size`` to enforce); a plain response keeps the transport's stream and its
fast paths.

Decompression bombs: a 17 KiB ``gzip, gzip`` body expands to 10 GiB. The decoders hand their
output back in bounded pieces, and this stream counts them against the encoded bytes read so
far: once the decoded body is past ``decompression_bomb_threshold`` (64 MiB) and more than
``max_decompression_ratio`` (100) times what came off the wire, it raises
:class:`DecompressionBombError`. Both conditions, because real data does one or the other: a
small JSON document of zeros may compress 1000x, a large log file 20x, a bomb both. The check
costs a comparison per decoded piece.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator
from typing import TYPE_CHECKING

from ferryman.client.hooks import Handler, fire
from ferryman.exceptions import DecodingError, DecompressionBombError, ResponseTooLarge
from ferryman.http.streams import AsyncByteStream

if TYPE_CHECKING:
    from ferryman.http.decoders import ContentDecoder
    from ferryman.http.response import Response

__all__ = [
    "DEFAULT_DECOMPRESSION_BOMB_THRESHOLD",
    "DEFAULT_MAX_DECOMPRESSION_RATIO",
    "BodyLimits",
    "ClientBodyStream",
]

DEFAULT_MAX_DECOMPRESSION_RATIO = 100
"""Decoded bytes per encoded byte a body may reach past the threshold. gzip of typical JSON, HTML
or logs gives 5-20x, of highly repetitive data 50-100x; bombs give 1,000x (gzip of zeros) to
millions (stacked codings, zstd RLE blocks)."""

DEFAULT_DECOMPRESSION_BOMB_THRESHOLD = 64 * 1024 * 1024
"""Decoded bytes under which no ratio is checked: smaller bodies fit in memory whatever they
were compressed from."""


class BodyLimits:
    """What a client lets a response body grow to: the decompression-bomb guard (off with
    ``max_ratio=None``) and an optional cap on bodies read whole (``max_body_size``)."""

    __slots__ = ("bomb_threshold", "max_body_size", "max_ratio", "threshold")

    def __init__(
        self,
        max_ratio: float | None = DEFAULT_MAX_DECOMPRESSION_RATIO,
        threshold: int = DEFAULT_DECOMPRESSION_BOMB_THRESHOLD,
        max_body_size: int | None = None,
    ) -> None:
        if max_ratio is not None and (
            isinstance(max_ratio, bool) or not isinstance(max_ratio, int | float) or max_ratio <= 0
        ):
            raise ValueError(
                f"max_decompression_ratio must be a number > 0 or None (no limit), not "
                f"{max_ratio!r}"
            )
        _check_size("decompression_bomb_threshold", threshold)
        if max_body_size is not None:
            _check_size("max_body_size", max_body_size)
        self.max_ratio = max_ratio
        self.threshold = threshold
        self.max_body_size = max_body_size
        # What the decoding loop compares each running total with: never reached when the
        # ratio is not checked, so the loop has one comparison either way.
        self.bomb_threshold = sys.maxsize if max_ratio is None else threshold

    def check_ratio(self, decoded: int, encoded: int) -> None:
        """Called once ``decoded`` is past the threshold: raise if it is a bomb."""
        ratio = self.max_ratio
        if ratio is not None and decoded > ratio * encoded:
            raise DecompressionBombError(
                f"the response body expanded to {decoded:,} bytes from {encoded:,} bytes read, "
                f"more than max_decompression_ratio={ratio} times past "
                f"decompression_bomb_threshold={self.threshold:,}: a decompression bomb? If the "
                "body is expected, read it with max_decompression_ratio=None (or stream it with "
                "decompress=False)",
                decoded_size=decoded,
                encoded_size=encoded,
            )

    def too_large(self, size: int) -> ResponseTooLarge:
        limit = self.max_body_size
        assert limit is not None
        return ResponseTooLarge(
            f"the response body is over max_body_size={limit:,} bytes ({size:,} bytes read so "
            "far); stream it (stream=True, iter_bytes()) or raise max_body_size",
            limit=limit,
        )


def _check_size(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a whole number of bytes >= 0, not {value!r}")


class ClientBodyStream(AsyncByteStream):
    """Decode, bound and observe a response body while it is read.

    ``on_done(exc)`` runs once, when the body has been read to its end, failed, or was closed
    early; the client uses it to fire ``post_request``."""

    __slots__ = (
        "_decoder",
        "_done",
        "_limits",
        "_on_done",
        "_processed",
        "_raw",
        "_received",
        "_response",
    )

    def __init__(
        self,
        raw: AsyncByteStream,
        response: Response,
        decoder: ContentDecoder | None,
        received: tuple[Handler, ...],
        processed: tuple[Handler, ...],
        on_done: Callable[[BaseException | None], Awaitable[None]] | None,
        limits: BodyLimits,
    ) -> None:
        self._raw = raw
        self._response = response
        self._decoder = decoder
        self._received = received
        self._processed = processed
        self._on_done = on_done
        self._limits = limits
        self._done = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def _chunks(self) -> AsyncGenerator[bytes, None]:
        decoder = self._decoder
        received = self._received
        processed = self._processed
        response = self._response
        limits = self._limits
        threshold = limits.bomb_threshold
        encoded = decoded = 0
        try:
            async for chunk in self._raw:
                encoded += len(chunk)
                if received:
                    await fire(received, response, "data", chunk)
                if decoder is None:
                    if processed:
                        await fire(processed, response, "data", chunk)
                    yield chunk
                    continue
                # Bounded pieces: one small compressed chunk cannot balloon in memory at once.
                for piece in _pieces(decoder.iter_decode, chunk):
                    decoded += len(piece)
                    if decoded > threshold:
                        limits.check_ratio(decoded, encoded)
                    if processed:
                        await fire(processed, response, "data", piece)
                    yield piece
            if decoder is not None and encoded:  # an empty body (HEAD, 304) has nothing to flush
                for piece in _pieces(decoder.iter_flush):
                    decoded += len(piece)
                    if decoded > threshold:
                        limits.check_ratio(decoded, encoded)
                    if processed:
                        await fire(processed, response, "data", piece)
                    yield piece
        except BaseException as exc:
            await self._finish(exc)
            raise
        await self._finish(None)

    async def aread(self) -> bytes:
        decoder = self._decoder
        if decoder is None or self._received or self._processed:
            return await self._collect()
        if self._limits.max_body_size is not None:
            return await self._collect()  # counted as it comes, not once all of it is in memory
        # No observers, no cap: the encoded body at once, decoded in pieces the guard counts.
        try:
            raw = await self._raw.aread()
            body = b"".join(self._decode_whole(decoder, raw)) if raw else b""
        except BaseException as exc:
            await self._finish(exc)
            raise
        await self._finish(None)
        return body

    def _decode_whole(self, decoder: ContentDecoder, raw: bytes) -> Iterator[bytes]:
        limits = self._limits
        threshold = limits.bomb_threshold
        encoded = len(raw)
        decoded = 0
        for step, data in ((decoder.iter_decode, (raw,)), (decoder.iter_flush, ())):
            for piece in _pieces(step, *data):
                decoded += len(piece)
                if decoded > threshold:
                    limits.check_ratio(decoded, encoded)
                yield piece

    async def _collect(self) -> bytes:
        """The whole (decoded) body, with ``max_body_size`` checked as the chunks come."""
        limit = self._limits.max_body_size
        parts: list[bytes] = []
        size = 0
        chunks = self._chunks()
        try:
            async for chunk in chunks:
                size += len(chunk)
                if limit is not None and size > limit:
                    exc = self._limits.too_large(size)
                    await self._finish(exc)  # before closing: post_request sees this error
                    raise exc
                parts.append(chunk)
        finally:
            await chunks.aclose()
        return b"".join(parts)

    async def aclose(self) -> None:
        await self._raw.aclose()
        await self._finish(None)

    async def _finish(self, exc: BaseException | None) -> None:
        if not self._done:
            self._done = True
            if self._on_done is not None:
                await self._on_done(exc)


def _pieces(step: Callable[..., Iterator[bytes]], *data: bytes) -> Iterator[bytes]:
    try:
        for piece in step(*data):
            if piece:
                yield piece
    except DecodingError:
        raise
    except Exception as exc:  # zlib.error, brotli.error, zstd.ZstdError, ...
        raise DecodingError(f"the response body could not be decoded: {exc}") from exc
