"""The ``resilience`` application: circuit breaker states shared by every worker and host.

The breakers, health checks, balancing and retries themselves are the proxy's, per endpoint
and on by default (``breaker``, ``health_check``, ``balance``, ``retry`` in an endpoint's
settings: :mod:`ferryman.proxy.settings_resilience`). This application, added to
``applications``, makes the breakers' states common to every process that names the same
Redis (:mod:`ferryman.apps.resilience.shared`):

.. code-block:: yaml

    applications: [proxy, accesslog, metrics, storage, dashboard, resilience]
    resilience:
      redis: redis://127.0.0.1:6379/0   # null: each process keeps its own states
      key_prefix: "ferryman:breaker:"
      sync_interval: 1                  # seconds between reads of the others' states
      timeout: 1                        # seconds for each exchange with Redis

Without ``redis`` it does nothing. The :class:`SharedBreakers` service says how the sharing
goes (the metrics application reads it).
"""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import Field, field_validator

from ferryman.apps.resilience.shared import SharedBreakers
from ferryman.events import EventDispatcher
from ferryman.proxy.balancer import EVENT_UPSTREAM_STATE
from ferryman.proxy.pools import UpstreamPools
from ferryman.system import Application, OnBindEvent, OnBoundEvent, OnShutdownEvent, Settings

__all__ = ["ResilienceApplication", "ResilienceSettings", "SharedBreakers", "application"]


class ResilienceSettings(Settings):
    """Validated ``resilience`` settings."""

    redis: str | None = None
    key_prefix: Annotated[str, Field(min_length=1)] = "ferryman:breaker:"
    sync_interval: Annotated[float, Field(gt=0, le=60)] = 1.0
    timeout: Annotated[float, Field(gt=0, le=30)] = 1.0

    @field_validator("redis")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return value


class ResilienceApplication(Application):
    """Shares the breakers' states through Redis when ``resilience.redis`` is set."""

    name: ClassVar[str] = "resilience"
    settings_type = ResilienceSettings
    settings: ResilienceSettings

    def on_bind(self, event: OnBindEvent) -> None:
        url = self.settings.redis
        if url is None:
            return
        settings = self.settings

        def shared(pools: UpstreamPools) -> SharedBreakers:
            return SharedBreakers(
                pools,
                url,
                key_prefix=settings.key_prefix,
                sync_interval=settings.sync_interval,
                timeout=settings.timeout,
            )

        event.container.add(SharedBreakers, shared)

    async def on_bound(self, event: OnBoundEvent) -> None:
        if SharedBreakers not in event.provider:
            return
        shared = event.provider.resolve(SharedBreakers)
        event.provider.resolve(EventDispatcher).add_listener(EVENT_UPSTREAM_STATE, shared.on_state)
        shared.start()

    async def on_shutdown(self, event: OnShutdownEvent) -> None:
        if SharedBreakers in event.provider:
            await event.provider.resolve(SharedBreakers).aclose()


application = ResilienceApplication
