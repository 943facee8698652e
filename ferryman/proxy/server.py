"""Serving a built system: every endpoint's port and the kernel's port, on ferryman's own server.

Each endpoint with its own ``port`` gets a listening socket whose requests an
:class:`~ferryman.proxy.relay.EndpointRelay` answers: on the fast path when nothing listens,
through the ASGI kernel (:class:`~ferryman.server.bridge.ASGIBridge`) otherwise. ``proxy.port``
serves the kernel, with the path-prefix endpoints relayed the same way.

Shutdown is graceful: the sockets stop accepting, idle connections close, busy ones close after
their current answer, and what is still running when the grace period ends is cut.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Mapping
from typing import Any, Final

from ferryman.client.filtering import (
    EVENT_FILTER_HTTP_CLIENT_REQUEST,
    EVENT_FILTER_HTTP_CLIENT_RESPONSE,
)
from ferryman.client.transport import create_ssl_context
from ferryman.events import EventDispatcher
from ferryman.proxy.admission import RelayAdmissions
from ferryman.proxy.application import ProxyEndpoints
from ferryman.proxy.events import EVENT_FILTER_PROXY_REQUEST, EVENT_FILTER_PROXY_RESPONSE
from ferryman.proxy.pools import UpstreamPools
from ferryman.proxy.relay import EndpointRelay
from ferryman.proxy.relay_cache import RelayCaches
from ferryman.proxy.relay_middleware import RelayHooks
from ferryman.proxy.relay_resilience import build_resilience
from ferryman.proxy.settings import EndpointSettings, ProxySettings
from ferryman.proxy.targets import ESCAPE_BODY, may_escape, target_escapes
from ferryman.proxy.transactions import TransactionListeners
from ferryman.proxy.upstream import UpstreamPool
from ferryman.server.bridge import ASGIBridge, Lifespan
from ferryman.server.events import (
    EVENT_CORE_CONTROLLER,
    EVENT_CORE_REQUEST,
    EVENT_CORE_RESPONSE,
    EVENT_CORE_VIEW,
)
from ferryman.server.kernel import ASGIKernel
from ferryman.server.protocol import (
    RequestHandler,
    ServerExchange,
    ServerLimits,
    ServerProtocol,
    ServerState,
)
from ferryman.system.builder import System

__all__ = ["KERNEL", "ListenError", "PrefixRouter", "ProxyServer"]

logger = logging.getLogger("ferryman.proxy")

#: The name :attr:`ProxyServer.addresses` gives the kernel's own port.
KERNEL: Final = "kernel"
#: Events whose listeners must see every request: any of them sends requests the general way,
#: except the proxy filter events' listeners, which the relay runs itself (:data:`RELAY_EVENTS`,
#: :mod:`ferryman.proxy.relay_events` and :mod:`ferryman.proxy.relay_middleware`).
WATCHED_EVENTS: Final = (
    EVENT_CORE_REQUEST,
    EVENT_CORE_CONTROLLER,
    EVENT_CORE_VIEW,
    EVENT_CORE_RESPONSE,
    EVENT_FILTER_PROXY_REQUEST,
    EVENT_FILTER_PROXY_RESPONSE,
    EVENT_FILTER_HTTP_CLIENT_REQUEST,
    EVENT_FILTER_HTTP_CLIENT_RESPONSE,
)
#: The watched events the relay can dispatch itself (inline when all their listeners are
#: synchronous, from a task per request otherwise).
RELAY_EVENTS: Final = (EVENT_FILTER_PROXY_REQUEST, EVENT_FILTER_PROXY_RESPONSE)
_GENERAL_EVENTS: Final = tuple(name for name in WATCHED_EVENTS if name not in RELAY_EVENTS)


class ListenError(OSError):
    """A socket could not listen: ``listener`` says whose it was (an endpoint's name, or
    :data:`KERNEL`), for the message to name the setting that chose the address."""

    def __init__(self, listener: str, host: str, port: int, error: OSError) -> None:
        super().__init__(error.errno, error.strerror)
        self.listener = listener
        self.host = host
        self.port = port
        #: What the event loop raised (a ``socket.gaierror`` for a host that does not resolve).
        self.error = error


class FastPathGate:
    """Answers "may this endpoint's requests take the fast path now?" in a few attribute reads.

    The dispatcher's ``version`` changes with every listener added or removed, so the listener
    check runs again only then; the handler says whether it has middleware or options.
    :meth:`filtering` answers the next question when it says no: may the relay serve the
    request anyway, dispatching the proxy filter events and running the middleware itself?
    """

    __slots__ = ("_bare", "_dispatcher", "_filterable", "_quiet", "_version", "handler")

    def __init__(self, dispatcher: EventDispatcher, bare_kernel: bool, handler: Any) -> None:
        self._dispatcher = dispatcher
        self._bare = bare_kernel
        self._version = -1
        self._quiet = False
        self._filterable = False
        self.handler = handler

    def _refresh(self) -> None:
        dispatcher = self._dispatcher
        self._version = dispatcher.version
        general = any(dispatcher.has_listeners(name) for name in _GENERAL_EVENTS)
        filtered = any(dispatcher.has_listeners(name) for name in RELAY_EVENTS)
        self._quiet = not general and not filtered
        self._filterable = not general

    def __call__(self) -> bool:
        if not self._bare:
            return False
        if self._dispatcher.version != self._version:
            self._refresh()
        return self._quiet and getattr(self.handler, "is_plain", True)

    def filtering(self) -> bool:
        """Whether the relay runs this request's events and middleware itself: no watched
        event but the proxy filter ones, and a handler whose upstream calls the relay can make
        (no request options, the default session: ``HTTPProxyHandler.is_relayable``)."""
        if not self._bare or self.handler is None:
            return False
        if self._dispatcher.version != self._version:
            self._refresh()
        return self._filterable and bool(getattr(self.handler, "is_relayable", False))


class PrefixRouter:
    """The kernel port's handler: path-prefix endpoints relayed, everything else to the kernel."""

    __slots__ = ("_routes", "fallback")

    def __init__(self, routes: Mapping[str, RequestHandler], fallback: RequestHandler) -> None:
        self._routes = sorted(
            ((prefix.rstrip("/").encode("ascii"), handler) for prefix, handler in routes.items()),
            key=lambda route: len(route[0]),
            reverse=True,
        )
        self.fallback = fallback

    def on_request(self, exchange: ServerExchange) -> None:
        target = exchange.target
        for prefix, handler in self._routes:
            if target.startswith(prefix):
                rest = target[len(prefix) : len(prefix) + 1]
                if not rest or rest in (b"/", b"?"):
                    # Nor may a target climb above its endpoint's mount.
                    if may_escape(target) and target_escapes(target, mount=prefix):
                        exchange.send_error(400, ESCAPE_BODY)
                        return
                    handler.on_request(exchange)
                    return
        self.fallback.on_request(exchange)


class ProxyServer:
    """Listens for a built :class:`~ferryman.system.System` whose config has a ``proxy`` key."""

    def __init__(
        self,
        system: System,
        *,
        host: str | None = None,
        reuse_port: bool = False,
    ) -> None:
        self.system = system
        settings = system.config.get("proxy")
        if not isinstance(settings, ProxySettings):
            raise ValueError("the system has no proxy settings (is 'proxy' in applications?)")
        self.settings = settings
        self.host = host or settings.host
        self.reuse_port = reuse_port
        self.state = ServerState()
        self._servers: list[asyncio.Server] = []
        self._relays: list[EndpointRelay] = []
        self._bridge: ASGIBridge | None = None
        self._lifespan: Lifespan | None = None
        self._ssl_context: ssl.SSLContext | None = None
        #: The transaction events' listeners, for every endpoint's relay.
        self.transactions = TransactionListeners(system.dispatcher)
        #: Endpoint name (or :data:`KERNEL`) -> the address it listens on, once started.
        self.addresses: dict[str, tuple[str, int]] = {}

    def _endpoints(self) -> ProxyEndpoints | None:
        provider = self.system.provider
        return provider.resolve(ProxyEndpoints) if ProxyEndpoints in provider else None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        app = self.system.asgi_app
        self._lifespan = Lifespan(app)
        await self._lifespan.startup()
        bridge = self._bridge = ASGIBridge(app, loop)
        bare = isinstance(app, ASGIKernel)
        dispatcher = self.system.dispatcher
        endpoints = self._endpoints()
        prefix_routes: dict[str, RequestHandler] = {}
        for endpoint in self.settings.endpoints:
            handler = None if endpoints is None else endpoints.get(endpoint.name)
            gate = FastPathGate(dispatcher, bare, handler)
            relay = self._relay(endpoint, loop, gate, bridge)
            if handler is not None:
                # The general path serves with the relay's cache, balancer and breakers.
                handler.share_endpoint_state(relay.cache, relay.resilience)
            if relay.use_fast is gate:  # (not when options need the http client)
                relay.filters = RelayHooks(
                    endpoint.name,
                    dispatcher,
                    handler,
                    gate.filtering,
                    endpoint.limits.listener_body,
                )
            if endpoint.port is not None:
                await self._listen(
                    endpoint.name, endpoint.port, relay, loop, endpoint.server_limits()
                )
                if endpoints is not None:
                    # The kernel routes by the port a request came in on: the real one.
                    endpoints.bind_port(endpoint.name, self.addresses[endpoint.name][1])
            else:
                assert endpoint.path is not None
                prefix_routes[endpoint.path] = relay
        await self._listen(
            KERNEL,
            self.settings.port,
            PrefixRouter(prefix_routes, bridge),
            loop,
            self.settings.server_limits(),
        )

    def _relay(
        self,
        endpoint: EndpointSettings,
        loop: asyncio.AbstractEventLoop,
        gate: FastPathGate,
        bridge: ASGIBridge,
    ) -> EndpointRelay:
        upstreams = endpoint.upstreams
        context = None
        if any(url.scheme == "https" for url in upstreams):
            if self._ssl_context is None:
                self._ssl_context = create_ssl_context(True)
            context = self._ssl_context
        timeout = endpoint.timeout
        limits = endpoint.limits
        pools = [UpstreamPool(url, loop, context) for url in upstreams]
        for pool in pools:
            pool.max_head = limits.response_head
            pool.max_headers = limits.response_headers
        relay = EndpointRelay(
            endpoint.name,
            pools,
            rewrite=None if endpoint.rewrite is None else endpoint.rewrite.to_rewrite(),
            request_rules=endpoint.request_rules(),
            response_rules=endpoint.response_rules(),
            preserve_host=endpoint.preserve_host,
            connect_timeout=timeout.connect,
            read_timeout=timeout.read,
            pool_timeout=timeout.pool,
            body_limit=limits.body,
            request_buffer=endpoint.request_buffer,
            use_fast=gate,
            fallback=bridge,
            transactions=self.transactions,
            resilience=build_resilience(endpoint, pools, self.system.dispatcher, loop),
        )
        if endpoint.request_options.to_options():
            relay.use_fast = lambda: False  # options only the http client understands
        self._relays.append(relay)
        provider = self.system.provider
        if RelayAdmissions in provider:  # (rate limits, outbound budgets)
            provider.resolve(RelayAdmissions).attach(relay)
        if RelayCaches in provider:  # (the cache application: each endpoint its own)
            relay.cache = provider.resolve(RelayCaches).get(endpoint.name)
        if UpstreamPools in provider:  # (read by the metrics at scrape time)
            provider.resolve(UpstreamPools).register(endpoint.name, pools, relay.resilience)
        return relay

    async def _listen(
        self,
        name: str,
        port: int,
        handler: RequestHandler,
        loop: asyncio.AbstractEventLoop,
        limits: ServerLimits,
    ) -> None:
        state = self.state
        try:
            server = await loop.create_server(
                lambda: ServerProtocol(handler, state, loop, limits=limits),
                self.host,
                port,
                reuse_port=self.reuse_port or None,
                backlog=1024,
            )
        except OSError as exc:
            raise ListenError(name, self.host, port, exc) from exc
        self._servers.append(server)
        sockname = server.sockets[0].getsockname()
        self.addresses[name] = (sockname[0], sockname[1])

    async def shutdown(self, grace_period: float | None = None) -> None:
        """Stop accepting, let in-flight requests finish for ``grace_period`` s, then close."""
        if grace_period is None:
            grace_period = self.settings.grace_period
        for server in self._servers:
            server.close()
        self.state.start_closing()
        bridge = self._bridge
        if bridge is not None:
            bridge.close_websockets(1012)  # "service restart": clients may reconnect
        try:
            async with asyncio.timeout(grace_period):
                await self.state.wait_closed()
                if bridge is not None and bridge.tasks:
                    await asyncio.wait(list(bridge.tasks))
        except TimeoutError:
            logger.warning(
                "the grace period (%ss) ended with %d connection(s) still open: closing them",
                grace_period,
                len(self.state.connections),
            )
            self.state.abort_all()
            if bridge is not None:
                for task in list(bridge.tasks):
                    task.cancel()
        for server in self._servers:
            await server.wait_closed()
        for relay in self._relays:
            relay.close()
            if relay.resilience is not None:
                await relay.resilience.aclose()
        if self._lifespan is not None:
            await self._lifespan.shutdown()

    def __repr__(self) -> str:
        return f"<ProxyServer {self.addresses!r}>"
