"""A read-only view of the fast relay's upstream connection pools, for the metrics and others.

The ``proxy`` application registers one :class:`UpstreamPools` service on bind; the
:class:`~ferryman.proxy.server.ProxyServer` fills it with each endpoint's pools as it builds the
relays. A reader asks :meth:`UpstreamPools.usage` when it wants the numbers (a Prometheus
scrape): the pools count their connections anyway, so nothing is added per request.

Only the fast relay's pools are here: requests on the general path (listeners of the filter
events, middleware) use the system's http client and its own pool.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

from ferryman.proxy.upstream import UpstreamPool

if TYPE_CHECKING:
    from ferryman.proxy.relay_resilience import EndpointResilience

__all__ = ["PoolUsage", "UpstreamPools"]


class PoolUsage(NamedTuple):
    """One upstream's connections, at the time of asking."""

    endpoint: str
    upstream: str  # the origin, scheme://host:port
    idle: int
    in_use: int
    connecting: int
    waiting: int  # requests queued for a free connection
    limit: int  # connections the pool may open (idle ones aside)


class UpstreamPools:
    """Endpoint name -> its upstream pools, as the server registered them."""

    __slots__ = ("_pools", "_resilience")

    def __init__(self) -> None:
        self._pools: dict[str, tuple[UpstreamPool, ...]] = {}
        self._resilience: dict[str, EndpointResilience] = {}

    def register(
        self,
        endpoint: str,
        pools: Sequence[UpstreamPool],
        resilience: EndpointResilience | None = None,
    ) -> None:
        """The pools an endpoint's relay uses (a later call for the same endpoint replaces),
        and its balancer, breakers and probes."""
        self._pools[endpoint] = tuple(pools)
        if resilience is not None:
            self._resilience[endpoint] = resilience

    def resilience(self) -> dict[str, EndpointResilience]:
        """Endpoint name -> its upstreams' balancer, breakers and retries (states, counts)."""
        return dict(self._resilience)

    def upstream_states(self) -> dict[str, list[dict[str, object]]]:
        """Endpoint name -> each upstream's role, weight, health, breaker state and counts
        (what the API's ``/system`` shows)."""
        return {name: r.balancer.states() for name, r in self._resilience.items()}

    def usage(self) -> list[PoolUsage]:
        """Every pool's counts now, in the order endpoints were registered."""
        return [
            PoolUsage(endpoint, pool.origin, *pool.usage(), pool.max_connections)
            for endpoint, pools in self._pools.items()
            for pool in pools
        ]

    def __repr__(self) -> str:
        return f"<UpstreamPools {list(self._pools)!r}>"
