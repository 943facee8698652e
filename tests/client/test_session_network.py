"""AsyncClient's network options: TLS verification and client certificates, proxies (explicit
and from the environment) and WebSocket upgrades, each overridable per request."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from wsproto.extensions import PerMessageDeflate

import ferryman
from tests.servers.edge import EdgeServer
from tests.servers.forward_proxy import ForwardProxy
from tests.servers.httpbin_server import HttpbinServer
from tests.servers.ws_echo import WsEchoServer


@pytest.fixture
def proxy() -> Iterator[ForwardProxy]:
    server = ForwardProxy().start()
    yield server
    server.stop()


@pytest.fixture
def auth_proxy() -> Iterator[ForwardProxy]:
    server = ForwardProxy(auth=("proxy-user", "proxy-pw")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def ws_server() -> Iterator[WsEchoServer]:
    server = WsEchoServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def graphql_ws_server() -> Iterator[WsEchoServer]:
    """Negotiates as the ``websockets`` package does: a 400 unless graphql-transport-ws is
    offered."""
    server = WsEchoServer(subprotocols=["graphql-transport-ws"]).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def plain_ws_server() -> Iterator[WsEchoServer]:
    """Knows no subprotocol: picks none, whatever the client offers."""
    server = WsEchoServer(subprotocols=[]).start()
    yield server
    server.stop()


def offered_headers(server: WsEchoServer) -> dict[str, str]:
    """The request head of the server's latest handshake (earlier ones are dropped)."""
    headers = server.request_headers.get(timeout=5)
    while not server.request_headers.empty():
        headers = server.request_headers.get_nowait()
    return headers


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


# -- TLS ---------------------------------------------------------------------------------------


async def test_tls_is_verified_by_default_and_overridable_per_request(
    tls_edge: EdgeServer, ca_file: str
) -> None:
    async with ferryman.AsyncClient(trust_env=False) as client:
        with pytest.raises(ferryman.ConnectError, match="certificate"):
            await client.get(f"{tls_edge.url}/echo")
        assert (await client.get(f"{tls_edge.url}/echo", verify=ca_file)).status_code == 200
        assert (await client.get(f"{tls_edge.url}/echo", verify=False)).status_code == 200
    async with ferryman.AsyncClient(verify=ca_file, trust_env=False) as client:
        assert (await client.get(f"{tls_edge.url}/echo")).status_code == 200


async def test_client_certificate(
    mtls_edge: EdgeServer, ca: trustme.CA, ca_file: str, tmp_path: Path
) -> None:
    leaf = ca.issue_cert("client@example.test")
    pem = tmp_path / "client.pem"
    leaf.private_key_and_cert_chain_pem.write_to_path(str(pem))
    async with ferryman.AsyncClient(verify=ca_file, trust_env=False) as client:
        with pytest.raises(ferryman.TransportError):
            await client.get(f"{mtls_edge.url}/echo")
        response = await client.get(f"{mtls_edge.url}/echo", cert=str(pem))
        assert response.status_code == 200
    async with ferryman.AsyncClient(verify=ca_file, cert=str(pem), trust_env=False) as client:
        assert (await client.get(f"{mtls_edge.url}/echo")).status_code == 200


async def test_ssl_cert_file_from_the_environment(
    tls_edge: EdgeServer, ca_file: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", ca_file)
    async with ferryman.AsyncClient() as client:
        assert (await client.get(f"{tls_edge.url}/echo")).status_code == 200
    async with ferryman.AsyncClient(trust_env=False) as client:
        with pytest.raises(ferryman.ConnectError):
            await client.get(f"{tls_edge.url}/echo")


# -- proxies -----------------------------------------------------------------------------------


async def test_http_requests_are_forwarded_through_the_proxy(
    proxy: ForwardProxy, httpbin: HttpbinServer
) -> None:
    async with ferryman.AsyncClient(proxies={"http": proxy.url}, trust_env=False) as client:
        response = await client.get(f"{httpbin.url}/get", params={"via": "proxy"})
        assert response.json()["args"] == {"via": "proxy"}
        await client.get(f"{httpbin.url}/get")
    assert [seen.target for seen in proxy.requests] == [
        f"{httpbin.url}/get?via=proxy",
        f"{httpbin.url}/get",
    ]


async def test_https_goes_through_a_connect_tunnel(
    proxy: ForwardProxy, tls_edge: EdgeServer, ca_file: str
) -> None:
    async with ferryman.AsyncClient(
        proxies={"https": proxy.url}, verify=ca_file, trust_env=False
    ) as client:
        for _ in range(2):
            assert (await client.get(f"{tls_edge.url}/echo")).status_code == 200
    assert proxy.connect_targets == [f"127.0.0.1:{tls_edge.port}"]  # one tunnel, reused


async def test_proxy_auth(auth_proxy: ForwardProxy, tls_edge: EdgeServer, ca_file: str) -> None:
    host = auth_proxy.url.split("://", 1)[1]
    async with ferryman.AsyncClient(verify=ca_file, trust_env=False) as client:
        with pytest.raises(ferryman.ProxyError, match="407"):
            await client.get(f"{tls_edge.url}/echo", proxies={"https": auth_proxy.url})
        response = await client.get(
            f"{tls_edge.url}/echo", proxies={"all": f"http://proxy-user:proxy-pw@{host}"}
        )
        assert response.status_code == 200


async def test_proxies_from_the_environment_and_no_proxy(
    proxy: ForwardProxy, httpbin: HttpbinServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.delenv("http_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    async with ferryman.AsyncClient() as client:
        assert (await client.get(f"{httpbin.url}/get")).status_code == 200
    assert len(proxy.requests) == 1
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    async with ferryman.AsyncClient() as client:
        assert (await client.get(f"{httpbin.url}/get")).status_code == 200
    assert len(proxy.requests) == 1  # bypassed
    monkeypatch.delenv("NO_PROXY")
    async with ferryman.AsyncClient(trust_env=False) as client:
        assert (await client.get(f"{httpbin.url}/get")).status_code == 200
    assert len(proxy.requests) == 1  # the environment is ignored


async def test_a_request_can_turn_the_session_proxy_off(
    proxy: ForwardProxy, httpbin: HttpbinServer
) -> None:
    async with ferryman.AsyncClient(proxies={"http": proxy.url}, trust_env=False) as client:
        await client.get(f"{httpbin.url}/get", proxies={"http": None})
    assert proxy.requests == []


async def test_unknown_proxy_key_is_refused() -> None:
    with pytest.raises(ValueError, match="ftp"):
        ferryman.AsyncClient(proxies={"ftp": "http://127.0.0.1:1"}, trust_env=False)


# -- WebSocket ---------------------------------------------------------------------------------


class Collect(ferryman.WS):
    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []
        self.done = asyncio.Event()

    def on_open(self, ws: ferryman.WebSocketConnection) -> None:
        self.events.append(("open", None))
        ws.write("hello")

    def on_message(self, ws: ferryman.WebSocketConnection, message: str | bytes) -> None:
        self.events.append(("message", message))
        self.done.set()

    def on_close(self, ws: ferryman.WebSocketConnection) -> None:
        self.events.append(("close", ws.close_code))


async def test_websocket_upgrade_through_get(ws_server: WsEchoServer) -> None:
    handler = Collect()
    async with ferryman.AsyncClient(trust_env=False) as client:
        ws = await client.get(f"{ws_server.url}/echo", websocket_handler=handler)
        assert isinstance(ws, ferryman.WebSocketConnection)
        await asyncio.wait_for(handler.done.wait(), 5)
        await ws.ping(b"x")
        await ws.close(1000, "bye")
        assert ws.close_code == 1000
    assert handler.events[:2] == [("open", None), ("message", "hello")]
    assert handler.events[-1] == ("close", 1000)
    headers = ws_server.request_headers.get(timeout=5)
    assert headers["user-agent"] == f"ferryman/{ferryman.__version__}"


async def test_websocket_server_close_code(ws_server: WsEchoServer) -> None:
    async with ferryman.AsyncClient(trust_env=False) as client:
        ws = await client.get(f"{ws_server.url}/close-4001")
        await ws.wait_closed()
        assert ws.close_code == 4001


async def test_websocket_refused(ws_server: WsEchoServer) -> None:
    async with ferryman.AsyncClient(trust_env=False) as client:
        with pytest.raises(ferryman.ProtocolError, match="403"):
            await client.get(f"{ws_server.url}/forbidden", websocket_handler=ferryman.WS())


async def test_websocket_subprotocols_are_offered_and_the_choice_exposed(
    graphql_ws_server: WsEchoServer,
) -> None:
    async with ferryman.AsyncClient(trust_env=False) as client:
        ws = await client.get(
            f"{graphql_ws_server.url}/subprotocol",
            subprotocols=["graphql-ws", "graphql-transport-ws"],
        )
        assert ws.subprotocol == "graphql-transport-ws"
        assert await anext(ws) == "graphql-transport-ws"  # what the server's side agreed to
        await ws.close()
        headers = offered_headers(graphql_ws_server)
        assert headers["sec-websocket-protocol"] == "graphql-ws, graphql-transport-ws"
        # subprotocols= alone makes an http:// request an upgrade, as websocket_handler= does.
        http_url = graphql_ws_server.url.replace("ws://", "http://")
        ws = await client.get(f"{http_url}/subprotocol", subprotocols="graphql-transport-ws")
        assert isinstance(ws, ferryman.WebSocketConnection)
        assert ws.subprotocol == "graphql-transport-ws"
        await ws.close()


async def test_websocket_subprotocol_the_server_requires_but_was_not_offered(
    graphql_ws_server: WsEchoServer,
) -> None:
    async with ferryman.AsyncClient(trust_env=False) as client:
        for offer in ([], ["graphql-ws"]):
            with pytest.raises(ferryman.ProtocolError, match=r"refused .* 400 Bad Request"):
                await client.get(f"{graphql_ws_server.url}/echo", subprotocols=offer)


async def test_websocket_server_that_picks_no_subprotocol(plain_ws_server: WsEchoServer) -> None:
    """RFC 6455 lets a client fail here; ferryman goes on, as the websockets and aiohttp
    clients do (servers that speak a protocol without naming it are common): the caller sees
    ``ws.subprotocol is None`` and decides."""
    async with ferryman.AsyncClient(trust_env=False) as client:
        ws = await client.get(f"{plain_ws_server.url}/echo", subprotocols=["graphql-transport-ws"])
        assert ws.subprotocol is None
        await ws.send("still a WebSocket")
        assert await anext(ws) == "still a WebSocket"
        await ws.close()
    assert offered_headers(plain_ws_server)["sec-websocket-protocol"] == "graphql-transport-ws"


async def test_websocket_subprotocol_not_offered_fails_clearly(ws_server: WsEchoServer) -> None:
    async with ferryman.AsyncClient(trust_env=False) as client:
        with pytest.raises(
            ferryman.RemoteProtocolError,
            match=r"chose the subprotocol 'never\.offered', which was not offered "
            r"\(offered: chat\.v1\)",
        ):
            await client.get(f"{ws_server.url}/bad-subprotocol", subprotocols=["chat.v1"])


async def test_websocket_hand_set_protocol_header_is_the_offer(ws_server: WsEchoServer) -> None:
    hand_set = {"Sec-WebSocket-Protocol": "x.v9, chat.v1"}
    async with ferryman.AsyncClient(trust_env=False) as client:
        ws = await client.get(f"{ws_server.url}/subprotocol", headers=hand_set)
        assert ws.subprotocol == "chat.v1"
        assert await anext(ws) == "chat.v1"
        await ws.close()
        # The same list both ways is one offer; two different ones are refused before sending.
        ws = await client.get(
            f"{ws_server.url}/subprotocol", headers=hand_set, subprotocols=["x.v9", "chat.v1"]
        )
        assert ws.subprotocol == "chat.v1"
        await ws.close()
        with pytest.raises(ValueError, match="offer different subprotocols"):
            await client.get(f"{ws_server.url}/echo", headers=hand_set, subprotocols=["chat.v2"])
    async with ferryman.AsyncClient(headers=hand_set, trust_env=False) as client:
        ws = await client.get(f"{ws_server.url}/subprotocol")
        assert ws.subprotocol == "chat.v1"
        await ws.close()


async def test_websocket_extensions_are_offered_and_exposed(ws_server: WsEchoServer) -> None:
    deflate = [PerMessageDeflate(client_max_window_bits=12)]
    message = "compressible " * 10_000
    async with ferryman.AsyncClient(trust_env=False) as client:
        for _ in range(2):  # one list serves every connection: each negotiates on a copy
            ws = await client.get(f"{ws_server.url}/echo", websocket_extensions=deflate)
            assert [extension.name for extension in ws.extensions] == ["permessage-deflate"]
            assert ws.extensions[0] is not deflate[0]
            await ws.send(message)
            assert await anext(ws) == message
            await ws.close()
            offered = offered_headers(ws_server)["sec-websocket-extensions"]
            assert offered.startswith("permessage-deflate; client_max_window_bits=12")
        with pytest.raises(ValueError, match="Sec-WebSocket-Extensions header cannot be set"):
            await client.get(
                f"{ws_server.url}/echo", headers={"Sec-WebSocket-Extensions": "permessage-deflate"}
            )


def test_websocket_subprotocol_from_the_sync_client(graphql_ws_server: WsEchoServer) -> None:
    with ferryman.Client(trust_env=False) as client:
        ws = client.get(
            f"{graphql_ws_server.url}/subprotocol",
            subprotocols=["graphql-transport-ws"],
            websocket_extensions=[PerMessageDeflate()],
        )
        with ws:
            assert ws.subprotocol == "graphql-transport-ws"
            assert [extension.name for extension in ws.extensions] == ["permessage-deflate"]
            assert next(iter(ws)) == "graphql-transport-ws"


def test_ssl_context_is_accepted_as_verify(tls_edge: EdgeServer, ca: trustme.CA) -> None:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    with ferryman.Client(verify=context, trust_env=False) as client:
        assert client.get(f"{tls_edge.url}/echo").status_code == 200


def test_websocket_from_the_sync_client(ws_server: WsEchoServer) -> None:
    with ferryman.Client(trust_env=False) as client:
        ws = client.get(f"{ws_server.url}/echo")
        with ws:
            ws.send("one")
            ws.write(b"two")
            messages = iter(ws)
            assert next(messages) == "one"
            assert next(messages) == b"two"
            ws.ping(b"p")
        assert ws.closed
        assert ws.close_code == 1000


async def test_pool_size_per_request(edge: EdgeServer) -> None:
    async with ferryman.AsyncClient(trust_env=False) as client:
        before = edge.connections
        responses = await asyncio.gather(
            *(client.get(f"{edge.url}/echo", pool_size=1) for _ in range(5))
        )
        assert all(r.status_code == 200 for r in responses)
        assert edge.connections - before == 1  # five requests, one connection
