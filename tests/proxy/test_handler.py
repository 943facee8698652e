"""HTTPProxyHandler on the wire: what a client and an upstream see through the proxy.

The handler is served by uvicorn, as a plain ASGI app and as the kernel's controller, and talks
to real upstreams: the edge server (echoes the raw request target and headers), httpbin, the
uvicorn test app.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

import ferryman
from ferryman.http import Response
from ferryman.proxy import HTTPProxyHandler, ProxyContext, Rewrite, UpstreamError
from ferryman.proxy.headers import HeaderRules
from ferryman.proxy.resolver import EndpointResolver
from ferryman.server import ASGIKernel
from tests.proxy.conftest import Serve
from tests.servers.edge import EdgeServer, pattern
from tests.servers.httpbin_server import HttpbinServer
from tests.servers.nginx_server import NginxServer
from tests.servers.slow_upstream import ScriptedUpstream, wait_until
from tests.servers.uvicorn_server import UvicornServer


def headers_of(echo: dict[str, Any]) -> dict[str, str]:
    return {name.lower(): value for name, value in echo["headers"]}


async def raw_exchange(port: int, head: bytes) -> bytes:
    """Send ``head`` on a fresh connection and read the whole answer (the server closes)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head)
    await writer.drain()
    data = await reader.read()
    writer.close()
    return data


# -- headers ------------------------------------------------------------------------------------


async def test_hop_by_hop_headers_are_removed_and_forwarding_headers_added(
    serve: Serve, edge: EdgeServer
) -> None:
    proxy = await serve(HTTPProxyHandler(ProxyContext(url=edge.url)))
    answer = await raw_exchange(
        proxy.port,
        b"GET /echo HTTP/1.1\r\nHost: front.example:8443\r\nConnection: close, X-Secret\r\n"
        b"X-Secret: hop\r\nKeep-Alive: 5\r\nTE: trailers\r\nProxy-Authorization: Basic eA==\r\n"
        b"Upgrade: h2c\r\nX-Forwarded-For: 10.0.0.1\r\nVia: 1.0 front\r\nX-Kept: yes\r\n\r\n",
    )
    head, _, body = answer.partition(b"\r\n\r\n")
    echo = json.loads(body)
    seen = headers_of(echo)
    for name in ("connection", "x-secret", "keep-alive", "te", "proxy-authorization", "upgrade"):
        assert name not in seen
    assert seen["x-kept"] == "yes"
    assert seen["host"] == f"127.0.0.1:{edge.port}"
    assert seen["x-forwarded-for"] == "127.0.0.1"  # the client's own is not believed
    assert seen["x-forwarded-proto"] == "http"
    assert seen["x-forwarded-host"] == "front.example:8443"
    assert seen["via"] == "1.0 front, 1.1 ferryman"
    assert b"\r\nvia: 1.1 ferryman" in head.lower()


async def test_preserve_host_sends_the_clients_host(
    serve: Serve, edge: EdgeServer, client: ferryman.AsyncClient
) -> None:
    proxy = await serve(HTTPProxyHandler(ProxyContext(url=edge.url), preserve_host=True))
    echo = (await client.get(f"{proxy.url}/echo", headers={"Host": "api.example"})).json()
    assert headers_of(echo)["host"] == "api.example"


async def test_header_rules_add_and_remove_in_both_directions(
    serve: Serve, httpbin: HttpbinServer, client: ferryman.AsyncClient
) -> None:
    handler = HTTPProxyHandler(
        ProxyContext(url=httpbin.url),
        request_rules=HeaderRules(add=[("X-Team", "core")], remove=["Cookie"]),
        response_rules=HeaderRules(add=[("X-Proxied", "1")], remove=["Server"]),
    )
    proxy = await serve(handler)
    response = await client.get(
        f"{proxy.url}/headers", headers={"Cookie": "a=1", "X-Team": "client"}
    )
    sent = response.json()["headers"]
    assert sent["X-Team"] == "core"
    assert "Cookie" not in sent
    assert response.headers["x-proxied"] == "1"
    assert "server" not in response.headers


async def test_no_default_client_header_is_added(serve: Serve, edge: EdgeServer) -> None:
    proxy = await serve(HTTPProxyHandler(ProxyContext(url=edge.url)))
    answer = await raw_exchange(
        proxy.port, b"GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    names = [name.lower() for name, _ in json.loads(answer.partition(b"\r\n\r\n")[2])["headers"]]
    assert "user-agent" not in names
    assert "accept-encoding" not in names
    assert "accept" not in names


# -- targets ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        b"/echo/a%2Fb/%7E~/%zz?q=%20+&x=%2f&&y",
        b"/echo/caf%C3%A9;p=1?utf8=%E2%9C%93#",
        b"/echo?",
        b"/echo/%2e%2e/x",
    ],
)
async def test_the_target_goes_upstream_byte_for_byte(
    serve: Serve, edge: EdgeServer, target: bytes
) -> None:
    proxy = await serve(HTTPProxyHandler(ProxyContext(url=edge.url)))
    answer = await raw_exchange(
        proxy.port, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    echo = json.loads(answer.partition(b"\r\n\r\n")[2])
    expected = target.rstrip(b"#")
    if expected.endswith(b"?"):
        expected = expected[:-1]  # an empty query is no query for ASGI servers
    assert echo["target"].encode("latin-1") == expected


async def test_the_upstream_base_path_prefixes_the_target(
    serve: Serve, edge: EdgeServer, client: ferryman.AsyncClient
) -> None:
    for base in (f"{edge.url}/v1", f"{edge.url}/v1/"):
        proxy = await serve(HTTPProxyHandler(ProxyContext(url=base)))
        echo = (await client.get(f"{proxy.url}/x/y?q=1")).json()
        assert echo["target"] == "/v1/x/y?q=1"


async def test_rewrite_replaces_the_path_prefix(
    serve: Serve, edge: EdgeServer, client: ferryman.AsyncClient
) -> None:
    handler = HTTPProxyHandler(
        ProxyContext(url=f"{edge.url}/v2"), rewrite=Rewrite(rfrom="/api", rto="/")
    )
    proxy = await serve(handler)
    assert (await client.get(f"{proxy.url}/api/a%2Fb?q=1")).json()["target"] == "/v2/a%2Fb?q=1"
    assert (await client.get(f"{proxy.url}/apis")).json()["target"] == "/v2/apis"


# -- bodies -------------------------------------------------------------------------------------


async def test_request_bodies_stream_upstream_with_their_framing(
    serve: Serve, edge: EdgeServer, client: ferryman.AsyncClient
) -> None:
    proxy = await serve(HTTPProxyHandler(ProxyContext(url=edge.url)))
    size = 8 * 1024 * 1024

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(size // 65536):
            yield b"x" * 65536

    streamed = await client.post(f"{proxy.url}/sink", content=chunks())
    assert streamed.text == str(size)
    fixed = await client.post(f"{proxy.url}/echo", content=b"hello")
    echo = fixed.json()
    assert echo["body"] == "hello"
    assert headers_of(echo)["content-length"] == "5"


async def test_response_bodies_stream_back_unchanged(
    serve: Serve, edge: EdgeServer, uvicorn_server: UvicornServer, client: ferryman.AsyncClient
) -> None:
    proxy = await serve(HTTPProxyHandler(ProxyContext(url=edge.url)))
    size = 16 * 1024 * 1024
    async with await client.get(f"{proxy.url}/big?size={size}", stream=True) as response:
        assert response.headers["content-length"] == str(size)
        received = bytearray()
        async for chunk in response.aiter_bytes():
            received += chunk
    assert bytes(received) == pattern(size)

    encoded = await serve(HTTPProxyHandler(ProxyContext(url=uvicorn_server.url)))
    raw = await client.get(f"{encoded.url}/encoded?coding=gzip&lines=2000", decompress=False)
    assert raw.headers["content-encoding"] == "gzip"
    assert raw.content[:2] == b"\x1f\x8b"  # relayed compressed, as the upstream sent it


async def test_chunks_reach_the_client_before_the_upstream_has_finished(
    serve: Serve, edge: EdgeServer, client: ferryman.AsyncClient
) -> None:
    proxy = await serve(HTTPProxyHandler(ProxyContext(url=edge.url)))
    started = time.monotonic()
    async with await client.get(f"{proxy.url}/slow-body?delay=1", stream=True) as response:
        chunks = response.aiter_bytes()
        assert await chunks.__anext__() == b"start"
        assert time.monotonic() - started < 0.9
        rest = b"".join([chunk async for chunk in chunks])
    assert rest == b"-end-"


async def test_head_and_statuses_without_body_pass_through(
    serve: Serve, edge: EdgeServer, client: ferryman.AsyncClient
) -> None:
    proxy = await serve(HTTPProxyHandler(ProxyContext(url=edge.url)))
    for code in (204, 304, 404, 503):
        response = await client.get(f"{proxy.url}/status?code={code}")
        assert response.status_code == code
    head = await client.head(f"{proxy.url}/big?size=1000")
    assert head.status_code == 200
    assert head.content == b""


# -- errors -------------------------------------------------------------------------------------


async def test_a_refused_upstream_gives_502_json(
    serve: Serve, refused_url: str, client: ferryman.AsyncClient
) -> None:
    proxy = await serve(HTTPProxyHandler(ProxyContext(url=refused_url)))
    response = await client.get(f"{proxy.url}/anything")
    assert response.status_code == 502
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["status"] == 502
    assert refused_url.removeprefix("http://") in body["message"]


async def test_a_slow_upstream_gives_504(
    serve: Serve, edge: EdgeServer, client: ferryman.AsyncClient
) -> None:
    handler = HTTPProxyHandler(ProxyContext(url=edge.url), timeout=0.3)
    proxy = await serve(handler)
    response = await client.get(f"{proxy.url}/slow-head?delay=2")
    assert response.status_code == 504
    assert response.json()["status"] == 504


async def test_the_error_handler_replaces_the_error_answer(
    serve: Serve, refused_url: str, client: ferryman.AsyncClient
) -> None:
    seen: list[tuple[type[Exception], int, str]] = []

    async def on_error(error: Exception, ctx: ProxyContext) -> Response:
        assert isinstance(error, UpstreamError)
        seen.append((type(error.__cause__), error.status_code, ctx.endpoint))  # type: ignore[arg-type]
        return Response(599, text="custom")

    handler = HTTPProxyHandler(ProxyContext(url=refused_url), error_handler=on_error, name="p")
    proxy = await serve(handler)
    response = await client.get(f"{proxy.url}/x")
    assert (response.status_code, response.text) == (599, "custom")
    assert seen == [(ferryman.ConnectError, 502, "p")]


async def test_an_error_handler_returning_none_keeps_the_default(
    serve: Serve, refused_url: str, client: ferryman.AsyncClient
) -> None:
    handler = HTTPProxyHandler(ProxyContext(url=refused_url), error_handler=lambda e, c: None)
    proxy = await serve(handler)
    assert (await client.get(f"{proxy.url}/x")).status_code == 502


# -- several upstreams ----------------------------------------------------------------------------


async def test_round_robin_and_refused_upstreams_are_skipped(
    serve: Serve,
    edge: EdgeServer,
    httpbin: HttpbinServer,
    refused_url: str,
    client: ferryman.AsyncClient,
) -> None:
    handler = HTTPProxyHandler(ProxyContext(url=[edge.url, refused_url, httpbin.url]))
    proxy = await serve(handler)
    hosts = []
    for _ in range(6):
        response = await client.get(f"{proxy.url}/anything")
        assert response.status_code == 200
        hosts.append("target" in response.json())  # the edge echo has "target", httpbin not
    # edge, (refused -> httpbin), httpbin, edge, (refused -> httpbin), httpbin
    assert hosts == [True, False, False, True, False, False]


async def test_every_upstream_refusing_gives_502(
    serve: Serve, refused_url: str, client: ferryman.AsyncClient
) -> None:
    handler = HTTPProxyHandler(ProxyContext(url=[refused_url, refused_url]))
    proxy = await serve(handler)
    assert (await client.get(f"{proxy.url}/x")).status_code == 502


# -- options and sessions -------------------------------------------------------------------------


async def test_request_options_are_passed_to_the_client(
    serve: Serve, httpbin: HttpbinServer, client: ferryman.AsyncClient
) -> None:
    plain = HTTPProxyHandler(ProxyContext(url=httpbin.url))
    following = HTTPProxyHandler(
        ProxyContext(url=httpbin.url), request_options={"allow_redirects": True}
    )
    assert plain.is_plain and not following.is_plain
    proxy = await serve(plain)
    follow = await serve(following)
    target = "/redirect-to?url=/get&status_code=302"
    assert (await client.get(f"{proxy.url}{target}", allow_redirects=False)).status_code == 302
    assert (await client.get(f"{follow.url}{target}", allow_redirects=False)).status_code == 200


async def test_an_http2_upstream_reloaded_mid_request_answers_each_request_once(
    serve: Serve,
    start_nginx: Callable[..., NginxServer],
    upstream: ScriptedUpstream,
    ca_bundle: str,
    client: ferryman.AsyncClient,
) -> None:
    # Issue 21, through the proxy: with request_options {http2: true} the upstream calls share
    # an HTTP/2 connection; nginx reloaded while they run must answer each once, POSTs too.
    nginx = start_nginx()
    handler = HTTPProxyHandler(
        ProxyContext(url=nginx.url),
        request_options={"http2": True, "verify": ca_bundle},
        request_buffer=65536,  # the endpoint default: a small body can go again if declined
    )
    proxy = await serve(handler)

    async def one(method: str, index: int) -> tuple[int, bytes]:
        url = f"{proxy.url}/slow?delay=1.5&id={method}{index}"
        response = await client.request(method, url, content=b"pay" if method == "POST" else None)
        return response.status_code, response.content

    tasks = [asyncio.ensure_future(one(m, i)) for i in range(5) for m in ("GET", "POST")]
    assert await wait_until(lambda: len(upstream.requests) == 10)
    nginx.reload()
    assert await asyncio.gather(*tasks) == [(200, b"late")] * 10
    assert sorted(Counter(request.target for request in upstream.requests).values()) == [1] * 10
    await handler.aclose()


def test_unknown_request_options_are_refused() -> None:
    with pytest.raises(ValueError, match="headers"):
        HTTPProxyHandler(ProxyContext(url="http://u"), request_options={"headers": {}})


async def test_a_session_factory_builds_the_client(
    serve: Serve, edge: EdgeServer, client: ferryman.AsyncClient
) -> None:
    built: list[ferryman.AsyncClient] = []

    def factory() -> ferryman.AsyncClient:
        session = ferryman.AsyncClient(trust_env=False, headers={"X-From-Session": "1"})
        built.append(session)
        return session

    handler = HTTPProxyHandler(ProxyContext(url=edge.url, session_factory=factory))
    assert not handler.is_plain
    proxy = await serve(handler)
    for _ in range(3):
        echo = (await client.get(f"{proxy.url}/echo")).json()
        # send() adds none of the session's default headers: the request is relayed as is.
        assert "x-from-session" not in headers_of(echo)
    assert len(built) == 1


# -- under the kernel -----------------------------------------------------------------------------


async def test_the_handler_is_the_kernels_controller(
    serve: Serve, edge: EdgeServer, client: ferryman.AsyncClient
) -> None:
    handler = HTTPProxyHandler(ProxyContext(url=edge.url), name="api")
    kernel = ASGIKernel(ferryman.EventDispatcher(), EndpointResolver(by_path={"/api": handler}))
    proxy = await serve(kernel)
    try:
        echo = (await client.get(f"{proxy.url}/api/users?id=1")).json()
        assert echo["target"] == "/api/users?id=1"
        assert (await client.get(f"{proxy.url}/other")).status_code == 404
    finally:
        await handler.aclose()


async def test_a_client_going_away_cancels_the_upstream_call(
    serve: Serve, edge: EdgeServer
) -> None:
    handler = HTTPProxyHandler(ProxyContext(url=edge.url))
    proxy = await serve(handler)
    before = edge.connections
    _, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(b"GET /slow-head?delay=3 HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    await asyncio.sleep(0.3)
    writer.close()
    await asyncio.sleep(0.3)
    session = handler.context.session
    # The upstream connection was closed, not kept for reuse: the pool holds nothing.
    assert not session._router.has_open_connections()
    assert edge.connections == before + 1
