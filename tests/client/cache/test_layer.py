"""The client's cache against a real origin that counts what reaches it: every RFC 9111 rule
the layer applies, as a user of AsyncClient sees it."""

from __future__ import annotations

import asyncio

import pytest

import ferryman
from ferryman.client.cache import HttpCache, MemoryStore
from ferryman.client.filtering import (
    EVENT_FILTER_HTTP_CLIENT_REQUEST,
    EVENT_FILTER_HTTP_CLIENT_RESPONSE,
)
from tests.servers.cache_origin import CacheOrigin, Reply
from tests.servers.slow_upstream import wait_until

MAX_AGE = [("Cache-Control", "max-age=60")]


def client(cache: HttpCache | bool = True, **options: object) -> ferryman.AsyncClient:
    return ferryman.AsyncClient(trust_env=False, cache=cache, **options)  # type: ignore[arg-type]


async def twice(origin: CacheOrigin, path: str, **options: object) -> list[ferryman.Response]:
    async with client(**options) as c:  # type: ignore[arg-type]
        return [await c.get(origin.url + path), await c.get(origin.url + path)]


async def test_a_fresh_answer_is_served_from_the_cache(origin: CacheOrigin, path: str) -> None:
    origin.script(path, Reply(headers=MAX_AGE, body=b"payload"))
    first, second = await twice(origin, path)
    assert origin.hits(path) == 1
    assert first.extensions["cache_status"] == "MISS"
    assert second.extensions["cache_status"] == "HIT"
    assert second.status_code == 200 and second.content == b"payload"
    assert second.headers["cache-control"] == "max-age=60"
    assert int(second.headers["age"]) >= 0


async def test_off_by_default(origin: CacheOrigin, path: str) -> None:
    origin.script(path, Reply(headers=MAX_AGE))
    async with ferryman.AsyncClient(trust_env=False) as c:
        await c.get(origin.url + path)
        response = await c.get(origin.url + path)
    assert origin.hits(path) == 2
    assert "cache_status" not in response.extensions


async def test_a_hit_dispatches_no_filter_event(origin: CacheOrigin, path: str) -> None:
    origin.script(path, Reply(headers=MAX_AGE))
    dispatcher = ferryman.EventDispatcher()
    events: list[str] = []
    dispatcher.add_listener(EVENT_FILTER_HTTP_CLIENT_REQUEST, lambda e: events.append("request"))
    dispatcher.add_listener(EVENT_FILTER_HTTP_CLIENT_RESPONSE, lambda e: events.append("response"))
    _, second = await twice(origin, path, dispatcher=dispatcher)
    assert second.extensions["cache_status"] == "HIT"
    assert events == ["request", "response"]  # the miss only


async def test_no_store_is_not_stored(origin: CacheOrigin, path: str) -> None:
    origin.script(path, Reply(headers=[("Cache-Control", "no-store, max-age=60")]))
    await twice(origin, path)
    assert origin.hits(path) == 2


async def test_a_request_with_no_store_bypasses_the_cache(origin: CacheOrigin, path: str) -> None:
    origin.script(path, Reply(headers=MAX_AGE))
    async with client() as c:
        await c.get(origin.url + path)
        response = await c.get(origin.url + path, headers={"Cache-Control": "no-store"})
    assert origin.hits(path) == 2
    assert "cache_status" not in response.extensions


async def test_private_answers_stay_out_of_a_shared_cache(origin: CacheOrigin, path: str) -> None:
    origin.script(path, Reply(headers=[("Cache-Control", "private, max-age=60")]))
    await twice(origin, path, cache=HttpCache(shared=True))
    assert origin.hits(path) == 2
    await twice(origin, path, cache=HttpCache())  # a private cache keeps them
    assert origin.hits(path) == 3


async def test_s_maxage_rules_a_shared_cache(origin: CacheOrigin, path: str) -> None:
    origin.script(path, Reply(headers=[("Cache-Control", "max-age=60, s-maxage=0")], etag='"a"'))
    shared = await twice(origin, path, cache=HttpCache(shared=True))
    assert shared[1].extensions["cache_status"] == "REVALIDATED"
    assert origin.hits(path) == 2
    private = await twice(origin, path, cache=HttpCache())
    assert private[1].extensions["cache_status"] == "HIT"
    assert origin.hits(path) == 3


async def test_authorization_in_a_shared_cache(origin: CacheOrigin, path: str) -> None:
    origin.script(path, Reply(headers=MAX_AGE))
    auth = {"Authorization": "Bearer secret"}
    async with client(HttpCache(shared=True)) as c:
        await c.get(origin.url + path, headers=auth)
        await c.get(origin.url + path, headers=auth)
    assert origin.hits(path) == 2
    origin.script(path, Reply(headers=[("Cache-Control", "public, max-age=60")]))
    async with client(HttpCache(shared=True)) as c:
        await c.get(origin.url + path, headers=auth)
        second = await c.get(origin.url + path, headers=auth)
    assert origin.hits(path) == 3 and second.extensions["cache_status"] == "HIT"


async def test_vary_keeps_variants_apart(origin: CacheOrigin, path: str) -> None:
    origin.script(path, Reply(headers=[*MAX_AGE, ("Vary", "Accept-Language")]))
    async with client() as c:
        url = origin.url + path
        await c.get(url, headers={"Accept-Language": "fr"})
        await c.get(url, headers={"Accept-Language": "de"})
        fr = await c.get(url, headers={"Accept-Language": "fr"})
        de = await c.get(url, headers={"Accept-Language": "de"})
    assert origin.hits(path) == 2
    assert fr.extensions["cache_status"] == de.extensions["cache_status"] == "HIT"


async def test_a_stale_answer_is_validated_and_a_304_merged(origin: CacheOrigin, path: str) -> None:
    # (Age: 100 makes the answer stale on arrival: no test waits for a clock)
    origin.script(
        path,
        Reply(headers=[*MAX_AGE, ("Age", "100"), ("X-Version", "1")], body=b"v1", etag='"v1"'),
        Reply(headers=[*MAX_AGE, ("X-Version", "2")], body=b"never sent", etag='"v1"'),
    )
    first, second = await twice(origin, path)
    assert origin.hits(path) == 2
    assert origin.requests_for(path)[1].header("if-none-match") == '"v1"'
    assert second.status_code == 200 and second.content == b"v1"
    assert second.extensions["cache_status"] == "REVALIDATED"
    assert second.headers["x-version"] == "2"  # the 304's fields replace the stored ones
    assert first.content == b"v1"


async def test_a_validator_alone_is_stored_and_each_use_validated(
    origin: CacheOrigin, path: str
) -> None:
    origin.script(
        path,
        Reply(headers=[("X-Version", "1")], body=b"v1", etag='"v1"'),
        Reply(headers=[("X-Version", "2")], body=b"never sent", etag='"v1"'),
    )
    async with client(HttpCache(store_validated=True)) as c:
        first = await c.get(origin.url + path)
        second = await c.get(origin.url + path)
        third = await c.get(origin.url + path)
    assert origin.hits(path) == 3  # stale at once: each use asks the origin
    assert [r.extensions["cache_status"] for r in (first, second, third)] == [
        "MISS",
        "REVALIDATED",
        "REVALIDATED",
    ]
    assert second.content == third.content == b"v1" and third.headers["x-version"] == "2"
    assert origin.requests_for(path)[2].header("if-none-match") == '"v1"'


async def test_a_conditional_request_a_fresh_answer_satisfies_gets_a_304(
    origin: CacheOrigin, path: str
) -> None:
    origin.script(
        path, Reply(headers=[*MAX_AGE, ("Content-Type", "text/plain")], body=b"v1", etag='"v1"')
    )
    async with client() as c:
        await c.get(origin.url + path)
        matched = await c.get(origin.url + path, headers={"If-None-Match": '"v1"'})
        other = await c.get(origin.url + path, headers={"If-None-Match": '"v0"'})
    assert origin.hits(path) == 1
    assert matched.status_code == 304 and matched.content == b""
    assert matched.extensions["cache_status"] == "HIT" and matched.headers["etag"] == '"v1"'
    assert "content-type" not in matched.headers
    assert other.status_code == 200 and other.content == b"v1"


async def test_validated_then_fresh(origin: CacheOrigin, path: str) -> None:
    origin.script(
        path,
        Reply(headers=[*MAX_AGE, ("Age", "100")], body=b"v1", etag='"v1"'),
        Reply(headers=MAX_AGE, etag='"v1"'),
    )
    async with client() as c:
        statuses = [(await c.get(origin.url + path)).extensions["cache_status"] for _ in range(3)]
    assert statuses == ["MISS", "REVALIDATED", "HIT"]
    assert origin.hits(path) == 2


async def test_a_changed_resource_replaces_the_stored_one(origin: CacheOrigin, path: str) -> None:
    origin.script(
        path,
        Reply(headers=[("Cache-Control", "no-cache")], body=b"v1", etag='"v1"'),
        Reply(headers=[("Cache-Control", "no-cache")], body=b"v2", etag='"v2"'),
    )
    async with client() as c:
        bodies = [(await c.get(origin.url + path)).content for _ in range(3)]
    assert bodies == [b"v1", b"v2", b"v2"]
    assert origin.requests_for(path)[2].header("if-none-match") == '"v2"'


async def test_stale_while_revalidate(origin: CacheOrigin, path: str) -> None:
    origin.script(
        path,
        Reply(
            headers=[("Cache-Control", "max-age=60, stale-while-revalidate=600"), ("Age", "100")],
            body=b"old",
        ),
        Reply(headers=[("Cache-Control", "max-age=60, stale-while-revalidate=600")], body=b"new"),
    )
    async with client() as c:
        await c.get(origin.url + path)
        stale = await c.get(origin.url + path)
        assert stale.extensions["cache_status"] == "STALE" and stale.content == b"old"
        assert await wait_until(lambda: origin.hits(path) == 2)
        await asyncio.sleep(0.05)
        fresh = await c.get(origin.url + path)
    assert fresh.extensions["cache_status"] == "HIT" and fresh.content == b"new"
    assert origin.hits(path) == 2


async def test_stale_if_error_on_a_5xx_and_a_dropped_connection(
    origin: CacheOrigin, path: str
) -> None:
    origin.script(
        path,
        Reply(
            headers=[("Cache-Control", "max-age=60, stale-if-error=600"), ("Age", "100")],
            body=b"kept",
        ),
        Reply(503, body=b"down"),
        Reply(mode="drop"),
    )
    async with client() as c:
        await c.get(origin.url + path)
        on_5xx = await c.get(origin.url + path)
        on_drop = await c.get(origin.url + path)
    # (a kept-alive connection closed unanswered: the pool sends an idempotent GET again once)
    assert origin.hits(path) >= 3
    for response in (on_5xx, on_drop):
        assert response.status_code == 200 and response.content == b"kept"
        assert response.extensions["cache_status"] == "STALE"


async def test_without_stale_if_error_the_error_comes_through(
    origin: CacheOrigin, path: str
) -> None:
    origin.script(path, Reply(headers=[*MAX_AGE, ("Age", "100")]), Reply(503, body=b"down"))
    _, second = await twice(origin, path)
    assert second.status_code == 503 and second.content == b"down"


async def test_must_revalidate_never_serves_stale_on_error(origin: CacheOrigin, path: str) -> None:
    origin.script(
        path,
        Reply(
            headers=[
                ("Cache-Control", "max-age=60, stale-if-error=600, must-revalidate"),
                ("Age", "100"),
            ]
        ),
        Reply(503, body=b"down"),
    )
    _, second = await twice(origin, path)
    assert second.status_code == 503


async def test_unsafe_methods_invalidate(origin: CacheOrigin, path: str) -> None:
    origin.script(path, Reply(headers=MAX_AGE, body=b"v1"))
    other = path + "-other"
    origin.script(other, Reply(headers=MAX_AGE))
    async with client() as c:
        url = origin.url + path
        await c.get(url)
        await c.get(origin.url + other)
        origin.script(path, Reply(headers=[("Content-Location", other)], body=b"posted"))
        await c.post(url, content=b"x")
        origin.script(path, Reply(headers=MAX_AGE, body=b"v2"))
        after = await c.get(url)
        await c.get(origin.url + other)
    assert after.content == b"v2"
    assert origin.hits(path) == 3  # GET, POST, GET again
    assert origin.hits(other) == 2  # named by Content-Location: invalidated too


async def test_a_failed_post_invalidates_nothing(origin: CacheOrigin, path: str) -> None:
    origin.script(path, Reply(headers=MAX_AGE))
    async with client() as c:
        await c.get(origin.url + path)
        origin.script(path, Reply(500))
        await c.post(origin.url + path, content=b"x")
        origin.script(path, Reply(headers=MAX_AGE))
        again = await c.get(origin.url + path)
    assert again.extensions["cache_status"] == "HIT"


async def test_head_is_answered_from_a_stored_get(origin: CacheOrigin, path: str) -> None:
    origin.script(path, Reply(headers=MAX_AGE, body=b"12345"))
    async with client() as c:
        await c.get(origin.url + path)
        head = await c.head(origin.url + path)
    assert origin.hits(path) == 1
    assert head.extensions["cache_status"] == "HIT"
    assert head.content == b"" and head.headers["content-length"] == "5"


async def test_only_if_cached(origin: CacheOrigin, path: str) -> None:
    async with client() as c:
        response = await c.get(origin.url + path, headers={"Cache-Control": "only-if-cached"})
    assert response.status_code == 504
    assert origin.hits(path) == 0


async def test_a_body_over_the_limit_streams_unstored(origin: CacheOrigin, path: str) -> None:
    big = bytes(range(256)) * 64  # 16 KiB
    origin.script(path, Reply(headers=MAX_AGE, body=big))
    cache = HttpCache(max_object_size=4096)
    first, second = await twice(origin, path, cache=cache)
    assert first.content == big and second.content == big
    assert origin.hits(path) == 2


async def test_a_cut_body_is_not_stored(origin: CacheOrigin, path: str) -> None:
    origin.script(
        path, Reply(headers=MAX_AGE, body=b"x" * 1000, mode="cut"), Reply(headers=MAX_AGE)
    )
    async with client() as c:
        with pytest.raises(ferryman.exceptions.TransportError):
            await c.get(origin.url + path)
        second = await c.get(origin.url + path)
    assert second.extensions["cache_status"] == "MISS" and second.content == b"body"


async def test_compressed_bodies_are_stored_as_sent_and_decoded_on_a_hit(
    origin: CacheOrigin, path: str
) -> None:
    import gzip

    origin.script(
        path, Reply(headers=[*MAX_AGE, ("Content-Encoding", "gzip")], body=gzip.compress(b"text"))
    )
    first, second = await twice(origin, path)
    assert second.extensions["cache_status"] == "HIT"
    assert first.content == second.content == b"text"


async def test_the_memory_store_is_bounded(origin: CacheOrigin, path: str) -> None:
    store = MemoryStore(max_bytes=20_000)
    cache = HttpCache(store)
    async with client(cache) as c:
        for i in range(10):
            origin.script(f"{path}/{i}", Reply(headers=MAX_AGE, body=b"x" * 5000))
            await c.get(f"{origin.url}{path}/{i}")
    assert store.size <= 20_000
    assert 0 < len(store) < 10
