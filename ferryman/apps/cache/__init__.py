"""The ``cache`` application: see :mod:`ferryman.apps.cache.application`."""

from ferryman.apps.cache.application import CacheApplication, application
from ferryman.apps.cache.settings import CacheSettings, EndpointCacheSettings, RedisSettings

__all__ = [
    "CacheApplication",
    "CacheSettings",
    "EndpointCacheSettings",
    "RedisSettings",
    "application",
]
