"""The client's HTTP cache (RFC 9111): the layer a client sends through, and the stores.

``AsyncClient(cache=True)`` caches privately in memory; ``AsyncClient(cache=HttpCache(
RedisStore("redis://127.0.0.1:6379/0"), shared=True))`` shares one cache among processes. The
rules are :mod:`ferryman.http.caching`'s; see :mod:`.layer` for what the layer does and
:mod:`.redis_store` for how a store that fails stays out of the way.
"""

from ferryman.client.cache.layer import DEFAULT_MAX_OBJECT_SIZE, CachingTransport, HttpCache
from ferryman.client.cache.redis_store import RedisStore
from ferryman.client.cache.stores import DEFAULT_MAX_BYTES, CacheStore, MemoryStore

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_OBJECT_SIZE",
    "CacheStore",
    "CachingTransport",
    "HttpCache",
    "MemoryStore",
    "RedisStore",
]
