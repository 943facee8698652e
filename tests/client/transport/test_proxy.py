"""Forward proxying and CONNECT tunnels, against a real proxy and real origins on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import ssl
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import trustme
from hypothesis import given, settings
from hypothesis import strategies as st

from ferryman import (
    URL,
    AsyncConnectionPool,
    ConnectError,
    ProxyError,
    Request,
    UnsupportedProtocol,
)
from ferryman.client.transport import create_ssl_context
from ferryman.client.transport.proxy import (
    AsyncHTTPProxy,
    absolute_form_target,
    basic_proxy_authorization,
    connect_authority,
)
from ferryman.client.transport.sync import LoopThread
from tests.servers.edge import EdgeServer, pattern
from tests.servers.forward_proxy import ForwardProxy

StartProxy = Callable[..., ForwardProxy]


@pytest.fixture
def start_proxy() -> Iterator[StartProxy]:
    """Start forward proxies with the given options; all are stopped after the test."""
    started: list[ForwardProxy] = []

    def start(**options: Any) -> ForwardProxy:
        proxy = ForwardProxy(**options).start()
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        proxy.stop()


@pytest.fixture
def proxy(start_proxy: StartProxy) -> ForwardProxy:
    return start_proxy()


@pytest.fixture
def target_context(ca: trustme.CA) -> ssl.SSLContext:
    """Trusts the test CA, which signed the TLS origin's certificate (not the proxy's doing)."""
    context = create_ssl_context()
    ca.configure_trust(context)
    return context


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    async def __call__(self, name: str, info: dict[str, Any]) -> None:
        self.events.append((name, info))

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.events]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def _get_json(pool: AsyncConnectionPool, request: Request) -> dict[str, Any]:
    response = await pool.handle_async_request(request)
    assert response.status_code == 200, await response.aread()
    body: dict[str, Any] = json.loads(await response.aread())
    return body


# -- forwarding http:// ------------------------------------------------------------------------


async def test_forward_get_sends_the_absolute_url_and_reuses_the_connection(
    proxy: ForwardProxy, edge: EdgeServer
) -> None:
    async with AsyncHTTPProxy(proxy.url) as pool:
        for _ in range(2):
            echoed = await _get_json(pool, Request("GET", edge.url + "/echo?x=1&y=%20"))
            assert echoed["target"] == "/echo?x=1&y=%20"
        assert len(pool.connections) == 1
    assert [seen.target for seen in proxy.requests] == [f"{edge.url}/echo?x=1&y=%20"] * 2
    assert proxy.connections == 1
    assert proxy.requests[0].header("host") == f"127.0.0.1:{edge.port}"


async def test_forward_post_body_arrives_intact(proxy: ForwardProxy, edge: EdgeServer) -> None:
    body = pattern(300_000)
    async with AsyncHTTPProxy(proxy.url) as pool:
        echoed = await _get_json(pool, Request("POST", edge.url + "/echo", content=body))
        assert echoed["body"].encode("latin-1") == body

        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, len(body), 50_000):
                yield body[start : start + 50_000]

        response = await pool.handle_async_request(
            Request("POST", edge.url + "/sink", content=chunks())
        )
        assert await response.aread() == str(len(body)).encode()
        assert len(pool.connections) == 1
    assert proxy.requests[1].header("transfer-encoding") == "chunked"
    assert proxy.connections == 1


async def test_forward_large_response_through_the_proxy(
    proxy: ForwardProxy, edge: EdgeServer
) -> None:
    async with AsyncHTTPProxy(proxy.url) as pool:
        response = await pool.handle_async_request(Request("GET", edge.url + "/big?size=2000000"))
        assert await response.aread() == pattern(2_000_000)


async def test_forwarding_leaves_the_callers_request_as_it_was(
    start_proxy: StartProxy, edge: EdgeServer
) -> None:
    proxy = start_proxy(auth=("user", "secret"))
    extensions: dict[str, Any] = {"timeout": {"read": 5.0}}
    request = Request("POST", edge.url + "/echo", content=b"again", extensions=extensions)
    headers_before = list(request.headers.raw)
    async with AsyncHTTPProxy(proxy.url, proxy_auth=("user", "secret")) as pool:
        for _ in range(2):  # the same request twice, as a retry or redirect would send it
            response = await pool.handle_async_request(request)
            assert response.request is request
            assert json.loads(await response.aread())["body"] == "again"
    assert request.headers.raw == headers_before
    assert extensions == {"timeout": {"read": 5.0}}
    for seen in proxy.requests:
        names = [name.lower() for name, _ in seen.headers]
        assert names.count("proxy-authorization") == 1


async def test_forward_without_credentials_gets_the_407_as_a_response(
    start_proxy: StartProxy, edge: EdgeServer
) -> None:
    proxy = start_proxy(auth=("user", "secret"))
    async with AsyncHTTPProxy(proxy.url) as pool:
        response = await pool.handle_async_request(Request("GET", edge.url + "/echo"))
        await response.aread()
    assert response.status_code == 407
    assert response.headers["proxy-authenticate"] == 'Basic realm="ferryman-test"'


async def test_proxy_headers_go_to_the_proxy_but_the_requests_own_win(
    proxy: ForwardProxy, edge: EdgeServer, tls_edge: EdgeServer, target_context: ssl.SSLContext
) -> None:
    proxy_headers = {"X-Proxy-Token": "t1", "X-Shared": "from-proxy"}
    async with AsyncHTTPProxy(
        proxy.url, proxy_headers=proxy_headers, ssl_context=target_context
    ) as pool:
        await _get_json(pool, Request("GET", edge.url + "/echo", headers={"X-Shared": "mine"}))
        echoed = await _get_json(pool, Request("GET", tls_edge.url + "/echo"))
    forwarded, connect = proxy.requests
    assert forwarded.header("x-proxy-token") == "t1"
    assert forwarded.header("x-shared") == "mine"
    assert connect.method == "CONNECT"
    assert connect.header("x-proxy-token") == "t1"
    # Through a tunnel the proxy's headers stay with the proxy: the origin never sees them.
    assert "x-proxy-token" not in {name.lower() for name, _ in echoed["headers"]}


# -- proxy credentials -----------------------------------------------------------------------


async def test_credentials_in_the_proxy_url_are_used_percent_decoded(
    start_proxy: StartProxy, edge: EdgeServer, tls_edge: EdgeServer, target_context: ssl.SSLContext
) -> None:
    proxy = start_proxy(auth=("us@er", "p:ss wörd"))
    proxy_url = f"http://us%40er:p%3Ass%20w%C3%B6rd@127.0.0.1:{proxy.port}"
    async with AsyncHTTPProxy(proxy_url, ssl_context=target_context) as pool:
        await _get_json(pool, Request("GET", edge.url + "/echo"))
        await _get_json(pool, Request("GET", tls_edge.url + "/echo"))
        assert "wörd" not in repr(pool) and "p%3Ass" not in repr(pool)
    expected = "Basic " + base64.b64encode("us@er:p:ss wörd".encode()).decode()
    assert [seen.header("proxy-authorization") for seen in proxy.requests] == [expected] * 2


async def test_connect_without_credentials_raises_proxy_error_with_the_status(
    start_proxy: StartProxy, tls_edge: EdgeServer, target_context: ssl.SSLContext
) -> None:
    proxy = start_proxy(auth=("user", "secret"))
    async with AsyncHTTPProxy(proxy.url, ssl_context=target_context) as pool:
        with pytest.raises(ProxyError, match="407 Proxy Authentication Required") as info:
            await pool.handle_async_request(Request("GET", tls_edge.url + "/echo"))
        assert pool.connections == []
    assert info.value.request is not None
    assert info.value.request.url == URL(tls_edge.url + "/echo")


async def test_wrong_credentials_for_connect(
    start_proxy: StartProxy, tls_edge: EdgeServer, target_context: ssl.SSLContext
) -> None:
    proxy = start_proxy(auth=("user", "secret"))
    async with AsyncHTTPProxy(
        proxy.url, proxy_auth=("user", "wrong"), ssl_context=target_context
    ) as pool:
        with pytest.raises(ProxyError, match="407"):
            await pool.handle_async_request(Request("GET", tls_edge.url + "/echo"))


def test_basic_proxy_authorization_round_trips() -> None:
    value = basic_proxy_authorization("ünï", "pa:ss")
    scheme, _, token = value.partition(b" ")
    assert scheme == b"Basic"
    assert base64.b64decode(token).decode() == "ünï:pa:ss"


# -- CONNECT tunnels --------------------------------------------------------------------------


async def test_tunnel_verifies_the_origin_and_is_reused(
    proxy: ForwardProxy, tls_edge: EdgeServer, target_context: ssl.SSLContext
) -> None:
    async with AsyncHTTPProxy(proxy.url, ssl_context=target_context) as pool:
        for path in ("/echo", "/echo?second=1"):
            response = await pool.handle_async_request(Request("GET", tls_edge.url + path))
            echoed = json.loads(await response.aread())
            assert echoed["target"] == path  # origin-form inside the tunnel
            ssl_object = response.extensions["network_stream"].get_extra_info("ssl_object")
            assert ssl_object.getpeercert()["subjectAltName"]
        assert len(pool.connections) == 1
    assert proxy.connect_targets == [f"127.0.0.1:{tls_edge.port}"]
    assert proxy.requests[0].header("host") == f"127.0.0.1:{tls_edge.port}"
    assert proxy.connections == 1


async def test_tunnel_checks_the_origins_certificate_not_the_proxys(
    proxy: ForwardProxy, tls_edge: EdgeServer
) -> None:
    async with AsyncHTTPProxy(proxy.url) as pool:  # certifi's roots: the test CA is unknown
        with pytest.raises(ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await pool.handle_async_request(Request("GET", tls_edge.url + "/echo"))
        assert pool.connections == []
    assert proxy.connect_targets == [f"127.0.0.1:{tls_edge.port}"]


async def test_tunnel_sends_the_sni_hostname(
    proxy: ForwardProxy, tls_edge: EdgeServer, target_context: ssl.SSLContext
) -> None:
    async with AsyncHTTPProxy(proxy.url, ssl_context=target_context) as pool:
        request = Request("GET", tls_edge.url + "/echo", extensions={"sni_hostname": "localhost"})
        await _get_json(pool, request)
    assert tls_edge.server_names[-1] == "localhost"


async def test_tunnel_streams_a_large_body_both_ways(
    proxy: ForwardProxy, tls_edge: EdgeServer, target_context: ssl.SSLContext
) -> None:
    body = pattern(1_000_000)
    async with AsyncHTTPProxy(proxy.url, ssl_context=target_context) as pool:
        response = await pool.handle_async_request(
            Request("POST", tls_edge.url + "/sink", content=body)
        )
        assert await response.aread() == str(len(body)).encode()
        response = await pool.handle_async_request(Request("GET", tls_edge.url + "/big"))
        assert await response.aread() == pattern(1024 * 1024)


@pytest.mark.parametrize(
    ("status", "reason"), [(403, "Forbidden"), (502, "Bad Gateway"), (503, "Service Unavailable")]
)
async def test_connect_refused_raises_proxy_error(
    start_proxy: StartProxy,
    tls_edge: EdgeServer,
    target_context: ssl.SSLContext,
    status: int,
    reason: str,
) -> None:
    proxy = start_proxy(connect_status=status)
    async with AsyncHTTPProxy(proxy.url, ssl_context=target_context) as pool:
        with pytest.raises(ProxyError, match=f"{status} {reason}") as info:
            await pool.handle_async_request(Request("GET", tls_edge.url + "/echo"))
        assert pool.connections == []
    assert f"proxy {proxy.url}" in str(info.value)
    assert f"CONNECT 127.0.0.1:{tls_edge.port}" in str(info.value)


async def test_connect_to_an_unreachable_origin(
    proxy: ForwardProxy, target_context: ssl.SSLContext
) -> None:
    closed = _free_port()
    async with AsyncHTTPProxy(proxy.url, ssl_context=target_context) as pool:
        with pytest.raises(ProxyError, match="502 Bad Gateway"):
            await pool.handle_async_request(Request("GET", f"https://127.0.0.1:{closed}/"))


async def test_proxy_that_hangs_up_on_connect(target_context: ssl.SSLContext) -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with AsyncHTTPProxy(f"http://127.0.0.1:{port}", ssl_context=target_context) as pool:
            with pytest.raises(ProxyError, match="closed the connection"):
                await pool.handle_async_request(Request("GET", "https://127.0.0.1:1/"))
            assert pool.connections == []
    finally:
        server.close()
        await server.wait_closed()


async def test_proxy_down_raises_connect_error_naming_the_proxy(edge: EdgeServer) -> None:
    port = _free_port()
    async with AsyncHTTPProxy(f"http://user:pw@127.0.0.1:{port}") as pool:
        for url in (edge.url + "/echo", "https://127.0.0.1:1/"):
            with pytest.raises(ConnectError, match=f"proxy http://127.0.0.1:{port}") as info:
                await pool.handle_async_request(Request("GET", url))
            assert "pw" not in str(info.value)
            assert info.value.request is not None and str(info.value.request.url) == url
        assert pool.connections == []


# -- https:// proxies --------------------------------------------------------------------------


@pytest.fixture
def tls_proxy(start_proxy: StartProxy, server_cert: trustme.LeafCert) -> ForwardProxy:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_cert.configure_cert(context)
    return start_proxy(ssl_context=context)


async def test_https_proxy_forwards_and_tunnels(
    tls_proxy: ForwardProxy,
    edge: EdgeServer,
    tls_edge: EdgeServer,
    target_context: ssl.SSLContext,
) -> None:
    async with AsyncHTTPProxy(
        tls_proxy.url, proxy_ssl_context=target_context, ssl_context=target_context
    ) as pool:
        for _ in range(2):
            assert (await _get_json(pool, Request("GET", edge.url + "/echo")))["method"] == "GET"
            response = await pool.handle_async_request(Request("GET", tls_edge.url + "/echo"))
            assert json.loads(await response.aread())["target"] == "/echo"
        # TLS inside TLS: the origin's certificate is seen through the proxy's TLS session.
        ssl_object = response.extensions["network_stream"].get_extra_info("ssl_object")
        assert ssl_object.server_hostname == "127.0.0.1"
        assert len(pool.connections) == 2
    assert tls_proxy.connect_targets == [f"127.0.0.1:{tls_edge.port}"]
    assert tls_proxy.connections == 2


async def test_https_proxy_is_verified_by_default(
    tls_proxy: ForwardProxy, edge: EdgeServer
) -> None:
    async with AsyncHTTPProxy(tls_proxy.url) as pool:
        with pytest.raises(ConnectError, match=f"proxy {tls_proxy.url}.*CERTIFICATE_VERIFY_FAILED"):
            await pool.handle_async_request(Request("GET", edge.url + "/echo"))


def test_unsupported_proxy_scheme() -> None:
    with pytest.raises(UnsupportedProtocol, match="socks5"):
        AsyncHTTPProxy("socks5://127.0.0.1:1080")


# -- trace ---------------------------------------------------------------------------------


REQUEST_PHASES = [
    "http11.send_request_headers",
    "http11.send_request_body",
    "http11.receive_response_headers",
    "http11.receive_response_body",
    "http11.response_closed",
]
CONNECT_PHASES = [
    "connection.connect_tcp",
    "http11.send_request_headers",
    "http11.send_request_body",
    "http11.receive_response_headers",
    "connection.start_tls",
]


def _expected(phases: list[str]) -> list[str]:
    return [f"{phase}.{step}" for phase in phases for step in ("started", "complete")]


async def test_tunnel_trace(
    proxy: ForwardProxy, tls_edge: EdgeServer, target_context: ssl.SSLContext
) -> None:
    trace = Recorder()
    async with AsyncHTTPProxy(proxy.url, ssl_context=target_context) as pool:
        request = Request(
            "GET", tls_edge.url + "/echo", extensions={"trace": trace, "timeout": {"connect": 5.0}}
        )
        await (await pool.handle_async_request(request)).aread()
        assert trace.names == _expected(CONNECT_PHASES + REQUEST_PHASES)
        info = dict(trace.events)
        assert info["connection.connect_tcp.started"]["port"] == proxy.port
        connect_request = trace.events[2][1]["request"]
        assert connect_request.method == "CONNECT"
        assert connect_request.extensions["target"] == f"127.0.0.1:{tls_edge.port}".encode()
        _, status, reason, _ = trace.events[7][1]["return_value"]
        assert (status, reason) == (200, b"Connection established")
        started = info["connection.start_tls.started"]
        assert started["ssl_context"] is target_context
        assert started["server_hostname"] == "127.0.0.1"
        assert started["timeout"] == 5.0
        assert trace.events[10][1] == {"request": request}

        trace.events.clear()  # the tunnel is reused: no connect, no CONNECT, no TLS
        await (await pool.handle_async_request(request)).aread()
        assert trace.names == _expected(REQUEST_PHASES)


async def test_refused_connect_trace(start_proxy: StartProxy, tls_edge: EdgeServer) -> None:
    proxy = start_proxy(connect_status=403)
    trace = Recorder()
    async with AsyncHTTPProxy(proxy.url) as pool:
        with pytest.raises(ProxyError):
            await pool.handle_async_request(
                Request("GET", tls_edge.url + "/echo", extensions={"trace": trace})
            )
    assert trace.names == _expected(CONNECT_PHASES[:-1])


async def test_forward_trace_has_no_tunnel(proxy: ForwardProxy, edge: EdgeServer) -> None:
    trace = Recorder()
    async with AsyncHTTPProxy(proxy.url) as pool:
        request = Request("GET", edge.url + "/echo", extensions={"trace": trace})
        await (await pool.handle_async_request(request)).aread()
    assert trace.names == _expected(["connection.connect_tcp", *REQUEST_PHASES])
    assert trace.events[0][1]["port"] == proxy.port


# -- building it the way the sync face does ----------------------------------------------------


def test_built_on_a_loop_thread_from_keyword_options(proxy: ForwardProxy, edge: EdgeServer) -> None:
    """``ConnectionPool`` builds its async pool from ``**options`` on its loop thread."""
    portal = LoopThread()
    options: dict[str, Any] = {"proxy_url": proxy.url, "max_connections_per_origin": 1}

    async def make() -> AsyncHTTPProxy:
        return AsyncHTTPProxy(**options)

    pool = portal.run(make())
    try:
        response = portal.run(pool.handle_async_request(Request("GET", edge.url + "/echo")))
        assert json.loads(portal.run(response.aread()))["target"] == "/echo"
    finally:
        portal.run(pool.aclose())
        portal.close()
    assert proxy.requests[0].target == edge.url + "/echo"


# -- request targets -------------------------------------------------------------------------

# Text for a path segment or a query: any printable character but the delimiters that end them.
_SEGMENT = st.text(
    alphabet=st.characters(
        codec="utf-8", exclude_categories=("Cs", "Cc"), exclude_characters="#?/"
    ),
    max_size=8,
)


@settings(max_examples=60)
@given(
    segments=st.lists(_SEGMENT, max_size=4),
    query=st.none() | _SEGMENT,
    port=st.none() | st.integers(1, 65535),
)
def test_absolute_form_is_the_url_without_userinfo_and_fragment(
    segments: list[str], query: str | None, port: int | None
) -> None:
    authority = "example.test" if port is None else f"example.test:{port}"
    url = URL(
        f"http://user:pw@{authority}/{'/'.join(segments)}"
        + ("" if query is None else f"?{query}")
        + "#fragment"
    )
    target = absolute_form_target(url)
    assert target == f"http://{authority}".encode() + url.raw_path
    assert URL(target.decode("ascii")).raw_path == url.raw_path
    assert absolute_form_target(url, b"/other?q") == f"http://{authority}/other?q".encode()
    assert absolute_form_target(url, b"*") == b"*"


def test_connect_authority_always_has_a_port_and_brackets_ipv6() -> None:
    assert connect_authority(URL("https://example.test/x")) == b"example.test:443"
    assert connect_authority(URL("https://[::1]:8443/")) == b"[::1]:8443"
    assert connect_authority(URL("https://bücher.example/")) == b"xn--bcher-kva.example:443"


@settings(max_examples=15)
@given(path=st.lists(_SEGMENT, min_size=1, max_size=3), query=_SEGMENT)
def test_forwarded_targets_reach_the_origin_unchanged(
    shared_proxy: ForwardProxy, edge: EdgeServer, path: list[str], query: str
) -> None:
    url = URL(f"{edge.url}/echo/{'/'.join(path)}?{query}")

    async def send() -> dict[str, Any]:
        async with AsyncHTTPProxy(shared_proxy.url) as pool:
            return await _get_json(pool, Request("GET", url))

    echoed = asyncio.run(send())
    assert echoed["target"] == url.raw_path.decode("ascii")
    assert shared_proxy.requests[-1].target == str(url)


@pytest.fixture(scope="module")
def shared_proxy() -> Iterator[ForwardProxy]:
    proxy = ForwardProxy().start()
    yield proxy
    proxy.stop()
