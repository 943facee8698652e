"""A real WebSocket server (the ``websockets`` package) for the client's WebSocket tests.

It runs on its own event loop in a daemon thread on 127.0.0.1, port 0. Each path is one
behaviour; what the server saw of each closing handshake is put on ``closes`` so tests can
check the code the client sent. Subprotocols are chosen by a script (``/bad-subprotocol``
picks one never offered), or, given ``subprotocols=[...]``, by the ``websockets`` package's own
negotiation: the first of the server's list the client offered, a 400 when the client offered
none of them, and no subprotocol at all when the list is empty.
"""

from __future__ import annotations

import asyncio
import queue
import ssl
import threading
from collections.abc import Sequence
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

SUBPROTOCOLS = ("chat.v2", "chat.v1")
CLOSE_4001_REASON = "going away for a test"


def _path(connection: ServerConnection) -> tuple[str, dict[str, list[str]]]:
    assert connection.request is not None
    split = urlsplit(connection.request.path)
    return split.path, parse_qs(split.query)


def _select_subprotocol(
    connection: ServerConnection, offered: Sequence[Subprotocol]
) -> Subprotocol | None:
    path, _ = _path(connection)
    if path == "/bad-subprotocol":
        return Subprotocol("never.offered")
    for name in SUBPROTOCOLS:
        if name in offered:
            return Subprotocol(name)
    return None


def _process_request(connection: ServerConnection, request: Request) -> Response | None:
    if urlsplit(request.path).path == "/forbidden":
        return connection.respond(HTTPStatus.FORBIDDEN, "no WebSocket for you\n")
    return None


def _process_response(
    connection: ServerConnection, request: Request, response: Response
) -> Response | None:
    if urlsplit(request.path).path == "/bad-accept":
        headers = Headers(response.headers)
        del headers["Sec-WebSocket-Accept"]
        headers["Sec-WebSocket-Accept"] = "bm90IHRoZSByaWdodCB0b2tlbg=="
        response.headers = headers
    return None


class WsEchoServer:
    """``start()`` returns once the server listens; ``url`` is ``ws://`` or ``wss://``."""

    def __init__(
        self, ssl_context: ssl.SSLContext | None = None, subprotocols: Sequence[str] | None = None
    ) -> None:
        self._ssl_context = ssl_context
        self._subprotocols = subprotocols
        self.port = 0
        self.closes: queue.Queue[tuple[str, int | None, str | None]] = queue.Queue()
        self.request_headers: queue.Queue[dict[str, str]] = queue.Queue()
        # What the client answered to ``/greet``'s greeting.
        self.replies: queue.Queue[str | bytes] = queue.Queue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: Server | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def url(self) -> str:
        scheme = "wss" if self._ssl_context is not None else "ws"
        return f"{scheme}://127.0.0.1:{self.port}"

    def start(self) -> WsEchoServer:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the WebSocket server did not start within 10 s")
        return self

    def stop(self) -> None:
        loop, server = self._loop, self._server
        if loop is not None and server is not None:
            loop.call_soon_threadsafe(server.close)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        names = self._subprotocols
        scripted = names is None
        async with serve(
            self._handle,
            "127.0.0.1",
            0,
            ssl=self._ssl_context,
            subprotocols=None if names is None else [Subprotocol(name) for name in names],
            select_subprotocol=_select_subprotocol if scripted else None,
            process_request=_process_request,
            process_response=_process_response,
            ping_interval=None,
            close_timeout=1,
            max_size=None,
        ) as server:
            self._server = server
            self.port = next(iter(server.sockets)).getsockname()[1]
            self._ready.set()
            await server.wait_closed()

    async def _handle(self, ws: ServerConnection) -> None:
        path, query = _path(ws)
        assert ws.request is not None
        self.request_headers.put(
            {name.lower(): value for name, value in ws.request.headers.raw_items()}
        )
        try:
            if path == "/subprotocol":
                await ws.send(ws.subprotocol or "")
            elif path == "/close-4001":
                await ws.close(4001, CLOSE_4001_REASON)
            elif path == "/ping":
                pong = await ws.ping(b"are you there")
                await pong
                await ws.send("pong received")
            elif path == "/big":
                size = int(query.get("size", ["1048576"])[0])
                fragment = int(query.get("fragment", ["65536"])[0])
                payload = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
                await ws.send([payload[i : i + fragment] for i in range(0, size, fragment)])
                text = "é" * (size // 2)
                await ws.send([text[i : i + fragment] for i in range(0, len(text), fragment)])
            elif path == "/burst":
                for number in range(int(query.get("n", ["100"])[0])):
                    await ws.send(str(number))
            elif path == "/deaf":
                ws.transport.pause_reading()  # never reads: no pong, no answer to a close
                await ws.wait_closed()  # ends when the server stops
            elif path == "/greet":
                await ws.send(query.get("greeting", ["hello from the server"])[0])
                self.replies.put(await ws.recv())
                await ws.close(1000, "greeted")
                return
            elif path == "/drop":
                await ws.recv()
                ws.transport.abort()  # gone without a close frame: the client must report 1006
                return
            async for message in ws:
                await ws.send(message)
        except ConnectionClosed:
            pass
        finally:
            if path != "/deaf":
                await ws.wait_closed()
                self.closes.put((path, ws.close_code, ws.close_reason))
