"""ASGI applications served by ferryman's own server through ASGIBridge, seen from real sockets."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator

import pytest

import ferryman
from ferryman.events import Event, EventDispatcher
from ferryman.http import AsyncIteratorByteStream, Request, Response
from ferryman.server import (
    EVENT_CORE_STARTED,
    ASGIApp,
    ASGIKernel,
    PathPrefixResolver,
)
from ferryman.server.bridge import Lifespan
from ferryman.server.controllers import Receive, Scope, Send
from tests.server.helpers import BridgeServe, bridge_servers
from tests.servers.slow_upstream import read_response, roundtrip, wait_until

Serve = BridgeServe


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Serve an ASGI app on 127.0.0.1 through the bridge; returns the port."""
    async with bridge_servers() as start:
        yield start


async def read_all(receive: Receive) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


async def scope_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers with the scope (what JSON can carry) and the body it read."""
    body = await read_all(receive)
    shown = {
        key: value.decode("latin-1") if isinstance(value, bytes) else value
        for key, value in scope.items()
        if key not in ("headers", "state", "asgi", "extensions")
    }
    shown["headers"] = [[n.decode(), v.decode()] for n, v in scope["headers"]]
    raw = scope["extensions"]["ferryman.raw_headers"]["headers"]
    shown["raw_headers"] = [[n.decode(), v.decode()] for n, v in raw]
    shown["body"] = body.decode("latin-1")
    data = json.dumps(shown).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 201,
            "headers": [(b"content-type", b"application/json"), (b"x-app", b"scope")],
        }
    )
    await send({"type": "http.response.body", "body": data})


async def streaming_app(scope: Scope, receive: Receive, send: Send) -> None:
    await read_all(receive)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    for i in range(5):
        await send({"type": "http.response.body", "body": b"part%d;" % i, "more_body": True})
        await asyncio.sleep(0.01)
    await send({"type": "http.response.body", "body": b""})


async def test_status_headers_and_body_reach_the_client(serve: Serve) -> None:
    port = await serve(scope_app)
    response = await roundtrip(port, b"GET /hello HTTP/1.1\r\nHost: example.test\r\n\r\n")
    assert response.status == 201
    assert response.header("x-app") == "scope"
    # One body message: the bridge knows the length.
    assert response.header("content-length") == str(len(response.body))
    assert not response.chunked


async def test_the_scope_describes_the_request(serve: Serve) -> None:
    port = await serve(scope_app)
    response = await roundtrip(
        port,
        b"POST /a%2Fb/caf%C3%A9?x=%20&x=2 HTTP/1.1\r\nHost: example.test\r\n"
        b"X-Mixed-Case: Value\r\nContent-Length: 4\r\n\r\nbody",
    )
    scope = response.json()
    assert isinstance(scope, dict)
    assert scope["type"] == "http" and scope["method"] == "POST"
    assert scope["http_version"] == "1.1" and scope["scheme"] == "http"
    assert scope["path"] == "/a/b/caf\u00e9"
    assert scope["raw_path"] == "/a%2Fb/caf%C3%A9"
    assert scope["query_string"] == "x=%20&x=2"
    assert scope["root_path"] == ""
    assert ["x-mixed-case", "Value"] in scope["headers"]  # names lower-cased, values as sent
    # ... and as spelled, in the same order, in the extension ferryman's own proxy path reads.
    assert scope["raw_headers"] == [
        ["Host", "example.test"],
        ["X-Mixed-Case", "Value"],
        ["Content-Length", "4"],
    ]
    assert scope["client"][0] == "127.0.0.1"
    assert scope["server"] == ["127.0.0.1", port]
    assert scope["body"] == "body"


async def test_keep_alive_and_pipelining_through_the_bridge(serve: Serve) -> None:
    port = await serve(scope_app)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"".join(b"GET /p%d HTTP/1.1\r\nHost: t\r\n\r\n" % i for i in range(3)))
    paths = [(await read_response(reader)).json()["path"] for _ in range(3)]  # type: ignore[index]
    assert paths == ["/p0", "/p1", "/p2"]
    writer.write(b"GET /again HTTP/1.1\r\nHost: t\r\n\r\n")
    assert (await read_response(reader)).status == 201
    writer.close()


async def test_a_streamed_response_is_chunked_for_http_1_1(serve: Serve) -> None:
    port = await serve(streaming_app)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    response = await read_response(reader)
    assert response.chunked and response.header("content-length") is None
    assert response.body == b"part0;part1;part2;part3;part4;"
    writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")  # still usable
    assert (await read_response(reader)).body == response.body
    writer.close()


async def test_a_streamed_response_to_http_1_0_ends_with_the_connection(serve: Serve) -> None:
    port = await serve(streaming_app)
    response = await roundtrip(port, b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    assert response.close_delimited and not response.chunked
    assert response.header("connection") == "close"
    assert response.body == b"part0;part1;part2;part3;part4;"


async def test_an_app_given_content_length_is_kept_and_not_chunked(serve: Serve) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"6")]}
        )
        await send({"type": "http.response.body", "body": b"abc", "more_body": True})
        await send({"type": "http.response.body", "body": b"def"})

    port = await serve(app)
    response = await roundtrip(port, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    assert not response.chunked and response.body == b"abcdef"


async def test_the_request_body_is_streamed_to_the_app(serve: Serve) -> None:
    """The app answers each piece as it gets it: the client sees it before sending the rest."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        while True:
            message = await receive()
            if message.get("body"):
                await send(
                    {"type": "http.response.body", "body": message["body"], "more_body": True}
                )
            if not message.get("more_body"):
                break
        await send({"type": "http.response.body", "body": b""})

    port = await serve(app)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
    writer.write(b"4\r\nzero\r\n")
    # The head goes out with the first body message.
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 3)
    assert b"transfer-encoding: chunked" in head.lower()
    assert await asyncio.wait_for(reader.readuntil(b"zero\r\n"), 3) == b"4\r\nzero\r\n"
    for piece in (b"one", b"two", b"three"):
        writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        echoed = await asyncio.wait_for(reader.readuntil(b"\r\n" + piece + b"\r\n"), 3)
        assert echoed.endswith(piece + b"\r\n")
    writer.write(b"0\r\n\r\n")
    assert await asyncio.wait_for(reader.readuntil(b"0\r\n\r\n"), 3) == b"0\r\n\r\n"
    writer.close()


async def test_a_large_upload_reaches_the_app_whole(serve: Serve) -> None:
    digest = hashlib.sha256()
    received: list[int] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        total = 0
        while True:
            message = await receive()
            digest.update(message.get("body", b""))
            total += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        received.append(total)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(total).encode()})

    port = await serve(app)
    data = bytes(range(256)) * (20 * 4096)  # 20 MiB
    async with ferryman.AsyncClient(trust_env=False) as client:
        response = await client.post(f"http://127.0.0.1:{port}/", content=data)
    assert response.text == str(len(data))
    assert digest.hexdigest() == hashlib.sha256(data).hexdigest()


async def test_head_gets_the_length_but_no_body(serve: Serve) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"hello"})

    port = await serve(app)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n")
    response = await read_response(reader, head_only=True)
    assert response.header("content-length") == "5"
    # No body bytes follow: the next answer starts right after the head.
    writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    assert (await read_response(reader)).body == b"hello"
    writer.close()


@pytest.mark.parametrize("status", [204, 304])
async def test_no_body_statuses_get_no_length_and_no_body(serve: Serve, status: int) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    port = await serve(app)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n" * 2)
    for _ in range(2):
        response = await read_response(reader)
        assert response.status == status
        assert response.header("content-length") is None
        assert response.header("transfer-encoding") is None
    writer.close()


async def test_an_app_raising_before_answering_gets_a_json_500(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise KeyError("secret detail")

    port = await serve(app)
    response = await roundtrip(port, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    assert response.status == 500
    assert response.header("content-type") == "application/json"
    assert response.json() == {"status": 500, "message": "Internal Server Error"}
    assert b"secret" not in response.body
    assert "the ASGI application failed" in caplog.text


async def test_an_app_returning_without_answering_gets_a_json_500(serve: Serve) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        return

    port = await serve(app)
    response = await roundtrip(port, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    assert response.status == 500
    assert response.json() == {"status": 500, "message": "Internal Server Error"}


async def test_an_app_failing_mid_body_cuts_the_connection(serve: Serve) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        await asyncio.sleep(0.05)
        raise RuntimeError("broke off")

    port = await serve(app)
    with pytest.raises(asyncio.IncompleteReadError):
        await roundtrip(port, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")


async def test_an_app_whose_client_left_is_stopped(serve: Serve) -> None:
    """Nobody will read its answer: the app hears ``http.disconnect`` or is cancelled (what a
    proxy needs, to drop its upstream call); either way it does not run on."""
    heard: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            while True:
                message = await receive()
                heard.append(message["type"])
                if message["type"] == "http.disconnect":
                    return
        except asyncio.CancelledError:
            heard.append("cancelled")
            raise

    port = await serve(app)
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc")
    assert await wait_until(lambda: bool(heard))
    writer.close()
    assert await wait_until(lambda: heard[-1] in ("http.disconnect", "cancelled"))


async def test_an_upgrade_other_than_websocket_is_served_as_plain_http(serve: Serve) -> None:
    """RFC 9110 section 7.8 lets a server ignore Upgrade: curl's ``--http2`` on an http:// URL
    asks for h2c and goes on with HTTP/1.1 when the answer is not a 101."""
    port = await serve(scope_app)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for _ in range(2):  # and the connection stays usable for HTTP
        writer.write(
            b"GET / HTTP/1.1\r\nHost: t\r\nConnection: Upgrade, HTTP2-Settings\r\n"
            b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n"
        )
        response = await read_response(reader)
        assert response.status == 201
        assert response.json()["type"] == "http"  # type: ignore[index]
    writer.close()


async def test_a_websocket_is_served_as_a_websocket_scope(serve: Serve) -> None:
    from websockets.asyncio.client import connect

    from tests.servers.asgi_app import app

    port = await serve(app)
    async with (
        asyncio.timeout(5),
        connect(f"ws://127.0.0.1:{port}/ws", open_timeout=3, close_timeout=1) as ws,
    ):
        await ws.send("hi")
        assert await ws.recv() == "echo: hi"
        await ws.send(b"\x00\x01")
        assert await ws.recv() == b"\x00\x01"


# -- lifespan ----------------------------------------------------------------------------------


class LifespanApp:
    def __init__(self, fail: bool = False) -> None:
        self.events: list[str] = []
        self.fail = fail

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "lifespan"
        while True:
            message = await receive()
            self.events.append(message["type"])
            if message["type"] == "lifespan.startup":
                if self.fail:
                    await send({"type": "lifespan.startup.failed", "message": "no database"})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return


async def test_lifespan_runs_startup_then_shutdown() -> None:
    app = LifespanApp()
    lifespan = Lifespan(app)
    await asyncio.wait_for(lifespan.startup(), 3)
    assert app.events == ["lifespan.startup"]
    await asyncio.wait_for(lifespan.shutdown(), 3)
    assert app.events == ["lifespan.startup", "lifespan.shutdown"]
    assert lifespan.supported


async def test_a_failed_startup_raises_with_the_app_message() -> None:
    lifespan = Lifespan(LifespanApp(fail=True))
    with pytest.raises(RuntimeError, match="no database"):
        await asyncio.wait_for(lifespan.startup(), 3)


async def test_an_app_without_lifespan_support_is_served_anyway() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            raise ValueError(f"unsupported scope {scope['type']}")

    lifespan = Lifespan(app)
    await asyncio.wait_for(lifespan.startup(), 3)
    assert not lifespan.supported
    await asyncio.wait_for(lifespan.shutdown(), 3)


# -- the kernel over the bridge ----------------------------------------------------------------


async def test_the_kernel_with_a_prefix_resolver_over_the_bridge(serve: Serve) -> None:
    started: list[Event] = []
    dispatcher = EventDispatcher()
    dispatcher.add_listener(EVENT_CORE_STARTED, started.append)

    async def hello(request: Request) -> Response:
        assert isinstance(request.stream, ferryman.http.AsyncByteStream)
        body = await request.stream.aread()
        return Response(200, text=f"hello {request.url.path} {body.decode()}")

    async def stream(request: Request) -> Response:
        async def chunks() -> AsyncIterator[bytes]:
            for i in range(3):
                yield b"chunk%d;" % i

        return Response(200, stream=AsyncIteratorByteStream(chunks()))

    async def mounted(scope: Scope, receive: Receive, send: Send) -> None:
        await read_all(receive)
        await send({"type": "http.response.start", "status": 202, "headers": []})
        await send({"type": "http.response.body", "body": scope["path"].encode()})

    kernel = ASGIKernel(
        dispatcher,
        PathPrefixResolver({"/hello": hello, "/stream": stream, "/app": ASGIApp(mounted)}),
    )
    lifespan = Lifespan(kernel)
    await lifespan.startup()
    assert len(started) == 1
    port = await serve(kernel)
    url = f"http://127.0.0.1:{port}"
    async with ferryman.AsyncClient(trust_env=False) as client:
        response = await client.post(f"{url}/hello/there", content=b"payload")
        assert (response.status_code, response.text) == (200, "hello /hello/there payload")
        response = await client.get(f"{url}/stream")
        assert response.text == "chunk0;chunk1;chunk2;"
        assert response.headers["transfer-encoding"] == "chunked"
        response = await client.get(f"{url}/app/x")
        assert (response.status_code, response.text) == (202, "/app/x")
        response = await client.get(f"{url}/nowhere")
        assert response.status_code == 404
        assert response.json()["status"] == 404
        response = await client.head(f"{url}/hello")
        assert response.status_code == 200 and response.content == b""
    await lifespan.shutdown()
