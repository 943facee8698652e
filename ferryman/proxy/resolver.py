"""Which endpoint answers a request: by the port it arrived on, then by path prefix.

An endpoint with its own ``port`` owns every request that arrives there, whatever its path; the
others share the kernel's port under their ``path``, matched segment-wise with the longest
prefix first (``/api`` takes ``/api`` and ``/api/users``, never ``/apis``), as
:class:`~ferryman.server.resolvers.PathPrefixResolver` does.

A target that is an :class:`~ferryman.proxy.handler.HTTPProxyHandler` answers HTTP requests with
its ``handle`` controller and WebSocket handshakes as an ASGI app (it relays them).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeAlias, cast

from ferryman.http.models import Request
from ferryman.proxy.handler import HTTPProxyHandler
from ferryman.server.controllers import ASGIApp, Controller
from ferryman.server.resolvers import PathPrefixResolver

__all__ = ["EndpointResolver", "EndpointTarget", "MountGuard"]

#: What an endpoint may be: a proxy handler, or any controller or mounted ASGI app.
EndpointTarget: TypeAlias = HTTPProxyHandler | Controller | ASGIApp

#: Wraps a mounted app (``ProxyEndpoints.guard``): authentication in front of pages and APIs.
MountGuard: TypeAlias = Callable[[EndpointTarget], EndpointTarget]

_WEBSOCKET_SCHEMES = frozenset({"ws", "wss"})


class EndpointResolver:
    """Resolves by arrival port, then by path prefix; ``None`` (a 404) when nothing matches.

    Port 0 in ``by_port`` means "any free port": such an endpoint is only reachable once the
    server tells the real one with :meth:`bind_port`. ``names`` lets :meth:`bind_port` find
    targets by name besides handlers, which are known by their ``name``.
    """

    __slots__ = (
        "_by_path",
        "_by_port",
        "_guards",
        "_http",
        "_mounts",
        "_names",
        "_paths",
        "_websocket",
    )

    def __init__(
        self,
        by_port: Mapping[int, EndpointTarget] | None = None,
        by_path: Mapping[str, EndpointTarget] | None = None,
        names: Mapping[str, EndpointTarget] | None = None,
    ) -> None:
        self._by_port: dict[int, EndpointTarget] = {
            port: target for port, target in (by_port or {}).items() if port != 0
        }
        # A handler stands in for its faces until resolve() picks one.
        self._by_path: dict[str, EndpointTarget] = dict(by_path or {})
        self._paths = PathPrefixResolver(cast(Mapping[str, Controller | ASGIApp], self._by_path))
        self._names: dict[str, EndpointTarget] = dict(names or {})
        for target in (*(by_port or {}).values(), *(by_path or {}).values()):
            if isinstance(target, HTTPProxyHandler):
                self._names.setdefault(target.name, target)
        # Per handler, the two faces it shows the kernel, built once.
        self._http: dict[int, Controller] = {}
        self._websocket: dict[int, ASGIApp] = {}
        # Mounted apps as given (before any guard wraps them), and the guards, in order.
        self._mounts: dict[str, EndpointTarget] = {}
        self._guards: list[MountGuard] = []

    def bind_port(self, endpoint: str | EndpointTarget, port: int) -> None:
        """Route requests arriving on ``port`` to ``endpoint`` (a name or a target): the port
        an endpoint configured with port 0 got, or a port added at run time."""
        if isinstance(endpoint, str):
            target = self._names.get(endpoint)
            if target is None:
                raise KeyError(f"no endpoint is named {endpoint!r}")
        else:
            target = endpoint
        self._by_port = {
            **{p: t for p, t in self._by_port.items() if t is not target},
            port: target,
        }

    def mount(self, prefix: str, target: EndpointTarget) -> None:
        """Serve ``prefix`` on the kernel's port with ``target`` (an ASGI app, say): how an
        application (the dashboard, the metrics) adds its pages. The longest prefix wins, and
        the path-prefix endpoints, which the server routes before the kernel, stay theirs.
        The guards (:meth:`guard`) wrap it."""
        self._mounts[prefix] = target
        self._route(prefix, target)

    def guard(self, wrap: MountGuard) -> None:
        """Put ``wrap`` in front of every mounted app, those mounted already and those to come,
        whichever application mounts them and in whatever order: how the dashboard's basic
        auth covers the storage's ``/api`` and the metrics' ``/metrics``. Proxy endpoints are
        never wrapped: traffic does not authenticate to the dashboard."""
        self._guards.append(wrap)
        for prefix, target in self._mounts.items():
            self._route(prefix, target)

    def _route(self, prefix: str, target: EndpointTarget) -> None:
        for wrap in self._guards:
            target = wrap(target)
        routes = {**self._by_path, prefix: target}
        self._paths = PathPrefixResolver(cast(Mapping[str, Controller | ASGIApp], routes))
        self._by_path = routes

    @property
    def ports(self) -> dict[int, EndpointTarget]:
        """Port -> target, for the ports known so far."""
        return dict(self._by_port)

    def resolve(self, request: Request) -> Controller | ASGIApp | None:
        target = self._by_port.get(request.url.port) if self._by_port else None  # type: ignore[arg-type]
        if target is None:
            target = self._paths.resolve(request)
            if target is None:
                return None
        if isinstance(target, HTTPProxyHandler):
            return self._face(target, request.url.scheme in _WEBSOCKET_SCHEMES)
        return target

    def _face(self, handler: HTTPProxyHandler, websocket: bool) -> Controller | ASGIApp:
        key = id(handler)
        if websocket:
            app = self._websocket.get(key)
            if app is None:
                app = self._websocket[key] = ASGIApp(handler)
            return app
        controller = self._http.get(key)
        if controller is None:
            controller = self._http[key] = handler.handle
        return controller

    def __repr__(self) -> str:
        return f"EndpointResolver(by_port={self._by_port!r}, by_path={self._paths!r})"
