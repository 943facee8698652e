"""``ferryman start`` as a real process, as the tests of the command drive it.

The process listens on port 0 wherever it can, and the tests learn the real ports from the
lines it prints (``ferryman: endpoint api on http://127.0.0.1:PORT -> ...``), so nothing races
for a port chosen in advance. A thread reads stderr all along: a full pipe would block the proxy.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

START = [sys.executable, "-m", "ferryman.cli.main", "start"]
ADDRESS = re.compile(
    r"^ferryman: endpoint (?P<name>\S+) on (?P<url>http://[^/\s]+)(?P<path>/\S*)? -> "
)
KERNEL = re.compile(r"^ferryman: kernel on (?P<url>http://\S+)$")
SERVING = re.compile(r"^ferryman: serving \(pid (?P<pid>\d+)\)")
#: Seconds a process gets to start (imports, uvloop, binding) on a loaded CI machine.
START_TIMEOUT = 30.0


class ProxyProcess:
    """One ``ferryman start`` (or any command printing the same lines) and what it printed."""

    def __init__(
        self,
        args: Sequence[str],
        *,
        command: Sequence[str] = START,
        cwd: str | Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        # FERRYMAN_DATA_DIR is not configuration: it keeps the storage out of the user's data
        # directory (tests/conftest.py).
        environment = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("FERRYMAN_") or key == "FERRYMAN_DATA_DIR"
        }
        environment.update(env or {})
        self.process = subprocess.Popen(
            [*command, *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env=environment,
        )
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for raw in self.process.stderr:
            with self._changed:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def output(self) -> str:
        with self._changed:
            return "\n".join(self.lines)

    def wait_for_line(
        self, pattern: str | re.Pattern[str], *, count: int = 1, timeout: float = START_TIMEOUT
    ) -> list[re.Match[str]]:
        """Wait until ``count`` lines printed so far match ``pattern``; return their matches."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [m for line in self.lines if (m := regex.search(line))]
                if len(found) >= count:
                    return found
                if self.process.poll() is not None and not self._reader.is_alive():
                    raise AssertionError(
                        f"the process exited ({self.process.returncode}) before printing "
                        f"{regex.pattern!r}:\n{self.output_unlocked()}"
                    )
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"no {count} line(s) matching {regex.pattern!r} within {timeout}s:\n"
                        f"{self.output_unlocked()}"
                    )
                self._changed.wait(min(left, 0.2))

    def output_unlocked(self) -> str:
        return "\n".join(self.lines)

    def wait_serving(self, count: int = 1) -> ProxyProcess:
        self.wait_for_line(SERVING, count=count)
        return self

    def url(self, name: str) -> str:
        """The base URL an endpoint (or ``"kernel"``) listens on, as printed at start-up."""
        pattern = KERNEL if name == "kernel" else ADDRESS
        for line in reversed(self.lines):
            match = pattern.search(line)
            if match and (name == "kernel" or match["name"] == name):
                return match["url"]
        raise AssertionError(f"no address printed for {name!r}:\n{self.output}")

    def pids(self) -> list[int]:
        return [int(m["pid"]) for m in self.wait_for_line(SERVING)]

    def signal(self, signum: int = signal.SIGTERM) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float = 30.0) -> int:
        code = self.process.wait(timeout)
        self._reader.join(5)
        return code

    def stop(self) -> None:
        """Make sure the process (and a supervisor's children) is gone at the end of a test."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reader.join(5)
