"""ferryman's own HTTP/1.1 server: asyncio Protocol callbacks around httptools' C parser.

Why not an ASGI server for the hot path: the generic ASGI layer builds a scope dict, starts a task
and sends the head and body as separate messages for every request, ~20 µs of a proxy's ~25 µs
budget. Here a request costs one :class:`ServerExchange` object and the parser's callbacks; what
answers it is a :class:`RequestHandler` whose ``on_request`` is a plain method call, so a proxy can
relay a request without creating a coroutine. The ASGI face is one such handler
(:class:`ferryman.server.bridge.ASGIBridge`).

A connection answers one request at a time, in order: pipelined requests wait in a queue (reading
pauses meanwhile), so their answers cannot interleave. Bodies flow both ways with back-pressure:
the handler's consumer is told to pause producing when the client's socket buffer is full, and may
pause reading the request body. Malformed requests get a JSON 400 and the connection closes; they
never reach the handler.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from typing import Final, Protocol, cast

import httptools

from ferryman.http.models import reason_phrase

__all__ = [
    "BodyConsumer",
    "RequestHandler",
    "ServerExchange",
    "ServerProtocol",
    "ServerState",
    "WriteGate",
    "response_head",
    "status_line",
]

logger = logging.getLogger("ferryman.server")

#: Status lines by status (the standard reason) or by (status, reason).
_STATUS_LINES: dict[int | tuple[int, bytes], bytes] = {}
_MAX_STATUS_LINES: Final = 512
_CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"
#: A request line plus headers larger than this is refused (nginx's large_client_header_buffers).
MAX_HEAD_SIZE: Final = 64 * 1024
#: The headers llhttp reads its keep-alive flags from.
_CONNECTION_NAMES: Final = frozenset({b"connection", b"proxy-connection"})
#: Pipelined requests buffered per connection before reading pauses.
MAX_PIPELINED: Final = 16


def response_head(status: int, reason: bytes | None, headers: list[tuple[bytes, bytes]]) -> bytes:
    """``HTTP/1.1 <status> <reason>`` and the headers, ending with the blank line."""
    line = status_line(status, reason)
    if not headers:
        return line + b"\r\n"
    return line + b"\r\n".join(map(b": ".join, headers)) + b"\r\n\r\n"


def status_line(status: int, reason: bytes | None) -> bytes:
    """``HTTP/1.1 <status> <reason>`` and its CRLF (the standard reason when ``reason`` is None)."""
    line = _STATUS_LINES.get(status if reason is None else (status, reason))
    return _status_line(status, reason) if line is None else line


def _status_line(status: int, reason: bytes | None) -> bytes:
    """Formats a status line and remembers it: the same few answer every request."""
    if reason is None:
        line = b"HTTP/1.1 %d %s\r\n" % (status, reason_phrase(status).encode("ascii"))
        _STATUS_LINES[status] = line
    else:
        line = b"HTTP/1.1 %d %s\r\n" % (status, reason)
        if len(_STATUS_LINES) < _MAX_STATUS_LINES:  # reasons come from upstreams: bounded
            _STATUS_LINES[status, reason] = line
    return line


def _error_head(status: int, body: bytes, close: bool = True) -> bytes:
    headers = [
        (b"Content-Type", b"application/json"),
        (b"Content-Length", str(len(body)).encode("ascii")),
    ]
    if close:
        headers.append((b"Connection", b"close"))
    return response_head(status, None, headers)


class BodyConsumer(Protocol):
    """Receives a request's body and hears about the client's connection, for one exchange."""

    def on_body(self, data: bytes) -> None: ...

    def on_body_end(self) -> None: ...

    def on_client_lost(self) -> None:
        """The client went away (or sent garbage) before the exchange finished."""

    def pause_producing(self) -> None:
        """The client's socket buffer is full: stop writing the response until resumed."""

    def resume_producing(self) -> None: ...

    def on_tunnel_data(self, data: bytes) -> None:
        """After an upgrade was accepted (:meth:`ServerExchange.start_tunnel`): raw client bytes."""


class WriteGate:
    """Lets a coroutine that produces a response wait while the client's socket buffer is full
    (the consumer's ``pause_producing``/``resume_producing`` drive it)."""

    __slots__ = ("_waiter", "paused")

    def __init__(self) -> None:
        self.paused = False
        self._waiter: asyncio.Future[None] | None = None

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False
        self.release()

    def release(self) -> None:
        """Wake a waiting producer without resuming (the client left: its next write fails)."""
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait(self) -> None:
        if not self.paused:
            return
        waiter = self._waiter = asyncio.get_running_loop().create_future()
        try:
            await waiter
        finally:
            self._waiter = None


class RequestHandler(Protocol):
    """Answers the requests of every connection of one listening socket."""

    def on_request(self, exchange: ServerExchange) -> None:
        """Called once the head is parsed; answer now or later through ``exchange``."""


class ServerState:
    """What the connections of one server share: the open connections, for idle timeouts and a
    graceful shutdown."""

    __slots__ = ("_idle_waiters", "_sweeper", "closing", "connections", "keepalive_timeout")

    def __init__(self, keepalive_timeout: float = 75.0) -> None:
        self.connections: set[ServerProtocol] = set()
        self.keepalive_timeout = keepalive_timeout
        self.closing = False
        self._sweeper: asyncio.TimerHandle | None = None
        self._idle_waiters: list[asyncio.Future[None]] = []

    def add(self, connection: ServerProtocol, loop: asyncio.AbstractEventLoop) -> None:
        self.connections.add(connection)
        if self._sweeper is None:
            self._sweeper = loop.call_later(1.0, self._sweep, loop)

    def discard(self, connection: ServerProtocol) -> None:
        self.connections.discard(connection)
        if not self.connections:
            for waiter in self._idle_waiters:
                if not waiter.done():
                    waiter.set_result(None)
            self._idle_waiters.clear()

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        """Once a second: close connections idle for longer than the keep-alive timeout.

        A tick counter that ``data_received`` resets costs the hot path one attribute store,
        where a timer per connection or request would cost a heap operation each time.
        """
        self._sweeper = None
        limit = self.keepalive_timeout
        for connection in list(self.connections):
            connection.idle_ticks += 1
            if connection.idle_ticks > limit and connection.is_idle():
                connection.close()
        if self.connections:
            self._sweeper = loop.call_later(1.0, self._sweep, loop)

    def start_closing(self) -> None:
        """Stop keeping connections alive: idle ones close now, busy ones after their answer."""
        self.closing = True
        for connection in list(self.connections):
            if connection.is_idle():
                connection.close()

    async def wait_closed(self) -> None:
        """Return when every connection has closed."""
        if not self.connections:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._idle_waiters.append(waiter)
        await waiter

    def abort_all(self) -> None:
        for connection in list(self.connections):
            connection.abort()


class ServerExchange:
    """One request on a connection, and the way to answer it.

    The handler reads ``method``, ``target`` (raw bytes, as sent), ``headers`` (raw pairs, names
    as sent) and the framing facts the parser found; calls :meth:`set_consumer` to receive the body
    (chunks that arrived before are replayed); and answers with :meth:`write` (the head bytes
    first: see :func:`response_head`), then :meth:`finish`.
    """

    __slots__ = (
        "_buffered",
        "_consumer",
        "body_complete",
        "chunked",
        "content_length",
        "expect_continue",
        "finished",
        "headers",
        "http_version",
        "keep_alive",
        "method",
        "protocol",
        "started",
        "target",
        "upgrade",
    )

    def __init__(
        self,
        protocol: ServerProtocol,
        method: bytes,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        http_version: str,
        keep_alive: bool,
        upgrade: bool,
        content_length: int | None,
        chunked: bool,
        expect_continue: bool,
    ) -> None:
        self.protocol = protocol
        self.method = method
        self.target = target
        self.headers = headers
        self.http_version = http_version
        self.keep_alive = keep_alive
        self.upgrade = upgrade
        #: From the request's Content-Length; None when absent (chunked or no body).
        self.content_length = content_length
        self.chunked = chunked
        self.expect_continue = expect_continue
        #: The whole request body has arrived: from the head on when none follows (RFC 9112
        #: section 6.3), so a handler answering from the head may keep the connection alive.
        self.body_complete = not chunked and not content_length
        #: Response bytes have been written / the answer is complete.
        self.started = False
        self.finished = False
        self._consumer: BodyConsumer | None = None
        self._buffered: list[bytes] | None = None

    @property
    def has_body(self) -> bool:
        return self.chunked or bool(self.content_length)

    # -- request body -------------------------------------------------------------------------

    def set_consumer(self, consumer: BodyConsumer) -> None:
        self._consumer = consumer
        if self.expect_continue and not self.body_complete and not self.started:
            self.expect_continue = False
            self.protocol.transport_write(_CONTINUE)
        buffered = self._buffered
        if buffered is not None:
            self._buffered = None
            for chunk in buffered:
                consumer.on_body(chunk)
        if self.body_complete:
            consumer.on_body_end()

    def _feed(self, data: bytes) -> None:
        consumer = self._consumer
        if consumer is not None:
            consumer.on_body(data)
        elif self._buffered is None:
            self._buffered = [data]
        else:
            self._buffered.append(data)

    def _end(self) -> None:
        self.body_complete = True
        consumer = self._consumer
        if consumer is not None:
            consumer.on_body_end()

    def pause_reading(self) -> None:
        """Stop reading the request body until :meth:`resume_reading` (a slow upstream)."""
        self.protocol.pause_reading()

    def resume_reading(self) -> None:
        self.protocol.resume_reading()

    # -- response -----------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if self.finished:
            return
        self.started = True
        transport = self.protocol.transport
        if transport is not None:
            transport.write(data)

    def writelines(self, chunks: list[bytes]) -> None:
        if self.finished:
            return
        self.started = True
        transport = self.protocol.transport
        if transport is not None:
            transport.writelines(chunks)

    def finish(self, keep_alive: bool = True) -> None:
        """The answer is complete; ``keep_alive=False`` closes the connection after it."""
        if self.finished:
            return
        self.started = True
        self.finished = True
        # The consumer (a relay, a bridge cycle) holds this exchange: dropping the reference
        # back lets reference counting free both now, so a request leaves no cycle for the
        # garbage collector (whose pauses would otherwise show in the tail latency).
        self._consumer = None
        self.protocol.exchange_finished(self, keep_alive and self.keep_alive)

    def abort(self) -> None:
        """Cut the connection: the answer cannot be completed (the upstream broke off)."""
        self.finished = True
        self.protocol.abort()

    def send_error(self, status: int, body: bytes) -> None:
        """Answer with a complete JSON error and close the connection (nothing sent yet)."""
        if self.started:
            self.abort()
            return
        # The connection stays usable when the request was read whole.
        keep_alive = self.body_complete and self.keep_alive and not self.upgrade
        self.write(_error_head(status, body, close=not keep_alive) + body)
        self.finish(keep_alive=keep_alive)

    def start_tunnel(self) -> None:
        """Switch the connection to raw bytes both ways (after writing a 101 head)."""
        self.protocol.start_tunnel(self)

    # -- connection facts ---------------------------------------------------------------------

    @property
    def client(self) -> tuple[str, int] | None:
        return self.protocol.client

    @property
    def server(self) -> tuple[str, int] | None:
        return self.protocol.server

    @property
    def scheme(self) -> str:
        return self.protocol.scheme

    def __repr__(self) -> str:
        return f"<ServerExchange {self.method.decode('latin-1')} {self.target!r}>"


class ServerProtocol(asyncio.Protocol):
    """One client connection; see the module documentation."""

    __slots__ = (
        "_current",
        "_head_size",
        "_headers",
        "_parser",
        "_parsing",
        "_queue",
        "_reading_paused",
        "_tunnel",
        "_tunnel_rest",
        "_url",
        "_writing_paused",
        "client",
        "handler",
        "idle_ticks",
        "loop",
        "scheme",
        "server",
        "state",
        "transport",
    )

    def __init__(
        self,
        handler: RequestHandler,
        state: ServerState,
        loop: asyncio.AbstractEventLoop,
        scheme: str = "http",
    ) -> None:
        self.handler = handler
        self.state = state
        self.loop = loop
        self.scheme = scheme
        self.transport: asyncio.Transport | None = None
        self.client: tuple[str, int] | None = None
        self.server: tuple[str, int] | None = None
        self.idle_ticks = 0
        self._parser = httptools.HttpRequestParser(self)
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._head_size = 0
        #: The exchange whose request is being parsed / the one being answered.
        self._parsing: ServerExchange | None = None
        self._current: ServerExchange | None = None
        self._queue: deque[ServerExchange] | None = None
        self._tunnel: ServerExchange | None = None
        self._tunnel_rest = b""
        self._reading_paused = False
        self._writing_paused = False

    # -- asyncio callbacks --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self.client = (peer[0], peer[1]) if isinstance(peer, tuple) else None
        sock = transport.get_extra_info("sockname")
        self.server = (sock[0], sock[1]) if isinstance(sock, tuple) else None
        self.state.add(self, self.loop)
        if self.state.closing:
            transport.close()

    def data_received(self, data: bytes) -> None:
        self.idle_ticks = 0
        tunnel = self._tunnel
        if tunnel is not None:
            consumer = tunnel._consumer
            if consumer is not None:
                consumer.on_tunnel_data(data)
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            rest = data[upgrade.args[0] :]
            exchange = self._parsing
            if exchange is not None and exchange is self._tunnel:
                # The handler accepted the upgrade before the parser reached the head's end.
                if rest and exchange._consumer is not None:
                    exchange._consumer.on_tunnel_data(rest)
            elif exchange is not None and exchange is self._current:
                self._tunnel_pending(exchange, rest)
            else:
                self._refuse(400, "an upgrade request cannot be pipelined")
        except httptools.HttpParserError as exc:
            if self._head_size > MAX_HEAD_SIZE:
                # httptools wraps what a callback raises; the size tells which error it was.
                self._refuse(431, "the request head is too large")
            else:
                self._refuse(400, f"malformed HTTP request: {exc}")

    def connection_lost(self, exc: Exception | None) -> None:
        self.state.discard(self)
        self.transport = None
        tunnel = self._tunnel
        if tunnel is not None and tunnel._consumer is not None:
            # A tunnel's exchange is finished as HTTP, but its consumer relays on.
            tunnel._consumer.on_client_lost()
        for exchange in self._open_exchanges():
            if exchange is tunnel:
                continue
            exchange.finished = True
            consumer = exchange._consumer
            if consumer is not None:
                consumer.on_client_lost()
        self._current = self._parsing = self._tunnel = None
        self._queue = None

    def pause_writing(self) -> None:
        self._writing_paused = True
        exchange = self._tunnel or self._current
        if exchange is not None and exchange._consumer is not None:
            exchange._consumer.pause_producing()

    def resume_writing(self) -> None:
        self._writing_paused = False
        exchange = self._tunnel or self._current
        if exchange is not None and exchange._consumer is not None:
            exchange._consumer.resume_producing()

    # -- httptools callbacks ------------------------------------------------------------------

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._head_size += len(url)
        if self._head_size > MAX_HEAD_SIZE:
            raise _HeadTooLarge()

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))
        self._head_size += len(name) + len(value)
        if self._head_size > MAX_HEAD_SIZE:
            raise _HeadTooLarge()

    def on_headers_complete(self) -> None:
        parser = self._parser
        headers = self._headers
        # The next request's head starts empty (here, not in on_message_begin: a callback less).
        url = self._url
        self._url = b""
        self._headers = []
        self._head_size = 0
        content_length: int | None = None
        chunked = expect_continue = connection_header = False
        for name, value in headers:
            size = len(name)
            if size == 14 and name.lower() == b"content-length":
                content_length = int(value)  # llhttp has refused malformed ones
            elif size == 17 and name.lower() == b"transfer-encoding":
                chunked = True
            elif size == 6 and name.lower() == b"expect":
                expect_continue = value.lower() == b"100-continue"
            elif (size == 10 or size == 16) and name.lower() in _CONNECTION_NAMES:
                connection_header = True
        keep_alive = parser.should_keep_alive()
        exchange = ServerExchange(
            self,
            parser.get_method(),
            url,
            headers,
            # llhttp keeps a connection alive with no Connection header only for HTTP/1.1 (1.0
            # and 0.9 need "keep-alive"; 2.0 it takes for 1.0), so the version is known then
            # without get_http_version(), which formats a string (0.3 us a request).
            "1.1" if keep_alive and not connection_header else parser.get_http_version(),
            keep_alive and not self.state.closing,
            parser.should_upgrade(),
            content_length,
            chunked,
            expect_continue,
        )
        self._parsing = exchange
        if self._current is None:
            self._current = exchange
            try:
                self.handler.on_request(exchange)
            except Exception:
                # Raised into httptools, it would come back as a parse error (a 400).
                self._handler_failed(exchange)
        else:
            queue = self._queue
            if queue is None:
                queue = self._queue = deque()
            queue.append(exchange)
            if len(queue) >= MAX_PIPELINED:
                self.pause_reading()

    def on_body(self, body: bytes) -> None:
        exchange = self._parsing
        if exchange is not None and not exchange.finished:
            try:
                exchange._feed(body)
            except Exception:
                self._handler_failed(exchange)

    def on_message_complete(self) -> None:
        exchange = self._parsing
        # A bodiless request was complete from its head on, and said so then.
        if exchange is not None and not exchange.body_complete:
            try:
                exchange._end()
            except Exception:
                self._handler_failed(exchange)

    def _handler_failed(self, exchange: ServerExchange) -> None:
        logger.exception("the request handler failed on %r", exchange)
        if exchange.finished:
            return
        if exchange.started:
            exchange.abort()
        else:
            body = json.dumps({"status": 500, "message": "Internal Server Error"}).encode()
            exchange.send_error(500, body)

    # -- what exchanges call ------------------------------------------------------------------

    def transport_write(self, data: bytes) -> None:
        transport = self.transport
        if transport is not None:
            transport.write(data)

    def exchange_finished(self, exchange: ServerExchange, keep_alive: bool) -> None:
        if exchange is not self._current:
            return
        self._current = None
        transport = self.transport
        if transport is None:
            return
        if not keep_alive or not exchange.body_complete or exchange.upgrade or self.state.closing:
            # An unread request body would be parsed as the next request, and after a refused
            # upgrade the parser no longer reads HTTP: close instead.
            transport.close()
            return
        queue = self._queue
        if queue:
            following = queue.popleft()
            self._current = following
            if self._reading_paused and len(queue) < MAX_PIPELINED:
                self.resume_reading()
            try:
                self.handler.on_request(following)
            except Exception:
                self._handler_failed(following)

    def pause_reading(self) -> None:
        if not self._reading_paused and self.transport is not None:
            self._reading_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self._reading_paused and self.transport is not None:
            self._reading_paused = False
            self.transport.resume_reading()

    def start_tunnel(self, exchange: ServerExchange) -> None:
        if exchange is not self._current or not exchange.upgrade or self.transport is None:
            raise RuntimeError("only the upgrade request being answered can start a tunnel")
        self._tunnel = exchange
        self._current = None
        exchange.finished = True
        rest, self._tunnel_rest = self._tunnel_rest, b""
        if rest and exchange._consumer is not None:
            exchange._consumer.on_tunnel_data(rest)
        self.resume_reading()

    def is_idle(self) -> bool:
        return self._current is None and self._tunnel is None

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    # -- internals ----------------------------------------------------------------------------

    def _tunnel_pending(self, exchange: ServerExchange, rest: bytes) -> None:
        """An upgrade request was parsed: what follows its head is not HTTP any more.

        Reading pauses until the handler accepts (``start_tunnel``) or refuses the upgrade;
        bytes that came with the head are handed over as the first tunnel data.
        """
        exchange.body_complete = True
        self.pause_reading()
        self._tunnel_rest = rest

    def _open_exchanges(self) -> list[ServerExchange]:
        found: list[ServerExchange] = []
        for exchange in (self._tunnel, self._current, self._parsing):
            if exchange is not None and not exchange.finished and exchange not in found:
                found.append(exchange)
        if self._queue:
            found.extend(self._queue)
        return found

    def _refuse(self, status: int, message: str) -> None:
        """Answer a request the parser refused, unless an answer is already under way."""
        logger.debug("refusing a request from %s: %s", self.client, message)
        for exchange in self._open_exchanges():
            if exchange is not self._current:
                exchange.finished = True
        current = self._current
        if current is not None and not current.finished:
            # Half a request reached the handler: it must not be completed or forwarded.
            current.finished = True
            if current._consumer is not None:
                current._consumer.on_client_lost()
            if current.started:
                self.abort()
                return
        transport = self.transport
        if transport is None:
            return
        body = json.dumps({"status": status, "message": message}).encode()
        transport.write(_error_head(status, body) + body)
        self._current = self._parsing = None
        self._queue = None
        transport.close()


class _HeadTooLarge(Exception):
    pass
