"""The proxy filter events served by the fast relay (``ferryman.proxy.relay_events``).

A ProxyServer with synchronous ``proxy.filter.*`` listeners relays requests itself: the ASGI
kernel (the relay's ``fallback``) sees none of them, which each test checks. What the upstream
receives is recorded byte for byte (``RecordingUpstream``) and compared with what the plain
relay sends for the same bytes.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from ferryman.events import Event
from ferryman.http import Response
from ferryman.http.url import URL
from ferryman.proxy import ProxyContext, ProxyEndpoints
from ferryman.proxy.events import (
    EVENT_FILTER_PROXY_REQUEST,
    EVENT_FILTER_PROXY_RESPONSE,
    ProxyFilterEvent,
)
from ferryman.proxy.relay_events import DRAIN_LIMIT, RelayRequest
from ferryman.proxy.server import ProxyServer
from ferryman.proxy.transactions import (
    EVENT_TRANSACTION_FINISHED,
    EVENT_TRANSACTION_STARTED,
)
from ferryman.server.events import EVENT_CORE_REQUEST
from ferryman.server.exchange import ServerExchange
from tests.proxy import test_parity
from tests.proxy.test_parity import RecordingUpstream, Serve, exchange, free_port, get

# The parity tests' fixtures: a recording upstream, ProxyServers with endpoints on their own ports.
upstream = test_parity.upstream
serve = test_parity.serve


class CountingFallback:
    """The relay's fallback (the kernel's bridge), counting the requests it gets."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.requests = 0

    def on_request(self, exchange: ServerExchange) -> None:
        self.requests += 1
        self.inner.on_request(exchange)


def count_general(server: ProxyServer) -> CountingFallback:
    (relay,) = server._relays
    counter = CountingFallback(relay.fallback)
    relay.fallback = counter
    return counter


async def send(server: ProxyServer, data: bytes) -> bytes:
    return await exchange(server.addresses["api"][1], data)


async def upstream_bytes(
    server: ProxyServer, upstream: RecordingUpstream, data: bytes
) -> tuple[list[bytes], bytes]:
    upstream.reset()
    answer = await send(server, data)
    await asyncio.sleep(0.05)
    return [bytes(request) for request in upstream.received], answer


REQUEST = get(b"/echo?a=1", b"User-Agent: Test/1", b"X-Mixed-Case: Yes", b"x-dup: 1", b"X-Dup: 2")


async def test_a_listener_that_only_reads_the_method_leaves_the_head_as_the_relay_sends_it(
    serve: Serve, upstream: RecordingUpstream
) -> None:
    server = await serve({"api": [upstream.url]})
    plain = await upstream_bytes(server, upstream, REQUEST)
    seen: list[RelayRequest] = []

    def look(event: ProxyFilterEvent) -> None:
        assert event.request.method == "GET"
        assert isinstance(event.request, RelayRequest)
        seen.append(event.request)

    server.system.dispatcher.add_listener(EVENT_FILTER_PROXY_REQUEST, look)
    general = count_general(server)
    filtered = await upstream_bytes(server, upstream, REQUEST)
    assert filtered == plain  # header case, order and duplicates, byte for byte
    assert general.requests == 0
    assert len(seen) == 1
    assert seen[0]._headers is None and seen[0]._url is None  # never built


async def test_a_listener_that_changes_one_header_changes_only_that_upstream(
    serve: Serve, upstream: RecordingUpstream
) -> None:
    server = await serve({"api": [upstream.url]})
    (plain,), _ = await upstream_bytes(server, upstream, REQUEST)

    def change(event: ProxyFilterEvent) -> None:
        event.request.headers["User-Agent"] = "Changed/2"

    server.system.dispatcher.add_listener(EVENT_FILTER_PROXY_REQUEST, change)
    general = count_general(server)
    (changed,), answer = await upstream_bytes(server, upstream, REQUEST)
    assert changed == plain.replace(b"User-Agent: Test/1\r\n", b"User-Agent: Changed/2\r\n")
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert general.requests == 0


async def test_a_listener_changes_the_url_method_and_body(
    serve: Serve, upstream: RecordingUpstream
) -> None:
    server = await serve({"api": [upstream.url]})

    def change(event: ProxyFilterEvent) -> None:
        request = event.request
        request.url = URL("http://elsewhere/echo?changed=1")
        request.method = "PUT"
        request.stream = Response(200, content=b"new body").stream

    server.system.dispatcher.add_listener(EVENT_FILTER_PROXY_REQUEST, change)
    general = count_general(server)
    data = b"POST /echo HTTP/1.1\r\nHost: p\r\nContent-Length: 3\r\nConnection: close\r\n\r\nold"
    (received,), answer = await upstream_bytes(server, upstream, data)
    assert received.startswith(b"PUT /echo?changed=1 HTTP/1.1\r\n")
    assert received.endswith(b"\r\nContent-Length: 8\r\n\r\nnew body")
    echo = json.loads(answer.split(b"\r\n\r\n", 1)[1])
    assert echo["body"] == "new body"
    assert general.requests == 0


async def test_a_forged_answer_skips_the_upstream_and_the_response_filter_sees_it(
    serve: Serve, upstream: RecordingUpstream
) -> None:
    server = await serve({"api": [upstream.url]})
    statuses: list[int] = []

    def forge(event: ProxyFilterEvent) -> None:
        event.response = Response(201, text="forged")

    def watch(event: ProxyFilterEvent) -> None:
        assert event.response is not None
        statuses.append(event.response.status_code)

    server.system.dispatcher.add_listener(EVENT_FILTER_PROXY_REQUEST, forge)
    server.system.dispatcher.add_listener(EVENT_FILTER_PROXY_RESPONSE, watch)
    general = count_general(server)
    received, answer = await upstream_bytes(server, upstream, get(b"/echo"))
    assert received == []
    assert answer == (
        b"HTTP/1.1 201 Created\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Length: 6\r\nConnection: close\r\n\r\nforged"
    )
    assert statuses == [201]
    assert general.requests == 0


async def test_one_event_instance_in_priority_order_and_stop_propagation(
    serve: Serve, upstream: RecordingUpstream
) -> None:
    server = await serve({"api": [upstream.url]})
    seen: list[tuple[str, Event]] = []
    dispatcher = server.system.dispatcher
    dispatcher.add_listener(EVENT_FILTER_PROXY_REQUEST, lambda e: seen.append(("low", e)), -5)
    dispatcher.add_listener(EVENT_FILTER_PROXY_REQUEST, lambda e: seen.append(("high", e)), 5)
    dispatcher.add_listener(EVENT_FILTER_PROXY_RESPONSE, lambda e: seen.append(("response", e)))
    general = count_general(server)
    _, answer = await upstream_bytes(server, upstream, get(b"/echo"))
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert [name for name, _ in seen] == ["high", "low", "response"]
    assert seen[0][1] is seen[1][1] is seen[2][1]
    event = seen[0][1]
    assert isinstance(event, ProxyFilterEvent)
    context = event.context
    assert isinstance(context, ProxyContext) and context.endpoint == "api"
    assert event.response is not None and event.response.status_code == 200

    seen.clear()
    dispatcher.add_listener(EVENT_FILTER_PROXY_REQUEST, lambda e: e.stop_propagation(), 10)
    await upstream_bytes(server, upstream, get(b"/echo"))
    assert seen == []
    assert general.requests == 0


async def test_a_response_listener_changes_the_upstream_head_and_its_body_streams_on(
    serve: Serve, upstream: RecordingUpstream
) -> None:
    server = await serve({"api": [upstream.url]})

    def change(event: ProxyFilterEvent) -> None:
        assert event.response is not None
        event.response.headers["X-Filtered"] = "yes"

    server.system.dispatcher.add_listener(EVENT_FILTER_PROXY_RESPONSE, change)
    _, answer = await upstream_bytes(server, upstream, get(b"/big?size=100000"))
    head, body = answer.split(b"\r\n\r\n", 1)
    assert b"\r\nX-Filtered: yes" in head
    assert len(body) == 100000


def replacing(path: str) -> Any:
    def replace(event: ProxyFilterEvent) -> None:
        if event.request.url.path == path:
            event.response = Response(202, text="replaced")

    return replace


@pytest.mark.parametrize(("size", "reused"), [(1000, True), (DRAIN_LIMIT * 4, False)])
async def test_a_replaced_answer_drains_a_short_upstream_body_and_closes_on_a_long_one(
    serve: Serve, upstream: RecordingUpstream, size: int, reused: bool
) -> None:
    server = await serve({"api": [upstream.url]})
    server.system.dispatcher.add_listener(EVENT_FILTER_PROXY_RESPONSE, replacing("/big"))
    general = count_general(server)
    await send(server, get(b"/echo"))  # one upstream connection, now idle in the pool
    (relay,) = server._relays
    (pool,) = relay.pools
    (before,) = list(pool._idle)
    answer = await send(server, get(b"/big?size=%d" % size))
    assert answer.endswith(b"\r\n\r\nreplaced") and answer.startswith(b"HTTP/1.1 202 ")
    await asyncio.sleep(0.1)
    assert pool.busy == 0
    assert (list(pool._idle) == [before]) is reused
    # And the next request is answered (on that connection or a new one).
    assert (await send(server, get(b"/echo"))).startswith(b"HTTP/1.1 200 ")
    assert general.requests == 0


@pytest.mark.parametrize("event_name", [EVENT_FILTER_PROXY_REQUEST, EVENT_FILTER_PROXY_RESPONSE])
async def test_a_failing_listener_answers_a_json_500_on_the_relay(
    serve: Serve, upstream: RecordingUpstream, event_name: str
) -> None:
    server = await serve({"api": [upstream.url]})

    def broken(event: ProxyFilterEvent) -> None:
        raise RuntimeError("listener bug")

    server.system.dispatcher.add_listener(event_name, broken)
    general = count_general(server)
    received, answer = await upstream_bytes(server, upstream, get(b"/echo"))
    head, body = answer.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 500 ")
    assert json.loads(body) == {"status": 500, "message": "Internal Server Error"}
    assert len(received) == (0 if event_name == EVENT_FILTER_PROXY_REQUEST else 1)
    assert general.requests == 0


async def test_pipelined_requests_each_get_their_event(
    serve: Serve, upstream: RecordingUpstream
) -> None:
    server = await serve({"api": [upstream.url]})
    targets: list[str] = []
    server.system.dispatcher.add_listener(
        EVENT_FILTER_PROXY_REQUEST, lambda e: targets.append(e.request.url.raw_path.decode())
    )
    server.system.dispatcher.add_listener(EVENT_FILTER_PROXY_RESPONSE, replacing("/status"))
    data = (
        get(b"/echo?n=1", b"Connection: keep-alive")
        + get(b"/status?code=201", b"Connection: keep-alive")
        + get(b"/echo?n=3")
    )
    general = count_general(server)
    answer = await send(server, data)
    assert targets == ["/echo?n=1", "/status?code=201", "/echo?n=3"]
    assert answer.count(b"HTTP/1.1 200 ") == 2 and answer.count(b"HTTP/1.1 202 ") == 1
    assert answer.index(b"replaced") < answer.rindex(b'"target": "/echo?n=3"')
    assert general.requests == 0


async def test_an_error_of_the_relay_goes_through_the_response_filter(
    serve: Serve, upstream: RecordingUpstream
) -> None:
    server = await serve({"api": [f"http://127.0.0.1:{free_port()}"]})
    seen: list[int] = []

    def watch(event: ProxyFilterEvent) -> None:
        assert event.response is not None
        seen.append(event.response.status_code)

    server.system.dispatcher.add_listener(EVENT_FILTER_PROXY_RESPONSE, watch)
    answer = await send(server, get(b"/echo"))
    assert answer.startswith(b"HTTP/1.1 502 ")
    assert seen == [502]


async def test_async_listeners_and_middleware_are_served_by_the_relay_too(
    serve: Serve, upstream: RecordingUpstream
) -> None:
    server = await serve({"api": [upstream.url]})
    calls: list[str] = []

    async def listener(event: ProxyFilterEvent) -> None:
        await asyncio.sleep(0)
        calls.append("async")

    dispatcher = server.system.dispatcher
    dispatcher.add_listener(EVENT_FILTER_PROXY_REQUEST, listener)
    general = count_general(server)
    assert (await send(server, get(b"/echo"))).startswith(b"HTTP/1.1 200 ")
    assert calls == ["async"] and general.requests == 0
    dispatcher.remove_listener(EVENT_FILTER_PROXY_REQUEST, listener)
    dispatcher.add_listener(EVENT_FILTER_PROXY_REQUEST, lambda e: calls.append("sync"))
    handler = server.system.provider.resolve(ProxyEndpoints)["api"]
    handler.client_edge(lambda ctx: calls.append("middleware"))
    assert (await send(server, get(b"/echo"))).startswith(b"HTTP/1.1 200 ")
    assert calls == ["async", "sync", "middleware"] and general.requests == 0
    # What the relay cannot serve still goes the general way: a kernel event's listener.
    dispatcher.add_listener(EVENT_CORE_REQUEST, lambda e: calls.append("core"))
    assert (await send(server, get(b"/echo"))).startswith(b"HTTP/1.1 200 ")
    assert calls[-1] == "middleware" and "core" in calls and general.requests == 1


async def test_transaction_events_fire_once_per_request_with_filters_on_the_relay(
    serve: Serve, upstream: RecordingUpstream
) -> None:
    server = await serve({"api": [upstream.url]})
    events: list[tuple[str, int]] = []
    dispatcher = server.system.dispatcher
    dispatcher.add_listener(EVENT_TRANSACTION_STARTED, lambda t: events.append(("started", 0)))
    dispatcher.add_listener(
        EVENT_TRANSACTION_FINISHED, lambda t: events.append(("finished", t.status))
    )
    dispatcher.add_listener(EVENT_FILTER_PROXY_RESPONSE, replacing("/status"))
    general = count_general(server)
    await send(server, get(b"/echo"))
    await send(server, get(b"/status?code=201"))
    assert events == [("started", 0), ("finished", 200), ("started", 0), ("finished", 202)]
    assert general.requests == 0
