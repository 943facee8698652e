"""A store in Redis, shared by every worker and host that names the same server.

Redis is an optimisation here, never a dependency of the traffic: every call has a timeout
(``timeout``, 0.25 s by default, the connection pool's wait included), and a failed call
(refused, timed out, an error reply) makes the store answer "nothing stored" and drop writes,
for ``retry_interval`` seconds, without asking Redis again meanwhile. Each failure is
counted (``failures``, for the metrics) and reported in one log line per interval, with how
many went unreported since. Values that do not decode (another release's, a foreign key) are
misses too.

Keys are the caller's key hashed (SHA-256) under ``prefix``: a URL may be long or hold bytes
Redis tools show badly, and its hash has a fixed size. Each value expires when no rule can use
it any more (``CacheEntry.keep_until``), so Redis evicts what the cache would.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Final

from ferryman.client.cache.stores import MAX_VARIANTS, CacheStore
from ferryman.http.caching import CacheEntry, decode_entries, encode_entries

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["RedisStore"]

logger = logging.getLogger("ferryman.cache")

DEFAULT_URL: Final = "redis://127.0.0.1:6379/0"
#: Connections to Redis a store keeps; a call waits (within its timeout) for a free one.
DEFAULT_MAX_CONNECTIONS: Final = 32


class RedisStore(CacheStore):
    """See the module documentation. ``client`` replaces the connection built from ``url``."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        prefix: str = "ferryman:cache:",
        timeout: float = 0.25,
        retry_interval: float = 5.0,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        client: Redis | None = None,
    ) -> None:
        if timeout <= 0 or retry_interval <= 0:
            raise ValueError("timeout and retry_interval must be positive")
        self.url = url
        self.prefix = prefix
        self.timeout = timeout
        self.retry_interval = retry_interval
        self.max_connections = max_connections
        self._client = client
        #: Calls that failed (for the metrics), and those since the last log line.
        self.failures = 0
        self._unreported = 0
        self._down_until = 0.0
        self._logged_at = -1e18

    def _redis(self) -> Redis:
        client = self._client
        if client is None:
            from redis.asyncio import BlockingConnectionPool, Redis

            pool = BlockingConnectionPool.from_url(
                self.url,
                max_connections=self.max_connections,
                timeout=self.timeout,
                socket_timeout=self.timeout,
                socket_connect_timeout=self.timeout,
            )
            client = self._client = Redis(connection_pool=pool)
        return client

    @property
    def available(self) -> bool:
        """False while the store waits out a failure (``retry_interval``)."""
        return time.monotonic() >= self._down_until

    def _key(self, key: str) -> str:
        return self.prefix + hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()

    def _failed(self, action: str, error: BaseException) -> None:
        now = time.monotonic()
        self.failures += 1
        self._unreported += 1
        self._down_until = now + self.retry_interval
        if now - self._logged_at >= self.retry_interval:
            more = self._unreported - 1
            logger.warning(
                "cache: Redis at %s failed to %s (%s); caching through it is off for %ss%s",
                self.url,
                action,
                _describe(error),
                self.retry_interval,
                f" ({more} more failure(s) since the last report)" if more > 0 else "",
            )
            self._logged_at = now
            self._unreported = 0

    async def _call(self, action: str, operation: Callable[[Redis], Awaitable[Any]]) -> Any:
        if not self.available:
            return None
        try:
            async with asyncio.timeout(self.timeout):
                return await operation(self._redis())
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # every failure of the store degrades, none reaches traffic
            self._failed(action, exc)
            return None

    async def get(self, key: str) -> list[CacheEntry] | None:
        name = self._key(key)
        data = await self._call("read", lambda redis: redis.get(name))
        if not isinstance(data, bytes):
            return None
        return decode_entries(data)

    async def put(self, key: str, entries: Sequence[CacheEntry]) -> None:
        kept = list(entries[-MAX_VARIANTS:])
        if not kept:
            await self.delete(key)
            return
        expires_in = max(entry.keep_until() for entry in kept) - time.time()
        milliseconds = int(expires_in * 1000)
        if milliseconds <= 0:
            return
        name, value = self._key(key), encode_entries(kept)
        await self._call("write", lambda redis: redis.set(name, value, px=milliseconds))

    async def delete(self, key: str) -> None:
        name = self._key(key)
        await self._call("delete", lambda redis: redis.delete(name))

    async def aclose(self) -> None:
        client = self._client
        if client is not None:
            self._client = None
            try:
                async with asyncio.timeout(self.timeout):
                    await client.aclose()
            except Exception:  # (closing a dead connection has nothing to report)
                pass

    def __repr__(self) -> str:
        state = "up" if self.available else "down"
        return f"<RedisStore {self.url} {state} failures={self.failures}>"


def _describe(error: BaseException) -> str:
    if isinstance(error, TimeoutError):
        return "no answer in time"
    text = str(error) or type(error).__name__
    return text.splitlines()[0][:200]
