from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

import pytest
import uvicorn

import ferryman
from ferryman.events import EventDispatcher, EventListenerError
from ferryman.system import (
    ASGIApp,
    ConfigurationError,
    Container,
    DependencyError,
    OnBindEvent,
    OnBoundEvent,
    OnReadyEvent,
    OnShutdownEvent,
    System,
    SystemBuilder,
)
from tests.system.example_apps import EVENTS, GatewaySettings, Greeter, Journal

GATEWAY = "tests.system.example_apps:GatewayApp"
AUDIT = "tests.system.example_apps"
BROKEN_WIRING = "tests.system.example_apps:NeedsMissingServiceApp"

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def greeting_kernel(dispatcher: EventDispatcher, provider: Container) -> ASGIApp:
    """A stand-in for the real ASGI kernel: answers every request with the Greeter's greeting."""
    EVENTS.append(("kernel", "build", None))
    greeter = provider.resolve(Greeter)

    async def kernel(scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        body = greeter.greeting.encode()
        headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return kernel


def phases() -> list[tuple[str, str, type | None]]:
    return [(who, phase, type(event) if event else None) for who, phase, event in EVENTS]


async def build(*applications: str, **settings: Any) -> System:
    config: dict[str, Any] = {"applications": list(applications), **settings}
    return await SystemBuilder(config).build(greeting_kernel)


async def test_build_dispatches_bind_bound_then_builds_the_kernel_then_ready() -> None:
    system = await build(GATEWAY, AUDIT, gateway={"greeting": "bonjour"})

    assert phases() == [
        ("gateway", "bind", OnBindEvent),
        ("audit", "bind", OnBindEvent),
        ("gateway", "bound", OnBoundEvent),
        ("kernel", "build", None),
        ("gateway", "ready", OnReadyEvent),
        ("audit", "ready", OnReadyEvent),
    ]
    bind, bound, ready = EVENTS[0][2], EVENTS[2][2], EVENTS[4][2]
    assert isinstance(bind, OnBindEvent)
    assert isinstance(bound, OnBoundEvent)
    assert isinstance(ready, OnReadyEvent)
    assert bind is EVENTS[1][2]  # one event instance per dispatch, seen by every application
    assert bind.container is bound.provider is ready.provider is system.provider
    assert bind.settings is system.config
    assert isinstance(system.config["gateway"], GatewaySettings)
    assert system.config["gateway"].greeting == "bonjour"
    assert system.config["applications"] == [GATEWAY, AUDIT]
    await system.dispose()


async def test_services_see_the_settings_and_dispatcher_and_are_started_on_bound() -> None:
    system = await build(GATEWAY, AUDIT, gateway={"greeting": "hi"})

    greeter = system.provider.resolve(Greeter)
    assert greeter.started
    assert greeter.greeting == "hi"
    assert greeter.dispatcher is system.dispatcher
    assert system.provider.resolve(Journal).lines == ["ready"]
    await system.dispose()


async def test_dispose_dispatches_shutdown_once_in_reverse_application_order() -> None:
    system = await build(GATEWAY, AUDIT)
    EVENTS.clear()

    await system.dispose()
    await system.dispose()

    assert phases() == [
        ("audit", "shutdown", OnShutdownEvent),
        ("gateway", "shutdown", OnShutdownEvent),
    ]
    shutdown = EVENTS[0][2]
    assert isinstance(shutdown, OnShutdownEvent)
    assert shutdown.provider is system.provider


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[ASGIApp], Awaitable[str]]]:
    """Serve an ASGI app with uvicorn on 127.0.0.1, port 0, in this test's event loop."""
    servers: list[tuple[uvicorn.Server, asyncio.Task[None]]] = []

    async def start(app: ASGIApp) -> str:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        task = asyncio.create_task(server.serve(sockets=[sock]))
        servers.append((server, task))
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        return f"http://127.0.0.1:{sock.getsockname()[1]}"

    yield start
    for server, task in servers:
        server.should_exit = True
        await task


async def test_the_served_app_is_the_kernel_wrapped_by_ready_listeners_in_order(
    serve: Callable[[ASGIApp], Awaitable[str]],
) -> None:
    system = await build(GATEWAY, AUDIT, gateway={"greeting": "served"})
    url = await serve(system.asgi_app)

    async with ferryman.AsyncClient(trust_env=False) as client:
        response = await client.get(f"{url}/anything")

    assert response.status_code == 200
    assert response.text == "served"
    # gateway wrapped the kernel first, audit wrapped that: audit's wrapper runs outermost,
    # so it sees (and appends after) the header the inner wrapper added.
    assert response.headers.get_list("x-wrapped-by") == ["gateway", "audit"]
    await system.dispose()


async def test_an_invalid_configuration_fails_before_any_event() -> None:
    with pytest.raises(ConfigurationError, match=r"^gateway\.endpoints\.0\.port: must be at most"):
        await build(GATEWAY, gateway={"endpoints": [{"name": "api", "port": 70000}]})

    assert EVENTS == []


async def test_a_missing_dependency_fails_after_bind_before_bound() -> None:
    with pytest.raises(DependencyError) as raised:
        await build(GATEWAY, BROKEN_WIRING)

    assert str(raised.value) == (
        "cannot build 'needs_journal': nothing registered for parameter 'journal_log' "
        "of 'needs_journal'"
    )
    assert phases() == [
        ("gateway", "bind", OnBindEvent),
        ("broken_wiring", "bind", OnBindEvent),
    ]


@pytest.mark.parametrize(
    ("failing_phase", "expected_phases"),
    [
        ("bound", [("gateway", "bound")]),
        ("ready", [("gateway", "bound"), ("kernel", "build"), ("gateway", "ready")]),
    ],
)
async def test_a_failure_after_bound_started_shuts_down_before_raising(
    failing_phase: str, expected_phases: list[tuple[str, str]]
) -> None:
    with pytest.raises(EventListenerError, match=f"gateway fails in {failing_phase}"):
        await build(GATEWAY, AUDIT, gateway={"fail_in": [failing_phase]})

    assert [(who, phase) for who, phase, _ in EVENTS if phase != "bind"] == [
        *expected_phases,
        ("audit", "shutdown"),
        ("gateway", "shutdown"),
    ]


async def test_a_failing_kernel_factory_shuts_down_before_raising() -> None:
    def broken_kernel(dispatcher: EventDispatcher, provider: Container) -> ASGIApp:
        raise RuntimeError("no kernel today")

    with pytest.raises(RuntimeError, match="no kernel today"):
        await SystemBuilder({"applications": [AUDIT]}).build(broken_kernel)

    assert [(who, phase) for who, phase, _ in EVENTS] == [("audit", "bind"), ("audit", "shutdown")]


async def test_a_failing_shutdown_during_cleanup_is_noted_on_the_original_error() -> None:
    with pytest.raises(EventListenerError, match="gateway fails in bound") as raised:
        await build(GATEWAY, gateway={"fail_in": ["bound", "shutdown"]})

    assert raised.value.__notes__ == [
        "and then shutting down failed too: listener tests.system.example_apps.GatewayApp."
        "on_shutdown failed while handling event 'system.shutdown': "
        "RuntimeError: gateway fails in shutdown"
    ]


async def test_a_failing_shutdown_listener_surfaces_from_dispose() -> None:
    system = await build(GATEWAY, gateway={"fail_in": ["shutdown"]})

    with pytest.raises(EventListenerError, match="gateway fails in shutdown"):
        await system.dispose()
    await system.dispose()  # disposed already: nothing runs twice

    assert [phase for _, phase, _ in EVENTS].count("shutdown") == 1
