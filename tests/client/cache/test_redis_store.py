"""The Redis store: shared by separate clients (processes alike), bounded by timeouts, and a
dead or silent Redis degrading to no caching (a counter, one log line), never to an error."""

from __future__ import annotations

import logging
import time

import pytest

import ferryman
from ferryman.client.cache import HttpCache, RedisStore
from tests.servers.cache_origin import CacheOrigin, Reply
from tests.servers.silent import SilentServer

MAX_AGE = [("Cache-Control", "max-age=60")]


async def test_two_clients_share_one_redis(
    origin: CacheOrigin, path: str, redis_store: RedisStore
) -> None:
    origin.script(path, Reply(headers=MAX_AGE, body=b"shared"))
    other = RedisStore(redis_store.url, prefix=redis_store.prefix)
    try:
        async with ferryman.AsyncClient(trust_env=False, cache=HttpCache(redis_store)) as a:
            await a.get(origin.url + path)
        async with ferryman.AsyncClient(trust_env=False, cache=HttpCache(other)) as b:
            response = await b.get(origin.url + path)
    finally:
        await other.aclose()
    assert origin.hits(path) == 1
    assert response.extensions["cache_status"] == "HIT" and response.content == b"shared"


async def test_values_expire_when_no_rule_can_use_them(
    origin: CacheOrigin, path: str, redis_store: RedisStore
) -> None:
    origin.script(path, Reply(headers=[("Cache-Control", "max-age=30, stale-if-error=10")]))
    async with ferryman.AsyncClient(trust_env=False, cache=HttpCache(redis_store)) as c:
        await c.get(origin.url + path)
    ttl = await redis_store._redis().pttl(
        redis_store._key(HttpCache.key(ferryman.URL(origin.url + path)))
    )
    assert 35_000 < ttl <= 40_000


async def test_a_foreign_value_is_a_miss(
    origin: CacheOrigin, path: str, redis_store: RedisStore
) -> None:
    origin.script(path, Reply(headers=MAX_AGE))
    key = redis_store._key(HttpCache.key(ferryman.URL(origin.url + path)))
    await redis_store._redis().set(key, b"FMC1\x00\x00\x00\x09not json!")
    async with ferryman.AsyncClient(trust_env=False, cache=HttpCache(redis_store)) as c:
        response = await c.get(origin.url + path)
    assert response.status_code == 200 and response.extensions["cache_status"] == "MISS"


async def test_a_dead_redis_means_no_caching_not_errors(
    origin: CacheOrigin, path: str, refused_redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    origin.script(path, Reply(headers=MAX_AGE, body=b"ok"))
    store = RedisStore(refused_redis_url, retry_interval=60)
    caplog.set_level(logging.WARNING, logger="ferryman.cache")
    async with ferryman.AsyncClient(trust_env=False, cache=HttpCache(store)) as c:
        responses = [await c.get(origin.url + path) for _ in range(5)]
    assert [r.content for r in responses] == [b"ok"] * 5
    assert origin.hits(path) == 5
    assert store.failures == 1  # then it stopped asking for retry_interval
    assert not store.available
    lines = [r for r in caplog.records if r.name == "ferryman.cache"]
    assert len(lines) == 1
    assert (
        "Redis at" in lines[0].getMessage() and "caching through it is off" in lines[0].getMessage()
    )


async def test_a_silent_redis_costs_at_most_its_timeout(origin: CacheOrigin, path: str) -> None:
    origin.script(path, Reply(headers=MAX_AGE, body=b"ok"))
    silent = SilentServer().start()
    try:
        store = RedisStore(f"redis://127.0.0.1:{silent.port}/0", timeout=0.2, retry_interval=60)
        async with ferryman.AsyncClient(trust_env=False, cache=HttpCache(store)) as c:
            started = time.monotonic()
            response = await c.get(origin.url + path)
            elapsed = time.monotonic() - started
    finally:
        silent.stop()
    assert response.content == b"ok"
    assert elapsed < 1.5
    assert store.failures >= 1


async def test_a_redis_that_comes_back_is_used_again(
    origin: CacheOrigin, path: str, redis_store: RedisStore
) -> None:
    origin.script(path, Reply(headers=MAX_AGE))
    store = RedisStore(redis_store.url, prefix=redis_store.prefix, retry_interval=0.1)
    store._failed("read", ConnectionError("simulated"))
    assert not store.available
    time.sleep(0.15)
    async with ferryman.AsyncClient(trust_env=False, cache=HttpCache(store)) as c:
        await c.get(origin.url + path)
        response = await c.get(origin.url + path)
    assert response.extensions["cache_status"] == "HIT"
