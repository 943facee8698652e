"""Slow and greedy clients: the proxy lets them go on time and keeps serving everyone else.

Issue 20, items 2 to 4: a head that never ends (one endless header value, or a slowloris head),
a body that stops or trickles, a kept-alive connection left idle, a client that reads nothing,
and uploaders slow enough to hold every upstream connection. The ``tight`` proxy sets the
design's ``client_timeout`` low (head 1 s, body idle 1 s, minimum body rate 500 B/s, keep-alive
1 s, send 2 s), so each deadline is seconds away; the waits below are bounds on a hang, with a
margin for a loaded machine, not measurements.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import socket
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import pytest

from tests.reliability.clients import (
    Outcome,
    connect,
    ends,
    error_payload,
    exchange,
    judge,
    probe,
    read_outcome,
    request,
    survives,
    trickle,
)
from tests.reliability.hostile_upstream import HostileUpstream, new_rid
from tests.reliability.ledger import LEDGER, sample_process
from tests.reliability.proxies import POOL_TIMEOUT, ROADS, RunningProxy, endpoint_name
from tests.servers.slow_upstream import wait_until

#: Seconds past a configured deadline within which the proxy must have acted.
MARGIN = 3.0
#: The slowest a normal request may be answered while an attack goes on: not a benchmark, a
#: bound on "the proxy stalled" (the issue saw multi-second answers).
RESPONSIVE = 1.0


# -- heads -------------------------------------------------------------------------------------


async def test_endless_header_values_are_cut_at_the_limit_while_others_are_served(
    plain: RunningProxy, hostile: HostileUpstream
) -> None:
    """For 1.5 s, one attacker after another sends ``X-Long:`` and endless ``a`` in 4 KiB
    writes (at most 4 MiB each): each gets a 431 at the 8 KiB header limit, and another
    client's requests, meanwhile, are answered promptly."""
    port = plain.port("api")
    latencies: list[float] = []
    outcomes: list[tuple[str, Outcome, int]] = []

    async def attack() -> None:
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            rid = new_rid("endless-value")
            first = b"GET /echo?rid=%s HTTP/1.1\r\nHost: proxy.test\r\nX-Long: " % rid.encode()
            outcome, sent = await trickle(port, first, b"a" * 4096, count=1024, pause=0, timeout=10)
            outcomes.append((rid, outcome, sent))
            if outcome.status != 431:
                return

    async def others() -> None:
        while True:
            started = time.monotonic()
            await exchange(port, request(new_rid("meanwhile")), timeout=10)
            latencies.append(time.monotonic() - started)
            await asyncio.sleep(0.02)

    measuring = asyncio.create_task(others())
    try:
        await attack()
    finally:
        measuring.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await measuring
    LEDGER.request_vectors += len(outcomes)
    refusals = [
        await judge(hostile, rid, outcome, 431, f"endless header value ({sent} bytes sent)")
        for rid, outcome, sent in outcomes
    ]
    assert await survives(port)
    for refusal in refusals:
        refusal.check()
    assert latencies, "no other request was answered during the attack"
    assert max(latencies) < RESPONSIVE, f"others waited up to {max(latencies):.2f}s"


async def test_a_trickling_head_gets_408_and_is_closed(
    tight: RunningProxy, hostile: HostileUpstream
) -> None:
    """A slowloris head, one byte every 0.2 s: 408 once ``client_timeout.head`` (1 s) passes."""
    port = tight.port("api")
    rid = new_rid("slowloris")
    LEDGER.request_vectors += 1
    first = b"GET /echo?rid=%s HTTP/1.1\r\nHost: proxy.test\r\nX-Slow: " % rid.encode()
    outcome, _ = await trickle(port, first, b"a", count=100, pause=0.2, timeout=1 + MARGIN)
    refusal = await judge(hostile, rid, outcome, 408, "slowloris head")
    assert await survives(port)
    refusal.check()


async def test_many_trickling_heads_are_all_let_go_and_the_proxy_keeps_serving(
    tight: RunningProxy,
) -> None:
    """200 slowloris connections: others are served meanwhile, every one of them is closed
    after the head timeout, and the proxy's open files come back down."""
    port = tight.port("api")
    before = sample_process(tight.pid)
    LEDGER.request_vectors += 200
    clients = [await connect(port) for _ in range(200)]
    try:
        for client in clients:
            await client.send(b"GET /echo HTTP/1.1\r\nHost: pro")
        served = await probe(port)
        ended = await asyncio.gather(*(ends(client.reader, 1 + 2 * MARGIN) for client in clients))
    finally:
        for client in clients:
            client.close()
    # Closed, with a 408 or (where the proxy found no way to answer) without a word.
    let_go = [
        data is not None and (not data or data.startswith(b"HTTP/1.1 408 ")) for data in ended
    ]
    LEDGER.rejected += sum(let_go)
    assert served, "a normal request was not answered while 200 heads trickled"
    assert all(let_go), f"{let_go.count(False)} of 200 trickling heads: {set(map(str, ended))}"
    assert before is not None
    settled = await wait_until(
        lambda: (sample_process(tight.pid) or before).fds <= before.fds + 5, MARGIN
    )
    assert settled, f"fds {before.fds} -> {sample_process(tight.pid)}"


async def test_an_idle_kept_alive_connection_is_closed_silently(tight: RunningProxy) -> None:
    client = await connect(tight.port("api"))
    try:
        await client.send(request(new_rid("keepalive")))
        outcome = await read_outcome(client.reader)
        assert outcome.status == 200, outcome.describe()
        started = time.monotonic()
        data = await asyncio.wait_for(client.reader.read(65536), 1 + MARGIN)
    except TimeoutError:
        pytest.fail("the idle connection is still open past client_timeout.keepalive")
    finally:
        client.close()
    assert data == b"", f"bytes on an idle connection: {data[:200]!r}"
    assert time.monotonic() - started > 0.5  # idle, not closed after the answer


# -- bodies ------------------------------------------------------------------------------------


@pytest.mark.parametrize("road", ROADS)
@pytest.mark.parametrize(
    ("how", "pause"),
    [("stops", 60.0), ("trickles under the minimum rate", 0.2)],
    ids=["stops", "trickles"],
)
async def test_a_slow_body_gets_408_and_is_closed_before_reaching_the_upstream(
    tight: RunningProxy, hostile: HostileUpstream, road: str, how: str, pause: float
) -> None:
    """A body of 1000 bytes (under ``request_buffer``, so it is read before an upstream
    connection is taken) that stops after 10 bytes, or comes one byte every 0.2 s (never idle
    for ``body_idle``, far under ``body_min_rate``)."""
    port = tight.port(endpoint_name("api", road))
    rid = new_rid("slow-body")
    LEDGER.request_vectors += 1
    first = request(rid, method=b"POST", target=b"/sink", headers=b"Content-Length: 1000\r\n")
    outcome, sent = await trickle(
        port, first + b"x" * 10, b"x", count=990, pause=pause, timeout=1 + 2 * MARGIN
    )
    label = f"a body that {how}, {sent} bytes after the first 10 ({road})"
    refusal = await judge(hostile, rid, outcome, 408, label)
    assert await survives(port)
    refusal.check()


async def test_a_client_that_reads_nothing_is_let_go(tight: RunningProxy) -> None:
    """16 MiB asked for, nothing read: after ``client_timeout.send`` (2 s) with the client's
    socket full, the proxy closes the connection instead of holding the answer. (A plain
    socket: an asyncio stream would read on its own meanwhile.)"""
    size = 16 * 1024 * 1024
    loop = asyncio.get_running_loop()
    received, ended = 0, False
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await loop.sock_connect(sock, ("127.0.0.1", tight.port("api")))
        LEDGER.request_vectors += 1
        target = b"/big?size=%d" % size
        await loop.sock_sendall(sock, request(new_rid("reads-nothing"), target=target))
        await asyncio.sleep(2 + MARGIN)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)  # now read it fast
        with contextlib.suppress(TimeoutError):
            try:
                async with asyncio.timeout(15):
                    while data := await loop.sock_recv(sock, 1 << 20):
                        received += len(data)
            except ConnectionError:
                pass
            ended = True
    if ended and received < size:
        LEDGER.rejected += 1
    assert ended, f"the connection is still open ({received} bytes read after the wait)"
    assert received < size, "the proxy held the whole answer for a client that read nothing"
    assert await survives(tight.port("api"))


# -- upstream connections --------------------------------------------------------------------


@asynccontextmanager
async def uploaders(port: int, count: int, length: int, sent: int) -> AsyncIterator[Sequence[str]]:
    """``count`` POSTs of ``length`` bytes that send ``sent`` bytes of it and stall; yields their
    markers, closes them at the end."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, 8192) if hard != resource.RLIM_INFINITY else 8192
    if soft < wanted:  # this process holds both ends' sockets: the clients and the upstream
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    rids = [new_rid("uploader") for _ in range(count)]
    clients = []
    try:
        for rid in rids:
            client = await connect(port)
            clients.append(client)
            head = request(
                rid, method=b"POST", target=b"/sink", headers=b"Content-Length: %d\r\n" % length
            )
            await client.send(head + b"u" * sent)
        yield rids
    finally:
        for client in clients:
            client.close()


async def test_slow_uploaders_holding_every_upstream_connection_do_not_hang_a_get(
    tight: RunningProxy, hostile: HostileUpstream
) -> None:
    """520 uploads past ``request_buffer`` (1 KiB here) stall with the 512 upstream connections
    taken: a normal GET gets its answer or a JSON 503 once the pool timeout (1 s) passes."""
    port = tight.port("pool")
    async with uploaders(port, 520, 100_000, 2048):
        await wait_until(lambda: hostile.open_connections() >= 500, 5)
        started = time.monotonic()
        outcome = await exchange(port, request(new_rid("pool-get")), timeout=POOL_TIMEOUT + 10)
        waited = time.monotonic() - started
    assert outcome.status in (200, 503), outcome.describe()
    if outcome.status == 503:
        assert outcome.response is not None and error_payload(outcome.response) is not None
    assert waited < POOL_TIMEOUT + MARGIN, f"the GET waited {waited:.1f}s"
    assert await survives(port)


async def test_slow_small_uploads_take_no_upstream_connection(
    tight: RunningProxy, hostile: HostileUpstream
) -> None:
    """520 uploads of 1000 bytes (under the default ``request_buffer``) that stall after 10:
    none reaches the upstream before its body is whole, and a GET is answered as usual."""
    port = tight.port("uploads")
    async with uploaders(port, 520, 1000, 10) as rids:
        await asyncio.sleep(0.5)
        started = time.monotonic()
        outcome = await exchange(port, request(new_rid("uploads-get")), timeout=10)
        waited = time.monotonic() - started
        reached = [rid for rid in rids if hostile.seen(rid)]
    assert outcome.status == 200, outcome.describe()
    assert waited < RESPONSIVE, f"the GET waited {waited:.1f}s"
    assert not reached, f"{len(reached)} unfinished uploads took upstream connections"
    assert await survives(port)


# -- the body limit ----------------------------------------------------------------------------


@pytest.mark.parametrize("road", ROADS)
@pytest.mark.parametrize("framing", ["Content-Length", "chunked"])
async def test_a_body_over_the_limit_is_413_before_reaching_the_upstream(
    tight: RunningProxy, hostile: HostileUpstream, road: str, framing: str
) -> None:
    """``limits.body`` is 1024 on the tight proxy: 2000 bytes, announced or counted."""
    port = tight.port(endpoint_name("api", road))
    rid = new_rid("body-limit")
    LEDGER.request_vectors += 1
    if framing == "chunked":
        chunk = b"3e8\r\n" + b"b" * 1000 + b"\r\n"
        headers, body = b"Transfer-Encoding: chunked\r\n", chunk + chunk + b"0\r\n\r\n"
    else:
        headers, body = b"Content-Length: 2000\r\n", b"b" * 2000
    outcome = await exchange(
        port, request(rid, method=b"POST", target=b"/sink", headers=headers, body=body)
    )
    refusal = await judge(hostile, rid, outcome, 413, f"body over the limit, {framing} ({road})")
    assert await survives(port)
    refusal.check()
