"""Breaker states shared through Redis by two ``ferryman start`` processes, and a dead Redis.

Two processes run the same configuration (each its own ports) with the Redis on
127.0.0.1:6379, in front of one upstream that fails on cue. What one process's traffic decides
must reach the other without that one sending the failing upstream a single request: its
state is read from its own ``/metrics``. The keys live under a prefix of their own per test,
deleted afterwards.
"""

from __future__ import annotations

import os
import re
import socket
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cli.proxy_process import ProxyProcess
from tests.servers.cued_upstream import CuedUpstream

redis = pytest.importorskip("redis")

REDIS_URL = "redis://127.0.0.1:6379/0"


def _redis_is_up() -> bool:
    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping())
    except redis.exceptions.RedisError:
        return False


@pytest.fixture
def prefix() -> Iterator[str]:
    if not _redis_is_up():
        message = f"these tests need the Redis at {REDIS_URL}"
        if os.environ.get("CI"):  # (as the storage's PostgreSQL cases: skipped by hand only)
            pytest.fail(message)
        pytest.skip(message)
    name = f"ferryman-test:{uuid.uuid4().hex}:"
    yield name
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(f"{name}*"):
        client.delete(key)


@pytest.fixture
def upstream() -> Iterator[CuedUpstream]:
    server = CuedUpstream("shared").start()
    yield server
    server.stop()


def config(upstream: CuedUpstream, redis_url: str, prefix: str, tmp_path: Path) -> Path:
    path = tmp_path / f"ferryman-{uuid.uuid4().hex[:6]}.yml"
    settings: dict[str, Any] = {
        "applications": ["proxy", "metrics", "resilience"],
        "proxy": {
            "port": 0,
            "grace_period": 1,
            "endpoints": [
                {
                    "name": "api",
                    "port": 0,
                    "url": upstream.url,
                    "breaker": {"consecutive_failures": 2, "half_open_after": 1},
                    "retry": {"attempts": 0},
                }
            ],
        },
        "resilience": {"redis": redis_url, "key_prefix": prefix, "sync_interval": 0.1},
    }
    path.write_text(yaml.safe_dump(settings))
    return path


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Any]:
    started: list[ProxyProcess] = []

    def run(path: Path) -> ProxyProcess:
        process = ProxyProcess(["--config", str(path)], cwd=tmp_path)
        started.append(process)
        return process.wait_serving()

    yield run
    for process in started:
        process.stop()


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


BREAKER_STATE = re.compile(r'ferryman_upstream_breaker_state\{[^}]*\bstate="(\w+)"[^}]*\} 1\.0$')


def breaker_state(process: ProxyProcess) -> str | None:
    _, body = get(process.url("kernel") + "/metrics")
    for line in body.decode().splitlines():
        match = re.match(
            r'ferryman_upstream_breaker_state\{[^}]*\bstate="(\w+)"[^}]*\} 1\.0$', line
        )
        if match:
            return match[1]
    return None


def wait_for(predicate: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_a_breaker_opened_by_one_process_is_open_in_the_other_and_closes_in_both(
    upstream: CuedUpstream, prefix: str, tmp_path: Path, start: Any
) -> None:
    path = config(upstream, REDIS_URL, prefix, tmp_path)
    first, second = start(path), start(path)
    upstream.cue = "status"
    for _ in range(2):
        assert get(first.url("api") + "/x")[0] == 503  # the upstream's own 503
    assert breaker_state(first) == "open"
    assert wait_for(lambda: breaker_state(second) == "open")
    assert len(upstream.requests) == 2  # the second process sent it nothing
    status, body = get(second.url("api") + "/x")
    assert status == 503 and b"no upstream of 'api' is available" in body
    assert len(upstream.requests) == 2

    upstream.cue = "ok"
    time.sleep(1.1)  # half_open_after: the next request to the first process is its probe
    assert get(first.url("api") + "/x")[0] == 200
    assert breaker_state(first) == "closed"
    assert wait_for(lambda: breaker_state(second) == "closed")
    assert get(second.url("api") + "/x")[0] == 200
    assert len(upstream.requests) == 4
    assert "(from another worker)" in second.output


def test_a_dead_redis_leaves_each_process_its_own_breakers(
    upstream: CuedUpstream, prefix: str, tmp_path: Path, start: Any
) -> None:
    with socket.socket() as sock:  # a port where nothing listens
        sock.bind(("127.0.0.1", 0))
        dead = f"redis://127.0.0.1:{sock.getsockname()[1]}/0"
    process = start(config(upstream, dead, prefix, tmp_path))
    assert get(process.url("api") + "/x")[0] == 200
    upstream.cue = "status"
    for _ in range(2):
        assert get(process.url("api") + "/x")[0] == 503
    assert breaker_state(process) == "open"  # locally, as without Redis
    _, body = get(process.url("kernel") + "/metrics")
    errors = re.search(rb"^ferryman_shared_state_errors_total (\S+)$", body, re.M)
    assert errors is not None and float(errors[1]) >= 1
    assert b"ferryman_shared_state_connected 0.0" in body
    time.sleep(0.5)  # several more failed exchanges (every 0.1 s): still one line
    said = [line for line in process.output.splitlines() if "Redis at" in line]
    assert len(said) == 1, said
    assert "each worker keeps its own breaker states" in said[0]
