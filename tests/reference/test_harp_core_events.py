"""HARP's core "Events" document (../shared/reference/harp-core-events.rst) on ferryman.

The document shows each event's example as a ``literalinclude`` of a file that is not part of
it (``./examples/events.config.bind.py``...): it gives no code of its own. Each section's
listener is therefore written here in the shape the HARP http client document's examples have
("a listener coroutine for the event", registered on whistle's ``AsyncEventDispatcher``, its
import changed to ferryman's), and each test checks what the section says: who dispatches the
event, with which event class, and what a listener can do with it. Systems and kernels are
served by uvicorn on 127.0.0.1 and called with a ferryman client.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

import ferryman
from ferryman.events import AsyncEventDispatcher, Event, EventDispatcher
from ferryman.server import (
    EVENT_CORE_CONTROLLER,
    EVENT_CORE_REQUEST,
    EVENT_CORE_RESPONSE,
    EVENT_CORE_STARTED,
    EVENT_CORE_VIEW,
    ASGIKernel,
    ControllerEvent,
    PathPrefixResolver,
    RequestEvent,
    ResponseEvent,
    ViewEvent,
)
from ferryman.system import (
    EVENT_BIND,
    EVENT_BOUND,
    EVENT_READY,
    EVENT_SHUTDOWN,
    Application,
    ASGIApp,
    Container,
    OnBindEvent,
    OnBoundEvent,
    OnReadyEvent,
    OnShutdown,
    System,
    SystemBuilder,
)

# -- Configuration events: one listener coroutine per section -------------------------------


async def on_bind(event: OnBindEvent):
    print(f"bind: {type(event).__name__}")


async def on_bound(event: OnBoundEvent):
    print(f"bound: {type(event).__name__}")


async def on_ready(event: OnReadyEvent):
    print(f"ready: {type(event).__name__}")


async def on_shutdown(event: OnShutdown):
    print(f"shutdown: {type(event).__name__}")


# An application using them as the document means it to ("using the Application Protocol"):
# services on bind, live services on bound, an ASGI middleware on ready, cleanup on shutdown.


class Ticker:
    """A background task an application starts on bound and must stop on shutdown."""

    def __init__(self) -> None:
        self.ticks = 0
        self.task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        while True:
            self.ticks += 1
            await asyncio.sleep(0.01)


def with_header(app: ASGIApp, name: bytes, value: bytes) -> ASGIApp:
    """An ASGI middleware: adds one header to every response."""

    async def middleware(scope: Any, receive: Any, send: Any) -> None:
        async def send_with_header(message: Any) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (name, value)]
            await send(message)

        await app(scope, receive, send_with_header)

    return middleware


class LifecycleApp(Application):
    name = "lifecycle"

    async def on_bind(self, event: OnBindEvent):
        await on_bind(event)
        event.container.add(Ticker)

    async def on_bound(self, event: OnBoundEvent):
        await on_bound(event)
        ticker = event.provider.resolve(Ticker)
        ticker.task = asyncio.create_task(ticker.run())

    async def on_ready(self, event: OnReadyEvent):
        await on_ready(event)
        event.kernel = with_header(event.kernel, b"x-decorated-on", b"ready")

    async def on_shutdown(self, event: OnShutdown):
        await on_shutdown(event)
        ticker = event.provider.resolve(Ticker)
        assert ticker.task is not None
        ticker.task.cancel()


class RecordingBuilder(SystemBuilder):
    """Says which of the builder's dispatch methods ran, in order."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self.calls: list[str] = []

    async def dispatch_bind_event(self, *args: Any) -> OnBindEvent:
        self.calls.append("dispatch_bind_event")
        return await super().dispatch_bind_event(*args)

    async def dispatch_bound_event(self, *args: Any) -> OnBoundEvent:
        self.calls.append("dispatch_bound_event")
        return await super().dispatch_bound_event(*args)

    async def dispatch_ready_event(self, *args: Any) -> OnReadyEvent:
        self.calls.append("dispatch_ready_event")
        return await super().dispatch_ready_event(*args)


def ticker_kernel(dispatcher: EventDispatcher, provider: Container) -> ASGIApp:
    async def ticks(request: ferryman.Request) -> dict[str, int]:
        return {"ticks": provider.resolve(Ticker).ticks}

    return ASGIKernel(dispatcher, PathPrefixResolver({"/": ticks}))


CONFIG = {"applications": [f"{__name__}:LifecycleApp"]}


@pytest.fixture
async def system() -> AsyncIterator[System]:
    built = await RecordingBuilder(CONFIG).build(ticker_kernel)
    yield built
    await built.dispose()


# -- EVENT_BIND ------------------------------------------------------------------------------


async def test_bind_is_dispatched_by_dispatch_bind_event_with_an_on_bind_event(
    capsys: pytest.CaptureFixture[str],
) -> None:
    dispatcher = AsyncEventDispatcher()
    dispatcher.add_listener(EVENT_BIND, on_bind)
    container = Container()
    settings = {"applications": []}
    event = await SystemBuilder(CONFIG).dispatch_bind_event(dispatcher, container, settings)
    assert type(event) is OnBindEvent
    assert event.container is container and event.settings is settings
    assert capsys.readouterr().out == "bind: OnBindEvent\n"


async def test_building_a_system_dispatches_bind_then_bound_then_ready_through_the_builder(
    capsys: pytest.CaptureFixture[str],
) -> None:
    builder = RecordingBuilder(CONFIG)
    built = await builder.build(ticker_kernel)
    try:
        assert builder.calls == [
            "dispatch_bind_event",
            "dispatch_bound_event",
            "dispatch_ready_event",
        ]
        assert capsys.readouterr().out == (
            "bind: OnBindEvent\nbound: OnBoundEvent\nready: OnReadyEvent\n"
        )
    finally:
        await built.dispose()


# -- EVENT_BOUND -----------------------------------------------------------------------------


async def test_on_bound_gets_live_instances_of_the_services_defined_on_bind(
    system: System,
) -> None:
    ticker = system.provider.resolve(Ticker)  # the instance on_bound resolved and started
    assert ticker.task is not None and not ticker.task.done()
    before = ticker.ticks
    await asyncio.sleep(0.05)
    assert ticker.ticks > before


async def test_bound_and_ready_are_dispatched_by_their_builder_methods(
    capsys: pytest.CaptureFixture[str],
) -> None:
    dispatcher = AsyncEventDispatcher()
    dispatcher.add_listener(EVENT_BOUND, on_bound)
    dispatcher.add_listener(EVENT_READY, on_ready)
    provider, settings = Container(), {"applications": []}
    builder = SystemBuilder(CONFIG)
    bound = await builder.dispatch_bound_event(dispatcher, provider, settings)
    assert type(bound) is OnBoundEvent and bound.provider is provider
    kernel = kernel_with(dispatcher)
    ready = await builder.dispatch_ready_event(dispatcher, kernel, provider, settings)
    assert type(ready) is OnReadyEvent and ready.kernel is kernel  # "the kernel is available"
    assert capsys.readouterr().out == "bound: OnBoundEvent\nready: OnReadyEvent\n"


# -- EVENT_READY -----------------------------------------------------------------------------


async def test_on_ready_decorates_the_kernel_with_an_asgi_middleware(
    system: System, serve, client: ferryman.AsyncClient
) -> None:
    server = await serve(system.asgi_app)
    response = await client.get(f"{server.url}/")
    assert response.status_code == 200
    assert response.headers["x-decorated-on"] == "ready"
    assert response.json()["ticks"] >= 1  # the kernel's controller, behind the middleware


# -- EVENT_SHUTDOWN --------------------------------------------------------------------------


async def test_dispose_dispatches_shutdown_with_an_on_shutdown_instance_once(
    capsys: pytest.CaptureFixture[str],
) -> None:
    built = await SystemBuilder(CONFIG).build(ticker_kernel)
    seen: list[object] = []

    async def remember(event: OnShutdown):
        seen.append(event)

    built.dispatcher.add_listener(EVENT_SHUTDOWN, remember)
    capsys.readouterr()
    await built.dispose()
    await built.dispose()  # a second dispose sends nothing
    assert len(seen) == 1 and isinstance(seen[0], OnShutdown)
    assert capsys.readouterr().out == "shutdown: OnShutdownEvent\n"
    # "if applications define background asynchronous tasks, ... terminate them here"
    task = built.provider.resolve(Ticker).task
    assert task is not None
    await asyncio.sleep(0)
    assert task.cancelled()


# -- Core / ASGI events: one listener coroutine per section ----------------------------------


async def on_core_started(event: Event):
    print(f"started: {type(event).__name__}")


async def on_core_request(event: RequestEvent):
    print(f"request: {event.request.method} {event.request.url.path}")


async def hello(request: ferryman.Request) -> ferryman.Response:
    return ferryman.Response(200, text="hello")


def kernel_with(dispatcher: AsyncEventDispatcher) -> ASGIKernel:
    return ASGIKernel(dispatcher, PathPrefixResolver({"/hello": hello}))


async def test_core_started_is_dispatched_once_on_lifespan_startup_with_a_plain_event(
    serve, client: ferryman.AsyncClient, capsys: pytest.CaptureFixture[str]
) -> None:
    dispatcher = AsyncEventDispatcher()
    dispatcher.add_listener(EVENT_CORE_STARTED, on_core_started)
    dispatcher.add_listener(EVENT_CORE_REQUEST, on_core_request)
    server = await serve(kernel_with(dispatcher))
    assert capsys.readouterr().out == "started: Event\n"  # before any request
    await client.get(f"{server.url}/hello")
    await client.get(f"{server.url}/hello")
    assert capsys.readouterr().out == "request: GET /hello\nrequest: GET /hello\n"


async def test_core_request_set_controller_bypasses_the_resolver(
    serve, client: ferryman.AsyncClient, capsys: pytest.CaptureFixture[str]
) -> None:
    async def health(request: ferryman.Request) -> ferryman.Response:
        return ferryman.Response(200, json={"status": "ok"})

    async def on_health_request(event: RequestEvent):
        if event.request.url.path == "/healthz":
            event.set_controller(health)

    dispatcher = AsyncEventDispatcher()
    dispatcher.add_listener(EVENT_CORE_REQUEST, on_core_request)
    dispatcher.add_listener(EVENT_CORE_REQUEST, on_health_request, priority=-100)  # first
    server = await serve(kernel_with(dispatcher))
    assert (await client.get(f"{server.url}/healthz")).json() == {"status": "ok"}
    assert (await client.get(f"{server.url}/nowhere")).status_code == 404  # resolver: none
    assert capsys.readouterr().out == "request: GET /healthz\nrequest: GET /nowhere\n"


async def test_core_controller_listeners_decorate_or_replace_the_controller(
    serve, client: ferryman.AsyncClient
) -> None:
    async def on_core_controller(event: ControllerEvent):
        inner = event.controller

        async def timed(request: ferryman.Request) -> object:
            response = await inner(request)
            response.headers["X-Decorated"] = "yes"
            return response

        event.controller = timed

    dispatcher = AsyncEventDispatcher()
    dispatcher.add_listener(EVENT_CORE_CONTROLLER, on_core_controller)
    server = await serve(kernel_with(dispatcher))
    response = await client.get(f"{server.url}/hello")
    assert (response.text, response.headers["x-decorated"]) == ("hello", "yes")


class Temperature:
    """Something a controller returns that is not a response."""

    def __init__(self, celsius: float) -> None:
        self.celsius = celsius


async def temperature(request: ferryman.Request) -> Temperature:
    return Temperature(21.5)


async def test_core_view_renders_what_a_controller_returned_or_the_answer_is_a_500(
    serve, client: ferryman.AsyncClient
) -> None:
    async def on_core_view(event: ViewEvent):
        if isinstance(event.value, Temperature):
            event.set_response(ferryman.Response(200, text=f"{event.value.celsius} °C"))

    async def settings(request: ferryman.Request) -> dict[str, str]:
        return {"unit": "celsius"}

    async def tags(request: ferryman.Request) -> set[str]:
        return {"a", "b"}

    routes = {"/temperature": temperature, "/settings": settings, "/tags": tags}
    plain = await serve(ASGIKernel(AsyncEventDispatcher(), PathPrefixResolver(routes)))
    assert (await client.get(f"{plain.url}/temperature")).status_code == 500  # nobody renders
    assert (await client.get(f"{plain.url}/settings")).json() == {"unit": "celsius"}

    dispatcher = AsyncEventDispatcher()
    dispatcher.add_listener(EVENT_CORE_VIEW, on_core_view)
    server = await serve(ASGIKernel(dispatcher, PathPrefixResolver(routes)))
    assert (await client.get(f"{server.url}/temperature")).text == "21.5 °C"
    assert (await client.get(f"{server.url}/settings")).json() == {"unit": "celsius"}
    # dispatched, and still no response: a 500
    assert (await client.get(f"{server.url}/tags")).status_code == 500


async def test_core_response_listeners_change_the_response_sent(
    serve, client: ferryman.AsyncClient
) -> None:
    async def on_core_response(event: ResponseEvent):
        event.response = ferryman.Response(
            203, text=f"filtered: {event.response.status_code}", headers={"X-Filtered": "1"}
        )

    dispatcher = AsyncEventDispatcher()
    dispatcher.add_listener(EVENT_CORE_RESPONSE, on_core_response)
    server = await serve(kernel_with(dispatcher))
    response = await client.get(f"{server.url}/nowhere")
    assert response.status_code == 203
    assert response.text == "filtered: 404"
    assert response.headers["x-filtered"] == "1"
