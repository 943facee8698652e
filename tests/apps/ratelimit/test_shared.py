"""Buckets in Redis: two ``ferryman start`` processes share one limit; a dead Redis fails open."""

from __future__ import annotations

import urllib.request
from pathlib import Path

from tests.apps.accesslog.test_start import get_many, stopped
from tests.cli.proxy_process import ProxyProcess
from tests.servers.edge import EdgeServer


def config_file(tmp_path: Path, edge: EdgeServer, redis_url: str, prefix: str) -> Path:
    path = tmp_path / "ferryman.yml"
    path.write_text(
        f"""
applications: [proxy, accesslog, metrics, ratelimit]
proxy:
  port: 0
  endpoints:
    - {{name: api, port: 0, url: "{edge.url}"}}
ratelimit:
  redis: {{url: "{redis_url}", prefix: "{prefix}", retry_interval: 30}}
  endpoints:
    api: {{requests: 1, per: 600, burst: 10}}
"""
    )
    return path


def test_two_processes_share_one_bucket_through_redis(
    tmp_path: Path, edge: EdgeServer, redis_prefix: str
) -> None:
    path = config_file(tmp_path, edge, "redis://127.0.0.1:6379/0", redis_prefix)
    first = ProxyProcess(["--config", str(path)])
    second = ProxyProcess(["--config", str(path)])
    try:
        first.wait_serving()
        second.wait_serving()
        # 8 through each process: 16 requests, 10 tokens between them.
        statuses = get_many(first.url("api"), ["/echo"] * 8)
        statuses += get_many(second.url("api"), ["/echo"] * 8)
        stopped(first)
        stopped(second)
    finally:
        first.stop()
        second.stop()
    assert statuses.count(200) == 10
    assert statuses.count(429) == 6
    assert statuses[:8] == [200] * 8  # (the first process took 8, the second got the last 2)


def test_a_dead_redis_fails_open_with_one_line_and_a_counter(
    tmp_path: Path, edge: EdgeServer, dead_port: int
) -> None:
    path = config_file(tmp_path, edge, f"redis://127.0.0.1:{dead_port}/0", "ferryman-test:")
    process = ProxyProcess(["--config", str(path)])
    try:
        process.wait_serving()
        statuses = get_many(process.url("api"), ["/echo"] * 30)
        with urllib.request.urlopen(process.url("kernel") + "/metrics", timeout=10) as response:
            metrics = response.read().decode()
        lines = stopped(process)
    finally:
        process.stop()
    assert statuses == [200] * 30  # (10 would pass a working limit)
    complaints = [line for line in lines if "redis unavailable" in line]
    assert len(complaints) == 1, lines
    assert f"127.0.0.1:{dead_port}" in complaints[0]
    assert "ferryman_rate_limit_fail_open_total 30.0" in metrics
    assert "ferryman_rate_limit_redis_failures_total 1.0" in metrics
    assert not [line for line in lines if "Traceback" in line]
