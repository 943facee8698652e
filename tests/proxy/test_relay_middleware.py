"""Endpoint middleware (and async proxy filter listeners) served by the fast relay
(``ferryman.proxy.relay_middleware``).

The scenarios of ``test_middleware.py``, against a ProxyServer rather than the handler's ASGI
face, each with generator (inline) and async generator (a task per request) middleware: the
kernel (the relay's ``fallback``) sees none of the requests, which every test checks.
"""

from __future__ import annotations

import asyncio
import json
import tracemalloc
from collections.abc import Callable
from typing import Any

import pytest

from ferryman.http import Response
from ferryman.http.url import URL
from ferryman.proxy import HTTPProxyHandler, ProxyContext, ProxyEndpoints
from ferryman.proxy.events import EVENT_FILTER_PROXY_RESPONSE, ProxyFilterEvent
from ferryman.proxy.server import ProxyServer
from ferryman.proxy.transactions import EVENT_TRANSACTION_FINISHED, EVENT_TRANSACTION_STARTED
from tests.proxy import test_parity
from tests.proxy.test_parity import RecordingUpstream, Serve, get
from tests.proxy.test_relay_events import count_general, send, upstream_bytes

upstream = test_parity.upstream
serve = test_parity.serve

KINDS = ("generator", "async generator")
Step = Callable[[ProxyContext], None]


def middleware(kind: str, before: Step | None = None, after: Step | None = None) -> Any:
    """A middleware of ``kind`` doing ``before`` on the way in and ``after`` on the way out."""
    if kind == "generator":

        def sync(ctx: ProxyContext) -> Any:
            if before is not None:
                before(ctx)
            yield
            if after is not None:
                after(ctx)

        return sync

    async def asynchronous(ctx: ProxyContext) -> Any:
        await asyncio.sleep(0)
        if before is not None:
            before(ctx)
        yield
        await asyncio.sleep(0)
        if after is not None:
            after(ctx)

    return asynchronous


def handler_of(server: ProxyServer) -> HTTPProxyHandler:
    handler = server.system.provider.resolve(ProxyEndpoints)["api"]
    assert isinstance(handler, HTTPProxyHandler)
    return handler


def body_of(answer: bytes) -> bytes:
    return answer.split(b"\r\n\r\n", 1)[1]


@pytest.mark.parametrize("kind", KINDS)
async def test_ways_in_ascend_and_ways_out_descend(
    serve: Serve, upstream: RecordingUpstream, kind: str
) -> None:
    server = await serve({"api": [upstream.url]})
    handler = handler_of(server)
    order: list[str] = []
    for phase, name in ((1000, "target"), (0, "client"), (300, "300"), (500, "proxy")):
        handler.add_middleware(
            phase,
            middleware(
                kind,
                lambda ctx, name=name: order.append(f"in {name}"),
                lambda ctx, name=name: order.append(f"out {name}"),
            ),
        )
    general = count_general(server)
    answer = await send(server, get(b"/echo"))
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert order == [
        "in client", "in 300", "in proxy", "in target",
        "out target", "out proxy", "out 300", "out client",
    ]  # fmt: skip
    assert general.requests == 0


@pytest.mark.parametrize("kind", KINDS)
async def test_a_middleware_that_only_looks_leaves_the_upstream_head_byte_for_byte(
    serve: Serve, upstream: RecordingUpstream, kind: str
) -> None:
    server = await serve({"api": [upstream.url]})
    request = get(b"/echo?a=1", b"User-Agent: Test/1", b"x-dup: 1", b"X-Dup: 2")
    plain = await upstream_bytes(server, upstream, request)

    def look(ctx: ProxyContext) -> None:
        assert ctx.upstream_request is not None and ctx.request is not None
        assert ctx.upstream_request.headers["user-agent"] == "Test/1"
        assert ctx.upstream_request.url.path == "/echo"
        assert ctx.request.method == "GET"

    handler_of(server).client_edge(middleware(kind, look))
    general = count_general(server)
    assert await upstream_bytes(server, upstream, request) == plain
    assert general.requests == 0


@pytest.mark.parametrize("kind", KINDS)
async def test_a_changed_upstream_header_is_exactly_that_change_upstream(
    serve: Serve, upstream: RecordingUpstream, kind: str
) -> None:
    server = await serve({"api": [upstream.url, 'state={"tier": "gold"}']})
    request = get(b"/echo", b"User-Agent: Test/1")
    (plain,), _ = await upstream_bytes(server, upstream, request)

    def tag(ctx: ProxyContext) -> None:
        assert ctx.upstream_request is not None
        ctx.upstream_request.headers["User-Agent"] = "Changed/" + ctx.state["tier"]

    handler_of(server).client_edge(middleware(kind, tag))
    general = count_general(server)
    (changed,), answer = await upstream_bytes(server, upstream, request)
    assert changed == plain.replace(b"User-Agent: Test/1\r\n", b"User-Agent: Changed/gold\r\n")
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert general.requests == 0


@pytest.mark.parametrize("kind", KINDS)
async def test_a_middleware_may_send_the_request_elsewhere(
    serve: Serve, upstream: RecordingUpstream, kind: str
) -> None:
    other = RecordingUpstream().start()
    try:
        server = await serve({"api": [upstream.url]})

        def reroute(ctx: ProxyContext) -> None:
            assert ctx.upstream_request is not None
            ctx.upstream_request.url = URL(other.url).copy_with(path="/echo/rerouted")
            ctx.upstream_request.method = "DELETE"

        handler_of(server).target_edge(middleware(kind, reroute))
        general = count_general(server)
        upstream.reset()
        answer = await send(server, get(b"/echo/original"))
        echo = json.loads(body_of(answer))
        assert (echo["method"], echo["target"]) == ("DELETE", "/echo/rerouted")
        host = URL(other.url).host_header.decode()
        assert ["Host", host] in echo["headers"]
        assert upstream.received == [] and len(other.received) == 1
        assert general.requests == 0
    finally:
        other.stop()


@pytest.mark.parametrize("kind", KINDS)
async def test_a_response_set_on_the_way_in_short_circuits(
    serve: Serve, upstream: RecordingUpstream, kind: str
) -> None:
    server = await serve({"api": [upstream.url]})
    handler = handler_of(server)
    order: list[str] = []

    def status(ctx: ProxyContext) -> str:
        return str(ctx.response.status_code if ctx.response else None)

    def deny(ctx: ProxyContext) -> None:
        order.append("in deny")
        ctx.response = Response(401, json={"error": "who are you"})

    handler.client_edge(
        middleware(kind, lambda c: order.append("in outer"), lambda c: order.append(status(c)))
    )
    handler.proxy(middleware(kind, deny, lambda c: order.append("out deny")))
    handler.target_edge(middleware(kind, lambda c: order.append("in never")))
    general = count_general(server)
    upstream.reset()
    answer = await send(server, get(b"/echo"))
    assert answer.startswith(b"HTTP/1.1 401 ")
    assert json.loads(body_of(answer)) == {"error": "who are you"}
    assert order == ["in outer", "in deny", "out deny", "401"]
    assert upstream.received == []
    assert general.requests == 0


async def test_middlewares_of_one_phase_run_concurrently(
    serve: Serve, upstream: RecordingUpstream
) -> None:
    server = await serve({"api": [upstream.url]})
    handler = handler_of(server)
    both_in = asyncio.Event()
    arrived: list[str] = []

    def make(name: str) -> Any:
        async def concurrent(ctx: ProxyContext) -> Any:
            arrived.append(name)
            if len(arrived) == 2:
                both_in.set()
            await asyncio.wait_for(both_in.wait(), 2)  # only concurrent ways in get past
            yield

        return concurrent

    handler.target_edge(make("a"))
    handler.target_edge(make("b"))
    general = count_general(server)
    assert (await send(server, get(b"/echo"))).startswith(b"HTTP/1.1 200 ")
    assert sorted(arrived) == ["a", "b"] and general.requests == 0


@pytest.mark.parametrize("kind", KINDS)
async def test_an_error_on_the_way_in_is_a_json_500_and_outs_still_run(
    serve: Serve, upstream: RecordingUpstream, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    server = await serve({"api": [upstream.url]})
    handler = handler_of(server)
    outs: list[int | None] = []

    def broken(ctx: ProxyContext) -> None:
        raise RuntimeError("secret detail")

    handler.client_edge(
        middleware(kind, None, lambda c: outs.append(c.response and c.response.status_code))
    )
    handler.proxy(middleware(kind, broken))
    general = count_general(server)
    upstream.reset()
    answer = await send(server, get(b"/echo"))
    assert answer.startswith(b"HTTP/1.1 500 ")
    assert json.loads(body_of(answer)) == {"status": 500, "message": "Internal Server Error"}
    assert outs == [500] and upstream.received == []
    assert "secret detail" in caplog.text and b"secret" not in answer
    assert general.requests == 0


@pytest.mark.parametrize("kind", KINDS)
async def test_an_error_on_the_way_out_goes_to_the_error_handler(
    serve: Serve, upstream: RecordingUpstream, kind: str
) -> None:
    server = await serve({"api": [upstream.url]})
    handler = handler_of(server)
    errors: list[str] = []

    def on_error(error: Exception, ctx: ProxyContext) -> Response:
        errors.append(str(error))
        return Response(418, text="handled")

    async def on_error_async(error: Exception, ctx: ProxyContext) -> Response:
        return on_error(error, ctx)

    def fail(ctx: ProxyContext) -> None:
        raise ValueError("after the upstream")

    handler.error_handler = on_error if kind == "generator" else on_error_async
    handler.target_edge(middleware(kind, None, fail))
    general = count_general(server)
    answer = await send(server, get(b"/big?size=200000"))  # (its body: not drained, closed)
    assert answer.startswith(b"HTTP/1.1 418 ") and body_of(answer) == b"handled"
    assert errors == ["after the upstream"] and general.requests == 0
    answer = await send(server, get(b"/echo"))  # the next request is served as well
    assert answer.startswith(b"HTTP/1.1 418 ")


@pytest.mark.parametrize("kind", KINDS)
async def test_the_way_out_changes_or_replaces_the_answer(
    serve: Serve, upstream: RecordingUpstream, kind: str
) -> None:
    server = await serve({"api": [upstream.url]})
    handler = handler_of(server)

    def change(ctx: ProxyContext) -> None:
        assert ctx.response is not None
        if ctx.request is not None and ctx.request.url.path == "/status":
            ctx.response = Response(203, text="replaced")
        else:
            ctx.response.headers["X-Status-Seen"] = str(ctx.response.status_code)

    handler.client_edge(middleware(kind, None, change))
    general = count_general(server)
    changed = await send(server, get(b"/big?size=300000&chunked=1"))
    head, body = changed.split(b"\r\n\r\n", 1)
    assert b"\r\nX-Status-Seen: 200\r\n" in head and body.endswith(b"0\r\n\r\n")
    assert len(body) > 300000  # the upstream's body, streamed on (chunked)
    replaced = await send(server, get(b"/status?code=201"))
    assert replaced.startswith(b"HTTP/1.1 203 ") and body_of(replaced) == b"replaced"
    assert general.requests == 0


@pytest.mark.parametrize("kind", KINDS)
async def test_a_middleware_yielding_twice_is_an_error(
    serve: Serve, upstream: RecordingUpstream, kind: str
) -> None:
    server = await serve({"api": [upstream.url]})

    def twice(ctx: ProxyContext) -> Any:
        yield
        yield

    async def twice_async(ctx: ProxyContext) -> Any:
        yield
        yield

    handler_of(server).client_edge(twice if kind == "generator" else twice_async)
    general = count_general(server)
    assert (await send(server, get(b"/echo"))).startswith(b"HTTP/1.1 500 ")
    assert general.requests == 0


@pytest.mark.parametrize("kind", KINDS)
async def test_pipelined_requests_each_go_through_the_middleware(
    serve: Serve, upstream: RecordingUpstream, kind: str
) -> None:
    server = await serve({"api": [upstream.url]})
    seen: list[str] = []

    def tag(ctx: ProxyContext) -> None:
        assert ctx.response is not None and ctx.request is not None
        seen.append(ctx.request.url.path)
        ctx.response.headers["X-Path"] = ctx.request.url.path

    handler_of(server).client_edge(middleware(kind, None, tag))
    general = count_general(server)
    keep = b"GET /echo/%d HTTP/1.1\r\nHost: p\r\n\r\n"
    data = b"".join(keep % i for i in range(3)) + get(b"/echo/3")
    answer = await send(server, data)
    assert answer.count(b"HTTP/1.1 200 ") == 4
    assert [line for line in answer.split(b"\r\n") if line.startswith(b"X-Path")] == [
        b"X-Path: /echo/%d" % i for i in range(4)
    ]
    assert seen == [f"/echo/{i}" for i in range(4)] and general.requests == 0


@pytest.mark.parametrize("kind", KINDS)
async def test_a_big_body_streams_through_a_middleware_to_a_slow_client(
    serve: Serve, upstream: RecordingUpstream, kind: str
) -> None:
    server = await serve({"api": [upstream.url]})

    def mark(ctx: ProxyContext) -> None:
        assert ctx.response is not None
        ctx.response.headers["X-Seen"] = "yes"

    handler_of(server).client_edge(middleware(kind, None, mark))
    general = count_general(server)
    size = 16 * 1024 * 1024
    reader, writer = await asyncio.open_connection(*server.addresses["api"])
    # The proxy's own allocations (its code, its transports' buffers) while the body flows;
    # the upstream runs in this process too, and its copy of the body is left out.
    proxy_code = [tracemalloc.Filter(True, "*/ferryman/*"), tracemalloc.Filter(True, "*asyncio*")]
    held: list[int] = []
    tracemalloc.start()
    try:
        writer.write(get(b"/big?size=%d" % size))
        head = await reader.readuntil(b"\r\n\r\n")
        received = reads = 0
        while piece := await reader.read(65536):
            received += len(piece)
            reads += 1
            if received < 2 * 1024 * 1024:
                await asyncio.sleep(0.002)  # a slow client at first: the relay must wait
            if reads % 64 == 0:
                snapshot = tracemalloc.take_snapshot().filter_traces(proxy_code)
                held.append(sum(stat.size for stat in snapshot.statistics("filename")))
    finally:
        tracemalloc.stop()
        writer.close()
    assert b"X-Seen: yes" in head and received == size
    assert held and max(held) < 4 * 1024 * 1024  # nothing near the body's size was held
    assert general.requests == 0


@pytest.mark.parametrize("kind", KINDS)
async def test_transaction_events_fire_once_per_request_with_middleware(
    serve: Serve, upstream: RecordingUpstream, kind: str
) -> None:
    server = await serve({"api": [upstream.url]})
    events: list[tuple[str, int]] = []
    dispatcher = server.system.dispatcher
    dispatcher.add_listener(EVENT_TRANSACTION_STARTED, lambda t: events.append(("started", 0)))
    dispatcher.add_listener(
        EVENT_TRANSACTION_FINISHED, lambda t: events.append(("finished", t.status))
    )

    def deny(ctx: ProxyContext) -> None:
        if ctx.request is not None and ctx.request.url.path == "/deny":
            ctx.response = Response(403)

    handler_of(server).client_edge(middleware(kind, deny))
    general = count_general(server)
    await send(server, get(b"/echo"))
    await send(server, get(b"/deny"))
    await send(server, get(b"/status?code=404"))
    await asyncio.sleep(0.05)
    assert events == [
        ("started", 0), ("finished", 200),
        ("started", 0), ("finished", 403),
        ("started", 0), ("finished", 404),
    ]  # fmt: skip
    assert general.requests == 0


async def test_async_filter_listeners_run_around_the_middleware_on_the_relay(
    serve: Serve, upstream: RecordingUpstream
) -> None:
    server = await serve({"api": [upstream.url]})
    order: list[str] = []

    async def replace(event: ProxyFilterEvent) -> None:
        await asyncio.sleep(0)
        assert event.response is not None
        order.append(f"response {event.response.status_code}")
        event.response = Response(202, text="from an async listener")

    server.system.dispatcher.add_listener(EVENT_FILTER_PROXY_RESPONSE, replace)
    handler_of(server).client_edge(
        middleware("generator", lambda c: order.append("in"), lambda c: order.append("out"))
    )
    general = count_general(server)
    answer = await send(server, get(b"/echo"))
    assert answer.startswith(b"HTTP/1.1 202 ") and body_of(answer) == b"from an async listener"
    assert order == ["in", "out", "response 200"] and general.requests == 0
