"""The ``proxy`` application: the system's http client, one handler per endpoint, the kernel.

In the configuration's ``applications`` list by default. On bind it registers:

* ``AsyncClient`` (also by the name ``http_client``): *the system's http client*, the one every
  endpoint calls its upstream with. Built with the system's dispatcher, so
  ``EVENT_FILTER_HTTP_CLIENT_REQUEST/RESPONSE`` fire for every upstream call, and suited to
  relaying (see :func:`~ferryman.proxy.context.default_session`: no decompression, no cookie
  jar, no environment proxies, a large pool per origin). Closed on shutdown.
* :class:`ProxyEndpoints`: endpoint name -> :class:`~ferryman.proxy.handler.HTTPProxyHandler`,
  and the :class:`~ferryman.proxy.resolver.EndpointResolver` the kernel routes with.
* :class:`~ferryman.proxy.pools.UpstreamPools`: the fast relay's upstream connection pools, as
  the server fills it, for the metrics to read.

Another application may add middleware to an endpoint's handler on bound
(``event.provider.resolve(ProxyEndpoints)["payments"].client_edge(fn)``) or register its own
``AsyncClient`` on bind (after ``proxy`` in the list) to replace the system's.

:func:`build_kernel` is the kernel factory the CLI hands to
:meth:`~ferryman.system.SystemBuilder.build`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

from ferryman.client.session import AsyncClient
from ferryman.events import EventDispatcher
from ferryman.proxy.context import default_session
from ferryman.proxy.handler import HTTPProxyHandler
from ferryman.proxy.pools import UpstreamPools
from ferryman.proxy.resolver import EndpointResolver, EndpointTarget, MountGuard
from ferryman.proxy.settings import ProxySettings
from ferryman.server.controllers import ASGIApp, Controller
from ferryman.server.kernel import ASGIKernel
from ferryman.server.resolvers import ControllerResolver, DefaultControllerResolver
from ferryman.system.applications import Application
from ferryman.system.container import Container
from ferryman.system.events import OnBindEvent, OnBoundEvent, OnShutdownEvent

__all__ = ["ProxyApplication", "ProxyEndpoints", "build_http_client", "build_kernel"]


def build_http_client(dispatcher: EventDispatcher) -> AsyncClient:
    """The system's http client: relaying defaults, filter events on ``dispatcher``."""
    return default_session(dispatcher)


class ProxyEndpoints:
    """The configured endpoints' handlers, by name, and the resolver that routes to them."""

    __slots__ = ("handlers", "resolver", "settings")

    def __init__(
        self, settings: ProxySettings, dispatcher: EventDispatcher, http_client: AsyncClient
    ) -> None:
        self.settings = settings
        #: Endpoint name -> its handler, in configuration order.
        self.handlers: dict[str, HTTPProxyHandler] = {
            endpoint.name: HTTPProxyHandler.from_settings(
                endpoint, dispatcher=dispatcher, session=http_client
            )
            for endpoint in settings.endpoints
        }
        by_port: dict[int, EndpointTarget] = {}
        by_path: dict[str, EndpointTarget] = {}
        for endpoint in settings.endpoints:
            handler = self.handlers[endpoint.name]
            if endpoint.port is not None:
                by_port[endpoint.port] = handler  # several may say 0: bind_port finds them
            elif endpoint.path is not None:
                by_path[endpoint.path] = handler
        # By name too: endpoints on port 0 share that key above, and are bound by name.
        self.resolver = EndpointResolver(by_port, by_path, names=self.handlers)

    def get(self, name: str) -> HTTPProxyHandler | None:
        return self.handlers.get(name)

    def __getitem__(self, name: str) -> HTTPProxyHandler:
        return self.handlers[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.handlers)

    def __len__(self) -> int:
        return len(self.handlers)

    def mount(self, prefix: str, app: ASGIApp | Controller) -> None:
        """Serve ``prefix`` on the kernel's port (``proxy.port``) with ``app``: an ASGI
        application (``ferryman.server.ASGIApp(app)``) or a kernel controller. For
        applications that add pages or APIs (the dashboard, the metrics), from ``on_bound``."""
        self.resolver.mount(prefix, app)

    def guard(self, wrap: MountGuard) -> None:
        """Wrap every app mounted on the kernel's port, now and later (not the endpoints):
        ``wrap(target)`` gets an ASGI app (``ASGIApp``) or a controller and returns what to
        serve instead. The dashboard puts its basic auth in front of ``/api`` and ``/metrics``
        this way."""
        self.resolver.guard(wrap)

    def bind_port(self, name: str, port: int) -> None:
        """Tell the resolver the port an endpoint listens on (its real one, for port 0)."""
        self.resolver.bind_port(name, port)

    def __repr__(self) -> str:
        return f"<ProxyEndpoints {list(self.handlers)!r}>"


class ProxyApplication(Application):
    """Registers the system's http client and the endpoints; closes the client at the end."""

    name: ClassVar[str] = "proxy"
    settings_type = ProxySettings
    settings: ProxySettings

    def on_bind(self, event: OnBindEvent) -> None:
        event.container.add(AsyncClient, build_http_client, name="http_client")
        event.container.add(ProxyEndpoints)
        event.container.add(UpstreamPools)

    def on_bound(self, event: OnBoundEvent) -> None:
        # Built now rather than on the first request: a bad endpoint fails the start-up.
        event.provider.resolve(ProxyEndpoints)

    async def on_shutdown(self, event: OnShutdownEvent) -> None:
        if AsyncClient in event.provider:
            await event.provider.resolve(AsyncClient).aclose()


def build_kernel(dispatcher: EventDispatcher, provider: Container) -> ASGIKernel:
    """The system's ASGI kernel, routing to the proxy endpoints (404 for anything else)."""
    resolver: ControllerResolver
    if ProxyEndpoints in provider:
        resolver = provider.resolve(ProxyEndpoints).resolver
    else:
        resolver = DefaultControllerResolver()
    return ASGIKernel(dispatcher, resolver)
