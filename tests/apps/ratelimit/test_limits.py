"""Inbound limits and outbound budgets on a served proxy, with a real client and upstream."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import pytest

import ferryman
from ferryman.apps.storage import Storage
from ferryman.proxy.events import (
    EVENT_FILTER_PROXY_REQUEST,
    EVENT_FILTER_PROXY_RESPONSE,
    ProxyFilterEvent,
)
from ferryman.proxy.server import ProxyServer
from tests.apps.conftest import url_of
from tests.apps.ratelimit.conftest import ServeConfig
from tests.servers.edge import EdgeServer
from tests.servers.slow_upstream import roundtrip


def limited_config(edge: EdgeServer, limit: str, *, extra: str = "", endpoint: str = "") -> str:
    return f"""
applications: [proxy, metrics, ratelimit]
proxy:
  port: 0
  endpoints:
    - {{name: api, port: 0, url: "{edge.url}"{endpoint}}}
ratelimit:
  endpoints:
    api: {limit}
{extra}
"""


def reached(edge: EdgeServer, marker: str) -> int:
    """Requests the upstream received with ``marker`` in their target."""
    return sum(1 for _, target in list(edge.requests) if marker in target)


async def statuses(
    client: ferryman.AsyncClient, url: str, count: int, **options: object
) -> list[int]:
    return [(await client.get(url, **options)).status_code for _ in range(count)]  # type: ignore[arg-type]


async def test_past_the_burst_the_relay_answers_429_and_the_upstream_never_hears(
    serve_config: ServeConfig, edge: EdgeServer, client: ferryman.AsyncClient
) -> None:
    server = await serve_config(limited_config(edge, "{requests: 1, per: 60, burst: 3}"))
    marker = uuid.uuid4().hex
    url = url_of(server, "api", f"/echo?m={marker}")
    assert await statuses(client, url, 3) == [200, 200, 200]
    refused = await client.get(url)
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/json"
    # One token per 60 s, the last one just taken: the next is a minute away.
    assert 55 <= int(refused.headers["retry-after"]) <= 60
    body = refused.json()
    assert body["status"] == 429
    assert body["retry_after"] == int(refused.headers["retry-after"])
    assert "'api'" in body["message"] and "127.0.0.1" in body["message"]
    assert reached(edge, marker) == 3
    # The connection stays usable after the 429 (the request was read whole).
    assert (await client.get(url)).status_code == 429


async def test_tokens_come_back_at_the_rate(
    serve_config: ServeConfig, edge: EdgeServer, client: ferryman.AsyncClient
) -> None:
    server = await serve_config(limited_config(edge, "{requests: 20, burst: 1}"))
    url = url_of(server, "api", "/echo")
    assert await statuses(client, url, 2) == [200, 429]
    await asyncio.sleep(0.1)  # two tokens' time at 20/s
    assert (await client.get(url)).status_code == 200


async def test_a_header_key_gives_each_value_its_bucket_and_the_address_the_rest(
    serve_config: ServeConfig, edge: EdgeServer, client: ferryman.AsyncClient
) -> None:
    config = limited_config(edge, '{requests: 1, per: 60, burst: 1, key: "header:X-Tenant"}')
    server = await serve_config(config)
    url = url_of(server, "api", "/echo")
    assert await statuses(client, url, 2, headers={"X-Tenant": "acme"}) == [200, 429]
    assert await statuses(client, url, 2, headers={"X-Tenant": "globex"}) == [200, 429]
    # No header: the client's address is the key (leaving the header out escapes nothing).
    assert await statuses(client, url, 2) == [200, 429]
    refused = await client.get(url, headers={"X-Tenant": "acme"})
    assert "x-tenant 'acme'" in refused.json()["message"]


async def test_an_api_key_is_never_shown(
    serve_config: ServeConfig, edge: EdgeServer, client: ferryman.AsyncClient
) -> None:
    config = limited_config(edge, '{requests: 1, per: 60, burst: 1, key: "api_key:X-Api-Key"}')
    server = await serve_config(config)
    url = url_of(server, "api", "/echo")
    secret = "sk-" + uuid.uuid4().hex
    assert await statuses(client, url, 2, headers={"X-Api-Key": secret}) == [200, 429]
    assert (await client.get(url, headers={"X-Api-Key": "another"})).status_code == 200
    refused = await client.get(url, headers={"X-Api-Key": secret})
    assert refused.status_code == 429
    assert secret not in refused.text
    assert "the API key in x-api-key" in refused.json()["message"]


@pytest.mark.parametrize("key", ["header:X-Tenant", "api_key:X-Tenant"])
async def test_a_key_header_sent_twice_is_refused_before_any_bucket(
    serve_config: ServeConfig, edge: EdgeServer, key: str
) -> None:
    # A fresh value first and the real one after was a fresh bucket for every request (the
    # limiter read the first), while the upstream may read the other.
    server = await serve_config(limited_config(edge, f'{{requests: 1, per: 60, key: "{key}"}}'))
    _host, port = server.addresses["api"]
    marker = uuid.uuid4().hex
    for turn in range(3):
        head = (
            f"GET /echo?m={marker} HTTP/1.1\r\nHost: p\r\n"
            f"X-Tenant: fresh-{turn}\r\nx-tenant: acme\r\n\r\n"
        )
        response = await roundtrip(port, head.encode())
        assert response.status == 400
        assert "x-tenant came more than once" in response.body.decode()
    assert reached(edge, marker) == 0
    one = await roundtrip(
        port, f"GET /echo?m={marker} HTTP/1.1\r\nHost: p\r\nX-Tenant: acme\r\n\r\n".encode()
    )
    assert one.status == 200 and reached(edge, marker) == 1


async def test_forwarded_addresses_count_only_from_trusted_proxies(
    serve_config: ServeConfig, edge: EdgeServer, client: ferryman.AsyncClient
) -> None:
    trusting = limited_config(
        edge, "{requests: 1, per: 60, burst: 1}", endpoint=', trusted_proxies: ["127.0.0.1"]'
    )
    server = await serve_config(trusting)
    url = url_of(server, "api", "/echo")
    for address in ("203.0.113.1", "203.0.113.2"):  # two clients behind a trusted proxy
        assert await statuses(client, url, 2, headers={"X-Forwarded-For": address}) == [200, 429]
    # Without trust, the header is the client's say: one bucket, whatever it claims.
    untrusting = await serve_config(limited_config(edge, "{requests: 1, per: 60, burst: 1}"))
    url = url_of(untrusting, "api", "/echo")
    assert await statuses(client, url, 1, headers={"X-Forwarded-For": "203.0.113.1"}) == [200]
    assert await statuses(client, url, 1, headers={"X-Forwarded-For": "203.0.113.9"}) == [429]


def budget_config(edge: EdgeServer, budget: str) -> str:
    return f"""
applications: [proxy, metrics, ratelimit]
proxy:
  port: 0
  endpoints:
    - {{name: one, port: 0, url: "{edge.url}"}}
    - {{name: two, port: 0, url: "{edge.url}/base"}}
ratelimit:
  upstreams:
    - {{url: "{edge.url}", {budget}}}
"""


async def test_over_budget_requests_wait_their_turn_across_endpoints(
    serve_config: ServeConfig, edge: EdgeServer, client: ferryman.AsyncClient
) -> None:
    server = await serve_config(budget_config(edge, "requests: 10, burst: 1, max_wait: 5"))
    marker = uuid.uuid4().hex
    urls = [url_of(server, name, f"/echo?m={marker}") for name in ("one", "two")] * 3
    began = time.monotonic()
    answers = await asyncio.gather(*(client.get(url) for url in urls))
    took = time.monotonic() - began
    assert [a.status_code for a in answers] == [200] * 6
    assert reached(edge, marker) == 6
    # Six requests at 10/s with no burst: the last one went 0.5 s after the first.
    assert took >= 0.45
    assert _sample(await _metrics(client, server), "ferryman_upstream_budget_waited_total") == 5


async def test_a_turn_beyond_max_wait_or_too_many_waiting_is_a_429_at_once(
    serve_config: ServeConfig, edge: EdgeServer, client: ferryman.AsyncClient
) -> None:
    server = await serve_config(
        budget_config(edge, "requests: 2, burst: 1, max_wait: 1, max_waiters: 50")
    )
    marker = uuid.uuid4().hex
    url = url_of(server, "one", f"/echo?m={marker}")
    answers = await asyncio.gather(*(client.get(url) for _ in range(5)))
    codes = sorted(a.status_code for a in answers)
    # Turns at 0, 0.5 and 1 s are within max_wait; 1.5 and 2 s are not.
    assert codes == [200, 200, 200, 429, 429]
    refused = next(a for a in answers if a.status_code == 429)
    assert "outbound rate limit" in refused.json()["message"]
    assert int(refused.headers["retry-after"]) >= 1
    assert reached(edge, marker) == 3

    crowded = await serve_config(
        budget_config(edge, "requests: 1, burst: 1, max_wait: 30, max_waiters: 2")
    )
    url = url_of(crowded, "one", "/echo")
    assert (await client.get(url)).status_code == 200  # (the burst)
    waiting = [asyncio.ensure_future(client.get(url)) for _ in range(2)]
    await asyncio.sleep(0.2)
    third = await client.get(url)
    assert third.status_code == 429
    assert "2 requests wait already" in third.json()["message"]
    for task in waiting:
        task.cancel()


async def test_limited_requests_show_in_the_metrics(
    serve_config: ServeConfig, edge: EdgeServer, client: ferryman.AsyncClient
) -> None:
    server = await serve_config(limited_config(edge, "{requests: 1, per: 60, burst: 2}"))
    url = url_of(server, "api", "/echo")
    assert await statuses(client, url, 5) == [200, 200, 429, 429, 429]
    text = await _metrics(client, server)
    assert _sample(text, 'ferryman_rate_limited_total{endpoint="api"}') == 3
    assert _sample(text, 'ferryman_request_errors_total{endpoint="api",kind="rate_limited"}') == 3


async def _metrics(client: ferryman.AsyncClient, server: ProxyServer) -> str:
    host, port = server.addresses["kernel"]
    return (await client.get(f"http://{host}:{port}/metrics")).text


def _sample(text: str, prefix: str) -> float:
    for line in text.splitlines():
        if line.startswith(prefix + " ") or (line.startswith(prefix) and "{" not in prefix):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {prefix} in\n{text}")


def _response_listener(seen: list[tuple[int, str | None]], *, replace: bool, asynchronous: bool):  # type: ignore[no-untyped-def]
    """A ``proxy.filter.response`` listener that notes each answer's status and Retry-After,
    and (``replace``) answers a 429 with its own 503."""

    def look(event: ProxyFilterEvent) -> None:
        response = event.response
        assert response is not None
        seen.append((response.status_code, response.headers.get("retry-after")))
        if replace and response.status_code == 429:
            event.response = ferryman.Response(
                503, json={"mine": True}, headers={"X-Replaced": "yes"}
            )

    if not asynchronous:
        return look

    async def alook(event: ProxyFilterEvent) -> None:
        await asyncio.sleep(0)
        look(event)

    return alook


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
async def test_a_proxy_filter_response_listener_sees_and_may_replace_the_limits_429(
    serve_config: ServeConfig, edge: EdgeServer, client: ferryman.AsyncClient, asynchronous: bool
) -> None:
    server = await serve_config(limited_config(edge, "{requests: 1, per: 60, burst: 1}"))
    seen: list[tuple[int, str | None]] = []
    listener = _response_listener(seen, replace=False, asynchronous=asynchronous)
    server.system.dispatcher.add_listener(EVENT_FILTER_PROXY_RESPONSE, listener)
    marker = uuid.uuid4().hex
    url = url_of(server, "api", f"/echo?m={marker}")
    assert (await client.get(url)).status_code == 200
    refused = await client.get(url)
    assert refused.status_code == 429 and refused.json()["status"] == 429
    retry_after = refused.headers["retry-after"]
    assert seen == [(200, None), (429, retry_after)]  # the listener saw the 429, as sent
    # A listener that replaces it: its answer goes instead, on the same connection.
    server.system.dispatcher.remove_listener(EVENT_FILTER_PROXY_RESPONSE, listener)
    seen.clear()
    replacing = _response_listener(seen, replace=True, asynchronous=asynchronous)
    server.system.dispatcher.add_listener(EVENT_FILTER_PROXY_RESPONSE, replacing)
    replaced = [await client.get(url) for _ in range(2)]
    assert [r.status_code for r in replaced] == [503, 503]
    assert replaced[0].json() == {"mine": True} and replaced[0].headers["x-replaced"] == "yes"
    assert [status for status, _ in seen] == [429, 429]
    assert reached(edge, marker) == 1  # the upstream heard of none of the refused ones


async def test_a_proxy_filter_response_listener_may_replace_a_budgets_429(
    serve_config: ServeConfig, edge: EdgeServer, client: ferryman.AsyncClient
) -> None:
    """A budget refuses in ``Relay.start``, after the request's filters ran: the listener sees
    the 429 with the request's own event."""
    server = await serve_config(
        budget_config(edge, "requests: 1, per: 60, burst: 1, max_wait: 0.1")
    )
    seen: list[tuple[int, str | None]] = []
    requests: list[str] = []
    dispatcher = server.system.dispatcher
    dispatcher.add_listener(
        EVENT_FILTER_PROXY_REQUEST, lambda event: requests.append(event.request.url.path)
    )
    dispatcher.add_listener(
        EVENT_FILTER_PROXY_RESPONSE,
        _response_listener(seen, replace=True, asynchronous=False),
    )
    marker = uuid.uuid4().hex
    url = url_of(server, "one", f"/echo?m={marker}")
    assert (await client.get(url)).status_code == 200
    replaced = await client.get(url)
    assert replaced.status_code == 503 and replaced.headers["x-replaced"] == "yes"
    assert [status for status, _ in seen] == [200, 429]
    assert requests == ["/echo", "/echo"]
    assert reached(edge, marker) == 1


async def test_the_overviews_stats_count_the_proxys_429s(
    serve_config: ServeConfig, edge: EdgeServer, client: ferryman.AsyncClient, tmp_path: Path
) -> None:
    database = tmp_path / "transactions.db"
    server = await serve_config(
        limited_config(edge, "{requests: 1, per: 60, burst: 1}").replace(
            "applications: [proxy, metrics, ratelimit]",
            "applications: [proxy, metrics, ratelimit, storage, dashboard]",
        )
        + f"storage: {{url: 'sqlite:///{database}', flush_interval: 0.05}}\n"
    )
    url = url_of(server, "api", "/echo")
    assert await statuses(client, url, 3) == [200, 429, 429]
    storage = server.system.provider.resolve(Storage)
    await storage.flush(10)
    host, port = server.addresses["kernel"]
    stats = (await client.get(f"http://{host}:{port}/api/stats")).json()
    assert stats["rate_limited"] == 2 and stats["limited_by_proxy"] == 2
