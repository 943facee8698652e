"""ASGI apps mounted in the kernel: plain HTTP apps under a prefix, and WebSocket endpoints."""

from __future__ import annotations

import pytest

import ferryman
from ferryman.events import EventDispatcher
from ferryman.server import (
    EVENT_CORE_CONTROLLER,
    EVENT_CORE_REQUEST,
    EVENT_CORE_STARTED,
    ASGIApp,
    ASGIKernel,
    PathPrefixResolver,
)
from ferryman.server.controllers import Receive, Scope, Send
from tests.server.helpers import ASGICall, Serve, hello, http_scope, record_all


async def mounted_app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "websocket":
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        while (message := await receive())["type"] == "websocket.receive":
            await send({"type": "websocket.send", "text": f"echo {message['text']}"})
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    text = f"{scope['method']} {scope['path']} {body.decode()}".encode()
    await send({"type": "http.response.start", "status": 201, "headers": [(b"x-app", b"mounted")]})
    await send({"type": "http.response.body", "body": text})


async def test_a_mounted_asgi_app_answers_for_its_prefix(
    serve: Serve, client: ferryman.AsyncClient
) -> None:
    dispatcher = EventDispatcher()
    seen = record_all(dispatcher)
    resolver = PathPrefixResolver({"/app": ASGIApp(mounted_app), "/": hello})
    server = serve(ASGIKernel(dispatcher, resolver))
    response = await client.post(f"{server.url}/app/items", content=b"payload")
    assert (response.status_code, response.text) == (201, "POST /app/items payload")
    assert response.headers["x-app"] == "mounted"
    # It answers on its own: no view or response event for it.
    assert [name for name, _ in seen] == [
        EVENT_CORE_STARTED,
        EVENT_CORE_REQUEST,
        EVENT_CORE_CONTROLLER,
    ]
    assert (await client.get(f"{server.url}/other")).text == "hello /other"


async def test_a_mounted_app_can_be_chosen_by_a_listener_and_its_errors_reach_the_server() -> None:
    async def crashing(scope: Scope, receive: Receive, send: Send) -> None:
        raise KeyError("app bug")

    dispatcher = EventDispatcher()
    dispatcher.add_listener(
        EVENT_CORE_REQUEST, lambda event: event.set_controller(ASGIApp(crashing))
    )
    kernel = ASGIKernel(dispatcher, PathPrefixResolver({"/": hello}))
    asgi = ASGICall()
    with pytest.raises(KeyError, match="app bug"):
        await kernel(http_scope(), asgi.receive, asgi.send)
    assert asgi.sent == []


async def test_websockets_go_to_a_mounted_app_or_are_refused(
    serve: Serve, client: ferryman.AsyncClient
) -> None:
    resolver = PathPrefixResolver({"/ws": ASGIApp(mounted_app), "/": hello})
    server = serve(ASGIKernel(EventDispatcher(), resolver))
    base = server.url.replace("http://", "ws://")
    ws = await client.get(f"{base}/ws")
    async with ws:
        await ws.send("ping")
        assert await anext(ws) == "echo ping"
    # "/" is a controller, not an ASGI app: it cannot serve a WebSocket.
    with pytest.raises(ferryman.ProtocolError, match="403"):
        await client.get(f"{base}/chat", websocket_handler=ferryman.WS())


async def test_a_websocket_with_an_unparsable_target_is_refused() -> None:
    kernel = ASGIKernel(EventDispatcher(), PathPrefixResolver({"/": ASGIApp(mounted_app)}))
    asgi = ASGICall([{"type": "websocket.connect"}])
    scope = http_scope("*", type="websocket", scheme="ws")
    await kernel(scope, asgi.receive, asgi.send)
    assert asgi.sent == [{"type": "websocket.close", "code": 1000}]
