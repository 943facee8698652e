"""Helpers for the kernel tests: uvicorn serving a given ASGI app, hand-driven ASGI calls."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import uvicorn

from ferryman.events import Event, EventDispatcher
from ferryman.http import Request, Response
from ferryman.server import (
    EVENT_CORE_CONTROLLER,
    EVENT_CORE_REQUEST,
    EVENT_CORE_RESPONSE,
    EVENT_CORE_STARTED,
    EVENT_CORE_VIEW,
    ASGIKernel,
)
from ferryman.server.bridge import ASGIBridge
from ferryman.server.controllers import ASGIApplication, Message, Scope
from ferryman.server.protocol import ServerProtocol, ServerState

BridgeServe = Callable[[ASGIApplication], Awaitable[int]]


@contextlib.asynccontextmanager
async def bridge_servers() -> AsyncIterator[BridgeServe]:
    """Serve ASGI apps on 127.0.0.1 through ferryman's own server and the bridge: ``start(app)``
    returns the port; every server started is closed, with its apps' tasks, at the end."""
    loop = asyncio.get_running_loop()
    started: list[tuple[asyncio.Server, ServerState, ASGIBridge]] = []

    async def start(app: ASGIApplication) -> int:
        bridge = ASGIBridge(app, loop)
        state = ServerState()
        server = await loop.create_server(
            lambda: ServerProtocol(bridge, state, loop), "127.0.0.1", 0
        )
        started.append((server, state, bridge))
        return int(server.sockets[0].getsockname()[1])

    try:
        yield start
    finally:
        for server, state, bridge in started:
            server.close()
            state.abort_all()
            for task in list(bridge.tasks):
                task.cancel()
            await asyncio.gather(*bridge.tasks, return_exceptions=True)
            await server.wait_closed()


class UvicornApp:
    """uvicorn (httptools, wsproto, lifespan on) serving ``app`` on 127.0.0.1, port 0, in a
    thread of its own, as tests/servers/uvicorn_server.py does for the shared test app."""

    def __init__(self, app: ASGIApplication) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        config = uvicorn.Config(
            app,
            http="httptools",
            ws="wsproto",
            interface="asgi3",
            lifespan="on",
            log_level="warning",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> UvicornApp:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()


def http_scope(
    path: str = "/",
    *,
    method: str = "GET",
    query: bytes = b"",
    headers: list[tuple[bytes, bytes]] | None = None,
    http_version: str = "1.1",
    **extra: Any,
) -> dict[str, Any]:
    """An ``http`` scope as uvicorn builds one for a request to 127.0.0.1:8000."""
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": http_version,
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1:8000")] if headers is None else headers,
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
    }
    scope.update(extra)
    return scope


class ASGICall:
    """Drives one ASGI call by hand: feeds ``receive`` from a list, records what is sent.

    ``log`` interleaves both directions (``("receive", message)``, ``("send", message)``), so
    tests can tell when a body was read or a chunk sent relative to the controller's work.
    """

    def __init__(self, incoming: list[Message] | None = None) -> None:
        self.incoming = list(incoming or [{"type": "http.request", "body": b""}])
        self.sent: list[Message] = []
        self.log: list[tuple[str, Any]] = []

    async def receive(self) -> Message:
        message = self.incoming.pop(0) if self.incoming else {"type": "http.disconnect"}
        self.log.append(("receive", message))
        return message

    async def send(self, message: Message) -> None:
        self.sent.append(message)
        self.log.append(("send", message))

    @property
    def status(self) -> int:
        return int(self.sent[0]["status"])

    @property
    def headers(self) -> dict[bytes, bytes]:
        return dict(self.sent[0]["headers"])

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.sent if m["type"] == "http.response.body")


#: The ``serve`` fixture: starts uvicorn for an app, stopped at the end of the test.
Serve = Callable[[Any], UvicornApp]
ALL_EVENTS = [
    EVENT_CORE_STARTED,
    EVENT_CORE_REQUEST,
    EVENT_CORE_CONTROLLER,
    EVENT_CORE_VIEW,
    EVENT_CORE_RESPONSE,
]


async def hello(request: Request) -> Response:
    return Response(200, text=f"hello {request.url.path}")


def record_all(dispatcher: EventDispatcher) -> list[tuple[str, Event]]:
    """Listen to every core event; the list fills with ``(name, event)`` in dispatch order."""
    seen: list[tuple[str, Event]] = []
    for name in ALL_EVENTS:
        dispatcher.add_listener(name, functools.partial(_record, seen, name))
    return seen


def _record(seen: list[tuple[str, Event]], name: str, event: Event) -> None:
    seen.append((name, event))


async def call(kernel: ASGIKernel, scope: Scope, incoming: list[Message] | None = None) -> ASGICall:
    """One ASGI call of ``kernel`` by hand, with what it sent."""
    asgi = ASGICall(incoming)
    await kernel(scope, asgi.receive, asgi.send)
    return asgi
