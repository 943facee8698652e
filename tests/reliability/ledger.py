"""What the reliability suite observed, counted as the tests run, for the summary at the end.

Each test adds what it saw (a vector tried, the proxy's answer, whether the request reached the
upstream, whether the proxy still answered afterwards); ``conftest.py`` prints the totals in
``pytest_terminal_summary``. Nothing here is a table of expectations: a count moves only when a
test sent something and looked at what came back, so a summary after a partial run (``-k``, a
failure) is the truth about that run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["LEDGER", "Ledger", "ProcessSample", "sample_process"]


@dataclass(frozen=True)
class ProcessSample:
    """A proxy process's open file descriptors and resident memory at one moment."""

    fds: int
    rss_kib: int

    def __str__(self) -> str:
        return f"{self.fds} fds, {self.rss_kib / 1024:.1f} MiB RSS"


def sample_process(pid: int) -> ProcessSample | None:
    """``/proc/<pid>/fd`` and ``VmRSS``; None when the process is gone (or not Linux)."""
    try:
        fds = sum(1 for _ in Path(f"/proc/{pid}/fd").iterdir())
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return ProcessSample(fds, int(line.split()[1]))
    except OSError:
        return None
    return None


@dataclass
class Ledger:
    #: Requests sent by a client vector (hostile or malformed requests).
    request_vectors: int = 0
    #: ... of them answered with the status the design gives (or closed, where it says so).
    rejected: int = 0
    #: ... of them that must be relayed (extension methods, forwarding headers) and were.
    relayed: int = 0
    #: Requests that reached an upstream although the proxy must refuse them (must be 0).
    reached_upstream: list[str] = field(default_factory=list)
    #: Hostile answers an upstream gave, and those the proxy handled as the design says.
    upstream_vectors: int = 0
    handled: int = 0
    #: Vectors (either side) after which the proxy still answered a normal request.
    faults: int = 0
    survived: int = 0
    #: Client requests an upstream executed more than once (must be 0), by their marker.
    executed_twice: list[str] = field(default_factory=list)
    #: Fuzz examples run against the proxy and invariant violations seen.
    fuzz_examples: int = 0
    #: Proxy process name -> (sample at start, sample at the end).
    processes: dict[str, tuple[ProcessSample | None, ProcessSample | None]] = field(
        default_factory=dict
    )

    def lines(self) -> list[str]:
        """The summary, one line each."""
        reached = len(set(self.reached_upstream))
        twice = len(set(self.executed_twice))
        out = [
            f"request vectors tried: {self.request_vectors}, rejected as specified: "
            f"{self.rejected}, relayed as specified: {self.relayed}",
            f"request vectors that reached the upstream: {reached} (must be 0)"
            + _some(self.reached_upstream),
            f"upstream vectors tried: {self.upstream_vectors}, handled as specified: "
            f"{self.handled}",
            f"faults survived (the proxy answered a normal request after): "
            f"{self.survived} of {self.faults}",
            f"requests executed twice: {twice} (must be 0)" + _some(self.executed_twice),
            f"fuzz examples sent through the proxy: {self.fuzz_examples}",
        ]
        for name, (before, after) in sorted(self.processes.items()):
            growth = ""
            if before is not None and after is not None:
                growth = (
                    f" (fds {after.fds - before.fds:+d}, "
                    f"RSS {(after.rss_kib - before.rss_kib) / 1024:+.1f} MiB)"
                )
            out.append(
                f"proxy {name}: before {before or 'not sampled'}, after {after or 'gone'}{growth}"
            )
        return out


def _some(names: list[str], shown: int = 6) -> str:
    """``: a, b, c (and N more)``, each name cut short; empty for none."""
    unique = list(dict.fromkeys(names))
    if not unique:
        return ""
    cut = [name if len(name) <= 60 else name[:57] + "..." for name in unique[:shown]]
    more = f" (and {len(unique) - shown} more)" if len(unique) > shown else ""
    return f": {', '.join(cut)}{more}"


#: The one ledger of a pytest run.
LEDGER = Ledger()
