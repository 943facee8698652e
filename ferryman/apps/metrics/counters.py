"""What the metrics count per request: plain Python numbers, updated by one listener.

Each finished transaction adds to its endpoint's :class:`EndpointCounters`: a request in its
status class, its duration in one histogram bucket (found with ``bisect``), its body sizes, and,
when it failed, an error of its kind. That is a dictionary look-up, a few integer additions and
one binary search: no lock (everything runs on the event loop), no label look-up, no object per
request. The Prometheus families are built from these numbers only when someone scrapes
(:mod:`ferryman.apps.metrics.collector`).

Why not ``prometheus_client``'s ``Counter(...).labels(...).inc()`` per request: every
``labels()`` call builds a key tuple and takes a lock, and each ``inc()`` takes another (its
values are thread-safe ``MutexValue`` objects); ``Histogram.observe`` walks its buckets taking
a lock for each. ``benchmarks/metrics_counting.py`` measures both ways.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Final

from ferryman.proxy.errors import error_kind
from ferryman.proxy.transactions import Transaction

__all__ = ["BUCKETS", "STATUS_CLASSES", "EndpointCounters", "TransactionCounters"]

#: Upper bounds (seconds) of the latency histogram's buckets, from 1 ms to 30 s; ``+Inf`` after.
BUCKETS: Final = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
#: Label of each status class index (``status // 100``); 0: no status was sent.
STATUS_CLASSES: Final = ("none", "1xx", "2xx", "3xx", "4xx", "5xx", "6xx", "7xx", "8xx", "9xx")


class EndpointCounters:
    """One endpoint's numbers since the process started."""

    __slots__ = (
        "buckets",
        "duration_count",
        "duration_sum",
        "errors",
        "request_bytes",
        "requests",
        "response_bytes",
    )

    def __init__(self) -> None:
        #: Requests by status class index (see :data:`STATUS_CLASSES`).
        self.requests = [0] * len(STATUS_CLASSES)
        #: Failed requests by kind (``ferryman.proxy.errors.error_kind``: a small fixed set).
        self.errors: dict[str, int] = {}
        #: Durations per bucket, not cumulative: ``buckets[i]`` holds those in
        #: ``(BUCKETS[i-1], BUCKETS[i]]``, the last one those above 30 s.
        self.buckets = [0] * (len(BUCKETS) + 1)
        self.duration_sum = 0.0
        self.duration_count = 0
        self.request_bytes = 0
        self.response_bytes = 0


class TransactionCounters:
    """Endpoint name -> :class:`EndpointCounters`; :meth:`on_finished` is the listener."""

    __slots__ = ("endpoints",)

    def __init__(self) -> None:
        self.endpoints: dict[str, EndpointCounters] = {}

    def add(self, endpoint: str) -> EndpointCounters:
        """The endpoint's counters, new ones at zero if it had none."""
        counters = self.endpoints.get(endpoint)
        if counters is None:
            counters = self.endpoints[endpoint] = EndpointCounters()
        return counters

    def on_finished(self, transaction: Transaction) -> None:
        """The ``proxy.transaction.finished`` listener."""
        counters = self.endpoints.get(transaction.endpoint)
        if counters is None:
            counters = self.add(transaction.endpoint)
        status = transaction.status
        counters.requests[status // 100 if status < 1000 else 0] += 1
        end = transaction.t_end
        if end is not None:
            duration = end - transaction.t_start
            counters.buckets[bisect_left(BUCKETS, duration)] += 1
            counters.duration_sum += duration
            counters.duration_count += 1
        counters.request_bytes += transaction.request_body_size
        counters.response_bytes += transaction.response_body_size
        error = transaction.error
        if error is not None:
            kind = error_kind(error)
            counters.errors[kind] = counters.errors.get(kind, 0) + 1
