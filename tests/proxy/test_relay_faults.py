"""The fast relay when things go wrong: refused, slow, broken upstreams, clients that leave.

What a client must see: a JSON 502 or 504 that says which upstream failed and how, or (once an
answer has started) a cut connection, never a truncated body passed off as complete; and the
upstream connections behind a failure are closed, not reused.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.servers.relay_harness import StartRelay
from tests.servers.slow_upstream import (
    RawResponse,
    ScriptedUpstream,
    pattern,
    read_response,
    roundtrip,
    wait_until,
)

ROOT = Path(__file__).resolve().parents[2]


def refused_port() -> int:
    """A port nothing listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def nothing_more(reader: asyncio.StreamReader, within: float = 0.3) -> bool:
    """True when no byte arrives on ``reader`` for ``within`` s (or it ends)."""
    try:
        return await asyncio.wait_for(reader.read(1), within) == b""
    except TimeoutError:
        return True


def error_of(response: RawResponse) -> dict[str, Any]:
    assert response.header("content-type") == "application/json"
    payload = response.json()
    assert isinstance(payload, dict)
    assert payload["status"] == response.status
    return payload


# -- connecting ------------------------------------------------------------------------------


async def test_a_refused_upstream_is_a_502_naming_it(start_relay: StartRelay) -> None:
    port = refused_port()
    relay = await start_relay(f"http://127.0.0.1:{port}")
    reader, writer = await relay.connect()
    for _ in range(2):  # the client's connection survives: its request was read whole
        writer.write(b"GET /x HTTP/1.1\r\nHost: p\r\n\r\n")
        response = await read_response(reader)
        assert response.status == 502
        assert error_of(response)["message"] == (
            f"the upstream http://127.0.0.1:{port} refused the connection"
        )
    writer.close()


async def test_a_refused_first_upstream_lets_the_next_one_answer(
    start_relay: StartRelay, upstream: ScriptedUpstream
) -> None:
    relay = await start_relay(f"http://127.0.0.1:{refused_port()}", upstream.url)
    for _ in range(4):  # round robin starts on each of them in turn: all answered
        response = await relay.get(b"/echo")
        assert response.status == 200, response


async def test_every_upstream_refused_is_a_502_naming_the_endpoint_and_the_last(
    start_relay: StartRelay,
) -> None:
    first, second = refused_port(), refused_port()
    relay = await start_relay(f"http://127.0.0.1:{first}", f"http://127.0.0.1:{second}")
    response = await relay.get(b"/")
    assert response.status == 502
    message = error_of(response)["message"]
    assert "every upstream of 'test' failed" in message
    assert "refused the connection" in message
    assert f"127.0.0.1:{first}" in message or f"127.0.0.1:{second}" in message


@pytest.mark.parametrize(
    ("path", "message"),
    [
        (b"/hangup", "closed the connection before answering"),
        (b"/garbage", "sent a malformed response"),
        # A head that never ends: refused past 64 KiB instead of held in memory.
        (b"/endless-head", "sent a response head larger than 65536 bytes"),
    ],
    ids=["closed before answering", "malformed", "head without end"],
)
async def test_a_broken_upstream_answer_is_a_502_and_its_connection_closed(
    start_relay: StartRelay, upstream: ScriptedUpstream, path: bytes, message: str
) -> None:
    relay = await start_relay(upstream.url)
    response = await relay.get(path, timeout=10)
    assert response.status == 502
    assert message in error_of(response)["message"]
    await wait_until(lambda: upstream.open_connections() == 0)


@pytest.mark.parametrize("size", [40, 70000], ids=["parsed body", "counted body"])
async def test_bytes_past_an_answer_reach_no_other_request(
    start_relay: StartRelay, upstream: ScriptedUpstream, size: int
) -> None:
    """An upstream that sends more than its Content-Length: the surplus, shaped like an answer,
    must not become the answer of the request that waits for the connection next."""
    relay = await start_relay(upstream.url, max_connections=1)
    first = asyncio.create_task(relay.get(b"/overlong?size=%d" % size, timeout=5))
    await asyncio.sleep(0.05)  # the second request waits for the only connection
    second = asyncio.create_task(relay.get(b"/echo?second", timeout=5))
    answer = await first
    assert answer.status == 200 and answer.body == b"a" * size
    response = await second
    assert response.body != b"smuggled"
    assert response.status == 200
    assert response.json()["target"] == "/echo?second"  # type: ignore[index]


# -- timeouts --------------------------------------------------------------------------------


async def test_a_slow_upstream_is_a_504_and_its_connection_is_closed(
    start_relay: StartRelay, upstream: ScriptedUpstream
) -> None:
    relay = await start_relay(upstream.url, read_timeout=0.5)
    upstream.reset()
    reader, writer = await relay.connect()
    started = time.monotonic()
    writer.write(b"GET /slow?delay=5 HTTP/1.1\r\nHost: p\r\n\r\n")
    response = await read_response(reader)
    assert response.status == 504
    assert time.monotonic() - started < 3
    assert error_of(response)["message"] == (
        f"the upstream http://127.0.0.1:{upstream.port} did not answer in time"
    )
    connection = upstream.requests[-1].connection
    assert await wait_until(lambda: connection in upstream.abandoned)
    # The client's own connection is still good.
    writer.write(b"GET /echo HTTP/1.1\r\nHost: p\r\n\r\n")
    assert (await read_response(reader)).status == 200
    writer.close()


async def test_a_timeout_in_the_middle_of_a_body_cuts_the_client(
    start_relay: StartRelay, upstream: ScriptedUpstream
) -> None:
    relay = await start_relay(upstream.url, read_timeout=0.5)
    reader, writer = await relay.connect()
    writer.write(b"GET /slow-body?delay=5 HTTP/1.1\r\nHost: p\r\n\r\n")
    with pytest.raises((asyncio.IncompleteReadError, ConnectionError)):
        await read_response(reader, timeout=4)
    writer.close()


async def test_a_slow_but_steady_body_is_not_timed_out(
    start_relay: StartRelay, upstream: ScriptedUpstream
) -> None:
    """The read timeout is per read, not for the whole answer."""
    relay = await start_relay(upstream.url, read_timeout=0.5)
    response = await relay.get(b"/drip?n=15&delay=0.1", timeout=10)
    assert response.body == b"".join(b"drop%d;" % i for i in range(15))


# -- broken answers --------------------------------------------------------------------------


@pytest.mark.parametrize("route", [b"/cut", b"/cut-chunked"])
async def test_an_upstream_closing_mid_body_cuts_the_client_connection(
    start_relay: StartRelay, upstream: ScriptedUpstream, route: bytes
) -> None:
    relay = await start_relay(upstream.url)
    reader, writer = await relay.connect()
    writer.write(b"GET %s HTTP/1.1\r\nHost: p\r\n\r\n" % route)
    with pytest.raises((asyncio.IncompleteReadError, ConnectionError)):
        await read_response(reader, timeout=5)
    writer.close()


async def test_a_stale_kept_alive_connection_is_retried_transparently(
    start_relay: StartRelay, upstream: ScriptedUpstream
) -> None:
    relay = await start_relay(upstream.url)
    before = upstream.connections
    assert (await relay.get(b"/stale")).body == b"fresh"
    # The upstream closes that connection as this request arrives on it.
    response = await relay.get(b"/echo?after-stale")
    assert response.status == 200
    assert response.json()["target"] == "/echo?after-stale"  # type: ignore[index]
    assert upstream.connections - before == 2
    assert [r.target for r in upstream.requests].count("/echo?after-stale") == 1


async def test_a_stale_connection_is_not_retried_with_a_body(
    start_relay: StartRelay, upstream: ScriptedUpstream
) -> None:
    """A body already streamed cannot be sent again: the client hears of the failure."""
    relay = await start_relay(upstream.url)
    assert (await relay.get(b"/stale")).body == b"fresh"
    response = await roundtrip(
        relay.port, b"POST /echo HTTP/1.1\r\nHost: p\r\nContent-Length: 4\r\n\r\nbody"
    )
    assert response.status == 502
    assert "closed the connection before answering" in error_of(response)["message"]


@pytest.mark.parametrize(
    ("request_line", "route", "answered"),
    [
        (b"POST /act/close-body HTTP/1.1\r\nContent-Length: 0", "close-body", 200),
        (b"GET /act/close-body HTTP/1.1", "close-body", 200),
        (b"DELETE /act/close-body HTTP/1.1", "close-body", 200),
        (b"GET /act/cut HTTP/1.1", "cut", None),
        (b"POST /act/cut HTTP/1.1\r\nContent-Length: 0", "cut", None),
        (b"GET /act/cut-head HTTP/1.1", "cut-head", 502),
        (b"DELETE /act/cut-head HTTP/1.1", "cut-head", 502),
    ],
    ids=[
        "POST close-delimited",
        "GET close-delimited",
        "DELETE close-delimited",
        "GET short of its length",
        "POST short of its length",
        "GET cut mid-head",
        "DELETE cut mid-head",
    ],
)
async def test_a_request_whose_answer_has_begun_is_never_sent_again(
    start_relay: StartRelay,
    upstream: ScriptedUpstream,
    request_line: bytes,
    route: str,
    answered: int | None,
) -> None:
    """Issue 20, item 1: on a reused upstream connection, an answer that began and then
    broke off (or ended with the connection, as a close-delimited body does) must not send the
    request again; the client gets that one answer, or a 502 when nothing of it was relayed,
    or a cut connection when part of it was."""
    relay = await start_relay(upstream.url)
    upstream.reset()
    reader, writer = await relay.connect()
    writer.write(b"GET /warm HTTP/1.1\r\nHost: p\r\n\r\n")  # opens the connection to reuse
    assert (await read_response(reader)).status == 200
    writer.write(request_line + b"\r\nHost: p\r\n\r\n")
    if answered is None:
        # Part of the body was relayed: the client's connection is cut, never completed.
        with pytest.raises((asyncio.IncompleteReadError, ConnectionError)):
            await read_response(reader, timeout=5)
    else:
        response = await read_response(reader, timeout=5)
        assert response.status == answered
        if answered == 200:
            assert response.body == b"complete body"
        # Nothing follows the one answer: no second head spliced after it.
        assert await nothing_more(reader)
    assert upstream.requests[0].connection == upstream.requests[1].connection  # reused
    await asyncio.sleep(0.2)  # a second attempt would have reached the upstream by now
    assert [r.target for r in upstream.requests].count(f"/act/{route}") == 1
    writer.close()


async def test_a_non_idempotent_request_on_a_stale_connection_is_not_sent_again(
    start_relay: StartRelay, upstream: ScriptedUpstream
) -> None:
    """The upstream closed the kept-alive connection as the POST reached it: whether it acted
    on it cannot be known, so the client hears of the failure instead of a second POST."""
    relay = await start_relay(upstream.url)
    assert (await relay.get(b"/stale")).body == b"fresh"
    upstream.reset()
    response = await roundtrip(
        relay.port, b"POST /echo?once HTTP/1.1\r\nHost: p\r\nContent-Length: 0\r\n\r\n"
    )
    assert response.status == 502
    await asyncio.sleep(0.2)
    assert len(upstream.requests) == 0 or [r.target for r in upstream.requests] == ["/echo?once"]


# -- clients that leave ----------------------------------------------------------------------


async def test_a_client_leaving_mid_response_closes_the_upstream_connection(
    start_relay: StartRelay, upstream: ScriptedUpstream
) -> None:
    relay = await start_relay(upstream.url)
    upstream.reset()
    before = upstream.connections
    reader, writer = await relay.connect()
    writer.write(b"GET /drip?n=200&delay=0.05 HTTP/1.1\r\nHost: p\r\n\r\n")
    await read_response(reader, head_only=True)
    await asyncio.wait_for(reader.readuntil(b"drop1;"), 5)
    writer.close()
    connection = upstream.requests[-1].connection
    assert await wait_until(lambda: connection in upstream.abandoned)
    # Not reused: the next request opens a new connection.
    assert (await relay.get(b"/echo")).status == 200
    assert upstream.connections - before == 2


async def test_a_client_leaving_while_the_upstream_thinks_closes_it(
    start_relay: StartRelay, upstream: ScriptedUpstream
) -> None:
    relay = await start_relay(upstream.url)
    upstream.reset()
    _, writer = await relay.connect()
    writer.write(b"GET /slow?delay=5 HTTP/1.1\r\nHost: p\r\n\r\n")
    assert await wait_until(lambda: bool(upstream.requests))
    writer.close()
    connection = upstream.requests[-1].connection
    assert await wait_until(lambda: connection in upstream.abandoned, 3)


async def test_a_client_leaving_while_queued_for_a_connection_frees_its_place(
    start_relay: StartRelay, upstream: ScriptedUpstream
) -> None:
    relay = await start_relay(upstream.url, max_connections=1)
    upstream.reset()
    first = asyncio.ensure_future(relay.get(b"/slow?delay=0.5"))
    assert await wait_until(lambda: bool(upstream.requests))
    _, writer = await relay.connect()
    writer.write(b"GET /echo?gave-up HTTP/1.1\r\nHost: p\r\n\r\n")  # waits for the one connection
    await asyncio.sleep(0.1)
    writer.close()
    assert (await first).body == b"late"
    response = await relay.get(b"/echo?next")
    assert response.json()["target"] == "/echo?next"  # type: ignore[index]
    assert "/echo?gave-up" not in [r.target for r in upstream.requests]


async def test_a_slow_reading_client_does_not_leave_a_paused_connection_in_the_pool(
    start_relay: StartRelay, upstream: ScriptedUpstream
) -> None:
    """A client slower than the upstream pauses reading from the upstream; the connection must
    read again once that answer is complete, or the next request on it never hears back.
    Whether the pause falls on the answer's last read depends on sizes and timing: several
    sizes are tried, and each follow-up request must be answered at once."""
    relay = await start_relay(upstream.url, read_timeout=1)
    loop = asyncio.get_running_loop()
    for size in [6 * 2**20 - k * 4099 for k in range(24)]:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await loop.sock_connect(sock, ("127.0.0.1", relay.port))
        reader, writer = await asyncio.open_connection(sock=sock)
        writer.write(b"GET /big?size=%d&once=1 HTTP/1.1\r\nHost: p\r\n\r\n" % size)
        response = await read_response(reader, head_only=True)
        assert response.header("content-length") == str(size)
        left = size
        while left:  # slowly, so the relay's buffer towards this client stays full
            data = await asyncio.wait_for(reader.read(min(left, 65536)), 5)
            assert data
            left -= len(data)
            await asyncio.sleep(0.0005)
        writer.close()
        follow_up = await relay.get(b"/echo?after-big", timeout=5)
        assert follow_up.status == 200, (size, follow_up)


# -- memory ----------------------------------------------------------------------------------


def _rss_peak_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
async def test_50_mib_each_way_does_not_grow_the_relay_process(
    upstream: ScriptedUpstream,
) -> None:
    """The relay in its own process (benchmarks/proxy_relay.py): its peak memory after 50 MiB
    up and 50 MiB down stays near what one small request cost."""
    port = refused_port()
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "benchmarks" / "proxy_relay.py"), str(port), upstream.url],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                warm = await roundtrip(port, b"GET /big?size=1048576 HTTP/1.1\r\nHost: p\r\n\r\n")
                break
            except OSError:
                assert time.monotonic() < deadline, "the relay did not start"
                await asyncio.sleep(0.05)
        assert len(warm.body) == 1048576
        baseline = _rss_peak_kib(process.pid)
        size = 50 * 1024 * 1024
        data = pattern(size)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"PUT /sink HTTP/1.1\r\nHost: p\r\nContent-Length: %d\r\n\r\n" % size)
        for start in range(0, size, 1 << 20):
            writer.write(data[start : start + (1 << 20)])
            await writer.drain()
        assert (await read_response(reader, timeout=30)).body.split()[0] == b"%d" % size
        writer.write(b"GET /big?size=%d HTTP/1.1\r\nHost: p\r\n\r\n" % size)
        response = await read_response(reader, timeout=30)
        assert len(response.body) == size
        writer.close()
        growth_mib = (_rss_peak_kib(process.pid) - baseline) / 1024
        assert growth_mib < 16, f"the relay's peak memory grew by {growth_mib:.1f} MiB"
    finally:
        process.terminate()
        process.wait(timeout=10)


async def test_an_answer_relayed_while_draining_says_connection_close(
    start_relay: StartRelay, upstream: ScriptedUpstream
) -> None:
    """Issue 20, item 12: the server starts draining while a request is at the upstream; its
    answer must tell the client the connection ends with it."""
    relay = await start_relay(upstream.url)
    upstream.reset()
    reader, writer = await relay.connect()
    writer.write(b"GET /slow?delay=0.3 HTTP/1.1\r\nHost: p\r\n\r\n")
    assert await wait_until(lambda: bool(upstream.requests))
    relay.state.start_closing()
    response = await read_response(reader)
    assert response.body == b"late"
    assert response.header("connection") == "close"
    assert await asyncio.wait_for(reader.read(), 3) == b""
    writer.close()
