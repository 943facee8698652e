"""Controller resolvers: the default 404 and routing by path prefix."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ferryman.http import Request, Response
from ferryman.server import (
    ASGIApp,
    DefaultControllerResolver,
    PathPrefixResolver,
    not_found_controller,
)
from ferryman.server.controllers import Receive, Scope, Send
from ferryman.server.resolvers import Target


async def hello(request: Request) -> Response:
    return Response(200)


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    pass


def named(name: str) -> Target:
    async def controller(request: Request) -> Response:
        return Response(200, text=name)

    return controller


def get(path: str) -> Request:
    return Request("GET", f"http://h{path}")


def test_the_default_resolver_answers_404_for_everything() -> None:
    resolver = DefaultControllerResolver()
    assert resolver.resolve(get("/")) is not_found_controller
    assert resolver.resolve(get("/any/thing")) is not_found_controller


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/", "root"),
        ("/apis", "root"),
        ("/api", "api"),
        ("/api/", "api"),
        ("/api/users", "api"),
        ("/api/v2", "v2"),
        ("/api/v2/items/1", "v2"),
        ("/api/v20", "api"),
        ("/app/x", "app"),
        ("/caf%C3%A9/menu", "cafe"),  # matched on the decoded path
    ],
)
def test_the_longest_whole_segment_prefix_wins(path: str, expected: str) -> None:
    targets: dict[str, Target] = {
        "root": named("root"),
        "api": named("api"),
        "v2": named("v2"),
        "cafe": named("cafe"),
        "app": ASGIApp(app),
    }
    resolver = PathPrefixResolver(
        {
            "/": targets["root"],
            "/api/v2/": targets["v2"],
            "/api": targets["api"],
            "/café": targets["cafe"],
            "/app": targets["app"],
        }
    )
    assert resolver.resolve(get(path)) is targets[expected]


def test_without_a_catch_all_unmatched_paths_resolve_to_none() -> None:
    resolver = PathPrefixResolver({"/api": hello})
    assert resolver.resolve(get("/")) is None
    assert resolver.resolve(get("/apix")) is None
    assert resolver.resolve(get("/api/x")) is hello


@pytest.mark.parametrize(
    ("routes", "message"),
    [({"api": hello}, "start with '/'"), ({"/api": hello, "/api/": hello}, "given twice")],
)
def test_bad_route_tables_are_refused(routes: dict[str, Target], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PathPrefixResolver(routes)


def test_repr_shows_the_routes() -> None:
    assert "'/api'" in repr(PathPrefixResolver({"/api/": hello}))


segment = st.sampled_from(["a", "b", "ab", "c"])
prefixes = st.lists(segment, min_size=0, max_size=3).map(lambda parts: "/" + "/".join(parts))


@given(routes=st.sets(prefixes, min_size=1, max_size=6), path=prefixes)
def test_resolution_matches_a_brute_force_search(routes: set[str], path: str) -> None:
    """The resolver's answer is the longest route equal to the path or to a run of its
    leading segments."""
    controllers = {prefix: ASGIApp(app) for prefix in routes}
    resolver = PathPrefixResolver(dict(controllers))

    def covers(prefix: str) -> bool:
        if prefix == "/":
            return True
        return path == prefix or path.startswith(prefix + "/")

    matching = [prefix for prefix in routes if covers(prefix)]
    expected = controllers[max(matching, key=len)] if matching else None
    assert resolver.resolve(get(path)) is expected
