"""httpx Responses set by http_client filter listeners (as HARP's are written) reach the caller
as ferryman responses: status, reason, headers and body, read or streamed, against httpbin."""

from __future__ import annotations

import gzip

import httpx
import pytest

import ferryman
from ferryman.client.filtering import (
    EVENT_FILTER_HTTP_CLIENT_REQUEST,
    EVENT_FILTER_HTTP_CLIENT_RESPONSE,
    HttpClientFilterEvent,
)
from ferryman.client.httpx_responses import as_ferryman_response
from ferryman.events import EventDispatcher


def test_a_read_body_keeps_its_bytes_headers_and_reason() -> None:
    response = as_ferryman_response(
        httpx.Response(
            201,
            content=b"made",
            headers=[("X-Many", "1"), ("X-Many", "2")],
            extensions={"reason_phrase": b"Made It"},
        ),
        "test",
    )
    assert (response.status_code, response.reason_phrase) == (201, "Made It")
    assert response.headers.get_list("x-many") == ["1", "2"]
    assert response.content == b"made"
    assert response.headers["content-length"] == "4"


def test_a_decoded_body_loses_the_content_encoding_it_no_longer_has() -> None:
    body = b'{"compressed": false}' * 10
    forged = httpx.Response(200, content=gzip.compress(body), headers={"Content-Encoding": "gzip"})
    response = as_ferryman_response(forged, "test")
    assert "content-encoding" not in response.headers
    assert response.content == body
    assert response.headers["content-length"] == str(len(body))


def test_anything_else_is_refused_naming_the_event() -> None:
    with pytest.raises(TypeError, match=r"a http_client\.filter\.request listener .* 'dict'"):
        as_ferryman_response({"status": 200}, "http_client.filter.request")


async def test_a_streamed_httpx_answer_is_relayed_raw_and_decoded_by_the_client(httpbin) -> None:
    dispatcher = EventDispatcher()
    streamed: list[httpx.Response] = []

    async with httpx.AsyncClient() as other:

        async def fetch_elsewhere(event: HttpClientFilterEvent) -> None:
            request = other.build_request("GET", f"{httpbin.url}/gzip")
            response = await other.send(request, stream=True)
            streamed.append(response)
            event.response = response  # (what HARP listeners do)

        dispatcher.add_listener(EVENT_FILTER_HTTP_CLIENT_REQUEST, fetch_elsewhere)
        async with ferryman.AsyncClient(dispatcher=dispatcher, trust_env=False) as client:
            response = await client.get("http://example.invalid/")
            assert response.headers["content-encoding"] == "gzip"  # raw, as it came
            assert response.json()["gzipped"] is True  # ferryman's client decoded it
        assert streamed[0].is_closed


async def test_a_response_listener_may_replace_the_answer_with_an_httpx_one(httpbin) -> None:
    dispatcher = EventDispatcher()

    async def replace(event: HttpClientFilterEvent) -> None:
        assert event.response is not None
        await event.response.aclose()
        event.response = httpx.Response(503, json={"maintenance": True})

    dispatcher.add_listener(EVENT_FILTER_HTTP_CLIENT_RESPONSE, replace)
    async with ferryman.AsyncClient(dispatcher=dispatcher, trust_env=False) as client:
        response = await client.get(f"{httpbin.url}/get")
    assert (response.status_code, response.json()) == (503, {"maintenance": True})
