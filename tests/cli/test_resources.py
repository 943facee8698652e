"""``ferryman start`` and its open files, as a real process under a low ``RLIMIT_NOFILE``
(issue 20, item 12): the soft limit is raised to the hard one at start, and a process out of
file descriptors logs one line per interval (not one, with a traceback, per failed accept),
keeps serving, and answers again once connections close."""

from __future__ import annotations

import re
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import ferryman
from tests.cli.proxy_process import START, ProxyProcess
from tests.servers.edge import EdgeServer

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/limits").exists(), reason="reads the limits of a process from /proc"
)


def limited(soft: int, hard: int) -> list[str]:
    """``ferryman start`` run with its open-file limits set to ``soft``/``hard`` first."""
    set_limit = (
        "import os, resource, sys; "
        f"resource.setrlimit(resource.RLIMIT_NOFILE, ({soft}, {hard})); "
        f"os.execv(sys.executable, [sys.executable, *{START[1:]!r}, *sys.argv[1:]])"
    )
    return [sys.executable, "-c", set_limit]


@pytest.fixture
def processes() -> Iterator[list[ProxyProcess]]:
    started: list[ProxyProcess] = []
    yield started
    for process in started:
        process.stop()


def open_file_limits(pid: int) -> tuple[int, int]:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return int(soft), int(hard)
    raise AssertionError(f"no open-file limit for pid {pid}")


def test_the_soft_open_file_limit_is_raised_to_the_hard_one(
    processes: list[ProxyProcess], edge: EdgeServer
) -> None:
    proxy = ProxyProcess(
        ["--set", "proxy.port=0", "-e", f"api=0:{edge.url}"], command=limited(256, 2048)
    )
    processes.append(proxy)
    (pid,) = proxy.pids()
    assert open_file_limits(pid) == (2048, 2048)


def answered(url: str) -> bool:
    try:
        with ferryman.Client(timeout=2, trust_env=False) as client:
            return client.get(url).status_code == 200
    except ferryman.TransportError:
        return False


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_out_of_file_descriptors_it_logs_once_per_interval_and_serves_again(
    processes: list[ProxyProcess], edge: EdgeServer, loop: str
) -> None:
    proxy = ProxyProcess(
        ["--set", "proxy.port=0", "-e", f"api=0:{edge.url}", "--loop", loop],
        command=limited(64, 64),
    )
    processes.append(proxy)
    proxy.wait_serving()
    url = proxy.url("api")
    host, port = url.removeprefix("http://").rsplit(":", 1)
    clients = []
    try:
        for _ in range(120):  # twice what the process may open
            clients.append(socket.create_connection((host, int(port)), timeout=5))
        proxy.wait_for_line("new connections cannot be accepted", timeout=15)
        time.sleep(1.5)  # failures go on: asyncio retries every second, uvloop at each connect
        for _ in range(20):
            clients.append(socket.create_connection((host, int(port)), timeout=5))
    finally:
        for client in clients:
            client.close()
    deadline = time.monotonic() + 20
    while not answered(url + "/echo"):
        assert time.monotonic() < deadline, (
            f"no answer after the connections closed:\n{proxy.output}"
        )
        time.sleep(0.2)
    proxy.signal()
    assert proxy.wait() == 0
    output = proxy.output
    assert "Traceback" not in output, output
    first = re.findall(r"warning: accept failure: new connections cannot be accepted: (.*)", output)
    assert first == [
        "too many open files (the open-file limit is 64); serving goes on, and accepting "
        "resumes as connections close"
    ], output
    # The repeats are counted, in a line per interval (the last one written at exit).
    counted = re.findall(
        r"accept failure: too many open files .*, (\d+) more times? in the", output
    )
    assert 1 <= len(counted) <= 3, output
    assert len(proxy.lines) < 15, output
