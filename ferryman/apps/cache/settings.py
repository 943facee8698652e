"""The ``cache`` settings: where stored answers live, and what each endpoint caches.

.. code-block:: yaml

    cache:
      backend: memory               # or redis: one store for every worker and host
      max_size: 67108864            # memory: bytes of bodies and heads held (LRU beyond)
      redis:
        url: redis://127.0.0.1:6379/0
        timeout: 0.25               # seconds for each Redis call; past it, a miss
        retry_interval: 5           # seconds without Redis after a failure
        prefix: "ferryman:cache:"
      enabled: true                 # every endpoint's default ...
      ttl: null                     # seconds replacing the origin's freshness (null: the origin's)
      methods: [GET, HEAD]
      max_object_size: 8388608      # bodies larger stream through unstored
      heuristic: false              # RFC 9111 heuristic freshness (10% of Last-Modified's age)
      store_validated: false        # store answers with only an ETag/Last-Modified (each use asks)
      endpoints:                    # ... and each endpoint's own, field by field
        payments: {enabled: false}
        maps: {ttl: 60}
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from ferryman.system import Settings

__all__ = ["CacheSettings", "EndpointCacheSettings", "RedisSettings"]

Size = Annotated[int, Field(gt=0)]
Seconds = Annotated[float, Field(gt=0)]


class RedisSettings(Settings):
    url: str = "redis://127.0.0.1:6379/0"
    timeout: Seconds = 0.25
    retry_interval: Seconds = 5.0
    prefix: str = "ferryman:cache:"

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return value


def _methods(value: list[str]) -> list[str]:
    methods = [method.upper() for method in value]
    other = sorted(set(methods) - {"GET", "HEAD"})
    if other:
        raise ValueError(f"a cache answers GET and HEAD only (got {', '.join(other)})")
    return methods


class EndpointCacheSettings(Settings):
    """One endpoint's overrides: each field left out takes the ``cache`` block's."""

    enabled: bool | None = None
    ttl: Seconds | None = None
    methods: list[str] | None = None
    max_object_size: Size | None = None
    heuristic: bool | None = None
    store_validated: bool | None = None

    @field_validator("methods")
    @classmethod
    def _methods(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else _methods(value)


class CacheSettings(Settings):
    """Validated ``cache`` settings (see the module documentation)."""

    backend: Literal["memory", "redis"] = "memory"
    max_size: Size = 64 * 1024 * 1024
    redis: RedisSettings = RedisSettings()
    enabled: bool = True
    ttl: Seconds | None = None
    methods: list[str] = ["GET", "HEAD"]
    max_object_size: Size = 8 * 1024 * 1024
    heuristic: bool = False
    store_validated: bool = False
    endpoints: dict[str, EndpointCacheSettings] = {}

    @field_validator("methods")
    @classmethod
    def _methods(cls, value: list[str]) -> list[str]:
        return _methods(value)

    def for_endpoint(self, name: str) -> EndpointCacheSettings:
        """An endpoint's effective settings: its own fields, else the block's."""
        own = self.endpoints.get(name, EndpointCacheSettings())
        return EndpointCacheSettings(
            enabled=self.enabled if own.enabled is None else own.enabled,
            ttl=self.ttl if own.ttl is None else own.ttl,
            methods=self.methods if own.methods is None else own.methods,
            max_object_size=(
                self.max_object_size if own.max_object_size is None else own.max_object_size
            ),
            heuristic=self.heuristic if own.heuristic is None else own.heuristic,
            store_validated=(
                self.store_validated if own.store_validated is None else own.store_validated
            ),
        )
