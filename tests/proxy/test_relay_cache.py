"""The HTTP cache on the fast relay, against a scripted origin that counts what reaches it:
hits from stored bytes (no upstream call), X-Cache and Age, validation and 304 merging,
stale answers on errors and while revalidating, invalidation, size limits, Redis lookups."""

from __future__ import annotations

import asyncio
import itertools
import socket

import pytest

import ferryman
from ferryman.client.cache import CacheStore, MemoryStore, RedisStore
from ferryman.http.caching import CachePolicy
from ferryman.proxy.relay_cache import RelayCache
from tests.client.cache import conftest as cache_fixtures
from tests.servers.cache_origin import CacheOrigin, Reply
from tests.servers.relay_harness import RelayServer, StartRelay
from tests.servers.slow_upstream import roundtrip, wait_until

MAX_AGE = [("Cache-Control", "max-age=60")]
_paths = itertools.count()


# The client cache tests' fixtures: the scripted origin, a fresh path per test, Redis.
origin = cache_fixtures.origin
path = cache_fixtures.path
redis_store = cache_fixtures.redis_store


async def cached_relay(
    start_relay: StartRelay,
    url: str,
    store: CacheStore | None = None,
    max_object_size: int = 1 << 20,
    **policy: object,
) -> RelayServer:
    server = await start_relay(url)
    server.relay.cache = RelayCache(
        "test",
        MemoryStore() if store is None else store,
        CachePolicy(**policy),  # type: ignore[arg-type]
        max_object_size,
        _revalidator(),
    )
    return server


def _revalidator():  # type: ignore[no-untyped-def]
    client = ferryman.AsyncClient(trust_env=False)

    async def revalidate(url: str, headers: list[tuple[bytes, bytes]]):  # type: ignore[no-untyped-def]
        response = await client.send(ferryman.Request("GET", url, headers=headers))
        return response.status_code, response.headers.raw

    return revalidate


async def get(server: RelayServer, path: str, headers: bytes = b"", method: bytes = b"GET"):  # type: ignore[no-untyped-def]
    return await roundtrip(
        server.port,
        b"%s %s HTTP/1.1\r\nHost: proxy.test\r\n%s\r\n" % (method, path.encode(), headers),
        head_only=method == b"HEAD",
    )


async def test_a_hit_is_served_without_the_upstream(
    origin: CacheOrigin, path: str, start_relay: StartRelay
) -> None:
    origin.script(path, Reply(headers=[*MAX_AGE, ("X-Origin", "yes")], body=b"payload"))
    server = await cached_relay(start_relay, origin.url)
    first = await get(server, path)
    pool = server.relay.pools[0]
    connections_before = pool.usage()
    second = await get(server, path)
    assert origin.hits(path) == 1
    assert first.header("x-cache") == "MISS" and first.body == b"payload"
    assert second.status == 200 and second.body == b"payload"
    assert second.header("x-cache") == "HIT"
    assert second.header("x-origin") == "yes" and second.header("cache-control") == "max-age=60"
    assert second.header("age") is not None and int(second.header("age") or -1) >= 0
    assert second.header("content-length") == "7"
    assert pool.usage() == connections_before  # the pool was not touched
    assert server.relay.cache is not None and server.relay.cache.counts.hit == 1


async def test_answers_that_say_nothing_are_not_stored(
    origin: CacheOrigin, path: str, start_relay: StartRelay
) -> None:
    origin.script(path, Reply(body=b"plain"))
    server = await cached_relay(start_relay, origin.url)
    responses = [await get(server, path) for _ in range(2)]
    assert origin.hits(path) == 2
    assert [r.header("x-cache") for r in responses] == ["MISS", "MISS"]
    assert [r.body for r in responses] == [b"plain", b"plain"]


@pytest.mark.parametrize(
    "cache_control",
    ["no-store, max-age=60", "private, max-age=60"],
)
async def test_what_a_shared_cache_may_not_store(
    origin: CacheOrigin, path: str, start_relay: StartRelay, cache_control: str
) -> None:
    origin.script(path, Reply(headers=[("Cache-Control", cache_control)]))
    server = await cached_relay(start_relay, origin.url)
    for _ in range(2):
        await get(server, path)
    assert origin.hits(path) == 2


async def test_set_cookie_answers_are_not_shared(
    origin: CacheOrigin, path: str, start_relay: StartRelay
) -> None:
    origin.script(path, Reply(headers=[*MAX_AGE, ("Set-Cookie", "session=alice")]))
    server = await cached_relay(start_relay, origin.url)
    await get(server, path)
    second = await get(server, path)
    assert origin.hits(path) == 2 and second.header("x-cache") == "MISS"


async def test_authorization_only_as_section_3_5_allows(
    origin: CacheOrigin, path: str, start_relay: StartRelay
) -> None:
    server = await cached_relay(start_relay, origin.url)
    auth = b"Authorization: Bearer alice\r\n"
    origin.script(path, Reply(headers=MAX_AGE))
    await get(server, path, auth)
    await get(server, path, auth)
    assert origin.hits(path) == 2
    public = path + "-public"
    origin.script(public, Reply(headers=[("Cache-Control", "public, max-age=60")]))
    await get(server, public, auth)
    hit = await get(server, public, auth)
    assert origin.hits(public) == 1 and hit.header("x-cache") == "HIT"


async def test_s_maxage_and_ttl_override(
    origin: CacheOrigin, path: str, start_relay: StartRelay
) -> None:
    origin.script(path, Reply(headers=[("Cache-Control", "max-age=60, s-maxage=0")]))
    server = await cached_relay(start_relay, origin.url)
    await get(server, path)
    await get(server, path)
    assert origin.hits(path) == 2  # s-maxage=0: a shared cache may not reuse it
    plain = path + "-plain"
    origin.script(plain, Reply(body=b"no headers"))
    with_ttl = await cached_relay(start_relay, origin.url, ttl=30)
    await get(with_ttl, plain)
    hit = await get(with_ttl, plain)
    assert origin.hits(plain) == 1 and hit.header("x-cache") == "HIT"


async def test_vary(origin: CacheOrigin, path: str, start_relay: StartRelay) -> None:
    origin.script(path, Reply(headers=[*MAX_AGE, ("Vary", "Accept")]))
    server = await cached_relay(start_relay, origin.url)
    for accept in (b"a/json", b"a/xml", b"a/json", b"a/xml"):
        await get(server, path, b"Accept: " + accept + b"\r\n")
    assert origin.hits(path) == 2


async def test_validation_and_304_merging(
    origin: CacheOrigin, path: str, start_relay: StartRelay
) -> None:
    origin.script(
        path,
        Reply(headers=[*MAX_AGE, ("Age", "100"), ("X-Version", "1")], body=b"v1", etag='"v1"'),
        Reply(headers=[*MAX_AGE, ("X-Version", "2")], etag='"v1"'),
    )
    server = await cached_relay(start_relay, origin.url)
    await get(server, path)
    second = await get(server, path)
    third = await get(server, path)
    assert origin.hits(path) == 2
    assert origin.requests_for(path)[1].header("if-none-match") == '"v1"'
    assert second.status == 200 and second.body == b"v1"
    assert second.header("x-cache") == "REVALIDATED" and second.header("x-version") == "2"
    assert third.header("x-cache") == "HIT"


LAST_MODIFIED = "Tue, 14 Nov 2023 12:13:20 GMT"


@pytest.mark.parametrize("validator", ["etag", "last_modified"])
async def test_a_validator_alone_is_stored_and_validated_on_each_use(
    origin: CacheOrigin, path: str, start_relay: StartRelay, validator: str
) -> None:
    """No freshness, only an ETag or a Last-Modified: stored stale, so each request asks
    the origin, whose 304 serves the stored body; a new answer replaces it."""
    given = {"etag": '"v1"'} if validator == "etag" else {"last_modified": LAST_MODIFIED}
    origin.script(
        path,
        Reply(headers=[("X-Version", "1")], body=b"v1", **given),  # type: ignore[arg-type]
        Reply(headers=[("X-Version", "2")], body=b"never sent", **given),  # type: ignore[arg-type]
        Reply(headers=[("X-Version", "3")], body=b"v3"),
    )
    server = await cached_relay(start_relay, origin.url, store_validated=True)
    first = await get(server, path)
    second = await get(server, path)
    third = await get(server, path)
    fourth = await get(server, path)
    assert first.header("x-cache") == "MISS" and first.body == b"v1"
    asked = origin.requests_for(path)[1]
    if validator == "etag":
        assert asked.header("if-none-match") == '"v1"'
    else:
        assert asked.header("if-modified-since") == LAST_MODIFIED
    assert second.status == 200 and second.body == b"v1"
    assert second.header("x-cache") == "REVALIDATED" and second.header("x-version") == "2"
    # The third answer has no validator: relayed (a miss), and it is not stored.
    assert third.header("x-cache") == "MISS" and third.body == b"v3"
    assert fourth.header("x-cache") == "MISS" and origin.hits(path) == 4


async def test_a_validator_alone_is_not_stored_by_default(
    origin: CacheOrigin, path: str, start_relay: StartRelay
) -> None:
    """Like nginx's proxy_cache: an answer that says nothing of its freshness is relayed, not
    stored, ETag or not (``store_validated`` turns it on)."""
    origin.script(path, Reply(body=b"v1", etag='"v1"', last_modified=LAST_MODIFIED))
    server = await cached_relay(start_relay, origin.url)
    answers = [await get(server, path) for _ in range(3)]
    assert [answer.header("x-cache") for answer in answers] == ["MISS"] * 3
    assert origin.hits(path) == 3
    assert all(request.header("if-none-match") is None for request in origin.requests_for(path))
    assert server.relay.cache is not None and server.relay.cache.store.holds_nothing()


async def test_a_validator_alone_is_not_stored_for_a_5xx(
    origin: CacheOrigin, path: str, start_relay: StartRelay
) -> None:
    origin.script(path, Reply(500, body=b"oops", etag='"e"'))
    server = await cached_relay(start_relay, origin.url, store_validated=True)
    await get(server, path)
    second = await get(server, path)
    assert origin.requests_for(path)[1].header("if-none-match") is None
    assert second.status == 500 and second.header("x-cache") == "MISS"


@pytest.mark.parametrize("method", [b"GET", b"HEAD"])
async def test_a_clients_conditional_that_a_fresh_answer_satisfies_gets_a_304(
    origin: CacheOrigin, path: str, start_relay: StartRelay, method: bytes
) -> None:
    origin.script(
        path,
        Reply(
            headers=[*MAX_AGE, ("Content-Type", "text/plain"), ("X-Origin", "yes")],
            body=b"v1",
            etag='"v1"',
            last_modified=LAST_MODIFIED,
        ),
    )
    server = await cached_relay(start_relay, origin.url)
    await get(server, path)
    by_tag = await get(server, path, b'If-None-Match: "x", W/"v1"\r\n', method=method)
    by_date = await get(server, path, b"If-Modified-Since: " + LAST_MODIFIED.encode() + b"\r\n")
    other = await get(server, path, b'If-None-Match: "v0"\r\n', method=method)
    assert origin.hits(path) == 1  # all three from the cache
    for answer in (by_tag, by_date):
        assert answer.status == 304 and answer.body == b""
        assert answer.header("x-cache") == "HIT" and answer.header("etag") == '"v1"'
        assert answer.header("cache-control") == "max-age=60"
        assert answer.header("content-type") is None and answer.header("age") is not None
    assert other.status == 200 and other.header("x-cache") == "HIT"
    assert other.body == (b"" if method == b"HEAD" else b"v1")
    # The connection stays usable after a 304 (no body to frame).
    reader, writer = await server.connect()
    request = b'GET %s HTTP/1.1\r\nHost: proxy.test\r\nIf-None-Match: "v1"\r\n\r\n'
    writer.write(request % path.encode() * 2)
    data = b""
    while data.count(b"HTTP/1.1 304") < 2:
        chunk = await asyncio.wait_for(reader.read(65536), 5)
        assert chunk, data
        data += chunk
    writer.close()


async def test_the_clients_own_conditional_goes_through(
    origin: CacheOrigin, path: str, start_relay: StartRelay
) -> None:
    origin.script(path, Reply(headers=[("Cache-Control", "no-cache")], body=b"v1", etag='"v1"'))
    server = await cached_relay(start_relay, origin.url)
    await get(server, path)
    mine = await get(server, path, b'If-None-Match: "v1"\r\n')
    assert mine.status == 304  # the client asked conditionally: it gets the 304


STALE_AT_ONCE = [("Cache-Control", "max-age=0")]


async def test_a_304_about_another_answer_is_asked_again_unconditionally(
    origin: CacheOrigin, path: str, start_relay: StartRelay
) -> None:
    await _a_304_about_another_answer(origin, path, await cached_relay(start_relay, origin.url))


async def test_a_304_about_another_answer_with_redis(
    origin: CacheOrigin, path: str, start_relay: StartRelay, redis_store: RedisStore
) -> None:
    server = await cached_relay(start_relay, origin.url, store=redis_store)
    await _a_304_about_another_answer(origin, path, server)


async def _a_304_about_another_answer(origin: CacheOrigin, path: str, server: RelayServer) -> None:
    # RFC 9111 4.3.4: a 304 whose ETag is not the stored one's selects nothing; the client,
    # who asked unconditionally, must not get it (it has no body), nor the stored "a".
    origin.script(
        path,
        Reply(headers=STALE_AT_ONCE, body=b"v1", etag='"a"'),
        Reply(304, headers=[("ETag", '"b"'), *MAX_AGE]),
        Reply(headers=MAX_AGE, body=b"v2", etag='"b"'),
    )
    cache = server.relay.cache
    assert cache is not None
    await get(server, path)
    assert await wait_until(lambda: not cache._tasks)  # (stored: a Redis write is a task)
    second = await get(server, path)
    assert await wait_until(lambda: not cache._tasks)
    assert second.status == 200 and second.body == b"v2"
    assert second.header("etag") == '"b"' and second.header("x-cache") == "MISS"
    validation, again = origin.requests_for(path)[1:]
    assert validation.header("if-none-match") == '"a"'
    assert again.header("if-none-match") is None and again.header("if-modified-since") is None
    assert again.connection == validation.connection  # (the 304's connection was kept)
    third = await get(server, path)  # the whole answer replaced the stored one
    assert (third.header("x-cache"), third.body) == ("HIT", b"v2")
    assert origin.hits(path) == 3


async def test_a_304_about_another_last_modified_is_asked_again(
    origin: CacheOrigin, path: str, start_relay: StartRelay
) -> None:
    old, new = "Mon, 05 Jan 2026 10:00:00 GMT", "Tue, 06 Jan 2026 10:00:00 GMT"
    origin.script(
        path,
        Reply(headers=[*STALE_AT_ONCE, ("Last-Modified", old)], body=b"v1"),
        Reply(304, headers=[("Last-Modified", new)]),
        Reply(headers=[("Last-Modified", new)], body=b"v2"),
    )
    server = await cached_relay(start_relay, origin.url)
    await get(server, path)
    second = await get(server, path)
    assert (second.status, second.body) == (200, b"v2")
    validation, again = origin.requests_for(path)[1:]
    assert validation.header("if-modified-since") == old
    assert again.header("if-modified-since") is None


async def test_a_304_that_may_not_be_stored_answers_once_and_drops_the_entry(
    origin: CacheOrigin, path: str, start_relay: StartRelay
) -> None:
    # The 304 speaks of the stored answer (its ETag): it is still good for this request, but
    # its update may not be stored (no-store): the client gets it merged, once.
    origin.script(
        path,
        Reply(headers=[*STALE_AT_ONCE, ("X-Version", "1")], body=b"v1", etag='"a"'),
        Reply(304, headers=[("ETag", '"a"'), ("Cache-Control", "no-store"), ("X-Version", "2")]),
        Reply(headers=[("Cache-Control", "no-store")], body=b"v1 again", etag='"a"'),
    )
    server = await cached_relay(start_relay, origin.url)
    await get(server, path)
    second = await get(server, path)
    assert (second.status, second.body) == (200, b"v1")
    assert second.header("x-cache") == "REVALIDATED" and second.header("x-version") == "2"
    assert second.header("cache-control") == "no-store"
    third = await get(server, path)  # nothing stored any more: the whole answer, unstored
    assert (third.status, third.body, third.header("x-cache")) == (200, b"v1 again", "MISS")
    assert origin.requests_for(path)[2].header("if-none-match") is None
    assert origin.hits(path) == 3


async def test_stale_while_revalidate(
    origin: CacheOrigin, path: str, start_relay: StartRelay
) -> None:
    swr = [("Cache-Control", "max-age=60, stale-while-revalidate=600")]
    origin.script(
        path,
        Reply(headers=[*swr, ("Age", "100")], body=b"old", etag='"a"'),
        Reply(headers=swr, etag='"a"'),
    )
    server = await cached_relay(start_relay, origin.url)
    await get(server, path)
    stale = await get(server, path)
    assert stale.header("x-cache") == "STALE" and stale.body == b"old"
    assert await wait_until(lambda: origin.hits(path) == 2)
    assert origin.requests_for(path)[1].header("if-none-match") == '"a"'
    await asyncio.sleep(0.1)
    fresh = await get(server, path)
    assert fresh.header("x-cache") == "HIT" and fresh.body == b"old"
    assert origin.hits(path) == 2


async def test_stale_if_error_on_5xx_refused_and_hung_upstreams(
    origin: CacheOrigin, path: str, start_relay: StartRelay
) -> None:
    sie = [("Cache-Control", "max-age=60, stale-if-error=600"), ("Age", "100")]
    origin.script(path, Reply(headers=sie, body=b"kept"), Reply(503, body=b"down"))
    server = await cached_relay(start_relay, origin.url)
    await get(server, path)
    on_5xx = await get(server, path)
    assert on_5xx.status == 200 and on_5xx.body == b"kept" and on_5xx.header("x-cache") == "STALE"
    origin.script(path, Reply(mode="drop"))
    on_drop = await get(server, path)
    assert on_drop.status == 200 and on_drop.header("x-cache") == "STALE"
    # A refused upstream: the same store behind a relay to a port where nothing listens.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        refused = f"http://127.0.0.1:{sock.getsockname()[1]}"
    assert server.relay.cache is not None
    down = await cached_relay(start_relay, refused, store=server.relay.cache.store)
    on_refusal = await get(down, path)
    assert on_refusal.status == 200 and on_refusal.body == b"kept"
    assert on_refusal.header("x-cache") == "STALE"


async def test_must_revalidate_gives_the_error(
    origin: CacheOrigin, path: str, start_relay: StartRelay
) -> None:
    headers = [("Cache-Control", "max-age=60, stale-if-error=600, must-revalidate"), ("Age", "100")]
    origin.script(path, Reply(headers=headers), Reply(503, body=b"down"))
    server = await cached_relay(start_relay, origin.url)
    await get(server, path)
    failed = await get(server, path)
    assert failed.status == 503 and failed.body == b"down"


async def test_unsafe_methods_invalidate(
    origin: CacheOrigin, path: str, start_relay: StartRelay
) -> None:
    origin.script(path, Reply(headers=MAX_AGE, body=b"v1"))
    server = await cached_relay(start_relay, origin.url)
    await get(server, path)
    origin.script(path, Reply(200, body=b"deleted"))
    await get(server, path, method=b"DELETE")
    origin.script(path, Reply(headers=MAX_AGE, body=b"v2"))
    after = await get(server, path)
    assert after.body == b"v2" and after.header("x-cache") == "MISS"
    assert origin.hits(path) == 3


async def test_head_from_a_stored_get(
    origin: CacheOrigin, path: str, start_relay: StartRelay
) -> None:
    origin.script(path, Reply(headers=MAX_AGE, body=b"12345"))
    server = await cached_relay(start_relay, origin.url)
    await get(server, path)
    head = await get(server, path, method=b"HEAD")
    assert origin.hits(path) == 1
    assert head.header("x-cache") == "HIT" and head.header("content-length") == "5"
    assert head.body == b""


async def test_a_body_over_max_object_size_streams_unstored(
    origin: CacheOrigin, path: str, start_relay: StartRelay
) -> None:
    big = bytes(range(256)) * 1024  # 256 KiB
    origin.script(path, Reply(headers=MAX_AGE, body=big))
    server = await cached_relay(start_relay, origin.url, max_object_size=64 * 1024)
    first = await get(server, path)
    second = await get(server, path)
    assert first.body == big and second.body == big
    assert origin.hits(path) == 2


async def test_a_cut_answer_is_not_stored(
    origin: CacheOrigin, path: str, start_relay: StartRelay
) -> None:
    origin.script(
        path, Reply(headers=MAX_AGE, body=b"x" * 1000, mode="cut"), Reply(headers=MAX_AGE)
    )
    server = await cached_relay(start_relay, origin.url)
    with pytest.raises((asyncio.IncompleteReadError, ConnectionError)):
        await get(server, path)
    second = await get(server, path)
    assert second.header("x-cache") == "MISS" and second.body == b"body"


async def test_only_if_cached(origin: CacheOrigin, path: str, start_relay: StartRelay) -> None:
    server = await cached_relay(start_relay, origin.url)
    response = await get(server, path, b"Cache-Control: only-if-cached\r\n")
    assert response.status == 504 and origin.hits(path) == 0


async def test_a_range_request_is_not_for_the_cache_even_when_it_holds_nothing(
    origin: CacheOrigin, path: str, start_relay: StartRelay
) -> None:
    origin.script(path, Reply(headers=MAX_AGE, body=b"abc"))
    server = await cached_relay(start_relay, origin.url)
    ranged = await get(server, path, b"Range: bytes=0-1\r\n")
    assert ranged.header("x-cache") is None  # bypassed, not a miss: nothing was stored
    assert (await get(server, path)).header("x-cache") == "MISS"
    assert (await get(server, path)).header("x-cache") == "HIT"


async def test_hits_keep_the_connection_alive(
    origin: CacheOrigin, path: str, start_relay: StartRelay
) -> None:
    origin.script(path, Reply(headers=MAX_AGE, body=b"abc"))
    server = await cached_relay(start_relay, origin.url)
    reader, writer = await server.connect()
    try:
        request = b"GET %s HTTP/1.1\r\nHost: proxy.test\r\n\r\n" % path.encode()
        writer.write(request * 3)  # pipelined
        from tests.servers.slow_upstream import read_response

        answers = [await read_response(reader) for _ in range(3)]
    finally:
        writer.close()
    assert [a.header("x-cache") for a in answers] == ["MISS", "HIT", "HIT"]
    assert all(a.body == b"abc" for a in answers)


# -- Redis ------------------------------------------------------------------------------------


async def test_two_relays_share_a_redis_store(
    origin: CacheOrigin, path: str, start_relay: StartRelay, redis_store: RedisStore
) -> None:
    origin.script(path, Reply(headers=MAX_AGE, body=b"shared"))
    one = await cached_relay(start_relay, origin.url, store=redis_store)
    other_store = RedisStore(prefix=redis_store.prefix)
    other = await cached_relay(start_relay, origin.url, store=other_store)
    try:
        await get(one, path)
        assert await wait_until(lambda: one.relay.cache is not None and not one.relay.cache._tasks)
        hit = await get(other, path)
    finally:
        await other_store.aclose()
    assert hit.header("x-cache") == "HIT" and hit.body == b"shared"
    assert origin.hits(path) == 1


async def test_a_dead_redis_relays_uncached(
    origin: CacheOrigin, path: str, start_relay: StartRelay
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    store = RedisStore(f"redis://127.0.0.1:{port}/0", retry_interval=60)
    origin.script(path, Reply(headers=MAX_AGE, body=b"ok"))
    server = await cached_relay(start_relay, origin.url, store=store)
    responses = [await get(server, path) for _ in range(3)]
    assert [r.status for r in responses] == [200, 200, 200]
    assert [r.body for r in responses] == [b"ok"] * 3
    assert origin.hits(path) == 3
    assert store.failures == 1
