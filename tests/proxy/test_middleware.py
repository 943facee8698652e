"""Middleware phases: order in and out, concurrency within a phase, short-circuits, errors.

The handler is called in-process as an ASGI app (hand-driven ``receive``/``send``) and relays
to the edge server, whose echo shows what reached the upstream.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from ferryman.http import Response
from ferryman.proxy import (
    HTTPProxyHandler,
    MiddlewarePhase,
    ProxyContext,
    ProxyMiddlewareDef,
)
from tests.proxy.conftest import LiveCall
from tests.server.helpers import http_scope
from tests.servers.edge import EdgeServer


@pytest.fixture
async def handler(edge: EdgeServer) -> AsyncIterator[HTTPProxyHandler]:
    handler = HTTPProxyHandler(ProxyContext(url=edge.url, state={"tier": "gold", "hits": []}))
    yield handler
    await handler.aclose()


async def get(handler: HTTPProxyHandler, path: str = "/echo") -> LiveCall:
    call = LiveCall()
    await handler(http_scope(path), call.receive, call.send)
    return call


def test_phases_are_named_and_bounded() -> None:
    assert (MiddlewarePhase.CLIENT_EDGE, MiddlewarePhase.PROXY, MiddlewarePhase.TARGET_EDGE) == (
        0,
        500,
        1000,
    )
    for bad in (-1, 1001, 2.5, True, "0"):
        with pytest.raises(ValueError, match="0 to 1000"):
            ProxyMiddlewareDef(phase=bad, middleware=lambda ctx: None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        ProxyMiddlewareDef(phase=0, middleware="nope")  # type: ignore[arg-type]


async def test_ways_in_ascend_and_ways_out_descend(handler: HTTPProxyHandler) -> None:
    order: list[str] = []

    def make(name: str) -> Any:
        def middleware(ctx: ProxyContext) -> Iterator[None]:
            order.append(f"in {name}")
            yield
            order.append(f"out {name}")

        return middleware

    handler.add_middleware(ProxyMiddlewareDef(phase=1000, middleware=make("target")))
    handler.add_middleware(ProxyMiddlewareDef(phase=0, middleware=make("client")))
    handler.add_middleware(300, make("300"))
    handler.proxy(make("proxy"))
    assert [d.phase for d in handler.middlewares] == [0, 300, 500, 1000]
    call = await get(handler)
    assert call.status == 200
    assert order == [
        "in client", "in 300", "in proxy", "in target",
        "out target", "out proxy", "out 300", "out client",
    ]  # fmt: skip


async def test_middlewares_change_the_upstream_request_and_the_response(
    handler: HTTPProxyHandler,
) -> None:
    @handler.client_edge
    async def tag(ctx: ProxyContext) -> AsyncIterator[None]:
        assert ctx.upstream_request is not None and ctx.response is None
        ctx.upstream_request.headers["X-Tier"] = ctx.state["tier"]
        yield
        assert ctx.response is not None
        ctx.response.headers["X-Status-Seen"] = str(ctx.response.status_code)

    call = await get(handler)
    echo = json.loads(call.body)
    assert ["X-Tier", "gold"] in echo["headers"]
    assert call.headers[b"x-status-seen"] == b"200"


async def test_middlewares_of_one_phase_run_concurrently(handler: HTTPProxyHandler) -> None:
    both_in = asyncio.Event()
    arrived: list[str] = []

    def make(name: str) -> Any:
        async def middleware(ctx: ProxyContext) -> AsyncIterator[None]:
            arrived.append(name)
            if len(arrived) == 2:
                both_in.set()
            # Each waits for the other: only concurrent ways in get past this.
            await asyncio.wait_for(both_in.wait(), 2)
            yield

        return middleware

    handler.target_edge(make("a"))
    handler.target_edge(make("b"))
    call = await get(handler)
    assert call.status == 200
    assert sorted(arrived) == ["a", "b"]


async def test_a_response_set_on_the_way_in_short_circuits(
    handler: HTTPProxyHandler, edge: EdgeServer
) -> None:
    order: list[str] = []

    @handler.client_edge
    def outer(ctx: ProxyContext) -> Iterator[None]:
        order.append("in outer")
        yield
        order.append(f"out outer {ctx.response.status_code if ctx.response else None}")

    @handler.proxy
    def deny(ctx: ProxyContext) -> Iterator[None]:
        order.append("in deny")
        ctx.response = Response(401, json={"error": "who are you"})
        yield
        order.append("out deny")

    @handler.target_edge
    def never(ctx: ProxyContext) -> Iterator[None]:
        order.append("in never")
        yield

    before = len(edge.requests)
    call = await get(handler)
    assert call.status == 401
    assert json.loads(call.body) == {"error": "who are you"}
    assert order == ["in outer", "in deny", "out deny", "out outer 401"]
    assert len(edge.requests) == before  # the upstream was not called


async def test_plain_functions_run_on_the_way_in_only(handler: HTTPProxyHandler) -> None:
    seen: list[str] = []

    @handler.client_edge
    def log_resource(ctx: ProxyContext) -> None:
        seen.append(ctx.state["tier"])
        ctx.state["custom_key"] = 123

    @handler.target_edge
    async def log_custom_value(ctx: ProxyContext) -> None:
        seen.append(str(ctx.state["custom_key"]))

    assert (await get(handler)).status == 200
    assert seen == ["gold", "123"]


async def test_state_starts_as_a_copy_for_every_request(handler: HTTPProxyHandler) -> None:
    seen: list[dict[str, Any]] = []

    @handler.client_edge
    def mutate(ctx: ProxyContext) -> None:
        seen.append(dict(ctx.state))
        ctx.state["tier"] = "changed"
        ctx.state["new"] = len(seen)

    await get(handler)
    await get(handler)
    assert [s.get("new") for s in seen] == [None, None]
    assert [s["tier"] for s in seen] == ["gold", "gold"]
    assert handler.context.state == {"tier": "gold", "hits": []}


async def test_an_error_in_a_middleware_is_a_json_500_and_outs_still_run(
    handler: HTTPProxyHandler, edge: EdgeServer, caplog: pytest.LogCaptureFixture
) -> None:
    outs: list[int | None] = []

    @handler.client_edge
    def observe(ctx: ProxyContext) -> Iterator[None]:
        yield
        outs.append(ctx.response.status_code if ctx.response else None)

    @handler.proxy
    def broken(ctx: ProxyContext) -> Iterator[None]:
        raise RuntimeError("secret detail")
        yield

    before = len(edge.requests)
    call = await get(handler)
    assert call.status == 500
    assert json.loads(call.body) == {"status": 500, "message": "Internal Server Error"}
    assert b"secret" not in call.body
    assert outs == [500]
    assert len(edge.requests) == before
    assert "secret detail" in caplog.text


async def test_an_error_on_the_way_out_goes_to_the_error_handler(edge: EdgeServer) -> None:
    errors: list[str] = []

    def on_error(error: Exception, ctx: ProxyContext) -> Response:
        errors.append(str(error))
        return Response(418, text="handled")

    handler = HTTPProxyHandler(ProxyContext(url=edge.url), error_handler=on_error)

    @handler.target_edge
    async def fails_late(ctx: ProxyContext) -> AsyncIterator[None]:
        yield
        raise ValueError("after the upstream")

    try:
        call = await get(handler)
    finally:
        await handler.aclose()
    assert (call.status, call.body) == (418, b"handled")
    assert errors == ["after the upstream"]


async def test_a_middleware_yielding_twice_is_an_error(handler: HTTPProxyHandler) -> None:
    @handler.client_edge
    def twice(ctx: ProxyContext) -> Iterator[None]:
        yield
        yield

    assert (await get(handler)).status == 500


async def test_a_middleware_may_send_the_request_elsewhere(
    handler: HTTPProxyHandler, edge: EdgeServer
) -> None:
    @handler.target_edge
    def reroute(ctx: ProxyContext) -> None:
        assert ctx.upstream_request is not None
        ctx.upstream_request.url = ctx.upstream_request.url.copy_with(path="/echo/rerouted")

    echo = json.loads((await get(handler, "/echo/original")).body)
    assert echo["target"] == "/echo/rerouted"
