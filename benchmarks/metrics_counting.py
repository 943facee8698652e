"""Per-request cost of what the access log and the metrics do in their listener; run by hand.

    python benchmarks/metrics_counting.py

Compares the metrics' plain counters (``TransactionCounters.on_finished``) with the same
counting done the usual prometheus_client way (``Counter.labels(...).inc()`` for requests and
bytes, ``Histogram.labels(...).observe()``), and times the access log's text and JSON lines
(formatting only; the batch writer's share is an append to a list).
"""

from __future__ import annotations

import timeit

from prometheus_client import CollectorRegistry, Counter, Histogram

from ferryman.apps.accesslog.formats import LineFormatter, query_redactor
from ferryman.apps.accesslog.settings import DEFAULT_REDACTED_PARAMETERS
from ferryman.apps.metrics.counters import BUCKETS, TransactionCounters
from ferryman.proxy.transactions import Transaction

NUMBER = 200_000


def transaction() -> Transaction:
    t = Transaction(
        "api", b"GET", b"/small", [(b"Host", b"127.0.0.1:18090")], "1.1", ("127.0.0.1", 40000)
    )
    t.upstream_origin = "http://127.0.0.1:18080"
    t.raw_upstream_head = b"GET /small HTTP/1.1\r\nHost: 127.0.0.1:18080\r\n\r\n"
    t.status = 200
    t.response_body_size = 213
    t.t_end = t.t_start + 0.0004
    return t


def best(stmt: object) -> float:
    """Best µs per call of 5 repeats."""
    return min(timeit.repeat(stmt, number=NUMBER, repeat=5)) / NUMBER * 1e6  # type: ignore[arg-type]


def main() -> None:
    t = transaction()
    counters = TransactionCounters()
    registry = CollectorRegistry()
    requests = Counter("r", "r", ["endpoint", "status_class"], registry=registry)
    request_bytes = Counter("rq", "rq", ["endpoint"], registry=registry)
    response_bytes = Counter("rs", "rs", ["endpoint"], registry=registry)
    durations = Histogram("d", "d", ["endpoint"], buckets=BUCKETS, registry=registry)

    def with_prometheus_client() -> None:
        status = t.status
        requests.labels(t.endpoint, f"{status // 100}xx").inc()
        request_bytes.labels(t.endpoint).inc(t.request_body_size)
        response_bytes.labels(t.endpoint).inc(t.response_body_size)
        durations.labels(t.endpoint).observe(t.t_end - t.t_start)  # type: ignore[operator]

    text = LineFormatter("text", query_redactor(DEFAULT_REDACTED_PARAMETERS))
    as_json = LineFormatter("json", query_redactor(DEFAULT_REDACTED_PARAMETERS))
    lines: list[str] = []

    def text_line() -> None:
        lines.append(text(t))
        if len(lines) > 1000:
            lines.clear()

    print(f"metrics, plain counters:        {best(lambda: counters.on_finished(t)):.2f} µs")
    print(f"metrics, prometheus_client:     {best(with_prometheus_client):.2f} µs")
    print(f"access log, text line (+append): {best(text_line):.2f} µs")

    def json_line() -> None:
        t._id = None  # a new transaction's id is made on first read
        as_json(t)

    print(f"access log, JSON line (+id):     {best(json_line):.2f} µs")
    print(f"  (upstream URL alone:           {best(lambda: t.upstream):.2f} µs)")


if __name__ == "__main__":
    main()
