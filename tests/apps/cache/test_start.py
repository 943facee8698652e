"""``ferryman start`` with the cache: on by default, two processes sharing one Redis, the
status in the access log and the metrics, a dead Redis costing nothing but caching, and the
configuration's errors."""

from __future__ import annotations

import itertools
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from tests.apps.accesslog.test_start import stopped
from tests.cli.proxy_process import ProxyProcess
from tests.servers.cache_origin import CacheOrigin, Reply

MAX_AGE = [("Cache-Control", "max-age=60")]
_runs = itertools.count()


@pytest.fixture(scope="module")
def origin() -> Iterator[CacheOrigin]:
    server = CacheOrigin().start()
    yield server
    server.stop()


def fetch(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, dict(response.headers.items()), response.read()


def start(origin: CacheOrigin, *settings: str) -> ProxyProcess:
    args = ["--endpoint", f"api=0:{origin.url}", "--set", "proxy.port=0"]
    args += ["--set", "applications=[proxy, cache, accesslog, metrics]"]
    for setting in settings:
        args += ["--set", setting]
    return ProxyProcess(args).wait_serving()


def test_on_by_default_with_the_status_in_the_access_log_and_metrics(origin: CacheOrigin) -> None:
    path = f"/default-{next(_runs)}"
    origin.script(path, Reply(headers=MAX_AGE, body=b"cached"))
    process = ProxyProcess(["--endpoint", f"api=0:{origin.url}", "--set", "proxy.port=0"])
    try:
        process.wait_serving()
        first = fetch(process.url("api") + path)
        second = fetch(process.url("api") + path)
        with urllib.request.urlopen(process.url("kernel") + "/metrics", timeout=10) as response:
            text = response.read().decode()
        lines = stopped(process)
    finally:
        process.stop()
    assert origin.hits(path) == 1
    assert first[1]["X-Cache"] == "MISS" and second[1]["X-Cache"] == "HIT"
    assert second[2] == b"cached" and "Age" in second[1]
    logged = [line for line in lines if f"GET {path} " in line]
    assert len(logged) == 2
    assert logged[0].endswith("cache=MISS") and "cache=HIT" in logged[1]
    assert " - cache=HIT" in logged[1]  # no upstream reached
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    assert samples[("ferryman_cache_requests_total", (("endpoint", "api"), ("status", "hit")))] == 1
    assert (
        samples[("ferryman_cache_requests_total", (("endpoint", "api"), ("status", "miss")))] == 1
    )


def test_two_processes_share_one_redis(origin: CacheOrigin) -> None:
    path = f"/shared-{next(_runs)}"
    prefix = f"ferryman-start-test:{id(object())}:"
    origin.script(path, Reply(headers=MAX_AGE, body=b"from redis"))
    settings = ["cache.backend=redis", f"cache.redis.prefix={prefix}"]
    one = start(origin, *settings)
    other = start(origin, *settings)
    try:
        # The key holds the client's Host (relayed Location URLs name it): behind a load
        # balancer, every process sees the same one.
        host = {"Host": "api.example.test"}
        first = fetch(one.url("api") + path, host)
        # (the first process stores as a task after answering: wait until Redis holds it)
        client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
        deadline = time.monotonic() + 10
        while not list(client.scan_iter(match=prefix + "*")) and time.monotonic() < deadline:
            time.sleep(0.02)
        client.close()
        second = fetch(other.url("api") + path, host)
        stopped(one)
        stopped(other)
    finally:
        one.stop()
        other.stop()
        subprocess.run(
            [sys.executable, "-c", _CLEAR, prefix], check=False, timeout=30, capture_output=True
        )
    assert first[1]["X-Cache"] == "MISS"
    assert second[1]["X-Cache"] == "HIT" and second[2] == b"from redis"
    assert origin.hits(path) == 1


_CLEAR = """
import sys, redis
client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
keys = list(client.scan_iter(match=sys.argv[1] + "*"))
if keys:
    client.delete(*keys)
"""


def test_a_dead_redis_serves_uncached_and_says_so_once(origin: CacheOrigin) -> None:
    path = f"/dead-{next(_runs)}"
    origin.script(path, Reply(headers=MAX_AGE, body=b"still here"))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = start(origin, "cache.backend=redis", f"cache.redis.url=redis://127.0.0.1:{port}/0")
    try:
        answers = [fetch(process.url("api") + path) for _ in range(5)]
        lines = stopped(process)
    finally:
        process.stop()
    assert [a[0] for a in answers] == [200] * 5
    assert [a[2] for a in answers] == [b"still here"] * 5
    assert origin.hits(path) == 5
    assert len([line for line in lines if "Redis at" in line]) == 1


def test_an_endpoint_can_turn_it_off(origin: CacheOrigin) -> None:
    path = f"/off-{next(_runs)}"
    origin.script(path, Reply(headers=MAX_AGE))
    process = start(origin, "cache.endpoints.api.enabled=false")
    try:
        answers = [fetch(process.url("api") + path) for _ in range(2)]
        stopped(process)
    finally:
        process.stop()
    assert origin.hits(path) == 2
    assert all("X-Cache" not in a[1] for a in answers)


def test_configuration_errors_name_the_key(origin: CacheOrigin) -> None:
    process = ProxyProcess(
        [
            "--endpoint",
            f"api=0:{origin.url}",
            "--set",
            "proxy.port=0",
            "--set",
            "cache.endpoints.nope.ttl=5",
            "--set",
            "cache.methods=[GET, POST]",
        ]
    )
    try:
        code = process.wait(30)
    finally:
        process.stop()
    assert code == 2
    assert "cache.methods" in process.output and "GET and HEAD only" in process.output
