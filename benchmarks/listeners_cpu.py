"""What the default observers cost per request, without sockets: building a ``Transaction``,
the access log's text line, the metrics' counting.

    python benchmarks/listeners_cpu.py [N]

Best of five runs of N calls each, in µs per call; the modules are compiled with the hot path
(``setup.py``) unless ``FERRYMAN_PURE_PYTHON=1``.
"""

from __future__ import annotations

import sys
import timeit

from ferryman import _compiled
from ferryman.apps.accesslog.formats import LineFormatter
from ferryman.apps.metrics.counters import TransactionCounters
from ferryman.proxy.transactions import Transaction

HEADERS = [(b"Host", b"127.0.0.1:18090"), (b"User-Agent", b"wrk")]


def transaction() -> Transaction:
    """A finished transaction as the relay leaves it for wrk's ``GET /small``."""
    t = Transaction("bench", b"GET", b"/small", HEADERS, "1.1", ("127.0.0.1", 50000))
    t.upstream_origin = "http://127.0.0.1:18080"
    t.raw_upstream_head = b"GET /small HTTP/1.1\r\nHost: 127.0.0.1:18080\r\n\r\n"
    t.status = 200
    t.response_body_size = 13
    t.t_response = t.t_start + 0.0003
    t.t_end = t.t_start + 0.0004
    return t


def best(call: object, n: int) -> float:
    return min(timeit.repeat(call, number=n, repeat=5)) / n * 1e6  # type: ignore[arg-type]


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    done = transaction()
    text = LineFormatter("text")
    json = LineFormatter("json")
    counters = TransactionCounters()
    print(f"hot path {_compiled.mode}; µs per call, best of 5 x {n}")
    print(f"  Transaction built and filled  {best(transaction, n):6.2f}")
    print(f"  access log, text line         {best(lambda: text(done), n):6.2f}")
    print(f"  access log, json line         {best(lambda: json(done), n):6.2f}")
    print(f"  metrics, counting             {best(lambda: counters.on_finished(done), n):6.2f}")


if __name__ == "__main__":
    main()
