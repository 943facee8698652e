"""The ``ratelimit`` application: per endpoint rate limits, per upstream outbound budgets.

.. code-block:: yaml

    applications: [proxy, accesslog, metrics, ratelimit]
    ratelimit:
      redis: {url: "redis://127.0.0.1:6379/0"}   # optional: every worker and host shares
      endpoints:
        payments: {requests: 100, per: 60, burst: 20, key: "api_key:X-Api-Key"}
      upstreams:
        - {url: "https://api.payments.example", requests: 50, max_wait: 2}

A request over its endpoint's limit gets a 429 from the relay, with ``Retry-After`` and a JSON
body, and never reaches the upstream; one over its upstream's budget waits for its turn (up to
``max_wait``) or gets the same 429. Both show in the access log (``error="rate limit ..."``),
on stored transactions, and in the metrics (``ferryman_request_errors_total{kind=
"rate_limited"}``, and the families of :mod:`ferryman.apps.metrics.collector`). See
:mod:`~ferryman.apps.ratelimit.settings` for every setting, :mod:`.limiter` for how the relay
asks, :mod:`.shared` for Redis (which fails open).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from ferryman.apps.ratelimit.limiter import EndpointLimiter, LimitCounters, UpstreamBudget
from ferryman.apps.ratelimit.settings import BudgetSettings, RateLimitSettings
from ferryman.apps.ratelimit.shared import SharedBuckets
from ferryman.proxy.admission import RelayAdmissions
from ferryman.proxy.application import ProxyEndpoints
from ferryman.proxy.settings import ProxySettings
from ferryman.system import Application, OnBindEvent, OnBoundEvent, OnShutdownEvent
from ferryman.system.problems import with_source

__all__ = ["LimitCounters", "RateLimitApplication", "RateLimits", "application"]


class RateLimits:
    """The running limits: what the metrics read (``counters``, ``shared``)."""

    def __init__(self, counters: LimitCounters, shared: SharedBuckets | None) -> None:
        self.counters = counters
        self.shared = shared
        #: Upstream origin -> its budget.
        self.budgets: dict[str, UpstreamBudget] = {}


class RateLimitApplication(Application):
    """Builds the limiters and budgets, and hands them to the relays (``RelayAdmissions``)."""

    name: ClassVar[str] = "ratelimit"
    settings_type = RateLimitSettings
    settings: RateLimitSettings

    @classmethod
    def check_settings(
        cls, settings: Mapping[str, Any], source: Callable[[str], str | None]
    ) -> list[str]:
        """An endpoint limit must name a configured endpoint, a budget a configured upstream:
        a typo would otherwise limit nothing, silently."""
        own = settings.get(cls.name)
        proxy = settings.get("proxy")
        if not isinstance(own, RateLimitSettings) or not isinstance(proxy, ProxySettings):
            return []
        problems = []
        names = [endpoint.name for endpoint in proxy.endpoints]
        for name in own.endpoints:
            if name not in names:
                problems.append(
                    with_source(
                        f"ratelimit.endpoints.{name}: no endpoint is named {name!r} (the "
                        f"endpoints are {', '.join(map(repr, names)) or 'none'})",
                        source(f"ratelimit.endpoints.{name}"),
                    )
                )
        origins = {_origin(url) for endpoint in proxy.endpoints for url in endpoint.url}
        for index, budget in enumerate(own.upstreams):
            if budget.origin not in origins:
                problems.append(
                    with_source(
                        f"ratelimit.upstreams.{index}.url: no endpoint relays to "
                        f"{budget.origin} (the upstreams are "
                        f"{', '.join(sorted(origins)) or 'none'})",
                        source(f"ratelimit.upstreams.{index}.url"),
                    )
                )
        return problems

    def on_bind(self, event: OnBindEvent) -> None:
        settings = self.settings
        shared = None if settings.redis is None else SharedBuckets(settings.redis)
        limits = self.limits = RateLimits(LimitCounters(), shared)
        admissions = RelayAdmissions()
        for budget_settings in settings.upstreams:
            budget = UpstreamBudget(budget_settings, limits.counters, shared)
            limits.budgets[budget.origin] = admissions.budgets[budget.origin] = budget
        event.container.add(RateLimits, limits)
        event.container.add(RelayAdmissions, admissions)

    async def on_bound(self, event: OnBoundEvent) -> None:
        provider = event.provider
        shared = provider.resolve(RateLimits).shared
        if shared is not None:
            await shared.connect()
        if ProxyEndpoints not in provider:
            return
        limits = provider.resolve(RateLimits)
        admissions = provider.resolve(RelayAdmissions)
        for endpoint in provider.resolve(ProxyEndpoints).settings.endpoints:
            general = next(
                (limits.budgets[o] for o in map(_origin, endpoint.url) if o in limits.budgets),
                None,
            )
            limit = self.settings.endpoints.get(endpoint.name)
            if limit is not None or general is not None:
                admissions.endpoints[endpoint.name] = EndpointLimiter(
                    endpoint.name, limit, limits.counters, limits.shared, general
                )

    async def on_shutdown(self, event: OnShutdownEvent) -> None:
        if RateLimits in event.provider:
            shared = event.provider.resolve(RateLimits).shared
            if shared is not None:
                await shared.aclose()


def _origin(url: str) -> str:
    return BudgetSettings(url=url, requests=1).origin


application = RateLimitApplication
