"""Request extensions ``target`` and response extension ``network_stream``: CONNECT tunnels,
WebSocket upgrades, ``OPTIONS *``, absolute-form targets and socket information."""

from __future__ import annotations

import asyncio
import base64
import json
import os

import trustme
import wsproto
import wsproto.events

from ferryman import AsyncConnectionPool, Request
from ferryman.client.transport import create_ssl_context
from tests.servers.edge import EdgeServer


async def test_options_asterisk_target(edge: EdgeServer) -> None:
    async with AsyncConnectionPool() as pool:
        response = await pool.handle_async_request(
            Request("OPTIONS", edge.url, extensions={"target": b"*"})
        )
        assert json.loads(await response.aread())["target"] == "*"


async def test_absolute_form_target_for_forward_proxies(edge: EdgeServer) -> None:
    async with AsyncConnectionPool() as pool:
        response = await pool.handle_async_request(
            Request(
                "GET",
                edge.url,
                headers={"Host": "api.example.test"},
                extensions={"target": b"http://api.example.test/v1?x=1"},
            )
        )
        body = json.loads(await response.aread())
    assert body["target"] == "http://api.example.test/v1?x=1"


async def test_connect_tunnel_then_tls(
    edge: EdgeServer, tls_edge: EdgeServer, ca: trustme.CA
) -> None:
    """The edge server is a CONNECT proxy; through it, talk TLS to the TLS server."""
    context = create_ssl_context()
    ca.configure_trust(context)
    authority = f"127.0.0.1:{tls_edge.port}".encode()
    async with AsyncConnectionPool() as pool:
        response = await pool.handle_async_request(
            Request("CONNECT", edge.url, extensions={"target": authority})
        )
        assert response.status_code == 200
        assert edge.requests[-1] == ("CONNECT", authority.decode())
        stream = response.extensions["network_stream"]
        stream = await stream.start_tls(context, server_hostname="localhost", timeout=5)
        assert stream.get_extra_info("ssl_object").version() in ("TLSv1.2", "TLSv1.3")
        await stream.write(b"GET /echo HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := await stream.read(4096, timeout=5):
            data += chunk
        assert data.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b'"target": "/echo"' in data
        await stream.aclose()
        # The tunnelled connection no longer belongs to the pool.
        assert all(conn.state != 1 for conn in pool.connections)


async def test_websocket_upgrade_over_network_stream(uvicorn_server) -> None:  # type: ignore[no-untyped-def]
    headers = {
        "Connection": "Upgrade",
        "Upgrade": "WebSocket",
        "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
        "Sec-WebSocket-Version": "13",
    }
    async with AsyncConnectionPool() as pool:
        response = await pool.handle_async_request(
            Request("GET", uvicorn_server.url + "/ws", headers=headers)
        )
        assert response.status_code == 101
        stream = response.extensions["network_stream"]
        ws = wsproto.Connection(wsproto.ConnectionType.CLIENT)
        await stream.write(ws.send(wsproto.events.TextMessage("hello, world!")))
        received: list[str] = []
        while not received:
            ws.receive_data(await stream.read(4096, timeout=5))
            for event in ws.events():
                if isinstance(event, wsproto.events.TextMessage):
                    received.append(event.data)
        assert received == ["echo: hello, world!"]
        await stream.write(ws.send(wsproto.events.CloseConnection(code=1000)))
        await stream.aclose()


async def test_extra_info_addresses(edge: EdgeServer) -> None:
    async with AsyncConnectionPool() as pool:
        response = await pool.handle_async_request(Request("GET", edge.url + "/echo"))
        stream = response.extensions["network_stream"]
        assert stream.get_extra_info("server_addr") == ("127.0.0.1", edge.port)
        client_host, client_port = stream.get_extra_info("client_addr")
        assert client_host == "127.0.0.1" and client_port > 0
        assert stream.get_extra_info("ssl_object") is None
        await response.aread()
        assert stream.get_extra_info("is_readable") is False


async def test_is_readable_once_the_server_closed(edge: EdgeServer) -> None:
    import asyncio

    async with AsyncConnectionPool() as pool:
        response = await pool.handle_async_request(Request("GET", edge.url + "/close-after"))
        stream = response.extensions["network_stream"]
        await response.aread()
        await asyncio.sleep(0.05)
        assert stream.get_extra_info("is_readable") is True


async def test_closed_upgrades_give_their_pool_slot_back(uvicorn_server) -> None:  # type: ignore[no-untyped-def]
    """An upgraded connection leaves the pool's idle stack, but its slot must come back when
    its stream is closed, or a per-origin limit would be used up by finished WebSockets."""
    async with AsyncConnectionPool(max_connections_per_origin=1) as pool:
        for _ in range(3):
            headers = {
                "Connection": "Upgrade",
                "Upgrade": "WebSocket",
                "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
                "Sec-WebSocket-Version": "13",
            }
            response = await pool.handle_async_request(
                Request(
                    "GET",
                    uvicorn_server.url + "/ws",
                    headers=headers,
                    extensions={"timeout": {"pool": 2}},
                )
            )
            assert response.status_code == 101
            await response.extensions["network_stream"].aclose()
            await asyncio.sleep(0.01)  # let the transport report the close
        assert pool.connections == []
