"""The HTTP cache of an endpoint with proxy filter listeners or middleware, which the relay
serves with its events (``ferryman.proxy.relay_events_cache``): the cache sits where the
general path's does, and a client cannot tell which way served it.

Each test serves a real ``ferryman`` proxy (``tests/proxy/general_path.py``) in front of the
scripted origin that counts what reaches it (:class:`~tests.servers.cache_origin.CacheOrigin`),
and runs on both ways that serve listeners: ``events`` (the relay dispatches them) and
``general`` (the same listeners, with ``request_options`` that send every request down the
general path). What is asserted is what the client gets, what reached the origin, what the
listeners saw and the access log's ``cache=``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest

from ferryman.http import Response
from ferryman.proxy import ProxyEndpoints
from ferryman.proxy.events import (
    EVENT_FILTER_PROXY_REQUEST,
    EVENT_FILTER_PROXY_RESPONSE,
    ProxyFilterEvent,
)
from tests.proxy.general_path import GENERAL, Proxy, StartProxy, ferryman_proxy
from tests.servers.cache_origin import CacheOrigin, Reply
from tests.servers.slow_upstream import wait_until

__all__ = ["ferryman_proxy"]

MAX_AGE = [("Cache-Control", "max-age=60")]
STALE_AT_ONCE = [("Cache-Control", "max-age=0")]
_paths = itertools.count()
WAYS = ["events", "general"]


@pytest.fixture(scope="module")
def origin() -> Iterator[CacheOrigin]:
    server = CacheOrigin().start()
    yield server
    server.stop()


@pytest.fixture
def path() -> str:
    return f"/events-{next(_paths)}-{id(object())}"


async def start(ferryman_proxy: StartProxy, origin: CacheOrigin, way: str, **extra: Any) -> Proxy:
    options: dict[str, Any] = dict(GENERAL) if way == "general" else {}
    return await ferryman_proxy(url=origin.url, **options, **extra)


def listen(proxy: Proxy, event: str, listener: Any) -> None:
    proxy.server.system.dispatcher.add_listener(event, listener)


def way_of(proxy: Proxy) -> str:
    """Which way serves the endpoint's next request."""
    relay = proxy.relay
    if relay.use_fast is None or relay.use_fast():
        return "relay"
    if relay.filters is not None and relay.filters.active():
        return "events"
    return "general"


def logged(lines: list[str], path: str) -> list[str]:
    return [line for line in lines if f" {path} " in line]


@pytest.mark.parametrize("way", WAYS)
async def test_hits_and_misses_with_a_request_listener(
    origin: CacheOrigin, path: str, ferryman_proxy: StartProxy, way: str
) -> None:
    origin.script(path, Reply(headers=MAX_AGE, body=b"stored"))
    proxy = await start(ferryman_proxy, origin, way)
    seen: list[str] = []
    listen(proxy, EVENT_FILTER_PROXY_REQUEST, lambda event: seen.append(event.request.method))
    assert way_of(proxy) == way
    miss = await proxy.send(target=path)
    hit = await proxy.send(target=path)
    head = await proxy.send("HEAD", path)
    counts = proxy.cache.counts
    lines = await proxy.stop()
    assert (miss.status, miss.body, miss.header("x-cache")) == (200, b"stored", "MISS")
    assert (hit.status, hit.body, hit.header("x-cache")) == (200, b"stored", "HIT")
    assert hit.header("age") is not None and hit.header("content-length") == "6"
    assert (head.status, head.body, head.header("x-cache")) == (200, b"", "HIT")
    assert head.header("content-length") == "6"
    assert origin.hits(path) == 1
    assert seen == ["GET", "GET", "HEAD"]  # (the listener sees every request, hits too)
    assert (counts.miss, counts.hit, counts.stored) == (1, 2, 1)
    assert [line.rsplit(" ", 1)[-1] for line in logged(lines, path)] == [
        "cache=MISS",
        "cache=HIT",
        "cache=HIT",
    ]


@pytest.mark.parametrize("way", WAYS)
async def test_an_answer_from_a_request_listener_is_not_cached(
    origin: CacheOrigin, path: str, ferryman_proxy: StartProxy, way: str
) -> None:
    origin.script(path, Reply(headers=MAX_AGE, body=b"from the origin"))
    proxy = await start(ferryman_proxy, origin, way)

    def forge(event: ProxyFilterEvent) -> None:
        if event.request.headers.get("x-forge"):
            event.response = Response(200, text="forged", headers={"Cache-Control": "max-age=60"})

    listen(proxy, EVENT_FILTER_PROXY_REQUEST, forge)
    forged = await proxy.send(target=path, headers={"X-Forge": "1"})
    assert (forged.body, forged.header("x-cache")) == (b"forged", None)
    relayed = await proxy.send(target=path)
    assert (relayed.body, relayed.header("x-cache")) == (b"from the origin", "MISS")
    # A stored answer is not looked at for a request a listener answers either.
    again = await proxy.send(target=path, headers={"X-Forge": "1"})
    assert (again.body, again.header("x-cache")) == (b"forged", None)
    assert origin.hits(path) == 1
    assert proxy.cache.counts.stored == 1


@pytest.mark.parametrize("way", WAYS)
async def test_the_upstreams_answer_is_stored_not_what_a_response_listener_made_of_it(
    origin: CacheOrigin, path: str, ferryman_proxy: StartProxy, way: str
) -> None:
    origin.script(path, Reply(headers=[*MAX_AGE, ("X-Origin", "yes")], body=b"as it came"))
    proxy = await start(ferryman_proxy, origin, way)
    saw: list[str | None] = []

    def change(event: ProxyFilterEvent) -> None:
        response = event.response
        assert response is not None
        saw.append(response.headers.get("x-cache"))
        response.headers["X-Listener"] = str(len(saw))
        del response.headers["X-Origin"]

    listen(proxy, EVENT_FILTER_PROXY_RESPONSE, change)
    first = await proxy.send(target=path)
    second = await proxy.send(target=path)
    assert (first.header("x-cache"), first.header("x-listener")) == ("MISS", "1")
    assert first.header("x-origin") is None and first.body == b"as it came"
    # The listener runs again on the hit, over the stored answer: its change of the first
    # answer was not stored with it (one X-Listener, the origin's field there to remove).
    assert (second.header("x-cache"), second.body) == ("HIT", b"as it came")
    assert second.headers.count(("X-Listener", "2")) == 1
    assert [name for name, _ in second.headers].count("X-Listener") == 1
    assert second.header("x-origin") is None
    assert saw == ["MISS", "HIT"]
    assert origin.hits(path) == 1


@pytest.mark.parametrize("way", WAYS)
async def test_an_answer_a_response_listener_replaced_is_not_stored(
    origin: CacheOrigin, path: str, ferryman_proxy: StartProxy, way: str
) -> None:
    origin.script(path, Reply(headers=MAX_AGE, body=b"from the origin"))
    proxy = await start(ferryman_proxy, origin, way)
    replace = [True]

    def replacing(event: ProxyFilterEvent) -> None:
        if replace[0]:
            event.response = Response(200, text="replaced")

    listen(proxy, EVENT_FILTER_PROXY_RESPONSE, replacing)
    assert (await proxy.send(target=path)).body == b"replaced"
    replace[0] = False
    after = await proxy.send(target=path)
    assert (after.body, after.header("x-cache")) == (b"from the origin", "MISS")
    assert origin.hits(path) == 2


@pytest.mark.parametrize("way", WAYS)
async def test_a_middleware_sees_hits_on_its_way_out(
    origin: CacheOrigin, path: str, ferryman_proxy: StartProxy, way: str
) -> None:
    origin.script(path, Reply(headers=MAX_AGE, body=b"payload"))
    proxy = await start(ferryman_proxy, origin, way)
    outs: list[str | None] = []

    def tag(ctx: Any) -> Iterator[None]:
        ctx.upstream_request.headers["X-Tier"] = "gold"
        yield
        outs.append(ctx.response.headers.get("x-cache"))
        ctx.response.headers["X-Served-By"] = ctx.endpoint

    proxy.server.system.provider.resolve(ProxyEndpoints)["api"].client_edge(tag)
    assert way_of(proxy) == way
    miss = await proxy.send(target=path)
    hit = await proxy.send(target=path)
    assert (miss.header("x-cache"), miss.header("x-served-by")) == ("MISS", "api")
    assert (hit.header("x-cache"), hit.header("x-served-by"), hit.body) == (
        "HIT",
        "api",
        b"payload",
    )
    assert outs == ["MISS", "HIT"]
    assert origin.hits(path) == 1
    assert origin.requests_for(path)[0].header("x-tier") == "gold"


@pytest.mark.parametrize("way", WAYS)
async def test_an_async_listener_keeps_the_cache(
    origin: CacheOrigin, path: str, ferryman_proxy: StartProxy, way: str
) -> None:
    origin.script(path, Reply(headers=MAX_AGE, body=b"awaited"))
    proxy = await start(ferryman_proxy, origin, way)
    saw: list[str | None] = []

    async def after(event: ProxyFilterEvent) -> None:
        assert event.response is not None
        saw.append(event.response.headers.get("x-cache"))
        await event.response.aread()

    listen(proxy, EVENT_FILTER_PROXY_RESPONSE, after)
    assert way_of(proxy) == way
    first = await proxy.send(target=path)
    second = await proxy.send(target=path)
    assert (first.body, first.header("x-cache")) == (b"awaited", "MISS")
    assert (second.body, second.header("x-cache")) == (b"awaited", "HIT")
    assert saw == ["MISS", "HIT"]
    assert origin.hits(path) == 1


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize("awaited", [False, True])
async def test_a_stale_answer_is_validated_with_a_request_a_listener_changed(
    origin: CacheOrigin, path: str, ferryman_proxy: StartProxy, way: str, awaited: bool
) -> None:
    # (a changed request: the relay builds its head from the listener's request, and the
    # cache's validators must go in it too)
    origin.script(
        path,
        Reply(headers=[*STALE_AT_ONCE, ("X-Version", "1")], body=b"v1", etag='"v1"'),
        Reply(headers=[*MAX_AGE, ("X-Version", "2")], etag='"v1"'),
    )
    proxy = await start(ferryman_proxy, origin, way)

    def add(event: ProxyFilterEvent) -> None:
        event.request.headers["X-Added"] = "yes"

    async def add_later(event: ProxyFilterEvent) -> None:  # (the relay's task per request)
        add(event)

    listen(proxy, EVENT_FILTER_PROXY_REQUEST, add_later if awaited else add)
    assert (await proxy.send(target=path)).header("x-cache") == "MISS"
    again = await proxy.send(target=path)
    assert (again.status, again.body, again.header("x-cache")) == (200, b"v1", "REVALIDATED")
    assert again.header("x-version") == "2"
    validation = origin.requests_for(path)[1]
    assert validation.header("if-none-match") == '"v1"' and validation.header("x-added") == "yes"
    hit = await proxy.send(target=path)
    assert (hit.header("x-cache"), origin.hits(path)) == ("HIT", 2)


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize("changed", [False, True])
async def test_a_304_about_another_answer_is_asked_again_without_validators(
    origin: CacheOrigin, path: str, ferryman_proxy: StartProxy, way: str, changed: bool
) -> None:
    origin.script(
        path,
        Reply(headers=STALE_AT_ONCE, body=b"v1", etag='"a"'),
        Reply(304, headers=[("ETag", '"b"'), *MAX_AGE]),
        Reply(headers=MAX_AGE, body=b"v2", etag='"b"'),
    )
    proxy = await start(ferryman_proxy, origin, way)

    def look(event: ProxyFilterEvent) -> None:
        if changed:
            event.request.headers["X-Added"] = "yes"

    listen(proxy, EVENT_FILTER_PROXY_REQUEST, look)
    await proxy.send(target=path)
    second = await proxy.send(target=path)
    assert (second.status, second.body, second.header("x-cache")) == (200, b"v2", "MISS")
    validation, unconditional = origin.requests_for(path)[1:]
    assert validation.header("if-none-match") == '"a"'
    assert unconditional.header("if-none-match") is None
    assert (await proxy.send(target=path)).header("x-cache") == "HIT"


@pytest.mark.parametrize("way", WAYS)
async def test_stale_if_error_answers_through_the_response_listeners(
    origin: CacheOrigin, path: str, ferryman_proxy: StartProxy, way: str
) -> None:
    sie = [("Cache-Control", "max-age=60, stale-if-error=600"), ("Age", "100")]
    origin.script(path, Reply(headers=sie, body=b"kept"), Reply(503, body=b"down"))
    proxy = await start(ferryman_proxy, origin, way, breaker={"enabled": False})
    saw: list[tuple[int, str | None]] = []

    def after(event: ProxyFilterEvent) -> None:
        assert event.response is not None
        saw.append((event.response.status_code, event.response.headers.get("x-cache")))

    listen(proxy, EVENT_FILTER_PROXY_RESPONSE, after)
    await proxy.send(target=path)
    on_5xx = await proxy.send(target=path)
    assert (on_5xx.status, on_5xx.body, on_5xx.header("x-cache")) == (200, b"kept", "STALE")
    origin.script(path, Reply(mode="drop"))
    on_drop = await proxy.send(target=path)
    assert (on_drop.status, on_drop.body, on_drop.header("x-cache")) == (200, b"kept", "STALE")
    assert saw == [(200, "MISS"), (200, "STALE"), (200, "STALE")]


@pytest.mark.parametrize("way", WAYS)
async def test_only_if_cached_is_a_504_the_listeners_see(
    origin: CacheOrigin, path: str, ferryman_proxy: StartProxy, way: str
) -> None:
    origin.script(path, Reply(headers=MAX_AGE))
    proxy = await start(ferryman_proxy, origin, way)
    saw: list[int] = []
    listen(
        proxy,
        EVENT_FILTER_PROXY_RESPONSE,
        lambda event: saw.append(event.response.status_code),
    )
    response = await proxy.send(target=path, headers={"Cache-Control": "only-if-cached"})
    assert response.status == 504 and saw == [504]
    assert origin.hits(path) == 0


async def test_an_answer_stored_on_one_way_is_a_hit_on_the_others(
    origin: CacheOrigin, ferryman_proxy: StartProxy
) -> None:
    path = f"/shared-{next(_paths)}"
    origin.script(path, Reply(headers=MAX_AGE, body=b"once"))
    proxy = await ferryman_proxy(url=origin.url)
    assert way_of(proxy) == "relay"
    assert (await proxy.send(target=path)).header("x-cache") == "MISS"
    listen(proxy, EVENT_FILTER_PROXY_REQUEST, lambda event: None)
    assert way_of(proxy) == "events"
    assert (await proxy.send(target=path)).header("x-cache") == "HIT"
    proxy.general()
    assert way_of(proxy) == "general"
    assert (await proxy.send(target=path)).header("x-cache") == "HIT"
    assert origin.hits(path) == 1


@pytest.mark.parametrize("way", ["relay", *WAYS])
async def test_a_head_that_missed_is_logged_with_its_cache_status(
    origin: CacheOrigin, path: str, ferryman_proxy: StartProxy, way: str
) -> None:
    origin.script(path, Reply(headers=MAX_AGE, body=b"body"))
    proxy = await start(ferryman_proxy, origin, way)
    if way != "relay":
        listen(proxy, EVENT_FILTER_PROXY_REQUEST, lambda event: None)
    assert way_of(proxy) == way
    head = await proxy.send("HEAD", path)
    assert (head.status, head.header("x-cache")) == (200, "MISS")
    lines = await proxy.stop()
    (line,) = logged(lines, path)
    assert line.endswith(" cache=MISS")
    assert f"{origin.url}{path} cache=MISS" in line  # (the upstream it went to, every way)


async def test_the_cache_waits_for_an_asynchronous_store(
    origin: CacheOrigin, path: str, ferryman_proxy: StartProxy
) -> None:
    # (the lookup is a task while the client's connection waits: Redis)
    origin.script(path, Reply(headers=MAX_AGE, body=b"from redis"))
    proxy = await ferryman_proxy(
        "cache.backend=redis", "cache.redis.url=redis://127.0.0.1:6379/0", url=origin.url
    )
    listen(proxy, EVENT_FILTER_PROXY_REQUEST, lambda event: None)
    assert way_of(proxy) == "events" and not proxy.cache.store.immediate
    assert (await proxy.send(target=path)).header("x-cache") == "MISS"
    assert await wait_until(lambda: not proxy.cache._tasks)
    hit = await proxy.send(target=path)
    assert (hit.header("x-cache"), hit.body) == ("HIT", b"from redis")
    assert origin.hits(path) == 1


@pytest.mark.parametrize("way", WAYS)
async def test_a_clients_conditional_that_a_fresh_answer_satisfies_gets_a_304(
    origin: CacheOrigin, path: str, ferryman_proxy: StartProxy, way: str
) -> None:
    """As on the plain relay: the cache answers the client's own If-None-Match with a 304
    (``X-Cache: HIT``), through the response listeners, without asking the origin."""
    origin.script(path, Reply(headers=[*MAX_AGE, ("Content-Type", "text/plain")], etag='"v1"'))
    proxy = await start(ferryman_proxy, origin, way)
    statuses: list[int] = []
    listen(proxy, EVENT_FILTER_PROXY_REQUEST, lambda event: None)
    listen(
        proxy,
        EVENT_FILTER_PROXY_RESPONSE,
        lambda event: statuses.append(event.response.status_code),
    )
    assert way_of(proxy) == way
    await proxy.send(target=path)
    matching = await proxy.send(target=path, headers={"If-None-Match": '"v1"'})
    other = await proxy.send(target=path, headers={"If-None-Match": '"v0"'})
    lines = await proxy.stop()
    assert (matching.status, matching.body, matching.header("x-cache")) == (304, b"", "HIT")
    assert matching.header("etag") == '"v1"' and matching.header("content-type") is None
    assert (other.status, other.header("x-cache")) == (200, "HIT")
    assert origin.hits(path) == 1
    assert statuses == [200, 304, 200]
    assert [line.rsplit(" ", 1)[-1] for line in logged(lines, path)][1] == "cache=HIT"
