"""Controller resolvers: which controller (or mounted ASGI app) answers a request.

``resolve`` is synchronous on purpose: it runs for every request, and choosing a controller
should be a look-up, not I/O. Anything that needs I/O to decide belongs in a controller or in an
``EVENT_CORE_REQUEST`` listener.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, TypeAlias

from ferryman.http.models import Request
from ferryman.server.controllers import ASGIApp, Controller, not_found_controller

__all__ = ["ControllerResolver", "DefaultControllerResolver", "PathPrefixResolver", "Target"]

#: What a resolver may route a request to.
Target: TypeAlias = Controller | ASGIApp


class ControllerResolver(Protocol):
    """Chooses what answers a request; ``None`` lets the kernel answer 404."""

    def resolve(self, request: Request) -> Target | None: ...


class DefaultControllerResolver:
    """Answers every request with a JSON 404: the resolver of a kernel nothing is mounted on."""

    __slots__ = ()

    def resolve(self, request: Request) -> Target | None:
        return not_found_controller


class PathPrefixResolver:
    """Routes on the request path by prefix; the longest matching prefix wins.

    Prefixes match whole path segments: ``/api`` takes ``/api`` and ``/api/users`` but not
    ``/apis``, so a route never captures a sibling by accident. ``/`` takes everything no longer
    prefix does. Matching uses the decoded path, the one the controller and mounted apps see.
    """

    __slots__ = ("_routes",)

    def __init__(self, routes: Mapping[str, Target]) -> None:
        normalized: dict[str, Target] = {}
        for prefix, target in routes.items():
            if not prefix.startswith("/"):
                raise ValueError(f"route prefixes start with '/': {prefix!r}")
            key = prefix.rstrip("/")
            if key in normalized:
                raise ValueError(f"route prefix {prefix!r} is given twice")
            normalized[key] = target
        # Longest first, so the first match is the most specific one.
        self._routes = sorted(normalized.items(), key=lambda item: len(item[0]), reverse=True)

    def resolve(self, request: Request) -> Target | None:
        path = request.url.path
        for prefix, target in self._routes:
            if path.startswith(prefix) and (len(path) == len(prefix) or path[len(prefix)] == "/"):
                return target
        return None

    def __repr__(self) -> str:
        return f"PathPrefixResolver({dict(self._routes)!r})"
