"""Transaction events on a served proxy: the four events, once each and in order, with what an
observer records (status, sizes, timings, upstream, tags, bodies), on the fast relay and on the
general path, for answers, refusals, upstream failures and cut answers; and observers that fail
or are slow never reach the traffic."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

import ferryman
from ferryman.proxy.events import EVENT_FILTER_PROXY_REQUEST
from ferryman.proxy.server import ProxyServer
from ferryman.proxy.transactions import (
    EVENT_TRANSACTION_FINISHED,
    EVENT_TRANSACTION_REQUEST,
    EVENT_TRANSACTION_RESPONSE,
    EVENT_TRANSACTION_STARTED,
    TRANSACTION_EVENTS,
    Transaction,
)
from ferryman.server import EVENT_CORE_REQUEST
from tests.proxy.test_server import serve, takes_the_fast_path, url_of
from tests.servers.edge import EdgeServer


class Recorder:
    """Listens to the four events and keeps what it saw, in order."""

    def __init__(self, proxy: ProxyServer, bodies: int = 0) -> None:
        self.seen: list[tuple[str, Transaction]] = []
        self.finished: list[Transaction] = []
        self.bodies = bodies
        dispatcher = proxy.system.dispatcher
        for name in TRANSACTION_EVENTS:
            dispatcher.add_listener(name, self._listener(name))

    def _listener(self, name: str):  # type: ignore[no-untyped-def]
        def listen(transaction: Transaction) -> None:
            self.seen.append((name, transaction))
            if name == EVENT_TRANSACTION_STARTED and self.bodies:
                transaction.record_bodies(self.bodies)
            if name == EVENT_TRANSACTION_FINISHED:
                self.finished.append(transaction)

        return listen

    def names(self, transaction: Transaction) -> list[str]:
        return [name for name, seen in self.seen if seen is transaction]


@pytest.fixture
async def proxy(edge: EdgeServer, refused_url: str) -> AsyncIterator[ProxyServer]:
    # (the proxy alone: storage, on by default, would record bodies too, to its own limit)
    server = await serve(("api", edge.url), ("down", refused_url), applications="[proxy]")
    try:
        yield server
    finally:
        await server.shutdown(1)
        await server.system.dispose()


async def test_an_answered_request_dispatches_the_four_events_once_in_order(
    proxy: ProxyServer, client: ferryman.AsyncClient
) -> None:
    recorder = Recorder(proxy)
    assert takes_the_fast_path(proxy, "api")  # observers keep the fast relay
    response = await client.post(
        url_of(proxy, "api", "/echo?x=1"),
        content=b"hello",
        headers={"X-Ferryman-Tag-Team": "billing", "Authorization": "Bearer t"},
    )
    assert response.status_code == 200
    (transaction,) = recorder.finished
    assert recorder.names(transaction) == list(TRANSACTION_EVENTS)
    assert transaction.endpoint == "api"
    assert transaction.method == "POST"
    assert transaction.target == "/echo?x=1"
    assert transaction.status == 200
    assert transaction.error is None
    assert transaction.request_body_size == 5
    assert transaction.response_body_size == len(response.content)
    assert transaction.request_headers["authorization"] == "Bearer t"
    assert transaction.response_headers is not None
    assert transaction.response_headers["content-type"] == "application/json"
    assert transaction.upstream is not None and transaction.upstream.endswith("/echo?x=1")
    assert transaction.client is not None and transaction.client[0] == "127.0.0.1"
    assert transaction.tags == {"team": "billing"}
    # The tag is ferryman's: the upstream never sees it.
    sent = {name.lower() for name, _ in response.json()["headers"]}
    assert "x-ferryman-tag-team" not in sent and "authorization" in sent
    timings = transaction.timings
    assert timings["total"] is not None and timings["total"] > 0
    assert timings["wait"] is not None and timings["ttfb"] is not None
    assert timings["ttfb"] <= timings["total"]
    assert len(transaction.id) == 32


async def test_bodies_are_recorded_on_request_up_to_the_limit(
    proxy: ProxyServer, client: ferryman.AsyncClient
) -> None:
    recorder = Recorder(proxy, bodies=1000)
    payload = b"x" * 3000
    response = await client.post(url_of(proxy, "api", "/echo"), content=payload)
    (transaction,) = recorder.finished
    assert bytes(transaction.request_body or b"") == payload[:1000]
    assert transaction.request_body_truncated
    assert transaction.request_body_size == 3000
    assert transaction.response_body is not None
    assert bytes(transaction.response_body) == response.content[:1000]
    assert transaction.response_body_truncated
    assert transaction.response_body_size == len(response.content)

    # A large body passed on unparsed is recorded too (the relay stops bypassing the parser).
    response = await client.get(url_of(proxy, "api", "/big?size=300000"))
    transaction = recorder.finished[-1]
    assert transaction.response_body_size == 300000 == len(response.content)
    assert bytes(transaction.response_body or b"") == response.content[:1000]


async def test_nothing_is_recorded_when_nobody_asks(
    proxy: ProxyServer, client: ferryman.AsyncClient
) -> None:
    recorder = Recorder(proxy)
    await client.post(url_of(proxy, "api", "/echo"), content=b"abc")
    (transaction,) = recorder.finished
    assert transaction.request_body is None and transaction.response_body is None
    assert transaction.request_body_size == 3


async def test_an_unreachable_upstream_finishes_with_the_proxys_status_and_why(
    proxy: ProxyServer, client: ferryman.AsyncClient
) -> None:
    recorder = Recorder(proxy)
    response = await client.get(url_of(proxy, "down", "/x"))
    assert response.status_code == 502
    (transaction,) = recorder.finished
    assert recorder.names(transaction) == [EVENT_TRANSACTION_STARTED, EVENT_TRANSACTION_FINISHED]
    assert transaction.status == 502
    assert transaction.error is not None and "refused" in transaction.error
    assert transaction.upstream is None


async def test_a_refused_request_is_a_transaction_too(
    proxy: ProxyServer, client: ferryman.AsyncClient
) -> None:
    recorder = Recorder(proxy)
    response = await client.get(url_of(proxy, "api", "/a/%2e%2e/%2e%2e/etc"))
    assert response.status_code == 400
    (transaction,) = recorder.finished
    assert transaction.status == 400
    assert recorder.names(transaction) == [EVENT_TRANSACTION_STARTED, EVENT_TRANSACTION_FINISHED]


async def test_a_truncated_answer_finishes_with_an_error(
    proxy: ProxyServer, client: ferryman.AsyncClient
) -> None:
    recorder = Recorder(proxy)
    with pytest.raises(ferryman.RemoteProtocolError):
        await client.get(url_of(proxy, "api", "/truncated"))
    for _ in range(100):
        if recorder.finished:
            break
        await asyncio.sleep(0.01)
    (transaction,) = recorder.finished
    assert transaction.status == 200  # what the client was told before the cut
    assert transaction.error is not None
    assert recorder.names(transaction) == list(TRANSACTION_EVENTS)


async def test_a_client_that_leaves_finishes_its_transaction(
    proxy: ProxyServer, edge: EdgeServer
) -> None:
    recorder = Recorder(proxy)
    host, port = proxy.addresses["api"]
    _reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"GET /slow-head HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    await asyncio.sleep(0.1)
    writer.close()
    for _ in range(200):
        if recorder.finished:
            break
        await asyncio.sleep(0.01)
    (transaction,) = recorder.finished
    assert transaction.error is not None and "client closed" in transaction.error


async def test_a_failing_observer_never_reaches_the_traffic(
    proxy: ProxyServer, client: ferryman.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(transaction: Transaction) -> None:
        raise ValueError("observer bug")

    dispatcher = proxy.system.dispatcher
    for name in TRANSACTION_EVENTS:
        dispatcher.add_listener(name, broken)
    seen: list[Transaction] = []
    dispatcher.add_listener(EVENT_TRANSACTION_FINISHED, seen.append, priority=-1)
    for _ in range(3):
        response = await client.get(url_of(proxy, "api", "/echo"))
        assert response.status_code == 200
    assert len(seen) == 3  # the listeners after the broken one still run
    assert "observer bug" in caplog.text


async def test_an_async_observer_runs_as_a_task(
    proxy: ProxyServer, client: ferryman.AsyncClient
) -> None:
    done = asyncio.Event()
    statuses: list[int] = []

    async def observe(transaction: Transaction) -> None:
        await asyncio.sleep(0)
        statuses.append(transaction.status)
        done.set()

    proxy.system.dispatcher.add_listener(EVENT_TRANSACTION_FINISHED, observe)
    await client.get(url_of(proxy, "api", "/status?code=404"))
    await asyncio.wait_for(done.wait(), 2)
    assert statuses == [404]


async def test_the_general_path_dispatches_them_too(
    proxy: ProxyServer, client: ferryman.AsyncClient
) -> None:
    recorder = Recorder(proxy)
    # (a core event's listener sends requests through the ASGI kernel: the general path)
    proxy.system.dispatcher.add_listener(EVENT_CORE_REQUEST, lambda event: None)
    assert not takes_the_fast_path(proxy, "api")
    response = await client.post(
        url_of(proxy, "api", "/echo"), content=b"abcd", headers={"X-Ferryman-Tag-A": "1"}
    )
    assert response.status_code == 200
    (transaction,) = recorder.finished
    assert transaction.tags == {"a": "1"}
    assert transaction.status == 200
    assert transaction.request_body_size == 4
    assert transaction.response_body_size == len(response.content)
    assert recorder.names(transaction) == list(TRANSACTION_EVENTS)
    assert transaction.upstream is not None and transaction.upstream.endswith("/echo")
    assert transaction.response_headers is not None
    assert transaction.response_headers["content-type"] == "application/json"
    assert transaction.timings["wait"] is not None
    assert "x-ferryman-tag-a" not in json.dumps(response.json()).lower()


async def test_the_general_path_says_why_an_upstream_failed(
    proxy: ProxyServer, client: ferryman.AsyncClient
) -> None:
    recorder = Recorder(proxy)
    proxy.system.dispatcher.add_listener(EVENT_CORE_REQUEST, lambda event: None)
    response = await client.get(url_of(proxy, "down", "/x"))
    assert response.status_code == 502
    (transaction,) = recorder.finished
    assert transaction.status == 502
    assert transaction.error is not None and "refused" in transaction.error
    assert transaction.upstream is not None and transaction.upstream.endswith("/x")


async def test_filter_listeners_keep_the_relay_and_its_transactions(
    proxy: ProxyServer, client: ferryman.AsyncClient
) -> None:
    recorder = Recorder(proxy)
    proxy.system.dispatcher.add_listener(EVENT_FILTER_PROXY_REQUEST, lambda event: None)
    response = await client.post(url_of(proxy, "api", "/echo"), content=b"abcd")
    assert response.status_code == 200
    (transaction,) = recorder.finished
    assert recorder.names(transaction) == list(TRANSACTION_EVENTS)
    assert (transaction.status, transaction.request_body_size) == (200, 4)


async def test_events_fire_for_pipelined_requests_one_transaction_each(
    proxy: ProxyServer,
) -> None:
    recorder = Recorder(proxy)
    host, port = proxy.addresses["api"]
    _reader, writer = await asyncio.open_connection(host, port)
    writer.write(
        b"GET /echo?n=1 HTTP/1.1\r\nHost: x\r\n\r\nGET /echo?n=2 HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    await writer.drain()
    for _ in range(200):
        if len(recorder.finished) == 2:
            break
        await asyncio.sleep(0.01)
    writer.close()
    assert [t.target for t in recorder.finished] == ["/echo?n=1", "/echo?n=2"]
    assert all(
        recorder.names(t)
        == [
            EVENT_TRANSACTION_STARTED,
            EVENT_TRANSACTION_REQUEST,
            EVENT_TRANSACTION_RESPONSE,
            EVENT_TRANSACTION_FINISHED,
        ]
        for t in recorder.finished
    )


async def test_a_record_holds_the_raw_facts_in_record_fields_order(
    proxy: ProxyServer, client: ferryman.AsyncClient
) -> None:
    import marshal

    from ferryman.apps.storage.rows import upstream_url
    from ferryman.proxy.transactions import RECORD_FIELDS

    recorder = Recorder(proxy, bodies=100_000)
    response = await client.post(
        url_of(proxy, "api", "/echo?x=1"), content=b"hello", headers={"X-Ferryman-Tag-A": "b"}
    )
    (transaction,) = recorder.finished
    # Plain values only: it crosses to another process as it is.
    record = marshal.loads(marshal.dumps(transaction.record()))
    fields = dict(zip(RECORD_FIELDS, record, strict=True))
    assert fields["id"] is None  # nobody read it: made where the record is stored
    assert (fields["endpoint"], fields["raw_method"], fields["raw_target"]) == (
        "api",
        b"POST",
        b"/echo?x=1",
    )
    assert (b"x-ferryman-tag-a", b"b") in fields["raw_request_headers"]  # as the client sent it
    assert fields["status"] == 200 and fields["error"] is None
    assert fields["raw_response_head"] == transaction.raw_response_head
    assert fields["request_body"] == b"hello"
    assert fields["response_body"] == response.content
    assert fields["response_body_size"] == len(response.content)
    assert fields["t_start"] <= fields["t_response"] <= fields["t_end"]
    assert fields["started_at"] == transaction.started_at
    rebuilt = upstream_url(
        fields["upstream_url"], fields["upstream_origin"], fields["upstream_request_line"]
    )
    assert rebuilt == transaction.upstream and rebuilt is not None
    assert rebuilt.endswith("/echo?x=1")
    transaction.id  # noqa: B018 - read by a listener: the record carries it
    assert transaction.record()[0] == transaction.id


async def test_slow_async_observers_are_bounded_and_never_hold_the_traffic(
    proxy: ProxyServer, client: ferryman.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    from ferryman.proxy import transactions

    release = asyncio.Event()
    started: list[int] = []

    async def stuck(transaction: Transaction) -> None:
        started.append(transaction.status)
        await release.wait()

    proxy.system.dispatcher.add_listener(EVENT_TRANSACTION_FINISHED, stuck)
    limit = transactions.MAX_OBSERVER_TASKS
    transactions.MAX_OBSERVER_TASKS = 3
    try:
        for _ in range(6):
            assert (await client.get(url_of(proxy, "api", "/echo"))).status_code == 200
        await asyncio.sleep(0.05)
        assert len(started) == 3  # the rest were skipped, and said so
        assert "skipped" in caplog.text
    finally:
        transactions.MAX_OBSERVER_TASKS = limit
        release.set()
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("case", ["revalidated", "stale on a 5xx"])
async def test_an_answer_from_the_cache_keeps_the_head_the_client_got(
    client: ferryman.AsyncClient, case: str
) -> None:
    """A 304 merged into a stored answer, or a stored answer served on a 5xx: the transaction's
    response head is the one the client got, its events once each, and an asynchronous
    observer (which runs after the relay has moved on) still reads that head."""
    from tests.servers.cache_origin import CacheOrigin, Reply

    origin = CacheOrigin().start()
    proxy = await serve(("api", origin.url), applications="[proxy, cache]")
    try:
        stored = [("Cache-Control", "max-age=60, stale-if-error=600"), ("Age", "100")]
        if case == "revalidated":
            replies = [
                Reply(headers=[*stored, ("X-Version", "1")], body=b"v1", etag='"v1"'),
                Reply(headers=[("Cache-Control", "max-age=60"), ("X-Version", "2")], etag='"v1"'),
            ]
            status, version = "REVALIDATED", "2"
        else:
            replies = [Reply(headers=[*stored, ("X-Version", "1")], body=b"v1"), Reply(503)]
            status, version = "STALE", "1"
        origin.script("/cached", *replies)
        await client.get(url_of(proxy, "api", "/cached"))
        recorder = Recorder(proxy)
        observed: list[dict[str, str] | None] = []
        done = asyncio.Event()

        async def observe(transaction: Transaction) -> None:
            await asyncio.sleep(0.05)  # (the relay is done with the exchange by now)
            headers = transaction.response_headers
            observed.append(None if headers is None else dict(headers.items()))
            done.set()

        proxy.system.dispatcher.add_listener(EVENT_TRANSACTION_FINISHED, observe)
        response = await client.get(url_of(proxy, "api", "/cached"))
        await asyncio.wait_for(done.wait(), 5)
    finally:
        await proxy.shutdown(1)
        await proxy.system.dispose()
        origin.stop()
    assert response.status_code == 200 and response.headers["x-cache"] == status
    (transaction,) = recorder.finished
    assert recorder.names(transaction) == list(TRANSACTION_EVENTS)
    assert transaction.cache == status and transaction.status == 200
    (seen,) = observed
    assert seen is not None
    assert seen["x-cache"] == status and seen["x-version"] == version
    assert seen["age"] == response.headers["age"] and seen["content-length"] == "2"
