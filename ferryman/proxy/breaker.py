"""A circuit breaker per upstream: stop sending traffic to an upstream that keeps failing.

A sans-I/O state machine, fed with outcomes and the time by the relay
(:mod:`ferryman.proxy.relay_resilience`), so it can be read and tested without a socket:

================  ===========================================  ==================
state             event                                        next state
================  ===========================================  ==================
``closed``        ``consecutive_failures`` failures in a row   ``open``
``closed``        ``error_rate`` of at least ``min_requests``  ``open``
                  requests failed within one ``window``
``open``          ``half_open_after`` seconds went by          ``half_open``
                  (noticed by the next request that asks)
``half_open``     ``half_open_requests`` probes succeeded      ``closed``
``half_open``     a probe failed                               ``open``
``half_open``     a request admitted before (not a probe)      ``half_open``
                  succeeded or failed
any               another worker's state (shared, ``force``)   that state
================  ===========================================  ==================

While ``open`` the upstream gets nothing; while ``half_open`` it gets at most
``half_open_requests`` requests at once (the probes), the others going elsewhere. A probe whose
outcome never comes (its client left) stops counting after ``half_open_after`` seconds, so a
lost probe cannot hold the breaker half-open for good.

Only the probes decide a half-open breaker: a request admitted before it opened (while it was
closed) or in an earlier half-open period may end while it is half-open, and its outcome says
nothing about the upstream now. So each half-open period has a number, a request admitted as
one of its probes carries it (:meth:`CircuitBreaker.probe_ticket`, read right after
:meth:`~CircuitBreaker.admits`) to :meth:`~CircuitBreaker.succeeded` or
:meth:`~CircuitBreaker.failed`, and an outcome without the current number changes nothing
while half-open.

The error rate is counted over tumbling windows: the counts start again with the first failure
after a window ended. A success costs two attribute writes (no clock read); only failures and
requests to a breaker that is not closed read the clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

__all__ = ["CLOSED", "HALF_OPEN", "OPEN", "STATE_NAMES", "CircuitBreaker", "Transition"]

CLOSED: Final = 0
OPEN: Final = 1
HALF_OPEN: Final = 2
#: The states' names, as events, logs, metrics and the API show them.
STATE_NAMES: Final = ("closed", "open", "half_open")

#: ``(breaker, previous state, new state, reason in words, remote)``: told of every change.
Transition = Callable[["CircuitBreaker", int, int, str, bool], None]


class CircuitBreaker:
    """One upstream's breaker; see the module documentation for the transitions."""

    __slots__ = (
        "_failures",
        "_probe_started",
        "_probes",
        "_requests",
        "_window_start",
        "clock",
        "consecutive",
        "consecutive_failures",
        "error_rate",
        "half_open_after",
        "half_open_requests",
        "half_open_successes",
        "min_requests",
        "on_transition",
        "opened_until",
        "period",
        "state",
        "window",
    )

    def __init__(
        self,
        *,
        consecutive_failures: int = 5,
        error_rate: float = 0.5,
        min_requests: int = 20,
        window: float = 10.0,
        half_open_after: float = 30.0,
        half_open_requests: int = 1,
        clock: Callable[[], float] = time.monotonic,
        on_transition: Transition | None = None,
    ) -> None:
        if consecutive_failures < 1 or half_open_requests < 1 or min_requests < 1:
            raise ValueError("failure counts, probes and minimum requests must be at least 1")
        if not 0 < error_rate <= 1:
            raise ValueError("error_rate must be more than 0 and at most 1")
        self.consecutive_failures = consecutive_failures
        self.error_rate = error_rate
        self.min_requests = min_requests
        self.window = window
        self.half_open_after = half_open_after
        self.half_open_requests = half_open_requests
        self.clock = clock
        self.on_transition = on_transition
        self.state = CLOSED
        #: Failures in a row (closed), successful probes (half-open).
        self.consecutive = 0
        self.half_open_successes = 0
        #: When an open breaker lets probes through (the clock's time).
        self.opened_until = 0.0
        #: The number of the current (or last) half-open period: its probes' ticket.
        self.period = 0
        self._requests = 0
        self._failures = 0
        self._window_start = clock()
        self._probes = 0
        self._probe_started = 0.0

    @property
    def state_name(self) -> str:
        return STATE_NAMES[self.state]

    def admits(self) -> bool:
        """May a request go to this upstream now? Counts a half-open probe when it may."""
        state = self.state
        if state == CLOSED:
            return True
        now = self.clock()
        if state == OPEN:
            if now < self.opened_until:
                return False
            self._change(HALF_OPEN, f"{self.half_open_after:g} s since it opened")
        if self._probes >= self.half_open_requests:
            if now - self._probe_started < self.half_open_after:
                return False
            self._probes = 0  # (lost probes: their outcome never came)
        self._probes += 1
        self._probe_started = now
        return True

    def would_admit(self) -> bool:
        """:meth:`admits` without counting a probe (choosing among upstreams)."""
        state = self.state
        if state == CLOSED:
            return True
        now = self.clock()
        if state == OPEN:
            return now >= self.opened_until
        return (
            self._probes < self.half_open_requests
            or now - self._probe_started >= self.half_open_after
        )

    def probe_ticket(self) -> int:
        """What a request :meth:`admits` let through just now carries to its outcome: the
        half-open period's number when it is one of its probes, else 0 (admitted closed)."""
        return self.period if self.state == HALF_OPEN else 0

    def succeeded(self, probe: int = 0) -> None:
        """The upstream answered (a status that is not counted as a failure); ``probe``: the
        request's :meth:`probe_ticket`."""
        state = self.state
        if state == CLOSED:
            self.consecutive = 0
            self._requests += 1
            return
        if state == HALF_OPEN and probe == self.period:
            if self._probes:
                self._probes -= 1
            self.half_open_successes += 1
            if self.half_open_successes >= self.half_open_requests:
                self._change(CLOSED, f"{self.half_open_successes} probe(s) succeeded")
        # (open, or not a probe of this half-open period: a request admitted earlier, whose
        # answer says nothing of the upstream now; it changes nothing)

    def failed(self, what: str, probe: int = 0) -> None:
        """The upstream failed a request (``what``: in words, for the log and the event);
        ``probe``: the request's :meth:`probe_ticket`."""
        state = self.state
        if state == OPEN:
            return
        if state == HALF_OPEN:
            if probe != self.period:
                return  # (not one of this period's probes: it admitted earlier)
            self.opened_until = self.clock() + self.half_open_after
            self._change(OPEN, f"a probe failed ({what})")
            return
        now = self.clock()
        if now - self._window_start >= self.window:
            self._window_start = now
            self._requests = 0
            self._failures = 0
        self._requests += 1
        self._failures += 1
        self.consecutive += 1
        if self.consecutive >= self.consecutive_failures:
            reason = f"{self.consecutive} failures in a row (the last: {what})"
        elif (
            self._requests >= self.min_requests
            and self._failures >= self.error_rate * self._requests
        ):
            reason = (
                f"{self._failures} of {self._requests} requests failed within "
                f"{self.window:g} s (the last: {what})"
            )
        else:
            return
        self.opened_until = now + self.half_open_after
        self._change(OPEN, reason)

    def force(self, state: int, reason: str, remaining: float | None = None) -> None:
        """Take a state decided elsewhere (another worker, through shared storage); an open
        one for ``remaining`` seconds (the sharer's), else ``half_open_after``."""
        if state == OPEN:
            wait = self.half_open_after if remaining is None else max(0.0, remaining)
            self.opened_until = self.clock() + wait
        if state != self.state:
            self._change(state, reason, remote=True)

    def remaining_open(self) -> float:
        """Seconds before an open breaker lets a probe through (0 when it is not open)."""
        if self.state != OPEN:
            return 0.0
        return max(0.0, self.opened_until - self.clock())

    def _change(self, state: int, reason: str, remote: bool = False) -> None:
        previous = self.state
        self.state = state
        self.consecutive = 0
        self.half_open_successes = 0
        self._probes = 0
        if state == HALF_OPEN:
            self.period += 1
        if state == CLOSED:
            self._requests = 0
            self._failures = 0
            self._window_start = self.clock()
        if self.on_transition is not None:
            self.on_transition(self, previous, state, reason, remote)

    def __repr__(self) -> str:
        return f"<CircuitBreaker {self.state_name} consecutive={self.consecutive}>"
