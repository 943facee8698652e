"""Pool limits, waiting, expiry, connection errors, and when a request may go again."""

from __future__ import annotations

import asyncio
import contextlib
import socket

import pytest

import ferryman
from ferryman import (
    AsyncConnectionPool,
    ConnectError,
    ConnectTimeout,
    PoolTimeout,
    RemoteProtocolError,
    Request,
    UnsupportedProtocol,
)
from tests.servers.edge import EdgeServer
from tests.servers.slow_upstream import ScriptedUpstream


async def test_per_origin_limit_makes_requests_wait_for_a_free_connection(edge: EdgeServer) -> None:
    async with AsyncConnectionPool(max_connections_per_origin=2) as pool:

        async def one() -> bytes:
            response = await pool.handle_async_request(
                Request("GET", edge.url + "/slow-head?delay=0.05")
            )
            return await response.aread()

        results = await asyncio.gather(*(one() for _ in range(6)))
        assert results == [b"late"] * 6
        assert len(pool.connections) == 2


async def test_total_limit_across_origins(edge: EdgeServer, uvicorn_server) -> None:  # type: ignore[no-untyped-def]
    async with AsyncConnectionPool(max_connections=1) as pool:
        first = await pool.handle_async_request(Request("GET", edge.url + "/echo"))
        await first.aread()
        # The idle connection to the other origin is closed to make room.
        second = await pool.handle_async_request(Request("GET", uvicorn_server.url + "/"))
        await second.aread()
        assert len(pool.connections) == 1
        assert pool.connections[0].origin[2] == uvicorn_server.port


async def test_pool_timeout_when_no_connection_frees_up(edge: EdgeServer) -> None:
    async with AsyncConnectionPool(max_connections_per_origin=1) as pool:
        held = await pool.handle_async_request(Request("GET", edge.url + "/echo"))
        with pytest.raises(PoolTimeout):
            await pool.handle_async_request(
                Request("GET", edge.url + "/echo", extensions={"timeout": {"pool": 0.1}})
            )
        await held.aread()
        # Once the first response is read, its connection serves the next request.
        again = await pool.handle_async_request(
            Request("GET", edge.url + "/echo", extensions={"timeout": {"pool": 0.1}})
        )
        await again.aread()


async def test_idle_connections_expire(edge: EdgeServer) -> None:
    async with AsyncConnectionPool(keepalive_expiry=0.1) as pool:
        response = await pool.handle_async_request(Request("GET", edge.url + "/echo"))
        await response.aread()
        assert len(pool.idle_connections) == 1
        await asyncio.sleep(0.3)
        assert pool.idle_connections == []
        assert pool.connections == []


async def test_unclosed_response_keeps_its_connection_out_of_the_pool(edge: EdgeServer) -> None:
    async with AsyncConnectionPool() as pool:
        response = await pool.handle_async_request(Request("GET", edge.url + "/big?size=200000"))
        assert pool.idle_connections == []
        await response.aclose()  # not read to the end: the connection cannot be reused
        assert pool.connections == []


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_connection_refused_is_connect_error() -> None:
    port = _free_port()
    async with AsyncConnectionPool() as pool:
        with pytest.raises(ConnectError, match=f"127.0.0.1:{port}") as info:
            await pool.handle_async_request(Request("GET", f"http://127.0.0.1:{port}/"))
        assert info.value.request is not None
        assert pool.connections == []


async def test_connect_timeout() -> None:
    # A listening socket whose backlog is full never completes new handshakes.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(8):
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", port))
            fillers.append(filler)
        async with AsyncConnectionPool() as pool:
            with pytest.raises(ConnectTimeout):
                await pool.handle_async_request(
                    Request(
                        "GET", f"http://127.0.0.1:{port}/", extensions={"timeout": {"connect": 0.2}}
                    )
                )
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


async def test_unknown_host_is_connect_error() -> None:
    async with AsyncConnectionPool() as pool:
        with pytest.raises(ConnectError, match="resolve"):
            await pool.handle_async_request(Request("GET", "http://no-such-host.invalid/"))


async def test_unsupported_scheme() -> None:
    async with AsyncConnectionPool() as pool:
        with pytest.raises(UnsupportedProtocol, match="ftp"):
            await pool.handle_async_request(Request("GET", "ftp://127.0.0.1/"))


async def test_unix_socket(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = str(tmp_path / "s.sock")

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nunix")
        await writer.drain()
        writer.close()

    server = await asyncio.start_unix_server(serve, path)
    try:
        events: list[str] = []

        async def trace(name: str, info: dict) -> None:  # type: ignore[type-arg]
            events.append(name)

        async with AsyncConnectionPool(uds=path) as pool:
            response = await pool.handle_async_request(
                Request("GET", "http://localhost/", extensions={"trace": trace})
            )
            assert await response.aread() == b"unix"
        assert events[:2] == [
            "connection.connect_unix_socket.started",
            "connection.connect_unix_socket.complete",
        ]
    finally:
        server.close()
        await server.wait_closed()


# -- sending a request again ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "route", "executions", "answer"),
    [
        ("POST", "close-body", 1, b"complete body"),
        ("GET", "close-body", 1, b"complete body"),
        ("POST", "cut", 1, None),
        ("DELETE", "cut", 1, None),
        ("POST", "cut-head", 1, None),
        ("GET", "cut-head", 1, None),
        ("POST", "hangup", 1, None),
        ("PATCH", "hangup", 1, None),
        # The one case that goes again: idempotent, and not one byte of its answer came.
        ("GET", "hangup", 2, None),
        ("DELETE", "hangup", 2, None),
    ],
)
async def test_a_request_goes_again_only_if_nothing_of_its_answer_came(
    upstream: ScriptedUpstream, method: str, route: str, executions: int, answer: bytes | None
) -> None:
    """Issue 20's rule for the client itself: on a reused connection (``GET /warm`` first), an
    answer that is close-delimited, short of its length, cut mid-head or absent reaches the
    upstream once, unless the request is idempotent and the upstream sent nothing."""
    async with ferryman.AsyncClient(trust_env=False) as client:
        assert (await client.get(upstream.url + "/warm")).status_code == 200
        upstream.reset()
        if answer is None:
            with pytest.raises(RemoteProtocolError):
                await client.request(method, f"{upstream.url}/act/{route}", content=b"")
        else:
            response = await client.request(method, f"{upstream.url}/act/{route}", content=b"")
            assert response.content == answer
    await asyncio.sleep(0.1)  # (a second attempt would have reached the upstream by now)
    assert [request.target for request in upstream.requests] == [f"/act/{route}"] * executions


async def test_a_post_on_a_connection_the_server_closes_as_it_arrives_is_not_sent_again(
    upstream: ScriptedUpstream,
) -> None:
    """The server read the POST's head and closed (a stale keep-alive connection): whether it
    acted on it cannot be known, so the caller hears of it. A GET goes again."""
    async with ferryman.AsyncClient(trust_env=False) as client:
        assert (await client.get(upstream.url + "/stale")).content == b"fresh"
        with pytest.raises(RemoteProtocolError):
            await client.post(upstream.url + "/echo?once", content=b"data")
        assert (await client.get(upstream.url + "/stale")).content == b"fresh"
        assert (await client.get(upstream.url + "/echo")).status_code == 200
