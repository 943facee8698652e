"""The balancer, circuit breakers and retries on the general path (issue 23): an endpoint with
``request_options`` keeps its breakers, roles and retries, and shares them with its relay.

Each test serves a real ``ferryman`` proxy (``tests/proxy/general_path.py``) in front of
upstreams that fail on cue (:class:`~tests.servers.cued_upstream.CuedUpstream`), and asserts
what the client gets, what reached each upstream (how many times) and the
``proxy.upstream.state`` events.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import pytest

from tests.proxy.general_path import GENERAL, StartProxy, ferryman_proxy, payload
from tests.servers.cued_upstream import CuedUpstream
from tests.servers.slow_upstream import wait_until

__all__ = ["ferryman_proxy"]

NO_RETRY = {"attempts": 0}
#: No cache: these tests count what reaches the upstreams (their answers say nothing about
#: caching anyway, but a test must not depend on that).
NO_CACHE = "cache.enabled=false"


@pytest.fixture
def upstreams() -> Iterator[Callable[[int], list[CuedUpstream]]]:
    started: list[CuedUpstream] = []

    def start(count: int) -> list[CuedUpstream]:
        new = [CuedUpstream(f"u{len(started) + i}").start() for i in range(count)]
        started.extend(new)
        return new

    yield start
    for server in started:
        server.stop()


# -- the circuit breaker and the balancer -------------------------------------------------------


async def test_consecutive_5xx_open_the_breaker_then_503_json_without_the_upstream(
    ferryman_proxy: StartProxy, upstreams: Callable[[int], list[CuedUpstream]]
) -> None:
    (up,) = upstreams(1)
    proxy = await ferryman_proxy(
        NO_CACHE,
        url=up.url,
        breaker={"consecutive_failures": 3, "half_open_after": 60},
        retry=NO_RETRY,
        **GENERAL,
    )
    assert proxy.takes_general_path()
    up.cue = "status"
    for _ in range(3):
        assert (await proxy.send()).status == 503  # the upstream's own answer, relayed
    await asyncio.sleep(0)  # (the state event's listeners run from the loop)
    assert proxy.transitions() == [("closed", "open")]
    assert "3 failures in a row (the last: answered 503)" in proxy.states[0].reason
    response = await proxy.send()
    assert response.status == 503
    assert response.header("content-type") == "application/json"
    assert payload(response) == {
        "status": 503,
        "message": "no upstream of 'api' is available: each is failing its health checks "
        "or its circuit breaker is open",
    }
    assert len(up.requests) == 3  # the fourth never reached it
    lines = await proxy.stop()
    assert "error=\"no upstream of 'api' is available" in lines[-1]


async def test_a_request_sent_before_the_breaker_opened_does_not_close_it(
    ferryman_proxy: StartProxy, upstreams: Callable[[int], list[CuedUpstream]]
) -> None:
    # As on the relay: only the half-open breaker's probe may close it.
    (up,) = upstreams(1)
    proxy = await ferryman_proxy(
        NO_CACHE,
        url=up.url,
        breaker={"consecutive_failures": 1, "half_open_after": 0.3},
        retry=NO_RETRY,
        **GENERAL,
    )
    up.cue = ["late", "status", "late"]
    up.slow_for = 0.7
    old = asyncio.ensure_future(proxy.send())
    assert await wait_until(lambda: len(up.requests) == 1)
    assert (await proxy.send()).status == 503
    await asyncio.sleep(0.35)
    probe = asyncio.ensure_future(proxy.send())
    assert await wait_until(lambda: len(up.requests) == 3)
    assert (await old).status == 200
    await asyncio.sleep(0)  # (the state event's listeners run from the loop)
    assert proxy.transitions() == [("closed", "open"), ("open", "half_open")]
    assert (await probe).status == 200
    await asyncio.sleep(0)
    assert proxy.transitions()[-1] == ("half_open", "closed")


async def test_the_relay_and_the_general_path_share_one_breaker_per_upstream(
    ferryman_proxy: StartProxy, upstreams: Callable[[int], list[CuedUpstream]]
) -> None:
    a, b = upstreams(2)
    proxy = await ferryman_proxy(
        NO_CACHE,
        url=[a.url, b.url],
        breaker={"consecutive_failures": 2, "half_open_after": 60},
        retry=NO_RETRY,
    )
    a.cue = "hangup"
    proxy.general()  # two failures of a's on the general path ...
    statuses = [(await proxy.send()).status for _ in range(4)]
    assert sorted(statuses) == [200, 200, 502, 502]
    assert proxy.transitions(a.url) == [("closed", "open")]
    proxy.general(False)  # ... and the relay spares a too
    assert not proxy.takes_general_path()
    served = [payload(await proxy.send())["upstream"] for _ in range(4)]
    assert served == [b.name] * 4
    assert len(a.requests) == 2
    breakers = [upstream.breaker for upstream in proxy.relay.resilience.balancer.upstreams]
    assert [breaker.state_name for breaker in breakers if breaker] == ["open", "closed"]


async def test_fallbacks_serve_only_when_every_default_is_down(
    ferryman_proxy: StartProxy, upstreams: Callable[[int], list[CuedUpstream]]
) -> None:
    a, b, spare = upstreams(3)
    proxy = await ferryman_proxy(
        NO_CACHE,
        url=[a.url, b.url, {"url": spare.url, "role": "fallback"}],
        breaker={"consecutive_failures": 1, "half_open_after": 60},
        retry=NO_RETRY,
        **GENERAL,
    )
    for _ in range(4):
        assert payload(await proxy.send())["upstream"] in (a.name, b.name)
    assert spare.requests == []
    a.cue = b.cue = "status"
    assert (await proxy.send()).status == 503  # one default's breaker opens...
    assert (await proxy.send()).status == 503  # ... then the other's
    assert proxy.transitions() == [("closed", "open")] * 2
    assert payload(await proxy.send())["upstream"] == spare.name
    assert len(spare.requests) == 1


async def test_weights_share_the_requests(
    ferryman_proxy: StartProxy, upstreams: Callable[[int], list[CuedUpstream]]
) -> None:
    a, b = upstreams(2)
    proxy = await ferryman_proxy(
        NO_CACHE, url=[{"url": a.url, "weight": 3}, b.url], retry=NO_RETRY, **GENERAL
    )
    served = [payload(await proxy.send())["upstream"] for _ in range(8)]
    assert served.count(a.name) == 6 and served.count(b.name) == 2


# -- retries ------------------------------------------------------------------------------------


async def test_a_get_to_a_refused_upstream_goes_to_another(
    ferryman_proxy: StartProxy, upstreams: Callable[[int], list[CuedUpstream]]
) -> None:
    a, b = upstreams(2)
    proxy = await ferryman_proxy(
        NO_CACHE, url=[a.url, b.url], breaker={"enabled": False}, **GENERAL
    )
    a.refuse()
    served = [payload(await proxy.send())["upstream"] for _ in range(4)]
    assert served == [b.name] * 4
    retried = proxy.relay.resilience.balancer.upstreams[1].retries
    assert retried == 2  # (every other request chose a first)


async def test_without_retries_a_refused_upstream_is_a_502(
    ferryman_proxy: StartProxy, upstreams: Callable[[int], list[CuedUpstream]]
) -> None:
    a, b = upstreams(2)
    proxy = await ferryman_proxy(
        NO_CACHE, url=[a.url, b.url], breaker={"enabled": False}, retry=NO_RETRY, **GENERAL
    )
    a.refuse()
    statuses = sorted([(await proxy.send()).status for _ in range(2)])
    assert statuses == [200, 502]


async def test_a_get_answered_503_goes_again_and_a_post_does_not(
    ferryman_proxy: StartProxy, upstreams: Callable[[int], list[CuedUpstream]]
) -> None:
    a, b = upstreams(2)
    proxy = await ferryman_proxy(
        NO_CACHE,
        url=[a.url, b.url],
        breaker={"enabled": False},
        retry={"statuses": [503], "backoff": 0},
        **GENERAL,
    )
    a.cue = "status"
    for _ in range(2):
        assert payload(await proxy.send("GET"))["upstream"] == b.name
    assert len(a.seen("GET")) == 1  # (the round robin chose a once)
    answers = [await proxy.send("POST", body=b"once") for _ in range(2)]
    assert sorted(response.status for response in answers) == [200, 503]
    assert len(a.seen("POST")) == 1 and len(b.seen("POST")) == 1  # each POST went once


async def test_a_post_goes_again_with_its_body_when_the_endpoint_allows_it(
    ferryman_proxy: StartProxy, upstreams: Callable[[int], list[CuedUpstream]]
) -> None:
    a, b = upstreams(2)
    proxy = await ferryman_proxy(
        NO_CACHE,
        url=[a.url, b.url],
        breaker={"enabled": False},
        retry={"statuses": [503], "backoff": 0, "unsafe_methods": True},
        **GENERAL,
    )
    a.cue = "status"
    for _ in range(2):
        answer = payload(await proxy.send("POST", body=b"the same bytes"))
        assert answer["upstream"] == b.name and answer["body"] == "the same bytes"
    assert [seen.body for seen in a.seen("POST")] == [b"the same bytes"]


async def test_a_hangup_is_sent_again_only_when_retry_on_says_so(
    ferryman_proxy: StartProxy, upstreams: Callable[[int], list[CuedUpstream]]
) -> None:
    a, b = upstreams(2)
    proxy = await ferryman_proxy(
        NO_CACHE, url=[a.url, b.url], breaker={"enabled": False}, retry={"backoff": 0}, **GENERAL
    )
    a.cue = "hangup"
    statuses = sorted([(await proxy.send()).status for _ in range(2)])
    assert statuses == [200, 502]  # by default the request a may have acted on goes once
    assert len(a.requests) == 1
    retrying = await ferryman_proxy(
        NO_CACHE,
        url=[a.url, b.url],
        breaker={"enabled": False},
        retry={"backoff": 0, "on": ["broken"]},
        **GENERAL,
    )
    served = [payload(await retrying.send())["upstream"] for _ in range(2)]
    assert served == [b.name, b.name]  # no byte of an answer came: it went again
    assert len(a.requests) == 2


async def test_no_retry_once_the_answer_began(
    ferryman_proxy: StartProxy, upstreams: Callable[[int], list[CuedUpstream]]
) -> None:
    a, b = upstreams(2)
    proxy = await ferryman_proxy(
        NO_CACHE,
        url=[a.url, b.url],
        timeout={"connect": 2, "read": 0.3},
        breaker={"enabled": False},
        retry={"backoff": 0, "on": ["broken", "timeout"]},
        balance={"strategy": "least_outstanding"},
        **GENERAL,
    )
    a.cue = "half-head"  # part of a head, then nothing: a timeout after the answer began
    assert (await proxy.send()).status == 504
    assert len(a.requests) == 1 and b.requests == []
    a.cue = "cut"  # the head and half the body, then the connection closes
    with pytest.raises(asyncio.IncompleteReadError):
        await proxy.send()
    assert len(a.requests) == 2 and b.requests == []


async def test_a_body_that_broke_off_counts_on_the_breaker(
    ferryman_proxy: StartProxy, upstreams: Callable[[int], list[CuedUpstream]]
) -> None:
    (a,) = upstreams(1)
    # (its head counts as a success, its body's end as a failure, as on the relay: the
    # error rate opens it, 2 of 4)
    breaker = {"consecutive_failures": 100, "error_rate": 0.5, "min_requests": 4}
    proxy = await ferryman_proxy(
        NO_CACHE, url=a.url, breaker={**breaker, "half_open_after": 60}, retry=NO_RETRY, **GENERAL
    )
    a.cue = "cut"
    with pytest.raises(asyncio.IncompleteReadError):
        await proxy.send()
    assert proxy.transitions() == []
    with pytest.raises(asyncio.IncompleteReadError):
        await proxy.send()
    assert proxy.transitions() == [("closed", "open")]
    assert "2 of 4 requests failed" in proxy.states[0].reason
    assert "broke off" in proxy.states[0].reason
    assert (await proxy.send()).status == 503
    assert len(a.requests) == 2


# -- the retry deadline -------------------------------------------------------------------------


async def test_every_try_ends_within_the_deadline(
    ferryman_proxy: StartProxy, upstreams: Callable[[int], list[CuedUpstream]]
) -> None:
    # As on the relay: tries of 0.6 s and a deadline of 1 s; the second is cut at 1 s.
    (up,) = upstreams(1)
    proxy = await ferryman_proxy(
        NO_CACHE,
        url=up.url,
        timeout={"connect": 2, "read": 0.6},
        retry={"attempts": 5, "backoff": 0, "deadline": 1, "on": ["timeout"]},
        **GENERAL,
    )
    up.cue = "hang"
    loop = asyncio.get_running_loop()
    began = loop.time()
    response = await proxy.send()
    took = loop.time() - began
    assert response.status == 504 and payload(response) == {
        "status": 504,
        "message": f"the upstream {up.url} did not answer in time: the retry deadline of 1 s "
        "ran out",
    }
    assert len(up.requests) == 2
    assert 0.95 <= took < 1.75  # (the old way: 1.8 s; the message says which ran out)
    resilience = proxy.relay.resilience
    assert resilience is not None
    assert resilience.breakers[0].consecutive == 1  # (the cut try is not the upstream's failure)


async def test_an_answer_that_began_within_the_deadline_is_not_cut_by_it(
    ferryman_proxy: StartProxy, upstreams: Callable[[int], list[CuedUpstream]]
) -> None:
    (up,) = upstreams(1)
    proxy = await ferryman_proxy(
        NO_CACHE,
        url=up.url,
        timeout={"connect": 2, "read": 0.5},
        retry={"attempts": 2, "backoff": 0, "deadline": 0.7, "on": ["timeout"]},
        **GENERAL,
    )
    up.cue = ["hang", "slow"]
    up.slow_for = 0.4  # (the answer's head at 0.5 s, its end at 0.9 s: past the deadline)
    response = await proxy.send()
    assert (response.status, response.body) == (200, b"slowbody")
    assert len(up.requests) == 2
