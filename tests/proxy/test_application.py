"""The proxy application: the default system, endpoints from the configuration, the http client."""

from __future__ import annotations

from typing import Any

import ferryman
from ferryman.proxy import ProxyApplication, ProxyEndpoints, build_kernel
from ferryman.server import ASGIKernel
from ferryman.system import SystemBuilder, load_application, load_config
from tests.proxy.conftest import Serve
from tests.servers.edge import EdgeServer


def proxy_config(*endpoints: dict[str, Any]) -> dict[str, Any]:
    return {"applications": ["proxy"], "proxy": {"endpoints": list(endpoints)}}


async def test_the_default_configuration_builds_a_system(
    serve: Serve, client: ferryman.AsyncClient
) -> None:
    assert load_application("proxy") is ProxyApplication
    system = await SystemBuilder(load_config(env={})).build(build_kernel)
    try:
        assert isinstance(system.asgi_app, ASGIKernel)
        assert len(system.provider.resolve(ProxyEndpoints)) == 0
        proxy = await serve(system.asgi_app)
        response = await client.get(f"{proxy.url}/anything")
        assert response.status_code == 404
        assert response.json() == {"status": 404, "message": "Not Found"}
    finally:
        await system.dispose()


async def test_every_endpoint_shares_the_systems_http_client(edge: EdgeServer) -> None:
    config = proxy_config(
        {"name": "a", "path": "/a", "url": edge.url},
        {"name": "b", "port": 0, "url": [edge.url, f"{edge.url}/v2"]},
    )
    system = await SystemBuilder(config).build(build_kernel)
    http_client = system.provider.resolve(ferryman.AsyncClient)
    assert system.provider.resolve("http_client") is http_client
    assert http_client.dispatcher is system.dispatcher
    assert (http_client.decompress, http_client.store_cookies) == (False, False)
    endpoints = system.provider.resolve(ProxyEndpoints)
    assert list(endpoints) == ["a", "b"]
    for name in endpoints:
        handler = endpoints[name]
        assert handler.name == name
        assert handler.context.session is http_client
        assert handler.dispatcher is system.dispatcher
        assert handler.is_plain
    assert [str(url) for url in endpoints["b"].upstreams] == [edge.url, f"{edge.url}/v2"]
    await system.dispose()
    assert http_client.is_closed


async def test_endpoint_settings_shape_the_handler(edge: EdgeServer) -> None:
    config = proxy_config(
        {
            "name": "maps",
            "path": "/maps",
            "url": edge.url,
            "rewrite": {"from": "/maps", "to": "/"},
            "preserve_host": True,
            "timeout": 2,
            "state": {"tier": "gold"},
            "request_headers": {"add": {"X-Team": "core"}},
            "request_options": {"http2": False},
        }
    )
    system = await SystemBuilder(config).build(build_kernel)
    try:
        handler = system.provider.resolve(ProxyEndpoints)["maps"]
        assert handler.rewrite is not None and handler.rewrite.rfrom == "/maps"
        assert handler.preserve_host
        assert handler.timeout.read == 2
        assert handler.context.state == {"tier": "gold"}
        assert handler.request_rules.add == ((b"X-Team", b"core"),)
        assert not handler.is_plain  # request options only the http client understands
    finally:
        await system.dispose()


async def test_endpoints_are_found_by_port_then_by_path(
    serve: Serve, edge: EdgeServer, client: ferryman.AsyncClient
) -> None:
    config = proxy_config(
        {"name": "own", "port": 0, "url": f"{edge.url}/own"},
        {"name": "shared", "path": "/shared", "url": f"{edge.url}/base"},
    )
    system = await SystemBuilder(config).build(build_kernel)
    try:
        kernel_port = await serve(system.asgi_app)
        own_port = await serve(system.asgi_app)  # the same kernel, listening on a second port
        endpoints = system.provider.resolve(ProxyEndpoints)
        # Before the server tells the port it got, nothing routes there by port.
        assert (await client.get(f"{own_port.url}/x")).status_code == 404
        endpoints.bind_port("own", own_port.port)
        assert (await client.get(f"{own_port.url}/x?y=1")).json()["target"] == "/own/x?y=1"
        assert (await client.get(f"{own_port.url}/shared/z")).json()["target"] == "/own/shared/z"
        shared = await client.get(f"{kernel_port.url}/shared/z")
        assert shared.json()["target"] == "/base/shared/z"
        assert (await client.get(f"{kernel_port.url}/x")).status_code == 404
    finally:
        await system.dispose()


async def test_an_application_listed_after_proxy_adds_middleware(edge: EdgeServer) -> None:
    config = proxy_config({"name": "api", "path": "/api", "url": edge.url})
    system = await SystemBuilder(config).build(build_kernel)
    try:
        handler = system.provider.resolve(ProxyEndpoints).get("api")
        assert handler is not None
        handler.client_edge(lambda ctx: None)
        assert not handler.is_plain
        assert system.provider.resolve(ProxyEndpoints).get("missing") is None
    finally:
        await system.dispose()
