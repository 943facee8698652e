"""The filter events of the outbound transport (HARP's http_client semantics)."""

from __future__ import annotations

import pytest

import ferryman
from ferryman.client.filtering import (
    EVENT_FILTER_HTTP_CLIENT_REQUEST,
    EVENT_FILTER_HTTP_CLIENT_RESPONSE,
    AsyncFilterableTransport,
    HttpClientFilterEvent,
)
from tests.servers.edge import EdgeServer
from tests.servers.httpbin_server import HttpbinServer


async def test_a_forged_response_bypasses_the_network(edge: EdgeServer) -> None:
    dispatcher = ferryman.EventDispatcher()
    seen: list[HttpClientFilterEvent] = []

    async def forge(event: HttpClientFilterEvent) -> None:
        event.response = ferryman.Response(200, json={"forged": True})

    async def on_response(event: HttpClientFilterEvent) -> None:
        seen.append(event)

    dispatcher.add_listener(EVENT_FILTER_HTTP_CLIENT_REQUEST, forge)
    dispatcher.add_listener(EVENT_FILTER_HTTP_CLIENT_RESPONSE, on_response)
    before = len(edge.requests)
    async with ferryman.AsyncClient(dispatcher=dispatcher, trust_env=False) as client:
        response = await client.get(f"{edge.url}/echo")
    assert response.json() == {"forged": True}
    assert len(edge.requests) == before  # nothing reached the server
    assert len(seen) == 1
    assert seen[0].response is not None and seen[0].request.url.path == "/echo"


async def test_response_listeners_see_the_same_event_and_may_replace_the_response(
    httpbin: HttpbinServer,
) -> None:
    dispatcher = ferryman.EventDispatcher()
    events: list[HttpClientFilterEvent] = []

    def on_request(event: HttpClientFilterEvent) -> None:
        assert event.response is None
        event.request.headers["X-Filtered"] = "yes"
        events.append(event)

    async def on_response(event: HttpClientFilterEvent) -> None:
        events.append(event)
        assert event.response is not None
        body = await event.response.aread()
        event.response = ferryman.Response(
            299, content=body, headers=[(b"Content-Type", b"application/json")]
        )

    dispatcher.add_listener(EVENT_FILTER_HTTP_CLIENT_REQUEST, on_request)
    dispatcher.add_listener(EVENT_FILTER_HTTP_CLIENT_RESPONSE, on_response)
    async with ferryman.AsyncClient(dispatcher=dispatcher, trust_env=False) as client:
        response = await client.get(f"{httpbin.url}/headers")
    assert response.status_code == 299
    assert response.json()["headers"]["X-Filtered"] == "yes"
    assert events[0] is events[1]


async def test_stop_propagation_skips_all_further_filtering(httpbin: HttpbinServer) -> None:
    dispatcher = ferryman.EventDispatcher()
    calls: list[str] = []

    def first(event: HttpClientFilterEvent) -> None:
        calls.append("first")
        event.stop_propagation()

    dispatcher.add_listener(EVENT_FILTER_HTTP_CLIENT_REQUEST, first, priority=10)
    dispatcher.add_listener(EVENT_FILTER_HTTP_CLIENT_REQUEST, lambda e: calls.append("second"))
    dispatcher.add_listener(EVENT_FILTER_HTTP_CLIENT_RESPONSE, lambda e: calls.append("response"))
    async with ferryman.AsyncClient(dispatcher=dispatcher, trust_env=False) as client:
        response = await client.get(f"{httpbin.url}/get")
    assert response.status_code == 200  # the request still went out
    assert calls == ["first"]


async def test_any_client_can_be_built_on_the_filterable_transport(
    httpbin: HttpbinServer,
) -> None:
    dispatcher = ferryman.EventDispatcher()
    dispatcher.add_listener(
        EVENT_FILTER_HTTP_CLIENT_REQUEST,
        lambda e: setattr(e, "response", ferryman.Response(204)),
    )
    transport = AsyncFilterableTransport(ferryman.AsyncConnectionPool(), dispatcher)
    async with ferryman.AsyncClient(transport=transport, trust_env=False) as client:
        assert (await client.get(f"{httpbin.url}/get")).status_code == 204
        with pytest.raises(ValueError, match="transport"):
            await client.get(f"{httpbin.url}/get", verify=False)


async def test_a_removed_response_is_a_clear_error(httpbin: HttpbinServer) -> None:
    dispatcher = ferryman.EventDispatcher()
    dispatcher.add_listener(
        EVENT_FILTER_HTTP_CLIENT_RESPONSE, lambda e: setattr(e, "response", None)
    )
    async with ferryman.AsyncClient(dispatcher=dispatcher, trust_env=False) as client:
        with pytest.raises(RuntimeError, match="removed the response"):
            await client.get(f"{httpbin.url}/get")
