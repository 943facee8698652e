"""A real ``ferryman start`` with the dashboard, in front of the real httpbin, for the tests.

Each process records into its own SQLite file in the test's temporary directory
(``storage.url``), listens on free ports (``proxy.port=0``, endpoint port 0) and is stopped at
the end of the test.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.cli.proxy_process import ProxyProcess

USER = "admin"
PASSWORD = "correct horse"


def basic(user: str = USER, password: str = PASSWORD) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


StartProxy = Callable[..., ProxyProcess]

#: Where the browser test saved its screenshots, said again at the end of the run (a line
#: written while a test runs is lost in ``pytest -q``'s progress output, as in CI's log).
SCREENSHOT_DIRECTORIES: list[Path] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if SCREENSHOT_DIRECTORIES:
        terminalreporter.section("dashboard screenshots")
        for directory in SCREENSHOT_DIRECTORIES:
            terminalreporter.write_line(f"dashboard screenshots: {directory}")


@pytest.fixture
def start_proxy(tmp_path: Path) -> Iterator[StartProxy]:
    """``start_proxy(upstream, *more_args, auth=True)``: a serving process with one endpoint
    ``api`` to ``upstream``; its URLs are ``process.url("kernel")`` and ``process.url("api")``."""
    started: list[ProxyProcess] = []

    def start(upstream: str, *args: str, auth: bool = False, **kwargs: object) -> ProxyProcess:
        options = [
            "--endpoint",
            f"api=0:{upstream}",
            "--set",
            "proxy.port=0",
            "--set",
            f"storage.url=sqlite:///{tmp_path / f'transactions-{len(started)}.db'}",
            "--set",
            "storage.flush_interval=0.05",
        ]
        if auth:
            options += ["--set", f"dashboard.auth.username={USER}"]
            options += ["--set", f"dashboard.auth.password={PASSWORD}"]
        process = ProxyProcess([*options, *args], **kwargs)  # type: ignore[arg-type]
        started.append(process)
        return process.wait_serving()

    yield start
    for process in started:
        process.stop()
