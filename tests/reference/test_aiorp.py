"""aiorp's "Advanced" document (../shared/reference/aiorp-advanced.txt) on ferryman.

Every code example of the document is copied with its import line changed (``from aiorp
import ...`` is ``from ferryman.compat.aiorp import ...``; aiohttp's own imports stay) and
``url`` pointing at a local upstream (httpbin, or the scripted upstream that records each
connection). The handlers are mounted on an aiohttp application, as aiorp's are, served on
127.0.0.1, and called with a ferryman client; each test asserts what the document says.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import ClientResponseError, ClientSession, ClientTimeout, TCPConnector, web
from aiohttp.web_exceptions import HTTPInternalServerError

import ferryman
from ferryman.compat.aiorp import (
    HTTPProxyHandler,
    MiddlewarePhase,
    ProxyContext,
    ProxyMiddlewareDef,
    Rewrite,
    ferryman_request_options,
)
from tests.servers.httpbin_server import HttpbinServer
from tests.servers.slow_upstream import ScriptedUpstream

Mount = Callable[[HTTPProxyHandler], Awaitable[str]]


@pytest.fixture
async def mount() -> AsyncIterator[Mount]:
    """Mount a handler on an aiohttp application (every method, every path), as aiorp's
    quickstart does, and serve it on 127.0.0.1; gives the base URL."""
    runners: list[tuple[web.AppRunner, HTTPProxyHandler]] = []

    async def start(handler: HTTPProxyHandler) -> str:
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", handler)
        runner = web.AppRunner(app, handler_cancellation=True)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append((runner, handler))
        port = runner.addresses[0][1]
        return f"http://127.0.0.1:{port}"

    yield start
    for runner, handler in reversed(runners):
        await runner.cleanup()
        await handler.aclose()


# -- "Additional request options" ------------------------------------------------------------


def test_request_options_as_written_are_refused_with_the_reason(httpbin: HttpbinServer) -> None:
    url = httpbin.url
    ctx = ProxyContext(url=url)
    with pytest.raises(ValueError, match=r"read_until_eof: read_until_eof=False .* no ferryman"):
        handler = HTTPProxyHandler(
            context=ctx,
            request_options={
                "max_redirects": 5,
                "read_until_eof": False,
            },
        )
        del handler


async def test_request_options_are_forwarded_to_the_upstream_call(
    httpbin: HttpbinServer, mount: Mount, client: ferryman.AsyncClient
) -> None:
    url = httpbin.url
    ctx = ProxyContext(url=url)
    # The example, with read_until_eof at the value ferryman has (it refuses False, above).
    handler = HTTPProxyHandler(
        context=ctx,
        request_options={
            "max_redirects": 5,
            "read_until_eof": True,
        },
    )
    proxy = await mount(handler)
    followed = await client.get(f"{proxy}/redirect/5")  # followed, as aiohttp follows them
    assert followed.status_code == 200
    assert followed.json()["url"].endswith("/get")
    too_many = await client.get(f"{proxy}/redirect/6")  # past max_redirects
    assert too_many.status_code == 500


def test_aiohttp_options_are_mapped_or_refused_each_with_a_reason() -> None:
    options, timeout = ferryman_request_options(
        {"ssl": False, "allow_redirects": False, "timeout": ClientTimeout(sock_read=3)}
    )
    assert options == {"allow_redirects": False, "verify": False}
    assert timeout is not None and (timeout.read, timeout.connect) == (3, 5)
    with pytest.raises(ValueError) as refused:
        ferryman_request_options({"headers": {}, "compress": True, "timeout": ClientTimeout(9)})
    message = str(refused.value)
    assert "headers: the request options can't contain" in message
    assert "compress: aiohttp's option has no ferryman equivalent" in message
    assert "timeout: total has no equivalent" in message


# -- "Custom error handling" -----------------------------------------------------------------


async def test_an_upstream_error_is_a_500_external_api_error_by_default(
    httpbin: HttpbinServer, mount: Mount, client: ferryman.AsyncClient
) -> None:
    seen_on_the_way_out: list[int] = []
    handler = HTTPProxyHandler(ctx=ProxyContext(url=httpbin.url))

    @handler.client_edge
    def watch(ctx: ProxyContext):
        yield
        seen_on_the_way_out.append(ctx.response.status_code)

    proxy = await mount(handler)
    response = await client.get(f"{proxy}/status/404")
    assert response.status_code == 500
    assert response.reason_phrase == "External API Error"
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"status": 404, "message": "NOT FOUND"}
    assert (await client.get(f"{proxy}/status/204")).status_code == 204  # below 400: relayed
    assert seen_on_the_way_out == [204]  # aiorp's raise skips the ways out


async def test_a_custom_error_handler_raises_the_answer(
    httpbin: HttpbinServer, mount: Mount, client: ferryman.AsyncClient
) -> None:
    ctx = ProxyContext(url=httpbin.url)

    # The document's example:
    def my_error_handler(err: ClientResponseError):
        raise HTTPInternalServerError(
            reason="My reason is better",
            content_type="application/json",
            text=json.dumps(
                {
                    "status": err.status,
                    "message": err.message,
                }
            ),
        )

    handler = HTTPProxyHandler(
        context=ctx,
        error_handler=my_error_handler,
    )
    proxy = await mount(handler)
    response = await client.get(f"{proxy}/status/418")
    assert (response.status_code, response.reason_phrase) == (500, "My reason is better")
    assert response.json() == {"status": 418, "message": "I'M A TEAPOT"}


async def test_an_upstream_that_cannot_be_reached_keeps_ferrymans_502(
    refused_url: str, mount: Mount, client: ferryman.AsyncClient
) -> None:
    proxy = await mount(HTTPProxyHandler(ctx=ProxyContext(url=refused_url)))
    response = await client.get(f"{proxy}/x")
    assert response.status_code == 502
    assert "refused" in response.json()["message"]


async def test_served_as_asgi_the_error_answer_is_the_same(
    httpbin: HttpbinServer, serve, client: ferryman.AsyncClient
) -> None:
    handler = HTTPProxyHandler(ctx=ProxyContext(url=httpbin.url))
    proxy = await serve(handler)
    response = await client.get(f"{proxy.url}/status/503")
    assert response.status_code == 500
    assert response.json() == {"status": 503, "message": "SERVICE UNAVAILABLE"}
    await handler.aclose()


# -- "Custom session factory" ----------------------------------------------------------------


async def concurrent_connections(
    upstream: ScriptedUpstream, proxy: str, client: ferryman.AsyncClient
) -> int:
    """How many upstream connections three concurrent slow requests through ``proxy`` used."""
    upstream.reset()
    answers = await asyncio.gather(
        *(client.get(f"{proxy}/{i}/slow", params={"delay": "0.2"}) for i in range(3))
    )
    assert [answer.text for answer in answers] == ["late"] * 3
    return len({seen.connection for seen in upstream.requests})


async def test_a_session_factory_of_aiohttp_sessions_shapes_the_upstream_connections(
    upstream: ScriptedUpstream, mount: Mount, client: ferryman.AsyncClient
) -> None:
    url = f"http://127.0.0.1:{upstream.port}"

    # The document's example:
    def my_session_factory():
        return ClientSession(
            connector=TCPConnector(
                limit=50,
            )
        )

    ctx = ProxyContext(
        url=url,
        session_factory=my_session_factory,
    )
    handler = HTTPProxyHandler(ctx=ctx)
    proxy = await mount(handler)
    assert await concurrent_connections(upstream, proxy, client) == 3  # 50 allows them all

    def one_connection():  # the same, with a limit that shows
        return ClientSession(connector=TCPConnector(limit=1))

    narrow = await mount(
        HTTPProxyHandler(ctx=ProxyContext(url=url, session_factory=one_connection))
    )
    assert await concurrent_connections(upstream, narrow, client) == 1


async def test_the_aiohttp_sessions_are_closed_with_the_handler(
    upstream: ScriptedUpstream, mount: Mount, client: ferryman.AsyncClient
) -> None:
    made: list[ClientSession] = []

    def factory():
        made.append(ClientSession(connector=TCPConnector(limit=5)))
        return made[-1]

    ctx = ProxyContext(url=f"http://127.0.0.1:{upstream.port}", session_factory=factory)
    handler = HTTPProxyHandler(ctx=ctx)
    proxy = await mount(handler)
    assert (await client.get(f"{proxy}/api")).status_code == 200
    assert len(made) == 1 and not made[0].closed
    await handler.aclose()
    assert made[0].closed


# -- "Middleware execution order" ------------------------------------------------------------


async def test_a_middleware_defined_for_the_client_edge_phase(
    httpbin: HttpbinServer, mount: Mount, client: ferryman.AsyncClient, capsys
) -> None:
    ctx = ProxyContext(url=httpbin.url)
    order: list[str] = []

    def my_middleware(ctx: ProxyContext):
        order.append("in")
        yield
        order.append(f"out {ctx.response.status_code}")

    # The document's example:
    http_handler = HTTPProxyHandler(ctx=ctx)
    http_handler.add_middleware(
        ProxyMiddlewareDef(phase=MiddlewarePhase.CLIENT_EDGE, middleware=my_middleware)
    )
    proxy = await mount(http_handler)
    assert (await client.get(f"{proxy}/status/202")).status_code == 202
    assert order == ["in", "out 202"]  # around the upstream call


async def test_the_decorator_pattern(
    httpbin: HttpbinServer, mount: Mount, client: ferryman.AsyncClient, capsys
) -> None:
    ctx = ProxyContext(url=httpbin.url)

    # The document's example:
    http_handler = HTTPProxyHandler(ctx=ctx)

    @http_handler.client_edge
    def my_middleware(ctx: ProxyContext):
        print("I execute at the client edge before the proxy request")
        yield
        print("I execute at the client edge after the proxy request")

    proxy = await mount(http_handler)
    assert (await client.get(f"{proxy}/get")).status_code == 200
    assert capsys.readouterr().out == (
        "I execute at the client edge before the proxy request\n"
        "I execute at the client edge after the proxy request\n"
    )


async def test_four_phases_run_in_order_in_and_in_reverse_out(
    httpbin: HttpbinServer, mount: Mount, client: ferryman.AsyncClient
) -> None:
    http_handler = HTTPProxyHandler(ctx=ProxyContext(url=httpbin.url))
    order: list[str] = []

    def recording(name: str):
        def middleware(ctx: ProxyContext):
            order.append(f"{name} in")
            yield
            order.append(f"{name} out")

        return middleware

    mid_a, mid_b, mid_c, mid_d = (recording(name) for name in "abcd")

    # The document's example:
    http_handler.add_middleware(ProxyMiddlewareDef(phase=0, middleware=mid_a))
    http_handler.add_middleware(ProxyMiddlewareDef(phase=300, middleware=mid_b))
    http_handler.add_middleware(ProxyMiddlewareDef(phase=500, middleware=mid_c))
    http_handler.add_middleware(ProxyMiddlewareDef(phase=1000, middleware=mid_d))

    proxy = await mount(http_handler)
    assert (await client.get(f"{proxy}/get")).status_code == 200
    assert order == ["a in", "b in", "c in", "d in", "d out", "c out", "b out", "a out"]


async def test_the_middlewares_of_one_phase_run_concurrently(
    httpbin: HttpbinServer, mount: Mount, client: ferryman.AsyncClient
) -> None:
    # "within one phase all middlewares are executed asynchronously": each waits for the other.
    http_handler = HTTPProxyHandler(ctx=ProxyContext(url=httpbin.url))
    first_in, second_in = asyncio.Event(), asyncio.Event()

    @http_handler.proxy
    async def first(ctx: ProxyContext):
        first_in.set()
        await asyncio.wait_for(second_in.wait(), 5)
        yield

    @http_handler.proxy
    async def second(ctx: ProxyContext):
        second_in.set()
        await asyncio.wait_for(first_in.wait(), 5)
        yield

    proxy = await mount(http_handler)
    assert (await client.get(f"{proxy}/get")).status_code == 200


# -- "Path rewriting" ------------------------------------------------------------------------


async def test_path_rewriting(
    upstream: ScriptedUpstream, mount: Mount, client: ferryman.AsyncClient
) -> None:
    # The document's example:
    rewrite = Rewrite(rfrom="/mytarget", rto="/")

    url = f"http://127.0.0.1:{upstream.port}"
    handler = HTTPProxyHandler(ctx=ProxyContext(url=url), rewrite=rewrite)
    proxy = await mount(handler)
    upstream.reset()
    assert (await client.get(f"{proxy}/mytarget/a%2Fb/api?q=1")).status_code == 200
    assert (await client.get(f"{proxy}/elsewhere/api")).status_code == 200
    assert [seen.target for seen in upstream.requests] == ["/a%2Fb/api?q=1", "/elsewhere/api"]


# -- "Proxy request state" -------------------------------------------------------------------


async def test_the_state_is_shared_by_the_phases_and_copied_for_every_request(
    httpbin: HttpbinServer, mount: Mount, client: ferryman.AsyncClient, capsys
) -> None:
    url = httpbin.url

    # The document's example:
    ctx = ProxyContext(url=url, state={"resource_name": "target-A"})

    http_handler = HTTPProxyHandler(ctx=ctx)

    @http_handler.client_edge
    def log_resource(ctx: ProxyContext):
        print(ctx.state["resource_name"])
        ctx.state["custom_key"] = 123

    @http_handler.target_edge
    def log_custom_value(ctx: ProxyContext):
        print(ctx.state["resource_name"])
        print(ctx.state["custom_key"])

    proxy = await mount(http_handler)
    for _ in range(2):
        assert (await client.get(f"{proxy}/get")).status_code == 200
    assert capsys.readouterr().out == "target-A\ntarget-A\n123\n" * 2
    assert ctx.state == {"resource_name": "target-A"}  # each request had its own copy
