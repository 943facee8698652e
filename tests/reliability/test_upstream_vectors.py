"""Hostile upstream answers through ``ferryman start``, on both roads, and requests never repeated.

An upstream may close early, lie about lengths, send heads, trailers or chunk extensions without
end, switch protocols unasked, or point clients at itself. What the client must see (issue 20
and its design): an answer passed on whole, or a JSON 502/504 while nothing has been sent, or,
once an answer has started, a cut connection (no chunk terminator, never a second head spliced
in); and the proxy stops reading what it will not use. A request is executed once: the retry
rule is nginx's (retried only if not one byte of its answer arrived, and a non-idempotent one
only if it provably never left), which :func:`test_a_request_whose_answer_started_is_executed_once`
checks on a reused upstream connection for each way an answer can break.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urljoin

import pytest

from tests.reliability.clients import (
    Client,
    Outcome,
    connect,
    error_payload,
    exchange,
    read_outcome,
    request,
    survives,
    upstream_saw,
)
from tests.reliability.hostile_upstream import HostileUpstream, new_rid
from tests.reliability.ledger import LEDGER
from tests.reliability.proxies import ROADS, RunningProxy, endpoint_name
from tests.servers.slow_upstream import wait_until

#: Seconds the proxy gets to close an upstream connection whose answer it refused.
LET_GO = 3.0


def whole(body: bytes) -> Callable[[Outcome], bool]:
    """The answer arrives whole: a 200 with exactly ``body``."""
    return lambda outcome: (
        outcome.status == 200 and (outcome.response is not None and outcome.response.body == body)
    )


def refused(status: int) -> Callable[[Outcome], bool]:
    """The proxy answers ``status`` itself, as JSON."""
    return lambda outcome: (
        outcome.status == status
        and (outcome.response is not None and error_payload(outcome.response) is not None)
    )


def broken(outcome: Outcome) -> bool:
    """The client hears the answer broke: the connection is cut mid-answer, or (if nothing had
    been sent yet) a JSON 502; never a complete answer, nor silence."""
    return outcome.cut or outcome.closed or refused(502)(outcome)


@dataclass(frozen=True)
class Hostile:
    id: str
    target: bytes
    expect: Callable[[Outcome], bool]
    #: The proxy must close the upstream connection (it refused or could not finish the answer).
    let_go: bool = False


HOSTILE = [
    Hostile("close-delimited answer", b"/close-delimited", whole(b"complete body")),
    Hostile("shorter than its Content-Length", b"/short", broken),
    Hostile("cut mid-head", b"/cut-head", refused(502)),
    Hostile("cut mid-chunk", b"/cut-mid-chunk", broken),
    Hostile("endless header value", b"/endless-value", refused(502), let_go=True),
    Hostile("100 KB head in one write", b"/big-head", refused(502), let_go=True),
    Hostile("100 KB head in 50 pieces", b"/big-head?pieces=50", refused(502), let_go=True),
    Hostile("20,000 headers", b"/many-headers", refused(502), let_go=True),
    Hostile("101 headers", b"/many-headers?count=101", refused(502), let_go=True),
    Hostile("endless trailers", b"/endless-trailers", broken, let_go=True),
    Hostile("endless chunk extension", b"/endless-ext", broken, let_go=True),
    Hostile("101 unasked", b"/switch-unasked", refused(502)),
    Hostile("slow head", b"/slow-head", whole(b"slow head")),
    Hostile("answer that never comes", b"/never", refused(504), let_go=True),
]


@pytest.mark.parametrize("road", ROADS)
@pytest.mark.parametrize("vector", HOSTILE, ids=[vector.id for vector in HOSTILE])
async def test_a_hostile_answer_is_passed_on_whole_refused_or_cut(
    plain: RunningProxy, hostile: HostileUpstream, vector: Hostile, road: str
) -> None:
    port = plain.port(endpoint_name("api", road))
    rid = new_rid("hostile")
    LEDGER.upstream_vectors += 1
    outcome = await exchange(port, request(rid, target=vector.target), timeout=10)
    let_go = not vector.let_go or await wait_until(lambda: rid in hostile.gave_up, LET_GO)
    executed = await upstream_saw(hostile, rid)
    if vector.expect(outcome) and let_go and executed == 1:
        LEDGER.handled += 1
    alive = await survives(port)
    assert vector.expect(outcome), f"{vector.id}: the client got {outcome.describe()}"
    assert let_go, f"{vector.id}: the proxy kept the upstream connection open"
    assert executed == 1, f"{vector.id}: executed {executed} times"
    assert alive, f"{vector.id}: the proxy stopped answering"


@pytest.mark.parametrize("road", ROADS)
async def test_bytes_after_an_answer_are_not_the_next_answer(
    plain: RunningProxy, hostile: HostileUpstream, road: str
) -> None:
    """The surplus (shaped like an answer) must not answer the client's next request, on its
    connection or on the upstream connection's next request."""
    port = plain.port(endpoint_name("api", road))
    LEDGER.upstream_vectors += 1
    client = await connect(port)
    try:
        await client.send(request(new_rid("after-bytes"), target=b"/after-bytes"))
        first = await read_outcome(client.reader)
        follow = new_rid("after-bytes-next")
        await client.send(request(follow))
        second = await read_outcome(client.reader)
    finally:
        client.close()
    others = [await exchange(port, request(rid)) for rid in (new_rid("after"), new_rid("after"))]
    own = second.response is not None and follow in second.response.body.decode("latin-1")
    clean = [not_smuggled(outcome) for outcome in others]
    if whole(b"ok")(first) and own and all(clean):
        LEDGER.handled += 1
    assert whole(b"ok")(first), first.describe()
    assert own, f"the next request on the connection got {second.describe()}"
    assert all(clean), [outcome.describe() for outcome in others]


def not_smuggled(outcome: Outcome) -> bool:
    return (
        outcome.status == 200
        and outcome.response is not None
        and b"smuggled" not in outcome.response.body
    )


@pytest.mark.parametrize(("endpoint", "base"), [("api", ""), ("base", "/v1")])
@pytest.mark.parametrize("road", ROADS)
async def test_absolute_urls_to_the_upstream_are_rewritten_to_the_proxy(
    plain: RunningProxy, hostile: HostileUpstream, road: str, endpoint: str, base: str
) -> None:
    """Location, Content-Location and Refresh naming the upstream point at the proxy instead
    (nginx's ``proxy_redirect default``), relative or absolute, the base path taken off."""
    port = plain.port(endpoint_name(endpoint, road))
    here = f"127.0.0.1:{port}"
    LEDGER.upstream_vectors += 1
    outcome = await exchange(
        port, request(new_rid("redirect"), target=b"/self-redirect", host=here.encode())
    )
    response = outcome.response
    assert response is not None and response.status == 302, outcome.describe()
    client_url = f"http://{here}/self-redirect"
    refresh = (response.header("refresh") or "").partition("url=")[2]
    seen = {
        "Location": urljoin(client_url, response.header("location") or ""),
        "Content-Location": urljoin(client_url, response.header("content-location") or ""),
        "Refresh": urljoin(client_url, refresh),
    }
    expected = {
        "Location": f"http://{here}/next?x=1",
        "Content-Location": f"http://{here}/content",
        "Refresh": f"http://{here}/refreshed",
    }
    if seen == expected:
        LEDGER.handled += 1
    assert f":{hostile.port}" not in str(response.headers), response.headers
    assert seen == expected


# -- executed once ------------------------------------------------------------------------------

METHODS = {
    "GET": b"GET",
    "DELETE": b"DELETE",
    "POST with Content-Length 0": b"POST",
}
BROKEN_ANSWERS = {
    "close-delimited": (b"/close-delimited", whole(b"complete body")),
    "short": (b"/short", broken),
    "cut mid-head": (b"/cut-head", refused(502)),
    "cut mid-chunk": (b"/cut-mid-chunk", broken),
}


@pytest.mark.parametrize("answer", BROKEN_ANSWERS)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("road", ROADS)
async def test_a_request_whose_answer_started_is_executed_once(
    plain: RunningProxy, hostile: HostileUpstream, road: str, method: str, answer: str
) -> None:
    """Issue 20, item 1: ``GET /warm`` leaves a kept-alive upstream connection; the next request
    on the client's connection goes on a reused one and its answer breaks. The upstream must see
    it once, and the client one answer (or a cut), never two heads."""
    port = plain.port(endpoint_name("api", road))
    target, expect = BROKEN_ANSWERS[answer]
    rid = new_rid(f"once-{method.split()[0].lower()}")
    headers = b"Content-Length: 0\r\n" if method.startswith("POST") else b""
    LEDGER.upstream_vectors += 1
    client = await connect(port)
    try:
        await client.send(request(new_rid("warm"), target=b"/warm"))
        warm = await read_outcome(client.reader)
        assert whole(b"ok")(warm), warm.describe()
        await client.send(request(rid, method=METHODS[method], target=target, headers=headers))
        outcome = await read_outcome(client.reader, timeout=10)
        # Whatever else arrives on this connection must be the answer to a request of its own.
        after = await _rest_of_connection(client)
    finally:
        client.close()
    executed = await upstream_saw(hostile, rid, settle=0.2)
    if expect(outcome) and executed == 1 and not after:
        LEDGER.handled += 1
    assert executed == 1, f"{method} {answer}: the upstream executed it {executed} times"
    assert not after, f"{method} {answer}: more on the client's connection: {after!r}"
    assert expect(outcome), f"{method} {answer}: the client got {outcome.describe()}"


async def _rest_of_connection(client: Client) -> bytes:
    """Bytes that arrive on a client connection after its answer, before a probe request's own
    answer (b"" when the connection closed or only the probe's answer came)."""
    probe = new_rid("same-connection")
    await client.send(request(probe))
    outcome = await read_outcome(client.reader, timeout=5)
    if outcome.response is None:
        return b"(silence)" if outcome.timed_out else b""
    if probe in outcome.response.body.decode("latin-1"):
        return b""
    return b"%d %s" % (outcome.response.status, outcome.response.body[:200])
