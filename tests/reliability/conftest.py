"""The reliability suite's servers (a hostile upstream, two ``ferryman start`` processes), once
per session, and the summary printed at the end of the run (``pytest_terminal_summary``)."""

from __future__ import annotations

import http.client
from collections.abc import Iterator

import pytest

from tests.reliability.hostile_upstream import HostileUpstream
from tests.reliability.ledger import LEDGER
from tests.reliability.proxies import (
    RunningProxy,
    plain_config,
    record_start,
    running_proxy,
    tight_config,
)
from tests.reliability.strict_upstream import StrictUpstream


@pytest.fixture(scope="session")
def hostile() -> Iterator[HostileUpstream]:
    server = HostileUpstream().start()
    yield server
    LEDGER.executed_twice.extend(server.executed_twice())
    server.stop()


@pytest.fixture(scope="session")
def strict() -> Iterator[StrictUpstream]:
    """The fuzz target's upstream: strict about what the proxy sends."""
    server = StrictUpstream().start()
    yield server
    server.stop()


def _warm(proxy: RunningProxy, endpoints: list[str]) -> None:
    """One request per endpoint (imports and first buffers done), then the "before" sample."""

    for name in endpoints:
        connection = http.client.HTTPConnection("127.0.0.1", proxy.port(name), timeout=10)
        try:
            connection.request("GET", f"/echo?rid=warm-up-{proxy.name}-{name}")
            answer = connection.getresponse()
            answer.read()
            assert answer.status == 200, f"{proxy.name}/{name}: {answer.status}"
        finally:
            connection.close()
    record_start(proxy)


@pytest.fixture(scope="session")
def plain(
    hostile: HostileUpstream, strict: StrictUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningProxy]:
    """``ferryman start`` with pre-issue-20 configuration only: the defaults are under test."""
    config = plain_config(hostile.url, strict.url)
    with running_proxy("plain", config, tmp_path_factory.mktemp("plain")) as proxy:
        _warm(proxy, [endpoint["name"] for endpoint in config["proxy"]["endpoints"]])
        yield proxy


@pytest.fixture(scope="session")
def tight(
    hostile: HostileUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningProxy]:
    """``ferryman start`` with issue 20's client timeouts and limits set low."""
    config = tight_config(hostile.url)
    with running_proxy("tight", config, tmp_path_factory.mktemp("tight")) as proxy:
        _warm(proxy, [endpoint["name"] for endpoint in config["proxy"]["endpoints"]])
        yield proxy


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """What the reliability tests observed, when any of them ran."""
    if (
        not (
            LEDGER.request_vectors
            or LEDGER.upstream_vectors
            or LEDGER.fuzz_examples
            or LEDGER.faults
        )
        and not LEDGER.processes
    ):
        return
    terminalreporter.section("reliability summary")
    for line in LEDGER.lines():
        terminalreporter.write_line(line)
