"""HARP's "HTTP Client Events" document (../shared/reference/harp-http-client-events.txt) on
ferryman.

The two examples are the document's code with the import lines changed (whistle's dispatcher
is ``ferryman.events.AsyncEventDispatcher``, HARP's http_client events are
``ferryman.client.filtering``'s); each example's ``if __name__ == "__main__":`` block is the
body of a function the tests call. The tests then do what the document says the listeners are
for, with a ferryman client sending to local servers (httpbin, a port where nothing listens)
instead of an external service: the listener runs when the request is about to leave, a
response set on the request event is returned without any request, the response event sees
the external or forged answer and may replace it, and stopping propagation skips the rest of
the filtering, for both events. Forged responses are httpx ``Response`` objects, as a listener
written for HARP builds them.
"""

from __future__ import annotations

import httpx
import pytest

import ferryman

# The examples' imports, changed: `from whistle import AsyncEventDispatcher` and
# `from harp_apps.http_client.events import EVENT_FILTER_HTTP_CLIENT_..., HttpClientFilterEvent`.
from ferryman.client.filtering import (
    EVENT_FILTER_HTTP_CLIENT_REQUEST,
    EVENT_FILTER_HTTP_CLIENT_RESPONSE,
    HttpClientFilterEvent,
)
from ferryman.events import AsyncEventDispatcher

# -- "⚡️ EVENT_FILTER_HTTP_CLIENT_REQUEST", the document's example -----------------------------


async def on_filter_request(event: HttpClientFilterEvent):
    print(f"Filtering request: {event}")


def request_example_main() -> AsyncEventDispatcher:
    # (the example's `if __name__ == "__main__":` block)
    # for example completeness only, you should use the system dispatcher
    dispatcher = AsyncEventDispatcher()
    dispatcher.add_listener(EVENT_FILTER_HTTP_CLIENT_REQUEST, on_filter_request)
    return dispatcher


# -- "⚡️ EVENT_FILTER_HTTP_CLIENT_RESPONSE", the document's example ----------------------------


async def on_filter_response(event: HttpClientFilterEvent):
    print(f"Filtering response: {event}")


def response_example_main() -> AsyncEventDispatcher:
    # (the example's `if __name__ == "__main__":` block)
    # for example completeness only, you should use the system dispatcher
    dispatcher = AsyncEventDispatcher()
    dispatcher.add_listener(EVENT_FILTER_HTTP_CLIENT_RESPONSE, on_filter_response)
    return dispatcher


# -- what the document says they do ----------------------------------------------------------


def client_with(dispatcher: AsyncEventDispatcher) -> ferryman.AsyncClient:
    return ferryman.AsyncClient(dispatcher=dispatcher, trust_env=False, timeout=10)


async def test_the_request_listener_runs_when_a_request_is_about_to_be_sent(
    httpbin, capsys: pytest.CaptureFixture[str]
) -> None:
    dispatcher = request_example_main()
    async with client_with(dispatcher) as client:
        response = await client.get(f"{httpbin.url}/get", params={"page": "2"})
    assert response.status_code == 200
    assert response.json()["args"] == {"page": "2"}  # the request did go out
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1  # once per request
    assert lines[0].startswith("Filtering request: <HttpClientFilterEvent ")
    assert f"{httpbin.url}/get?page=2" in lines[0]
    assert lines[0].endswith("-> None>")  # before any response


async def test_a_response_set_by_a_request_listener_is_returned_and_nothing_is_sent(
    refused_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    dispatcher = request_example_main()

    async def forge(event: HttpClientFilterEvent):
        event.response = httpx.Response(200, json={"forged": True}, headers={"X-Forged": "yes"})

    dispatcher.add_listener(EVENT_FILTER_HTTP_CLIENT_REQUEST, forge, priority=10)  # after
    async with client_with(dispatcher) as client:
        # Nothing listens there: an attempt to connect would raise ConnectError.
        response = await client.get(f"{refused_url}/users/1")
    assert response.status_code == 200
    assert response.json() == {"forged": True}
    assert response.headers["x-forged"] == "yes"
    assert response.url == f"{refused_url}/users/1"
    assert capsys.readouterr().out.startswith("Filtering request: ")


async def test_the_response_listener_sees_the_external_services_answer_on_the_same_event(
    httpbin, capsys: pytest.CaptureFixture[str]
) -> None:
    dispatcher = response_example_main()
    seen: list[HttpClientFilterEvent] = []

    async def remember(event: HttpClientFilterEvent):
        seen.append(event)

    dispatcher.add_listener(EVENT_FILTER_HTTP_CLIENT_REQUEST, remember)
    dispatcher.add_listener(EVENT_FILTER_HTTP_CLIENT_RESPONSE, remember)
    async with client_with(dispatcher) as client:
        response = await client.get(f"{httpbin.url}/status/201")
    assert response.status_code == 201
    out = capsys.readouterr().out
    assert out.startswith("Filtering response: <HttpClientFilterEvent ")
    assert out.rstrip().endswith("-> <Response [201 CREATED]>>")
    assert len(seen) == 2 and seen[0] is seen[1]  # one instance for both events


async def test_the_response_listener_also_sees_a_forged_response(
    refused_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    dispatcher = response_example_main()

    async def forge(event: HttpClientFilterEvent):
        event.response = httpx.Response(404, text="no such user")

    dispatcher.add_listener(EVENT_FILTER_HTTP_CLIENT_REQUEST, forge)
    async with client_with(dispatcher) as client:
        response = await client.get(f"{refused_url}/users/2")
    assert (response.status_code, response.text) == (404, "no such user")
    assert "-> <Response [404 Not Found]>>" in capsys.readouterr().out


async def test_a_response_listener_changes_the_response_returned_to_the_caller(
    httpbin,
) -> None:
    dispatcher = response_example_main()

    async def replace(event: HttpClientFilterEvent):
        assert event.response is not None and event.response.status_code == 200
        await event.response.aclose()  # (the external answer is not used: free its connection)
        event.response = httpx.Response(418, text="short and stout", headers={"X-Teapot": "1"})

    dispatcher.add_listener(EVENT_FILTER_HTTP_CLIENT_RESPONSE, replace)
    async with client_with(dispatcher) as client:
        response = await client.get(f"{httpbin.url}/get")
    assert response.status_code == 418
    assert response.text == "short and stout"
    assert response.headers["x-teapot"] == "1"


# -- "Gotchas" -------------------------------------------------------------------------------


async def test_stopping_propagation_skips_all_further_filtering_for_both_events(
    httpbin, capsys: pytest.CaptureFixture[str]
) -> None:
    dispatcher = request_example_main()
    dispatcher.add_listener(EVENT_FILTER_HTTP_CLIENT_RESPONSE, on_filter_response)

    async def stop(event: HttpClientFilterEvent):
        event.stop_propagation()

    # whistle's priorities: the lower number runs first, so this one runs before the example's.
    dispatcher.add_listener(EVENT_FILTER_HTTP_CLIENT_REQUEST, stop, priority=-10)
    async with client_with(dispatcher) as client:
        response = await client.get(f"{httpbin.url}/get")
    assert response.status_code == 200  # the request still goes out: only filtering stops
    assert capsys.readouterr().out == ""


async def test_a_response_forged_before_the_http_client_bypasses_its_events(
    serve, refused_url: str, client: ferryman.AsyncClient, capsys: pytest.CaptureFixture[str]
) -> None:
    # "It will be bypassed if a response has been forged before": here by the proxy's
    # proxy.filter.request, in front of the http client that would call the upstream.
    from ferryman.proxy import EVENT_FILTER_PROXY_REQUEST, HTTPProxyHandler, ProxyContext

    dispatcher = request_example_main()
    dispatcher.add_listener(EVENT_FILTER_HTTP_CLIENT_RESPONSE, on_filter_response)

    async def answer_here(event):
        event.response = ferryman.Response(200, json={"from": "proxy"})

    dispatcher.add_listener(EVENT_FILTER_PROXY_REQUEST, answer_here)
    handler = HTTPProxyHandler(ProxyContext(url=refused_url), dispatcher=dispatcher)
    proxy = await serve(handler)
    response = await client.get(f"{proxy.url}/anything")
    assert response.json() == {"from": "proxy"}
    assert capsys.readouterr().out == ""
    await handler.aclose()
