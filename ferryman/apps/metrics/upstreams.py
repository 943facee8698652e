"""The upstreams' health, breakers and retries as Prometheus families, built when scraped.

Read from the relays' balancers (:meth:`~ferryman.proxy.pools.UpstreamPools.resilience`) and,
when the ``resilience`` application shares breaker states, its :class:`SharedBreakers`:

* ``ferryman_upstream_breaker_state{endpoint,upstream,state}``: 1 for the breaker's state
  (``closed``, ``open``, ``half_open``), 0 for the others;
* ``ferryman_upstream_healthy{endpoint,upstream}``: what the health checks last said (1
  without checks);
* ``ferryman_upstream_retries_total{endpoint,upstream}``: tries sent to it after another
  failed;
* ``ferryman_upstream_state_changes_total{endpoint,upstream}``: breaker and health changes;
* ``ferryman_shared_state_errors_total``, ``ferryman_shared_state_connected``: Redis.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from ferryman.proxy.breaker import STATE_NAMES
from ferryman.proxy.pools import UpstreamPools

__all__ = ["shared_breakers_type", "shared_state_families", "upstream_families"]


def upstream_families(pools: UpstreamPools) -> Iterator[Metric]:
    breaker = GaugeMetricFamily(
        "ferryman_upstream_breaker_state",
        "The circuit breaker's state of each upstream (1: the state it is in).",
        labels=["endpoint", "upstream", "state"],
    )
    healthy = GaugeMetricFamily(
        "ferryman_upstream_healthy",
        "Whether the upstream's health checks pass (1; always 1 without checks).",
        labels=["endpoint", "upstream"],
    )
    retries = CounterMetricFamily(
        "ferryman_upstream_retries",
        "Requests sent to the upstream again after a try failed.",
        labels=["endpoint", "upstream"],
    )
    changes = CounterMetricFamily(
        "ferryman_upstream_state_changes",
        "Changes of the upstream's breaker or health state.",
        labels=["endpoint", "upstream"],
    )
    for endpoint, resilience in pools.resilience().items():
        for upstream in resilience.balancer.upstreams:
            labels = [endpoint, upstream.origin]
            if upstream.breaker is not None:
                for index, name in enumerate(STATE_NAMES):
                    breaker.add_metric([*labels, name], float(upstream.breaker.state == index))
            healthy.add_metric(labels, float(upstream.healthy))
            retries.add_metric(labels, upstream.retries)
            changes.add_metric(labels, upstream.transitions)
    yield from (breaker, healthy, retries, changes)


def shared_state_families(service: Any) -> Iterator[Metric]:
    """``service``: the resilience application's ``SharedBreakers`` (``None``: not running)."""
    if service is None:
        return
    yield CounterMetricFamily(
        "ferryman_shared_state_errors",
        "Exchanges with the Redis that shares breaker states that failed.",
        value=float(service.errors),
    )
    yield GaugeMetricFamily(
        "ferryman_shared_state_connected",
        "Whether the last exchange with the Redis that shares breaker states worked.",
        value=float(service.connected),
    )


def shared_breakers_type() -> Any:
    """The ``SharedBreakers`` class when the resilience application is loaded (importing it
    here would pull in redis for nothing)."""
    module = sys.modules.get("ferryman.apps.resilience")
    return getattr(module, "SharedBreakers", None)
