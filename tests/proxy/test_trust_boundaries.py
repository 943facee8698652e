"""What a client can make an upstream see, and what an upstream's answer tells a client, on
both proxy paths (issue 20, items 5, 8, 9 and 10).

Each scenario runs twice: through the fast relay (``EndpointRelay`` on ferryman's own server)
and through the general path (``HTTPProxyHandler`` served by uvicorn), in front of the scripted
upstream, which records every request exactly as it arrived. Clients are raw sockets. The last
tests start a whole ``ProxyServer`` from configuration: the settings reach both paths, and an
endpoint mounted under a path on the shared port keeps its requests below it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import yaml

from ferryman.events import Event
from ferryman.proxy import HTTPProxyHandler, ProxyContext
from ferryman.proxy.application import build_kernel
from ferryman.proxy.headers import HeaderRules
from ferryman.proxy.rewrite import Rewrite
from ferryman.proxy.server import ProxyServer
from ferryman.proxy.targets import ESCAPE_MESSAGE
from ferryman.server import EVENT_CORE_RESPONSE
from ferryman.system import SystemBuilder, load_config
from tests.proxy.conftest import Serve
from tests.proxy.test_targets import ISSUE_VECTORS
from tests.servers.relay_harness import StartRelay
from tests.servers.slow_upstream import RawResponse, ScriptedUpstream, SeenRequest, roundtrip

#: ``await front(url, rewrite=..., request_rules=..., response_rules=...)`` -> the proxy's port.
Front = Callable[..., Awaitable[int]]


@pytest.fixture(params=["relay", "handler"])
async def front(request: pytest.FixtureRequest, start_relay: StartRelay, serve: Serve) -> Front:
    """A proxy in front of an upstream URL: the fast relay, or the general path."""

    async def relay(url: str, **options: Any) -> int:
        return (await start_relay(url, **options)).port

    async def handler(url: str, **options: Any) -> int:
        return (await serve(HTTPProxyHandler(ProxyContext(url=url), **options))).port

    return relay if request.param == "relay" else handler


async def get(port: int, target: bytes, headers: bytes = b"") -> RawResponse:
    return await roundtrip(
        port,
        b"GET %s HTTP/1.1\r\nHost: proxy.test\r\n%sConnection: close\r\n\r\n" % (target, headers),
    )


def last_request(upstream: ScriptedUpstream) -> SeenRequest:
    assert upstream.requests, "the request did not reach the upstream"
    return upstream.requests[-1]


# -- item 5: targets that climb above the base path ----------------------------------------------

ESCAPING = [
    *ISSUE_VECTORS,
    b"/.%2e/internal/x",
    b"/..%5Cinternal/x",
    b"/a//../../internal/x",
    b"/..;x=1/internal/x",
    b"/..",
]


@pytest.mark.parametrize("target", ESCAPING)
async def test_a_target_climbing_above_the_base_path_is_refused_and_never_sent(
    front: Front, upstream: ScriptedUpstream, target: bytes
) -> None:
    port = await front(upstream.url + "/v1")
    upstream.reset()
    response = await get(port, target)
    assert response.status == 400
    assert response.json() == {"status": 400, "message": ESCAPE_MESSAGE}
    assert upstream.requests == []


async def test_a_hash_in_the_path_does_not_hide_dot_segments(
    start_relay: StartRelay, upstream: ScriptedUpstream
) -> None:
    """A request target has no fragment (RFC 9112 section 3.2): an upstream that takes ``#`` as
    a character reads ``/v1/#/../../internal`` as ``/internal``, so the check reads on past it.
    (uvicorn cuts a ``#`` and what follows before the handler sees the target: nothing to check
    on that path.)"""
    relay = await start_relay(upstream.url + "/v1")
    upstream.reset()
    response = await get(relay.port, b"/#/../../internal/x")
    assert response.status == 400
    assert upstream.requests == []


@pytest.mark.parametrize(
    "target", [b"/a/../b", b"/a/./b/%2e%2e/c", b"/a/%2E%2E", b"/x?next=/../../y", b"/...."]
)
async def test_dot_segments_that_stay_inside_go_upstream_byte_for_byte(
    front: Front, upstream: ScriptedUpstream, target: bytes
) -> None:
    port = await front(upstream.url + "/v1")
    response = await get(port, target)
    assert response.status == 200
    assert last_request(upstream).target.encode("latin-1") == b"/v1" + target


async def test_a_target_the_rewrite_makes_climb_is_refused(
    front: Front, upstream: ScriptedUpstream
) -> None:
    """``/v1/../x`` stays inside ``/``, but rewritten from /v1 to / it is ``/../x``."""
    port = await front(upstream.url + "/base", rewrite=Rewrite("/v1", "/"))
    upstream.reset()
    assert (await get(port, b"/v1/../x")).status == 400
    assert (await get(port, b"/v1/%2e%2e/x")).status == 400
    assert upstream.requests == []
    assert (await get(port, b"/v1/a/../x")).status == 200
    assert last_request(upstream).target == "/base/a/../x"


# -- item 8: forwarding headers ------------------------------------------------------------------

SPOOFED = (
    b"X-Forwarded-For: 203.0.113.9\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: evil.test\r\n"
    b"X-Forwarded-Port: 443\r\nX-Forwarded-Prefix: /admin\r\nX-Real-IP: 198.51.100.7\r\n"
    b"Forwarded: for=198.51.100.7;proto=https\r\nX_Forwarded_Host: evil.test\r\n"
    b"X_Api_Key: forged\r\nX-Kept: yes\r\n"
)


async def test_a_clients_forwarding_headers_are_replaced(
    front: Front, upstream: ScriptedUpstream
) -> None:
    port = await front(upstream.url)
    assert (await get(port, b"/echo", SPOOFED)).status == 200
    seen = last_request(upstream)
    assert seen.all("x-forwarded-for") == ["127.0.0.1"]
    assert seen.all("x-forwarded-proto") == ["http"]
    assert seen.all("x-forwarded-host") == ["proxy.test"]
    for name in ("x-forwarded-port", "x-forwarded-prefix", "x-real-ip", "forwarded"):
        assert seen.header(name) is None, name
    assert not any("_" in name for name, _ in seen.headers)
    assert seen.header("x-kept") == "yes"


async def test_a_trusted_proxys_forwarding_headers_are_kept_and_extended(
    front: Front, upstream: ScriptedUpstream
) -> None:
    rules = HeaderRules(trusted_proxies=["127.0.0.0/8"], underscores=True)
    port = await front(upstream.url, request_rules=rules)
    assert (await get(port, b"/echo", SPOOFED)).status == 200
    seen = last_request(upstream)
    assert seen.all("x-forwarded-for") == ["203.0.113.9, 127.0.0.1"]
    assert seen.all("x-forwarded-proto") == ["https"]
    assert seen.all("x-forwarded-host") == ["evil.test"]
    assert seen.all("x-real-ip") == ["198.51.100.7"]
    assert seen.all("forwarded") == ["for=198.51.100.7;proto=https"]
    assert seen.all("X_Api_Key") == ["forged"]  # underscores allowed by this endpoint


# -- item 9: rules over ferryman's own headers ---------------------------------------------------


async def test_rules_remove_via_and_x_forwarded_for_both_ways(
    front: Front, upstream: ScriptedUpstream
) -> None:
    port = await front(
        upstream.url,
        request_rules=HeaderRules(remove=["Via", "X-Forwarded-For"]),
        response_rules=HeaderRules(remove=["Via"]),
    )
    for _ in range(2):  # (the second time, the relay's names are known: its shortcut)
        response = await get(port, b"/echo", b"Via: 1.0 edge\r\nAccept: */*\r\n")
        assert response.status == 200 and response.header("via") is None
        seen = last_request(upstream)
        assert seen.header("via") is None and seen.header("x-forwarded-for") is None
        assert seen.all("x-forwarded-proto") == ["http"]
    response = await get(port, b"/hop")  # the upstream's answer has a Via of its own
    assert response.header("via") is None and response.header("x-kept") == "yes"


async def test_via_switched_off_adds_none_either_way(
    front: Front, upstream: ScriptedUpstream
) -> None:
    port = await front(
        upstream.url,
        request_rules=HeaderRules(via=False),
        response_rules=HeaderRules(via=False),
    )
    for _ in range(2):
        response = await get(port, b"/echo", b"Accept: */*\r\n")
        assert response.header("via") is None
        assert last_request(upstream).header("via") is None
    response = await get(port, b"/echo", b"Via: 1.0 edge\r\n")
    assert last_request(upstream).all("via") == ["1.0 edge"]  # relayed as it came
    assert (await get(port, b"/hop")).all("via") == ["1.0 upstream-cache"]


# -- item 10: the upstream's address in answers --------------------------------------------------


def redirect_to(url: str, pad: int = 0) -> bytes:
    return b"/redirect?to=%s&pad=%d" % (quote(url, safe="").encode(), pad)


@pytest.mark.parametrize("pad", [0, 600])  # 600: a long head, relayed from its bytes otherwise
async def test_the_upstreams_own_urls_are_rewritten_to_the_proxys(
    front: Front, upstream: ScriptedUpstream, pad: int
) -> None:
    port = await front(upstream.url + "/v1")
    own = f"http://127.0.0.1:{upstream.port}/v1/login?next=%2Fhome"
    response = await get(port, redirect_to(own, pad))
    assert response.status == 302
    assert response.header("location") == "http://proxy.test/login?next=%2Fhome"
    assert response.header("content-location") == "http://proxy.test/login?next=%2Fhome"
    assert response.header("refresh") == "0; url=http://proxy.test/login?next=%2Fhome"
    elsewhere = "http://elsewhere.test/v1/login"
    assert (await get(port, redirect_to(elsewhere, pad))).header("location") == elsewhere


async def test_a_rewrites_prefix_is_put_back_in_the_proxys_url(
    front: Front, upstream: ScriptedUpstream
) -> None:
    port = await front(upstream.url + "/base", rewrite=Rewrite("/api", "/"))
    own = f"HTTP://127.0.0.1:{upstream.port}/base/next"
    response = await get(port, b"/api" + redirect_to(own))
    assert response.header("location") == "http://proxy.test/api/next"


async def test_redirect_rewriting_can_be_switched_off(
    front: Front, upstream: ScriptedUpstream
) -> None:
    port = await front(upstream.url, response_rules=HeaderRules(redirects=False))
    own = f"http://127.0.0.1:{upstream.port}/login"
    response = await get(port, redirect_to(own))
    assert response.header("location") == own
    assert response.header("refresh") == f"0; url={own}"


# -- a whole server, from configuration ----------------------------------------------------------


@pytest.fixture
async def configured(upstream: ScriptedUpstream, tmp_path: Path) -> AsyncIterator[ProxyServer]:
    """Two endpoints, on a port of its own and under /maps on the shared port, with every
    switch of items 8-10 away from its default, as a configuration file says them."""
    switches = {
        "trusted_proxies": ["127.0.0.1"],
        "underscores_in_headers": True,
        "via": False,
        "redirect_rewrite": False,
    }
    config = tmp_path / "ferryman.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "proxy": {
                    "port": 0,
                    "endpoints": [
                        {"name": "api", "port": 0, "url": upstream.url + "/v1", **switches},
                        {"name": "maps", "path": "/maps", "url": upstream.url, **switches},
                    ],
                }
            }
        )
    )
    system = await SystemBuilder(load_config([config], env={})).build(build_kernel)
    server = ProxyServer(system, host="127.0.0.1")
    await server.start()
    try:
        yield server
    finally:
        await server.shutdown(1)
        await server.system.dispose()


@pytest.mark.parametrize("path", ["fast", "general"])
async def test_the_endpoint_settings_reach_both_paths(
    configured: ProxyServer, upstream: ScriptedUpstream, path: str
) -> None:
    through(configured, path, "api")
    port = configured.addresses["api"][1]
    response = await get(port, b"/echo", b"X-Forwarded-For: 10.9.8.7\r\nX_Team: core\r\n")
    assert response.status == 200 and response.header("via") is None
    seen = last_request(upstream)
    assert seen.all("x-forwarded-for") == ["10.9.8.7, 127.0.0.1"]
    assert seen.all("X_Team") == ["core"] and seen.header("via") is None
    own = f"http://127.0.0.1:{upstream.port}/v1/login"
    assert (await get(port, redirect_to(own))).header("location") == own


@pytest.mark.parametrize("path", ["fast", "general"])
async def test_a_mounted_endpoint_keeps_its_requests_below_its_mount(
    configured: ProxyServer, upstream: ScriptedUpstream, path: str
) -> None:
    """``/maps`` relays to the upstream's ``/maps``: ``/maps/../admin`` would reach its
    ``/admin``, which no request to the mount may."""
    through(configured, path, "maps")
    port = configured.addresses["kernel"][1]
    upstream.reset()
    for target in (b"/maps/../admin", b"/maps/%2E%2E/admin", b"/maps/x/../../admin"):
        response = await get(port, target)
        assert response.status == 400
        assert response.json() == {"status": 400, "message": ESCAPE_MESSAGE}
    assert upstream.requests == []
    assert (await get(port, b"/maps/x/../y")).status == 200
    assert last_request(upstream).target == "/maps/x/../y"


async def test_the_general_path_alone_keeps_requests_below_its_mount(
    serve: Serve, upstream: ScriptedUpstream
) -> None:
    """The handler served without ferryman's server (the kernel under another ASGI server)."""
    handler = HTTPProxyHandler(ProxyContext(url=upstream.url), mount="/maps/")
    port = (await serve(handler)).port
    upstream.reset()
    assert (await get(port, b"/maps/%2e%2e/admin")).status == 400
    assert upstream.requests == []
    assert (await get(port, b"/maps/a/../b")).status == 200


def through(server: ProxyServer, path: str, endpoint: str) -> None:
    """Send ``endpoint``'s next requests the ``path`` way ("fast" or "general")."""
    if path == "general":  # a listener sends every request through the kernel
        server.system.dispatcher.add_listener(EVENT_CORE_RESPONSE, _nothing)
    (relay,) = (relay for relay in server._relays if relay.name == endpoint)
    assert relay.use_fast is not None and relay.use_fast() == (path == "fast")


def _nothing(event: Event) -> None:
    pass
