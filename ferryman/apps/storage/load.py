"""How busy the proxy is, seen from its storage writer: the CPU its process uses, read from
``/proc``.

The proxy serves on one event loop, so its process using nearly a whole CPU means it is
saturated: any CPU the writer (or a database server it feeds) takes then is taken from the
traffic, on the proxy's core or, on machines whose CPUs share a physical core or a cache, beside
it. Measured on a 2-CPU machine, a writer storing every request took 20-40% of the proxy's
throughput that way, although it ran at the lowest priority (``benchmarks/storage_bench.py``).
The writer measures this, while it is not writing, to hold its writes while the proxy is
saturated (:mod:`.writer` says for how long at most).

Only Linux has ``/proc/PID/stat``; elsewhere :meth:`ProxyCPU.open` gives ``None`` and the
writer never holds back.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Final

__all__ = ["BUSY", "ProxyCPU"]

#: The share of one CPU from which the proxy counts as saturated.
BUSY: Final = 0.8


class ProxyCPU:
    """The CPU time of process ``pid``."""

    __slots__ = ("_path", "_tick")

    def __init__(self, pid: int) -> None:
        self._path = f"/proc/{pid}/stat"
        self._tick = 1.0 / os.sysconf("SC_CLK_TCK")

    @classmethod
    def open(cls, pid: int) -> ProxyCPU | None:
        """A reader of ``pid``'s CPU time, or ``None`` where it cannot be read."""
        reader = cls(pid)
        try:
            reader.seconds()
        except (OSError, ValueError, IndexError):
            return None
        return reader

    def seconds(self) -> float:
        """User and system CPU seconds so far (raises ``OSError`` once the process is gone)."""
        with open(self._path, "rb") as file:
            # The fields after the command's closing parenthesis (the command may hold spaces).
            fields = file.read().rpartition(b")")[2].split()
        return (int(fields[11]) + int(fields[12])) * self._tick  # utime, stime

    async def share(self, duration: float) -> float:
        """The CPU seconds per second the process uses over the next ``duration`` seconds."""
        start, used = time.monotonic(), self.seconds()
        await asyncio.sleep(duration)
        elapsed = time.monotonic() - start
        return (self.seconds() - used) / elapsed if elapsed > 0 else 0.0
