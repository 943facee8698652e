"""ASGI ``websocket`` scopes over ferryman's own protocol server (ASGI spec 2.3, WebSocket).

:class:`~ferryman.server.bridge.ASGIBridge` hands an upgrade request that asks for
``websocket`` to a :class:`WebSocketCycle`: the application gets ``websocket.connect`` first;
``websocket.accept`` writes the ``101`` and switches the connection to a tunnel
(:meth:`~ferryman.server.protocol.ServerExchange.start_tunnel`) whose bytes go through a wsproto
:class:`~wsproto.connection.Connection`. ``websocket.close`` before the accept refuses the
handshake with a 403; ``websocket.http.response.*`` (the denial response extension) answers it
with any HTTP response.

Why wsproto's frame-level ``Connection`` and not ``WSConnection``: httptools has already parsed
the handshake request, and ``WSConnection`` would parse it again with h11. The accept token and
the extension negotiation come from wsproto's own helpers instead, as the client side does
(:mod:`ferryman.client.websocket`).

Back-pressure both ways: reading pauses while :data:`RECEIVE_QUEUE` messages wait for the
application, and ``websocket.send`` waits while the client's socket buffer is full. A client that
goes away gives the application ``websocket.disconnect`` with code 1006 (and an
:class:`ClientDisconnected` from a later send); its task is not cancelled, so it can clean up.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from typing import Any, Final
from urllib.parse import unquote_to_bytes

from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Ping, TextMessage
from wsproto.extensions import Extension, PerMessageDeflate
from wsproto.handshake import server_extensions_handshake
from wsproto.utilities import LocalProtocolError, generate_accept_token

from ferryman.server.asgi import RAW_HEADERS
from ferryman.server.controllers import ASGIApplication, Message
from ferryman.server.protocol import ServerExchange, WriteGate, response_head

__all__ = [
    "ClientDisconnected",
    "WebSocketCycle",
    "is_websocket_upgrade",
    "refuse_upgrade",
]

logger = logging.getLogger("ferryman.server")

_ASGI: Final = {"version": "3.0", "spec_version": "2.3"}
#: Received messages waiting for the application before reading from the client pauses.
RECEIVE_QUEUE: Final = 16
#: A message larger than this closes the connection with 1009, as uvicorn's ``ws_max_size``.
MAX_MESSAGE_SIZE: Final = 16 * 1024 * 1024
#: How long the client has to answer our close frame before the connection is cut.
CLOSE_TIMEOUT: Final = 5.0

# Cycle states.
_CONNECTING: Final = 0  # the application has not answered the handshake yet
_OPEN: Final = 1  # accepted: messages flow
_CLOSING: Final = 2  # our close frame is sent; waiting for the client's
_RESPONDING: Final = 3  # a denial response (websocket.http.response.*) is being written
_CLOSED: Final = 4


class ClientDisconnected(OSError):
    """Raised by ``send`` once the WebSocket is closed or the client gone (the ASGI spec asks
    servers for an OSError subclass), so an application that only sends still stops."""


def _header(exchange: ServerExchange, name: bytes) -> bytes | None:
    for key, value in exchange.headers:
        if key.lower() == name:
            return value
    return None


def _tokens(exchange: ServerExchange, name: bytes) -> list[str]:
    """A comma-separated header's tokens, over every occurrence of the header."""
    return [
        token.strip()
        for key, value in exchange.headers
        if key.lower() == name
        for token in value.decode("latin-1").split(",")
        if token.strip()
    ]


def is_websocket_upgrade(exchange: ServerExchange) -> bool:
    return any(token.lower() == "websocket" for token in _tokens(exchange, b"upgrade"))


def refuse_upgrade(
    exchange: ServerExchange,
    status: int,
    message: str,
    headers: tuple[tuple[bytes, bytes], ...] = (),
) -> None:
    """A JSON error for an upgrade request; the connection closes after it (its parser has
    stopped reading HTTP at the upgrade)."""
    body = json.dumps({"status": status, "message": message}).encode()
    head = response_head(
        status,
        None,
        [
            (b"Content-Type", b"application/json"),
            (b"Content-Length", b"%d" % len(body)),
            (b"Connection", b"close"),
            *headers,
        ],
    )
    exchange.write(head + body)
    exchange.finish(keep_alive=False)


def handshake_problem(exchange: ServerExchange) -> tuple[int, str] | None:
    """Why a WebSocket handshake request (RFC 6455 section 4.2.1) cannot be accepted, if so."""
    if exchange.method != b"GET" or exchange.http_version != "1.1":
        return 400, "a WebSocket handshake is an HTTP/1.1 GET request"
    key = _header(exchange, b"sec-websocket-key")
    if key is None or len(key.strip()) != 24:
        return 400, "the WebSocket handshake has no valid Sec-WebSocket-Key"
    if (_header(exchange, b"sec-websocket-version") or b"").strip() != b"13":
        return 426, "only WebSocket version 13 is supported"
    return None


class WebSocketCycle:
    """One WebSocket connection through the application: its ``receive`` and ``send``, and the
    consumer of the exchange's tunnel bytes."""

    __slots__ = (
        "_chunked",
        "_close_timer",
        "_final",
        "_fragments",
        "_gate",
        "_inbox",
        "_lost",
        "_message_size",
        "_paused_reading",
        "_text",
        "_waiter",
        "conn",
        "exchange",
        "loop",
        "state",
        "task",
    )

    def __init__(self, exchange: ServerExchange, loop: asyncio.AbstractEventLoop) -> None:
        self.exchange = exchange
        self.loop = loop
        self.state = _CONNECTING
        self.conn: Connection | None = None
        self.task: asyncio.Task[None] | None = None
        self._inbox: deque[Message] = deque([{"type": "websocket.connect"}])
        #: The ``websocket.disconnect`` every receive returns once the inbox is empty.
        self._final: Message | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._gate = WriteGate()
        self._paused_reading = False
        self._lost = False
        self._fragments: list[Any] = []
        self._message_size = 0
        self._text = False
        self._close_timer: asyncio.TimerHandle | None = None
        self._chunked = False

    # -- consumer callbacks (from the protocol) -----------------------------------------------

    def on_body(self, data: bytes) -> None:
        """Never called with data: an upgrade request's bytes after its head are tunnel data."""

    def on_body_end(self) -> None:
        """Nothing to do: the handshake is whole once its head is parsed."""

    def on_client_lost(self) -> None:
        self._lost = True
        self.state = _CLOSED
        self._cancel_close_timer()
        self._disconnected(1006)
        self._gate.release()

    def pause_producing(self) -> None:
        self._gate.pause()

    def resume_producing(self) -> None:
        self._gate.resume()

    def on_tunnel_data(self, data: bytes) -> None:
        conn = self.conn
        if conn is None or conn.state is ConnectionState.CLOSED:
            return  # bytes after the closing handshake: nothing to say to them
        try:
            conn.receive_data(data)
        except LocalProtocolError:  # pragma: no cover - guarded by the state check above
            self._close_transport()
            return
        for event in conn.events():
            if isinstance(event, TextMessage | BytesMessage):
                if self.state == _OPEN:
                    self._on_message(event)
            elif isinstance(event, Ping):
                if conn.state is ConnectionState.OPEN:
                    self._write(conn.send(event.response()))
            elif isinstance(event, CloseConnection):
                self._on_close(conn, event)
                return

    def _on_message(self, event: TextMessage | BytesMessage) -> None:
        data = event.data
        if not self._fragments:
            self._text = isinstance(event, TextMessage)
        self._fragments.append(data)
        self._message_size += len(data)
        if self._message_size > MAX_MESSAGE_SIZE:
            reason = f"a message exceeds {MAX_MESSAGE_SIZE} bytes"
            self._send_close(1009, reason)
            self._disconnected(1009, reason)
            self._close_transport()
            return
        if not event.message_finished:
            return
        fragments, self._fragments, self._message_size = self._fragments, [], 0
        if self._text:
            message: Message = {"type": "websocket.receive", "text": "".join(fragments)}
        else:
            message = {"type": "websocket.receive", "bytes": b"".join(fragments)}
        self._inbox.append(message)
        if len(self._inbox) >= RECEIVE_QUEUE and not self._paused_reading:
            self._paused_reading = True
            self.exchange.pause_reading()
        self._wake()

    def _on_close(self, conn: Connection, event: CloseConnection) -> None:
        if conn.state is ConnectionState.REMOTE_CLOSING:
            # The client started the close: answer it, tell the application, hang up.
            self._write(conn.send(event.response()))
            self._disconnected(event.code, event.reason or "")
        elif conn.state is ConnectionState.OPEN:
            # wsproto found a framing error (1002, 1007...): it names the close code.
            self._write(conn.send(CloseConnection(event.code, event.reason)))
            self._disconnected(event.code, event.reason or "")
        # else: the client's answer to our close; the application was told when it closed.
        self.state = _CLOSED
        self._cancel_close_timer()
        self._close_transport()

    # -- the ASGI side ------------------------------------------------------------------------

    def scope(self) -> dict[str, Any]:
        exchange = self.exchange
        raw_path, _, query = exchange.target.partition(b"?")
        return {
            "type": "websocket",
            "asgi": _ASGI,
            "http_version": exchange.http_version,
            "scheme": "wss" if exchange.scheme == "https" else "ws",
            "path": unquote_to_bytes(raw_path).decode("utf-8", "surrogateescape"),
            "raw_path": raw_path,
            "query_string": query,
            "root_path": "",
            "headers": [(name.lower(), value) for name, value in exchange.headers],
            "client": exchange.client,
            "server": exchange.server,
            "subprotocols": _tokens(exchange, b"sec-websocket-protocol"),
            "state": {},
            # (header names as spelled: the upstream handshake of a proxied WebSocket keeps them)
            "extensions": {
                "websocket.http.response": {},
                RAW_HEADERS: {"headers": exchange.headers},
            },
        }

    async def run(self, app: ASGIApplication) -> None:
        exchange = self.exchange
        try:
            await app(self.scope(), self.receive, self.send)
        except ClientDisconnected:
            pass  # our own signal, come back: the client is gone
        except asyncio.CancelledError:
            if self.state == _OPEN:
                self._send_close(1012, "the server is restarting")
                self._close_transport()
            raise
        except Exception:
            logger.exception("the ASGI application failed on WebSocket %r", exchange.target)
            self._after_app(1011)
            return
        else:
            if self.state == _CONNECTING:
                logger.error("the ASGI application returned without answering the handshake")
            self._after_app(1000)

    def _after_app(self, close_code: int) -> None:
        """The application is done: close whatever it left open."""
        state = self.state
        if state == _CONNECTING and not self._lost:
            self.state = _CLOSED
            refuse_upgrade(self.exchange, 500, "Internal Server Error")
        elif state == _OPEN:
            self._send_close(close_code, "")
            self._disconnected(close_code)
        elif state == _RESPONDING:
            self.state = _CLOSED
            self.exchange.abort()  # a denial response stopped half-way

    async def receive(self) -> Message:
        while True:
            inbox = self._inbox
            if inbox:
                message = inbox.popleft()
                if self._paused_reading and len(inbox) < RECEIVE_QUEUE // 2:
                    self._paused_reading = False
                    self.exchange.resume_reading()
                return message
            if self._final is not None:
                return self._final
            waiter = self._waiter = self.loop.create_future()
            try:
                await waiter
            finally:
                self._waiter = None

    async def send(self, message: Message) -> None:
        kind = message["type"]
        state = self.state
        if state == _OPEN and kind == "websocket.send":
            conn = self.conn
            assert conn is not None
            text = message.get("text")
            if text is not None:
                self._write(conn.send(TextMessage(data=text)))
            else:
                data = message.get("bytes")
                if data is None:
                    raise RuntimeError("websocket.send carries neither text nor bytes")
                self._write(conn.send(BytesMessage(data=bytes(data))))
            if not self._lost:
                await self._gate.wait()
            return
        if kind == "websocket.close":
            if state == _OPEN:
                code = message.get("code", 1000)
                reason = message.get("reason") or ""
                self._send_close(code, reason)
                self._disconnected(code, reason)
            elif state == _CONNECTING and not self._lost:
                self.state = _CLOSED
                self._disconnected(1006)
                refuse_upgrade(self.exchange, 403, "the application refused the WebSocket")
            return  # closing what is closed already is no error
        if self._lost or state in (_CLOSING, _CLOSED):
            raise ClientDisconnected(f"{kind}: the WebSocket connection is closed")
        if state == _CONNECTING and kind == "websocket.accept":
            self._accept(message)
        elif state == _CONNECTING and kind == "websocket.http.response.start":
            self._start_denial(message)
        elif state == _RESPONDING and kind == "websocket.http.response.body":
            self._denial_body(message)
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r} on a WebSocket")

    # -- handshake ----------------------------------------------------------------------------

    def _accept(self, message: Message) -> None:
        exchange = self.exchange
        key = _header(exchange, b"sec-websocket-key")
        assert key is not None  # checked before the application was called
        headers: list[tuple[bytes, bytes]] = [
            (b"Upgrade", b"websocket"),
            (b"Connection", b"Upgrade"),
            (b"Sec-WebSocket-Accept", generate_accept_token(key.strip())),
        ]
        subprotocol = message.get("subprotocol")
        if subprotocol:
            headers.append((b"Sec-WebSocket-Protocol", subprotocol.encode("ascii")))
        extensions: list[Extension] = []
        offered = _tokens(exchange, b"sec-websocket-extensions")
        extra = [(bytes(name), bytes(value)) for name, value in message.get("headers", ())]
        if offered and not any(name.lower() == b"sec-websocket-extensions" for name, _ in extra):
            deflate = PerMessageDeflate()
            accepted = server_extensions_handshake(offered, [deflate])
            if accepted is not None:
                extensions.append(deflate)
                headers.append((b"Sec-WebSocket-Extensions", accepted))
        headers.extend(extra)
        exchange.write(response_head(101, None, headers))
        self.conn = Connection(ConnectionType.SERVER, extensions)
        self.state = _OPEN
        exchange.start_tunnel()  # may hand over bytes that came with the handshake at once
        # start_tunnel marks the exchange finished, after which the protocol would not report
        # the client's loss to us; the tunnel is open until the connection ends, so it is not.
        exchange.finished = False

    def _start_denial(self, message: Message) -> None:
        status: int = message["status"]
        if not 100 <= status < 600 or status == 101:
            raise RuntimeError(f"invalid status {status} for a WebSocket denial response")
        headers = [(bytes(name), bytes(value)) for name, value in message.get("headers", ())]
        if not any(name.lower() == b"content-length" for name, _ in headers):
            headers.append((b"Transfer-Encoding", b"chunked"))
            self._chunked = True
        headers.append((b"Connection", b"close"))
        self.state = _RESPONDING
        self.exchange.write(response_head(status, None, headers))

    def _denial_body(self, message: Message) -> None:
        body: bytes = message.get("body", b"")
        if body:
            if self._chunked:
                self.exchange.writelines([b"%x\r\n" % len(body), body, b"\r\n"])
            else:
                self.exchange.write(body)
        if not message.get("more_body", False):
            if self._chunked:
                self.exchange.write(b"0\r\n\r\n")
            self.state = _CLOSED
            self._disconnected(1006)
            self.exchange.finish(keep_alive=False)

    # -- closing ------------------------------------------------------------------------------

    def server_close(self, code: int = 1012, reason: str = "") -> None:
        """Close an open WebSocket from the server's side (a shutdown): the application hears
        ``websocket.disconnect`` with ``code``."""
        if self.state == _OPEN:
            self._send_close(code, reason)
            self._disconnected(code, reason)

    def _send_close(self, code: int, reason: str) -> None:
        """Our close frame; the client's answer (or the timeout) ends the connection."""
        conn = self.conn
        if conn is None or conn.state is not ConnectionState.OPEN:
            return
        self._write(conn.send(CloseConnection(code=code, reason=reason)))
        self.state = _CLOSING
        if self._paused_reading:
            self._paused_reading = False  # the client's close frame must get through
            self.exchange.resume_reading()
        self._close_timer = self.loop.call_later(CLOSE_TIMEOUT, self._close_transport)

    def _disconnected(self, code: int, reason: str = "") -> None:
        if self._final is None:
            self._final = {"type": "websocket.disconnect", "code": code, "reason": reason}
            self._wake()

    def _cancel_close_timer(self) -> None:
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None

    def _close_transport(self) -> None:
        self._close_timer = None
        self.exchange.protocol.close()

    def _write(self, data: bytes) -> None:
        protocol = self.exchange.protocol
        transport = protocol.transport
        if transport is not None and not transport.is_closing():
            protocol.idle_ticks = 0  # (a WebSocket is idle when neither side sends)
            transport.write(data)

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def __repr__(self) -> str:
        return f"<WebSocketCycle {self.exchange.target!r} state={self.state}>"
