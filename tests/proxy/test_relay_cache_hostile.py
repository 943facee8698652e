"""The relay's cache against a hostile client and a malicious origin: numbers of thousands of
digits, GETs with a body, answers cut short whatever the store holds. What is asserted is what
a client gets and how many requests reached the origin."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator

import pytest

from ferryman.client.cache import MemoryStore
from ferryman.http.caching import CachePolicy
from ferryman.proxy.relay_cache import RelayCache
from tests.servers.raw_origin import RawAnswer, RawOrigin
from tests.servers.relay_harness import RelayServer, StartRelay
from tests.servers.slow_upstream import RawResponse, roundtrip

_paths = itertools.count()
#: More digits than Python converts to an int (4,300) and fewer than a header field may hold.
MANY_DIGITS = b"9" * 5000


@pytest.fixture(scope="module")
def origin() -> Iterator[RawOrigin]:
    server = RawOrigin().start()
    yield server
    server.stop()


@pytest.fixture
def path() -> str:
    return f"/hostile-{next(_paths)}"


def answer(body: bytes = b"payload", fields: bytes = b"Cache-Control: max-age=60\r\n") -> bytes:
    return b"HTTP/1.1 200 OK\r\n%sContent-Length: %d\r\n\r\n%s" % (fields, len(body), body)


async def cached_relay(start_relay: StartRelay, url: str) -> RelayServer:
    server = await start_relay(url)
    server.relay.cache = RelayCache("test", MemoryStore(), CachePolicy(), 1 << 20)
    return server


async def get(server: RelayServer, path: str, extra: bytes = b"", body: bytes = b"") -> RawResponse:
    head = b"GET %s HTTP/1.1\r\nHost: proxy.test\r\n%s\r\n" % (path.encode(), extra)
    return await roundtrip(server.port, head + body, timeout=5)


async def warm_another(server: RelayServer, origin: RawOrigin) -> None:
    """Store an answer for another path: the cache then looks requests up (with an empty
    store it takes the shortcut of deciding from the answer alone)."""
    other = f"/warm-{next(_paths)}"
    origin.answer(other, RawAnswer(answer()))
    await get(server, other)
    assert (await get(server, other)).header("x-cache") == "HIT"


# -- numbers the origin or the client make as long as they like ------------------------------


@pytest.mark.parametrize(
    ("fields", "second"),
    [
        (b"Cache-Control: max-age=" + MANY_DIGITS + b"\r\n", "HIT"),
        (b"Cache-Control: s-maxage=" + MANY_DIGITS + b"\r\n", "HIT"),
        (b"Cache-Control: max-age=60\r\nAge: " + MANY_DIGITS + b"\r\n", "MISS"),
        (b"Cache-Control: max-age=60, stale-if-error=" + MANY_DIGITS + b"\r\n", "HIT"),
    ],
)
async def test_delta_seconds_of_thousands_of_digits_from_the_origin(
    origin: RawOrigin, path: str, start_relay: StartRelay, fields: bytes, second: str
) -> None:
    # RFC 9111 section 1.2.2: a delta-seconds too large is read as 2^31, not refused; the
    # answer is relayed whole, not taken for a malformed one (502).
    origin.answer(path, RawAnswer(answer(fields=fields)))
    server = await cached_relay(start_relay, origin.url)
    first = await get(server, path)
    again = await get(server, path)
    assert (first.status, first.body) == (200, b"payload")
    assert (again.status, again.body, again.header("x-cache")) == (200, b"payload", second)


@pytest.mark.parametrize("directive", [b"max-age", b"min-fresh"])
async def test_a_request_directive_of_thousands_of_digits(
    origin: RawOrigin, path: str, start_relay: StartRelay, directive: bytes
) -> None:
    origin.answer(path, RawAnswer(answer()))
    server = await cached_relay(start_relay, origin.url)
    await get(server, path)
    response = await get(server, path, b"Cache-Control: %s=%s\r\n" % (directive, MANY_DIGITS))
    assert (response.status, response.body) == (200, b"payload")


# -- a GET with a body -------------------------------------------------------------------------

FRAMINGS = {
    "length": (b"Content-Length: 5\r\n", b"evil!"),
    "chunked": (b"Transfer-Encoding: chunked\r\n", b"5\r\nevil!\r\n0\r\n\r\n"),
}


@pytest.mark.parametrize("framing", list(FRAMINGS))
@pytest.mark.parametrize("store", ["empty", "holding"])
async def test_the_answer_to_a_get_with_a_body_is_not_stored(
    origin: RawOrigin, path: str, start_relay: StartRelay, framing: str, store: str
) -> None:
    # The key is the target alone: an origin that reads a GET's body (search APIs do) would
    # have its answer to one client's body served to every plain GET of the target.
    fields, body = FRAMINGS[framing]
    server = await cached_relay(start_relay, origin.url)
    if store == "holding":
        await warm_another(server, origin)
    origin.answer(path, RawAnswer(answer(b"for the body")), RawAnswer(answer(b"for no body")))
    fat = await get(server, path, fields, body)
    plain = await get(server, path)
    assert fat.body == b"for the body"
    assert (plain.body, plain.header("x-cache")) == (b"for no body", "MISS")
    assert origin.hits(path) == 2


@pytest.mark.parametrize("framing", list(FRAMINGS))
async def test_a_get_with_a_body_is_not_answered_from_the_cache(
    origin: RawOrigin, path: str, start_relay: StartRelay, framing: str
) -> None:
    fields, body = FRAMINGS[framing]
    origin.answer(path, RawAnswer(answer(b"for no body")), RawAnswer(answer(b"for the body")))
    server = await cached_relay(start_relay, origin.url)
    await get(server, path)
    fat = await get(server, path, fields, body)
    assert fat.body == b"for the body" and fat.header("x-cache") != "HIT"
    assert origin.hits(path) == 2 and origin.seen[-1].body == b"evil!"


# -- answers cut short -------------------------------------------------------------------------

CUT = {
    "short content-length": b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\n"
    b"Content-Length: 100\r\n\r\nonly this",
    "chunked, no last chunk": b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n9\r\nonly this\r\n",
    "chunked, no final CRLF": b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n9\r\nonly this\r\n0\r\n",
}


@pytest.mark.parametrize("cut", list(CUT))
@pytest.mark.parametrize("store", ["empty", "holding"])
async def test_an_answer_cut_short_is_neither_stored_nor_passed_off_as_whole(
    origin: RawOrigin, path: str, start_relay: StartRelay, cut: str, store: str
) -> None:
    server = await cached_relay(start_relay, origin.url)
    if store == "holding":
        await warm_another(server, origin)
    origin.answer(path, RawAnswer(CUT[cut], close=True), RawAnswer(answer(b"whole")))
    with pytest.raises((asyncio.IncompleteReadError, ConnectionError)):
        await get(server, path)
    second = await get(server, path)
    assert (second.body, second.header("x-cache")) == (b"whole", "MISS")
    assert (await get(server, path)).header("x-cache") == "HIT"


# -- one URI, several spellings ----------------------------------------------------------------

NO_CONTENT = b"HTTP/1.1 204 No Content\r\n\r\n"


async def send(server: RelayServer, head: bytes) -> RawResponse:
    return await roundtrip(server.port, head + b"\r\n", timeout=5)


@pytest.mark.parametrize(
    "unsafe",
    [
        b"DELETE http://proxy.test{path} HTTP/1.1\r\nHost: proxy.test\r\n",
        b"DELETE {path} HTTP/1.1\r\nHost: PROXY.Test\r\n",
        b"POST /elsewhere HTTP/1.1\r\nHost: proxy.test\r\nContent-Length: 0\r\n",
    ],
    ids=["absolute form", "host in capitals", "location in capitals"],
)
async def test_an_unsafe_request_invalidates_whatever_form_names_the_target(
    origin: RawOrigin, path: str, start_relay: StartRelay, unsafe: bytes
) -> None:
    # The key was the Host and the target as the client spelt them: a DELETE through another
    # spelling of the same URI left every other client the deleted answer.
    unsafe = unsafe.replace(b"{path}", path.encode())
    answers = [RawAnswer(answer(b"before")), RawAnswer(answer())]
    if path.encode() in unsafe:
        answers.insert(1, RawAnswer(NO_CONTENT))
    origin.answer(path, *answers)
    moved = b"HTTP/1.1 201 Created\r\nLocation: HTTP://Proxy.TEST%s\r\nContent-Length: 0\r\n\r\n"
    origin.answer("/elsewhere", RawAnswer(moved % path.encode()))
    server = await cached_relay(start_relay, origin.url)
    await get(server, path)
    assert (await get(server, path)).body == b"before"
    assert (await send(server, unsafe)).status in (201, 204)
    after = await get(server, path)
    assert (after.body, after.header("x-cache")) == (b"payload", "MISS")


async def test_the_absolute_form_of_a_stored_target_is_a_hit(
    origin: RawOrigin, path: str, start_relay: StartRelay
) -> None:
    origin.answer(path, RawAnswer(answer()))
    server = await cached_relay(start_relay, origin.url)
    await get(server, path)
    for host in (b"proxy.test", b"PROXY.TEST"):
        head = b"GET http://proxy.test%s HTTP/1.1\r\nHost: %s\r\n" % (path.encode(), host)
        response = await send(server, head)
        assert (response.body, response.header("x-cache")) == (b"payload", "HIT")
    assert origin.hits(path) == 1
