"""What storage keeps of answers the cache gave (the head the client got) and of requests that
went again (each failed try), as the dashboard's JSON API shows them (validated against its
OpenAPI document), on SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from openapi_schema_validator import OAS31Validator

import ferryman
from tests.apps.storage.test_api import Checked
from tests.servers.cache_origin import CacheOrigin, Reply

_paths = itertools.count()


@pytest.fixture(scope="module")
def origin() -> Iterator[CacheOrigin]:
    server = CacheOrigin().start()
    yield server
    server.stop()


RETRY_503 = (
    "proxy.endpoints.0.retry.statuses=[503]",
    "proxy.endpoints.0.retry.backoff=0",
    "proxy.endpoints.0.breaker.enabled=false",
)


@pytest.fixture
async def api(
    serve: Any, database_url: str, origin: CacheOrigin, client: ferryman.AsyncClient
) -> Checked:
    served = await serve(database_url, [("api", origin.url)], *RETRY_503)
    document = (await client.get(served.api + "/openapi.json")).json()
    OAS31Validator.check_schema({"$defs": document["components"]["schemas"]})
    return Checked(client, served, document)


async def stored(api: Checked, path: str) -> list[dict[str, Any]]:
    """The details of the transactions for ``path``, oldest first."""
    await api.served.storage.flush(10)
    _, page = await api.call("GET", "/transactions", q=path)
    details = []
    for item in reversed(page["items"]):
        status, detail = await api.call("GET", f"/transactions/{item['id']}")
        assert status == 200
        details.append(detail)
    return details


def headers(detail: dict[str, Any]) -> dict[str, str]:
    return {name.lower(): value for name, value in detail["response"]["headers"]}


async def test_a_revalidated_answer_is_stored_with_the_head_the_client_got(
    api: Checked, origin: CacheOrigin
) -> None:
    path = f"/revalidated-{next(_paths)}"
    origin.script(
        path,
        Reply(
            headers=[("Cache-Control", "max-age=60"), ("Age", "100"), ("X-Version", "1")],
            body=b"v1",
            etag='"v1"',
        ),
        Reply(headers=[("Cache-Control", "max-age=60"), ("X-Version", "2")], etag='"v1"'),
    )
    first = await api.client.get(api.served.url("api", path))
    second = await api.client.get(api.served.url("api", path))
    assert first.headers["x-cache"] == "MISS"
    assert second.headers["x-cache"] == "REVALIDATED" and second.content == b"v1"
    assert origin.hits(path) == 2
    miss, revalidated = await stored(api, path)
    assert headers(miss)["x-version"] == "1" and headers(miss)["x-cache"] == "MISS"
    got = headers(revalidated)
    assert revalidated["status"] == 200 and revalidated["cache"] == "REVALIDATED"
    assert got["x-cache"] == "REVALIDATED" and got["x-version"] == "2"
    assert got["etag"] == '"v1"' and got["content-length"] == "2"
    assert got["age"] == second.headers["age"]
    assert revalidated["response"]["body"]["text"] == "v1"


async def test_a_stale_answer_on_a_5xx_is_stored_with_the_head_the_client_got(
    api: Checked, origin: CacheOrigin
) -> None:
    path = f"/stale-on-error-{next(_paths)}"
    kept = [("Cache-Control", "max-age=60, stale-if-error=600"), ("Age", "100"), ("X-Kept", "yes")]
    origin.script(path, Reply(headers=kept, body=b"kept"), Reply(503, body=b"down"))
    await api.client.get(api.served.url("api", path))
    on_5xx = await api.client.get(api.served.url("api", path))
    assert on_5xx.status_code == 200 and on_5xx.headers["x-cache"] == "STALE"
    _, stale = await stored(api, path)
    got = headers(stale)
    assert stale["status"] == 200 and stale["cache"] == "STALE"
    assert got["x-cache"] == "STALE" and got["x-kept"] == "yes"
    assert got["cache-control"] == "max-age=60, stale-if-error=600"
    assert stale["response"]["body"]["text"] == "kept"


async def test_a_stale_answer_on_a_dropped_connection_keeps_its_head(
    api: Checked, origin: CacheOrigin
) -> None:
    path = f"/stale-on-drop-{next(_paths)}"
    kept = [("Cache-Control", "max-age=60, stale-if-error=600"), ("Age", "100"), ("X-Kept", "yes")]
    origin.script(path, Reply(headers=kept, body=b"kept"), Reply(mode="drop"))
    await api.client.get(api.served.url("api", path))
    dropped = await api.client.get(api.served.url("api", path))
    assert dropped.status_code == 200 and dropped.headers["x-cache"] == "STALE"
    _, stale = await stored(api, path)
    assert headers(stale)["x-kept"] == "yes" and stale["cache"] == "STALE"


async def test_a_request_that_went_again_keeps_each_failed_try(
    api: Checked, origin: CacheOrigin
) -> None:
    path = f"/flaky-{next(_paths)}"
    origin.script(path, Reply(503, body=b"busy"), Reply(503, body=b"busy"), Reply(200, body=b"ok"))
    steady = f"/steady-{next(_paths)}"
    origin.script(steady, Reply(200, body=b"ok"))
    flaky = await api.client.get(api.served.url("api", path))
    assert flaky.status_code == 200 and flaky.content == b"ok"
    await api.client.get(api.served.url("api", steady))
    assert origin.hits(path) == 3
    [retried] = await stored(api, path)
    assert retried["attempts"] == 3 and retried["status"] == 200
    failed = {"upstream": origin.url, "failure": "answered 503"}
    assert retried["failed_attempts"] == [failed, failed]
    _, page = await api.call("GET", "/transactions", q=path)
    assert [item["attempts"] for item in page["items"]] == [3]
    [once] = await stored(api, steady)
    assert once["attempts"] == 1 and once["failed_attempts"] == []


async def test_cache_verdicts_are_a_facet_a_filter_and_a_ratio_and_429s_are_counted(
    api: Checked, origin: CacheOrigin
) -> None:
    path = f"/facets-{next(_paths)}"
    origin.script(path, Reply(headers=[("Cache-Control", "max-age=60")], body=b"kept"))
    limited = f"/limited-{next(_paths)}"
    origin.script(limited, Reply(429, headers=[("Retry-After", "5")], body=b"slow down"))
    for _ in range(3):
        await api.client.get(api.served.url("api", path))  # MISS, HIT, HIT
    await api.client.get(api.served.url("api", limited))  # MISS (not stored), a 429
    await api.client.post(api.served.url("api", path), content=b"x")  # the cache looks not
    await api.served.storage.flush(10)
    _, facets = await api.call("GET", "/facets")
    assert facets["cache"] == {"HIT": 2, "MISS": 2, "none": 1}
    _, hits = await api.call("GET", "/transactions", cache="HIT")
    assert [item["target"] for item in hits["items"]] == [path, path]
    assert {item["cache"] for item in hits["items"]} == {"HIT"}
    _, unlooked = await api.call("GET", "/transactions", cache="none")
    assert [item["method"] for item in unlooked["items"]] == ["POST"]
    _, stats = await api.call("GET", "/stats")
    assert stats["cache"] == {"looked": 4, "statuses": {"HIT": 2, "MISS": 2}, "hit_ratio": 0.5}
    assert stats["rate_limited"] == 1 and stats["limited_by_proxy"] == 0
    status, error = await api.call("GET", "/transactions", cache="H!T")
    assert status == 400 and "cache" in error["message"]
