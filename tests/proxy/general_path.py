"""A real ``ferryman`` proxy for the general path's tests: a system built from settings (as
``ferryman start`` builds it), served by :class:`~ferryman.proxy.server.ProxyServer` on
127.0.0.1, one endpoint named ``api`` whose requests take the general path (its
``request_options``, or an ``http_client.filter.request`` listener the test adds).

:meth:`Proxy.send` speaks raw HTTP/1.1 (one connection per request) so a test sees the bytes
a client gets, framing and all; :meth:`Proxy.path` says which path served the last request.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from ferryman.client.filtering import EVENT_FILTER_HTTP_CLIENT_REQUEST, HttpClientFilterEvent
from ferryman.proxy.application import build_kernel
from ferryman.proxy.balancer import EVENT_UPSTREAM_STATE, UpstreamStateEvent
from ferryman.proxy.relay import EndpointRelay
from ferryman.proxy.relay_cache import RelayCache, RelayCaches
from ferryman.proxy.server import ProxyServer
from ferryman.system import SystemBuilder, load_config
from tests.servers.slow_upstream import RawResponse, roundtrip

#: Options only the http client honours: the endpoint's requests take the general path.
GENERAL = {"request_options": {"decompress": False}}


class Proxy:
    """The served proxy, its endpoint's relay, and what its listeners saw."""

    def __init__(self, server: ProxyServer, log: Path) -> None:
        self.server = server
        self.log = log
        self.states: list[UpstreamStateEvent] = []
        #: The upstream URLs ``http_client.filter.request`` was dispatched for.
        self.filtered: list[str] = []
        server.system.dispatcher.add_listener(EVENT_UPSTREAM_STATE, self.states.append)

    @property
    def port(self) -> int:
        return self.server.addresses["api"][1]

    @property
    def relay(self) -> EndpointRelay:
        (relay,) = self.server._relays
        return relay

    @property
    def cache(self) -> RelayCache:
        found = self.server.system.provider.resolve(RelayCaches).get("api")
        assert found is not None
        return found

    def general(self, on: bool = True) -> None:
        """Send the next requests the general way (an http client filter listener) or not."""
        dispatcher = self.server.system.dispatcher
        if on:
            dispatcher.add_listener(EVENT_FILTER_HTTP_CLIENT_REQUEST, self._filtered)
        else:
            dispatcher.remove_listener(EVENT_FILTER_HTTP_CLIENT_REQUEST, self._filtered)

    def _filtered(self, event: HttpClientFilterEvent) -> None:
        self.filtered.append(str(event.request.url))

    def takes_general_path(self) -> bool:
        use_fast = self.relay.use_fast
        return use_fast is not None and not use_fast()

    async def send(
        self,
        method: str = "GET",
        target: str = "/x",
        body: bytes = b"",
        headers: dict[str, str] | None = None,
    ) -> RawResponse:
        head = f"{method} {target} HTTP/1.1\r\nHost: proxy.test\r\nConnection: close\r\n"
        for name, value in (headers or {}).items():
            head += f"{name}: {value}\r\n"
        if body or method in ("POST", "PUT", "PATCH"):
            head += f"Content-Length: {len(body)}\r\n"
        return await roundtrip(
            self.port, head.encode() + b"\r\n" + body, head_only=method == "HEAD", timeout=15
        )

    def transitions(self, of: str | None = None) -> list[tuple[str, str]]:
        """``(previous, state)`` of each breaker change (of the upstream ``of``, a URL)."""
        return [
            (e.previous, e.state)
            for e in self.states
            if e.what == "breaker" and (of is None or e.upstream == of)
        ]

    async def stop(self) -> list[str]:
        """Shut down; the access log's lines."""
        await self.server.shutdown(1)
        await self.server.system.dispose()
        return self.log.read_text().splitlines() if self.log.exists() else []


StartProxy = Callable[..., Awaitable[Proxy]]


@pytest.fixture
async def ferryman_proxy(tmp_path: Path) -> AsyncIterator[StartProxy]:
    started: list[Proxy] = []

    async def start(*overrides: str, **endpoint: Any) -> Proxy:
        endpoint.setdefault("timeout", {"connect": 2, "read": 5})
        log = tmp_path / f"access-{len(started)}.log"
        words = [
            "proxy.port=0",
            "applications=[proxy, cache, accesslog, metrics]",
            f"logging.access_log={log}",
            "proxy.endpoints=" + json.dumps([{"name": "api", "port": 0, **endpoint}]),
            *overrides,
        ]
        config = load_config([], env={}, overrides=words)
        system = await SystemBuilder(config).build(build_kernel)
        server = ProxyServer(system, host="127.0.0.1")
        await server.start()
        proxy = Proxy(server, log)
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        if proxy.server._servers and proxy.server._servers[0].is_serving():
            await proxy.stop()


def payload(response: RawResponse) -> dict[str, Any]:
    data = json.loads(response.body)
    assert isinstance(data, dict)
    return data
