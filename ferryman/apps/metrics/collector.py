"""The Prometheus families, built at scrape time from numbers the process keeps anyway.

:class:`ProxyCollector` is a ``prometheus_client`` custom collector: ``collect()`` reads the
per-endpoint counters (:mod:`ferryman.apps.metrics.counters`), the relays' upstream pools
(:class:`~ferryman.proxy.pools.UpstreamPools`), and, when those applications run, the storage
queue and the access log's dropped lines, and turns them into families. Nothing here runs per
request.

Series (``endpoint`` is a configured endpoint's name, so their number is bounded by the
configuration; ``status_class`` is ``1xx``..``5xx``, or ``none`` when no status was sent;
``kind`` one of a fixed set of failure kinds):

* ``ferryman_requests_total{endpoint,status_class}``
* ``ferryman_request_errors_total{endpoint,kind}``: requests that did not end normally
  (``refused``, ``dns_failure``, ``tls_failure``, ``timeout``, ``truncated_answer``,
  ``client_closed``...);
* ``ferryman_request_duration_seconds{endpoint}``: histogram, 1 ms to 30 s;
* ``ferryman_request_body_bytes_total{endpoint}``, ``ferryman_response_body_bytes_total{endpoint}``;
* ``ferryman_upstream_connections{endpoint,upstream,state}`` (``idle``, ``in_use``,
  ``connecting``), ``ferryman_upstream_waiting_requests{endpoint,upstream}``,
  ``ferryman_upstream_connections_limit{endpoint,upstream}``: the fast relay's pools;
* ``ferryman_storage_queue_depth``, ``ferryman_storage_dropped_total``: with ``storage``;
* ``ferryman_access_log_dropped_lines_total``: with the access log on;
* ``ferryman_rate_limited_total{endpoint}``, ``ferryman_upstream_budget_waited_total{upstream}``,
  ``ferryman_upstream_budget_refused_total{upstream}``, ``ferryman_upstream_budget_waiting
  {upstream}``, and with Redis ``ferryman_rate_limit_fail_open_total`` and
  ``ferryman_rate_limit_redis_failures_total``: with the ``ratelimit`` application.
* ``ferryman_cache_requests_total{endpoint,status}`` (``hit``, ``miss``, ``stale``,
  ``revalidated``, ``bypass``: not for the cache), ``ferryman_cache_stored_total{endpoint}``,
  ``ferryman_cache_store_failures_total`` (calls to Redis that failed: caching is off a while
  after each): with the cache application.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from ferryman.apps.metrics.counters import BUCKETS, STATUS_CLASSES, TransactionCounters
from ferryman.apps.metrics.upstreams import (
    shared_breakers_type,
    shared_state_families,
    upstream_families,
)
from ferryman.proxy.pools import UpstreamPools
from ferryman.proxy.relay_cache import RelayCaches
from ferryman.system.container import Container

__all__ = ["ProxyCollector"]

#: The status classes every endpoint reports, at zero if need be (others only once seen).
ALWAYS: frozenset[int] = frozenset({1, 2, 3, 4, 5})
_BOUNDS = [floatToGoString(bound) for bound in BUCKETS]  # type: ignore[no-untyped-call]


def _label(kind: str) -> str:
    return kind.replace(" ", "_").lower()


class ProxyCollector(Collector):
    """Families from ``counters`` and the services in ``provider`` (see the module)."""

    def __init__(self, counters: TransactionCounters, provider: Container | None = None) -> None:
        self.counters = counters
        self.provider = provider

    def collect(self) -> Iterator[Metric]:
        yield from self._requests()
        yield from self._pools()
        pools = self._service(UpstreamPools)
        if pools is not None:
            yield from upstream_families(pools)
        yield from shared_state_families(self._service(shared_breakers_type()))
        yield from self._storage()
        yield from self._access_log()
        yield from self._rate_limits()
        yield from self._cache()

    def _requests(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "ferryman_requests",
            "Requests answered (or ended) per endpoint and status class.",
            labels=["endpoint", "status_class"],
        )
        errors = CounterMetricFamily(
            "ferryman_request_errors",
            "Requests that did not end normally, per endpoint and kind of failure.",
            labels=["endpoint", "kind"],
        )
        durations = HistogramMetricFamily(
            "ferryman_request_duration_seconds",
            "Time from the request head to the end of the answer.",
            labels=["endpoint"],
            unit="seconds",
        )
        request_bytes = CounterMetricFamily(
            "ferryman_request_body_bytes",
            "Request body bytes received from clients.",
            labels=["endpoint"],
        )
        response_bytes = CounterMetricFamily(
            "ferryman_response_body_bytes",
            "Response body bytes sent to clients.",
            labels=["endpoint"],
        )
        for endpoint, counters in list(self.counters.endpoints.items()):
            for index, count in enumerate(counters.requests):
                if count or index in ALWAYS:
                    requests.add_metric([endpoint, STATUS_CLASSES[index]], count)
            for kind, count in sorted(counters.errors.items()):
                errors.add_metric([endpoint, _label(kind)], count)
            cumulative, buckets = 0, []
            for bound, count in zip(_BOUNDS, counters.buckets, strict=False):
                cumulative += count
                buckets.append((bound, float(cumulative)))
            buckets.append(("+Inf", float(counters.duration_count)))
            durations.add_metric([endpoint], buckets, counters.duration_sum)
            request_bytes.add_metric([endpoint], counters.request_bytes)
            response_bytes.add_metric([endpoint], counters.response_bytes)
        yield from (requests, errors, durations, request_bytes, response_bytes)

    def _service(self, key: Any) -> Any:
        provider = self.provider
        if provider is None or key is None or key not in provider:
            return None
        return provider.resolve(key)

    def _pools(self) -> Iterator[Metric]:
        pools = self._service(UpstreamPools)
        if pools is None:
            return
        connections = GaugeMetricFamily(
            "ferryman_upstream_connections",
            "The relay's connections to each upstream: idle (kept alive, free), in_use, "
            "connecting.",
            labels=["endpoint", "upstream", "state"],
        )
        waiting = GaugeMetricFamily(
            "ferryman_upstream_waiting_requests",
            "Requests waiting for a free connection to the upstream (its pool is full).",
            labels=["endpoint", "upstream"],
        )
        limit = GaugeMetricFamily(
            "ferryman_upstream_connections_limit",
            "Connections the relay may open to the upstream.",
            labels=["endpoint", "upstream"],
        )
        for usage in pools.usage():
            labels = [usage.endpoint, usage.upstream]
            connections.add_metric([*labels, "idle"], usage.idle)
            connections.add_metric([*labels, "in_use"], usage.in_use)
            connections.add_metric([*labels, "connecting"], usage.connecting)
            waiting.add_metric(labels, usage.waiting)
            limit.add_metric(labels, usage.limit)
        yield from (connections, waiting, limit)

    def _storage(self) -> Iterator[Metric]:
        # Read only when the storage application runs: its module is then already imported
        # (importing it here would pull in SQLAlchemy for nothing).
        module = sys.modules.get("ferryman.apps.storage")
        storage = self._service(getattr(module, "Storage", None))
        if storage is None:
            return
        yield GaugeMetricFamily(
            "ferryman_storage_queue_depth",
            "Transactions waiting to be written to the storage.",
            value=float(storage.queue_depth),
        )
        yield CounterMetricFamily(
            "ferryman_storage_dropped",
            "Transactions not recorded (the queue was full, or the database failed).",
            value=float(storage.dropped),
        )

    def _access_log(self) -> Iterator[Metric]:
        module = sys.modules.get("ferryman.apps.accesslog")
        access_log = self._service(getattr(module, "AccessLog", None))
        if access_log is None:
            return
        yield CounterMetricFamily(
            "ferryman_access_log_dropped_lines",
            "Access log lines lost (the writer fell behind, or writes failed).",
            value=float(access_log.dropped),
        )

    def _rate_limits(self) -> Iterator[Metric]:
        module = sys.modules.get("ferryman.apps.ratelimit")
        limits = self._service(getattr(module, "RateLimits", None))
        if limits is None:
            return
        counters = limits.counters
        limited = CounterMetricFamily(
            "ferryman_rate_limited",
            "Requests refused (429) by their endpoint's rate limit.",
            labels=["endpoint"],
        )
        for endpoint, count in sorted(counters.limited.items()):
            limited.add_metric([endpoint], count)
        waited = CounterMetricFamily(
            "ferryman_upstream_budget_waited",
            "Requests that waited for their turn under the upstream's outbound budget.",
            labels=["upstream"],
        )
        refused = CounterMetricFamily(
            "ferryman_upstream_budget_refused",
            "Requests refused (429) by the upstream's outbound budget.",
            labels=["upstream"],
        )
        waiting = GaugeMetricFamily(
            "ferryman_upstream_budget_waiting",
            "Requests waiting for their turn under the upstream's outbound budget now.",
            labels=["upstream"],
        )
        for origin, budget in sorted(limits.budgets.items()):
            waited.add_metric([origin], counters.budget_waited.get(origin, 0))
            refused.add_metric([origin], counters.budget_refused.get(origin, 0))
            waiting.add_metric([origin], budget.waiting)
        yield from (limited, waited, refused, waiting)
        shared = limits.shared
        if shared is not None:
            yield CounterMetricFamily(
                "ferryman_rate_limit_fail_open",
                "Requests let through unlimited because Redis could not decide in time.",
                value=float(shared.fail_open),
            )
            yield CounterMetricFamily(
                "ferryman_rate_limit_redis_failures",
                "Round trips to Redis that failed or timed out.",
                value=float(shared.failures),
            )

    def _cache(self) -> Iterator[Metric]:
        caches = self._service(RelayCaches)
        if caches is None:
            return
        requests = CounterMetricFamily(
            "ferryman_cache_requests",
            "Requests per endpoint by what the HTTP cache did: hit, miss, stale (served "
            "stale), revalidated (the origin's 304), bypass (not for the cache).",
            labels=["endpoint", "status"],
        )
        stored = CounterMetricFamily(
            "ferryman_cache_stored",
            "Answers stored (or updated) in the cache, per endpoint.",
            labels=["endpoint"],
        )
        for name, cache in caches.caches.items():
            counts = cache.counts
            for status in ("hit", "miss", "stale", "revalidated", "bypass"):
                requests.add_metric([name, status], getattr(counts, status))
            stored.add_metric([name], counts.stored)
        failures = sum(getattr(store, "failures", 0) for store in caches.stores)
        yield from (requests, stored)
        yield CounterMetricFamily(
            "ferryman_cache_store_failures",
            "Calls to the cache's store (Redis) that failed; each turns the store off for its "
            "retry interval, during which requests go uncached.",
            value=float(failures),
        )
