"""The events of one proxied transaction, in order and with their classes, and forging answers.

A system is built from a configuration (the ``proxy`` application, one endpoint under a path),
its kernel served by uvicorn, and listeners recorded on the system's dispatcher.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

import ferryman
from ferryman import EVENT_FILTER_HTTP_CLIENT_REQUEST, EVENT_FILTER_HTTP_CLIENT_RESPONSE
from ferryman.client.filtering import HttpClientFilterEvent
from ferryman.events import Event
from ferryman.http import Response
from ferryman.proxy import (
    EVENT_FILTER_PROXY_REQUEST,
    EVENT_FILTER_PROXY_RESPONSE,
    ProxyContext,
    ProxyEndpoints,
    ProxyFilterEvent,
    build_kernel,
)
from ferryman.server import (
    EVENT_CORE_CONTROLLER,
    EVENT_CORE_REQUEST,
    EVENT_CORE_RESPONSE,
    ControllerEvent,
    RequestEvent,
    ResponseEvent,
)
from ferryman.system import System, SystemBuilder
from tests.proxy.conftest import Serve
from tests.servers.edge import EdgeServer

TRANSACTION = [
    (EVENT_CORE_REQUEST, RequestEvent),
    (EVENT_CORE_CONTROLLER, ControllerEvent),
    (EVENT_FILTER_PROXY_REQUEST, ProxyFilterEvent),
    (EVENT_FILTER_HTTP_CLIENT_REQUEST, HttpClientFilterEvent),
    (EVENT_FILTER_HTTP_CLIENT_RESPONSE, HttpClientFilterEvent),
    (EVENT_FILTER_PROXY_RESPONSE, ProxyFilterEvent),
    (EVENT_CORE_RESPONSE, ResponseEvent),
]


@pytest.fixture
async def system(edge: EdgeServer) -> AsyncIterator[System]:
    config = {
        "applications": ["proxy"],
        "proxy": {"endpoints": [{"name": "api", "path": "/api", "url": edge.url}]},
    }
    system = await SystemBuilder(config).build(build_kernel)
    yield system
    await system.dispose()


def record(system: System) -> list[tuple[str, Event]]:
    seen: list[tuple[str, Event]] = []

    def listener(name: str, event: Event) -> None:
        seen.append((name, event))

    for name, _ in TRANSACTION:
        system.dispatcher.add_listener(name, functools.partial(listener, name))
    return seen


async def test_every_event_fires_in_order_with_its_class(
    system: System, serve: Serve, client: ferryman.AsyncClient
) -> None:
    seen = record(system)
    handler = system.provider.resolve(ProxyEndpoints)["api"]

    @handler.client_edge
    def middleware(ctx: ProxyContext) -> Iterator[None]:
        seen.append(("middleware in", Event()))
        yield
        seen.append(("middleware out", Event()))

    proxy = await serve(system.asgi_app)
    response = await client.get(f"{proxy.url}/api/echo?x=1")
    assert response.status_code == 200
    assert response.json()["target"] == "/api/echo?x=1"
    names = [name for name, _ in seen]
    assert names == [
        EVENT_CORE_REQUEST,
        EVENT_CORE_CONTROLLER,
        EVENT_FILTER_PROXY_REQUEST,
        "middleware in",
        EVENT_FILTER_HTTP_CLIENT_REQUEST,
        EVENT_FILTER_HTTP_CLIENT_RESPONSE,
        "middleware out",
        EVENT_FILTER_PROXY_RESPONSE,
        EVENT_CORE_RESPONSE,
    ]
    transaction = [(name, event) for name, event in seen if not name.startswith("middleware")]
    for (name, event), (expected_name, cls) in zip(transaction, TRANSACTION, strict=True):
        assert name == expected_name
        assert type(event) is cls
    proxy_request = transaction[2][1]
    proxy_response = transaction[5][1]
    assert proxy_request is proxy_response  # one instance for both proxy filter events
    assert isinstance(proxy_request, ProxyFilterEvent)
    assert proxy_request.endpoint == "api"
    assert proxy_request.context is not None and proxy_request.context.endpoint == "api"
    assert transaction[3][1] is transaction[4][1]


async def forge(status: int, event: Any) -> None:
    event.response = Response(status, text=f"forged {status}")


@pytest.mark.parametrize(
    ("name", "status", "upstream_called"),
    [
        (EVENT_FILTER_PROXY_REQUEST, 201, False),
        (EVENT_FILTER_HTTP_CLIENT_REQUEST, 202, False),
        (EVENT_FILTER_HTTP_CLIENT_RESPONSE, 203, True),
        (EVENT_FILTER_PROXY_RESPONSE, 207, True),
    ],
)
async def test_a_listener_forges_the_answer_at_each_filter_event(
    system: System,
    serve: Serve,
    client: ferryman.AsyncClient,
    edge: EdgeServer,
    name: str,
    status: int,
    upstream_called: bool,
) -> None:
    system.dispatcher.add_listener(name, functools.partial(forge, status))
    middleware_ran: list[bool] = []
    handler = system.provider.resolve(ProxyEndpoints)["api"]
    handler.client_edge(lambda ctx: middleware_ran.append(True))
    proxy = await serve(system.asgi_app)
    before = len(edge.requests)
    response = await client.get(f"{proxy.url}/api/echo")
    assert response.status_code == status
    assert response.text == f"forged {status}"
    assert (len(edge.requests) > before) is upstream_called
    # A response forged on proxy.filter.request skips the middlewares, too.
    assert middleware_ran == ([] if name == EVENT_FILTER_PROXY_REQUEST else [True])


async def test_stop_propagation_skips_the_response_filter(
    system: System, serve: Serve, client: ferryman.AsyncClient
) -> None:
    def answer(event: ProxyFilterEvent) -> None:
        event.response = Response(200, text="from cache")
        event.stop_propagation()

    filtered: list[Event] = []
    system.dispatcher.add_listener(EVENT_FILTER_PROXY_REQUEST, answer)
    system.dispatcher.add_listener(EVENT_FILTER_PROXY_RESPONSE, filtered.append)
    proxy = await serve(system.asgi_app)
    assert (await client.get(f"{proxy.url}/api/x")).text == "from cache"
    assert filtered == []


async def test_a_request_listener_changes_what_goes_upstream(
    system: System, serve: Serve, client: ferryman.AsyncClient
) -> None:
    def change(event: ProxyFilterEvent) -> None:
        event.request.headers["X-Added"] = "by listener"
        event.request.url = event.request.url.copy_with(path="/api/changed")

    system.dispatcher.add_listener(EVENT_FILTER_PROXY_REQUEST, change)
    proxy = await serve(system.asgi_app)
    echo = (await client.get(f"{proxy.url}/api/original?q=1")).json()
    assert echo["target"] == "/api/changed?q=1"
    assert ["X-Added", "by listener"] in echo["headers"]


async def test_a_failing_listener_gives_a_json_500(
    system: System, serve: Serve, client: ferryman.AsyncClient
) -> None:
    def broken(event: ProxyFilterEvent) -> None:
        raise RuntimeError("listener bug")

    system.dispatcher.add_listener(EVENT_FILTER_PROXY_RESPONSE, broken)
    proxy = await serve(system.asgi_app)
    response = await client.get(f"{proxy.url}/api/echo")
    assert response.status_code == 500
    assert response.json() == {"status": 500, "message": "Internal Server Error"}
