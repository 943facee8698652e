"""Token buckets as GCRA computes them: one timestamp per key, in this process's memory.

The generic cell rate algorithm keeps, per key, the *theoretical arrival time* (TAT) of the
next request at the steady rate. A request at ``now`` may go once ``TAT + interval - burst *
interval <= now``: ``burst`` requests at once, then one per ``interval``. It is the token
bucket's behaviour with one number per key and no refill timer, and the same arithmetic runs
in Redis (:mod:`ferryman.apps.ratelimit.shared`) so both backends decide alike.

A key whose TAT is in the past holds no state worth keeping (its bucket is full): idle keys are
forgotten for free. The number of keys is bounded (``max_keys``): a client that invents keys
(a header it controls) cannot grow the table without end; past the bound the least recently
used key is forgotten, which at worst gives that key a full bucket again.

A decision may also *reserve* a later slot (``max_wait`` > 0, the outbound budgets): the
request is told how long to wait, and the slot is its own, so the waits of concurrent requests
add up as the steady rate says.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import NamedTuple

__all__ = ["Decision", "MemoryBuckets", "gcra"]


class Decision(NamedTuple):
    """What a bucket said: ``allowed`` (after ``wait`` seconds, often 0), or not, and then
    ``wait`` is how long until it would be."""

    allowed: bool
    wait: float


def gcra(
    tat: float, now: float, interval: float, burst: int, max_wait: float
) -> tuple[Decision, float]:
    """The decision for a request at ``now`` on a key whose TAT is ``tat``, and the key's TAT
    after it (unchanged when refused)."""
    start = tat if tat > now else now
    new_tat = start + interval
    wait = new_tat - burst * interval - now
    if wait > max_wait + 1e-9:
        return Decision(False, wait), tat
    return Decision(True, wait if wait > 0 else 0.0), new_tat


class MemoryBuckets:
    """Key -> TAT, bounded; a dict kept in least-recently-decided order."""

    __slots__ = ("_clock", "_tats", "evicted", "max_keys")

    def __init__(self, max_keys: int = 100_000, clock: Callable[[], float] = time.monotonic):
        self.max_keys = max_keys
        self._clock = clock
        self._tats: dict[str, float] = {}
        #: Keys forgotten while their bucket was not full (the table was full of busy keys).
        self.evicted = 0

    def decide(self, key: str, interval: float, burst: int, max_wait: float = 0.0) -> Decision:
        now = self._clock()
        tats = self._tats
        tat = tats.pop(key, now)
        decision, tat = gcra(tat, now, interval, burst, max_wait)
        if tat > now:  # (a full bucket is not worth a key)
            if len(tats) >= self.max_keys:
                self._make_room(now)
            tats[key] = tat  # (at the end: the most recently decided)
        return decision

    def _make_room(self, now: float) -> None:
        """Forget the least recently decided key: most often an idle one (its bucket full)."""
        oldest = next(iter(self._tats))
        if self._tats.pop(oldest) > now:
            self.evicted += 1

    def __len__(self) -> int:
        return len(self._tats)
