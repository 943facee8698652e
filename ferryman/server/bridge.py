"""ASGI over ferryman's own protocol server: the general path, for any ASGI 3 application.

:class:`ASGIBridge` turns a :class:`~ferryman.server.protocol.ServerExchange` into an ASGI
``http`` scope and runs the application in a task, as uvicorn does. This costs what the fast
path avoids (a scope dict, a task, separate head and body messages), and is what runs whenever
the kernel's events or a proxy's middleware must see the request. An upgrade to ``websocket``
becomes a ``websocket`` scope (:mod:`ferryman.server.bridge_ws`); other upgrades (``h2c``...)
are answered 501.

Bodies stream both ways with back-pressure: reading the request pauses once
:data:`RECEIVE_HIGH_WATER` bytes wait unread, and ``send`` waits while the client's socket
buffer is full.

What goes on the wire matches the fast relay's bytes: header names as the client and the
application spelled them (the scope offers the :data:`~ferryman.server.asgi.RAW_HEADERS`
extension, as ASGI asks servers to keep case on a best-effort basis while applications expect
lower-case ``headers``), the application's reason phrase when it gives one, and the framing
headers this server adds spelled as the relay spells them. An application that fails once its
``http.response.start`` is in gets its client's connection cut, never a second head.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from typing import Any, Final
from urllib.parse import unquote_to_bytes

from ferryman.server.asgi import RAW_HEADERS, REASON, AnswerAborted, spelled_as
from ferryman.server.bridge_ws import (
    WebSocketCycle,
    handshake_problem,
    is_websocket_upgrade,
    refuse_upgrade,
)
from ferryman.server.controllers import ASGIApplication, Message
from ferryman.server.protocol import ServerExchange, WriteGate, origin_form, response_head

__all__ = ["ASGIBridge", "Lifespan"]

logger = logging.getLogger("ferryman.server")

RECEIVE_HIGH_WATER: Final = 256 * 1024
_ASGI: Final = {"version": "3.0", "spec_version": "2.3"}
_CHUNK_END: Final = b"0\r\n\r\n"
_NO_BODY_STATUSES: Final = frozenset({204, 304})


class ASGIBridge:
    """A request handler that answers through an ASGI application."""

    __slots__ = ("app", "loop", "tasks", "websockets")

    def __init__(self, app: ASGIApplication, loop: asyncio.AbstractEventLoop) -> None:
        self.app = app
        self.loop = loop
        #: Running cycles, so a shutdown can wait for them (and tasks are not collected).
        self.tasks: set[asyncio.Task[None]] = set()
        #: WebSocket cycles whose application still runs, for :meth:`close_websockets`.
        self.websockets: set[WebSocketCycle] = set()

    def on_request(self, exchange: ServerExchange) -> None:
        if exchange.upgrade:
            self._upgrade(exchange)
            return
        cycle = _Cycle(exchange)
        exchange.set_consumer(cycle)
        task = cycle.task = self.loop.create_task(cycle.run(self.app))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _upgrade(self, exchange: ServerExchange) -> None:
        if not is_websocket_upgrade(exchange):
            wanted = next(
                (value for name, value in exchange.headers if name.lower() == b"upgrade"), b""
            )
            refuse_upgrade(
                exchange, 501, f"upgrading to {wanted.decode('latin-1')!r} is not supported"
            )
            return
        problem = handshake_problem(exchange)
        if problem is not None:
            status, message = problem
            extra = ((b"Sec-WebSocket-Version", b"13"),) if status == 426 else ()
            refuse_upgrade(exchange, status, message, extra)
            return
        cycle = WebSocketCycle(exchange, self.loop)
        exchange.set_consumer(cycle)
        self.websockets.add(cycle)
        task = cycle.task = self.loop.create_task(cycle.run(self.app))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        task.add_done_callback(lambda _: self.websockets.discard(cycle))

    def close_websockets(self, code: int = 1012, reason: str = "") -> None:
        """Send a close frame to every open WebSocket (a shutdown starting): their
        applications get ``websocket.disconnect`` and can end within the grace period."""
        for cycle in list(self.websockets):
            cycle.server_close(code, reason)


class _Cycle:
    """One request/response through the application (its ``receive`` and ``send``)."""

    __slots__ = (
        "_body",
        "_buffered",
        "_chunked",
        "_closes",
        "_ended",
        "_gate",
        "_lost",
        "_more_waiter",
        "_start",
        "exchange",
        "task",
    )

    def __init__(self, exchange: ServerExchange) -> None:
        self.exchange = exchange
        self._body: deque[bytes] = deque()
        self._buffered = 0
        self._ended = False
        self._lost = False
        self._more_waiter: asyncio.Future[None] | None = None
        self._gate = WriteGate()
        self._start: Message | None = None
        self.task: asyncio.Task[None] | None = None
        self._chunked = False
        self._closes = False

    # -- consumer callbacks (from the protocol) -----------------------------------------------

    def on_body(self, data: bytes) -> None:
        self._body.append(data)
        self._buffered += len(data)
        if self._buffered > RECEIVE_HIGH_WATER:
            self.exchange.pause_reading()
        self._wake()

    def on_body_end(self) -> None:
        self._ended = True
        self._wake()

    def on_client_lost(self) -> None:
        """The client left before its answer was complete: nobody will read what the
        application produces, so it is cancelled (a proxy's upstream call with it), as the
        ``http.disconnect`` message alone would only reach an application that reads."""
        self._lost = True
        self._wake()
        task = self.task
        if task is not None and not task.done():
            task.cancel()
        self._gate.release()

    def pause_producing(self) -> None:
        self._gate.pause()

    def resume_producing(self) -> None:
        self._gate.resume()

    def on_tunnel_data(self, data: bytes) -> None:
        """Never called: an HTTP cycle never starts a tunnel (WebSockets have their own)."""

    def _wake(self) -> None:
        waiter = self._more_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- the ASGI side ------------------------------------------------------------------------

    def scope(self) -> dict[str, Any]:
        exchange = self.exchange
        target = exchange.target
        if target[:1] != b"/":
            target = origin_form(target)
        raw_path, _, query = target.partition(b"?")
        return {
            "type": "http",
            "asgi": _ASGI,
            "http_version": exchange.http_version,
            "method": exchange.method.decode("ascii"),
            "scheme": exchange.scheme,
            "path": unquote_to_bytes(raw_path).decode("utf-8", "surrogateescape"),
            "raw_path": raw_path,
            "query_string": query,
            "root_path": "",
            "headers": [(name.lower(), value) for name, value in exchange.headers],
            "client": exchange.client,
            "server": exchange.server,
            "state": {},
            "extensions": (
                {RAW_HEADERS: {"headers": exchange.headers}}
                if exchange.transaction is None
                else {
                    RAW_HEADERS: {"headers": exchange.headers},
                    "ferryman.transaction": exchange.transaction,
                }
            ),
        }

    async def run(self, app: ASGIApplication) -> None:
        exchange = self.exchange
        try:
            await app(self.scope(), self.receive, self.send)
        except AnswerAborted as exc:
            # (its cause is logged where it happened, once per interval, not per request)
            logger.debug("answer to %s %r cut: %s", exchange.method, exchange.target, exc)
            if not exchange.finished:
                start = self._start
                if start is not None and not exchange.started:
                    # The head came and its body did not: the client gets what arrived (the
                    # head, as the fast relay passes it on), then the cut.
                    self._write_head(start, b"", True)
                exchange.abort()
            return
        except Exception:
            logger.exception(
                "the ASGI application failed on %s %r", exchange.method, exchange.target
            )
            if self._start is None and not exchange.started and not exchange.finished:
                body = json.dumps({"status": 500, "message": "Internal Server Error"}).encode()
                exchange.send_error(500, body)
            else:
                exchange.abort()
            return
        if not exchange.finished:
            if exchange.started or self._start is not None:
                exchange.abort()  # the application stopped half-way through its answer
            else:
                body = json.dumps({"status": 500, "message": "Internal Server Error"}).encode()
                logger.error("the ASGI application returned without answering")
                exchange.send_error(500, body)

    async def receive(self) -> Message:
        while True:
            if self._lost:
                return {"type": "http.disconnect"}
            body = self._body
            if body:
                chunk = body.popleft() if len(body) == 1 else b"".join(body)
                body.clear()
                self._buffered = 0
                self.exchange.resume_reading()
                return {
                    "type": "http.request",
                    "body": chunk,
                    "more_body": not self._ended,
                }
            if self._ended:
                self._ended = False
                self._lost = self.exchange.finished
                return {"type": "http.request", "body": b"", "more_body": False}
            waiter = self._more_waiter = asyncio.get_running_loop().create_future()
            await waiter
            self._more_waiter = None

    async def send(self, message: Message) -> None:
        exchange = self.exchange
        if self._lost or exchange.finished:
            return
        kind = message["type"]
        if kind == "http.response.start":
            if self._start is not None:
                raise RuntimeError("http.response.start sent twice")
            self._start = message
            return
        if kind != "http.response.body":
            raise RuntimeError(f"unexpected ASGI message {kind!r}")
        start = self._start
        if start is None:
            raise RuntimeError("http.response.body before http.response.start")
        body: bytes = message.get("body", b"")
        more = bool(message.get("more_body", False))
        if not exchange.started:
            self._write_head(start, body, more)
        no_body = exchange.method == b"HEAD" or start["status"] in _NO_BODY_STATUSES
        if body and not no_body:
            exchange.body_sent += len(body)
            if self._chunked:
                exchange.writelines([b"%x\r\n" % len(body), body, b"\r\n"])
            else:
                exchange.write(body)
        if not more:
            if self._chunked and not no_body:
                exchange.write(_CHUNK_END)
            exchange.finish(keep_alive=not self._closes)
            return
        await self._gate.wait()

    def _write_head(self, start: Message, body: bytes, more: bool) -> None:
        exchange = self.exchange
        status: int = start["status"]
        raw = start.get(RAW_HEADERS)
        headers: list[tuple[bytes, bytes]]
        if raw is None:
            headers = [(bytes(name), bytes(value)) for name, value in start.get("headers", ())]
        else:
            headers = spelled_as(start.get("headers", ()), raw)
        has_length = any(name.lower() == b"content-length" for name, _ in headers)
        if not has_length and status not in _NO_BODY_STATUSES and status >= 200:
            if not more:
                if exchange.method != b"HEAD" or body:
                    headers.append((b"Content-Length", b"%d" % len(body)))
            elif exchange.http_version == "1.1":
                headers.append((b"Transfer-Encoding", b"chunked"))
                self._chunked = True
            else:
                self._closes = True  # an HTTP/1.0 body ends where the connection does
        if self._closes or not exchange.keep_alive:
            headers.append((b"Connection", b"close"))
        elif exchange.http_version == "1.0":
            headers.append((b"Connection", b"keep-alive"))  # (what HTTP/1.0 has to be told)
        reason = start.get(REASON)
        exchange.status = status
        exchange.write(response_head(status, bytes(reason) if reason else None, headers))


class Lifespan:
    """Runs an application's ASGI ``lifespan`` protocol: startup before serving, shutdown after."""

    def __init__(self, app: ASGIApplication) -> None:
        self.app = app
        self._inbox: asyncio.Queue[Message] = asyncio.Queue()
        self._startup: asyncio.Future[None] | None = None
        self._shutdown: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self.supported = True

    async def startup(self) -> None:
        loop = asyncio.get_running_loop()
        self._startup = loop.create_future()
        self._shutdown = loop.create_future()
        self._task = loop.create_task(self._run())
        await self._inbox.put({"type": "lifespan.startup"})
        await self._startup

    async def shutdown(self) -> None:
        if self._task is None or not self.supported:
            return
        await self._inbox.put({"type": "lifespan.shutdown"})
        assert self._shutdown is not None
        await self._shutdown
        await self._task

    async def _run(self) -> None:
        scope = {"type": "lifespan", "asgi": _ASGI, "state": {}}
        try:
            await self.app(scope, self._inbox.get, self._send)
        except Exception as exc:
            if self._startup is not None and not self._startup.done():
                # An application that does not speak lifespan raises on the scope type.
                logger.debug("the application does not support lifespan: %s", exc)
                self.supported = False
                self._startup.set_result(None)
        finally:
            for future in (self._startup, self._shutdown):
                if future is not None and not future.done():
                    future.set_result(None)

    async def _send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "lifespan.startup.complete":
            assert self._startup is not None
            self._startup.set_result(None)
        elif kind == "lifespan.startup.failed":
            assert self._startup is not None
            self._startup.set_exception(
                RuntimeError(f"application startup failed: {message.get('message', '')}")
            )
        elif kind in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
            assert self._shutdown is not None
            if not self._shutdown.done():
                self._shutdown.set_result(None)
