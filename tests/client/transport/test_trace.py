"""The ``trace`` extension: every event name, in order, with its documented arguments."""

from __future__ import annotations

import ssl
from typing import Any

import pytest
import trustme

from ferryman import AsyncConnectionPool, ConnectError, ReadTimeout, Request
from ferryman.client.transport import create_ssl_context
from tests.servers.edge import EdgeServer


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    async def __call__(self, name: str, info: dict[str, Any]) -> None:
        self.events.append((name, info))

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.events]


PHASES = [
    "http11.send_request_headers",
    "http11.send_request_body",
    "http11.receive_response_headers",
    "http11.receive_response_body",
    "http11.response_closed",
]


def _expected(prefix: list[str]) -> list[str]:
    return [f"{phase}.{step}" for phase in prefix + PHASES for step in ("started", "complete")]


async def test_plain_http_trace(edge: EdgeServer) -> None:
    trace = Recorder()
    async with AsyncConnectionPool() as pool:
        request = Request("GET", edge.url + "/echo", extensions={"trace": trace})
        response = await pool.handle_async_request(request)
        await response.aread()
        assert trace.names == _expected(["connection.connect_tcp"])
        info = dict(trace.events)
        assert info["connection.connect_tcp.started"] == {
            "host": "127.0.0.1",
            "port": edge.port,
            "local_address": None,
            "timeout": None,
        }
        assert info["http11.send_request_headers.started"] == {"request": request}
        assert info["http11.send_request_body.started"] == {"request": request}
        assert info["http11.receive_response_headers.started"] == {"request": request}
        version, status, reason, headers = info["http11.receive_response_headers.complete"][
            "return_value"
        ]
        assert (version, status, reason) == (b"HTTP/1.1", 200, b"OK")
        assert (b"Content-Type", b"application/json") in headers
        assert info["http11.response_closed.started"] == {}
        # A second request on the same connection has no connect events.
        trace.events.clear()
        response = await pool.handle_async_request(
            Request("GET", edge.url + "/echo", extensions={"trace": trace})
        )
        await response.aread()
        assert trace.names == _expected([])


async def test_streamed_body_trace(edge: EdgeServer) -> None:
    trace = Recorder()
    async with AsyncConnectionPool() as pool:
        response = await pool.handle_async_request(
            Request("GET", edge.url + "/chunked", extensions={"trace": trace})
        )
        async for _ in response.aiter_bytes():
            pass
    assert trace.names[-4:] == [
        "http11.receive_response_body.started",
        "http11.receive_response_body.complete",
        "http11.response_closed.started",
        "http11.response_closed.complete",
    ]


async def test_tls_trace(tls_edge: EdgeServer, ca: trustme.CA) -> None:
    context = create_ssl_context()
    ca.configure_trust(context)
    trace = Recorder()
    async with AsyncConnectionPool(ssl_context=context) as pool:
        response = await pool.handle_async_request(
            Request(
                "GET",
                tls_edge.url + "/echo",
                extensions={"trace": trace, "timeout": {"connect": 5.0}},
            )
        )
        await response.aread()
    assert trace.names == _expected(["connection.connect_tcp", "connection.start_tls"])
    info = dict(trace.events)
    started = info["connection.start_tls.started"]
    assert started["ssl_context"] is context
    assert started["server_hostname"] == "127.0.0.1"
    assert started["timeout"] == 5.0
    stream = info["connection.start_tls.complete"]["return_value"]
    assert isinstance(stream.get_extra_info("ssl_object"), ssl.SSLObject)


async def test_failed_events_carry_the_exception(edge: EdgeServer) -> None:
    trace = Recorder()
    async with AsyncConnectionPool() as pool:
        with pytest.raises(ReadTimeout):
            await pool.handle_async_request(
                Request(
                    "GET",
                    edge.url + "/slow-head?delay=1",
                    extensions={"trace": trace, "timeout": {"read": 0.1}},
                )
            )
    name, info = trace.events[-1]
    assert name == "http11.receive_response_headers.failed"
    assert isinstance(info["exception"], ReadTimeout)


async def test_connect_failure_is_traced() -> None:
    trace = Recorder()
    async with AsyncConnectionPool() as pool:
        with pytest.raises(ConnectError):
            await pool.handle_async_request(
                Request("GET", "http://127.0.0.1:9/", extensions={"trace": trace})
            )
    assert trace.names == ["connection.connect_tcp.started", "connection.connect_tcp.failed"]


async def test_sync_trace_callbacks_are_accepted_in_async_code(edge: EdgeServer) -> None:
    names: list[str] = []
    async with AsyncConnectionPool() as pool:
        response = await pool.handle_async_request(
            Request(
                "GET",
                edge.url + "/echo",
                extensions={"trace": lambda name, info: names.append(name)},
            )
        )
        await response.aread()
    assert names == _expected(["connection.connect_tcp"])
