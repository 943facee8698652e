"""Transaction events: what the access log, storage, the dashboard and the metrics listen to.

Every request an endpoint receives is one :class:`Transaction`, dispatched (the same instance
each time) to the listeners of four observer-only events, in this order:

* ``EVENT_TRANSACTION_STARTED`` (``proxy.transaction.started``): the client's request head has
  been read. ``method``, ``target``, ``request_headers``, ``client`` are known. A listener that
  wants the bodies calls :meth:`Transaction.record_bodies` now.
* ``EVENT_TRANSACTION_REQUEST`` (``proxy.transaction.request``): the request head went to an
  upstream: ``upstream`` (the URL it was sent to) is known. Not dispatched for a request that
  never reached one (refused, answered by a listener or a middleware, no upstream reachable).
* ``EVENT_TRANSACTION_RESPONSE`` (``proxy.transaction.response``): the upstream's answer head
  arrived: ``status``, ``response_headers``.
* ``EVENT_TRANSACTION_FINISHED`` (``proxy.transaction.finished``): the answer was sent whole, or
  the exchange ended otherwise (``error`` says how, in words). ``status`` is what the client got
  (0 when nothing was sent), sizes and timings are final. Always dispatched, exactly once, for
  every transaction that was started.

Observers only: a listener cannot change or answer the request (the filter events of
:mod:`ferryman.proxy.events` do that), ``stop_propagation`` is ignored, and an exception a
listener raises is logged (rate-limited) and never reaches the traffic. Listeners run inline
from the relay's callbacks, so they must be synchronous and cheap: a listener that does I/O
queues the transaction (see ``ferryman.apps.storage``). An ``async def`` listener is run as a
task, and sees the transaction as it is when the task runs.

Everything is lazy: a transaction keeps the raw bytes the relay already has, and becomes
``Headers``, ``str`` or a dict only when a listener reads the attribute; when nothing listens,
no transaction is created at all (:class:`TransactionListeners` answers that in one attribute
read per request).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from typing import Any, Final

from ferryman.events import EventDispatcher
from ferryman.http.headers import Headers
from ferryman.proxy.headers import TAG_PREFIX
from ferryman.proxy.logs import RateLimitedLog
from ferryman.server.exchange import ServerExchange

__all__ = [
    "EVENT_TRANSACTION_FINISHED",
    "EVENT_TRANSACTION_REQUEST",
    "EVENT_TRANSACTION_RESPONSE",
    "EVENT_TRANSACTION_STARTED",
    "RECORD_FIELDS",
    "TAG_PREFIX",
    "TRANSACTION_EVENTS",
    "Transaction",
    "TransactionListeners",
    "notify",
    "parse_header_block",
]

EVENT_TRANSACTION_STARTED: Final = "proxy.transaction.started"
EVENT_TRANSACTION_REQUEST: Final = "proxy.transaction.request"
EVENT_TRANSACTION_RESPONSE: Final = "proxy.transaction.response"
EVENT_TRANSACTION_FINISHED: Final = "proxy.transaction.finished"
TRANSACTION_EVENTS: Final = (
    EVENT_TRANSACTION_STARTED,
    EVENT_TRANSACTION_REQUEST,
    EVENT_TRANSACTION_RESPONSE,
    EVENT_TRANSACTION_FINISHED,
)

#: The fields of :meth:`Transaction.record`'s tuple, in order.
RECORD_FIELDS: Final = (
    "id",
    "endpoint",
    "raw_method",
    "raw_target",
    "raw_request_headers",
    "http_version",
    "client",
    "upstream_url",
    "upstream_origin",
    "upstream_request_line",
    "reused",
    "status",
    "reason",
    "raw_response_head",
    "error",
    "cache",
    "started_at",
    "t_start",
    "t_connected",
    "t_request_sent",
    "t_response",
    "t_end",
    "request_body_size",
    "response_body_size",
    "request_body",
    "response_body",
    "request_body_truncated",
    "response_body_truncated",
    "failed_attempts",
)

logger = logging.getLogger("ferryman.proxy.transactions")
_listener_errors = RateLimitedLog(logger, level=logging.ERROR)

Listener = Callable[["Transaction"], Any]


class Transaction:
    """One request through an endpoint, as the observers see it (see the module docs).

    Times: ``started_at`` is wall-clock (``time.time()``); the stamps (``t_*``) are the event
    loop's monotonic clock, ``None`` for steps that did not happen. :attr:`timings` turns them
    into HAR's phases.
    """

    __slots__ = (
        "_id",
        "_listeners",
        "_request_headers",
        "_response_headers",
        "_tags",
        "cache",
        "client",
        "endpoint",
        "error",
        "failed_attempts",
        "http_version",
        "raw_method",
        "raw_request_headers",
        "raw_response_head",
        "raw_target",
        "raw_upstream_head",
        "reason",
        "request_body",
        "request_body_limit",
        "request_body_size",
        "request_body_truncated",
        "response_body",
        "response_body_limit",
        "response_body_size",
        "response_body_truncated",
        "reused",
        "started_at",
        "status",
        "t_connected",
        "t_end",
        "t_request_sent",
        "t_response",
        "t_start",
        "upstream_origin",
        "upstream_url",
    )

    def __init__(
        self,
        endpoint: str,
        method: bytes,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        http_version: str = "1.1",
        client: tuple[str, int] | None = None,
        started: float | None = None,
        listeners: TransactionListeners | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.raw_method = method
        self.raw_target = target
        #: The client's header pairs as received (names as sent).
        self.raw_request_headers = headers
        self.http_version = http_version
        self.client = client
        self.started_at = time.time()
        self.t_start = time.monotonic() if started is None else started
        self.t_connected: float | None = None
        self.t_request_sent: float | None = None
        self.t_response: float | None = None
        self.t_end: float | None = None
        #: The upstream's origin (``scheme://host:port``) and the request head it was sent,
        #: once it was (see :attr:`upstream`).
        self.upstream_origin: str | None = None
        self.raw_upstream_head: bytes | None = None
        #: The upstream URL when the general path, which has it whole, set it.
        self.upstream_url: str | None = None
        #: Whether the upstream connection was a kept-alive one (no connect time then).
        self.reused = False
        #: The status the client got (the upstream's, or the proxy's own error); 0 before.
        self.status = 0
        self.reason = b""
        #: The upstream answer's header block (lines ending with CRLF, no status line).
        self.raw_response_head: bytes | None = None
        self.request_body_size = 0
        self.response_body_size = 0
        #: Why the exchange did not end normally, in words; ``None`` when it did.
        self.error: str | None = None
        #: The cache's verdict (``HIT``, ``MISS``...) when a cache answered or looked.
        self.cache: str | None = None
        #: The tries that failed before the last one, ``(upstream origin, what failed)`` each,
        #: when the request went again (retries, or the next upstream after a refusal).
        self.failed_attempts: list[tuple[str, str]] | None = None
        #: Body bytes to keep (``record_bodies``); 0: none are kept.
        self.request_body_limit = 0
        self.response_body_limit = 0
        self.request_body: bytearray | None = None
        self.response_body: bytearray | None = None
        self.request_body_truncated = False
        self.response_body_truncated = False
        self._id: str | None = None
        self._request_headers: Headers | None = None
        self._response_headers: Headers | None = None
        self._tags: dict[str, str] | None = None
        self._listeners = listeners

    # -- what listeners read ------------------------------------------------------------------

    @property
    def id(self) -> str:
        """Unique across processes and hosts, and ordered by time (32 hex digits)."""
        if self._id is None:
            self._id = f"{time.time_ns():016x}{os.urandom(8).hex()}"
        return self._id

    @property
    def method(self) -> str:
        return self.raw_method.decode("latin-1")

    @property
    def target(self) -> str:
        """The request target as the client sent it."""
        return self.raw_target.decode("latin-1")

    @property
    def upstream(self) -> str | None:
        """The URL the request went to (the upstream's, after any rewrite); ``None`` before."""
        if self.upstream_url is not None:
            return self.upstream_url
        origin, head = self.upstream_origin, self.raw_upstream_head
        if origin is None:
            return None
        if head is None:
            return origin
        line = head[: head.find(b"\r\n")].split(b" ")
        return origin + (line[1].decode("latin-1") if len(line) == 3 else "")

    @property
    def request_headers(self) -> Headers:
        """The client's request headers, as received (tags included)."""
        if self._request_headers is None:
            self._request_headers = Headers(self.raw_request_headers)
        return self._request_headers

    @property
    def response_headers(self) -> Headers | None:
        """The upstream answer's headers as relayed; ``None`` when no answer came."""
        if self._response_headers is None and self.raw_response_head is not None:
            self._response_headers = Headers(parse_header_block(self.raw_response_head))
        return self._response_headers

    @property
    def tags(self) -> dict[str, str]:
        """``X-Ferryman-Tag-Name: value`` request headers, as ``{"name": "value"}``."""
        if self._tags is None:
            size = len(TAG_PREFIX)
            self._tags = {
                name[size:].decode("latin-1").lower(): value.decode("latin-1")
                for name, value in self.raw_request_headers
                if name[:size].lower() == TAG_PREFIX and len(name) > size
            }
        return self._tags

    @property
    def attempts(self) -> int:
        """How many times the request was sent (or a connection for it tried): 1 unless it
        went again."""
        failed = self.failed_attempts
        return 1 if failed is None else len(failed) + 1

    @property
    def duration(self) -> float | None:
        """Seconds from the request head to the end of the answer; ``None`` before the end."""
        return None if self.t_end is None else self.t_end - self.t_start

    @property
    def timings(self) -> dict[str, float | None]:
        """Seconds per phase, as HAR names them, ``None`` where unknown or not applicable:
        ``blocked`` (waiting for an upstream connection, or reading the request body first),
        ``connect`` (a new connection, TLS included), ``send``, ``wait`` (to the answer's head),
        ``receive`` (its body), ``total``, and ``ttfb`` (to the first byte the client got)."""
        start, end = self.t_start, self.t_end
        connected, sent, answered = self.t_connected, self.t_request_sent, self.t_response
        return {
            "blocked": None if connected is None else connected - start,
            "connect": None,
            "send": None if sent is None or connected is None else max(0.0, sent - connected),
            "wait": None if answered is None or sent is None else max(0.0, answered - sent),
            "receive": None if end is None or answered is None else max(0.0, end - answered),
            "total": None if end is None else end - start,
            "ttfb": None if answered is None else answered - start,
        }

    # -- what listeners ask for ---------------------------------------------------------------

    def record_bodies(self, limit: int, *, request: bool = True, response: bool = True) -> None:
        """Keep up to ``limit`` bytes of each body (``request_body``/``response_body``; the
        ``*_truncated`` flags say when there was more). Call it from a ``started`` listener;
        several listeners asking get the largest limit. Bodies stream as before: recording
        copies what passes, it never holds the relay back."""
        if request and limit > self.request_body_limit:
            self.request_body_limit = limit
            if self.request_body is None:
                self.request_body = bytearray()
        if response and limit > self.response_body_limit:
            self.response_body_limit = limit
            if self.response_body is None:
                self.response_body = bytearray()

    def record(self) -> tuple[Any, ...]:
        """The raw facts of the transaction as one flat tuple of plain values (``bytes``,
        ``str``, numbers, ``None``, the request's header pairs), in :data:`RECORD_FIELDS`
        order, for a listener that ships transactions to another process (storage's writer
        marshals a batch of them in one call). Nothing is decoded or parsed here: the id is
        ``None`` unless a listener read it, the stamps are the loop's monotonic clock
        (``started_at`` is wall-clock), and the upstream is its origin plus the request line
        sent to it. Called after ``finished``, the tuple shares the bodies' buffers."""
        head = self.raw_upstream_head
        return (
            self._id,
            self.endpoint,
            self.raw_method,
            self.raw_target,
            self.raw_request_headers,
            self.http_version,
            self.client,
            self.upstream_url,
            self.upstream_origin,
            None if head is None else head[: head.find(b"\r\n")],
            self.reused,
            self.status,
            self.reason,
            self.raw_response_head,
            self.error,
            self.cache,
            self.started_at,
            self.t_start,
            self.t_connected,
            self.t_request_sent,
            self.t_response,
            self.t_end,
            self.request_body_size,
            self.response_body_size,
            self.request_body,
            self.response_body,
            self.request_body_truncated,
            self.response_body_truncated,
            self.failed_attempts,
        )

    # -- what the relays call -----------------------------------------------------------------

    def dispatch_request(self) -> None:
        """The request head went upstream (``upstream_origin``, ``raw_upstream_head`` set)."""
        listeners = self._listeners
        if listeners is not None and listeners.request:
            notify(listeners.request, self, EVENT_TRANSACTION_REQUEST)

    def dispatch_response(self, status: int, reason: bytes, lines: bytes) -> None:
        """The upstream's answer head came (its header block as relayed)."""
        self.status = status
        self.reason = reason
        self.raw_response_head = lines
        self.t_response = time.monotonic()
        listeners = self._listeners
        if listeners is not None and listeners.response:
            notify(listeners.response, self, EVENT_TRANSACTION_RESPONSE)

    def attempt_failed(self, upstream: str, what: str) -> None:
        """A try at ``upstream`` (its origin) failed (``what``, in words) and the request goes
        again: kept for the access log and storage."""
        failed = self.failed_attempts
        if failed is None:
            self.failed_attempts = [(upstream, what)]
        else:
            failed.append((upstream, what))

    def exchange_ended(self, exchange: ServerExchange, error: str | None) -> None:
        """The client's exchange is over (``ServerExchange.on_end``): finished."""
        self.t_end = time.monotonic()
        self.status = exchange.status
        if self.request_body_size < exchange.body_received:
            self.request_body_size = exchange.body_received
        if self.response_body_size < exchange.body_sent:
            self.response_body_size = exchange.body_sent
        if error is not None and self.error is None:
            self.error = error
        listeners = self._listeners
        if listeners is not None and listeners.finished:
            notify(listeners.finished, self, EVENT_TRANSACTION_FINISHED)

    def add_request_body(self, data: bytes) -> None:
        self.request_body_size += len(data)
        kept = self.request_body
        if kept is not None:
            room = self.request_body_limit - len(kept)
            if len(data) <= room:
                kept += data
            else:
                kept += data[: max(room, 0)]
                self.request_body_truncated = True

    def add_response_body(self, data: bytes | memoryview) -> None:
        self.response_body_size += len(data)
        kept = self.response_body
        if kept is not None:
            room = self.response_body_limit - len(kept)
            if len(data) <= room:
                kept += data
            else:
                kept += data[: max(room, 0)]
                self.response_body_truncated = True

    def __repr__(self) -> str:
        return (
            f"<Transaction {self.endpoint!r} {self.method} {self.target!r} -> {self.status}"
            f"{'' if self.error is None else ' ' + repr(self.error)}>"
        )


def parse_header_block(block: bytes) -> list[tuple[bytes, bytes]]:
    """The header pairs of a header block (``Name: value`` lines ending with CRLF)."""
    pairs = []
    for line in block.split(b"\r\n"):
        name, colon, value = line.partition(b":")
        if colon:
            pairs.append((name.strip(), value.strip()))
    return pairs


class TransactionListeners:
    """The listeners of the four transaction events, read again only when the dispatcher's
    ``version`` changes: a relay asks :attr:`active` (one attribute read and an integer
    comparison) before it builds a :class:`Transaction`."""

    __slots__ = ("_dispatcher", "_version", "finished", "request", "response", "started")

    def __init__(self, dispatcher: EventDispatcher | None) -> None:
        self._dispatcher = dispatcher
        self._version = -1
        self.started: tuple[Listener, ...] = ()
        self.request: tuple[Listener, ...] = ()
        self.response: tuple[Listener, ...] = ()
        self.finished: tuple[Listener, ...] = ()

    @property
    def active(self) -> bool:
        """Whether any transaction event has a listener (refreshes the snapshot if needed)."""
        dispatcher = self._dispatcher
        if dispatcher is None:
            return False
        if dispatcher.version != self._version:
            self._version = dispatcher.version
            self.started = tuple(dispatcher.get_listeners(EVENT_TRANSACTION_STARTED))
            self.request = tuple(dispatcher.get_listeners(EVENT_TRANSACTION_REQUEST))
            self.response = tuple(dispatcher.get_listeners(EVENT_TRANSACTION_RESPONSE))
            self.finished = tuple(dispatcher.get_listeners(EVENT_TRANSACTION_FINISHED))
        return bool(self.started or self.request or self.response or self.finished)

    def start(self, endpoint: str, exchange: ServerExchange) -> Transaction:
        """A transaction for ``exchange``, dispatched as started; it ends with the exchange."""
        transaction = Transaction(
            endpoint,
            exchange.method,
            exchange.target,
            exchange.headers,
            exchange.http_version,
            exchange.client,
            listeners=self,
        )
        exchange.on_end = transaction.exchange_ended
        exchange.transaction = transaction
        if self.started:
            notify(self.started, transaction, EVENT_TRANSACTION_STARTED)
        return transaction


#: Asynchronous observers' tasks still running, kept referenced (the loop holds tasks weakly)
#: and bounded: a slow one must not pile up a task per request without end.
MAX_OBSERVER_TASKS = 1024  # (not Final: a test lowers it)
_observer_tasks: set[asyncio.Task[Any]] = set()


def _observe_later(coroutine: Any, event: str, listener: Listener) -> None:
    if len(_observer_tasks) >= MAX_OBSERVER_TASKS:
        coroutine.close()  # (never awaited: no warning)
        name = getattr(listener, "__qualname__", None) or repr(listener)
        _listener_errors.report(
            "observer behind",
            f"{event} {name}",
            f"{event} listener {name} skipped: {MAX_OBSERVER_TASKS} of its kind still running",
        )
        return
    task = asyncio.get_running_loop().create_task(coroutine)
    _observer_tasks.add(task)
    task.add_done_callback(_observer_tasks.discard)


def notify(listeners: tuple[Listener, ...], transaction: Transaction, event: str) -> None:
    """Call each observer with ``transaction``; a failure is logged, never raised."""
    for listener in listeners:
        try:
            result = listener(transaction)
            if result is not None and asyncio.iscoroutine(result):
                _observe_later(result, event, listener)
        except Exception as exc:  # an observer's bug must not break the traffic
            name = getattr(listener, "__qualname__", None) or repr(listener)
            _listener_errors.report(
                "observer failed", f"{event} {name}", f"{event} listener {name} failed: {exc!r}"
            )
