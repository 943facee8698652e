"""Log lines that cannot flood (issue 20, item 12): ``RateLimitedLog`` alone, with a clock the
test moves, and the general proxy path against an upstream that keeps failing."""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest

from ferryman.proxy.application import build_kernel
from ferryman.proxy.events import EVENT_FILTER_PROXY_REQUEST
from ferryman.proxy.logs import RateLimitedLog, upstream_log
from ferryman.proxy.server import ProxyServer
from ferryman.system import SystemBuilder, load_config
from tests.servers.slow_upstream import ScriptedUpstream, read_response, wait_until


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def logger() -> logging.Logger:
    log = logging.getLogger("tests.ratelimited")
    log.setLevel(logging.INFO)
    return log


def lines(caplog: pytest.LogCaptureFixture, name: str) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == name]


def test_repeats_within_an_interval_are_counted_into_one_line(
    logger: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    log = RateLimitedLog(logger, 10.0, clock=clock)
    assert log.report("refused", "the upstream http://a", "the upstream http://a refused")
    for _ in range(99):
        assert not log.report("refused", "the upstream http://a", "the upstream http://a refused")
    assert lines(caplog, logger.name) == ["refused: the upstream http://a refused"]
    assert log.pending() == {("refused", "the upstream http://a"): 99}

    clock.now += 10.0  # the interval is over; with no event loop, the next event says so
    assert not log.report("refused", "the upstream http://a", "the upstream http://a refused")
    assert lines(caplog, logger.name)[1:] == [
        "refused: the upstream http://a, 99 more times in the last 10 s"
    ]
    assert log.pending() == {("refused", "the upstream http://a"): 1}  # (still flooding)

    clock.now += 10.0
    log.flush()
    assert lines(caplog, logger.name)[2:] == [
        "refused: the upstream http://a, 1 more time in the last 10 s"
    ]
    assert log.pending() == {}


def test_each_kind_and_source_has_its_own_interval(
    logger: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    log = RateLimitedLog(logger, 10.0, clock=Clock())
    for _ in range(3):
        log.report("refused", "the upstream http://a", "a refused")
        log.report("refused", "the upstream http://b", "b refused")
        log.report("timeout", "the upstream http://a", "a timed out")
    assert lines(caplog, logger.name) == [
        "refused: a refused",
        "refused: b refused",
        "timeout: a timed out",
    ]


def test_a_quiet_interval_lets_the_next_event_through_at_once(
    logger: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    log = RateLimitedLog(logger, 10.0, clock=clock)
    log.report("refused", "x", "first")
    clock.now += 30.0
    assert log.report("refused", "x", "again")
    assert lines(caplog, logger.name) == ["refused: first", "refused: again"]


async def test_in_an_event_loop_the_count_is_written_when_the_interval_ends(
    logger: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    log = RateLimitedLog(logger, 0.05)
    for _ in range(5):
        log.report("truncated answer", "the upstream http://a", "broke off")
    assert await wait_until(lambda: len(lines(caplog, logger.name)) == 2)
    assert lines(caplog, logger.name)[1].startswith(
        "truncated answer: the upstream http://a, 4 more times in the last"
    )


# -- the general path ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def upstream():  # type: ignore[no-untyped-def]
    server = ScriptedUpstream().start()
    yield server
    server.stop()


async def general_path_to(*urls: str) -> ProxyServer:
    """A proxy whose endpoints (``e0``, ``e1``...) take the general path: a listener is on.
    Their circuit breakers are off: every request reaches the failing upstream, and what is
    counted here is the failures' lines (the breaker's own are tested with the breaker)."""
    overrides = ["proxy.port=0"]
    for index, url in enumerate(urls):
        overrides += [
            f"proxy.endpoints.{index}.name=e{index}",
            f"proxy.endpoints.{index}.port=0",
            f"proxy.endpoints.{index}.url={url}",
            f"proxy.endpoints.{index}.breaker.enabled=false",
        ]
    system = await SystemBuilder(load_config([], overrides=overrides)).build(build_kernel)
    system.dispatcher.add_listener(EVENT_FILTER_PROXY_REQUEST, lambda event: None)
    server = ProxyServer(system, host="127.0.0.1")
    await server.start()
    return server


async def test_an_upstream_that_truncates_every_answer_gets_one_line_and_no_traceback(
    upstream: ScriptedUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 20, item 12: each cut answer logged "the ASGI application failed" and a
    traceback; now one line says it in words, and the repeats are counted."""
    caplog.set_level(logging.DEBUG, logger="ferryman")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        refused = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = await general_path_to(upstream.url, refused)
    upstream_log.flush()  # (counts other tests left behind are written now, not below)
    caplog.clear()
    try:
        for endpoint, target in (("e0", b"/cut"), ("e1", b"/"), ("e0", b"/cut-chunked")):
            port = server.addresses[endpoint][1]
            for _ in range(20):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(b"GET %s HTTP/1.1\r\nHost: p\r\nConnection: close\r\n\r\n" % target)
                try:
                    await read_response(reader)
                except (asyncio.IncompleteReadError, ConnectionError):
                    pass  # a cut answer
                finally:
                    writer.close()
    finally:
        await server.shutdown(1)
        await server.system.dispose()
    records = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert not [r for r in records if r.exc_info], "no traceback for an upstream's failures"
    messages = [r.getMessage() for r in records]
    origin = upstream.url
    assert (
        messages.count(f"truncated answer: the upstream {origin} broke off its answer half-way")
        == 1
    )
    assert messages.count(f"refused: the upstream {refused} refused the connection") == 1
    assert len(messages) == 2, messages
