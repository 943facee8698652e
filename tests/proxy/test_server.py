"""A ProxyServer changing paths while it serves: an event listener, a middleware or an error
handler that arrives after the start takes effect from the next request on, and a listener
removed gives the endpoint its fast relay back. The server runs in the test's loop."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

import ferryman
from ferryman.events import Event
from ferryman.http import Response
from ferryman.proxy import ProxyContext, ProxyEndpoints
from ferryman.proxy.application import build_kernel
from ferryman.proxy.events import EVENT_FILTER_PROXY_REQUEST
from ferryman.proxy.handler import HTTPProxyHandler
from ferryman.proxy.server import ProxyServer
from ferryman.server import EVENT_CORE_RESPONSE, ASGIApp
from ferryman.server.controllers import Receive, Scope, Send
from ferryman.system import SystemBuilder, load_config
from tests.servers.edge import EdgeServer


async def serve(*endpoints: tuple[str, str], applications: str | None = None) -> ProxyServer:
    """A started server with one endpoint on its own port per (name, upstream URL);
    ``applications`` (e.g. ``"[proxy]"``) replaces the default list."""
    overrides = ["proxy.port=0"]
    if applications is not None:
        overrides.append(f"applications={applications}")
    for index, (name, url) in enumerate(endpoints):
        overrides += [
            f"proxy.endpoints.{index}.name={name}",
            f"proxy.endpoints.{index}.port=0",
            f"proxy.endpoints.{index}.url={url}",
        ]
    system = await SystemBuilder(load_config([], overrides=overrides)).build(build_kernel)
    server = ProxyServer(system, host="127.0.0.1")
    await server.start()
    return server


@pytest.fixture
async def proxy(edge: EdgeServer, refused_url: str) -> AsyncIterator[ProxyServer]:
    server = await serve(("api", edge.url), ("down", refused_url))
    try:
        yield server
    finally:
        await server.shutdown(1)
        await server.system.dispose()


def url_of(proxy: ProxyServer, endpoint: str, path: str) -> str:
    host, port = proxy.addresses[endpoint]
    return f"http://{host}:{port}{path}"


def takes_the_fast_path(proxy: ProxyServer, endpoint: str) -> bool:
    """Whether the endpoint's next request would be relayed without the kernel."""
    (relay,) = (relay for relay in proxy._relays if relay.name == endpoint)
    assert relay.use_fast is not None
    return relay.use_fast()


def handler_of(proxy: ProxyServer, endpoint: str) -> HTTPProxyHandler:
    return proxy.system.provider.resolve(ProxyEndpoints)[endpoint]


async def test_endpoints_on_port_0_each_get_a_port_of_their_own(
    proxy: ProxyServer, client: ferryman.AsyncClient
) -> None:
    assert proxy.addresses["api"] != proxy.addresses["down"]
    assert (await client.get(url_of(proxy, "api", "/echo"))).json()["target"] == "/echo"
    assert (await client.get(url_of(proxy, "down", "/echo"))).status_code == 502


async def test_a_listener_added_while_serving_sees_the_next_request(
    proxy: ProxyServer, client: ferryman.AsyncClient
) -> None:
    seen: list[str] = []
    assert takes_the_fast_path(proxy, "api")
    first = await client.get(url_of(proxy, "api", "/echo?n=1"))
    assert first.status_code == 200

    def listener(event: Event) -> None:
        seen.append(str(event.request.url))  # type: ignore[attr-defined]

    dispatcher = proxy.system.dispatcher
    dispatcher.add_listener(EVENT_FILTER_PROXY_REQUEST, listener)
    assert not takes_the_fast_path(proxy, "api")
    second = await client.get(url_of(proxy, "api", "/echo?n=2"))
    assert second.status_code == 200
    assert [url.endswith("/echo?n=2") for url in seen] == [True]

    dispatcher.remove_listener(EVENT_FILTER_PROXY_REQUEST, listener)
    assert takes_the_fast_path(proxy, "api")
    third = await client.get(url_of(proxy, "api", "/echo?n=3"))
    assert third.json()["target"] == "/echo?n=3"
    assert len(seen) == 1


async def test_a_core_response_listener_added_while_serving_may_replace_the_answer(
    proxy: ProxyServer, client: ferryman.AsyncClient
) -> None:
    def replace(event: Any) -> None:
        event.response = Response(418, content=b"teapot")

    assert (await client.get(url_of(proxy, "api", "/echo"))).status_code == 200
    proxy.system.dispatcher.add_listener(EVENT_CORE_RESPONSE, replace)
    answer = await client.get(url_of(proxy, "api", "/echo"))
    assert (answer.status_code, answer.content) == (418, b"teapot")


async def test_a_middleware_added_while_serving_runs_from_the_next_request(
    proxy: ProxyServer, client: ferryman.AsyncClient
) -> None:
    before = await client.get(url_of(proxy, "api", "/echo"))
    assert "x-edge" not in before.headers

    @handler_of(proxy, "api").client_edge
    def mark(ctx: ProxyContext) -> Iterator[None]:
        yield
        assert ctx.response is not None
        ctx.response.headers["X-Edge"] = "seen"

    assert not takes_the_fast_path(proxy, "api")
    after = await client.get(url_of(proxy, "api", "/echo"))
    assert after.headers["x-edge"] == "seen"
    assert after.json()["target"] == "/echo"


async def test_an_error_handler_set_while_serving_answers_the_next_failure(
    proxy: ProxyServer, client: ferryman.AsyncClient
) -> None:
    default = await client.get(url_of(proxy, "down", "/"))
    assert default.status_code == 502
    assert json.loads(default.content)["status"] == 502

    async def apologise(exc: Exception, ctx: ProxyContext) -> Response:
        return Response(503, content=b"sorry: " + type(exc).__name__.encode())

    handler_of(proxy, "down").error_handler = apologise
    custom = await client.get(url_of(proxy, "down", "/"))
    assert custom.status_code == 503
    assert custom.content.startswith(b"sorry: ")


async def test_an_application_mounts_an_asgi_app_on_the_kernel_port(
    proxy: ProxyServer, client: ferryman.AsyncClient
) -> None:
    async def page(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": scope["path"].encode()})

    proxy.system.provider.resolve(ProxyEndpoints).mount("/dash", ASGIApp(page))
    response = await client.get(url_of(proxy, "kernel", "/dash/x"))
    assert (response.status_code, response.text) == (200, "/dash/x")
    assert (await client.get(url_of(proxy, "kernel", "/other"))).status_code == 404
    # An endpoint's own port still relays everything, the mount's prefix included.
    response = await client.get(url_of(proxy, "api", "/dash/x"))
    assert response.json()["target"] == "/dash/x"
