"""Connections to one upstream origin for the fast relay: a per-origin idle queue, no polling.

An :class:`UpstreamConnection` is an asyncio Protocol with httptools' response parser. It serves
one relayed request at a time and hands every parser callback straight to that request's
:class:`~ferryman.proxy.relay.Relay`, so bytes go from the upstream socket to the client socket
without a coroutine in between.

Liveness: a connection the upstream closed while idle is marked closed by ``connection_lost``
and skipped when taken from the queue. One timer per busy connection, re-armed only when it fires,
enforces the read timeout: activity moves a deadline, which costs a clock read, not a heap
operation per request. A request that finds every connection busy waits in a queue, at most the
pool timeout (one timer per pool, for the oldest waiter), then gets a 503.

What an upstream sends is bounded like what a client sends: the head's size and header count,
and the bytes of chunk framing and trailers between body bytes (``max_head``, ``max_headers``);
bytes are counted as they arrive, before the parser joins the pieces of a value that never ends.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from typing import TYPE_CHECKING, Final, cast

import httptools

from ferryman.http.url import URL
from ferryman.proxy.errors import FOREIGN_CODING
from ferryman.proxy.headers import NO_RULES, DownstreamHead, HeaderRules, plain_response_lines
from ferryman.proxy.redirects import UpstreamRedirects, client_host

if TYPE_CHECKING:
    from ferryman.proxy.relay import Relay

__all__ = ["UpstreamConnection", "UpstreamPool"]

#: Connections kept open per upstream origin, busy and idle together; more requests wait.
DEFAULT_MAX_CONNECTIONS: Final = 512
#: Idle connections beyond this many are closed when released.
MAX_IDLE: Final = 256
#: Heads from this size up are relayed from their bytes (``plain_response_lines``), shorter
#: ones through the parser's per-header callbacks, which cost less below about a dozen headers.
#: ``benchmarks/relay_cpu.py [N] [api]``, the threshold set to 0 or out of reach, compiled
#: (setup.py): nginx's 8-header, 230-byte head took 4.3 µs per relayed request the per-header
#: way and 5.0 from its bytes; a 28-header, 1 KiB API head 7.5 against 6.8. (From source: 7.0
#: against 7.7, and 11.4 against 9.5.)
PLAIN_HEAD_MIN_SIZE: Final = 512
#: Each connection's read buffer: big enough for a syscall to move a lot, small enough that
#: hundreds of connections cost a few MiB.
READ_BUFFER_SIZE: Final = 64 * 1024
#: The read buffer while a long Content-Length body streams through: a quarter as many reads
#: and writes per MiB, which measured 20% less CPU per 1 MiB body than 64 KiB. Taken from, and
#: given back to, the pool's spares, so only connections busy with a long body hold one.
LARGE_READ_BUFFER_SIZE: Final = 256 * 1024
#: Large buffers a pool keeps for its next long body.
MAX_SPARE_BUFFERS: Final = 16
#: The most response head taken from an upstream (nginx's proxy_buffer_size is 4-8 KiB): an
#: upstream whose head goes on past it gets its request a 502, not the proxy's memory. Also
#: the most chunk framing and trailers taken between two pieces of body.
MAX_HEAD_SIZE: Final = 64 * 1024
#: The most header fields relayed from one answer.
MAX_HEADERS: Final = 100


class UpstreamPool:
    """The connections to one upstream origin, and what to send it (its Host, its base path)."""

    __slots__ = (
        "_connecting",
        "_idle",
        "_waiter_timer",
        "_waiters",
        "base_path",
        "busy",
        "host",
        "host_header",
        "host_line",
        "loop",
        "max_connections",
        "max_head",
        "max_headers",
        "origin",
        "pool_timeout",
        "port",
        "redirects",
        "response_rules",
        "server_hostname",
        "spare_buffers",
        "ssl_context",
    )

    def __init__(
        self,
        url: URL,
        loop: asyncio.AbstractEventLoop,
        ssl_context: ssl.SSLContext | None = None,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
    ) -> None:
        self.loop = loop
        self.host = url.host
        self.port = url.port or (443 if url.scheme == "https" else 80)
        self.host_header = url.host_header
        #: The Host line requests to this upstream carry (``plain_request_head``).
        self.host_line = b"Host: " + url.host_header + b"\r\n"
        self.origin = f"{url.scheme}://{url.host_header.decode('ascii')}"
        self.base_path = url.raw_path.split(b"?", 1)[0].rstrip(b"/")
        self.ssl_context = ssl_context if url.scheme == "https" else None
        self.server_hostname = url.host if self.ssl_context is not None else None
        self.max_connections = max_connections
        self.busy = 0
        self._connecting = 0
        self._idle: deque[UpstreamConnection] = deque()
        self._waiters: deque[Relay] = deque()
        self._waiter_timer: asyncio.TimerHandle | None = None
        self.spare_buffers: list[memoryview] = []
        #: The response header rules of the endpoint whose pool this is, which its connections
        #: build heads by, and its limits: ``EndpointRelay`` sets them before a connection can
        #: open.
        self.response_rules: HeaderRules = NO_RULES
        self.pool_timeout: float | None = 5.0
        self.max_head = MAX_HEAD_SIZE
        self.max_headers = MAX_HEADERS
        #: Which URLs in answers are this upstream's, and the proxy's for
        #: them: ``EndpointRelay`` sets them when its rules rewrite redirects.
        self.redirects: UpstreamRedirects | None = None

    def acquire(self, relay: Relay, connect_timeout: float | None) -> None:
        """Give ``relay`` a connection now (idle one) or later (``relay.attach`` / ``failed``)."""
        idle = self._idle
        while idle:
            connection = idle.pop()  # the most recently used: the likeliest to be alive
            if not connection.closed:
                self.busy += 1
                relay.attach(connection, reused=True)
                return
        if self.busy + self._connecting >= self.max_connections:
            self._wait(relay)
            return
        self._connect(relay, connect_timeout)

    def _wait(self, relay: Relay) -> None:
        """Queue ``relay`` for the next free connection, for at most the pool timeout. Every
        waiter gets the same timeout, so the queue is in deadline order: one timer, for the
        first, serves them all."""
        self._waiters.append(relay)
        timeout = self.pool_timeout
        if timeout is not None:
            relay.wait_deadline = self.loop.time() + timeout
            if self._waiter_timer is None:
                self._waiter_timer = self.loop.call_at(relay.wait_deadline, self._expire)

    def _expire(self) -> None:
        """The oldest waiter's time is up: answer every waiter whose deadline passed."""
        self._waiter_timer = None
        waiters = self._waiters
        now = self.loop.time()
        while waiters and (waiters[0].cancelled or waiters[0].wait_deadline <= now):
            relay = waiters.popleft()
            if not relay.cancelled:
                relay.pool_timed_out()
        if waiters:
            self._waiter_timer = self.loop.call_at(waiters[0].wait_deadline, self._expire)

    def _connect(self, relay: Relay, connect_timeout: float | None) -> None:
        self._connecting += 1
        task = self.loop.create_task(self._open(connect_timeout))
        task.add_done_callback(lambda done: self._opened(done, relay))

    async def _open(self, connect_timeout: float | None) -> UpstreamConnection:
        connect = self.loop.create_connection(
            lambda: UpstreamConnection(self),
            self.host,
            self.port,
            ssl=self.ssl_context,
            server_hostname=self.server_hostname,
        )
        _, protocol = await asyncio.wait_for(connect, connect_timeout)
        return protocol

    def _opened(self, done: asyncio.Task[UpstreamConnection], relay: Relay) -> None:
        self._connecting -= 1
        if done.cancelled():
            relay.connect_failed(TimeoutError())
            return
        error = done.exception()
        if error is not None:
            relay.connect_failed(error)
            self._wake_waiter()
            return
        connection = done.result()
        if relay.cancelled:
            self._park(connection)
            return
        self.busy += 1
        relay.attach(connection, reused=False)

    def release(self, connection: UpstreamConnection) -> None:
        """A relayed exchange completed cleanly and the upstream keeps the connection alive.

        Not while the connection's parser is inside a read (``connection.feeding``): the rest
        of that read must be known to be empty first. The relay then sets
        ``release_after_feed`` and the connection comes back here once the read is parsed.
        """
        self.busy -= 1
        connection.relay = None
        connection.timeout = None  # disarmed (inlined: this runs for every request)
        connection.received = False
        waiters = self._waiters
        while waiters:
            relay = waiters.popleft()
            if not relay.cancelled:
                self.busy += 1
                relay.attach(connection, reused=True)
                return
        if len(self._idle) < MAX_IDLE and not connection.closed:
            self._idle.append(connection)
        else:
            self._park(connection)

    def _park(self, connection: UpstreamConnection) -> None:
        if connection.closed:
            return
        if len(self._idle) >= MAX_IDLE:
            connection.close()
        else:
            self._idle.append(connection)

    def discard(self, connection: UpstreamConnection) -> None:
        """A busy connection that will not be reused (closed, broken, or its client left)."""
        self.busy -= 1
        connection.relay = None
        connection.disarm()
        connection.close()
        self._wake_waiter()

    def _wake_waiter(self) -> None:
        waiters = self._waiters
        while waiters:
            relay = waiters.popleft()
            if not relay.cancelled:
                self._connect(relay, relay.connect_timeout)
                return

    def remove_waiter(self, relay: Relay) -> None:
        if relay in self._waiters:
            self._waiters.remove(relay)

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()
        if self._waiter_timer is not None:
            self._waiter_timer.cancel()
            self._waiter_timer = None

    def usage(self) -> tuple[int, int, int, int]:
        """``(idle, in use, connecting, waiting)``: kept-alive connections free for the next
        request, connections relaying one, connections being opened, and requests queued for
        a free connection (the metrics read it at scrape time; nothing per request)."""
        idle = 0
        for connection in self._idle:
            if not connection.closed:
                idle += 1
        waiting = 0
        for relay in self._waiters:
            if not relay.cancelled:
                waiting += 1
        return idle, self.busy, self._connecting, waiting

    def __repr__(self) -> str:
        return f"<UpstreamPool {self.origin} busy={self.busy} idle={len(self._idle)}>"


class UpstreamConnection(asyncio.BufferedProtocol):
    """One keep-alive connection to the upstream; forwards parser callbacks to its relay.

    Reads land in one buffer per connection, reused from read to read (no allocation per read),
    and a body with a Content-Length bypasses the parser once its head is parsed: those bytes go
    from this buffer to the client's socket as they are, without the parser's copy of each
    piece. The buffer is replaced only when the client's transport had to keep a view of it
    queued (its socket was full).
    """

    __slots__ = (
        "_body_left",
        "_buffer",
        "_bypass",
        "_full_parser",
        "_head",
        "_head_start",
        "_informational",
        "_keep_alive",
        "_large",
        "_lines",
        "_plain_callbacks",
        "_plain_parser",
        "_reason",
        "_small_buffer",
        "_timer",
        "_unparsed",
        "chunked",
        "closed",
        "content_length",
        "deadline",
        "feeding",
        "loop",
        "on_header",
        "parser",
        "pool",
        "received",
        "relay",
        "release_after_feed",
        "timeout",
        "transport",
        "tunnel",
    )

    def __init__(self, pool: UpstreamPool) -> None:
        self.pool = pool
        self.loop = pool.loop
        self.transport: asyncio.Transport | None = None
        #: The answer's head as the client gets it, built as the parser reads it: the parser's
        #: ``on_header`` callback is the builder's (httptools takes it from this attribute).
        self._head = DownstreamHead(pool.response_rules, self._locate)
        self.on_header = self._head.add
        #: Two parsers, one picked as each answer's head begins: the full one calls back for
        #: every header, the plain one, for long heads, only at the head's end
        #: (``_choose_parser``).
        self._full_parser = self.parser = httptools.HttpResponseParser(self)
        self._plain_callbacks = _PlainHeadCallbacks(self)
        self._plain_parser = httptools.HttpResponseParser(self._plain_callbacks)
        #: The next bytes read begin an answer's head.
        self._head_start = True
        #: The relayed header lines of the answer the plain parser is on.
        self._lines = b""
        self.relay: Relay | None = None
        self.closed = False
        #: Bytes came from the upstream for the current exchange (a retry is no longer safe).
        self.received = False
        self.tunnel = False
        self.content_length: int | None = None
        self.chunked = False
        self.deadline = 0.0
        self.timeout: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._reason = b""
        #: Bytes read since the parser last got anywhere (a head's end, body bytes).
        self._unparsed = 0
        #: The parser is going through a read; a release asked meanwhile waits for its end.
        self.feeding = False
        self.release_after_feed = False
        self._informational = False
        self._buffer = memoryview(bytearray(READ_BUFFER_SIZE))
        #: Reading into a large buffer (a long body), the usual one put aside meanwhile.
        self._large = False
        self._small_buffer = self._buffer
        #: Body bytes still to come; >= 0 while a Content-Length body is being received.
        self._body_left = -1
        #: The parser is done with this message's head; the rest of its body skips it.
        self._bypass = False
        self._keep_alive = True

    # -- asyncio callbacks --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self.transport = cast(asyncio.Transport, transport)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._buffer

    def buffer_updated(self, nbytes: int) -> None:
        data = self._buffer[:nbytes]
        relay = self.relay
        if self.tunnel:
            if relay is not None:
                self._forward(relay, data)
            return
        if relay is None:
            # An idle connection has nothing to say; whatever it says makes it unusable.
            self.close()
            return
        self.received = True
        if self.timeout is not None:
            self.deadline = self.loop.time() + self.timeout
        if self._bypass:
            left = self._body_left
            if nbytes < left:
                self._body_left = left - nbytes
                self._forward(relay, data)
                return
            self._forward(relay, data[:left])
            self._bypass = False
            if self._large:
                self._small_buffer_again()
            self._next_message()
            self._renew_parser()
            if nbytes == left:
                relay.response_end(self._keep_alive)
            else:
                # More than its Content-Length said: whatever follows is an answer to no
                # request, and the connection is of no further use.
                relay.response_end(False)
                self.close()
            return
        if self._head_start:
            self._head_start = False
            if nbytes < PLAIN_HEAD_MIN_SIZE:
                self.parser = self._full_parser  # (a read this short holds no long head)
            elif not self._choose_parser(relay, nbytes):
                return
        unparsed = self._unparsed + nbytes
        if unparsed > self.pool.max_head and self._head_too_large(relay, nbytes):
            return
        self._unparsed = unparsed
        self.feeding = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            self.feeding = False
            if self._after_answer():
                return
            self.tunnel = True
            rest = data[upgrade.args[0] :]
            if rest and self.relay is not None:
                self._forward(self.relay, rest)
            return
        except httptools.HttpParserCallbackError as exc:
            # Not the upstream's fault: the relay's own handling of its answer (the cache,
            # retries, listeners run inline) raised, and must neither be blamed on the
            # upstream (its breaker) nor pass unseen.
            self.feeding = False
            if self._after_answer():
                return
            if self.relay is not None:
                self.relay.callback_failed(exc.__context__ or exc)
            return
        except httptools.HttpParserError as exc:
            self.feeding = False
            if self._after_answer():
                return
            if self.relay is not None:
                self.relay.upstream_failed(f"sent a malformed response ({exc})")
            return
        self.feeding = False
        if self.release_after_feed:
            self.release_after_feed = False
            if self.closed:  # it went on after the answer (see on_headers_complete)
                self.pool.discard(self)
            else:
                self.pool.release(self)
            return
        if self.relay is relay:
            if relay.pending_head is not None:
                relay.flush_head()
            if self._body_left > 0:
                self._bypass = True
                if self._body_left > READ_BUFFER_SIZE:
                    self._large_buffer()
            elif self._unparsed > self.pool.max_head:
                if not relay.response_started:
                    relay.upstream_failed(
                        f"sent a response head larger than {self.pool.max_head} bytes"
                    )
                else:
                    # Past the head: chunk sizes, extensions or trailers, no body among them.
                    relay.upstream_failed(
                        f"sent more than {self.pool.max_head} bytes of chunk framing or trailers"
                    )

    def _head_too_large(self, relay: Relay, nbytes: int) -> bool:
        """This read would take the head past ``max_head`` bytes, unless the head ends within
        it early enough: fail the request then (True), or let the parser go on."""
        if relay.response_started:
            return False  # (the body's framing: checked once the parser has been through it)
        limit = self.pool.max_head
        buffer = cast(bytearray, self._buffer.obj)
        end = buffer.find(b"\r\n\r\n", 0, nbytes)
        if end >= 0 and self._unparsed + end + 4 <= limit:
            return False
        if buffer[:1] == b"\n" or buffer[:2] == b"\r\n":
            return False  # (maybe the end of a head split between reads: the parser will tell)
        relay.upstream_failed(f"sent a response head larger than {limit} bytes")
        return True

    def _choose_parser(self, relay: Relay, nbytes: int) -> bool:
        """The plain parser for a long ordinary head that arrived whole, else the full one;
        False when the head has too many headers (the request has failed)."""
        buffer = self._buffer
        # (each read buffer is a view of a whole bytearray: same offsets)
        whole = cast(bytearray, buffer.obj)
        end = whole.find(b"\r\n\r\n", 0, nbytes)
        plain = None
        if end >= PLAIN_HEAD_MIN_SIZE:
            if whole.count(b"\r\n", 0, end) > self.pool.max_headers:
                relay.upstream_failed(f"sent more than {self.pool.max_headers} headers")
                return False
            plain = plain_response_lines(bytes(buffer[: end + 2]), relay.endpoint.response_rules)
        if plain is None:
            self.parser = self._full_parser
        else:
            self.parser = self._plain_parser
            self._reason, self._lines, self.content_length, self.chunked = plain
        return True

    def _renew_parser(self) -> None:
        """A fresh parser in place of the one in use, which went past a body it did not see
        (or a HEAD answer's, which it cannot know is absent)."""
        if self.parser is self._full_parser:
            self.parser = self._full_parser = httptools.HttpResponseParser(self)
        else:
            self.parser = self._plain_parser = httptools.HttpResponseParser(self._plain_callbacks)

    def _after_answer(self) -> bool:
        """The parser failed on bytes that came after a whole answer: drop the connection
        (nobody is waiting for them). False when they were the answer being waited for."""
        if not self.release_after_feed:
            return False
        self.release_after_feed = False
        self.pool.discard(self)
        return True

    def _forward(self, relay: Relay, data: memoryview) -> None:
        """Hand a view of the read buffer to the client; keep it there if it had to queue it."""
        if relay.forward_raw(data):
            # The client's transport holds a view of this buffer: read into another one.
            self._buffer = memoryview(bytearray(len(self._buffer)))

    def _large_buffer(self) -> None:
        spares = self.pool.spare_buffers
        self._small_buffer = self._buffer  # ours: a buffer lent to a transport was replaced
        self._buffer = spares.pop() if spares else memoryview(bytearray(LARGE_READ_BUFFER_SIZE))
        self._large = True

    def _small_buffer_again(self) -> None:
        spares = self.pool.spare_buffers
        if len(spares) < MAX_SPARE_BUFFERS:
            spares.append(self._buffer)
        self._buffer = self._small_buffer
        self._large = False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.cancel_timer()
        relay = self.relay
        if relay is not None:
            relay.upstream_lost(self)

    def pause_writing(self) -> None:
        if self.relay is not None:
            self.relay.exchange.pause_reading()

    def resume_writing(self) -> None:
        if self.relay is not None:
            self.relay.exchange.resume_reading()

    # -- httptools callbacks ------------------------------------------------------------------

    def on_status(self, status: bytes) -> None:
        self._reason += status

    def on_headers_complete(self) -> None:
        if self.release_after_feed:
            # A second answer in the read that ended the first: nobody asked for it.
            self.close()
            return
        status = self.parser.get_status_code()
        # 1xx answers (103 Early Hints, a stray 100) are not the answer: wait for the next head.
        informational = self._informational = status < 200 and status != 101
        if not informational:
            # (interim heads and the final one share the limit: what follows an interim head
            # in the read that ended it would otherwise go uncounted)
            self._unparsed = 0
        relay = self.relay
        if relay is not None and not informational:
            head = self._head
            if head.header_count() > self.pool.max_headers:
                relay.upstream_failed(f"sent more than {self.pool.max_headers} headers")
                return
            if head.foreign_coding:
                relay.upstream_failed(FOREIGN_CODING)
                return
            self.content_length = head.content_length
            self.chunked = head.chunked
            self._keep_alive = keep_alive = self.parser.should_keep_alive()
            if status == 101:
                relay.switching_protocols(self._reason, head)
            elif (
                relay.response_lines(status, self._reason, head.lines(), keep_alive)
                and self.content_length
                and self.relay is relay
            ):
                # Past this read, the body is counted, not parsed (``_bypass``).
                self._body_left = self.content_length

    def on_plain_headers_complete(self) -> None:
        """``on_headers_complete`` of a head ``_choose_parser`` read already (never a 1xx)."""
        if self.release_after_feed:
            self.close()  # a second answer in the read that ended the first
            return
        self._unparsed = 0
        relay = self.relay
        if relay is not None:
            parser = self.parser
            self._keep_alive = keep_alive = parser.should_keep_alive()
            if (
                relay.response_lines(
                    parser.get_status_code(), self._reason, self._lines, keep_alive
                )
                and self.content_length
                and self.relay is relay
            ):
                self._body_left = self.content_length  # (as in on_headers_complete)

    def on_body(self, body: bytes) -> None:
        self._unparsed = 0
        if self._body_left > 0:
            self._body_left -= len(body)
        relay = self.relay
        if relay is not None:
            relay.response_body(body)

    def on_message_complete(self) -> None:
        if self._informational:
            unparsed = self._unparsed  # (counted on into the final head: on_headers_complete)
            self._next_message()
            self._unparsed = unparsed
            self._informational = False
            self._head_start = False  # the final head goes on in this (full) parser
            return
        self._next_message()
        relay = self.relay
        if relay is not None:
            relay.response_end(self.parser.should_keep_alive())

    def _next_message(self) -> None:
        """Forget the message that ended (instead of an ``on_message_begin`` callback: the
        parser's callbacks are the relay's biggest per-request cost)."""
        self._head_start = True
        self._body_left = -1
        self._unparsed = 0
        self._head.reset()
        self._reason = b""
        self.content_length = None
        self.chunked = False

    def _locate(self, url: bytes) -> bytes | None:
        """An absolute URL in the answer (``Location``...) as the client of
        the request being answered reaches it through the proxy; ``None``: not the upstream's.
        The head builder calls it for those headers only."""
        relay = self.relay
        redirects = self.pool.redirects
        if relay is None or redirects is None:
            return None
        exchange = relay.exchange
        return redirects.proxy_url(url, exchange.protocol.scheme, client_host(exchange.headers))

    # -- what the relay calls -----------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)

    def writelines(self, chunks: list[bytes]) -> None:
        if self.transport is not None:
            self.transport.writelines(chunks)

    def arm(self, timeout: float | None) -> None:
        """Start the read timeout for a new exchange: no byte for ``timeout`` s -> timed out."""
        self.timeout = timeout
        if timeout is None:
            return
        loop = self.pool.loop
        self.deadline = loop.time() + timeout
        if self._timer is None:
            self._timer = loop.call_at(self.deadline, self._check_deadline)

    def touch(self) -> None:
        if self.timeout is not None:
            self.deadline = self.pool.loop.time() + self.timeout

    def disarm(self) -> None:
        """The exchange is over. The timer stays scheduled: when it fires on an idle connection
        it does nothing, which is cheaper than cancelling and scheduling one per request."""
        self.timeout = None
        self.received = False

    def cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _check_deadline(self) -> None:
        self._timer = None
        relay = self.relay
        if relay is None or self.timeout is None:
            return
        loop = self.pool.loop
        if loop.time() >= self.deadline and not relay.client_paused:
            relay.upstream_timed_out()
            return
        if relay.client_paused:
            self.deadline = loop.time() + self.timeout
        self._timer = loop.call_at(self.deadline, self._check_deadline)

    def reset_parser(self) -> None:
        """A HEAD answer's head is its whole message, which the parser cannot know: start over."""
        self._next_message()
        self._renew_parser()

    def pause_reading(self) -> None:
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None:
            self.transport.resume_reading()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


class _PlainHeadCallbacks:
    """What the plain parser calls: the connection's callbacks but for the status and header
    ones, whose work ``plain_response_lines`` did on the head's bytes. httptools looks the
    callbacks up once, so these are the connection's bound methods, with no call in between."""

    __slots__ = ("on_body", "on_headers_complete", "on_message_complete")

    def __init__(self, connection: UpstreamConnection) -> None:
        self.on_headers_complete = connection.on_plain_headers_complete
        self.on_body = connection.on_body
        self.on_message_complete = connection.on_message_complete
