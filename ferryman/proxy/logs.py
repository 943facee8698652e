"""Log lines that cannot flood: one per kind of event and source per interval, repeats counted.

An upstream that breaks every answer, or a process out of file descriptors, fails thousands of
times a second; a line (or a traceback) for each would fill the disk and bury everything else.
:class:`RateLimitedLog` writes the first event of a kind from a source at once, counts the
repeats for ``interval`` seconds, then writes one line saying how many there were (and counts
the next interval's, as long as they keep coming). Nothing is lost but the repetition.

Both proxy paths report upstream failures to :data:`upstream_log` (:func:`report_upstream`),
with the kinds and messages of :mod:`ferryman.proxy.errors`, so an upstream's trouble reads the
same whichever path met it. The count is written when the interval ends (a timer of the running
event loop, one per source in trouble), or, with no loop running, with the next event after it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Final

__all__ = ["LOG_INTERVAL", "RateLimitedLog", "report_upstream", "upstream_log"]

#: Seconds over which repeats of an event are counted into one line.
LOG_INTERVAL: Final = 10.0
#: Sources in trouble at once that get lines of their own; beyond, events are dropped uncounted
#: (a client cannot make the proxy remember unbounded keys: each one is an upstream or a kind).
MAX_WINDOWS: Final = 1024


class _Window:
    """One source's interval: when it began and ends, and the repeats seen since it began."""

    __slots__ = ("ends", "repeats", "started", "timer")

    def __init__(self, started: float, ends: float) -> None:
        self.started = started
        self.ends = ends
        self.repeats = 0
        self.timer: asyncio.TimerHandle | None = None


class RateLimitedLog:
    """Writes ``logger`` lines for events, at most one per ``(kind, source)`` per ``interval``."""

    def __init__(
        self,
        logger: logging.Logger,
        interval: float = LOG_INTERVAL,
        *,
        level: int = logging.WARNING,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.interval = interval
        self.level = level
        self._clock = clock
        self._windows: dict[tuple[str, str], _Window] = {}

    def report(self, kind: str, source: str, message: str) -> bool:
        """One event: ``message`` is its line when it is the first of its interval. True when
        a line was written now, False when the event was counted for a later one."""
        if not self.admit(kind, source):
            return False
        if self.logger.isEnabledFor(self.level):
            self.logger.log(self.level, "%s: %s", kind, message)
        return True

    def admit(self, kind: str, source: str) -> bool:
        """One event, which the caller writes itself (a traceback, say) when this says True:
        the first of its interval. Otherwise it is counted, for the interval's closing line."""
        key = (kind, source)
        window = self._windows.get(key)
        now = self._clock()
        if window is not None:
            if now < window.ends:
                window.repeats += 1
                return False
            # The interval is over and no timer said so (no event loop): say it now.
            if self._close(key, window, now):
                self._windows[key].repeats += 1  # this event opens the next interval's count
                return False
        elif len(self._windows) >= MAX_WINDOWS:
            return False
        self._open(key, now)
        return True

    def _open(self, key: tuple[str, str], now: float) -> None:
        window = self._windows[key] = _Window(now, now + self.interval)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # counted lines are written with the next event instead
        window.timer = loop.call_later(self.interval, self._interval_over, key, window)

    def _interval_over(self, key: tuple[str, str], window: _Window) -> None:
        if self._windows.get(key) is window:
            self._close(key, window, self._clock())

    def _close(self, key: tuple[str, str], window: _Window, now: float) -> bool:
        """End ``window``: write its count, and keep counting (True) if there was one."""
        del self._windows[key]
        if window.timer is not None:
            window.timer.cancel()
        if not window.repeats:
            return False  # quiet again: the next event gets a line of its own at once
        kind, source = key
        if self.logger.isEnabledFor(self.level):
            self.logger.log(
                self.level,
                "%s: %s, %d more time%s in the last %.0f s",
                kind,
                source,
                window.repeats,
                "" if window.repeats == 1 else "s",
                max(1.0, now - window.started),
            )
        self._open(key, now)
        return True

    def pending(self) -> dict[tuple[str, str], int]:
        """Repeats counted and not yet written, by ``(kind, source)`` (for tests and shutdown)."""
        return {key: window.repeats for key, window in self._windows.items() if window.repeats}

    def flush(self) -> None:
        """Write every count now (a process about to exit) and forget the intervals."""
        now = self._clock()
        for key, window in list(self._windows.items()):
            if self._close(key, window, now):
                self._discard(key)

    def _discard(self, key: tuple[str, str]) -> None:
        window = self._windows.pop(key, None)
        if window is not None and window.timer is not None:
            window.timer.cancel()


#: The proxy's log of upstream failures, shared by the fast relay and the general path.
upstream_log: Final = RateLimitedLog(logging.getLogger("ferryman.proxy"))


def report_upstream(kind: str, origin: str, message: str) -> None:
    """Log an upstream failure (``kind`` and ``message`` from :mod:`ferryman.proxy.errors`),
    at most one line per kind and upstream per interval."""
    upstream_log.report(kind, f"the upstream {origin}", message)
