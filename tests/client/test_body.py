"""Response bodies as the client hands them out: real decompression bombs are refused, real large
compressed data is not, streams stay bounded with the guard off, and max_body_size caps what is
read whole. Every body comes off a real socket (tests/servers/bodies.py)."""

from __future__ import annotations

import gzip
import json
import os
import random
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import brotli  # type: ignore[import-untyped]
import pytest
import zstandard

import ferryman
from ferryman.client.body import DEFAULT_DECOMPRESSION_BOMB_THRESHOLD
from ferryman.exceptions import DecodingError, DecompressionBombError, ResponseTooLarge
from tests.servers.bodies import BodyServer

MiB = 1024 * 1024
THRESHOLD = DEFAULT_DECOMPRESSION_BOMB_THRESHOLD
PIECE_LIMIT = MiB  # what one piece handed to the caller may be, at most


def _zeros(size_mib: int) -> Iterator[bytes]:
    block = bytes(MiB)
    for _ in range(size_mib):
        yield block


def _compress(compressor: Any, size_mib: int, finish: Callable[[], bytes]) -> bytes:
    return b"".join([*(compressor(block) for block in _zeros(size_mib)), finish()])


def _gzip_bomb(size_mib: int) -> bytes:
    """One gzip member of zeros, as a bomb is made: 200 MiB come to about 200 KiB."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    return _compress(compressor.compress, size_mib, compressor.flush)


def _deflate_bomb(size_mib: int) -> bytes:
    compressor = zlib.compressobj(1)
    return _compress(compressor.compress, size_mib, compressor.flush)


def _brotli_bomb(size_mib: int) -> bytes:
    compressor = brotli.Compressor(quality=5)
    return _compress(compressor.process, size_mib, compressor.finish)


def _zstd_bomb(size_mib: int) -> bytes:
    """zstd RLE blocks: 4 bytes on the wire for every 128 KiB."""
    compressor = zstandard.ZstdCompressor(level=1).compressobj()
    return _compress(compressor.compress, size_mib, compressor.flush)


def _stacked_gzip_bomb(size_mib: int) -> bytes:
    """``Content-Encoding: gzip, gzip``: gzip members of 1 MiB of zeros back to back (1 KiB
    each), gzipped again: 256 MiB come to about 1 KiB (10 GiB to 17 KiB)."""
    return gzip.compress(gzip.compress(bytes(MiB), 9) * size_mib, 9)


BOMBS: dict[str, tuple[str, Callable[[int], bytes], int]] = {
    # name: (Content-Encoding, maker, decoded size in MiB)
    "gzip": ("gzip", _gzip_bomb, 200),
    "deflate": ("deflate", _deflate_bomb, 200),
    "br": ("br", _brotli_bomb, 200),
    "zstd": ("zstd", _zstd_bomb, 200),
    "gzip, gzip": ("gzip, gzip", _stacked_gzip_bomb, 256),
}


def _json_lines(size: int) -> bytes:
    """Real data that compresses well: JSON records as an API or a log export has them, a
    hundred distinct ones repeated (gzip gets about 25x, zstd about 40x)."""
    rnd = random.Random(21)
    words = ["order", "customer", "shipped", "pending", "invoice", "paris", "tokyo", "berlin"]
    pool = [
        json.dumps(
            {
                "id": number,
                "customer": f"{rnd.choice(words)}-{rnd.randrange(100_000)}",
                "status": rnd.choice(words),
                "amount": round(rnd.random() * 1000, 2),
                "items": [rnd.randrange(1000) for _ in range(3)],
                "note": " ".join(rnd.choices(words, k=6)),
            }
        ).encode()
        + b"\n"
        for number in range(100)
    ]
    average = sum(map(len, pool)) // len(pool)
    return b"".join(rnd.choices(pool, k=size // average))


@pytest.fixture(scope="module")
def bodies() -> Iterator[BodyServer]:
    server = BodyServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def bombs(bodies: BodyServer) -> dict[str, tuple[str, int]]:
    """Each bomb's URL and decoded size; ``/chunked`` after a URL serves it chunked."""
    urls: dict[str, tuple[str, int]] = {}
    for index, (name, (coding, make, size_mib)) in enumerate(BOMBS.items()):
        body = make(size_mib)
        assert len(body) * 200 < size_mib * MiB  # a real bomb: tiny on the wire
        url = bodies.put(f"/bomb/{index}", body, coding)
        bodies.put(f"/bomb/{index}/chunked", body, coding, chunked=True)
        urls[name] = (url, size_mib * MiB)
    return urls


@pytest.fixture(scope="module")
def real_data() -> bytes:
    return _json_lines(70 * MiB)


def _rss() -> int:
    """The process's resident memory now (not its peak: earlier tests set that)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# -- bombs are refused ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(BOMBS))
async def test_a_bomb_read_whole_raises_once_past_the_threshold(
    bombs: dict[str, tuple[str, int]], name: str
) -> None:
    url, _ = bombs[name]
    async with ferryman.AsyncClient(trust_env=False) as client:
        with pytest.raises(DecompressionBombError) as caught:
            await client.get(url)
        # The same guard on a streamed response read whole later, served chunked.
        async with await client.get(url + "/chunked", stream=True) as response:
            with pytest.raises(DecompressionBombError):
                await response.aread()
        # Read whole with a data handler: chunk by chunk, counted against the bytes so far.
        with pytest.raises(DecompressionBombError):
            await client.get(url, data_received=lambda response, data: None)
        assert (await client.get(url, decompress=False)).status_code == 200  # still usable
    error = caught.value
    assert isinstance(error, DecodingError)
    # Stopped as soon as both limits were passed, not after expanding the rest.
    assert error.decoded_size > max(THRESHOLD, 100 * error.encoded_size)
    assert error.decoded_size <= max(THRESHOLD, 100 * error.encoded_size) + PIECE_LIMIT
    assert "max_decompression_ratio" in str(error)


@pytest.mark.parametrize("name", ["zstd", "gzip, gzip"])
async def test_a_streamed_bomb_raises_once_past_the_threshold(
    bombs: dict[str, tuple[str, int]], name: str
) -> None:
    url, _ = bombs[name]
    seen = 0
    failures: list[BaseException | None] = []
    async with ferryman.AsyncClient(trust_env=False) as client:
        response = await client.get(
            url + "/chunked", stream=True, post_request=lambda r, exc=None: failures.append(exc)
        )
        with pytest.raises(DecompressionBombError):
            async for piece in response.iter_bytes():
                seen += len(piece)
    assert THRESHOLD <= seen <= THRESHOLD + PIECE_LIMIT
    assert len(failures) == 1 and isinstance(failures[0], DecompressionBombError)


def test_the_sync_client_refuses_a_bomb(bombs: dict[str, tuple[str, int]]) -> None:
    url, _ = bombs["gzip"]
    with ferryman.Client(trust_env=False) as client:
        with pytest.raises(DecompressionBombError):
            client.get(url)
        with pytest.raises(DecompressionBombError):
            client.get(url, stream=True).read()


# -- real data is not ----------------------------------------------------------------------------


@pytest.mark.parametrize("coding", ["gzip", "zstd"])
async def test_large_compressible_real_data_is_read_whole(
    bodies: BodyServer, real_data: bytes, coding: str
) -> None:
    if coding == "gzip":
        encoded = gzip.compress(real_data, 6)
    else:
        encoded = zstandard.ZstdCompressor(level=3).compress(real_data)
    ratio = len(real_data) / len(encoded)
    assert len(real_data) > THRESHOLD and 15 < ratio < 100, ratio  # past the threshold: checked
    url = bodies.put(f"/real/{coding}", encoded, coding)
    async with ferryman.AsyncClient(trust_env=False) as client:
        assert (await client.get(url)).content == real_data
        pieces = [piece async for piece in (await client.get(url, stream=True)).iter_bytes()]
        assert b"".join(pieces) == real_data


async def test_the_guard_is_configurable(bodies: BodyServer, real_data: bytes) -> None:
    url = bodies.put("/real/small", gzip.compress(real_data[: 8 * MiB], 6), "gzip")
    async with ferryman.AsyncClient(
        trust_env=False, max_decompression_ratio=10, decompression_bomb_threshold=MiB
    ) as client:
        with pytest.raises(DecompressionBombError, match="max_decompression_ratio=10"):
            await client.get(url)
    async with ferryman.AsyncClient(trust_env=False, max_decompression_ratio=1000) as client:
        assert len((await client.get(url)).content) == 8 * MiB


async def test_the_guard_can_be_switched_off(bombs: dict[str, tuple[str, int]]) -> None:
    url, size = bombs["gzip"]
    async with ferryman.AsyncClient(trust_env=False, max_decompression_ratio=None) as client:
        content = (await client.get(url)).content
    assert len(content) == size and content.count(0) == size


@pytest.mark.parametrize(
    "options",
    [
        {"max_decompression_ratio": 0},
        {"max_decompression_ratio": "100"},
        {"max_decompression_ratio": True},
        {"decompression_bomb_threshold": -1},
        {"decompression_bomb_threshold": 1.5},
        {"max_body_size": -1},
    ],
)
def test_bad_limits_are_refused_when_the_client_is_made(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(options))):
        ferryman.AsyncClient(**options)


# -- streaming stays bounded with the guard off ---------------------------------------------------


@pytest.mark.parametrize("name", list(BOMBS))
async def test_every_coding_streams_a_bomb_in_bounded_pieces(
    bombs: dict[str, tuple[str, int]], name: str
) -> None:
    url, size = bombs[name]
    total = largest = 0
    async with (
        ferryman.AsyncClient(trust_env=False, max_decompression_ratio=None) as client,
        await client.get(url, stream=True) as response,
    ):
        async for piece in response.iter_bytes():
            total += len(piece)
            largest = max(largest, len(piece))
    assert total == size
    assert largest <= PIECE_LIMIT


@pytest.mark.parametrize(("coding", "size_mib"), [("zstd", 1024), ("gzip", 256)])
async def test_streaming_a_bomb_keeps_memory_flat(
    bodies: BodyServer, coding: str, size_mib: int
) -> None:
    """With the guard off a consumer that drops each piece holds one piece at a time: zstd
    once handed back 1 GiB from one read of its 32 KiB body."""
    stacked = gzip.compress(bytes(MiB), 9) * size_mib  # gzip members: decoded 1 MiB at a time
    body = _zstd_bomb(size_mib) if coding == "zstd" else stacked
    url = bodies.put(f"/flat/{coding}", body, coding)
    total = 0
    grown = 0
    async with (
        ferryman.AsyncClient(trust_env=False, max_decompression_ratio=None) as client,
        await client.get(url, stream=True) as response,
    ):
        start = _rss()
        async for piece in response.iter_bytes():
            total += len(piece)
            if total % (16 * MiB) < len(piece):
                grown = max(grown, _rss() - start)
    assert total == size_mib * MiB
    assert grown < 64 * MiB, grown


# -- max_body_size -------------------------------------------------------------------------------


@pytest.mark.parametrize("coding", [None, "gzip"])
async def test_max_body_size_caps_what_is_read_whole(
    bodies: BodyServer, real_data: bytes, coding: str | None
) -> None:
    data = real_data[: 3 * MiB]
    url = bodies.put(f"/capped/{coding}", gzip.compress(data) if coding else data, coding)
    failures: list[BaseException | None] = []
    async with ferryman.AsyncClient(trust_env=False, max_body_size=MiB) as client:
        with pytest.raises(ResponseTooLarge, match="max_body_size=1,048,576") as caught:
            await client.get(url)
        assert caught.value.limit == MiB
        streamed = await client.get(
            url, stream=True, post_request=lambda r, exc=None: failures.append(exc)
        )
        async with streamed:
            with pytest.raises(ResponseTooLarge) as caught:
                await streamed.aread()
        assert failures == [caught.value]
        # Streamed, the body is the caller's to count: no cap.
        async with await client.get(url, stream=True) as response:
            assert b"".join([piece async for piece in response.iter_bytes()]) == data
    async with ferryman.AsyncClient(trust_env=False, max_body_size=len(data)) as client:
        assert (await client.get(url)).content == data  # exactly the cap is allowed


def test_the_sync_client_caps_bodies_too(bodies: BodyServer) -> None:
    url = bodies.put("/capped/sync", b"x" * (2 * MiB))
    with ferryman.Client(trust_env=False, max_body_size=MiB) as client:
        with pytest.raises(ResponseTooLarge):
            client.get(url)
        assert len(b"".join(client.get(url, stream=True).iter_bytes())) == 2 * MiB
