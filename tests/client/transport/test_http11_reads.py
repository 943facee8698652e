"""The HTTP/1.1 connection fed by hand: however a response is cut into reads, the same
response comes out. No sockets: a recording transport stands in for the network.

The connections of one event loop share their read buffer, so ``deliver`` scribbles over it
after every read, as the next read of another connection would: a connection that kept a view
of the buffer instead of a copy gets garbage here.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ferryman import RemoteProtocolError, Request
from ferryman.client.transport.http11 import AsyncHTTP11Connection
from ferryman.http.headers import parse_header_block


class RecordingTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = False

    def write(self, data: Any) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


def deliver(conn: AsyncHTTP11Connection, data: bytes) -> None:
    """What the event loop does with bytes from the socket: fill get_buffer, report the count;
    then another connection's read lands in the same buffer."""
    while data:
        buffer = conn.get_buffer(-1)
        n = min(len(buffer), len(data))
        buffer[:n] = data[:n]
        conn.buffer_updated(n)
        buffer[:n] = b"\xff" * n
        data = data[n:]


RESPONSE = (
    b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
    b"HTTP/1.1 201 Created Fine\r\nContent-Type: text/plain\r\nX-Empty:\r\n"
    b"X-Multi: a\r\nX-Multi:  b  \r\nContent-Length: 11\r\n\r\nhello world"
)


async def exchange(cuts: list[int]) -> tuple[int, bytes, list[tuple[bytes, bytes]], bytes]:
    loop = asyncio.get_running_loop()
    conn = AsyncHTTP11Connection(("http", b"example.test", 80), loop)
    conn.connection_made(RecordingTransport())
    pending = asyncio.ensure_future(
        conn.handle_async_request(Request("GET", "http://example.test/"))
    )
    await asyncio.sleep(0)
    previous = 0
    for cut in [*sorted(set(cuts)), len(RESPONSE)]:
        deliver(conn, RESPONSE[previous:cut])
        previous = cut
        await asyncio.sleep(0)
    response = await pending
    body = await response.aread()
    return (
        response.status_code,
        response.extensions["reason_phrase"],
        response.headers.raw,
        body,
    )


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=len(RESPONSE) - 1), max_size=12))
def test_any_split_of_the_response_gives_the_same_result(cuts: list[int]) -> None:
    status, reason, headers, body = asyncio.run(exchange(cuts))
    assert status == 201
    assert reason == b"Created Fine"
    assert headers == [
        (b"Content-Type", b"text/plain"),
        (b"X-Empty", b""),
        (b"X-Multi", b"a"),
        (b"X-Multi", b"b"),
        (b"Content-Length", b"11"),
    ]
    assert body == b"hello world"


def test_parse_header_block_keeps_case_order_and_trims_whitespace() -> None:
    block = b"HTTP/1.1 200 OK\r\nA: 1\r\nb:2\r\nC:  three words \t\r\nA: again"
    assert parse_header_block(block) == [
        (b"A", b"1"),
        (b"b", b"2"),
        (b"C", b"three words"),
        (b"A", b"again"),
    ]
    assert parse_header_block(b"HTTP/1.1 204 No Content") == []


CHUNKED = (
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Who: second\r\n\r\n"
    b"5\r\nchunk\r\n7\r\ned body\r\n0\r\n\r\n"
)


async def interleaved(cuts: list[int]) -> tuple[bytes, bytes, bytes | None, bytes | None]:
    """Two connections of one loop, their responses' reads alternating."""
    loop = asyncio.get_running_loop()
    first = AsyncHTTP11Connection(("http", b"example.test", 80), loop)
    second = AsyncHTTP11Connection(("http", b"example.test", 80), loop)
    assert first.get_buffer(-1).obj is second.get_buffer(-1).obj  # one buffer per loop
    pending = []
    for conn in (first, second):
        conn.connection_made(RecordingTransport())
        pending.append(
            asyncio.ensure_future(conn.handle_async_request(Request("GET", "http://example.test/")))
        )
    await asyncio.sleep(0)
    positions = [0, 0]
    responses = [RESPONSE, CHUNKED]
    for cut in cuts:
        index = cut % 2
        conn, data = (first, second)[index], responses[index]
        end = min(len(data), positions[index] + cut // 2 + 1)
        deliver(conn, data[positions[index] : end])
        positions[index] = end
    deliver(first, RESPONSE[positions[0] :])
    deliver(second, CHUNKED[positions[1] :])
    one, two = [await future for future in pending]
    return (
        await one.aread(),
        await two.aread(),
        one.headers.get("x-multi"),
        two.headers.get("x-who"),
    )


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=40), max_size=20))
def test_connections_sharing_the_read_buffer_keep_their_own_bytes(cuts: list[int]) -> None:
    assert asyncio.run(interleaved(cuts)) == (b"hello world", b"chunked body", "a, b", "second")


# -- the limits of a response head (issue 21) --------------------------------------------------

LIMITS = (1024, 10)


def heads(size: int, fields: int) -> bytes:
    """A 103 with one field, then the answer: ``size`` bytes of heads in all (blank lines
    included) and ``fields`` header fields in all, then a 2-byte body."""
    interim = b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"
    lines = [b"HTTP/1.1 200 OK\r\n", b"Content-Length: 2\r\n"]
    lines += [b"X-%d: v\r\n" % number for number in range(fields - 3)]
    padding = size - len(interim) - sum(map(len, lines)) - len(b"X-Pad: \r\n\r\n")
    return interim + b"".join(lines) + b"X-Pad: " + b"p" * padding + b"\r\n\r\nok"


async def limited_exchange(data: bytes, cuts: list[int]) -> str:
    """``data`` in reads cut at ``cuts`` to a connection with ``LIMITS``: the body, or the
    error's message."""
    loop = asyncio.get_running_loop()
    conn = AsyncHTTP11Connection(("http", b"example.test", 80), loop, LIMITS)
    conn.connection_made(RecordingTransport())
    pending = asyncio.ensure_future(
        conn.handle_async_request(Request("GET", "http://example.test/"))
    )
    await asyncio.sleep(0)
    previous = 0
    for cut in [*sorted(set(cuts)), len(data)]:
        deliver(conn, data[previous:cut])
        previous = cut
        await asyncio.sleep(0)
    try:
        response = await pending
    except RemoteProtocolError as error:
        return str(error)
    return (await response.aread()).decode()


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=1024), max_size=12))
def test_the_limits_hold_however_the_heads_are_cut_into_reads(cuts: list[int]) -> None:
    """Exactly at both limits, interim head included: taken; a byte or a field more: refused,
    whatever the reads (a line end split between two reads included)."""
    assert asyncio.run(limited_exchange(heads(1024, 10), cuts)) == "ok"
    assert asyncio.run(limited_exchange(heads(1025, 10), cuts)) == (
        "the server sent a response head larger than 1024 bytes (max_response_head_size)"
    )
    assert asyncio.run(limited_exchange(heads(1024, 11), cuts)) == (
        "the server sent more than 10 headers (max_response_headers)"
    )


async def test_an_endless_head_holds_at_most_the_limit_and_one_read() -> None:
    """Reads of 64 KiB, the default limit of 64 KiB: the second read ends it, and what the
    connection kept of the head never passed the limit and a read."""
    loop = asyncio.get_running_loop()
    conn = AsyncHTTP11Connection(("http", b"example.test", 80), loop)
    conn.connection_made(RecordingTransport())
    pending = asyncio.ensure_future(
        conn.handle_async_request(Request("GET", "http://example.test/"))
    )
    await asyncio.sleep(0)
    line = b"X-Pad: " + b"p" * 1017 + b"\r\n"  # 1 KiB
    read = b"HTTP/1.1 200 OK\r\n" + line * 64
    reads = 0
    while not pending.done() and reads < 100:
        deliver(conn, read[: 64 * 1024])
        read = line * 64
        reads += 1
        assert sum(map(len, conn._head_parts)) <= 2 * 64 * 1024
        await asyncio.sleep(0)
    assert reads == 2
    with pytest.raises(RemoteProtocolError, match="larger than 65536 bytes"):
        await pending
