"""Content codings, charsets and line splitting, fed real compressed data chunk by chunk."""

from __future__ import annotations

import codecs
import email
import gzip
import itertools
import json
import zlib
from collections.abc import Callable
from pathlib import Path

import brotli  # type: ignore[import-untyped]
import pytest
import zstandard
from hypothesis import given
from hypothesis import strategies as st

import ferryman
from ferryman.exceptions import DecodingError
from ferryman.http import Request
from ferryman.http.decoders import (
    ACCEPT_ENCODING,
    DETECTION_SAMPLE_SIZE,
    MAX_PIECE_SIZE,
    ZSTD_MAX_BLOCK_SIZE,
    BrotliDecoder,
    ContentDecoder,
    ContentDecodingError,
    DeflateDecoder,
    GZipDecoder,
    LineDecoder,
    MultiDecoder,
    TextDecoder,
    ZStandardDecoder,
    encoding_from_content_type,
    get_content_decoder,
)
from tests.servers.httpbin_server import HttpbinServer

# Real data: the source of a stdlib module, text with the redundancy of real bodies.
REAL_DATA = (Path(email.__file__).parent / "message.py").read_bytes()


def _raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


def _zstd_frames(data: bytes) -> bytes:
    """Two frames back to back, as a server flushing a stream in frames sends them."""
    half = len(data) // 2
    compressor = zstandard.ZstdCompressor()
    return compressor.compress(data[:half]) + compressor.compress(data[half:])


def _zstd_streamed(data: bytes) -> bytes:
    """What a streaming server sends: a frame of unknown size, flushed block by block (some
    blocks raw, some empty), with a checksum, between skippable frames (RFC 8878 3.1.2)."""
    skippable = (0x184D2A53).to_bytes(4, "little") + (5).to_bytes(4, "little") + b"meta!"
    compressor = zstandard.ZstdCompressor(write_checksum=True).compressobj()
    parts = [skippable]
    for start in range(0, len(data), 700):
        parts.append(compressor.compress(data[start : start + 700]))
        parts.append(compressor.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK))
    parts.append(compressor.flush())
    return b"".join([*parts, skippable])


CODINGS: dict[str, tuple[str, Callable[[bytes], bytes]]] = {
    "gzip": ("gzip", gzip.compress),
    "x-gzip": ("x-gzip", gzip.compress),
    "deflate-zlib": ("deflate", zlib.compress),
    "deflate-raw": ("deflate", _raw_deflate),
    "br": ("br", brotli.compress),
    "zstd": ("zstd", zstandard.ZstdCompressor().compress),
    "zstd-frames": ("zstd", _zstd_frames),
    "zstd-streamed": ("zstd", _zstd_streamed),
    "gzip-then-br": ("gzip, br", lambda data: brotli.compress(gzip.compress(data))),
    "deflate-then-zstd": (
        "deflate, zstd",
        lambda data: zstandard.ZstdCompressor().compress(zlib.compress(data)),
    ),
    "with-identity": ("identity, gzip", gzip.compress),
}


def _decode_in_chunks(header: str, body: bytes, sizes: list[int]) -> bytes:
    decoder = get_content_decoder(header)
    assert decoder is not None
    out: list[bytes] = []
    position = 0
    index = 0
    while position < len(body):
        size = sizes[index % len(sizes)]
        index += 1
        out.extend(decoder.iter_decode(body[position : position + size]))
        position += size
    out.append(decoder.flush())
    return b"".join(out)


@pytest.mark.parametrize("coding", list(CODINGS))
@given(data=st.binary(max_size=5000) | st.just(REAL_DATA), sizes=st.data())
def test_round_trip_in_chunks_of_any_size(coding: str, data: bytes, sizes: st.DataObject) -> None:
    header, compress = CODINGS[coding]
    body = compress(data)
    chunk_sizes = sizes.draw(
        st.lists(st.integers(min_value=1, max_value=max(1, len(body))), min_size=1, max_size=8)
    )
    assert _decode_in_chunks(header, body, chunk_sizes) == data


@pytest.mark.parametrize("coding", list(CODINGS))
def test_every_fixed_chunk_size(coding: str) -> None:
    header, compress = CODINGS[coding]
    data = REAL_DATA[:3000]
    body = compress(data)
    for size in range(1, len(body) + 1):
        assert _decode_in_chunks(header, body, [size]) == data, size


@pytest.mark.parametrize(
    ("header", "compress", "limit"),
    [
        ("gzip", gzip.compress, MAX_PIECE_SIZE),
        ("deflate", zlib.compress, MAX_PIECE_SIZE),
        ("deflate", _raw_deflate, MAX_PIECE_SIZE),
        # brotli grows its output buffer in steps and stops once past the limit.
        ("br", brotli.compress, 2 * MAX_PIECE_SIZE),
        # RLE blocks, 4 bytes for 128 KiB: one piece was the whole chunk's 32 MiB.
        ("zstd", zstandard.ZstdCompressor().compress, ZSTD_MAX_BLOCK_SIZE),
        ("gzip, gzip", lambda data: gzip.compress(gzip.compress(data)), MAX_PIECE_SIZE),
        ("zstd, br", lambda data: brotli.compress(_zstd_frames(data)), ZSTD_MAX_BLOCK_SIZE),
    ],
)
def test_a_small_bomb_chunk_comes_out_in_bounded_pieces(
    header: str, compress: Callable[[bytes], bytes], limit: int
) -> None:
    expanded = 32 * 1024 * 1024
    body = compress(b"\x00" * expanded)
    assert len(body) < expanded // 500  # a real bomb: tiny on the wire
    decoder = get_content_decoder(header)
    assert decoder is not None
    total = 0
    pieces = 0
    for piece in decoder.iter_decode(body):  # the whole bomb as one chunk
        assert 0 < len(piece) <= limit
        assert piece.count(0) == len(piece)
        total += len(piece)
        pieces += 1
    total += len(decoder.flush())
    assert total == expanded
    assert pieces >= expanded // limit


@pytest.mark.parametrize("size", [1, 3, 4096, 1 << 20])
def test_a_zstd_bomb_fed_in_any_chunks_comes_out_in_blocks(size: int) -> None:
    body = _zstd_frames(b"\x00" * (8 * 1024 * 1024))
    decoder = ZStandardDecoder()
    total = 0
    for start in range(0, len(body), size):
        for piece in decoder.iter_decode(body[start : start + size]):
            assert 0 < len(piece) <= ZSTD_MAX_BLOCK_SIZE
            total += len(piece)
    assert total == 8 * 1024 * 1024


def test_gzip_members_are_concatenated_and_trailing_padding_ignored() -> None:
    body = gzip.compress(b"first ") + gzip.compress(b"second") + b"\x00" * 7
    for size in range(1, len(body) + 1):
        assert _decode_in_chunks("gzip", body, [size]) == b"first second"


def test_bytes_after_the_end_of_a_deflate_stream_are_ignored() -> None:
    body = zlib.compress(REAL_DATA) + b"\x00\x00junk"
    assert _decode_in_chunks("deflate", body, [100]) == REAL_DATA


def test_a_stream_cut_short_gives_what_could_be_decoded() -> None:
    body = gzip.compress(REAL_DATA)[:-8]  # no CRC/size trailer
    assert _decode_in_chunks("gzip", body, [64]) == REAL_DATA


@pytest.mark.parametrize("header", ["gzip", "deflate", "br", "zstd", "gzip, br"])
def test_garbage_raises_a_decoding_error(header: str) -> None:
    decoder = get_content_decoder(header)
    assert decoder is not None
    with pytest.raises(ContentDecodingError):
        decoder.decode(b"<html>this body was never compressed, whatever the header says</html>")
        decoder.flush()


def test_a_corrupted_gzip_body_fails_its_checksum() -> None:
    body = bytearray(gzip.compress(REAL_DATA))
    body[len(body) // 2] ^= 0xFF
    with pytest.raises(ContentDecodingError):
        _decode_in_chunks("gzip", bytes(body), [512])


@pytest.mark.parametrize(("window_log", "accepted"), [(23, True), (24, False)])
def test_zstd_windows_over_the_rfc_9659_limit_are_refused(window_log: int, accepted: bool) -> None:
    params = zstandard.ZstdCompressionParameters.from_level(3, window_log=window_log)
    # A streamed frame (size unknown up front) declares its window rather than its size.
    compressor = zstandard.ZstdCompressor(compression_params=params).compressobj()
    body = compressor.compress(REAL_DATA) + compressor.flush()
    assert zstandard.get_frame_parameters(body).window_size == 1 << window_log
    if accepted:
        assert ZStandardDecoder().decode(body) == REAL_DATA
    else:
        with pytest.raises(ContentDecodingError):
            ZStandardDecoder().decode(body)


def test_the_error_is_a_value_error_and_a_ferryman_decoding_error() -> None:
    assert issubclass(ContentDecodingError, ValueError)
    assert issubclass(ContentDecodingError, DecodingError)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("identity", None),
        (" Identity ", None),
        ("gzip", GZipDecoder),
        ("X-GZIP", GZipDecoder),
        ("deflate", DeflateDecoder),
        ("br", BrotliDecoder),
        ("zstd", ZStandardDecoder),
        ("identity, br", BrotliDecoder),
        ("gzip, br", MultiDecoder),
        ("gzip,,br", MultiDecoder),
        # Unknown codings leave the body as it is, even when stacked with known ones.
        ("compress", None),
        ("utf-8", None),
        ("gzip, snappy", None),
    ],
)
def test_get_content_decoder(header: str | None, expected: type[ContentDecoder] | None) -> None:
    decoder = get_content_decoder(header)
    if expected is None:
        assert decoder is None
    else:
        assert type(decoder) is expected


def test_accept_encoding_lists_exactly_what_can_be_decoded() -> None:
    tokens = [token.strip() for token in ACCEPT_ENCODING.decode("ascii").split(",")]
    assert set(tokens) == {"gzip", "deflate", "br", "zstd"}
    for token in tokens:
        assert get_content_decoder(token) is not None


@pytest.mark.parametrize(
    ("path", "flag"), [("/gzip", "gzipped"), ("/deflate", "deflated"), ("/brotli", "brotli")]
)
async def test_httpbin_compressed_bodies(httpbin: HttpbinServer, path: str, flag: str) -> None:
    async with ferryman.AsyncConnectionPool() as pool:
        request = Request(
            "GET", httpbin.url + path, headers=[(b"Accept-Encoding", ACCEPT_ENCODING)]
        )
        response = await pool.handle_async_request(request)
        raw = await response.aread()
    decoder = get_content_decoder(response.headers.get("content-encoding"))
    assert decoder is not None
    # Fed in small chunks, as a body arrives from the network.
    decoded = b"".join(decoder.decode(raw[i : i + 16]) for i in range(0, len(raw), 16))
    document = json.loads(decoded + decoder.flush())
    assert document[flag] is True
    assert document["method"] == "GET"


# -- charsets ------------------------------------------------------------------------------------

FRENCH = (
    "Les élèves étaient très contents de leur journée à la mer. Après le déjeuner, ils sont "
    "allés se promener sur la plage, où ils ont ramassé des coquillages et regardé les "
    "bateaux. « C'est génial ! » s'écria François, qui n'avait jamais vu l'océan."
)
JAPANESE = (
    "吾輩は猫である。名前はまだ無い。どこで生れたかとんと見当がつかぬ。"
    "何でも薄暗いじめじめした所でニャーニャー泣いていた事だけは記憶している。"
    "吾輩はここで始めて人間というものを見た。"
)
# Cyrillic letters that look Latin are the point of this sample (hence the noqa).
RUSSIAN = (
    "Все счастливые семьи похожи друг на друга, "  # noqa: RUF001
    "каждая несчастливая семья несчастлива по-своему. "
    "Всё смешалось в доме Облонских. Жена узнала, "
    "что муж был в связи с бывшею в их доме француженкою-гувернанткой."  # noqa: RUF001
)


def _decode_text(decoder: TextDecoder, raw: bytes, size: int) -> str:
    text = "".join(decoder.decode(raw[i : i + size]) for i in range(0, len(raw), size))
    return text + decoder.flush()


@pytest.mark.parametrize(
    ("text", "encoding", "detected"),
    [
        (FRENCH, "cp1252", "cp1252"),
        (FRENCH, "utf-8", "utf-8"),
        (JAPANESE, "shift_jis", None),  # cp932 or shift_jis: both decode this text
        (JAPANESE, "utf-8", "utf-8"),
        (RUSSIAN, "cp1251", "cp1251"),
        (FRENCH, "utf-16-le", "utf-16-le"),  # no BOM: the NUL bytes give it away
        (JAPANESE, "utf-16-be", "utf-16-be"),
        ("plain ascii text", "ascii", "utf-8"),
    ],
)
@pytest.mark.parametrize("size", [1, 3, 64, 100_000])
def test_charset_is_detected_from_the_bytes(
    text: str, encoding: str, detected: str | None, size: int
) -> None:
    decoder = TextDecoder(None)
    assert _decode_text(decoder, text.encode(encoding), size) == text
    if detected is not None:
        assert decoder.encoding == detected


@pytest.mark.parametrize(
    ("encoding", "bom"),
    [
        ("utf-8", codecs.BOM_UTF8),
        ("utf-16-le", codecs.BOM_UTF16_LE),
        ("utf-16-be", codecs.BOM_UTF16_BE),
        ("utf-32-le", codecs.BOM_UTF32_LE),
        ("utf-32-be", codecs.BOM_UTF32_BE),
    ],
)
@pytest.mark.parametrize("size", [1, 2, 5, 100_000])
def test_a_byte_order_mark_decides_and_is_dropped(encoding: str, bom: bytes, size: int) -> None:
    text = FRENCH + JAPANESE
    decoder = TextDecoder(None)
    assert _decode_text(decoder, bom + text.encode(encoding), size) == text


def test_detection_waits_for_a_sample_then_streams() -> None:
    raw = (FRENCH * 100).encode("cp1252")
    decoder = TextDecoder(None)
    assert decoder.decode(raw[: DETECTION_SAMPLE_SIZE - 1]) == ""
    undecided = decoder.encoding
    first = decoder.decode(raw[DETECTION_SAMPLE_SIZE - 1 : DETECTION_SAMPLE_SIZE])
    assert (undecided, decoder.encoding) == (None, "cp1252")
    assert first == raw[:DETECTION_SAMPLE_SIZE].decode("cp1252")
    rest = decoder.decode(raw[DETECTION_SAMPLE_SIZE:]) + decoder.flush()
    assert first + rest == FRENCH * 100


def test_undecodable_bytes_become_replacement_characters() -> None:
    decoder = TextDecoder("utf-8")
    assert decoder.decode(b"ok \xff\xfe then") + decoder.flush() == "ok \ufffd\ufffd then"


def test_a_declared_utf8_body_loses_its_bom() -> None:
    decoder = TextDecoder("utf-8")
    assert _decode_text(decoder, codecs.BOM_UTF8 + b'{"a": 1}', 1) == '{"a": 1}'


@given(
    text=st.text(),
    encoding=st.sampled_from(["utf-8", "utf-16", "utf-32", "utf-16-be", "gb18030"]),
    size=st.integers(min_value=1, max_value=16),
)
def test_declared_encodings_decode_incrementally(text: str, encoding: str, size: int) -> None:
    assert _decode_text(TextDecoder(encoding), text.encode(encoding), size) == text


# NUL is left out: it marks BOM-less UTF-16/32, which detection then weighs instead.
@given(
    text=st.text(alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00")),
    size=st.integers(min_value=1, max_value=16),
)
def test_undeclared_utf8_always_decodes_as_utf8(text: str, size: int) -> None:
    decoder = TextDecoder(None)
    assert _decode_text(decoder, text.encode("utf-8"), size) == text
    assert decoder.encoding == "utf-8"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("text/html", None),
        ("text/html; charset=ISO-8859-1", "iso8859-1"),
        ('text/html; charset="utf-8"', "utf-8"),
        ("text/plain;CHARSET=UTF8", "utf-8"),
        ("text/plain; format=flowed; charset=windows-1252", "cp1252"),
        ("text/plain; charset=no-such-codec", None),
        ("text/plain; charset=", None),
        ("application/json", "utf-8"),
        ("Application/JSON ; q=1", "utf-8"),
        ("application/problem+json", "utf-8"),
        ("application/json; charset=latin-1", "iso8859-1"),
    ],
)
def test_encoding_from_content_type(value: str | None, expected: str | None) -> None:
    assert encoding_from_content_type(value) == expected


# -- lines ---------------------------------------------------------------------------------------

LINE_TEXT = st.lists(st.sampled_from(["a", "b", "é", " ", "\r", "\n", "\r\n", "𝄞"])).map("".join)


@given(text=LINE_TEXT, cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=10))
def test_lines_match_splitlines_whatever_the_chunking(text: str, cuts: list[int]) -> None:
    bounds = sorted({cut for cut in cuts if cut <= len(text)} | {0, len(text)})
    decoder = LineDecoder()
    lines: list[str] = []
    for start, end in itertools.pairwise(bounds):
        lines.extend(decoder.decode(text[start:end]))
    lines.extend(decoder.flush())
    assert lines == text.splitlines()


def test_a_cr_at_a_chunk_end_does_not_make_an_empty_line() -> None:
    decoder = LineDecoder()
    assert decoder.decode("one\r") == []
    assert decoder.decode("\ntwo\r") == ["one"]
    assert decoder.decode("three") == ["two"]
    assert decoder.flush() == ["three"]


def test_only_cr_and_lf_break_lines() -> None:
    # U+2028 and friends are legal, unescaped, inside JSON strings of an NDJSON stream.
    decoder = LineDecoder()
    record = '{"text": "a\u2028b\x0cc\x85d"}'
    assert decoder.decode(record + "\n" + record + "\n") == [record, record]
    assert decoder.flush() == []


def test_a_long_line_arriving_in_many_pieces() -> None:
    decoder = LineDecoder()
    for _ in range(10_000):
        assert decoder.decode("x") == []
    assert decoder.decode("\n") == ["x" * 10_000]
