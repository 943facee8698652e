"""HTTP/2 in the transport core, against hypercorn and a scripted h2c server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import h2.config
import h2.connection
import h2.events
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ferryman import (
    AsyncConnectionPool,
    ConnectError,
    ConnectionPool,
    PoolTimeout,
    ReadTimeout,
    RemoteProtocolError,
    Request,
    WriteTimeout,
)
from ferryman.client.transport.http2 import (
    STREAM_WINDOW,
    AsyncHTTP2Connection,
    HTTP2ResponseStream,
    StreamNotAnswered,
    http2_header_fields,
)
from tests.client.transport.conftest import ScriptedH2Server
from tests.servers.edge import EdgeServer
from tests.servers.hypercorn_server import HypercornServer, pattern
from tests.servers.nginx_server import NginxServer
from tests.servers.slow_upstream import ScriptedUpstream, wait_until


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    async def __call__(self, name: str, info: dict[str, Any]) -> None:
        self.events.append((name, info))

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.events]


def _phases(*names: str) -> list[str]:
    return [f"{name}.{step}" for name in names for step in ("started", "complete")]


H2_EXCHANGE = _phases(
    "http2.send_request_headers",
    "http2.send_request_body",
    "http2.receive_response_headers",
    "http2.receive_response_body",
    "http2.response_closed",
)


async def _get_json(pool: AsyncConnectionPool, url: str, **kwargs: Any) -> dict[str, Any]:
    response = await pool.handle_async_request(Request("GET", url, **kwargs))
    data: dict[str, Any] = json.loads(await response.aread())
    return data


# -- the basics over TLS with ALPN ------------------------------------------------------------


async def test_get_over_h2_negotiated_by_alpn(hypercorn: HypercornServer, ca_bundle: str) -> None:
    async with AsyncConnectionPool(http2=True, verify=ca_bundle) as pool:
        response = await pool.handle_async_request(
            Request("GET", hypercorn.url + "/echo?x=1", headers={"X-Custom": "yes"})
        )
        body = json.loads(await response.aread())
        assert response.status_code == 200
        assert response.http_version == "HTTP/2"
        assert response.extensions["http_version"] == b"HTTP/2"
        assert response.extensions["reason_phrase"] == b""
        assert response.extensions["stream_id"] == 1
        assert response.headers["content-type"] == "application/json"
        assert body["http_version"] == "2"
        assert body["query"] == "x=1"
        assert ["x-custom", "yes"] in body["headers"]
        assert isinstance(pool.connections[0], AsyncHTTP2Connection)
        second = await pool.handle_async_request(Request("GET", hypercorn.url + "/echo"))
        await second.aread()
        assert second.extensions["stream_id"] == 3  # the same connection, the next stream


async def test_post_bytes(hypercorn: HypercornServer, ca_bundle: str) -> None:
    payload = pattern(100_000)
    async with AsyncConnectionPool(http2=True, verify=ca_bundle) as pool:
        response = await pool.handle_async_request(
            Request("POST", hypercorn.url + "/echo", content=payload)
        )
        body = json.loads(await response.aread())
    assert body["method"] == "POST"
    assert body["body_size"] == len(payload)
    assert body["body_sha256"] == hashlib.sha256(payload).hexdigest()
    assert ["content-length", str(len(payload))] in body["headers"]


async def test_64_concurrent_requests_share_one_connection(
    hypercorn: HypercornServer, ca_bundle: str
) -> None:
    async with AsyncConnectionPool(http2=True, verify=ca_bundle) as pool:

        async def one(index: int) -> tuple[int, str]:
            response = await pool.handle_async_request(
                Request("GET", f"{hypercorn.url}/echo?i={index}")
            )
            body = json.loads(await response.aread())
            return response.extensions["stream_id"], body["query"]

        results = await asyncio.gather(*(one(index) for index in range(64)))
        assert len(pool.connections) == 1
        assert len({stream_id for stream_id, _ in results}) == 64
        assert [query for _, query in results] == [f"i={index}" for index in range(64)]


async def test_more_streams_than_the_server_allows_open_a_second_connection(
    hypercorn: HypercornServer, ca_bundle: str
) -> None:
    # hypercorn allows 100 concurrent streams; responses left open keep their streams.
    async with AsyncConnectionPool(http2=True, verify=ca_bundle) as pool:
        responses = await asyncio.gather(
            *(
                pool.handle_async_request(Request("GET", hypercorn.url + "/echo"))
                for _ in range(150)
            )
        )
        assert len(pool.connections) == 2
        bodies = [json.loads(await response.aread()) for response in responses]
        assert all(body["http_version"] == "2" for body in bodies)


async def test_requests_wait_when_every_stream_is_taken(
    hypercorn: HypercornServer, ca_bundle: str
) -> None:
    async with AsyncConnectionPool(
        http2=True, verify=ca_bundle, max_connections_per_origin=1
    ) as pool:
        held = await asyncio.gather(
            *(
                pool.handle_async_request(Request("GET", hypercorn.url + "/echo"))
                for _ in range(100)
            )
        )
        with pytest.raises(PoolTimeout):
            await pool.handle_async_request(
                Request("GET", hypercorn.url + "/echo", extensions={"timeout": {"pool": 0.2}})
            )
        waiting = asyncio.ensure_future(_get_json(pool, hypercorn.url + "/echo?late"))
        await held[0].aclose()  # frees one stream: the waiting request takes it
        assert (await waiting)["query"] == "late"
        for response in held[1:]:
            await response.aread()
        assert len(pool.connections) == 1


# -- streaming and flow control ----------------------------------------------------------------


async def test_large_download_is_streamed_within_the_flow_control_window(
    hypercorn: HypercornServer, ca_bundle: str
) -> None:
    size = 8 * 1024 * 1024
    async with AsyncConnectionPool(http2=True, verify=ca_bundle) as pool:
        response = await pool.handle_async_request(
            Request("GET", f"{hypercorn.url}/bytes?size={size}")
        )
        stream = response.stream
        assert isinstance(stream, HTTP2ResponseStream)
        await asyncio.sleep(0.3)  # a slow reader: the server may send a window's worth only
        assert 0 < stream.buffered <= STREAM_WINDOW
        # The connection is not blocked by the stalled stream.
        assert (await _get_json(pool, hypercorn.url + "/echo"))["http_version"] == "2"
        received = bytearray()
        largest_buffer = 0
        async for chunk in response.aiter_bytes():
            received += chunk
            largest_buffer = max(largest_buffer, stream.buffered)
        assert received == pattern(size)
        assert largest_buffer <= STREAM_WINDOW


async def test_download_closed_early_resets_only_its_stream(
    hypercorn: HypercornServer, ca_bundle: str
) -> None:
    async with AsyncConnectionPool(http2=True, verify=ca_bundle) as pool:
        response = await pool.handle_async_request(
            Request("GET", f"{hypercorn.url}/bytes?size={32 * 1024 * 1024}")
        )
        async for chunk in response.aiter_bytes():
            assert chunk
            break
        await response.aclose()  # unread: the stream is reset, the connection stays
        assert (await _get_json(pool, hypercorn.url + "/echo"))["method"] == "GET"
        assert len(pool.connections) == 1


async def test_large_upload_from_an_async_generator(
    hypercorn: HypercornServer, ca_bundle: str
) -> None:
    chunk = pattern(64 * 1024)
    count = 128  # 8 MiB, far beyond the server's flow-control window

    async def body() -> AsyncIterator[bytes]:
        for _ in range(count):
            yield chunk

    async with AsyncConnectionPool(http2=True, verify=ca_bundle) as pool:
        response = await pool.handle_async_request(
            Request("POST", hypercorn.url + "/echo", content=body())
        )
        result = json.loads(await response.aread())
    assert result["body_size"] == len(chunk) * count
    assert result["body_sha256"] == hashlib.sha256(chunk * count).hexdigest()
    assert not any(name == "transfer-encoding" for name, _ in result["headers"])


async def test_upload_from_a_sync_iterator(hypercorn: HypercornServer, ca_bundle: str) -> None:
    parts = [b"alpha", b"", b"beta", pattern(200_000)]
    async with AsyncConnectionPool(http2=True, verify=ca_bundle) as pool:
        response = await pool.handle_async_request(
            Request("PUT", hypercorn.url + "/echo", content=iter(parts))
        )
        result = json.loads(await response.aread())
    assert result["body_sha256"] == hashlib.sha256(b"".join(parts)).hexdigest()


async def test_write_timeout_when_the_window_stays_shut(scripted_h2: ScriptedH2Server) -> None:
    async with AsyncConnectionPool(http2_prior_knowledge=True) as pool:
        with pytest.raises(WriteTimeout):
            await pool.handle_async_request(
                Request(
                    "POST",
                    scripted_h2.url + "/no-window",
                    content=b"x" * 200_000,
                    extensions={"timeout": {"write": 0.2}},
                )
            )


# -- trace, fallback, prior knowledge ----------------------------------------------------------


async def test_trace_events_in_order(hypercorn: HypercornServer, ca_bundle: str) -> None:
    trace = Recorder()
    async with AsyncConnectionPool(http2=True, verify=ca_bundle) as pool:
        request = Request("GET", hypercorn.url + "/echo", extensions={"trace": trace})
        response = await pool.handle_async_request(request)
        await response.aread()
        assert trace.names == (
            _phases("connection.connect_tcp", "connection.start_tls", "http2.send_connection_init")
            + H2_EXCHANGE
        )
        info = dict(trace.events)
        assert info["http2.send_connection_init.started"] == {"request": request}
        expected = {"request": request, "stream_id": 1}
        assert info["http2.send_request_headers.started"] == expected
        assert info["http2.receive_response_body.started"] == expected
        status, headers = info["http2.receive_response_headers.complete"]["return_value"]
        assert status == 200
        assert (b"content-type", b"application/json") in headers
        assert info["http2.response_closed.started"] == {"stream_id": 1}
        trace.events.clear()
        response = await pool.handle_async_request(
            Request("POST", hypercorn.url + "/echo", content=b"abc", extensions={"trace": trace})
        )
        async for _ in response.aiter_bytes():
            pass
        assert trace.names == H2_EXCHANGE  # the same connection: nothing to open


async def test_falls_back_to_http11_when_the_server_offers_only_that(
    tls_edge: EdgeServer, ca_bundle: str
) -> None:
    async with AsyncConnectionPool(http2=True, verify=ca_bundle) as pool:
        # Held open, each response keeps its HTTP/1.1 connection busy: four connections.
        responses = await asyncio.gather(
            *(pool.handle_async_request(Request("GET", tls_edge.url + "/echo")) for _ in range(4))
        )
        assert {response.extensions["http_version"] for response in responses} == {b"HTTP/1.1"}
        assert len(pool.connections) == 4
        for response in responses:
            await response.aread()


async def test_http2_only_refuses_a_server_without_h2(tls_edge: EdgeServer, ca_bundle: str) -> None:
    async with AsyncConnectionPool(http1=False, http2=True, verify=ca_bundle) as pool:
        with pytest.raises(ConnectError, match="HTTP/2"):
            await pool.handle_async_request(Request("GET", tls_edge.url + "/echo"))
        assert pool.connections == []


async def test_h2c_with_prior_knowledge(hypercorn: HypercornServer) -> None:
    async with AsyncConnectionPool(http2_prior_knowledge=True) as pool:
        response = await pool.handle_async_request(Request("GET", hypercorn.h2c_url + "/echo"))
        body = json.loads(await response.aread())
        assert response.extensions["http_version"] == b"HTTP/2"
        assert body["http_version"] == "2"
    async with AsyncConnectionPool(http2=True) as pool:  # without prior knowledge: HTTP/1.1
        response = await pool.handle_async_request(Request("GET", hypercorn.h2c_url + "/echo"))
        assert json.loads(await response.aread())["http_version"] == "1.1"


async def test_http2_through_a_connect_tunnel(hypercorn: HypercornServer, ca_bundle: str) -> None:
    # The proxy pool opens tunnels with its own _connect; ALPN inside the tunnel picks h2.
    from ferryman.client.transport.proxy import AsyncHTTPProxy
    from tests.servers.forward_proxy import ForwardProxy

    proxy = ForwardProxy().start()
    try:
        async with AsyncHTTPProxy(proxy.url, http2=True, verify=ca_bundle) as pool:
            responses = await asyncio.gather(
                *(
                    pool.handle_async_request(Request("GET", hypercorn.url + "/echo"))
                    for _ in range(8)
                )
            )
            bodies = [json.loads(await response.aread()) for response in responses]
            assert {body["http_version"] for body in bodies} == {"2"}
            assert len(pool.connections) == 1
        assert len(proxy.connect_targets) == 1
    finally:
        proxy.stop()


# -- servers that misbehave --------------------------------------------------------------------


async def test_rst_stream_is_a_remote_protocol_error(scripted_h2: ScriptedH2Server) -> None:
    async with AsyncConnectionPool(http2_prior_knowledge=True) as pool:
        response = await pool.handle_async_request(Request("GET", scripted_h2.url + "/reset"))
        with pytest.raises(RemoteProtocolError, match="reset the stream"):
            await response.aread()
        # Only the stream failed: the connection serves the next request.
        ok = await pool.handle_async_request(Request("GET", scripted_h2.url + "/ok"))
        assert await ok.aread() == b"connection 1"


async def test_malformed_response_head(scripted_h2: ScriptedH2Server) -> None:
    async with AsyncConnectionPool(http2_prior_knowledge=True) as pool:
        with pytest.raises(RemoteProtocolError, match="malformed"):
            await pool.handle_async_request(Request("GET", scripted_h2.url + "/bad-head"))
        ok = await pool.handle_async_request(Request("GET", scripted_h2.url + "/ok"))
        assert await ok.aread() == b"connection 1"


async def test_refused_stream_is_sent_again(scripted_h2: ScriptedH2Server) -> None:
    async with AsyncConnectionPool(http2_prior_knowledge=True) as pool:
        response = await pool.handle_async_request(Request("GET", scripted_h2.url + "/refused"))
        assert await response.aread() == b"connection 1"
        assert scripted_h2.refused == 1


async def test_goaway_sends_unprocessed_requests_again(scripted_h2: ScriptedH2Server) -> None:
    async with AsyncConnectionPool(http2_prior_knowledge=True) as pool:
        url = scripted_h2.url + "/goaway-after-first"
        first = await pool.handle_async_request(Request("GET", url))
        assert await first.aread() == b"connection 1"
        # Stream 3 is above the GOAWAY's last stream id: not processed, so sent again.
        second = await pool.handle_async_request(Request("POST", url, content=b"data"))
        assert await second.aread() == b"connection 2"
        assert scripted_h2.connections == 2


async def test_a_goaway_disowning_an_answered_stream_does_not_send_it_again(
    scripted_h2: ScriptedH2Server,
) -> None:
    # Issue 20: a request goes again only if not one byte of its answer arrived. This server
    # answers (head and part of a body), then claims in a GOAWAY it never processed the stream.
    async with AsyncConnectionPool(http2_prior_knowledge=True) as pool:
        with pytest.raises(RemoteProtocolError):
            response = await pool.handle_async_request(
                Request("POST", scripted_h2.url + "/disown", content=b"pay")
            )
            await response.aread()
    assert scripted_h2.disowned == 1


# Four requests sent at once, streams 1, 3, 5, 7 in this order: the scripted server's GOAWAY
# names stream 3 as the last it took.
_GET_POST_GET_POST = [("GET", "a"), ("POST", "b"), ("GET", "c"), ("POST", "d")]


async def _send_all(pool: AsyncConnectionPool, url: str) -> list[bytes | BaseException]:
    """Send ``_GET_POST_GET_POST`` at once to ``url``, bodies read (or the error)."""

    async def one(method: str, name: str) -> bytes:
        content = b"body of " + name.encode() if method == "POST" else None
        response = await pool.handle_async_request(
            Request(method, f"{url}?r={name}", content=content)
        )
        return await response.aread()

    requests = (one(method, name) for method, name in _GET_POST_GET_POST)
    results = await asyncio.gather(*requests, return_exceptions=True)
    return list(results)


async def test_streams_up_to_a_goaways_last_stream_id_are_still_answered(
    scripted_h2: ScriptedH2Server,
) -> None:
    # Issue 21: h2 closed its state machine on the GOAWAY, so the answers that came after it
    # broke the connection: GETs went again (the server ran them twice), POSTs failed.
    async with AsyncConnectionPool(http2_prior_knowledge=True) as pool:
        results = await _send_all(pool, scripted_h2.url + "/graceful")
        # Streams 1 and 3 were taken and answered on the first connection; 5 and 7, above
        # the last stream id, went again (a POST too) on a new one.
        assert results == [
            b"/graceful?r=a on connection 1",
            b"/graceful?r=b on connection 1",
            b"/graceful?r=c on connection 2",
            b"/graceful?r=d on connection 2",
        ]
        later = await pool.handle_async_request(Request("GET", scripted_h2.url + "/ok"))
        assert await later.aread() == b"connection 2"  # new requests: not on the old one
    assert sorted(scripted_h2.executed) == [  # each once
        (1, b"/graceful?r=a"),
        (1, b"/graceful?r=b"),
        (2, b"/graceful?r=c"),
        (2, b"/graceful?r=d"),
    ]


async def test_a_stream_taken_before_a_goaway_and_then_lost_is_not_sent_again(
    scripted_h2: ScriptedH2Server,
) -> None:
    # The GOAWAY says the server may have acted on streams 1 and 3; the connection then closes
    # without their answers. Even a GET fails rather than run twice; 5 and 7 go again.
    async with AsyncConnectionPool(http2_prior_knowledge=True) as pool:
        results = await _send_all(pool, scripted_h2.url + "/graceful-cut")
    assert all(isinstance(result, StreamNotAnswered) for result in results[:2])
    assert results[2:] == [
        b"/graceful-cut?r=c on connection 2",
        b"/graceful-cut?r=d on connection 2",
    ]
    assert sorted(scripted_h2.executed) == [
        (1, b"/graceful-cut?r=a"),
        (1, b"/graceful-cut?r=b"),
        (2, b"/graceful-cut?r=c"),
        (2, b"/graceful-cut?r=d"),
    ]


async def test_goaway_with_an_error_mid_body(scripted_h2: ScriptedH2Server) -> None:
    async with AsyncConnectionPool(http2_prior_knowledge=True) as pool:
        response = await pool.handle_async_request(
            Request("GET", scripted_h2.url + "/goaway-error")
        )
        with pytest.raises(RemoteProtocolError):
            await response.aread()
        ok = await pool.handle_async_request(Request("GET", scripted_h2.url + "/ok"))
        assert await ok.aread() == b"connection 2"


async def test_server_closing_mid_response(scripted_h2: ScriptedH2Server) -> None:
    async with AsyncConnectionPool(http2_prior_knowledge=True) as pool:
        response = await pool.handle_async_request(Request("GET", scripted_h2.url + "/close-mid"))
        with pytest.raises(RemoteProtocolError, match="closed the connection"):
            await response.aread()
        assert pool.connections == []


async def test_read_timeout_resets_the_stream_and_keeps_the_connection(
    scripted_h2: ScriptedH2Server,
) -> None:
    async with AsyncConnectionPool(http2_prior_knowledge=True) as pool:
        with pytest.raises(ReadTimeout):
            await pool.handle_async_request(
                Request("GET", scripted_h2.url + "/never", extensions={"timeout": {"read": 0.2}})
            )
        ok = await pool.handle_async_request(Request("GET", scripted_h2.url + "/ok"))
        assert await ok.aread() == b"connection 1"


# -- servers that go away (GOAWAY, RFC 9113 6.8) ------------------------------------------------


def _executions(upstream: ScriptedUpstream) -> Counter[str]:
    return Counter(request.target for request in upstream.requests)


async def test_nginx_reload_answers_every_stream_in_flight_once(
    start_nginx: Callable[..., NginxServer], upstream: ScriptedUpstream, ca_bundle: str
) -> None:
    # Issue 21: on a reload, GETs in flight ran twice upstream and POSTs failed although
    # nginx had run them. The old worker's GOAWAY names them all: they are answered.
    nginx = start_nginx()
    async with AsyncConnectionPool(http2=True, verify=ca_bundle) as pool:

        async def one(method: str, index: int) -> tuple[int, bytes]:
            content = b"payload" if method == "POST" else None
            url = f"{nginx.url}/slow?delay=1.5&id={method}{index}"
            response = await pool.handle_async_request(Request(method, url, content=content))
            return response.status_code, await response.aread()

        tasks = [asyncio.ensure_future(one(m, i)) for i in range(10) for m in ("GET", "POST")]
        assert await wait_until(lambda: len(upstream.requests) == 20)  # all taken by nginx
        [conn] = pool.connections
        nginx.reload()
        assert await wait_until(lambda: conn.going_away)  # the old worker's GOAWAY came
        assert not any(task.done() for task in tasks)
        assert await asyncio.gather(*tasks) == [(200, b"late")] * 20
        after = await pool.handle_async_request(Request("GET", nginx.url + "/echo?id=after"))
        await after.aread()
        assert after.extensions["stream_id"] == 1  # a new connection, to the new worker
    executions = _executions(upstream)
    assert len(executions) == 21 and set(executions.values()) == {1}


@pytest.mark.parametrize("keepalive_requests", [50, 10])
async def test_a_burst_above_nginx_keepalive_requests_goes_through(
    start_nginx: Callable[..., NginxServer],
    upstream: ScriptedUpstream,
    ca_bundle: str,
    keepalive_requests: int,
) -> None:
    # Issue 21: 100 of 120 GETs failed with keepalive_requests 50. Each connection takes that
    # many streams, its GOAWAY sends the others to the next one: with 10, a request may be
    # declined a dozen times, each time by a connection that served others.
    nginx = start_nginx(keepalive_requests=keepalive_requests)
    async with AsyncConnectionPool(http2=True, verify=ca_bundle) as pool:

        async def one(index: int) -> tuple[int, int]:
            method = "POST" if index % 2 else "GET"
            content = b"payload" if method == "POST" else None
            url = f"{nginx.url}/echo?id={index}"
            response = await pool.handle_async_request(Request(method, url, content=content))
            await response.aread()
            return response.status_code, response.extensions["stream_id"]

        results = await asyncio.gather(*(one(index) for index in range(120)))
    assert {status for status, _ in results} == {200}
    assert max(stream_id for _, stream_id in results) < 2 * keepalive_requests
    executions = _executions(upstream)
    assert len(executions) == 120 and set(executions.values()) == {1}


async def test_hypercorn_shutting_down_answers_the_streams_in_flight(
    _server_pem: str, ca_bundle: str
) -> None:
    # hypercorn's goodbye: it finishes the streams it has, then sends GOAWAY and closes. (Its
    # keep_alive_max_requests GOAWAY cannot be tested for answers: hypercorn's own h2 state
    # closes with the GOAWAY it sends, so the streams it names are never answered.)
    server = HypercornServer(_server_pem, _server_pem).start()
    try:
        async with AsyncConnectionPool(http2=True, verify=ca_bundle) as pool:

            async def one(method: str, index: int) -> tuple[int, str, int]:
                content = b"x" * index if method == "POST" else None
                url = f"{server.url}/slow?delay=0.5&i={index}"
                response = await pool.handle_async_request(Request(method, url, content=content))
                body = json.loads(await response.aread())
                return response.status_code, body["method"], body["body_size"]

            methods = ("GET", "POST")
            tasks = [asyncio.ensure_future(one(m, i)) for i in range(10) for m in methods]
            assert await wait_until(lambda: len(pool.connections) == 1)
            [conn] = pool.connections
            await asyncio.sleep(0.2)  # the requests reach the server
            stopped = asyncio.ensure_future(asyncio.to_thread(server.stop))
            results = await asyncio.gather(*tasks)
            assert results == [
                (200, m, i if m == "POST" else 0) for i in range(10) for m in methods
            ]
            assert await wait_until(lambda: conn.is_closed)  # GOAWAY, then the close
            assert pool.connections == []
            await stopped
    finally:
        server.stop()


# -- pool life cycle -----------------------------------------------------------------------------


async def test_idle_http2_connection_expires(hypercorn: HypercornServer, ca_bundle: str) -> None:
    async with AsyncConnectionPool(http2=True, verify=ca_bundle, keepalive_expiry=0.1) as pool:
        await _get_json(pool, hypercorn.url + "/echo")
        assert len(pool.idle_connections) == 1
        await asyncio.sleep(0.4)
        assert pool.connections == []


async def test_aclose_closes_http2_connections(hypercorn: HypercornServer, ca_bundle: str) -> None:
    pool = AsyncConnectionPool(http2=True, verify=ca_bundle)
    await _get_json(pool, hypercorn.url + "/echo")
    (conn,) = pool.connections
    await pool.aclose()
    assert conn.is_closed
    assert conn.is_lost


def test_sync_pool_with_http2(hypercorn: HypercornServer, ca_bundle: str) -> None:
    with ConnectionPool(http2=True, verify=ca_bundle) as pool:
        response = pool.handle_request(Request("GET", hypercorn.url + "/echo"))
        assert json.loads(response.read())["http_version"] == "2"
        assert response.extensions["http_version"] == b"HTTP/2"
        streamed = pool.handle_request(Request("GET", f"{hypercorn.url}/bytes?size=300000"))
        assert b"".join(streamed.iter_bytes()) == pattern(300000)
        assert len(pool.connections) == 1


# -- request headers as HTTP/2 fields (no network) --------------------------------------------

_NAMES = st.sampled_from(
    ["Accept", "X-Trace", "Connection", "Keep-Alive", "Transfer-Encoding", "Upgrade", "TE"]
)
_VALUES = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=20)


@given(fields=st.lists(st.tuples(_NAMES, _VALUES), max_size=8))
def test_request_headers_are_valid_http2_fields(fields: list[tuple[str, str]]) -> None:
    request = Request("GET", "https://example.test:8443/a?b=c", headers=fields)
    sent = http2_header_fields(request)
    # A validating h2 server accepts them and sees the request's fields, minus connection ones.
    client = h2.connection.H2Connection(h2.config.H2Configuration(validate_outbound_headers=False))
    server = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=False, header_encoding=None)
    )
    client.initiate_connection()
    server.initiate_connection()
    client.send_headers(1, sent, end_stream=True)
    (received,) = [
        event
        for event in server.receive_data(client.data_to_send())
        if isinstance(event, h2.events.RequestReceived)
    ]
    headers = list(received.headers)
    assert headers[:4] == [
        (b":method", b"GET"),
        (b":authority", b"example.test:8443"),
        (b":scheme", b"https"),
        (b":path", b"/a?b=c"),
    ]
    connection_specific = {"connection", "keep-alive", "transfer-encoding", "upgrade"}
    expected = [
        (name.lower().encode(), value.encode())
        for name, value in fields
        if name.lower() not in connection_specific
        and (name.lower() != "te" or value.lower() == "trailers")
    ]
    assert headers[4:] == expected


# -- response head limits (issue 21) -----------------------------------------------------------


async def test_the_header_list_size_is_announced_and_enforced(
    scripted_h2: ScriptedH2Server,
) -> None:
    """SETTINGS_MAX_HEADER_LIST_SIZE is the pool's max_response_head_size: a header block at it
    is taken; past it, the request fails, and with it the connection (its HPACK state is
    lost); the next request goes on a new one."""
    async with AsyncConnectionPool(http2_prior_knowledge=True) as pool:
        response = await pool.handle_async_request(
            Request("GET", scripted_h2.url + "/big-head?size=65536")
        )
        assert await response.aread() == b"ok"
        with pytest.raises(RemoteProtocolError, match="larger than 65536 bytes") as raised:
            await pool.handle_async_request(
                Request("GET", scripted_h2.url + "/big-head?size=65537")
            )
        assert "max_response_head_size" in str(raised.value)
        response = await pool.handle_async_request(Request("GET", scripted_h2.url + "/ok"))
        assert await response.aread() == b"connection 2"
    assert scripted_h2.header_list_sizes[0] == 65536
    async with AsyncConnectionPool(http2_prior_knowledge=True, max_response_head_size=None) as pool:
        response = await pool.handle_async_request(
            Request("GET", scripted_h2.url + "/big-head?size=70000")
        )
        assert await response.aread() == b"ok"
    assert scripted_h2.header_list_sizes[-1] is None


async def test_too_many_header_fields_fail_the_stream_only(scripted_h2: ScriptedH2Server) -> None:
    async with AsyncConnectionPool(http2_prior_knowledge=True) as pool:
        response = await pool.handle_async_request(
            Request("GET", scripted_h2.url + "/many-headers?n=100")
        )
        assert len(response.headers.raw) == 100
        await response.aread()
        with pytest.raises(RemoteProtocolError, match="more than 100 headers"):
            await pool.handle_async_request(Request("GET", scripted_h2.url + "/many-headers?n=101"))
        response = await pool.handle_async_request(Request("GET", scripted_h2.url + "/ok"))
        assert await response.aread() == b"connection 1"
    async with AsyncConnectionPool(http2_prior_knowledge=True, max_response_headers=5) as pool:
        with pytest.raises(RemoteProtocolError, match="more than 5 headers"):
            await pool.handle_async_request(Request("GET", scripted_h2.url + "/many-headers?n=6"))
