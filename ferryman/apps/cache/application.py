"""The ``cache`` application: a shared HTTP cache (RFC 9111) in front of every endpoint.

In the default ``applications``: every endpoint caches what HTTP lets a shared cache store
(nothing, for an API that says nothing about caching), unless ``cache.enabled`` or the
endpoint's own ``enabled`` says no. On bind it registers
:class:`~ferryman.proxy.relay_cache.RelayCaches` (one cache per endpoint, over one store:
:class:`~ferryman.client.cache.MemoryStore` or :class:`~ferryman.client.cache.RedisStore`),
which the proxy server hands to each endpoint's relay. Answers carry ``X-Cache`` (``HIT``,
``MISS``, ``STALE``, ``REVALIDATED``) and, from the cache, ``Age``; the status is on the
transaction (the access log's ``cache=``, the storage) and counted in the metrics.

The fast relay and the general path (an endpoint with ``request_options``, or while
``core.*``/``http_client.filter.*`` listeners exist) consult the same cache
(:mod:`ferryman.proxy.general_cache`): what one stores the other serves, and a hit on the
general path dispatches no ``http_client.filter.*`` event. Requests the relay serves with
proxy filter listeners or middleware consult it where the general path does, after the
request listeners and the ways in (:mod:`ferryman.proxy.relay_events_cache`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from ferryman.apps.cache.settings import CacheSettings
from ferryman.client.cache import CacheStore, MemoryStore, RedisStore
from ferryman.client.session import AsyncClient
from ferryman.http.caching import CachePolicy
from ferryman.http.request import Request
from ferryman.proxy.relay_cache import RelayCache, RelayCaches, Revalidator
from ferryman.proxy.settings import ProxySettings
from ferryman.system import Application, OnBindEvent, OnBoundEvent, OnShutdownEvent

__all__ = ["CacheApplication", "application"]


class CacheApplication(Application):
    """Builds each endpoint's cache; see the module documentation."""

    name: ClassVar[str] = "cache"
    settings_type = CacheSettings
    settings: CacheSettings

    @classmethod
    def check_settings(
        cls, settings: Mapping[str, Any], source: Callable[[str], str | None]
    ) -> list[str]:
        cache = settings.get("cache")
        proxy = settings.get("proxy")
        if not isinstance(cache, CacheSettings) or not isinstance(proxy, ProxySettings):
            return []
        known = {endpoint.name for endpoint in proxy.endpoints}
        problems = []
        for name in cache.endpoints:
            if name not in known:
                where = source(f"cache.endpoints.{name}")
                problems.append(
                    f"cache.endpoints.{name}: no endpoint is named {name!r} (the endpoints are "
                    f"{', '.join(sorted(known)) or 'none'})" + (f" (from {where})" if where else "")
                )
        return problems

    def on_bind(self, event: OnBindEvent) -> None:
        event.container.add(RelayCaches, RelayCaches())

    def on_bound(self, event: OnBoundEvent) -> None:
        provider = event.provider
        caches = provider.resolve(RelayCaches)
        proxy = event.settings.get("proxy")
        if not isinstance(proxy, ProxySettings):
            return
        settings = self.settings
        store: CacheStore
        if settings.backend == "redis":
            redis = settings.redis
            store = RedisStore(
                redis.url,
                prefix=redis.prefix,
                timeout=redis.timeout,
                retry_interval=redis.retry_interval,
            )
        else:
            store = MemoryStore(settings.max_size)
        caches.stores.append(store)
        revalidator = None
        if AsyncClient in provider:
            revalidator = _revalidator(provider.resolve(AsyncClient))
        for endpoint in proxy.endpoints:
            own = settings.for_endpoint(endpoint.name)
            if not own.enabled:
                continue
            assert own.methods is not None and own.max_object_size is not None
            policy = CachePolicy(
                shared=True,
                methods=frozenset(method.encode("ascii") for method in own.methods),
                ttl=own.ttl,
                heuristic=bool(own.heuristic),
                store_validated=bool(own.store_validated),
            )
            caches.caches[endpoint.name] = RelayCache(
                endpoint.name, store, policy, own.max_object_size, revalidator
            )

    async def on_shutdown(self, event: OnShutdownEvent) -> None:
        if RelayCaches in event.provider:
            await event.provider.resolve(RelayCaches).aclose()


def _revalidator(client: AsyncClient) -> Revalidator:
    """stale-while-revalidate's background GET, through the system's http client."""

    async def revalidate(
        url: str, headers: list[tuple[bytes, bytes]]
    ) -> tuple[int, list[tuple[bytes, bytes]]]:
        request = Request("GET", url, headers=headers)
        response = await client.send(request, stream=True, timeout=10)
        async with response:
            return response.status_code, response.headers.raw

    return revalidate


application = CacheApplication
