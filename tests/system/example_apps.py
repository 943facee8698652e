"""Tiny applications the system tests load by dotted name, as a user's package would be loaded.

Every listener appends ``(application key, phase, event)`` to :data:`EVENTS`, so tests can assert
which events reached which application, in which order, with which event class.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Literal

from pydantic import Field, SecretStr

from ferryman.events import Event, EventDispatcher
from ferryman.system import (
    Application,
    ASGIApp,
    OnBindEvent,
    OnBoundEvent,
    OnReadyEvent,
    OnShutdownEvent,
    Settings,
)

EVENTS: list[tuple[str, str, Event | None]] = []

Phase = Literal["bound", "kernel", "ready", "shutdown"]


class Endpoint(Settings):
    name: str
    port: int = Field(ge=1, le=65535)
    host: str = "127.0.0.1"


class GatewaySettings(Settings):
    endpoints: list[Endpoint] = []
    greeting: str = "hello"
    token: SecretStr | None = None
    #: Makes the listeners of these phases raise, to test how the builder cleans up.
    fail_in: list[Phase] = []


class Greeter:
    """A service built by the container from the settings and the dispatcher it is given."""

    def __init__(self, settings: GatewaySettings, dispatcher: EventDispatcher) -> None:
        self.greeting = settings.greeting
        self.dispatcher = dispatcher
        self.started = False


class Journal:
    """A service without dependencies, registered by another application."""

    def __init__(self) -> None:
        self.lines: list[str] = []


def add_header(app: ASGIApp, name: str) -> ASGIApp:
    """ASGI middleware: one response header, so tests can see which wrappers ran, in order."""

    async def wrapped(
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
        send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
    ) -> None:
        async def send_with_header(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-wrapped-by", name.encode())]
            await send(message)

        await app(scope, receive, send_with_header)

    return wrapped


class GatewayApp(Application):
    name = "gateway"
    settings_type = GatewaySettings
    settings: GatewaySettings

    def _fail_if(self, phase: Phase) -> None:
        if phase in self.settings.fail_in:
            raise RuntimeError(f"{self.name} fails in {phase}")

    def on_bind(self, event: OnBindEvent) -> None:
        EVENTS.append((self.name, "bind", event))
        event.container.add(Greeter)

    async def on_bound(self, event: OnBoundEvent) -> None:
        EVENTS.append((self.name, "bound", event))
        event.provider.resolve(Greeter).started = True
        self._fail_if("bound")

    def on_ready(self, event: OnReadyEvent) -> None:
        EVENTS.append((self.name, "ready", event))
        self._fail_if("ready")
        event.kernel = add_header(event.kernel, self.name)

    async def on_shutdown(self, event: OnShutdownEvent) -> None:
        EVENTS.append((self.name, "shutdown", event))
        self._fail_if("shutdown")


class FakeProxyApp(GatewayApp):
    """Stands for the real proxy application where the default configuration needs one."""

    name = "proxy"


class AuditApp(Application):
    """No settings, asynchronous bind, no bound listener."""

    name = "audit"

    async def on_bind(self, event: OnBindEvent) -> None:
        EVENTS.append((self.name, "bind", event))
        event.container.add(Journal)

    def on_ready(self, event: OnReadyEvent) -> None:
        EVENTS.append((self.name, "ready", event))
        event.provider.resolve(Journal).lines.append("ready")
        event.kernel = add_header(event.kernel, self.name)

    def on_shutdown(self, event: OnShutdownEvent) -> None:
        EVENTS.append((self.name, "shutdown", event))


class NeedsMissingServiceApp(Application):
    """Registers a service whose dependency nobody provides."""

    name = "broken_wiring"

    def on_bind(self, event: OnBindEvent) -> None:
        EVENTS.append((self.name, "bind", event))
        event.container.add("needs_journal", lambda journal_log: journal_log)


# What "tests.system.example_apps" (a module path without ":Class") loads.
application = AuditApp
