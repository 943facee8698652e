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

Every resource a client can hold has a limit and every wait a timeout (:class:`ServerLimits`,
one per listening socket): the request line (414), one header, the head and the header count
(431), the body (413), chunk framing and trailers (400); a head's time from its first byte, a
body's idle time and average rate (408), the idle time between requests and the time a client
may leave its answer unread (closed). Bytes are counted as they arrive, whatever part of the
message they belong to, so a value that never ends costs the limit, not the parser's joins of
every piece. The timeouts ride on one sweep a second over the open connections: no timer per
request.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections import deque
from typing import Final, cast

import httptools

from ferryman.server.exchange import (
    BodyConsumer,
    RequestHandler,
    ServerExchange,
    WriteGate,
    error_head,
    origin_form,
    response_head,
    status_line,
)
from ferryman.server.limits import DEFAULT_LIMITS, MAX_HEAD_SIZE, ServerLimits

__all__ = [
    "DEFAULT_LIMITS",
    "MAX_HEAD_SIZE",
    "BodyConsumer",
    "RequestHandler",
    "ServerExchange",
    "ServerLimits",
    "ServerProtocol",
    "ServerState",
    "WriteGate",
    "error_head",
    "origin_form",
    "response_head",
    "status_line",
]

logger = logging.getLogger("ferryman.server")

#: The headers llhttp reads its keep-alive flags from.
_CONNECTION_NAMES: Final = frozenset({b"connection", b"proxy-connection"})
#: Pipelined requests buffered per connection before reading pauses.
MAX_PIPELINED: Final = 16
#: How long, and how many bytes, a closing connection reads and drops (``_linger``).
LINGER_SECONDS: Final = 2
LINGER_BYTES: Final = 1024 * 1024
#: RFC 9110 section 5.6.2: what a method (or any token) is made of.
_TOKEN: Final = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: The longest extension method taken (llhttp knows the registered ones; see _extension_method).
MAX_METHOD_SIZE: Final = 32
#: RFC 9110 section 7.2: Host = uri-host [ ":" port ], uri-host an IP literal, IPv4 or reg-name.
_HOST: Final = re.compile(rb"(?:\[[0-9A-Fa-f:.vV]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]*)(?::[0-9]*)?")
#: Host values seen valid (each request's Host costs a set look-up, not a match), bounded.
_VALID_HOSTS: set[bytes] = set()
_MAX_VALID_HOSTS: Final = 1024


class ServerState:
    """What the connections of one server share: the open connections, for their timeouts and
    a graceful shutdown."""

    __slots__ = ("_idle_waiters", "_sweeper", "closing", "connections")

    def __init__(self) -> None:
        self.connections: set[ServerProtocol] = set()
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
        """Once a second: each connection counts a tick and closes if a timeout has passed.

        Tick counters that the callbacks reset cost the hot path an attribute store each,
        where a timer per connection or request would cost a heap operation each time.
        """
        self._sweeper = None
        for connection in list(self.connections):
            connection.tick()
        if self.connections:
            self._sweeper = loop.call_later(1.0, self._sweep, loop)

    def start_closing(self) -> None:
        """Stop keeping connections alive: idle ones close now, busy ones after their answer,
        which says so (``Connection: close``: every exchange open now stops keeping alive)."""
        self.closing = True
        for connection in list(self.connections):
            if connection.is_idle():
                connection.close()
            else:
                connection.stop_keeping_alive()

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


class ServerProtocol(asyncio.Protocol):
    """One client connection; see the module documentation."""

    __slots__ = (
        "_body_ticks",
        "_current",
        "_head_size",
        "_head_ticks",
        "_headers",
        "_ignored_upgrade",
        "_linger_ticks",
        "_lingered",
        "_lingering",
        "_method",
        "_parser",
        "_parsing",
        "_queue",
        "_reading",
        "_reading_paused",
        "_refusal",
        "_send_ticks",
        "_slice",
        "_tunnel",
        "_tunnel_rest",
        "_unparsed",
        "_url",
        "_writing_paused",
        "client",
        "handler",
        "idle_ticks",
        "limits",
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
        limits: ServerLimits = DEFAULT_LIMITS,
    ) -> None:
        self.handler = handler
        self.state = state
        self.loop = loop
        self.scheme = scheme
        self.limits = limits
        #: Reads longer than this are parsed in slices this long (see ``data_received``).
        self._slice = max(min(limits.head // 4, 16384), 1024)
        self.transport: asyncio.Transport | None = None
        self.client: tuple[str, int] | None = None
        self.server: tuple[str, int] | None = None
        self._parser = httptools.HttpRequestParser(self)
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        #: Bytes of the head (or trailers) read so far, as the parser delivered them.
        self._head_size = 0
        #: Where the parser is: between messages, in a head, or in a body and its trailers.
        self._reading = _BETWEEN
        #: Bytes read since the parser last got anywhere (a head's end, body bytes): what an
        #: endless header value, chunk extension or trailer holds, bounded by ``limits.head``.
        self._unparsed = 0
        #: Sweeps (seconds) since: any byte came; the head began; the body began while being
        #: read; the client's socket filled up (``pause_writing``).
        self.idle_ticks = 0
        self._head_ticks = 0
        self._body_ticks = 0
        self._send_ticks = 0
        #: The exchange whose request is being parsed / the one being answered.
        self._parsing: ServerExchange | None = None
        self._current: ServerExchange | None = None
        self._queue: deque[ServerExchange] | None = None
        self._tunnel: ServerExchange | None = None
        self._tunnel_rest = b""
        self._reading_paused = False
        self._writing_paused = False
        #: The request parsed is asking for an Upgrade the handler does not take: the parser
        #: stops after its head as if upgrading, and goes on with HTTP.
        self._ignored_upgrade = False
        #: An extension method llhttp does not know, which it parsed as GET (``_extension``).
        self._method: bytes | None = None
        #: A refusal (status, message) waiting for the answers to the requests before it.
        self._refusal: tuple[int, str] | None = None
        #: Closing: the last answer is out, what the client still sends is dropped (_linger).
        self._lingering = False
        self._lingered = 0
        self._linger_ticks = 0

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
        if self._refusal is not None:
            # The parser failed, or the connection is closing: nothing more is parsed.
            if self._lingering:
                self._lingered += len(data)
                if self._lingered > LINGER_BYTES:
                    self.pause_reading()  # (the client can still read; tick ends it)
            return
        size = len(data)
        step = self._slice
        if size <= step:
            self._feed(data, 0, size)
            return
        # A long read goes to the parser in slices, the count checked after each: a value,
        # chunk extension or trailer inside one read is cut at the limit too, before what
        # follows it (the end of a body, say) can reach the handler. (What follows a head's
        # end or body bytes in a slice is not counted: at most a slice past the limit.)
        for start in range(0, size, step):
            if not self._feed(data, start, min(start + step, size)):
                return

    def _feed(self, data: bytes, start: int, end: int) -> bool:
        """Parse ``data[start:end]``; False when parsing this read must stop there."""
        between = self._reading == _BETWEEN
        parsing = self._parsing
        self._unparsed += end - start
        try:
            self._parser.feed_data(
                data if end - start == len(data) else memoryview(data)[start:end]
            )
        except httptools.HttpParserUpgrade as upgrade:
            self._upgraded(data[start + upgrade.args[0] :])
            return False
        except httptools.HttpParserInvalidMethodError:
            self._extension(data[start:], between and self._parsing is parsing)
            return False
        except httptools.HttpParserCallbackError as exc:
            refused = exc.__context__
            if isinstance(refused, _Refused):
                self._refuse(refused.status, refused.message)
            else:
                self._refuse(400, f"malformed HTTP request: {exc}")
            return False
        except httptools.HttpParserError as exc:
            if str(exc) == _UNKNOWN_VERSION:
                self._refuse(505, "this HTTP version is not supported here (HTTP/1.1 is)")
            else:
                self._refuse(400, f"malformed HTTP request: {exc}")
            return False
        if self._unparsed > self.limits.head:
            self._overlong()
            return False
        return True

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
            if exchange.on_end is not None:
                exchange.ended("the client closed the connection before the answer was sent")
            consumer = exchange._consumer
            if consumer is not None:
                consumer.on_client_lost()
        self._current = self._parsing = self._tunnel = None
        self._queue = None

    def pause_writing(self) -> None:
        self._writing_paused = True
        self._send_ticks = 0
        exchange = self._tunnel or self._current
        if exchange is not None and exchange._consumer is not None:
            exchange._consumer.pause_producing()

    def resume_writing(self) -> None:
        self._writing_paused = False
        exchange = self._tunnel or self._current
        if exchange is not None and exchange._consumer is not None:
            exchange._consumer.resume_producing()

    # -- httptools callbacks ------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._reading = _HEAD
        self._head_ticks = 0

    def on_url(self, url: bytes) -> None:
        url = self._url = self._url + url
        if len(url) > self.limits.request_line:
            raise _Refused(414, "the request target is too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        limits = self.limits
        size = self._head_size = self._head_size + len(name) + len(value)
        if self._reading == _BODY:
            # A trailer (after a chunked body): counted against the head's limits, then
            # dropped, as the relay re-chunks the body without them.
            self._trailer(name, value, size)
            return
        headers = self._headers
        headers.append((name, value))
        if size > limits.head:
            raise _Refused(431, "the request head is too large")
        if len(name) + len(value) > limits.header:
            raise _Refused(431, f"a request header is longer than {limits.header} bytes")
        if len(headers) > limits.headers:
            raise _Refused(431, f"the request has more than {limits.headers} headers")

    def _trailer(self, name: bytes, value: bytes, size: int) -> None:
        limits = self.limits
        self._headers.append((name, value))
        if (
            size > limits.head
            or len(name) + len(value) > limits.header
            or len(self._headers) > limits.headers
        ):
            raise _Refused(400, "the request's trailers are too large")

    def on_headers_complete(self) -> None:
        parser = self._parser
        headers = self._headers
        limits = self.limits
        # The next head (or this request's trailers) starts empty.
        url = self._url
        self._url = b""
        self._headers = []
        self._head_size = 0
        self._unparsed = 0
        self._body_ticks = 0
        self._reading = _BODY
        content_length: int | None = None
        chunked = expect_continue = connection_header = False
        host: bytes | None = None
        hosts = 0
        upgrade_to: bytes | None = None
        for name, value in headers:
            size = len(name)
            if size == 4 and name.lower() == b"host":
                host = value
                hosts += 1
            elif size == 14 and name.lower() == b"content-length":
                content_length = int(value)  # llhttp has refused malformed ones
            elif size == 17 and name.lower() == b"transfer-encoding":
                if chunked or value.strip(b" \t").lower() != b"chunked":
                    raise _Refused(501, "only the chunked transfer coding is supported")
                chunked = True
            elif size == 6 and name.lower() == b"expect":
                expect_continue = value.lower() == b"100-continue"
            elif (size == 10 or size == 16) and name.lower() in _CONNECTION_NAMES:
                connection_header = True
            elif size == 7 and name.lower() == b"upgrade":
                upgrade_to = value
        keep_alive = parser.should_keep_alive()
        # llhttp keeps a connection alive with no Connection header only for HTTP/1.1 (1.0
        # and 0.9 need "keep-alive"; 2.0 it takes for 1.0), so the version is known then
        # without get_http_version(), which formats a string (0.3 us a request).
        version = "1.1" if keep_alive and not connection_header else parser.get_http_version()
        if version != "1.1":
            if version != "1.0":  # (llhttp takes 0.9 and 2.0 besides, refuses the others)
                raise _Refused(505, f"HTTP/{version} is not supported here (HTTP/1.1 is)")
            if hosts > 1:
                raise _Refused(400, "a request may have one Host header, it sent several")
        elif hosts != 1:
            # RFC 9112 section 3.2: exactly one Host in an HTTP/1.1 request.
            raise _Refused(400, "an HTTP/1.1 request needs one Host header" + _GOT[hosts > 1])
        if host is not None and host not in _VALID_HOSTS:
            _check_host(host)
        method = self._method
        if method is None:
            method = parser.get_method()
        else:
            self._method = None
        upgrade = parser.should_upgrade()
        if upgrade and method != b"CONNECT" and not _accepted(upgrade_to, limits.upgrades):
            if content_length or chunked:
                raise _Refused(400, "an Upgrade request with a body cannot be relayed")
            # RFC 9110 section 7.8: a server may ignore Upgrade; the request goes on as HTTP.
            upgrade = False
            self._ignored_upgrade = True
        exchange = ServerExchange(
            self,
            method,
            url,
            headers,
            version,
            keep_alive and not self.state.closing,
            upgrade,
            content_length,
            chunked,
            expect_continue,
            limits.body,
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
        self._unparsed = 0
        exchange = self._parsing
        if exchange is not None and not exchange.finished:
            received = exchange.body_received = exchange.body_received + len(body)
            limit = exchange.body_limit
            if limit is not None and received > limit:
                raise _Refused(413, f"the request body is larger than {limit} bytes")
            try:
                exchange._feed(body)
            except Exception:
                self._handler_failed(exchange)

    def on_message_complete(self) -> None:
        self._reading = _BETWEEN
        self._unparsed = 0
        if self._headers:  # trailers, counted and dropped
            self._headers = []
            self._head_size = 0
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

    # -- the sweep ----------------------------------------------------------------------------

    def tick(self) -> None:
        """One second passed (:meth:`ServerState._sweep`): close what waited too long."""
        self.idle_ticks += 1
        limits = self.limits
        if self._writing_paused:
            self._send_ticks += 1
            if self._send_ticks > limits.send_timeout:
                logger.debug("closing %s: it left its answer unread", self.client)
                self.abort()
                return
        if self._lingering:
            self._linger_ticks += 1
            if self._linger_ticks >= LINGER_SECONDS:
                self.abort()
            return
        if self._tunnel is not None:
            # (its consumer resets idle_ticks for the bytes it sends the client, too)
            if self.idle_ticks > limits.tunnel_idle:
                logger.debug("closing the tunnel of %s: idle", self.client)
                self.close()
            return
        if self._reading_paused or self._refusal is not None:
            return  # (paused: waiting for the upstream or the answers before, not the client)
        reading = self._reading
        if reading == _HEAD:
            self._head_ticks += 1
            if self._head_ticks > limits.head_timeout:
                self._refuse(408, f"the request head took longer than {limits.head_timeout:g} s")
        elif reading == _BODY:
            exchange = self._parsing
            if exchange is None or exchange.body_complete:
                return
            self._body_ticks += 1
            rate = limits.body_min_rate
            if self.idle_ticks > limits.body_idle:
                self._refuse(408, f"no byte of the request body came for {limits.body_idle:g} s")
            elif rate and self._body_ticks > limits.body_idle + exchange.body_received / rate:
                self._refuse(408, f"the request body came slower than {rate:g} bytes/s")
        elif self.is_idle():
            # Between requests: the keep-alive wait, or for a connection that has sent no
            # request yet, the head's (nginx's client_header_timeout covers that wait too).
            limit = limits.keepalive if self._parsing is not None else limits.head_timeout
            if self.idle_ticks > limit:
                self.close()

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
        if not exchange.body_complete:
            # An unread request body would be parsed as the next request: close, letting the
            # client read the answer while it may still be sending.
            self._linger()
            return
        if not keep_alive or exchange.upgrade or self.state.closing:
            # (after a refused upgrade the parser no longer reads HTTP)
            transport.close()
            return
        queue = self._queue
        if queue:
            following = queue.popleft()
            self._current = following
            if self._reading_paused and len(queue) < MAX_PIPELINED and self._refusal is None:
                self.resume_reading()
            try:
                self.handler.on_request(following)
            except Exception:
                self._handler_failed(following)
        elif self._refusal is not None:
            self._send_refusal(*self._refusal)

    def pause_reading(self) -> None:
        if not self._reading_paused and self.transport is not None:
            self._reading_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self._reading_paused and self.transport is not None:
            self._reading_paused = False
            self.idle_ticks = 0  # (the time paused was not the client's)
            self.transport.resume_reading()

    def start_tunnel(self, exchange: ServerExchange) -> None:
        if exchange is not self._current or not exchange.upgrade or self.transport is None:
            raise RuntimeError("only the upgrade request being answered can start a tunnel")
        self._tunnel = exchange
        self._current = None
        exchange.finished = True
        if exchange.on_end is not None:
            exchange.ended(None)  # (as HTTP: the tunnel that follows is not a transaction's)
        rest, self._tunnel_rest = self._tunnel_rest, b""
        if rest and exchange._consumer is not None:
            exchange._consumer.on_tunnel_data(rest)
        self.resume_reading()

    def is_idle(self) -> bool:
        return self._current is None and self._tunnel is None

    def stop_keeping_alive(self) -> None:
        """The server is draining: every answer still to come says ``Connection: close``."""
        for exchange in self._open_exchanges():
            exchange.keep_alive = False

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    # -- internals ----------------------------------------------------------------------------

    def _upgraded(self, rest: bytes) -> None:
        """The parser stopped after an upgrade request's head, ``rest`` not parsed."""
        exchange = self._parsing
        if self._ignored_upgrade:
            # Not an upgrade the handler takes: what follows is HTTP again (a bodiless
            # request's, as _Refused made sure), for the parser, which has resumed.
            self._ignored_upgrade = False
            self._unparsed = 0
            if rest and self.transport is not None:
                self.data_received(rest)
        elif exchange is not None and exchange is self._tunnel:
            # The handler accepted the upgrade before the parser reached the head's end.
            if rest and exchange._consumer is not None:
                exchange._consumer.on_tunnel_data(rest)
        elif exchange is not None and exchange is self._current:
            self._tunnel_pending(exchange, rest)
        else:
            self._refuse(400, "an upgrade request cannot be pipelined")

    def _extension(self, data: bytes, at_start: bool) -> None:
        """llhttp refused a method: relay it if it is an RFC 9110 token (``PURGE`` is known to
        llhttp, ``FOO`` or a WebDAV extension may not be), else answer 400.

        llhttp knows only registered methods and cannot be told otherwise, so the request is
        parsed again with ``GET`` in place of its method (every method but CONNECT frames the
        same way) and the exchange gets its own. That needs the method's place, known when
        the head is the first thing this read holds (``at_start``: no message was open when
        the read came, and none ended in it); a method split across reads, or following
        another request in the same read, gets the 400.
        """
        start = 0
        while data[start : start + 1] in _LINE_ENDS:  # (llhttp skips empty lines between requests)
            start += 1
        space = data.find(b" ", start, start + MAX_METHOD_SIZE + 1)
        method = data[start:space] if space > start else b""
        if not at_start or not method or _TOKEN.fullmatch(method) is None:
            self._refuse(400, "malformed HTTP request: invalid method")
            return
        self._parser = httptools.HttpRequestParser(self)
        self._method = method
        self._reading = _BETWEEN
        self._unparsed -= len(data)  # (counted again)
        self.data_received(b"GET" + data[space:])

    def _overlong(self) -> None:
        """Bytes keep coming with no head's end or body bytes among them."""
        if self._reading == _BODY:
            self._refuse(400, "the request's chunk framing or trailers are too large")
        elif not self._headers and self._url:
            self._refuse(414, "the request target is too long")
        else:
            self._refuse(431, "the request head is too large")

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
        """Refuse the request being read (the parser failed, a limit or timeout tripped).

        Requests read whole before it are answered first, in order, and the refusal follows
        them (``_refusal``), as a client that pipelined a good request and a bad one expects;
        nothing more is read meanwhile. A request half read is cut off from its handler: it
        must not be completed or forwarded.
        """
        logger.debug("refusing a request from %s: %s", self.client, message)
        parsing = self._parsing
        if parsing is not None and not parsing.body_complete and not parsing.finished:
            parsing.finished = True
            if parsing.on_end is not None:
                parsing.status = status
                parsing.ended(f"the request was refused ({status}): {message}")
            if parsing._consumer is not None:
                parsing._consumer.on_client_lost()
            queue = self._queue
            if queue and parsing in queue:
                queue.remove(parsing)
            if parsing is self._current:
                self._current = None
                if parsing.started:
                    self.abort()
                    return
        self._parsing = None
        self._refusal = (status, message)
        self.pause_reading()
        if self._current is None:
            self._send_refusal(status, message)

    def _send_refusal(self, status: int, message: str) -> None:
        transport = self.transport
        self._queue = None
        if transport is None:
            return
        body = json.dumps({"status": status, "message": message}).encode()
        transport.write(error_head(status, body) + body)
        self._linger()

    def _linger(self) -> None:
        """Close after an answer while the client may still be sending (nginx's lingering
        close): closing at once with its bytes unread would reset the connection, and a reset
        can destroy the answer before the client reads it (a 413 or 431 lost that way). So
        the answer goes, then the end of what this side sends, then what still comes is read
        and dropped until the client closes or ``LINGER_SECONDS`` pass (``tick``); past
        ``LINGER_BYTES``, reading stops (the client's sends block, its reads still work)."""
        transport = self.transport
        if transport is None:
            return
        if self._lingering or not transport.can_write_eof():
            transport.close()
            return
        self._lingering = True
        self._refusal = self._refusal or (0, "")  # (nothing more is parsed)
        transport.write_eof()
        self.resume_reading()


#: ``ServerProtocol._reading``: between messages, in a head, in a body (or its trailers).
_BETWEEN: Final = 0
_HEAD: Final = 1
_BODY: Final = 2
_GOT: Final = ("", " (it sent several)")
_LINE_ENDS: Final = (b"\r", b"\n")
#: llhttp's reason for a version other than 0.9, 1.0, 1.1 and 2.0: that is a 505 too.
_UNKNOWN_VERSION: Final = "Invalid HTTP version"


class _Refused(Exception):
    """Raised from a parser callback: refuse the request with ``status`` (see ``_refuse``)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _accepted(upgrade: bytes | None, accepted: frozenset[bytes]) -> bool:
    """Whether an ``Upgrade`` value offers a protocol the handler takes."""
    if upgrade is None or not accepted:
        return False
    return any(
        token.strip(b" \t").split(b"/", 1)[0].lower() in accepted for token in upgrade.split(b",")
    )


def _check_host(host: bytes) -> None:
    """Raise the 400 for a Host that is not ``uri-host [":" port]``; remember a good one."""
    if _HOST.fullmatch(host) is None:
        raise _Refused(400, "the Host header is not a valid host")
    if len(_VALID_HOSTS) < _MAX_VALID_HOSTS:
        _VALID_HOSTS.add(host)
