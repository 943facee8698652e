"""Choosing an endpoint's upstream for each request, among those that are up.

Each :class:`Upstream` wraps one relay pool with its role (``default`` or ``fallback``), its
weight, its circuit breaker (:mod:`ferryman.proxy.breaker`) and its health (what the active
probes of :mod:`ferryman.proxy.health` last said). An upstream is *up* when its probes say
healthy and its breaker admits requests; :meth:`Balancer.pick` chooses among the defaults that
are up, by weighted round robin (nginx's smooth one: weight-3 and weight-1 upstreams get
``a a b a``, not ``a a a b``) or by the fewest requests in flight, and among the fallbacks only
when no default is up. A request going again prefers an upstream it has not tried.

Every change of an upstream's state (breaker or health) is logged, counted and dispatched as
:data:`EVENT_UPSTREAM_STATE` with an :class:`UpstreamStateEvent`, so applications (the shared
breaker state of :mod:`ferryman.apps.resilience`, the metrics) follow them without polling.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Final

from ferryman.events import Event, EventDispatcher
from ferryman.proxy.breaker import CLOSED, STATE_NAMES, CircuitBreaker
from ferryman.proxy.upstream import UpstreamPool

__all__ = ["EVENT_UPSTREAM_STATE", "Balancer", "Upstream", "UpstreamStateEvent"]

logger = logging.getLogger("ferryman.proxy")

#: An upstream's breaker or health changed (:class:`UpstreamStateEvent`).
EVENT_UPSTREAM_STATE: Final = "proxy.upstream.state"
#: Upstreams per endpoint: a request's tries are a bit mask of them.
MAX_UPSTREAMS: Final = 64


class UpstreamStateEvent(Event):
    """One upstream's breaker (``what == "breaker"``: ``closed``, ``open``, ``half_open``) or
    health (``"health"``: ``up``, ``down``) changed, ``reason`` in words. ``remote``: the state
    came from another worker (shared storage), not from this process's traffic."""

    __slots__ = ("endpoint", "previous", "reason", "remote", "state", "upstream", "what")

    def __init__(
        self,
        endpoint: str,
        upstream: str,
        what: str,
        previous: str,
        state: str,
        reason: str,
        remote: bool = False,
    ) -> None:
        super().__init__()
        self.endpoint = endpoint
        self.upstream = upstream
        self.what = what
        self.previous = previous
        self.state = state
        self.reason = reason
        self.remote = remote

    def __repr__(self) -> str:
        return (
            f"<UpstreamStateEvent {self.endpoint} {self.upstream} {self.what}: "
            f"{self.previous} -> {self.state} ({self.reason})>"
        )


class Upstream:
    """One upstream of an endpoint: its pool, role, weight, breaker and health."""

    __slots__ = (
        "breaker",
        "current_weight",
        "fallback",
        "healthy",
        "index",
        "pool",
        "retries",
        "transitions",
        "url",
        "weight",
    )

    def __init__(
        self,
        index: int,
        url: str,
        pool: UpstreamPool,
        *,
        weight: int = 1,
        fallback: bool = False,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self.index = index
        #: The URL as configured (base path included), which names it in settings.
        self.url = url
        self.pool = pool
        self.weight = weight
        self.fallback = fallback
        self.breaker = breaker
        #: What the active health probes last concluded (no probes: always True).
        self.healthy = True
        #: Smooth weighted round robin's running weight.
        self.current_weight = 0
        #: Requests sent to it again after a failure, and its state changes, for the metrics.
        self.retries = 0
        self.transitions = 0

    @property
    def origin(self) -> str:
        return self.pool.origin

    def is_up(self) -> bool:
        """Healthy, and its breaker would let a request through now."""
        breaker = self.breaker
        return self.healthy and (
            breaker is None or breaker.state == CLOSED or breaker.would_admit()
        )

    def state(self) -> dict[str, object]:
        """What the dashboard and the API show of it."""
        breaker = self.breaker
        return {
            "url": self.url,
            "origin": self.origin,
            "role": "fallback" if self.fallback else "default",
            "weight": self.weight,
            "healthy": self.healthy,
            "breaker": None if breaker is None else breaker.state_name,
            "breaker_reopens_in": None if breaker is None else round(breaker.remaining_open(), 3),
            "in_flight": self.pool.busy,
            "retries": self.retries,
            "transitions": self.transitions,
        }


class Balancer:
    """Picks an endpoint's upstream for each try (see the module documentation)."""

    __slots__ = (
        "_cursor",
        "_plain",
        "defaults",
        "dispatcher",
        "endpoint",
        "fallbacks",
        "least_outstanding",
        "upstreams",
    )

    def __init__(
        self,
        endpoint: str,
        upstreams: Sequence[Upstream],
        *,
        least_outstanding: bool = False,
        dispatcher: EventDispatcher | None = None,
    ) -> None:
        if not upstreams:
            raise ValueError("an endpoint relays to at least one upstream")
        if len(upstreams) > MAX_UPSTREAMS:
            raise ValueError(f"an endpoint has at most {MAX_UPSTREAMS} upstreams")
        self.endpoint = endpoint
        self.upstreams = tuple(upstreams)
        self.defaults = tuple(u for u in self.upstreams if not u.fallback)
        self.fallbacks = tuple(u for u in self.upstreams if u.fallback)
        if not self.defaults:
            raise ValueError("at least one upstream must have the default role")
        self.least_outstanding = least_outstanding
        self.dispatcher = dispatcher
        #: Equal weights: round robin is a cursor, no running weights.
        self._plain = all(u.weight == 1 for u in self.upstreams)
        self._cursor = 0
        for upstream in self.upstreams:
            if upstream.breaker is not None:
                upstream.breaker.on_transition = self._breaker_changed

    def pick(self, tried: int = 0, untried_only: bool = False) -> Upstream | None:
        """The upstream for the next try (``tried``: a bit mask of the upstreams' indexes
        tried already, avoided when another is up; with ``untried_only``, never chosen), or
        ``None`` when none is up. A half-open upstream chosen counts as one of its breaker's
        probes."""
        group = self.defaults
        chosen = self._choose(group, tried, untried_only)
        if chosen is None and self.fallbacks:
            group = self.fallbacks
            chosen = self._choose(group, tried, untried_only)
        if chosen is None:
            return None
        breaker = chosen.breaker
        if breaker is not None and breaker.state != CLOSED and not breaker.admits():
            return None  # (would_admit said yes just now: cannot happen on one loop)
        return chosen

    def _choose(
        self, group: tuple[Upstream, ...], tried: int, untried_only: bool = False
    ) -> Upstream | None:
        if len(group) == 1 and not untried_only:
            only = group[0]
            return only if only.is_up() else None
        candidates = [u for u in group if u.is_up() and not tried >> u.index & 1]
        if not candidates:
            if untried_only:
                return None
            candidates = [u for u in group if u.is_up()]  # the same again, rather than none
            if not candidates:
                return None
        if self.least_outstanding:
            return min(candidates, key=lambda u: (u.pool.busy / u.weight, -u.weight, u.index))
        if self._plain:
            count = len(self.upstreams)
            cursor = self._cursor
            best = min(candidates, key=lambda u: (u.index - cursor) % count)
            self._cursor = (best.index + 1) % count
            return best
        total = 0
        best = candidates[0]
        for upstream in candidates:
            upstream.current_weight += upstream.weight
            total += upstream.weight
            if upstream.current_weight > best.current_weight:
                best = upstream
        best.current_weight -= total
        return best

    def health_changed(self, upstream: Upstream, healthy: bool, reason: str) -> None:
        """The active probes' verdict on ``upstream`` changed."""
        if upstream.healthy == healthy:
            return
        upstream.healthy = healthy
        before, after = ("down", "up") if healthy else ("up", "down")
        self._announce(upstream, "health", before, after, reason, remote=False)

    def _breaker_changed(
        self, breaker: CircuitBreaker, previous: int, state: int, reason: str, remote: bool
    ) -> None:
        for upstream in self.upstreams:
            if upstream.breaker is breaker:
                self._announce(
                    upstream, "breaker", STATE_NAMES[previous], STATE_NAMES[state], reason, remote
                )
                return

    def _announce(
        self,
        upstream: Upstream,
        what: str,
        previous: str,
        state: str,
        reason: str,
        remote: bool,
    ) -> None:
        upstream.transitions += 1
        worse = state in ("open", "down")
        logger.log(
            logging.WARNING if worse else logging.INFO,
            "upstream %s of endpoint %r: %s %s -> %s%s: %s",
            upstream.origin,
            self.endpoint,
            what,
            previous,
            state,
            " (from another worker)" if remote else "",
            reason,
        )
        dispatcher = self.dispatcher
        if dispatcher is None or not dispatcher.has_listeners(EVENT_UPSTREAM_STATE):
            return
        event = UpstreamStateEvent(
            self.endpoint, upstream.origin, what, previous, state, reason, remote
        )
        if dispatcher.is_synchronous(EVENT_UPSTREAM_STATE):
            try:
                dispatcher.dispatch(EVENT_UPSTREAM_STATE, event)
            except Exception:
                logger.exception("a listener of %s failed", EVENT_UPSTREAM_STATE)
            return
        task = asyncio.get_running_loop().create_task(
            dispatcher.adispatch(EVENT_UPSTREAM_STATE, event)
        )
        _pending.add(task)
        task.add_done_callback(_settled)

    def states(self) -> list[dict[str, object]]:
        return [upstream.state() for upstream in self.upstreams]


#: Asynchronous dispatches of state changes under way (the loop holds tasks weakly).
_pending: set[asyncio.Task[Event]] = set()


def _settled(task: asyncio.Task[Event]) -> None:
    _pending.discard(task)
    if not task.cancelled() and task.exception() is not None:
        logger.error("a listener of %s failed: %r", EVENT_UPSTREAM_STATE, task.exception())
