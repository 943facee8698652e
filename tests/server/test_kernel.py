"""The ASGI kernel, driven by hand as an ASGI app and served by a real uvicorn on 127.0.0.1."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest

import ferryman
from ferryman.events import Event, EventDispatcher
from ferryman.http import AsyncIteratorByteStream, Request, Response
from ferryman.server import (
    EVENT_CORE_CONTROLLER,
    EVENT_CORE_REQUEST,
    EVENT_CORE_RESPONSE,
    EVENT_CORE_STARTED,
    EVENT_CORE_VIEW,
    ASGIApp,
    ASGIKernel,
    ControllerEvent,
    DefaultControllerResolver,
    PathPrefixResolver,
    RequestEvent,
    ResponseEvent,
    ViewEvent,
)
from ferryman.server.controllers import Message
from tests.server.helpers import ASGICall, Serve, call, hello, http_scope, record_all


async def data(request: Request) -> object:
    return {"method": request.method, "query": request.url.query.decode()}


async def failing(request: Request) -> Response:
    raise ValueError("secret-token-123")


# -- events ------------------------------------------------------------------------------------


async def test_every_event_fires_in_order_with_its_class(
    serve: Serve, client: ferryman.AsyncClient
) -> None:
    dispatcher = EventDispatcher()
    seen = record_all(dispatcher)
    server = serve(ASGIKernel(dispatcher, PathPrefixResolver({"/data": data})))
    response = await client.get(f"{server.url}/data?x=1")
    assert response.json() == {"method": "GET", "query": "x=1"}
    assert response.headers["content-type"] == "application/json"
    assert [(name, type(event)) for name, event in seen] == [
        (EVENT_CORE_STARTED, Event),
        (EVENT_CORE_REQUEST, RequestEvent),
        (EVENT_CORE_CONTROLLER, ControllerEvent),
        (EVENT_CORE_VIEW, ViewEvent),
        (EVENT_CORE_RESPONSE, ResponseEvent),
    ]
    request_event = seen[1][1]
    assert isinstance(request_event, RequestEvent)
    assert str(request_event.request.url) == f"http://127.0.0.1:{server.port}/data?x=1"
    assert all(getattr(event, "request", None) is request_event.request for _, event in seen[1:])
    controller_event, view_event, response_event = (event for _, event in seen[2:])
    assert isinstance(controller_event, ControllerEvent) and controller_event.controller is data
    assert isinstance(view_event, ViewEvent) and view_event.value == response.json()
    assert isinstance(response_event, ResponseEvent)
    assert response_event.response.status_code == 200


async def test_a_response_from_the_controller_skips_the_view_event() -> None:
    dispatcher = EventDispatcher()
    seen = record_all(dispatcher)
    asgi = await call(ASGIKernel(dispatcher, PathPrefixResolver({"/": hello})), http_scope("/a"))
    assert (asgi.status, asgi.body) == (200, b"hello /a")
    assert [name for name, _ in seen] == [
        EVENT_CORE_REQUEST,
        EVENT_CORE_CONTROLLER,
        EVENT_CORE_RESPONSE,
    ]


async def test_no_event_object_is_built_without_listeners(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[type[Event]] = []
    for cls in (RequestEvent, ControllerEvent, ViewEvent, ResponseEvent):
        original = cls.__init__

        def spy(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> None:
            built.append(type(self))
            _original(self, *args, **kwargs)

        monkeypatch.setattr(cls, "__init__", spy)
    kernel = ASGIKernel(EventDispatcher(), PathPrefixResolver({"/data": data}))
    assert (await call(kernel, http_scope("/data"))).status == 200
    assert built == []
    kernel.dispatcher.add_listener(EVENT_CORE_VIEW, lambda event: None)
    assert (await call(kernel, http_scope("/data"))).status == 200
    assert built == [ViewEvent]


async def test_a_request_listener_sets_the_controller_and_the_resolver_is_skipped(
    serve: Serve, client: ferryman.AsyncClient
) -> None:
    asked: list[str] = []

    class Resolver:
        def resolve(self, request: Request) -> Any:
            asked.append(request.url.path)
            return hello

    dispatcher = EventDispatcher()

    def route_admin(event: RequestEvent) -> None:
        if event.request.url.path == "/admin":
            event.set_controller(data)

    dispatcher.add_listener(EVENT_CORE_REQUEST, route_admin)
    server = serve(ASGIKernel(dispatcher, Resolver()))
    assert (await client.get(f"{server.url}/admin")).json()["method"] == "GET"
    assert asked == []
    assert (await client.get(f"{server.url}/other")).text == "hello /other"
    assert asked == ["/other"]


async def test_a_controller_listener_wraps_the_controller(
    serve: Serve, client: ferryman.AsyncClient
) -> None:
    dispatcher = EventDispatcher()

    def decorate(event: ControllerEvent) -> None:
        inner = event.controller
        assert not isinstance(inner, ASGIApp)

        async def wrapped(request: Request) -> object:
            response = await inner(request)
            assert isinstance(response, Response)
            response.headers["X-Wrapped"] = "yes"
            return response

        event.controller = wrapped

    dispatcher.add_listener(EVENT_CORE_CONTROLLER, decorate)
    server = serve(ASGIKernel(dispatcher, PathPrefixResolver({"/": hello})))
    response = await client.get(f"{server.url}/w")
    assert response.text == "hello /w"
    assert response.headers["x-wrapped"] == "yes"


async def test_a_controller_listener_replaces_the_controller() -> None:
    dispatcher = EventDispatcher()
    dispatcher.add_listener(EVENT_CORE_CONTROLLER, lambda event: setattr(event, "controller", data))
    asgi = await call(ASGIKernel(dispatcher, PathPrefixResolver({"/": hello})), http_scope("/"))
    assert asgi.body == b'{"method":"GET","query":""}'


async def test_a_response_listener_replaces_the_response(
    serve: Serve, client: ferryman.AsyncClient
) -> None:
    dispatcher = EventDispatcher()

    def replace(event: ResponseEvent) -> None:
        event.response = Response(
            202, text=f"was {event.response.status_code}", headers={"X-Filtered": "1"}
        )

    dispatcher.add_listener(EVENT_CORE_RESPONSE, replace)
    server = serve(ASGIKernel(dispatcher, PathPrefixResolver({"/hello": hello})))
    response = await client.get(f"{server.url}/hello")
    assert (response.status_code, response.text) == (202, "was 200")
    assert response.headers["x-filtered"] == "1"
    # Error answers go through the response event too.
    assert (await client.get(f"{server.url}/missing")).text == "was 404"


async def test_a_view_listener_renders_and_stops_the_others(
    serve: Serve, client: ferryman.AsyncClient
) -> None:
    async def text_value(request: Request) -> object:
        return "plain value"

    dispatcher = EventDispatcher()
    later: list[ViewEvent] = []

    def render(event: ViewEvent) -> None:
        if isinstance(event.value, str):
            event.set_response(Response(200, text=event.value.upper()))

    dispatcher.add_listener(EVENT_CORE_VIEW, render, priority=10)
    dispatcher.add_listener(EVENT_CORE_VIEW, later.append)
    server = serve(ASGIKernel(dispatcher, PathPrefixResolver({"/text": text_value, "/": data})))
    assert (await client.get(f"{server.url}/text")).text == "PLAIN VALUE"
    assert later == []
    # A value the first listener does not render reaches the next one, then the JSON rule.
    assert (await client.get(f"{server.url}/json")).json() == {"method": "GET", "query": ""}
    assert len(later) == 1 and later[0].response is None


async def test_a_view_listener_may_hand_a_new_value_to_the_json_rule() -> None:
    async def rows(request: Request) -> object:
        return ("a", "b")

    dispatcher = EventDispatcher()
    dispatcher.add_listener(
        EVENT_CORE_VIEW, lambda event: setattr(event, "value", list(event.value))
    )
    asgi = await call(ASGIKernel(dispatcher, PathPrefixResolver({"/": rows})), http_scope())
    assert (asgi.status, asgi.body) == (200, b'["a","b"]')


async def test_a_value_nothing_renders_is_a_500(caplog: pytest.LogCaptureFixture) -> None:
    async def number(request: Request) -> object:
        return 42

    asgi = await call(
        ASGIKernel(EventDispatcher(), PathPrefixResolver({"/": number})), http_scope()
    )
    assert asgi.status == 500
    assert "int, which is not a Response" in caplog.text


# -- errors ------------------------------------------------------------------------------------


async def test_unresolved_requests_are_a_json_404(
    serve: Serve, client: ferryman.AsyncClient
) -> None:
    server = serve(ASGIKernel(EventDispatcher(), PathPrefixResolver({"/api": hello})))
    response = await client.get(f"{server.url}/apis")
    assert response.status_code == 404
    assert response.json() == {"status": 404, "message": "Not Found"}
    assert (await client.get(f"{server.url}/api/x")).text == "hello /api/x"
    default = serve(ASGIKernel(EventDispatcher(), DefaultControllerResolver()))
    response = await client.post(f"{default.url}/anything", content=b"ignored")
    assert (response.status_code, response.json()["status"]) == (404, 404)


async def test_controller_errors_are_a_logged_json_500_without_details(
    serve: Serve, client: ferryman.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, "ferryman.server")
    server = serve(ASGIKernel(EventDispatcher(), PathPrefixResolver({"/": failing})))
    response = await client.get(f"{server.url}/boom")
    assert response.status_code == 500
    assert response.json() == {"status": 500, "message": "Internal Server Error"}
    assert "secret-token-123" not in response.text
    assert "Traceback" not in response.text
    [record] = [r for r in caplog.records if r.name == "ferryman.server"]
    assert record.exc_info is not None and "secret-token-123" in str(record.exc_info[1])
    assert "/boom" in record.getMessage()


@pytest.mark.parametrize(
    "event_name", [EVENT_CORE_REQUEST, EVENT_CORE_CONTROLLER, EVENT_CORE_RESPONSE]
)
async def test_listener_errors_are_a_json_500(event_name: str) -> None:
    def broken(event: Event) -> None:
        raise RuntimeError("listener bug")

    dispatcher = EventDispatcher()
    dispatcher.add_listener(event_name, broken)
    asgi = await call(ASGIKernel(dispatcher, PathPrefixResolver({"/": hello})), http_scope())
    assert asgi.status == 500
    assert asgi.body == b'{"status":500,"message":"Internal Server Error"}'
    assert [m["type"] for m in asgi.sent] == ["http.response.start", "http.response.body"]


async def test_a_response_dropped_by_a_failing_listener_is_closed() -> None:
    closed: list[bool] = []

    async def body() -> AsyncIterator[bytes]:
        try:
            yield b"upstream bytes"
        finally:
            closed.append(True)

    async def streaming(request: Request) -> Response:
        stream = AsyncIteratorByteStream(body())
        await anext(aiter(stream))  # started, as a relayed upstream body would be
        return Response(200, stream=stream)

    def broken(event: ResponseEvent) -> None:
        raise RuntimeError("listener bug")

    dispatcher = EventDispatcher()
    dispatcher.add_listener(EVENT_CORE_RESPONSE, broken)
    asgi = await call(ASGIKernel(dispatcher, PathPrefixResolver({"/": streaming})), http_scope())
    assert asgi.status == 500
    assert closed == [True]


async def test_an_unparsable_target_is_a_400() -> None:
    kernel = ASGIKernel(EventDispatcher(), PathPrefixResolver({"/": hello}))
    asgi = await call(kernel, http_scope("*", method="OPTIONS"))
    assert asgi.status == 400
    assert asgi.body == b'{"status":400,"message":"Bad Request"}'


async def test_a_client_gone_mid_body_fails_the_controller_not_the_kernel() -> None:
    async def read_all(request: Request) -> Response:
        assert isinstance(request.stream, ferryman.http.AsyncByteStream)
        return Response(200, content=await request.stream.aread())

    kernel = ASGIKernel(EventDispatcher(), PathPrefixResolver({"/": read_all}))
    incoming: list[Message] = [{"type": "http.request", "body": b"part", "more_body": True}]
    asgi = await call(kernel, http_scope(method="POST"), incoming)  # then http.disconnect
    assert asgi.status == 500


async def test_an_error_after_the_response_started_reaches_the_server() -> None:
    closed: list[bool] = []

    async def body() -> AsyncIterator[bytes]:
        try:
            yield b"first"
            raise OSError("upstream reset")
        finally:
            closed.append(True)

    async def broken_stream(request: Request) -> Response:
        return Response(200, stream=AsyncIteratorByteStream(body()))

    asgi = ASGICall()
    kernel = ASGIKernel(EventDispatcher(), PathPrefixResolver({"/": broken_stream}))
    with pytest.raises(OSError, match="upstream reset"):
        await kernel(http_scope(), asgi.receive, asgi.send)
    # One head only: no 500 is sent on top of a started response, and the body is incomplete.
    assert [m["type"] for m in asgi.sent] == ["http.response.start", "http.response.body"]
    assert asgi.sent[-1]["more_body"] is True
    assert closed == [True]


async def test_unknown_scope_types_are_refused() -> None:
    kernel = ASGIKernel(EventDispatcher(), DefaultControllerResolver())
    with pytest.raises(ValueError, match="'mail'"):
        await kernel({"type": "mail"}, ASGICall().receive, ASGICall().send)


# -- lifespan ----------------------------------------------------------------------------------


async def lifespan(kernel: ASGIKernel) -> list[Message]:
    asgi = ASGICall([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    await kernel({"type": "lifespan", "asgi": {"version": "3.0"}}, asgi.receive, asgi.send)
    return asgi.sent


async def test_started_fires_once_per_kernel() -> None:
    dispatcher = EventDispatcher()
    started: list[Event] = []
    dispatcher.add_listener(EVENT_CORE_STARTED, started.append)
    kernel = ASGIKernel(dispatcher, DefaultControllerResolver())
    complete = [{"type": "lifespan.startup.complete"}, {"type": "lifespan.shutdown.complete"}]
    assert await lifespan(kernel) == complete
    assert await lifespan(kernel) == complete
    assert len(started) == 1 and type(started[0]) is Event
    await lifespan(ASGIKernel(dispatcher, DefaultControllerResolver()))
    assert len(started) == 2


async def test_a_failing_started_listener_fails_the_startup(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def no_database(event: Event) -> None:
        raise ConnectionError("database unreachable")

    dispatcher = EventDispatcher()
    dispatcher.add_listener(EVENT_CORE_STARTED, no_database)
    [failed] = await lifespan(ASGIKernel(dispatcher, DefaultControllerResolver()))
    assert failed["type"] == "lifespan.startup.failed"
    assert "database unreachable" in failed["message"]
    assert "failed to start" in caplog.text


async def test_started_fires_once_under_uvicorn(serve: Serve, client: ferryman.AsyncClient) -> None:
    dispatcher = EventDispatcher()
    started: list[str] = []
    dispatcher.add_listener(
        EVENT_CORE_STARTED, lambda event: started.append(threading.current_thread().name)
    )
    server = serve(ASGIKernel(dispatcher, PathPrefixResolver({"/": hello})))
    assert len(started) == 1  # before the server accepted anything
    for _ in range(3):
        assert (await client.get(server.url)).status_code == 200
    assert len(started) == 1


async def test_repr_names_the_resolver() -> None:
    assert "DefaultControllerResolver" in repr(
        ASGIKernel(EventDispatcher(), DefaultControllerResolver())
    )
