"""What the fast relay does when an upstream fails: pick another, count it, try again.

An endpoint built from settings gets an :class:`EndpointResilience` (``EndpointRelay.
resilience``; ``None`` keeps the relay's plain round robin). The relay asks it for each
request's upstream (:meth:`~EndpointResilience.pick`: a 503 when none is up), and tells it how
each try ended, from the callbacks it has anyway: an answer's head (:meth:`answered`), a
connection that could not be opened (:meth:`connect_failed`), a timeout or a broken answer
(:meth:`failed`). Those feed the upstream's circuit breaker (passive health: real traffic) and
decide whether the request goes again.

A request goes again only while the client has had nothing of an answer, within the retry
settings' ``attempts`` and ``deadline``, on another upstream when one is up:

* a connection that could not be opened: whatever the method, as nothing was sent; at once, to
  an upstream not tried yet (none left: the client gets the error);
* an answer whose status is in ``retry.statuses`` (its ``Retry-After`` respected), and, when
  ``retry.on`` lists them, a timeout or an upstream that closed or broke the protocol before
  one byte of its answer came (by default a request such an upstream got is executed once):
  only an idempotent method (or any, with ``retry.unsafe_methods``) whose body, if any, was
  read whole before it went (``request_buffer``), so that the same bytes go again; after the
  backoff (exponential, full jitter).

The ``deadline`` bounds every try of a request, from the first one's start (``Relay.start``
reads the clock once): no try starts after it, and a later try that still waits (to connect,
for a free connection, for its answer's head) when it comes is cut off with a 504
(``_deadline_passed``, a timer armed as the try starts and cancelled by the answer's head);
an answer that began streams on past it. The first try is bounded by the endpoint's
timeouts alone.

The waits are timers of the event loop (``call_later``), not coroutines; a client that leaves
meanwhile cancels its timer. Nothing here runs for a request that succeeds at once but the
breaker's count of a success (and the deadline's clock read).
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

from ferryman.events import EventDispatcher
from ferryman.proxy.balancer import Balancer, Upstream
from ferryman.proxy.breaker import CLOSED, CircuitBreaker
from ferryman.proxy.errors import UNAVAILABLE, deadline_passed, error_body, no_upstream_available
from ferryman.proxy.logs import report_upstream, upstream_log
from ferryman.proxy.settings_resilience import BreakerSettings, RetrySettings
from ferryman.proxy.upstream import UpstreamPool

if TYPE_CHECKING:
    from ferryman.proxy.health import HealthProbes
    from ferryman.proxy.relay import Relay
    from ferryman.proxy.settings import EndpointSettings

__all__ = ["EndpointResilience", "build_resilience"]

#: Methods a request may be sent with twice for the effect of once (RFC 9110 section 9.2.2).
IDEMPOTENT_METHODS: Final = frozenset({b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"})
#: The longest ``Retry-After`` taken into account, whatever the deadline (a day-long one is not
#: a retry).
MAX_RETRY_AFTER: Final = 3600.0


class EndpointResilience:
    """One endpoint's balancer, breakers, health probes and retry policy (see the module)."""

    __slots__ = (
        "balancer",
        "breaker_counts",
        "breakers",
        "deadline",
        "failing_statuses",
        "loop",
        "name",
        "plain",
        "probes",
        "retry",
        "retry_on",
        "retry_statuses",
    )

    def __init__(
        self,
        name: str,
        balancer: Balancer,
        retry: RetrySettings,
        *,
        breaker_counts: Sequence[str] = ("connect", "timeout", "broken"),
        failing_statuses: frozenset[int] = frozenset(range(500, 600)),
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.name = name
        self.balancer = balancer
        #: Each upstream's breaker, by index (``None``: it has none).
        self.breakers = tuple(upstream.breaker for upstream in balancer.upstreams)
        #: The relay's own round robin picks as the balancer would (equal weights, no
        #: fallback, not least outstanding): its choice stands while that upstream is up.
        self.plain = (
            not balancer.fallbacks
            and not balancer.least_outstanding
            and all(upstream.weight == 1 for upstream in balancer.upstreams)
        )
        self.retry = retry
        #: Seconds from a request's first try within which every try of it ends.
        self.deadline = retry.deadline
        self.retry_statuses = frozenset(retry.statuses)
        self.retry_on = frozenset(retry.on)
        #: Which failures and statuses the breakers count.
        self.breaker_counts = frozenset(breaker_counts)
        self.failing_statuses = failing_statuses
        self.loop = loop or asyncio.get_event_loop()
        #: The active health probes' tasks (``None``: no ``health_check``).
        self.probes: HealthProbes | None = None

    # -- choosing -----------------------------------------------------------------------------

    def pick(self, relay: Relay) -> bool:
        """Give ``relay`` its first upstream; False (and a 503 sent) when none is up."""
        if self.plain:
            # (the usual case, in a few attribute reads: the relay's round robin choice is
            # healthy and its breaker closed)
            index = relay.pool_index
            usual = self.balancer.upstreams[index]
            breaker = usual.breaker
            if usual.healthy and (breaker is None or breaker.state == CLOSED):
                relay.tried_mask = 1 << index
                return True
        upstream = self.balancer.pick()
        if upstream is None:
            relay.finished = True
            failure = no_upstream_available(self.name)
            upstream_log.report(UNAVAILABLE, f"endpoint {self.name!r}", failure.message)
            if relay.transaction is not None:
                relay.transaction.error = failure.message
            status = failure.status_code
            relay.exchange.send_error(status, error_body(status, failure.message))
            return False
        relay.pool_index = upstream.index
        relay.pool = upstream.pool
        relay.tried_mask = 1 << upstream.index
        relay.probe = _ticket(upstream)
        return True

    # -- outcomes -----------------------------------------------------------------------------

    def answered(self, relay: Relay, status: int, lines: bytes) -> bool:
        """An answer's head came: True when the request goes again instead (the answer is
        dropped, its connection closed)."""
        breaker = self.breakers[relay.pool_index]
        if relay.retry_timer is not None:
            relay.retry_timer.cancel()  # (a later try's deadline: its answer came in time)
            relay.retry_timer = None
        if status < 500:
            if breaker is not None:
                breaker.succeeded(relay.probe)
            return False
        if breaker is not None:
            if status in self.failing_statuses:
                breaker.failed(f"answered {status}", relay.probe)
            else:
                breaker.succeeded(relay.probe)
        if status not in self.retry_statuses or not self._may_retry(relay, sent=True):
            return False
        wait = retry_after(lines)
        if wait is not None and wait > MAX_RETRY_AFTER:
            return False
        return self._again(relay, wait, detach=True, what=f"answered {status}")

    def connect_failed(self, relay: Relay, error: BaseException) -> bool:
        """No connection could be opened: True when the request goes again."""
        what = "connect timeout" if isinstance(error, TimeoutError) else "connect error"
        self._count(relay, "connect", what)
        if "connect" not in self.retry_on or not self._may_retry(relay, sent=False):
            return False
        return self._again(relay, None, detach=False, what=what)

    def failed(self, relay: Relay, kind: str, what: str, retry: bool = True) -> bool:
        """A try failed (``kind``: ``timeout`` or ``broken``): True when the request goes
        again. ``retry=False`` only counts it (the answer had begun)."""
        self._count(relay, kind, what)
        if not retry or kind not in self.retry_on or not self._may_retry(relay, sent=True):
            return False
        connection = relay.connection
        if connection is not None and connection.received:
            return False  # bytes of an answer came: it may have been acted on, and begun
        return self._again(relay, None, detach=True, what=what)

    def _count(self, relay: Relay, kind: str, what: str) -> None:
        breaker = self.breakers[relay.pool_index]
        if breaker is not None and kind in self.breaker_counts:
            breaker.failed(what, relay.probe)

    # -- going again --------------------------------------------------------------------------

    def _may_retry(self, relay: Relay, sent: bool) -> bool:
        exchange = relay.exchange
        if relay.cancelled or exchange.finished or exchange.started or exchange.upgrade:
            return False
        if relay.tunnel or relay.tried > self.retry.attempts:
            return False
        if exchange.has_body and relay.body is None:
            return False  # (its body streamed: what went cannot go again)
        if not sent:
            return True
        if exchange.method not in IDEMPOTENT_METHODS and not self.retry.unsafe_methods:
            return False
        return not exchange.has_body or relay.body_done

    def _again(self, relay: Relay, wait: float | None, detach: bool, what: str) -> bool:
        """Send ``relay`` again, to the upstream the balancer picks, after the backoff (and
        ``wait``, the upstream's ``Retry-After``); False when the deadline would pass first
        or no upstream is up (the caller then answers as without retries). ``what`` failed:
        the transaction keeps it, with the upstream, for the access log and storage."""
        settings = self.retry
        now = self.loop.time()
        if relay.retry_deadline == 0.0:  # (set as the first try started: Relay.start)
            relay.retry_deadline = now + settings.deadline
        delay = random.uniform(
            0, min(settings.max_backoff, settings.backoff * 2 ** (relay.tried - 1))
        )
        if wait is not None:
            delay = max(delay, wait)
        if now + delay >= relay.retry_deadline:
            return False
        # A connection that could not be opened goes to an upstream not tried yet, at once
        # (the same one a few milliseconds later would refuse it again); the others may go
        # to the same upstream after the backoff (a 503's Retry-After invites it).
        upstream = self.balancer.pick(relay.tried_mask, untried_only=not detach)
        if upstream is None:
            return False
        if not detach:
            delay = 0.0
        if detach:
            relay.abandon_try()
        if relay.transaction is not None:
            relay.transaction.attempt_failed(relay.pool.origin, what)
        if relay.retry_timer is not None:
            relay.retry_timer.cancel()  # (the deadline timer of the try that failed)
            relay.retry_timer = None
        upstream.retries += 1
        relay.tried += 1
        relay.tried_mask |= 1 << upstream.index
        relay.pool_index = upstream.index
        relay.pool = upstream.pool
        relay.probe = _ticket(upstream)
        if delay <= 0 and not detach:
            _resend(relay)
        else:
            # (from a timer even without a wait when the failed connection's parser is
            # still running: the new try must not begin inside its callbacks)
            relay.retry_timer = self.loop.call_later(delay, _resend, relay)
        return True

    def close(self) -> None:
        if self.probes is not None:
            self.probes.cancel()

    async def aclose(self) -> None:
        if self.probes is not None:
            await self.probes.aclose()


def _ticket(upstream: Upstream) -> int:
    """The probe ticket of a try the balancer just gave ``upstream`` (0: not a probe)."""
    breaker = upstream.breaker
    return 0 if breaker is None else breaker.probe_ticket()


def _resend(relay: Relay) -> None:
    """A later try starts: it gets what remains of the retry deadline (``_deadline_passed``)."""
    relay.retry_timer = None
    if relay.cancelled or relay.exchange.finished:
        return
    resilience = relay.endpoint.resilience
    assert resilience is not None
    relay.retry_timer = resilience.loop.call_at(relay.retry_deadline, _deadline_passed, relay)
    relay.start()


def _deadline_passed(relay: Relay) -> None:
    """The retry deadline came while a later try still waited for its answer's head (to
    connect, for a free connection, or for the upstream to answer): the try ends there, its
    connection closed, and the client gets a 504 (or what stale-if-error allows). Its
    upstream's breaker counts nothing: the try was cut short by the deadline, not by the
    endpoint's timeouts."""
    relay.retry_timer = None
    exchange = relay.exchange
    if relay.cancelled or relay.finished or relay.response_started or exchange.finished:
        return
    resilience = relay.endpoint.resilience
    assert resilience is not None
    failure = deadline_passed(relay.pool.origin, resilience.deadline)
    report_upstream(failure.kind, relay.pool.origin, failure.message)
    if relay.connection is None:
        relay.pool.remove_waiter(relay)  # (or connecting: the connection goes to the pool)
    else:
        relay.abandon_try()
    relay.fail(failure.status_code, failure.message)


def retry_after(lines: bytes) -> float | None:
    """The seconds an answer's ``Retry-After`` asks for (delay-seconds or an HTTP date), from
    its relayed header lines; ``None`` when it has none, or none that reads."""
    lowered = b"\r\n" + lines.lower()
    start = lowered.find(b"\r\nretry-after:")
    if start < 0:
        return None
    end = lowered.find(b"\r\n", start + 2)
    value = lines[start + 12 : end - 2 if end >= 0 else None].strip().decode("latin-1")
    if value.isdigit():
        # (``isdigit`` also says yes to ``²`` and other digits that ``float`` refuses; the
        # upstream chose them, and an unreadable Retry-After is none, not an error)
        return float(value) if value.isascii() else None
    try:
        when = email.utils.parsedate_to_datetime(value)
        if when.tzinfo is None:
            return None
        return max(0.0, when.timestamp() - time.time())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def build_resilience(
    settings: EndpointSettings,
    pools: Sequence[UpstreamPool],
    dispatcher: EventDispatcher | None,
    loop: asyncio.AbstractEventLoop,
) -> EndpointResilience:
    """An endpoint's balancer, breakers, probes (started now) and retries, from its settings."""
    balance = settings.balance
    upstreams = [
        Upstream(
            index,
            url,
            pool,
            weight=balance.weights.get(url, 1),
            fallback=url in balance.fallback,
            breaker=_breaker(settings.breaker),
        )
        for index, (url, pool) in enumerate(zip(settings.url, pools, strict=True))
    ]
    balancer = Balancer(
        settings.name,
        upstreams,
        least_outstanding=balance.strategy == "least_outstanding",
        dispatcher=dispatcher,
    )
    breaker = settings.breaker
    resilience = EndpointResilience(
        settings.name,
        balancer,
        settings.retry,
        breaker_counts=[kind for kind in breaker.failures if isinstance(kind, str)],
        failing_statuses=breaker.failing_statuses(),
        loop=loop,
    )
    if settings.health_check is not None:
        from ferryman.proxy.health import HealthProbes

        resilience.probes = HealthProbes(balancer, settings.health_check, loop)
        resilience.probes.start()
    return resilience


def _breaker(settings: BreakerSettings) -> CircuitBreaker | None:
    if not settings.enabled:
        return None
    return CircuitBreaker(
        consecutive_failures=settings.consecutive_failures,
        error_rate=settings.error_rate,
        min_requests=settings.min_requests,
        window=settings.window,
        half_open_after=settings.half_open_after,
        half_open_requests=settings.half_open_requests,
    )
