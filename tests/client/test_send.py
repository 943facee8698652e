"""AsyncClient.send: a prepared request goes out as it is, through the usual transport path."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

import ferryman
from ferryman import (
    EVENT_FILTER_HTTP_CLIENT_REQUEST,
    EVENT_FILTER_HTTP_CLIENT_RESPONSE,
    EventDispatcher,
    HttpClientFilterEvent,
    Request,
    Response,
)
from tests.servers.edge import EdgeServer
from tests.servers.httpbin_server import HttpbinServer
from tests.servers.uvicorn_server import UvicornServer


@pytest.fixture
async def client() -> AsyncIterator[ferryman.AsyncClient]:
    async with ferryman.AsyncClient(
        trust_env=False, headers={"X-Session": "yes"}, cookies={"jar": "1"}
    ) as client:
        yield client


def header_names(echo: dict[str, object]) -> list[str]:
    return [name.lower() for name, _ in echo["headers"]]  # type: ignore[attr-defined]


async def test_send_adds_no_default_header_and_no_cookie(
    client: ferryman.AsyncClient, edge: EdgeServer
) -> None:
    request = Request("GET", f"{edge.url}/echo", headers={"X-Mine": "1"})
    response = await client.send(request)
    echo = response.json()
    assert header_names(echo) == ["x-mine", "host"]
    assert echo["target"] == "/echo"


async def test_send_keeps_the_target_extension_byte_for_byte(
    client: ferryman.AsyncClient, edge: EdgeServer
) -> None:
    request = Request("GET", f"{edge.url}/echo")
    request.extensions["target"] = b"/echo/a%2Fb/%7e?q=%20&x=%zz"
    echo = (await client.send(request)).json()
    assert echo["target"] == "/echo/a%2Fb/%7e?q=%20&x=%zz"


async def test_send_does_not_follow_redirects_unless_asked(
    client: ferryman.AsyncClient, httpbin: HttpbinServer
) -> None:
    request = Request("GET", f"{httpbin.url}/redirect-to?url=/get&status_code=302")
    response = await client.send(request)
    assert response.status_code == 302
    request = Request("GET", f"{httpbin.url}/redirect-to?url=/get&status_code=302")
    response = await client.send(request, allow_redirects=True)
    assert response.status_code == 200
    assert len(response.history) == 1


async def test_send_streams_when_asked_and_leaves_the_body_encoded(
    client: ferryman.AsyncClient, uvicorn_server: UvicornServer
) -> None:
    request = Request("GET", f"{uvicorn_server.url}/encoded?coding=gzip&lines=50")
    response = await client.send(request, stream=True, decompress=False)
    assert response.headers["content-encoding"] == "gzip"
    raw = await response.aread()
    assert raw[:2] == b"\x1f\x8b"  # the gzip magic: not decoded
    request = Request("GET", f"{uvicorn_server.url}/encoded?coding=gzip&lines=50")
    decoded = await client.send(request)
    assert decoded.content.startswith(b"000000 ferryman")


async def test_send_fires_the_filter_events_and_takes_a_forged_response(
    edge: EdgeServer,
) -> None:
    dispatcher = EventDispatcher()
    seen: list[tuple[str, str]] = []

    def on_request(event: HttpClientFilterEvent) -> None:
        seen.append(("request", str(event.request.url)))
        if event.request.url.path == "/forged":
            event.response = Response(203, text="forged")

    def on_response(event: HttpClientFilterEvent) -> None:
        assert event.response is not None
        seen.append(("response", str(event.response.status_code)))

    dispatcher.add_listener(EVENT_FILTER_HTTP_CLIENT_REQUEST, on_request)
    dispatcher.add_listener(EVENT_FILTER_HTTP_CLIENT_RESPONSE, on_response)
    async with ferryman.AsyncClient(trust_env=False, dispatcher=dispatcher) as client:
        response = await client.send(Request("GET", f"{edge.url}/echo"))
        assert response.status_code == 200
        forged = await client.send(Request("GET", f"{edge.url}/forged"))
        assert (forged.status_code, forged.text) == (203, "forged")
    assert seen == [
        ("request", f"{edge.url}/echo"),
        ("response", "200"),
        ("request", f"{edge.url}/forged"),
        ("response", "203"),
    ]


async def test_send_applies_the_request_timeout_extension_or_the_given_one(
    client: ferryman.AsyncClient, edge: EdgeServer
) -> None:
    request = Request("GET", f"{edge.url}/slow-head?delay=2")
    request.extensions["timeout"] = ferryman.Timeout(0.2).as_dict()
    with pytest.raises(ferryman.ReadTimeout):
        await client.send(request)
    request = Request("GET", f"{edge.url}/slow-head?delay=2")
    with pytest.raises(ferryman.ReadTimeout):
        await client.send(request, timeout=0.2)


async def test_send_on_a_closed_client_refuses(edge: EdgeServer) -> None:
    client = ferryman.AsyncClient(trust_env=False)
    await client.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await client.send(Request("GET", f"{edge.url}/echo"))
