"""``ferryman tail``, a real process tailing a real ``ferryman start``: one line per request,
filters, reconnection when the proxy restarts, and a quiet exit on Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.apps.dashboard.traffic import send
from tests.cli.proxy_process import ProxyProcess
from tests.servers.httpbin_server import HttpbinServer

LINE = re.compile(
    r"^\d\d:\d\d:\d\d\.\d{3}  api  (?P<method>[A-Z]+)  (?P<target>\S+)  (?P<status>\d{3})  "
    r"[\d.]+ ms  (?P<size>\d+(\.\d)? (B|KiB))$"
)


class Tail:
    def __init__(self, *args: str) -> None:
        environment = {k: v for k, v in os.environ.items() if not k.startswith("FERRYMAN_")}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ferryman.cli.main", "tail", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environment,
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self.threads = [
            threading.Thread(target=self._read, args=(self.process.stdout, self.out), daemon=True),
            threading.Thread(target=self._read, args=(self.process.stderr, self.err), daemon=True),
        ]
        for thread in self.threads:
            thread.start()

    @staticmethod
    def _read(stream: object, into: list[str]) -> None:
        for line in stream:  # type: ignore[attr-defined]
            into.append(line.rstrip("\n"))

    def wait_for(
        self, lines: list[str], pattern: str, count: int = 1, timeout: float = 20
    ) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [line for line in lines if re.search(pattern, line)]
            if len(found) >= count:
                return found
            time.sleep(0.05)
        raise AssertionError(f"no {pattern!r} in {lines!r} (stderr: {self.err!r})")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for thread in self.threads:
            thread.join(5)
        return self.process.returncode


def proxy(httpbin: HttpbinServer, tmp_path: Path, port: int = 0) -> ProxyProcess:
    return ProxyProcess(
        [
            "--endpoint",
            f"api=0:{httpbin.url}",
            "--set",
            f"proxy.port={port}",
            "--set",
            f"storage.url=sqlite:///{tmp_path / 'transactions.db'}",
        ]
    ).wait_serving()


def test_tail_prints_each_transaction_and_follows_a_restart(
    httpbin: HttpbinServer, tmp_path: Path
) -> None:
    first = proxy(httpbin, tmp_path)
    kernel = first.url("kernel")
    everything = Tail("--url", kernel)
    failures = Tail("--url", kernel, "--status", "5xx")
    try:
        everything.wait_for(everything.err, r"^tailing http://.*/api/transactions/stream")
        failures.wait_for(failures.err, r"^tailing ")
        endpoint = first.url("api")
        assert send(endpoint + "/get?n=1") == 200
        assert send(endpoint + "/status/503", "POST", b"x") == 503
        lines = everything.wait_for(everything.out, "  api  ", count=2)
        parsed = [LINE.match(line) for line in lines]
        assert all(parsed), lines
        assert [(m["method"], m["target"], m["status"]) for m in parsed if m] == [
            ("GET", "/get?n=1", "200"),
            ("POST", "/status/503", "503"),
        ]
        assert failures.wait_for(failures.out, "  api  ") == [lines[1]]

        # The proxy restarts on the same port: the tail says so, connects again, goes on.
        first.signal(signal.SIGTERM)
        assert first.wait() == 0
        everything.wait_for(everything.err, "connecting again until it is back")
        second = proxy(httpbin, tmp_path, port=int(kernel.rsplit(":", 1)[1]))
        try:
            everything.wait_for(everything.err, "^connected again")
            assert send(second.url("api") + "/get?after=restart") == 200
            everything.wait_for(everything.out, r"/get\?after=restart  200")
        finally:
            second.stop()
    finally:
        first.stop()
        codes = everything.stop(), failures.stop()
    assert codes == (0, 0)
    assert not [line for line in everything.err if "Traceback" in line]


def test_tail_refuses_wrong_options_and_says_when_auth_is_needed(
    httpbin: HttpbinServer, tmp_path: Path
) -> None:
    tail = Tail("--status", "6xx")
    assert tail.process.wait(20) == 2
    tail.stop()
    assert "--status" in "\n".join(tail.err)
    guarded = ProxyProcess(
        [
            "--endpoint",
            f"api=0:{httpbin.url}",
            "--set",
            "proxy.port=0",
            "--set",
            f"storage.url=sqlite:///{tmp_path / 'guarded.db'}",
            "--set",
            "dashboard.auth.username=admin",
            "--set",
            "dashboard.auth.password=pw",
        ]
    ).wait_serving()
    try:
        refused = Tail("--url", guarded.url("kernel"))
        assert refused.process.wait(20) == 1
        refused.stop()
        assert "401" in "\n".join(refused.err) and "--password" in "\n".join(refused.err)
        allowed = Tail("--url", guarded.url("kernel"), "--user", "admin", "--password", "pw")
        try:
            allowed.wait_for(allowed.err, "^tailing ")
            assert send(guarded.url("api") + "/get?auth=1") == 200
            allowed.wait_for(allowed.out, r"/get\?auth=1  200")
        finally:
            assert allowed.stop() == 0
    finally:
        guarded.stop()


@pytest.mark.parametrize("target", ["/\x1b[31mred", "/a\x07b"])
def test_control_characters_from_traffic_are_escaped(target: str) -> None:
    from rich.console import Console

    from ferryman.cli.tail import format_line

    console = Console(force_terminal=False, width=200)
    with console.capture() as captured:
        console.print(
            format_line({"endpoint": "api", "method": "GET", "target": target, "status": 200})
        )
    assert "\x1b" not in captured.get() and "\x07" not in captured.get()
    assert "\\x1b" in captured.get() or "\\x07" in captured.get()
