"""Turning a body's bytes back into what the server meant: content codings, charsets, lines.

Everything here is incremental: a decoder is fed the body chunk by chunk as it arrives and keeps
only the state its algorithm needs, so memory stays flat whatever the body's size. Nothing here
does I/O; the session client, the reverse proxy and the cache drive these objects themselves.

Decompression bombs: ``ContentDecoder.iter_decode`` hands output back in pieces of at most
``MAX_PIECE_SIZE`` bytes for zlib (``max_length``), about that for brotli
(``output_buffer_limit``) and at most one zstd block (128 KiB, see ``ZStandardDecoder``), and
``iter_flush`` does the same for what is left at the end, so a consumer that writes or checks
each piece as it comes never holds a whole expanded chunk. A consumer that must cap the total (the
client's decompression-bomb guard, a proxy, a cache) counts the bytes of the pieces.

Corrupt input raises ``ContentDecodingError``. A stream that merely stops early (no gzip trailer,
no final deflate block) is not an error here: ``flush`` returns what could be decoded, as
browsers show it. Whether the body arrived whole is the transport's to tell, from its framing.
"""

from __future__ import annotations

import abc
import codecs
import re
import zlib
from collections.abc import Iterator

import brotli  # type: ignore[import-untyped]
import zstandard
from charset_normalizer import from_bytes

from ferryman.exceptions import DecodingError

__all__ = [
    "ACCEPT_ENCODING",
    "MAX_PIECE_SIZE",
    "BrotliDecoder",
    "ContentDecoder",
    "ContentDecodingError",
    "DeflateDecoder",
    "GZipDecoder",
    "IdentityDecoder",
    "LineDecoder",
    "MultiDecoder",
    "TextDecoder",
    "ZStandardDecoder",
    "encoding_from_content_type",
    "get_content_decoder",
]

MAX_PIECE_SIZE = 64 * 1024
"""The size a single piece of decoded output aims at (brotli may overshoot it by half, a zstd
piece is at most one block: ``ZSTD_MAX_BLOCK_SIZE``)."""

ZSTD_MAX_WINDOW_SIZE = 8 * 1024 * 1024
"""RFC 9659: a zstd content coding uses a window of at most 8 MB, so decoders may refuse more."""

ZSTD_MAX_BLOCK_SIZE = 128 * 1024
"""RFC 8878 3.1.1.2.3: no zstd block decodes to more than 128 KiB."""


class ContentDecodingError(DecodingError):
    """The body does not decode with the content coding its headers announce.

    A ``DecodingError`` (so a ``ValueError`` too); the name says which layer failed."""


class ContentDecoder(abc.ABC):
    """Incremental decoder of one ``Content-Encoding`` layer.

    ``iter_decode`` is the primitive (bounded pieces); ``decode`` joins them for callers that
    hold the chunk's whole output anyway.
    """

    __slots__ = ()

    @abc.abstractmethod
    def iter_decode(self, data: bytes) -> Iterator[bytes]:
        """The decoded bytes of ``data``, in pieces of bounded size."""

    def decode(self, data: bytes) -> bytes:
        return b"".join(self.iter_decode(data))

    def flush(self) -> bytes:
        """What the decoder still holds once the body has ended."""
        return b""

    def iter_flush(self) -> Iterator[bytes]:
        """``flush`` in pieces of bounded size: a stack of codings may still hold a bomb."""
        tail = self.flush()
        if tail:
            yield tail


class IdentityDecoder(ContentDecoder):
    """No coding: here so that a stack such as ``identity, gzip`` needs no special case."""

    __slots__ = ()

    def iter_decode(self, data: bytes) -> Iterator[bytes]:
        if data:
            yield data

    def decode(self, data: bytes) -> bytes:
        return data


def _drain_zlib(decompressor: zlib._Decompress, data: bytes) -> Iterator[bytes]:
    """Decompress ``data`` in pieces of at most ``MAX_PIECE_SIZE``.

    A full piece may leave output pending inside zlib even once the input is all consumed, so the
    loop runs until a call returns less than the limit, not merely until the input is used up.
    """
    try:
        while True:
            piece = decompressor.decompress(data, MAX_PIECE_SIZE)
            if piece:
                yield piece
            data = decompressor.unconsumed_tail
            if decompressor.eof or (not data and len(piece) < MAX_PIECE_SIZE):
                return
    except zlib.error as exc:
        raise ContentDecodingError(f"invalid compressed data: {exc}") from exc


class DeflateDecoder(ContentDecoder):
    """``deflate``: RFC 9110 means the zlib format (RFC 1950), but many servers send raw deflate
    (RFC 1951), as old IIS did. The first two bytes tell them apart: a zlib header has
    compression method 8, a window of at most 32 KiB and a check value making it a multiple of
    31. A raw stream could only start that way with a non-final stored block whose padding bits
    are not zero, which no compressor writes, so the check never needs a retry.
    """

    __slots__ = ("_decompressor", "_head")

    def __init__(self) -> None:
        self._decompressor: zlib._Decompress | None = None
        self._head = b""

    def iter_decode(self, data: bytes) -> Iterator[bytes]:
        decompressor = self._decompressor
        if decompressor is None:
            data = self._head + data
            if len(data) < 2:
                self._head = data
                return
            self._head = b""
            cmf, flg = data[0], data[1]
            is_zlib = cmf & 0x0F == 8 and cmf >> 4 <= 7 and ((cmf << 8) | flg) % 31 == 0
            decompressor = zlib.decompressobj(zlib.MAX_WBITS if is_zlib else -zlib.MAX_WBITS)
            self._decompressor = decompressor
        if decompressor.eof:
            return  # bytes after the end of the stream: padding some servers add, ignored
        yield from _drain_zlib(decompressor, data)

    def flush(self) -> bytes:
        if self._decompressor is None:
            return b""  # nothing, or one byte: a truncated stream, tolerated as the rest are
        try:
            return self._decompressor.flush()
        except zlib.error as exc:
            raise ContentDecodingError(f"invalid compressed data: {exc}") from exc


class GZipDecoder(ContentDecoder):
    """``gzip`` / ``x-gzip``, including several members one after another (RFC 1952 2.2)."""

    __slots__ = ("_decompressor", "_ignore_rest", "_tail")

    def __init__(self) -> None:
        self._decompressor = zlib.decompressobj(zlib.MAX_WBITS | 16)
        self._tail = b""  # bytes after a member's end, while too few to tell what follows
        self._ignore_rest = False

    def iter_decode(self, data: bytes) -> Iterator[bytes]:
        while data and not self._ignore_rest:
            decompressor = self._decompressor
            if decompressor.eof:
                data = self._tail + data
                self._tail = b""
                if len(data) < 2:
                    self._tail = data
                    return
                if data[:2] != b"\x1f\x8b":
                    self._ignore_rest = True  # trailing padding, not a member: browsers skip it
                    return
                decompressor = self._decompressor = zlib.decompressobj(zlib.MAX_WBITS | 16)
            yield from _drain_zlib(decompressor, data)
            data = decompressor.unused_data if decompressor.eof else b""

    def flush(self) -> bytes:
        try:
            return self._decompressor.flush()
        except zlib.error as exc:
            raise ContentDecodingError(f"invalid compressed data: {exc}") from exc


class BrotliDecoder(ContentDecoder):
    """``br`` (RFC 7932) with the ``brotli`` package."""

    __slots__ = ("_decompressor",)

    def __init__(self) -> None:
        # brotli 1.2 added ``output_buffer_limit`` (hence the requirement): before it, one small
        # chunk came back whole, however far it expanded.
        self._decompressor = brotli.Decompressor()

    def iter_decode(self, data: bytes) -> Iterator[bytes]:
        decompressor = self._decompressor
        try:
            piece = decompressor.process(data, output_buffer_limit=MAX_PIECE_SIZE)
            # Output may still be pending when can_accept_more_data() is already true, so
            # drain until a call gives nothing: that is the sign the decoder needs input.
            while piece:
                yield piece
                if decompressor.is_finished():
                    return
                piece = decompressor.process(b"", output_buffer_limit=MAX_PIECE_SIZE)
        except brotli.error as exc:
            raise ContentDecodingError(f"invalid brotli data: {exc}") from exc


class ZStandardDecoder(ContentDecoder):
    """``zstd`` (RFC 8878): one stream may hold several frames, decoded one after another.

    ``zstandard``'s streaming object has no output limit: a 64 KiB chunk of 4-byte RLE blocks
    came back as one 2 GiB piece. But no block decodes to more than ``ZSTD_MAX_BLOCK_SIZE``,
    and a block's header gives its length on the wire, so ``_ZstdBlocks`` finds where each block
    ends and the chunk is fed up to one block end at a time: each piece is then at most one
    block. Cutting the input anywhere never changes the output (the object is a stream), so the
    scan decides only the sizes of the pieces; a body that is not zstd fails in the scan or in
    the decompressor, as it did before.
    """

    __slots__ = ("_blocks", "_decompressor")

    def __init__(self) -> None:
        self._decompressor = zstandard.ZstdDecompressor(
            max_window_size=ZSTD_MAX_WINDOW_SIZE
        ).decompressobj(read_across_frames=True)
        self._blocks = _ZstdBlocks()

    def iter_decode(self, data: bytes) -> Iterator[bytes]:
        decompress = self._decompressor.decompress
        view = memoryview(data)
        start = 0
        try:
            for end in (*self._blocks.ends(data), len(data)):
                if end > start:
                    piece = decompress(view[start:end])
                    start = end
                    if piece:
                        yield piece
        except zstandard.ZstdError as exc:
            raise ContentDecodingError(f"invalid zstd data: {exc}") from exc


_ZSTD_MAGIC = 0xFD2FB528
_ZSTD_SKIPPABLE_MAGIC = 0x184D2A50  # to 0x184D2A5F: the low four bits are free
_DICTIONARY_ID_SIZES = (0, 1, 2, 4)
_CONTENT_SIZE_SIZES = (0, 2, 4, 8)  # the first is 1 in a single-segment frame

# What _ZstdBlocks reads next: a field of fixed size it collects, or bytes it only counts.
_MAGIC, _DESCRIPTOR, _BLOCK_HEADER, _SKIPPABLE_SIZE, _SKIP, _BLOCK = range(6)


class _ZstdBlocks:
    """Where the blocks of a zstd stream end, read from their headers (RFC 8878 3.1).

    A frame is a magic number, a header whose first byte tells its length, blocks of a 3-byte
    header and a body (1 byte for an RLE block, ``Block_Size`` bytes otherwise), and an optional
    4-byte checksum; a skippable frame is a magic number, a 4-byte length and that many bytes.
    Only lengths are read here: whether the bytes are valid is the decompressor's to say.
    """

    __slots__ = ("_checksum", "_field", "_last", "_left", "_next", "_state")

    def __init__(self) -> None:
        self._state = _MAGIC
        self._field = b""  # the part of a fixed-size field read so far
        self._left = 4  # bytes still to collect (a field) or to count (_SKIP, _BLOCK)
        self._next = _MAGIC  # what follows a _SKIP
        self._last = False
        self._checksum = False

    def ends(self, data: bytes) -> list[int]:
        """The offsets in ``data`` at which a block ends (or an empty raw block sits)."""
        ends: list[int] = []
        position = 0
        size = len(data)
        while position < size or (self._state == _BLOCK and not self._left):
            state = self._state
            if state in (_SKIP, _BLOCK):
                step = min(self._left, size - position)
                position += step
                self._left -= step
                if self._left:
                    break
                if state == _SKIP:
                    self._expect(self._next, 4 if self._next == _MAGIC else 3)
                    continue
                ends.append(position)
                if not self._last:
                    self._expect(_BLOCK_HEADER, 3)
                elif self._checksum:
                    self._skip(4, _MAGIC)
                else:
                    self._expect(_MAGIC, 4)
                continue
            step = min(self._left, size - position)
            self._field += data[position : position + step]
            position += step
            self._left -= step
            if self._left:
                break
            value = int.from_bytes(self._field, "little")
            if state == _MAGIC:
                if value == _ZSTD_MAGIC:
                    self._expect(_DESCRIPTOR, 1)
                elif value & 0xFFFFFFF0 == _ZSTD_SKIPPABLE_MAGIC:
                    self._expect(_SKIPPABLE_SIZE, 4)
                else:
                    raise ContentDecodingError("invalid zstd data: not a zstd frame")
            elif state == _DESCRIPTOR:
                single_segment = value >> 5 & 1
                self._checksum = bool(value >> 2 & 1)
                content_size = _CONTENT_SIZE_SIZES[value >> 6] or single_segment
                header = 1 - single_segment + _DICTIONARY_ID_SIZES[value & 3] + content_size
                self._skip(header, _BLOCK_HEADER)
            elif state == _BLOCK_HEADER:
                self._last = bool(value & 1)
                # An RLE block (type 1) is one byte repeated Block_Size times.
                self._state, self._left = _BLOCK, 1 if value >> 1 & 3 == 1 else value >> 3
            else:  # _SKIPPABLE_SIZE
                self._skip(value, _MAGIC)
        return ends

    def _expect(self, state: int, size: int) -> None:
        self._state, self._left, self._field = state, size, b""

    def _skip(self, size: int, then: int) -> None:
        self._state, self._left, self._next = _SKIP, size, then


class MultiDecoder(ContentDecoder):
    """Stacked codings: ``Content-Encoding: gzip, br`` was gzipped first, so br comes off first."""

    __slots__ = ("_decoders",)

    def __init__(self, decoders: list[ContentDecoder]) -> None:
        """``decoders`` in the order the header lists the codings (the order they were applied)."""
        self._decoders = list(reversed(decoders))

    def iter_decode(self, data: bytes) -> Iterator[bytes]:
        return self._through(0, data)

    def _through(self, index: int, data: bytes) -> Iterator[bytes]:
        if index == len(self._decoders):
            if data:
                yield data
            return
        for piece in self._decoders[index].iter_decode(data):
            yield from self._through(index + 1, piece)

    def flush(self) -> bytes:
        return b"".join(self.iter_flush())

    def iter_flush(self) -> Iterator[bytes]:
        # What a layer still held goes through the layers after it before they are flushed.
        for index, decoder in enumerate(self._decoders):
            for piece in decoder.iter_flush():
                yield from self._through(index + 1, piece)


_DECODERS: dict[str, type[ContentDecoder]] = {
    "identity": IdentityDecoder,
    "gzip": GZipDecoder,
    "x-gzip": GZipDecoder,
    "deflate": DeflateDecoder,
    "br": BrotliDecoder,
    "zstd": ZStandardDecoder,
}

ACCEPT_ENCODING = b"gzip, deflate, br, zstd"
"""The ``Accept-Encoding`` value announcing every coding ``get_content_decoder`` can undo."""


def get_content_decoder(content_encoding_header: str | None) -> ContentDecoder | None:
    """The decoder for a ``Content-Encoding`` value, or ``None`` when the body is used as is.

    ``None`` also when a listed coding is unknown: undoing only the layers we know would give
    bytes that are neither the original body nor what the headers describe. Left untouched,
    the body still matches its ``Content-Encoding`` header, so a caller (or a proxy relaying
    it) can hand both on intact. Servers do send nonsense here (``utf-8``, ``binary``); this
    also keeps such bodies readable.
    """
    if not content_encoding_header:
        return None
    single = _DECODERS.get(content_encoding_header.strip().lower())
    if single is not None:
        return None if single is IdentityDecoder else single()
    decoders: list[ContentDecoder] = []
    for token in content_encoding_header.split(","):
        name = token.strip().lower()
        if not name or name == "identity":
            continue
        decoder_class = _DECODERS.get(name)
        if decoder_class is None:
            return None
        decoders.append(decoder_class())
    if not decoders:
        return None
    return decoders[0] if len(decoders) == 1 else MultiDecoder(decoders)


# -- text ----------------------------------------------------------------------------------------

_CHARSET_PARAM = re.compile(r';\s*charset\s*=\s*(?:"([^"]*)"|([^\s;"]+))', re.IGNORECASE)


def encoding_from_content_type(value: str | None) -> str | None:
    """The codec a ``Content-Type`` names (``charset`` parameter), if Python knows it.

    ``application/json`` without a charset is UTF-8 (RFC 8259 8.1: JSON text exchanged between
    systems is UTF-8, and the media type has no charset parameter at all).
    """
    if not value:
        return None
    match = _CHARSET_PARAM.search(value)
    if match is not None:
        label = (match.group(1) if match.group(1) is not None else match.group(2)).strip()
        try:
            return codecs.lookup(label).name if label else None
        except LookupError:
            return None
    media_type = value.split(";", 1)[0].strip().lower()
    if media_type == "application/json" or media_type.endswith("+json"):
        return "utf-8"
    return None


DETECTION_SAMPLE_SIZE = 8 * 1024
"""Bytes a ``TextDecoder`` without a declared charset waits for before it picks one.

More bytes make detection more reliable (a Latin-1 page may be plain ASCII for its first
kilobytes) but delay the first text of a streamed body. charset_normalizer reads a few
samples of about 500 bytes spread over its input, so 8 KiB gives it distinct samples while the
wait stays short; a body that ends sooner is decided on what there is."""

# Longest first: the UTF-32 LE BOM starts with the UTF-16 LE one.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def _incremental(encoding: str) -> codecs.IncrementalDecoder:
    # A BOM on a body declared UTF-8 is noise (json.loads would choke on it): drop it.
    if codecs.lookup(encoding).name == "utf-8":
        encoding = "utf-8-sig"
    return codecs.getincrementaldecoder(encoding)(errors="replace")


class TextDecoder:
    """Incremental bytes-to-text decoder that finds the charset itself when it is not declared.

    Without a declared encoding: a byte order mark decides; else a sample that is valid UTF-8
    (ASCII included) and has no NUL byte means UTF-8, the encoding of nearly all text on the
    web and in APIs; else ``charset_normalizer`` judges the first ``DETECTION_SAMPLE_SIZE``
    bytes (NULs are how UTF-16 without a BOM shows, and it recognises it). Undecodable bytes
    become U+FFFD rather than errors: text access must not fail on a server's mislabelled page.
    """

    __slots__ = ("_decoder", "_pending", "_pending_size", "encoding")

    def __init__(self, encoding: str | None = None) -> None:
        self.encoding = encoding
        self._decoder = None if encoding is None else _incremental(encoding)
        self._pending: list[bytes] = []
        self._pending_size = 0

    def decode(self, data: bytes) -> str:
        decoder = self._decoder
        if decoder is not None:
            return decoder.decode(data)
        self._pending.append(data)
        self._pending_size += len(data)
        if self._pending_size < DETECTION_SAMPLE_SIZE:
            return ""
        return self._detect_and_decode(final=False)

    def flush(self) -> str:
        if self._decoder is None:
            return self._detect_and_decode(final=True)
        return self._decoder.decode(b"", True)

    def _detect_and_decode(self, final: bool) -> str:
        sample = b"".join(self._pending)
        self._pending.clear()
        self.encoding = _detect(sample)
        decoder = self._decoder = _incremental(self.encoding)
        return decoder.decode(sample, final)


def _detect(sample: bytes) -> str:
    for bom, encoding in _BOMS:
        if sample.startswith(bom):
            return encoding
    # NUL bytes are valid UTF-8 but betray UTF-16/32 without a BOM; leave those to detection.
    if b"\x00" not in sample:
        try:
            codecs.getincrementaldecoder("utf-8")().decode(sample, False)
        except UnicodeDecodeError:
            pass
        else:
            return "utf-8"
    matches = from_bytes(sample)
    best = matches.best()
    if best is None or best.encoding in ("ascii", "utf_8"):
        return "utf-8"
    # On a short sample several single-byte codecs can score the same; windows-1252, the most
    # common legacy encoding on the web (the WHATWG default), is then the likeliest.
    for match in matches:
        if match.encoding == "cp1252" and (match.chaos, match.coherence) == (
            best.chaos,
            best.coherence,
        ):
            return "cp1252"
    return codecs.lookup(best.encoding).name


_NEWLINE = re.compile(r"\r\n|\r|\n")


class LineDecoder:
    """Splits streamed text into lines at ``\\n``, ``\\r\\n`` and ``\\r``, terminators removed.

    Only these three: ``str.splitlines`` also splits at U+2028, U+0085, form feeds..., which
    may appear unescaped inside a JSON string of an NDJSON or SSE stream. A ``\\r`` ending a
    chunk is held back, since a ``\\n`` opening the next one makes the pair a single break.
    """

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer: list[str] = []  # the line in progress; may end with a held-back \r

    def decode(self, text: str) -> list[str]:
        if not text:
            return []
        if "\n" not in text and "\r" not in text and not self._ends_with_cr():
            self._buffer.append(text)  # kept as pieces: a long line costs no repeated joins
            return []
        if self._buffer:
            text = "".join(self._buffer) + text
            self._buffer.clear()
        held = ""
        if text[-1] == "\r":
            text, held = text[:-1], "\r"
        lines = _NEWLINE.split(text)
        rest = lines.pop() + held
        if rest:
            self._buffer.append(rest)
        return lines

    def _ends_with_cr(self) -> bool:
        return bool(self._buffer) and self._buffer[-1].endswith("\r")

    def flush(self) -> list[str]:
        if not self._buffer:
            return []
        text = "".join(self._buffer)
        self._buffer.clear()
        return [text[:-1] if text[-1] == "\r" else text]
