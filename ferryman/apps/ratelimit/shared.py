"""Buckets in Redis, shared by every worker and host: one atomic Lua script per decision.

The script is :func:`~ferryman.apps.ratelimit.buckets.gcra` in Lua, on Redis's own clock
(``TIME``), so hosts whose clocks differ still share one rate. Each decision is one ``EVALSHA``
(atomic: two workers cannot both take the last token), and the decisions waiting at a moment go
in one pipeline, one round trip: a single long-lived task sends them, so no task or coroutine
is created per request, and the relay hears back through a callback.

Redis is a help, never a failure: every round trip has a timeout, and when Redis is down,
slow or full of waiting decisions, requests *fail open* (they go on, unlimited): each one is
counted (``fail_open``), one log line per interval says why, and Redis is left alone for
``retry_interval`` seconds before it is tried again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from ferryman.apps.ratelimit.buckets import Decision
from ferryman.proxy.logs import RateLimitedLog

if TYPE_CHECKING:
    from ferryman.apps.ratelimit.settings import RedisSettings

__all__ = ["GCRA_SCRIPT", "SharedBuckets"]

logger = logging.getLogger("ferryman.ratelimit")
#: One line per interval and kind of trouble with Redis.
redis_log: Final = RateLimitedLog(logger)

#: Decisions sent in one pipeline at most.
MAX_BATCH: Final = 512

#: KEYS[1]: the bucket. ARGV: interval and max_wait in microseconds, burst. Returns
#: ``{allowed (1/0), wait in microseconds}``; the key expires when its bucket is full again.
GCRA_SCRIPT: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local max_wait = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local new_tat = tat + interval
local wait = new_tat - burst * interval - now
if wait > max_wait then
  return {0, wait}
end
local ttl = math.ceil((new_tat - now) / 1000) + 1
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', ttl)
if wait < 0 then wait = 0 end
return {1, wait}
"""

Callback = Callable[[Decision | None], None]


class SharedBuckets:
    """Decisions made by Redis in batches; ``None`` to a callback means "failed open"."""

    def __init__(self, settings: RedisSettings) -> None:
        self.settings = settings
        self.prefix = settings.prefix
        import redis.asyncio  # (here: only an install that configures Redis imports it)

        timeout = settings.timeout
        self._client: Any = redis.asyncio.Redis.from_url(
            settings.url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            max_connections=4,
        )
        self._sha: str | None = None
        self._pending: list[tuple[str, int, int, int, Callback]] = []
        self._wakeup: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._down_until = 0.0
        self._closed = False
        #: Requests let through because Redis could not decide (down, slow, overloaded).
        self.fail_open = 0
        #: Round trips that failed.
        self.failures = 0

    def submit(
        self, key: str, interval: float, burst: int, max_wait: float, callback: Callback
    ) -> bool:
        """Ask Redis; ``callback`` gets the decision later. False (and no callback): Redis
        cannot be asked now, the caller fails open."""
        if self._closed:
            return False
        loop = asyncio.get_running_loop()
        if self._down_until > loop.time():
            self.fail_open += 1
            return False
        if len(self._pending) >= self.settings.max_pending:
            self.fail_open += 1
            redis_log.report(
                "redis behind",
                self.settings.url,
                f"{self.settings.max_pending} rate limit decisions wait for Redis at "
                f"{self.settings.url}: requests go on unlimited meanwhile",
            )
            return False
        self._pending.append(
            (
                self.prefix + key,
                round(interval * 1_000_000),
                round(max_wait * 1_000_000),
                burst,
                callback,
            )
        )
        if self._task is None:
            self._task = loop.create_task(self._run(), name="ferryman-ratelimit-redis")
        wakeup = self._wakeup
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)
        return True

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._closed:
            if not self._pending:
                self._wakeup = loop.create_future()
                await self._wakeup
                self._wakeup = None
                continue
            batch = self._pending[:MAX_BATCH]
            del self._pending[:MAX_BATCH]
            try:
                async with asyncio.timeout(self.settings.timeout):
                    results = await self._decide(batch)
            except asyncio.CancelledError:
                for *_, callback in batch:  # (shutting down: these requests go on)
                    _call(callback, None)
                raise
            except Exception as exc:  # redis errors, OSError, TimeoutError: Redis cannot help
                self._failed(exc, batch, loop.time())
                continue
            for (*_, callback), result in zip(batch, results, strict=True):
                if isinstance(result, Exception):
                    if "NOSCRIPT" in str(result):
                        self._sha = None  # (Redis restarted and forgot it)
                    self.fail_open += 1
                    _call(callback, None)
                else:
                    _call(callback, Decision(bool(result[0]), int(result[1]) / 1_000_000))

    async def connect(self) -> bool:
        """Connect and load the script now (at start-up), so that the first requests do not
        pay for it; False (logged, Redis left alone for a while) if Redis cannot be reached."""
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(max(self.settings.timeout, 2.0)):
                self._sha = await self._client.script_load(GCRA_SCRIPT)
        except Exception as exc:
            self._failed(exc, [], loop.time())
            return False
        return True

    async def _decide(self, batch: list[tuple[str, int, int, int, Callback]]) -> list[Any]:
        client = self._client
        if self._sha is None:
            self._sha = await client.script_load(GCRA_SCRIPT)
        pipe = client.pipeline(transaction=False)
        for key, interval, max_wait, burst, _ in batch:
            pipe.evalsha(self._sha, 1, key, interval, max_wait, burst)
        results: list[Any] = await pipe.execute(raise_on_error=False)
        return results

    def _failed(
        self, exc: Exception, batch: list[tuple[str, int, int, int, Callback]], now: float
    ) -> None:
        self.failures += 1
        self.fail_open += len(batch)
        self._down_until = now + self.settings.retry_interval
        reason = "timed out" if isinstance(exc, TimeoutError) else f"{type(exc).__name__}: {exc}"
        redis_log.report(
            "redis unavailable",
            self.settings.url,
            f"Redis at {self.settings.url} cannot decide rate limits ({reason}): requests go "
            f"on unlimited; trying again in {self.settings.retry_interval:g} s",
        )
        for *_, callback in batch:
            _call(callback, None)

    async def aclose(self) -> None:
        self._closed = True
        task = self._task
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        pending, self._pending = self._pending, []
        for *_, callback in pending:
            _call(callback, None)
        await self._client.aclose()


def _call(callback: Callback, decision: Decision | None) -> None:
    """Hand a decision over; a callback's failure is logged, and the others still run."""
    try:
        callback(decision)
    except Exception:
        logger.exception("a rate limit decision's callback failed")
