"""The fast path: relaying a request to an upstream with callbacks only.

:class:`EndpointRelay` is a :class:`~ferryman.server.protocol.RequestHandler` for one endpoint.
For each request it creates one :class:`Relay`, which writes the request head to an upstream
connection (from a per-origin idle queue), pipes the body both ways as the parsers deliver it, and
finishes the client's exchange when the upstream's message ends. No coroutine, task or dict is
created per request; the head rewriting is :mod:`ferryman.proxy.headers`, shared with the
general path, so both put the same bytes on the wire.

It is only used when nothing could see the difference (see ``use_fast``): the general path
(:class:`~ferryman.proxy.handler.HTTPProxyHandler` behind the ASGI kernel) runs events and
middleware, and the endpoint relay hands requests to it (``fallback``) whenever one is attached.
"""

from __future__ import annotations

import logging
import time
from asyncio import TimerHandle, get_running_loop
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Final

from ferryman.proxy.admission import Admission, Budget
from ferryman.proxy.errors import (
    broken_answer,
    connect_error,
    error_body,
    error_response,
    no_answer,
    pool_timeout,
    read_timeout,
    truncated_answer,
)
from ferryman.proxy.headers import (
    NO_RULES,
    DownstreamHead,
    HeaderRules,
    plain_request_head,
    upstream_pieces,
)
from ferryman.proxy.logs import report_upstream
from ferryman.proxy.redirects import UpstreamRedirects
from ferryman.proxy.relay_events import (
    ANSWERED,
    CHANGED,
    DRAIN_LIMIT,
    HELD,
    RelayFilterEvent,
    RelayFilters,
)
from ferryman.proxy.rewrite import Rewrite
from ferryman.proxy.targets import ESCAPE_BODY, may_escape, target_escapes
from ferryman.proxy.transactions import Transaction, TransactionListeners
from ferryman.proxy.upstream import UpstreamConnection, UpstreamPool
from ferryman.server.protocol import (
    RequestHandler,
    ServerExchange,
    origin_form,
    response_head,
    status_line,
)

if TYPE_CHECKING:
    from ferryman.proxy.relay_cache import CacheFill, RelayCache
    from ferryman.proxy.relay_resilience import EndpointResilience

__all__ = ["EndpointRelay", "Relay"]

_logger: Final = logging.getLogger("ferryman.proxy")

_CHUNK_END: Final = b"0\r\n\r\n"
_CRLF: Final = b"\r\n"
_HTTP11_LINE_END: Final = b" HTTP/1.1\r\n"
_CHUNKED_LINE: Final = b"Transfer-Encoding: chunked\r\n"
_CLOSE_LINE: Final = b"Connection: close\r\n"
_KEEP_ALIVE_LINE: Final = b"Connection: keep-alive\r\n"
#: Methods a request may be sent with twice for the effect of once (RFC 9110 section 9.2.2).
IDEMPOTENT_METHODS: Final = frozenset({b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"})


class EndpointRelay:
    """Relays one endpoint's requests to its upstreams, round robin, the next on refusal."""

    __slots__ = (
        "_next",
        "admission",
        "body_limit",
        "budgets",
        "cache",
        "connect_timeout",
        "fallback",
        "filters",
        "name",
        "pool_timeout",
        "pools",
        "preserve_host",
        "read_timeout",
        "request_buffer",
        "request_rules",
        "resilience",
        "response_rules",
        "rewrite",
        "transactions",
        "use_fast",
    )

    def __init__(
        self,
        name: str,
        pools: Sequence[UpstreamPool],
        *,
        rewrite: Rewrite | None = None,
        request_rules: HeaderRules = NO_RULES,
        response_rules: HeaderRules = NO_RULES,
        preserve_host: bool = False,
        connect_timeout: float | None = 5.0,
        read_timeout: float | None = 60.0,
        pool_timeout: float | None = 5.0,
        body_limit: int | None = 64 * 1024 * 1024,
        request_buffer: int = 65536,
        use_fast: Callable[[], bool] | None = None,
        fallback: RequestHandler | None = None,
        transactions: TransactionListeners | None = None,
        filters: RelayFilters | None = None,
        resilience: EndpointResilience | None = None,
    ) -> None:
        if not pools:
            raise ValueError("an endpoint relays to at least one upstream")
        self.name = name
        self.pools = tuple(pools)
        self.rewrite = rewrite
        self.request_rules = request_rules
        self.response_rules = response_rules
        for pool in self.pools:
            pool.response_rules = response_rules  # (its connections build heads by them)
            pool.pool_timeout = pool_timeout
            # The upstream's own URLs in answers, turned into the proxy's.
            if response_rules.redirects:
                scheme = pool.origin.split("://", 1)[0]
                pool.redirects = UpstreamRedirects(
                    scheme, pool.host_header, pool.port, pool.base_path, rewrite
                )
        self.preserve_host = preserve_host
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        #: Seconds a request may wait for a free upstream connection before its 503.
        self.pool_timeout = pool_timeout
        #: Request body bytes allowed (413 beyond; ``None``: no limit), and how many are read
        #: before an upstream connection is taken (see ``Relay.on_body``).
        self.body_limit = body_limit
        self.request_buffer = request_buffer
        #: Whether a request may take the fast path now; ``None``: always.
        self.use_fast = use_fast
        #: Who answers when it may not (the ASGI kernel, through the bridge).
        self.fallback = fallback
        #: The transaction events' listeners (``None``: nobody can listen).
        self.transactions = transactions
        #: The proxy filter events, run here when ``filters.active()`` (else the fallback runs
        #: them): see :mod:`ferryman.proxy.relay_events`.
        self.filters = filters
        #: Upstream choice by health and breakers, and retries (``relay_resilience``);
        #: ``None``: round robin, the next upstream on refusal.
        self.resilience = resilience
        #: Rate limits and outbound budgets (``ferryman.proxy.admission``); ``None``: none.
        self.admission: Admission | None = None
        self.budgets: tuple[Budget | None, ...] | None = None
        #: The endpoint's HTTP cache (``ferryman.proxy.relay_cache``; ``None``: no cache).
        self.cache: RelayCache | None = None
        self._next = 0

    def on_request(self, exchange: ServerExchange) -> None:
        transactions = self.transactions
        transaction = None
        if transactions is not None and transactions.active:
            transaction = transactions.start(self.name, exchange)
        if (exchange.target[:1] != b"/" or exchange.upgrade) and not self._acceptable(exchange):
            return
        limit = exchange.body_limit = self.body_limit
        length = exchange.content_length
        if length is not None and limit is not None and length > limit:
            exchange.send_error(
                413, error_body(413, f"the request body is larger than {limit} bytes")
            )
            return
        # A target climbing above the root never reaches an upstream (both
        # paths: the fallback's requests too); most targets leave after a memchr or two.
        target = exchange.target
        if may_escape(target) and target_escapes(target, self.rewrite):
            exchange.send_error(400, ESCAPE_BODY)
            return
        admission = self.admission
        if admission is not None and not admission.admit(self, exchange, transaction):
            return  # (refused, or ``admitted`` comes once decided)
        self.admitted(exchange, transaction)

    def admitted(self, exchange: ServerExchange, transaction: Transaction | None) -> None:
        """``on_request``'s rest, for a well-formed request its admission let go: the fast
        relay, the relay with events, or the general path."""
        use_fast = self.use_fast
        filters: RelayFilters | None = None
        if use_fast is not None and not use_fast():
            filters = self.filters
            if filters is not None and not exchange.upgrade and filters.active():
                self._relay_filtered(exchange, transaction, filters)
                return
            fallback = self.fallback
            if fallback is not None:
                # Upgrades too: the bridge serves WebSockets as ``websocket`` scopes.
                fallback.on_request(exchange)
                return
            exchange.send_error(
                501,
                error_body(
                    501,
                    "event listeners or middleware are attached to the endpoint and no ASGI "
                    "kernel is there to serve its requests",
                ),
            )
            return
        cache = self.cache
        if cache is not None:
            cache.on_request(self, exchange, transaction)  # (a hit, or back to relay())
            return
        self.relay(exchange, transaction, None)

    def relay(
        self, exchange: ServerExchange, transaction: Transaction | None, fill: CacheFill | None
    ) -> None:
        """Send ``exchange`` upstream (``fill``: what the cache does with the answer)."""
        index = self._next
        self._next = (index + 1) % len(self.pools)
        relay = Relay(self, exchange, index)
        relay.transaction = transaction
        relay.cache_fill = fill
        if self.resilience is not None and not self.resilience.pick(relay):
            return
        if exchange.body_complete:
            relay.start()
        else:
            # The body is read first, up to request_buffer bytes (Relay.on_body): a slow
            # client holds no upstream connection while it sends.
            relay.body = []
            relay.buffering = True
            exchange.set_consumer(relay)
            if self.request_buffer == 0 and relay.buffering:
                relay.buffering = False
                relay.start()

    def _relay_filtered(
        self, exchange: ServerExchange, transaction: Transaction | None, filters: RelayFilters
    ) -> None:
        """``on_request``'s relaying with the proxy filter events dispatched on the way (their
        own round robin, as the general path's handler has its own)."""
        index = filters.next_upstream
        filters.next_upstream = (index + 1) % len(self.pools)
        relay = Relay(self, exchange, index)
        relay.transaction = transaction
        if self.resilience is not None and not self.resilience.pick(relay):
            return
        if filters.filter_request(relay):
            relay.proceed()
        # (else answered already, or asynchronous work calls ``proceed`` when it is done)

    def _acceptable(self, exchange: ServerExchange) -> bool:
        """An upgrade or a target that is not a path: CONNECT and targets other than the
        absolute form (relayed as a path) are refused here (a reverse proxy opens no tunnels
        and serves no ``*``); False if refused."""
        if exchange.method == b"CONNECT":
            exchange.send_error(
                405, error_body(405, "CONNECT is for forward proxies; this is a reverse proxy")
            )
            return False
        target = exchange.target
        if target[:1] != b"/" and target.find(b"://") < 0:
            exchange.send_error(
                400,
                error_body(400, "the request target must be a path (or an absolute URL)"),
            )
            return False
        return True

    def request_head(self, exchange: ServerExchange, pool: UpstreamPool) -> bytes:
        """The request line and headers the upstream gets for ``exchange``."""
        target = exchange.target
        if target[:1] != b"/":
            target = origin_form(target)
        if self.rewrite is not None:
            target = self.rewrite.apply(target)
        if pool.base_path:
            target = pool.base_path + target
        if exchange.content_length is not None:
            framing = b"Content-Length: %d\r\n" % exchange.content_length
        elif exchange.chunked:
            framing = _CHUNKED_LINE
        else:
            framing = b""
        protocol = exchange.protocol
        client = protocol.client
        if client is not None and not exchange.upgrade and not self.preserve_host:
            head = plain_request_head(
                exchange.method,
                target,
                exchange.headers,
                pool.host_line,
                client[0],
                protocol.scheme,
                self.request_rules,
                framing,
            )
            if head is not None:
                return head
        upgrade = None
        if exchange.upgrade:
            upgrade = next(
                (value for name, value in exchange.headers if name.lower() == b"upgrade"), None
            )
        pieces = [exchange.method, b" ", target, _HTTP11_LINE_END]
        upstream_pieces(
            exchange.headers,
            host=None if self.preserve_host else pool.host_header,
            client_ip=None if client is None else client[0],
            scheme=protocol.scheme,
            rules=self.request_rules,
            upgrade=upgrade,
            pieces=pieces,
        )
        pieces += (framing, _CRLF)
        return b"".join(pieces)

    def close(self) -> None:
        for pool in self.pools:
            pool.close()
        if self.filters is not None:
            self.filters.close()
        if self.resilience is not None:
            self.resilience.close()

    def __repr__(self) -> str:
        return f"<EndpointRelay {self.name!r} -> {[pool.origin for pool in self.pools]}>"


class Relay:
    """One request on its way through: the client's exchange and the upstream connection."""

    __slots__ = (
        "body",
        "body_done",
        "body_size",
        "buffering",
        "cache_fill",
        "cancelled",
        "chunked_out",
        "client_paused",
        "connection",
        "discarding",
        "endpoint",
        "exchange",
        "filter_event",
        "finished",
        "head_only",
        "held",
        "held_end",
        "held_length",
        "held_watcher",
        "keep_client",
        "pending_head",
        "pool",
        "pool_index",
        "probe",
        "request_sent",
        "response_started",
        "retried",
        "retry_deadline",
        "retry_timer",
        "reused",
        "transaction",
        "tried",
        "tried_mask",
        "tunnel",
        "wait_deadline",
    )

    def __init__(self, endpoint: EndpointRelay, exchange: ServerExchange, pool_index: int) -> None:
        self.endpoint = endpoint
        self.exchange = exchange
        self.pool_index = pool_index
        #: The upstream's pool (``endpoint.pools[pool_index]``; another one after a refusal).
        self.pool = endpoint.pools[pool_index]
        self.tried = 1
        #: The upstreams tried (bits of their indexes), when the retry deadline runs out
        #: (set as the first try starts), and the timer of the wait before the next try or,
        #: while a later try waits for its answer, of the deadline (``relay_resilience``).
        self.tried_mask = 0
        self.retry_deadline = 0.0
        self.retry_timer: TimerHandle | None = None
        #: The upstream's breaker's probe ticket when the try is one of its half-open probes
        #: (0: admitted closed), which its outcome carries (``breaker.probe_ticket``).
        self.probe = 0
        self.connection: UpstreamConnection | None = None
        self.cancelled = False
        self.finished = False
        self.client_paused = False
        self.chunked_out = False
        self.keep_client = True
        self.request_sent = False
        self.response_started = False
        self.retried = False
        self.reused = False
        self.tunnel = False
        self.head_only = exchange.method == b"HEAD"
        #: The response head, held back to leave in one write with the first body bytes.
        self.pending_head: bytes | None = None
        #: The request body read before an upstream connection was taken (``None``: there is
        #: none, or it streams): kept when it is whole, so that the request can go again.
        self.body: list[bytes] | None = None
        self.body_size = 0
        #: The whole request body has been read / is still being read before connecting.
        self.body_done = False
        self.buffering = False
        #: When waiting for a free connection ends in a 503 (``UpstreamPool._wait``).
        self.wait_deadline = 0.0
        #: What the transaction events' observers see (``None`` when nobody listens).
        self.transaction: Transaction | None = None
        #: The proxy filter event when the relay dispatches them (``relay_events``).
        self.filter_event: RelayFilterEvent | None = None
        #: A listener's answer went to the client instead of the upstream's, whose body is
        #: being read to keep the connection, and thrown away.
        self.discarding = False
        #: The upstream's answer is held while asynchronous work decides it (``hold``): the
        #: body bytes read meanwhile, and how it ended (0: not yet, 1: kept alive, 2: closed,
        #: 3: broken off).
        self.held: list[bytes] | None = None
        self.held_end = 0
        self.held_length = -1  # (its Content-Length; -1: none)
        #: Told when the held answer grows or ends (a listener reading its body: ``HeldBody``).
        self.held_watcher: Callable[[], None] | None = None
        #: What the endpoint's cache does with the answer (``relay_cache``; ``None``: nothing).
        self.cache_fill: CacheFill | None = None

    @property
    def connect_timeout(self) -> float | None:
        return self.endpoint.connect_timeout

    def start(self) -> None:
        resilience = self.endpoint.resilience
        if resilience is not None and self.retry_deadline == 0.0:
            # (the first try: the retry deadline bounds every try from here, relay_resilience)
            self.retry_deadline = resilience.loop.time() + resilience.deadline
        budgets = self.endpoint.budgets
        if budgets is not None:
            budget = budgets[self.pool_index]
            if budget is not None and not budget.take(self):
                return  # (it acquires when the request's turn comes, or answered 429)
        self.pool.acquire(self, self.endpoint.connect_timeout)

    def proceed(self) -> None:
        """The events and middleware let the request go: the endpoint's cache answers it or
        lets it go on (``relay_events_cache``, as the general path's cache sits), then
        ``forward``."""
        if self.exchange.finished:
            return  # (the client left meanwhile)
        cache = self.endpoint.cache
        filters = self.endpoint.filters
        if cache is not None and filters is not None:
            filters.look_up(self, cache)  # (a hit answered, or forward() now or later)
            return
        self.forward()

    def forward(self) -> None:
        """Read the body (up to the request buffer) and take an upstream connection, as
        ``on_request`` does without events."""
        exchange = self.exchange
        if exchange.finished:
            return  # (the client left meanwhile)
        event = self.filter_event
        if event is not None and event.body_replaced:
            if not exchange.body_complete:
                self.keep_client = False  # (the client's body is not read: it goes unsent)
            self.start()
        elif exchange.body_complete:
            self.start()
        else:
            self.body = []
            self.buffering = True
            exchange.set_consumer(self)
            if self.endpoint.request_buffer == 0 and self.buffering:
                self.buffering = False
                self.start()

    # -- the upstream connection --------------------------------------------------------------

    def attach(self, connection: UpstreamConnection, reused: bool) -> None:
        """``connection`` is ours: send the head, then the body as it comes."""
        exchange = self.exchange
        if exchange.finished:  # the client left while we waited
            self.cancelled = True
            self.pool.release(connection)
            return
        self.connection = connection
        self.reused = reused
        connection.relay = self
        event = self.filter_event
        if event is None or event.upstream_target is None:
            head = self.endpoint.request_head(exchange, self.pool)
        else:
            filters = self.endpoint.filters
            assert filters is not None
            head = filters.request_head(self, self.pool)
            if self.cache_fill is not None and self.cache_fill.validating:
                head = self.cache_fill.conditional(head)  # (the cache's validators)
        transaction = self.transaction
        if transaction is not None:
            self._request_went(transaction, head, reused)
        body = self.body
        if body is None:
            connection.write(head)
            connection.arm(self.endpoint.read_timeout)
            exchange.set_consumer(self)
            return
        # The body read so far goes with the head; what is still to come streams (on_body).
        pieces = [head]
        if exchange.chunked and (event is None or not event.body_replaced):
            for chunk in body:
                pieces += (b"%x\r\n" % len(chunk), chunk, _CRLF)
            if self.body_done:
                pieces.append(_CHUNK_END)
        else:
            pieces += body
        connection.writelines(pieces)
        connection.arm(self.endpoint.read_timeout)
        if self.body_done:
            self.request_sent = True
            if transaction is not None:
                transaction.t_request_sent = time.monotonic()
        else:
            self.body = None  # not whole: it cannot go again, and is not kept
            exchange.resume_reading()

    def _request_went(self, transaction: Transaction, head: bytes, reused: bool) -> None:
        transaction.t_connected = time.monotonic()
        transaction.reused = reused
        transaction.upstream_origin = self.pool.origin
        transaction.raw_upstream_head = head
        if self.body is None and self.exchange.body_complete:
            transaction.t_request_sent = transaction.t_connected
        transaction.dispatch_request()

    def replace_body(self, content: bytes) -> None:
        """A listener's body goes upstream instead of the client's (whole, so it may go again)."""
        self.body = [content] if content else []
        self.body_size = len(content)
        self.body_done = True

    def connect_failed(self, error: BaseException) -> None:
        if self.cancelled or self.exchange.finished:
            return
        endpoint = self.endpoint
        resilience = endpoint.resilience
        if resilience is not None:
            if resilience.connect_failed(self, error):
                return
        elif not isinstance(error, TimeoutError) and self.tried < len(endpoint.pools):
            # Round robin: the next upstream gets its chance, each one once.
            if self.transaction is not None:
                self.transaction.attempt_failed(self.pool.origin, "connect error")
            self.tried += 1
            self.pool_index = (self.pool_index + 1) % len(endpoint.pools)
            self.pool = endpoint.pools[self.pool_index]
            self.start()
            return
        origin = self.pool.origin
        failure = connect_error(error, origin, endpoint.name if len(endpoint.pools) > 1 else None)
        report_upstream(failure.kind, origin, failure.message)
        self.fail(failure.status_code, failure.message)

    def fail(self, status: int, message: str) -> None:
        self.finished = True
        if self.transaction is not None:
            self.transaction.error = message
        if self.cache_fill is not None and self.cache_fill.on_error(self):
            return  # (a stored answer that stale-if-error allows went instead)
        if self.filter_event is not None and not self.exchange.started:
            self._filtered_error(status, message)
            return
        self.exchange.send_error(status, error_body(status, message))

    def _filtered_error(self, status: int, message: str) -> None:
        """An error answer that ``proxy.filter.response`` sees first, as on the general path."""
        filters = self.endpoint.filters
        assert filters is not None
        filters.finish_with(self, error_response(status, message), error_body(status, message))

    def pool_timed_out(self) -> None:
        """No upstream connection came free within the pool timeout (``UpstreamPool``)."""
        if self.cancelled or self.exchange.finished:
            return
        failure = pool_timeout(self.pool.origin)
        report_upstream(failure.kind, self.pool.origin, failure.message)
        self.fail(failure.status_code, failure.message)

    # -- request body (ServerExchange consumer) -----------------------------------------------

    def on_body(self, data: bytes) -> None:
        if self.transaction is not None:
            self.transaction.add_request_body(data)
        connection = self.connection
        if connection is None:
            # Still reading the body before connecting: up to request_buffer bytes, then the
            # client waits (reading pauses) for the connection this takes.
            body = self.body
            if body is None:
                return
            body.append(data)
            self.body_size += len(data)
            if self.body_size >= self.endpoint.request_buffer:
                self.exchange.pause_reading()
                if self.buffering:
                    self.buffering = False
                    self.start()
            return
        connection.touch()
        if self.exchange.chunked:
            connection.writelines([b"%x\r\n" % len(data), data, _CRLF])
        else:
            connection.write(data)

    def on_body_end(self) -> None:
        connection = self.connection
        if connection is None:
            self.body_done = True
            if self.buffering:
                self.buffering = False
                self.start()
            return
        if self.exchange.chunked and not self.exchange.upgrade:
            connection.write(_CHUNK_END)
        self.request_sent = True
        if self.transaction is not None:
            self.transaction.t_request_sent = time.monotonic()

    def on_client_lost(self) -> None:
        self.cancelled = True
        if self.retry_timer is not None:
            self.retry_timer.cancel()
            self.retry_timer = None
        if self.filter_event is not None:
            filters = self.endpoint.filters
            if filters is not None:
                filters.client_lost(self)
        connection = self.connection
        if connection is None:
            self.pool.remove_waiter(self)
        elif not self.finished:
            self.finished = True
            self.pool.discard(connection)  # the upstream's answer is unwanted: do not reuse

    def pause_producing(self) -> None:
        self.client_paused = True
        if self.connection is not None:
            self.connection.pause_reading()

    def resume_producing(self) -> None:
        self.client_paused = False
        if self.connection is not None:
            self.connection.resume_reading()

    def on_tunnel_data(self, data: bytes) -> None:
        if self.connection is not None:
            self.connection.write(data)

    # -- the upstream's answer (UpstreamConnection callbacks) ---------------------------------

    def switching_protocols(self, reason: bytes, head: DownstreamHead) -> None:
        """The upstream answered 101: relay its head, then bytes both ways (a WebSocket)."""
        exchange = self.exchange
        if exchange.finished or self.finished:
            return
        connection = self.connection
        assert connection is not None
        if not exchange.upgrade:
            self.upstream_failed("switched protocols unasked")
            return
        self.response_started = True
        headers = head.pairs()
        headers.append((b"Connection", b"upgrade"))
        if head.upgrade is not None:
            headers.append((b"Upgrade", head.upgrade))
        exchange.status = 101
        if self.transaction is not None:
            self.transaction.dispatch_response(101, reason, b"".join(map(b": ".join, headers)))
        exchange.write(response_head(101, reason or None, headers))
        self.tunnel = True
        connection.disarm()
        exchange.start_tunnel()

    def response_lines(self, status: int, reason: bytes, lines: bytes, keep_alive: bool) -> bool:
        """A final answer's head, its header lines (CRLF-terminated) already as relayed.

        Long ordinary heads come here straight from their bytes (``plain_response_lines``), the
        others as the parser's callbacks built them (``DownstreamHead``). What is left is
        framing the body for the client. True when the body goes to the client as the upstream
        framed it, its Content-Length (if any) counting it: the connection may then pass it on
        unparsed.
        """
        exchange = self.exchange
        if exchange.finished or self.finished:
            return False
        connection = self.connection
        assert connection is not None
        resilience = self.endpoint.resilience
        if resilience is not None and resilience.answered(self, status, lines):
            return False  # (dropped: the request goes again)
        self.response_started = True
        # The cache sees the upstream's answer (and stores it as it came), then the events
        # and ways out (they see it with its X-Cache, as on the general path).
        fill = self.cache_fill
        if fill is not None:
            relayed = fill.on_response(self, status, reason, lines)
            if relayed is None:  # (the cache answered: a 304 merged, a stale answer)
                if self.cache_fill is not fill:
                    return self._ask_again()  # (or it asks again: a fill of its own says so)
                return self._discard_answer(status, keep_alive)
            lines = relayed
            fill = self.cache_fill  # (the endpoint's probe hands a storable answer on)
        event = self.filter_event
        if event is not None:
            filters = self.endpoint.filters
            assert filters is not None
            outcome = filters.filter_response(self, status, reason, lines)
            if outcome == ANSWERED:
                return self._discard_answer(status, keep_alive)
            if outcome == CHANGED:
                filtered = event.filtered_head
                assert filtered is not None
                status, reason, lines = filtered
            elif outcome == HELD:
                self._hold(keep_alive)
                return False
        self._frame(status, reason, lines, connection.content_length)
        transaction = self.transaction
        if transaction is not None and transaction.response_body is not None and not self.head_only:
            return False  # (recorded: the body comes through response_body)
        if fill is not None and fill.parts is not None and not self.head_only:
            return False  # (being stored: the body comes through response_body)
        if self.head_only:
            # The parser cannot know a HEAD answer has no body; the next answer needs a new one.
            connection.reset_parser()
            self.response_end(keep_alive)
            return False
        return not self.chunked_out and status != 204 and status != 304

    def _frame(self, status: int, reason: bytes, lines: bytes, length: int | None) -> None:
        """The client's head for the answer (held until the first body bytes): the status
        line, the relayed header lines and the framing the client's connection needs for a
        body of ``length`` bytes (``None``: not known)."""
        exchange = self.exchange
        framing = b""
        if self.head_only or status == 204 or status == 304:
            pass  # no body; Content-Length (if any) describes the one a GET would get
        elif length is None:
            if exchange.http_version == "1.1":
                framing += _CHUNKED_LINE
                self.chunked_out = True
            else:
                self.keep_client = False  # an HTTP/1.0 body ends where the connection does
        if not exchange.keep_alive or not self.keep_client:
            framing += _CLOSE_LINE
        elif exchange.http_version == "1.0":
            framing += _KEEP_ALIVE_LINE
        self.pending_head = status_line(status, reason or None) + lines + framing + _CRLF
        exchange.status = status
        if self.transaction is not None:
            self.transaction.dispatch_response(status, reason, lines)

    # -- an answer held for asynchronous work (relay_middleware) --------------------------------

    def _hold(self, keep_alive: bool) -> None:
        """Keep the answer from the client while asynchronous ways out or listeners run: the
        upstream is paused (what its last read still holds is kept, at most one read) and the
        relay counts as finished for the parser's callbacks, which feed ``held``."""
        connection = self.connection
        assert connection is not None
        self.finished = True
        self.held = []
        self.held_end = 0
        length = connection.content_length
        self.held_length = -1 if length is None else length
        connection.pause_reading()
        if self.head_only:
            connection.reset_parser()
            self.held_end = 1 if keep_alive else 2

    def resume_held(self, status: int, reason: bytes, lines: bytes) -> None:
        """The held answer goes to the client, with this head (the upstream's or changed)."""
        held = self.held
        end = self.held_end
        self.held = None
        self.held_watcher = None
        exchange = self.exchange
        if exchange.finished or held is None:
            self.abandon()
            return
        if end == 3:
            exchange.abort()  # (the upstream broke off: no truncated body as a whole one)
            return
        connection = self.connection
        assert connection is not None
        self.finished = False
        length = self.held_length
        self._frame(status, reason, lines, None if length < 0 else length)
        for chunk in held:
            self.response_body(chunk)
        if end == 0:
            connection.resume_reading()
        elif end == 4:
            # (the connection closed after the whole body, and has left the pool already)
            self.finished = True
            self.connection = None
            self.flush_head()
            if self.chunked_out:
                exchange.write(_CHUNK_END)
            exchange.finish(keep_alive=self.keep_client)
        else:
            connection.resume_reading()  # (before it goes back to the pool)
            self.response_end(end == 1)

    def drop_held(self, keep: bool = True) -> None:
        """Another answer went to the client: the held one's body is read and dropped if short
        (the connection is kept), else (or unless ``keep``) its connection closed."""
        self.held = None
        self.held_watcher = None
        end = self.held_end
        if self.transaction is not None:
            self.transaction.dispatch_response(self.exchange.status, b"", b"")
        connection = self.connection
        if connection is None:
            return
        if not keep and end != 4:
            self.abandon()
            return
        if end == 1 or end == 2:
            connection.resume_reading()
            self._release(connection, end == 1)
            return
        if end == 4:
            self.connection = None
            return
        if 0 <= self.held_length <= DRAIN_LIMIT:
            self.discarding = True  # (response_body drops it; response_end releases)
            connection.resume_reading()
            return
        self.abandon()

    def abandon_try(self) -> None:
        """This try failed and the request goes again (``relay_resilience``): its connection
        is closed, and the request is as before its first try."""
        self._close_connection()
        self.finished = False
        self.request_sent = False
        self.response_started = False
        self.pending_head = None
        self.chunked_out = False
        self.reused = False

    def abandon(self) -> None:
        """Nothing more goes to the client from the upstream: its connection is closed."""
        self.held = None
        self.held_watcher = None
        self.finished = True
        self._close_connection()

    def _close_connection(self) -> None:
        """Detach from the upstream connection and close it (if it is still ours: its parser
        may still be running, and must not reach this request again)."""
        connection = self.connection
        if connection is not None:
            self.connection = None
            if connection.relay is self:
                connection.relay = None
                connection.abort()
                self.pool.discard(connection)

    def response_body(self, data: bytes) -> None:
        if self.finished:
            if self.held is not None:
                self.held.append(data)
                if self.held_watcher is not None:
                    self.held_watcher()
            return
        if self.transaction is not None:
            self.transaction.add_response_body(data)
        if self.cache_fill is not None:
            self.cache_fill.add(data)
        head = self.pending_head
        if head is not None:
            self.pending_head = None
            if self.chunked_out:
                self.exchange.writelines([head, b"%x\r\n" % len(data), data, _CRLF])
            elif len(data) < 16384:
                self.exchange.write(head + data)
            else:
                self.exchange.writelines([head, data])
        elif self.chunked_out:
            self.exchange.writelines([b"%x\r\n" % len(data), data, _CRLF])
        else:
            self.exchange.write(data)

    def _discard_answer(self, status: int, keep_alive: bool) -> bool:
        """A listener's answer went instead of the upstream's (``relay_events``): the
        upstream's body is read and dropped when short enough to keep the connection, else
        the connection is closed. False: the body, if any, goes through the parser."""
        self.finished = True
        connection = self.connection
        assert connection is not None
        transaction = self.transaction
        if transaction is not None and transaction.raw_response_head is None:
            # (an answer that gave the transaction its own head, the cache's, keeps it: the
            # transaction may even have finished already, its observers reading that head)
            transaction.dispatch_response(self.exchange.status, b"", b"")
        if self.head_only:
            connection.reset_parser()
            self._release(connection, keep_alive)
            return False
        length = connection.content_length
        if status == 204 or status == 304 or (length is not None and length <= DRAIN_LIMIT):
            self.discarding = True  # (response_body drops it; response_end releases)
            return False
        connection.relay = None
        self.connection = None
        connection.abort()
        self.pool.discard(connection)
        return False

    def _ask_again(self) -> bool:
        """The cache's validation drew a 304 about another stored answer, for nobody
        (``CacheFill._validated``): it is dropped (it has no body; its connection goes back
        when it ends) and the request goes again, from the loop once the connection's parser
        is done with this answer. False: no body goes through the parser."""
        self.finished = True
        self.discarding = True  # (response_end releases the connection)
        get_running_loop().call_soon(self._try_again)
        return False

    def _try_again(self) -> None:
        if self.discarding:  # (the 304 did not end: its connection cannot be reused)
            self.discarding = False
            self._close_connection()
        self.connection = None
        self.finished = False
        self.request_sent = False
        self.response_started = False
        self.pending_head = None
        self.chunked_out = False
        self.reused = False
        if not self.cancelled and not self.exchange.finished:
            self.start()

    def _release(self, connection: UpstreamConnection, keep_alive: bool) -> None:
        """The upstream's answer ended: its connection to the pool, or closed."""
        if self.client_paused:
            connection.resume_reading()  # the pool's next user must hear its answer
        if keep_alive and self.request_sent:
            if connection.feeding:
                # The answer ended inside a read the parser is still going through: the rest
                # of that read must be known to hold nothing before another request gets the
                # connection (the connection releases itself then).
                connection.release_after_feed = True
            else:
                self.pool.release(connection)
        else:
            self.pool.discard(connection)

    def response_end(self, keep_alive: bool) -> None:
        if self.discarding:
            self.discarding = False
            connection = self.connection
            if connection is not None:
                self._release(connection, keep_alive)
            return
        if self.finished or self.tunnel:
            if self.held is not None:
                self.held_end = 1 if keep_alive else 2
                if self.held_watcher is not None:
                    self.held_watcher()
            return  # a 101's message "ends" with its head: the tunnel goes on
        self.finished = True
        exchange = self.exchange
        connection = self.connection
        assert connection is not None
        if self.cache_fill is not None:
            self.cache_fill.on_end()
        self._release(connection, keep_alive)
        head = self.pending_head
        if head is not None:
            self.pending_head = None
            exchange.write(head + _CHUNK_END if self.chunked_out else head)
        elif self.chunked_out:
            exchange.write(_CHUNK_END)
        exchange.finish(keep_alive=self.keep_client)

    def flush_head(self) -> None:
        """Send a held-back head now: the head's packet came without body bytes, and a slow
        stream's client must see the head before the first chunk is ready."""
        head = self.pending_head
        if head is not None:
            self.pending_head = None
            self.exchange.write(head)

    def forward_raw(self, data: memoryview) -> bool:
        """Send body (or tunnel) bytes as they came; True if the client's transport queued them
        (it keeps the view, so the caller must not reuse the buffer behind it)."""
        if self.finished and not self.tunnel:
            return False
        protocol = self.exchange.protocol
        transport = protocol.transport
        if transport is None:
            return False
        if self.tunnel:
            protocol.idle_ticks = 0  # (a tunnel is idle when neither side sends)
        elif self.transaction is not None:
            self.transaction.add_response_body(data)
        head = self.pending_head
        if head is not None:
            self.pending_head = None
            transport.write(head)
        transport.write(data)
        return transport.get_write_buffer_size() > 0

    def upstream_failed(self, reason: str) -> None:
        """The upstream broke the protocol: drop its connection, answer 502 if still possible."""
        failure = broken_answer(self.pool.origin, reason)
        report_upstream(failure.kind, self.pool.origin, failure.message)
        resilience = self.endpoint.resilience
        if resilience is not None and resilience.failed(
            self, "broken", reason, retry=not self.response_started
        ):
            return
        self._give_up(failure.status_code, failure.message)

    def callback_failed(self, error: BaseException) -> None:
        """The relay's own code raised while it handled the upstream's answer (a bug of
        ferryman's or of a plug-in, not the upstream's): logged with its traceback, the
        client gets a 500 (or its answer cut off), the upstream's breaker counts nothing."""
        _logger.error(
            "the relay failed on the answer of %s to %s %s",
            self.pool.origin,
            self.exchange.method.decode("latin-1"),
            self.exchange.target.decode("latin-1"),
            exc_info=error,
        )
        self._give_up(500, "the proxy failed while relaying the upstream's answer")

    def upstream_timed_out(self) -> None:
        origin = self.pool.origin
        if not self.response_started and not self.exchange.body_complete:
            # The upstream waits for the rest of the body, which the client stopped sending:
            # the client's stall (any client can cause one), not the upstream's failure, so
            # its breaker counts nothing and nothing goes again.
            self._give_up(
                408,
                f"the client sent no more of its request body for {self.endpoint.read_timeout:g} "
                f"s while the upstream {origin} waited for it",
            )
            return
        if self.response_started:
            failure = truncated_answer(origin, timed_out=True)
        else:
            failure = read_timeout(origin)
        report_upstream(failure.kind, origin, failure.message)
        resilience = self.endpoint.resilience
        if resilience is not None and resilience.failed(
            self, "timeout", "timeout", retry=not self.response_started
        ):
            return
        self._give_up(failure.status_code, failure.message)

    def _give_up(self, status: int, message: str) -> None:
        """Detach from the connection first: its parser may still be running (this is called
        from its callbacks) and must not reach this request again."""
        self._close_connection()
        if self.finished and not self.tunnel:
            if self.held is not None:
                self.held_end = 3
                if self.transaction is not None:
                    self.transaction.error = message
                if self.held_watcher is not None:
                    self.held_watcher()
            return
        self.finished = True
        self.pending_head = None
        if self.transaction is not None:
            self.transaction.error = message
        if self.exchange.started or self.tunnel:
            self.exchange.abort()  # the client must not take a truncated body for a whole one
        elif self.cache_fill is not None and self.cache_fill.on_error(self):
            return  # (a stored answer that stale-if-error allows went instead)
        elif self.filter_event is not None:
            self._filtered_error(status, message)
        else:
            self.exchange.send_error(status, error_body(status, message))

    def upstream_lost(self, connection: UpstreamConnection) -> None:
        """The upstream connection closed while this request owned it."""
        if self.discarding:  # (while its unwanted body was being drained)
            self.discarding = False
            self.connection = None
            self.pool.discard(connection)
            return
        if self.finished and not self.tunnel:
            if self.held is not None:
                # (read before discarding: a body that runs to the connection's end, or one
                # that had ended, is whole; any other broke off)
                end = self.held_end
                whole = end != 0 or (connection.content_length is None and not connection.chunked)
                self.pool.discard(connection)
                if whole and end != 3:
                    self.held_end = 4  # (the connection stays known for its framing facts)
                else:
                    self.held_end = 3
                    self.connection = None
                if self.held_watcher is not None:
                    self.held_watcher()
            return
        exchange = self.exchange
        pool = self.pool
        # (read before discarding the connection, which forgets it for its next user)
        answered = connection.received
        pool.discard(connection)
        self.connection = None
        if self.tunnel:
            self.finished = True
            exchange.protocol.close()
            return
        if (
            self.reused
            and not answered
            and not self.retried
            and (not exchange.has_body or self.body is not None)
            and not exchange.upgrade
            and exchange.method in IDEMPOTENT_METHODS
        ):
            # A kept-alive connection the upstream closed just as we sent: not one byte of an
            # answer came, and the method says that doing it twice is doing it once (RFC 9110
            # 9.2.2), so it goes again on a new connection, with its body if it was read whole
            # first (attach kept it). Any other request may have been acted on: the client
            # hears of the failure rather than the upstream of it twice.
            self.retried = True
            pool.acquire(self, self.endpoint.connect_timeout)
            return
        if self.response_started:
            if connection.content_length is None and not connection.chunked:
                # A body delimited by the connection's end (HTTP/1.0 style): it is complete.
                self.finished = True
                self.flush_head()
                if self.chunked_out:
                    exchange.write(_CHUNK_END)
                exchange.finish(keep_alive=self.keep_client)
                return
            self.finished = True
            failure = truncated_answer(pool.origin)
            report_upstream(failure.kind, pool.origin, failure.message)
            if self.endpoint.resilience is not None:
                self.endpoint.resilience.failed(self, "broken", "broke off", retry=False)
            if self.transaction is not None:
                self.transaction.error = failure.message
            exchange.abort()  # the client must not take a truncated body for a whole one
            return
        failure = no_answer(pool.origin)
        report_upstream(failure.kind, pool.origin, failure.message)
        resilience = self.endpoint.resilience
        if resilience is not None and resilience.failed(
            self, "broken", "closed before answering", retry=not answered
        ):
            return
        self.fail(failure.status_code, failure.message)
