"""The metrics of a served proxy, scraped at /metrics on the kernel's port and parsed with
prometheus_client's own parser: counts that match the requests sent, histograms that add up,
errors by kind, the upstream pools' gauges; and the kinds read back from the error words."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

import ferryman
from ferryman.apps.metrics.counters import BUCKETS
from ferryman.proxy import errors
from ferryman.proxy.server import ProxyServer
from tests.apps.conftest import serve_with, stop, url_of
from tests.servers.edge import EdgeServer


@pytest.fixture
async def proxy(edge: EdgeServer, refused_url: str) -> AsyncIterator[ProxyServer]:
    # (without storage, on by default: its gauges are tested with it, below)
    server = await serve_with(
        [("api", edge.url), ("down", refused_url)], ["applications=[proxy, accesslog, metrics]"]
    )
    try:
        yield server
    finally:
        await stop(server)


async def scrape(client: ferryman.AsyncClient, proxy: ProxyServer) -> dict[str, list[Sample]]:
    response = await client.get(url_of(proxy, "kernel", "/metrics"))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {family.name: family.samples for family in text_string_to_metric_families(response.text)}


def value(samples: list[Sample], name: str, **labels: str) -> float:
    found = [s.value for s in samples if s.name == name and s.labels == labels]
    assert len(found) == 1, (name, labels, samples)
    return found[0]


async def test_counts_match_the_requests_sent(
    proxy: ProxyServer, client: ferryman.AsyncClient, refused_url: str
) -> None:
    empty = await scrape(client, proxy)
    for status_class in ("1xx", "2xx", "3xx", "4xx", "5xx"):  # every series exists from start
        assert (
            value(
                empty["ferryman_requests"],
                "ferryman_requests_total",
                endpoint="api",
                status_class=status_class,
            )
            == 0
        )
    sent = {"2xx": 0, "4xx": 0, "5xx": 0}
    for i in range(60):
        code = (200, 404, 503)[i % 3]
        response = await client.get(url_of(proxy, "api", f"/status?code={code}"))
        assert response.status_code == code
        sent[f"{code // 100}xx"] += 1
    posted = await client.post(url_of(proxy, "api", "/echo"), content=b"x" * 1000)
    sent["2xx"] += 1
    for _ in range(4):
        assert (await client.get(url_of(proxy, "down", "/x"))).status_code == 502
    families = await scrape(client, proxy)
    requests = families["ferryman_requests"]
    for status_class, count in sent.items():
        assert (
            value(requests, "ferryman_requests_total", endpoint="api", status_class=status_class)
            == count
        )
    assert value(requests, "ferryman_requests_total", endpoint="down", status_class="5xx") == 4
    errors_ = families["ferryman_request_errors"]
    assert value(errors_, "ferryman_request_errors_total", endpoint="down", kind="refused") == 4
    assert not [s for s in errors_ if s.labels["endpoint"] == "api"]
    assert (
        value(
            families["ferryman_request_body_bytes"],
            "ferryman_request_body_bytes_total",
            endpoint="api",
        )
        == 1000
    )
    assert value(
        families["ferryman_response_body_bytes"],
        "ferryman_response_body_bytes_total",
        endpoint="api",
    ) == 60 * len(b"body") + len(posted.content)


async def test_the_histogram_is_consistent(
    proxy: ProxyServer, client: ferryman.AsyncClient
) -> None:
    for _ in range(25):
        await client.get(url_of(proxy, "api", "/echo"))
    await client.get(url_of(proxy, "api", "/slow-head?delay=0.3"))
    samples = (await scrape(client, proxy))["ferryman_request_duration_seconds"]
    buckets = [
        (s.labels["le"], s.value)
        for s in samples
        if s.name.endswith("_bucket") and s.labels["endpoint"] == "api"
    ]
    assert [le for le, _ in buckets] == [*(str(b) for b in BUCKETS), "+Inf"]
    counts = [count for _, count in buckets]
    assert counts == sorted(counts)  # cumulative
    total = value(samples, "ferryman_request_duration_seconds_count", endpoint="api")
    assert counts[-1] == total == 26
    assert dict(buckets)["0.25"] == 25  # the slow one is above 0.25 s, below 0.5 s
    assert dict(buckets)["0.5"] == 26
    assert 0.3 <= value(samples, "ferryman_request_duration_seconds_sum", endpoint="api") < 2


async def test_the_upstream_pools_are_read_at_scrape_time(
    proxy: ProxyServer, client: ferryman.AsyncClient, edge: EdgeServer
) -> None:
    slow = [
        asyncio.create_task(client.get(url_of(proxy, "api", "/slow-head?delay=0.5")))
        for _ in range(3)
    ]
    await asyncio.sleep(0.2)
    busy = (await scrape(client, proxy))["ferryman_upstream_connections"]
    labels = {"endpoint": "api", "upstream": edge.url}
    assert value(busy, "ferryman_upstream_connections", **labels, state="in_use") == 3
    await asyncio.gather(*slow)
    families = await scrape(client, proxy)
    after = families["ferryman_upstream_connections"]
    assert value(after, "ferryman_upstream_connections", **labels, state="in_use") == 0
    assert value(after, "ferryman_upstream_connections", **labels, state="idle") == 3
    assert (
        value(
            families["ferryman_upstream_waiting_requests"],
            "ferryman_upstream_waiting_requests",
            **labels,
        )
        == 0
    )
    assert "ferryman_storage_queue_depth" not in families  # no storage application here


async def test_off_the_path_and_methods(proxy: ProxyServer, client: ferryman.AsyncClient) -> None:
    assert (await client.post(url_of(proxy, "kernel", "/metrics"))).status_code == 405
    assert (await client.get(url_of(proxy, "kernel", "/metricsx"))).status_code == 404
    openmetrics = await client.get(
        url_of(proxy, "kernel", "/metrics"), headers={"Accept": "application/openmetrics-text"}
    )
    assert openmetrics.headers["content-type"].startswith("application/openmetrics-text")
    assert openmetrics.text.endswith("# EOF\n")


@pytest.mark.parametrize(
    "error",
    [
        errors.connect_error(ConnectionRefusedError(), "http://u"),
        errors.connect_error(ConnectionRefusedError(), "http://u", endpoint="api"),
        errors.connect_error(TimeoutError(), "http://u"),
        errors.connect_error(OSError(113, "No route to host"), "http://u"),
        errors.connect_error(__import__("socket").gaierror(-2, "Name unknown"), "http://u"),
        errors.connect_error(__import__("ssl").SSLError(1, "bad"), "http://u"),
        errors.pool_timeout("http://u"),
        errors.read_timeout("http://u"),
        errors.no_answer("http://u"),
        errors.broken_answer("http://u", "sent a malformed response (invalid status)"),
        errors.broken_answer("http://u", "switched protocols unasked"),
        errors.truncated_answer("http://u"),
        errors.truncated_answer("http://u", timed_out=True),
        errors.upstream_error(ferryman.WriteTimeout("x"), "http://u"),
        errors.upstream_error(ferryman.PoolTimeout("x"), "http://u"),
        errors.upstream_error(ferryman.RemoteProtocolError("x"), "http://u"),
    ],
    ids=lambda error: error.message,
)
def test_error_kind_reads_back_the_kind_of_every_message(error: errors.UpstreamError) -> None:
    assert errors.error_kind(error.message) == error.kind


def test_error_kind_knows_the_servers_words() -> None:
    assert errors.error_kind("the client closed the connection before the answer was sent") == (
        errors.CLIENT_CLOSED
    )
    assert errors.error_kind("the request was refused (413): too large") == errors.REQUEST_REFUSED
    assert errors.error_kind("the answer was cut off") == errors.CUT_OFF
    assert errors.error_kind("something new") == errors.OTHER


async def test_the_storage_queue_is_read_when_storage_runs(
    edge: EdgeServer, client: ferryman.AsyncClient, tmp_path: object
) -> None:
    # Until the storage application is merged in, this branch has none to read.
    pytest.importorskip("ferryman.apps.storage")
    proxy = await serve_with(
        [("api", edge.url)],
        [
            "applications=[proxy, storage, metrics]",
            f"storage.url=sqlite:///{tmp_path}/transactions.db",
        ],
    )
    try:
        for _ in range(10):
            await client.get(url_of(proxy, "api", "/echo"))
        families = await scrape(client, proxy)
    finally:
        await stop(proxy)
    depth = value(families["ferryman_storage_queue_depth"], "ferryman_storage_queue_depth")
    assert 0 <= depth <= 10
    assert value(families["ferryman_storage_dropped"], "ferryman_storage_dropped_total") == 0
