"""Retries and breakers against a malicious upstream, and a failure of the relay's own code
while it handles an upstream's answer: neither may be taken for the other."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence

import pytest

from ferryman.client.cache import MemoryStore
from ferryman.http.caching import CacheEntry, CachePolicy
from ferryman.proxy.relay_cache import RelayCache
from ferryman.proxy.relay_resilience import retry_after
from tests.proxy import test_relay_resilience as resilience_fixtures
from tests.proxy.test_relay_resilience import StartEndpoint, payload
from tests.servers.cued_upstream import CuedUpstream
from tests.servers.slow_upstream import read_response

endpoint = resilience_fixtures.endpoint
upstreams = resilience_fixtures.upstreams


@pytest.mark.parametrize("value", ["\u00b2", "\u00b9\u00b2", "\u00b3"])
async def test_a_retry_after_of_digits_no_number_reads_is_no_retry_after(
    endpoint: StartEndpoint, upstreams: Callable[[int], list[CuedUpstream]], value: str
) -> None:
    # ``str.isdigit`` says yes to superscripts, which ``float`` refuses: the upstream's 503
    # was turned into a 502 "malformed response" and counted as a broken upstream.
    (up,) = upstreams(1)
    api = await endpoint(
        url=up.url,
        retry={"backoff": 0, "deadline": 5, "statuses": [503]},
        breaker={"consecutive_failures": 1, "failures": ["broken"]},
    )
    up.cue = ["status", "ok"]
    up.cue_headers = [("Retry-After", value)]
    response = await api.send()
    assert response.status == 200
    assert len(up.requests) == 2
    assert api.transitions() == []


def test_retry_after_ignores_what_it_cannot_read() -> None:
    assert retry_after("Retry-After: \u00b2\r\n".encode("latin-1")) is None
    assert retry_after(b"Retry-After: Fri, 31 Dec 9999 23:59:59 +9999\r\n") is None
    assert retry_after(b"Retry-After: 9999999999999999999999\r\n") == 1e22


class BrokenStore(MemoryStore):
    """A store that fails to store (a plug-in store with a bug)."""

    def put_now(self, key: str, entries: Sequence[CacheEntry]) -> None:
        raise RuntimeError("the store broke")


async def test_a_failure_of_the_relays_own_code_is_not_blamed_on_the_upstream(
    endpoint: StartEndpoint,
    upstreams: Callable[[int], list[CuedUpstream]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The store raises while the relay handles the upstream's answer (inside the parser's
    # callbacks): it was reported as the upstream's malformed answer, without a traceback,
    # and counted by its breaker, which (at one failure) then kept every client out.
    (up,) = upstreams(1)
    api = await endpoint(url=up.url, breaker={"consecutive_failures": 1})
    api.relay.cache = RelayCache("api", BrokenStore(), CachePolicy(), 1 << 20)
    up.cue = "status"
    up.cue_status = 200
    up.cue_headers = [("Cache-Control", "max-age=60")]
    with caplog.at_level(logging.ERROR, logger="ferryman.proxy"):
        for _ in range(2):
            # (the answer had begun: the client's connection may be cut)
            with contextlib.suppress(ConnectionError, EOFError):
                await api.send()
    assert len(up.requests) == 2
    assert api.transitions() == []
    failures = [r for r in caplog.records if r.exc_info and "the store broke" in str(r.exc_info[1])]
    assert failures and "the relay failed" in failures[0].getMessage()
    assert not any("malformed" in r.getMessage() for r in caplog.records)


async def test_a_client_that_stops_sending_its_body_does_not_open_the_breaker(
    endpoint: StartEndpoint, upstreams: Callable[[int], list[CuedUpstream]]
) -> None:
    # The upstream waits for the rest of the body: its read timeout was taken for the
    # upstream's failure, so any client that stalled a few uploads kept everyone out.
    (up,) = upstreams(1)
    api = await endpoint(
        url=up.url,
        timeout={"connect": 2, "read": 0.5},
        request_buffer=1024,
        breaker={"consecutive_failures": 1},
        retry={"on": ["connect", "timeout"]},
    )
    for _ in range(2):
        reader, writer = await asyncio.open_connection("127.0.0.1", api.port)
        writer.write(b"PUT /upload HTTP/1.1\r\nHost: p\r\nContent-Length: 100000\r\n\r\n")
        writer.write(b"x" * 4096)  # (past the request buffer: the upstream gets it, and waits)
        response = await read_response(reader, timeout=5)
        writer.close()
        assert response.status == 408
        assert "no more of its request body" in payload(response)["message"]
    assert api.transitions() == []
    assert (await api.send()).status == 200
