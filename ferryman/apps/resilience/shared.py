"""Circuit breaker states shared through Redis, by every worker and host of one deployment.

Each process keeps its own breakers (:mod:`ferryman.proxy.breaker`), fed by its own traffic;
this adds what the others decided. A breaker that changes state here is written to Redis as
``<key_prefix><endpoint>|<upstream origin>`` = ``<state> <wall-clock time of the change>``
(an ``open`` one expiring when it would half-open, a ``closed`` one after ``state_ttl``).
Every ``sync_interval`` seconds one task reads those keys for every breaker of the process and
takes a state written by another process after the last one it knew of (last writer wins), so
a breaker opened by one worker is open in all within about ``sync_interval``, and closed in all
once one worker's probe succeeded. No request waits for Redis: writes are queued by the
transition's listener (at most ``MAX_QUEUED``, the rest dropped and counted) and sent by the
same task.

A dead or unreachable Redis leaves every process with its local breakers: each failed
exchange with it is counted (``errors``, ``ferryman_shared_state_errors_total``) and logged at
most once per ``LOG_INTERVAL``; the task tries again at its next interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import deque
from typing import Any, Final

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ferryman.proxy.balancer import UpstreamStateEvent
from ferryman.proxy.breaker import CLOSED, OPEN, STATE_NAMES, CircuitBreaker
from ferryman.proxy.logs import RateLimitedLog
from ferryman.proxy.pools import UpstreamPools

__all__ = ["SharedBreakers"]

logger = logging.getLogger("ferryman.resilience")

#: Changes waiting to be written; beyond, the oldest are dropped (and counted).
MAX_QUEUED: Final = 1024
_STATES: Final = {name: index for index, name in enumerate(STATE_NAMES)}


class SharedBreakers:
    """The task that writes this process's breaker changes and reads the others'."""

    def __init__(
        self,
        pools: UpstreamPools,
        url: str,
        *,
        key_prefix: str = "ferryman:breaker:",
        sync_interval: float = 1.0,
        timeout: float = 1.0,
        state_ttl: float = 300.0,
    ) -> None:
        self.pools = pools
        self.url = url
        self.key_prefix = key_prefix
        self.sync_interval = sync_interval
        self.timeout = timeout
        self.state_ttl = state_ttl
        #: Failed exchanges with Redis, changes dropped, and remote states taken.
        self.errors = 0
        self.dropped = 0
        self.applied = 0
        #: Whether the last exchange with Redis worked.
        self.connected = False
        self._queue: deque[tuple[str, str, float]] = deque()
        #: Key -> the wall-clock time of the last change known for it (ours or theirs).
        self._known: dict[str, float] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._log = RateLimitedLog(logger)
        self._redis: aioredis.Redis = aioredis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            health_check_interval=30,
        )

    # -- this process's changes ---------------------------------------------------------------

    def on_state(self, event: UpstreamStateEvent) -> None:
        """A listener of ``proxy.upstream.state``: queue this process's breaker changes."""
        if event.what != "breaker" or event.remote or event.state == "half_open":
            return  # (half-open is each process's own probing)
        key = self._key(event.endpoint, event.upstream)
        now = time.time()
        self._known[key] = now
        breaker = self._breaker(event.endpoint, event.upstream)
        ttl = self.state_ttl
        if event.state == "open" and breaker is not None:
            ttl = max(0.001, breaker.remaining_open())
        if len(self._queue) >= MAX_QUEUED:
            self._queue.popleft()
            self.dropped += 1
        self._queue.append((key, f"{event.state} {now:.6f} {os.getpid()}", ttl))
        self._wake.set()

    # -- the task -----------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="shared breakers")

    async def _run(self) -> None:
        while True:
            try:
                await self._write()
                await self._read()
                if not self.connected:
                    logger.info("shared breaker state: Redis at %s is reachable", self._where())
                self.connected = True
            except (RedisError, OSError) as exc:
                self.errors += 1
                self.connected = False
                self._log.report(
                    "shared state",
                    "redis",
                    f"Redis at {self._where()} failed ({type(exc).__name__}: {exc}): each "
                    "worker keeps its own breaker states until it answers again",
                )
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.sync_interval)

    async def _write(self) -> None:
        while self._queue:
            key, value, ttl = self._queue[0]
            await self._redis.set(key, value, px=max(1, int(ttl * 1000)))
            self._queue.popleft()

    async def _read(self) -> None:
        breakers = self._breakers()
        if not breakers:
            await self._redis.ping()  # (so that "reachable" is said only when it is)
            return
        keys = list(breakers)
        values = await self._redis.mget(keys)
        for key, raw in zip(keys, values, strict=True):
            if raw is None:
                continue
            try:
                text = raw if isinstance(raw, str) else raw.decode("ascii")
                state_name, stamp, pid = text.split(" ")
                state, when = _STATES[state_name], float(stamp)
            except (ValueError, KeyError, UnicodeDecodeError):
                continue  # (not ours: left alone)
            if when <= self._known.get(key, 0.0):
                continue
            self._known[key] = when
            breaker = breakers[key]
            if breaker.state == state:
                continue
            remaining = None
            if state == OPEN:
                remaining = (await self._redis.pttl(key)) / 1000
                if remaining <= 0:
                    continue
            elif state != CLOSED:
                continue
            self.applied += 1
            breaker.force(state, f"process {pid} found it {state_name}", remaining)

    # -- helpers ------------------------------------------------------------------------------

    def _key(self, endpoint: str, origin: str) -> str:
        return f"{self.key_prefix}{endpoint}|{origin}"

    def _breakers(self) -> dict[str, CircuitBreaker]:
        found: dict[str, CircuitBreaker] = {}
        for endpoint, resilience in self.pools.resilience().items():
            for upstream in resilience.balancer.upstreams:
                if upstream.breaker is not None:
                    found[self._key(endpoint, upstream.origin)] = upstream.breaker
        return found

    def _breaker(self, endpoint: str, origin: str) -> CircuitBreaker | None:
        return self._breakers().get(self._key(endpoint, origin))

    def _where(self) -> str:
        kwargs: dict[str, Any] = self._redis.connection_pool.connection_kwargs
        return f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}"

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            # (what this process decided last, if Redis answers soon)
            await asyncio.wait_for(self._write(), self.timeout)
        await self._redis.aclose()
