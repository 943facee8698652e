"""EndpointResolver: by arrival port first, then by path prefix, segment-wise, longest first."""

from __future__ import annotations

from typing import Any

import pytest

from ferryman.http import Request, Response
from ferryman.http.streams import EMPTY_STREAM
from ferryman.proxy import HTTPProxyHandler, ProxyContext
from ferryman.proxy.resolver import EndpointResolver
from ferryman.server import ASGIApp, request_from_scope
from tests.server.helpers import http_scope


def request(path: str, port: int = 8000, kind: str = "http") -> Request:
    scope = http_scope(path, server=("127.0.0.1", port))
    if kind == "websocket":
        scope.update(type="websocket", scheme="ws")
    return request_from_scope(scope, EMPTY_STREAM, {})


def handler(name: str) -> HTTPProxyHandler:
    return HTTPProxyHandler(ProxyContext(url="http://upstream.test"), name=name)


async def other(request: Request) -> Response:
    return Response(200)


def test_the_arrival_port_wins_over_the_path() -> None:
    by_port, by_path = handler("port"), handler("path")
    resolver = EndpointResolver({4000: by_port}, {"/api": by_path})
    assert resolver.resolve(request("/api/x", port=4000)) == by_port.handle
    assert resolver.resolve(request("/api/x", port=8000)) == by_path.handle
    assert resolver.resolve(request("/other", port=8000)) is None


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/api", "api"),
        ("/api/users", "users"),
        ("/api/users/1", "users"),
        ("/api/usersx", "api"),
        ("/apis", None),
        ("/", None),
    ],
)
def test_path_prefixes_match_whole_segments_longest_first(path: str, expected: str | None) -> None:
    handlers = {"api": handler("api"), "users": handler("users")}
    resolver = EndpointResolver(by_path={"/api": handlers["api"], "/api/users/": handlers["users"]})
    resolved = resolver.resolve(request(path))
    if expected is None:
        assert resolved is None
    else:
        assert resolved == handlers[expected].handle


def test_websocket_handshakes_get_the_handler_as_an_asgi_app() -> None:
    target = handler("ws")
    resolver = EndpointResolver(by_path={"/ws": target})
    app = resolver.resolve(request("/ws/chat", kind="websocket"))
    assert isinstance(app, ASGIApp) and app.app is target
    assert resolver.resolve(request("/ws/chat", kind="websocket")) is app  # built once


def test_port_zero_routes_once_bound() -> None:
    target = handler("dyn")
    resolver = EndpointResolver({0: target})
    assert resolver.resolve(request("/x", port=45678)) is None
    resolver.bind_port("dyn", 45678)
    assert resolver.resolve(request("/x", port=45678)) == target.handle
    resolver.bind_port(target, 45679)  # moved: the old port is forgotten
    assert resolver.resolve(request("/x", port=45678)) is None
    assert resolver.ports == {45679: target}
    with pytest.raises(KeyError, match="nope"):
        resolver.bind_port("nope", 1)


def test_other_targets_are_returned_as_they_are() -> None:
    app = ASGIApp(lambda scope, receive, send: None)  # type: ignore[arg-type, return-value]
    targets: dict[str, Any] = {"/c": other, "/a": app}
    resolver = EndpointResolver(by_path=targets, names={"c": other})
    assert resolver.resolve(request("/c/1")) is other
    assert resolver.resolve(request("/a")) is app
    resolver.bind_port("c", 9000)
    assert resolver.resolve(request("/zzz", port=9000)) is other


def test_guards_wrap_every_mount_before_and_after_them_but_no_endpoint() -> None:
    """How the dashboard's auth covers /api and /metrics whichever application mounts first."""
    handler = HTTPProxyHandler(ProxyContext(url="http://upstream.test"), name="maps")
    resolver = EndpointResolver(by_path={"/maps": handler})

    async def api(scope: Any, receive: Any, send: Any) -> None: ...

    async def metrics(scope: Any, receive: Any, send: Any) -> None: ...

    wrapped: list[Any] = []

    def guard(target: Any) -> Any:
        wrapped.append(target)
        return ASGIApp(("guarded", target.app))  # type: ignore[arg-type]

    resolver.mount("/api", ASGIApp(api))
    resolver.guard(guard)
    resolver.mount("/metrics", ASGIApp(metrics))
    assert resolver.resolve(request("/api/x")).app == ("guarded", api)  # type: ignore[union-attr]
    assert resolver.resolve(request("/metrics")).app == ("guarded", metrics)  # type: ignore[union-attr]
    assert resolver.resolve(request("/maps/x")) == handler.handle
    assert [target.app for target in wrapped] == [api, metrics]
