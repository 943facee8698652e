"""The HTTP cache on the general path (issue 23): an endpoint with ``request_options`` or an
``http_client.filter.*`` listener keeps its cache, the very one the fast relay fills and reads.

Each test serves a real ``ferryman`` proxy (``tests/proxy/general_path.py``) in front of the
scripted origin (:class:`~tests.servers.cache_origin.CacheOrigin`, which counts what reaches
it), and asserts what a client gets (``X-Cache``, ``Age``, the body), what reached the origin,
the access log's ``cache=`` and the cache's counts (the metrics read them).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from tests.proxy.general_path import GENERAL, StartProxy, ferryman_proxy
from tests.servers.cache_origin import CacheOrigin, Reply
from tests.servers.slow_upstream import wait_until

__all__ = ["ferryman_proxy"]

MAX_AGE = [("Cache-Control", "max-age=60")]
_paths = itertools.count()


@pytest.fixture(scope="module")
def origin() -> Iterator[CacheOrigin]:
    server = CacheOrigin().start()
    yield server
    server.stop()


@pytest.fixture
def path() -> str:
    return f"/general-{next(_paths)}-{id(object())}"


async def test_a_hit_with_request_options_is_served_without_the_upstream(
    origin: CacheOrigin, path: str, ferryman_proxy: StartProxy
) -> None:
    origin.script(path, Reply(headers=MAX_AGE, body=b"stored"))
    proxy = await ferryman_proxy(url=origin.url, **GENERAL)
    assert proxy.takes_general_path()
    first = await proxy.send(target=path)
    second = await proxy.send(target=path)
    counts = proxy.cache.counts
    lines = await proxy.stop()
    assert first.status == 200 and first.header("x-cache") == "MISS"
    assert second.status == 200 and second.header("x-cache") == "HIT"
    assert second.body == b"stored" and second.header("age") is not None
    assert second.header("content-length") == "6"
    assert origin.hits(path) == 1
    assert (counts.miss, counts.hit, counts.stored) == (1, 1, 1)
    logged = [line for line in lines if f"GET {path} " in line]
    assert len(logged) == 2
    assert logged[0].endswith("cache=MISS") and " - cache=HIT" in logged[1]


async def test_a_hit_dispatches_no_http_client_filter_event(
    origin: CacheOrigin, path: str, ferryman_proxy: StartProxy
) -> None:
    origin.script(path, Reply(headers=MAX_AGE, body=b"once"))
    proxy = await ferryman_proxy(url=origin.url)
    proxy.general()
    assert proxy.takes_general_path()
    assert (await proxy.send(target=path)).header("x-cache") == "MISS"
    assert len(proxy.filtered) == 1  # the miss went to the network through the filters
    hit = await proxy.send(target=path)
    assert hit.header("x-cache") == "HIT" and hit.body == b"once"
    assert len(proxy.filtered) == 1  # the hit did not
    assert origin.hits(path) == 1


async def test_an_answer_stored_by_one_path_is_a_hit_on_the_other(
    origin: CacheOrigin, ferryman_proxy: StartProxy
) -> None:
    relayed, general = f"/relayed-{next(_paths)}", f"/general-{next(_paths)}"
    origin.script(relayed, Reply(headers=MAX_AGE, body=b"by the relay"))
    origin.script(general, Reply(headers=MAX_AGE, body=b"by the handler"))
    proxy = await ferryman_proxy(url=origin.url)
    assert not proxy.takes_general_path()
    assert (await proxy.send(target=relayed)).header("x-cache") == "MISS"
    proxy.general()
    assert proxy.takes_general_path()
    hit = await proxy.send(target=relayed)
    assert (hit.header("x-cache"), hit.body) == ("HIT", b"by the relay")
    assert (await proxy.send(target=general)).header("x-cache") == "MISS"
    proxy.general(False)
    assert not proxy.takes_general_path()
    hit = await proxy.send(target=general)
    assert (hit.header("x-cache"), hit.body) == ("HIT", b"by the handler")
    assert origin.hits(relayed) == 1 and origin.hits(general) == 1


async def test_answers_that_say_nothing_are_not_stored(
    origin: CacheOrigin, path: str, ferryman_proxy: StartProxy
) -> None:
    origin.script(path, Reply(body=b"fresh each time"))
    proxy = await ferryman_proxy(url=origin.url, **GENERAL)
    for _ in range(2):
        response = await proxy.send(target=path)
        assert response.header("x-cache") == "MISS" and response.body == b"fresh each time"
    assert origin.hits(path) == 2
    assert proxy.cache.counts.stored == 0


async def test_a_stale_answer_is_validated_and_the_304_merged(
    origin: CacheOrigin, path: str, ferryman_proxy: StartProxy
) -> None:
    origin.script(path, Reply(headers=[("Cache-Control", "max-age=0")], etag='"v1"', body=b"v1"))
    proxy = await ferryman_proxy(url=origin.url, **GENERAL)
    assert (await proxy.send(target=path)).header("x-cache") == "MISS"
    again = await proxy.send(target=path)
    assert again.status == 200 and again.header("x-cache") == "REVALIDATED"
    assert again.body == b"v1"
    validation = origin.requests_for(path)[1]
    assert validation.header("if-none-match") == '"v1"'
    assert proxy.cache.counts.revalidated == 1


async def test_a_304_about_another_answer_is_asked_again_unconditionally(
    origin: CacheOrigin, path: str, ferryman_proxy: StartProxy
) -> None:
    # As on the relay (RFC 9111 4.3.4): the client asked unconditionally, never gets the 304.
    origin.script(
        path,
        Reply(headers=[("Cache-Control", "max-age=0")], etag='"a"', body=b"v1"),
        Reply(status=304, headers=[("ETag", '"b"'), *MAX_AGE]),
        Reply(headers=MAX_AGE, etag='"b"', body=b"v2"),
    )
    proxy = await ferryman_proxy(url=origin.url, **GENERAL)
    await proxy.send(target=path)
    again = await proxy.send(target=path)
    assert (again.status, again.body, again.header("x-cache")) == (200, b"v2", "MISS")
    validation, unconditional = origin.requests_for(path)[1:]
    assert validation.header("if-none-match") == '"a"'
    assert unconditional.header("if-none-match") is None
    hit = await proxy.send(target=path)
    assert (hit.header("x-cache"), hit.body) == ("HIT", b"v2")
    assert origin.hits(path) == 3


async def test_a_304_that_may_not_be_stored_answers_once_and_drops_the_entry(
    origin: CacheOrigin, path: str, ferryman_proxy: StartProxy
) -> None:
    origin.script(
        path,
        Reply(headers=[("Cache-Control", "max-age=0")], etag='"a"', body=b"v1"),
        Reply(status=304, headers=[("ETag", '"a"'), ("Cache-Control", "no-store")]),
        Reply(headers=[("Cache-Control", "no-store")], etag='"a"', body=b"v1 again"),
    )
    proxy = await ferryman_proxy(url=origin.url, **GENERAL)
    await proxy.send(target=path)
    once = await proxy.send(target=path)
    assert (once.status, once.body, once.header("x-cache")) == (200, b"v1", "REVALIDATED")
    assert once.header("cache-control") == "no-store"
    after = await proxy.send(target=path)
    assert (after.status, after.body, after.header("x-cache")) == (200, b"v1 again", "MISS")
    assert origin.requests_for(path)[2].header("if-none-match") is None


async def test_stale_while_revalidate_validates_in_the_background(
    origin: CacheOrigin, path: str, ferryman_proxy: StartProxy
) -> None:
    swr = [("Cache-Control", "max-age=60, stale-while-revalidate=600")]
    origin.script(
        path,
        Reply(headers=[*swr, ("Age", "100")], body=b"old", etag='"a"'),
        Reply(headers=swr, etag='"a"'),
    )
    proxy = await ferryman_proxy(url=origin.url, **GENERAL)
    await proxy.send(target=path)
    stale = await proxy.send(target=path)
    assert (stale.header("x-cache"), stale.body) == ("STALE", b"old")
    assert await wait_until(lambda: origin.hits(path) == 2)
    assert origin.requests_for(path)[1].header("if-none-match") == '"a"'
    assert await wait_until(lambda: proxy.cache.counts.stored == 2)
    fresh = await proxy.send(target=path)
    assert (fresh.header("x-cache"), fresh.body) == ("HIT", b"old")
    assert origin.hits(path) == 2


async def test_stale_if_error_serves_the_stored_answer_on_a_5xx_or_a_dropped_connection(
    origin: CacheOrigin, path: str, ferryman_proxy: StartProxy
) -> None:
    sie = [("Cache-Control", "max-age=60, stale-if-error=600"), ("Age", "100")]
    origin.script(path, Reply(headers=sie, body=b"kept"), Reply(status=503, body=b"down"))
    proxy = await ferryman_proxy(url=origin.url, breaker={"enabled": False}, **GENERAL)
    assert (await proxy.send(target=path)).header("x-cache") == "MISS"
    stale = await proxy.send(target=path)
    assert (stale.status, stale.header("x-cache"), stale.body) == (200, "STALE", b"kept")
    assert origin.hits(path) == 2
    origin.script(path, Reply(mode="drop"))
    dropped = await proxy.send(target=path)
    assert (dropped.status, dropped.header("x-cache"), dropped.body) == (200, "STALE", b"kept")
    assert proxy.cache.counts.stale == 2


async def test_an_unsafe_method_invalidates_what_the_relay_stored(
    origin: CacheOrigin, path: str, ferryman_proxy: StartProxy
) -> None:
    origin.script(path, Reply(headers=MAX_AGE, body=b"before"))
    proxy = await ferryman_proxy(url=origin.url)
    assert (await proxy.send(target=path)).header("x-cache") == "MISS"  # (the relay stores)
    proxy.general()
    assert (await proxy.send("POST", path, b"change")).status == 200
    origin.script(path, Reply(headers=MAX_AGE, body=b"after"))
    response = await proxy.send(target=path)
    assert (response.header("x-cache"), response.body) == ("MISS", b"after")


async def test_a_head_is_answered_from_a_stored_get(
    origin: CacheOrigin, path: str, ferryman_proxy: StartProxy
) -> None:
    origin.script(path, Reply(headers=MAX_AGE, body=b"twelve bytes"))
    proxy = await ferryman_proxy(url=origin.url, **GENERAL)
    await proxy.send(target=path)
    head = await proxy.send("HEAD", path)
    assert head.status == 200 and head.header("x-cache") == "HIT"
    assert head.header("content-length") == "12" and head.body == b""
    assert origin.hits(path) == 1


async def test_a_cut_answer_is_not_stored(
    origin: CacheOrigin, path: str, ferryman_proxy: StartProxy
) -> None:
    origin.script(
        path,
        Reply(headers=MAX_AGE, body=b"x" * 1000, mode="cut"),
        Reply(headers=MAX_AGE, body=b"whole"),
    )
    proxy = await ferryman_proxy(url=origin.url, breaker={"enabled": False}, **GENERAL)
    with pytest.raises(Exception):  # noqa: B017 (the client's connection is cut, however read)
        await proxy.send(target=path)
    response = await proxy.send(target=path)
    assert (response.header("x-cache"), response.body) == ("MISS", b"whole")
    assert origin.hits(path) == 2


async def test_only_if_cached_is_a_504_without_the_upstream(
    origin: CacheOrigin, path: str, ferryman_proxy: StartProxy
) -> None:
    origin.script(path, Reply(headers=MAX_AGE))
    proxy = await ferryman_proxy(url=origin.url, **GENERAL)
    response = await proxy.send(target=path, headers={"Cache-Control": "only-if-cached"})
    assert response.status == 504
    assert origin.hits(path) == 0


async def test_an_endpoint_whose_cache_is_off_relays_uncached(
    origin: CacheOrigin, path: str, ferryman_proxy: StartProxy
) -> None:
    origin.script(path, Reply(headers=MAX_AGE))
    proxy = await ferryman_proxy("cache.endpoints.api.enabled=false", url=origin.url, **GENERAL)
    for _ in range(2):
        assert (await proxy.send(target=path)).header("x-cache") is None
    assert origin.hits(path) == 2
