"""ProxyContext: upstream URLs, the session it builds or is given, per-request copies."""

from __future__ import annotations

import pytest

import ferryman
from ferryman.http import Request
from ferryman.proxy import ProxyContext


def test_urls_are_checked_and_kept_in_order() -> None:
    ctx = ProxyContext(url=["http://a.test/v1", ferryman.URL("https://b.test")])
    assert [str(u) for u in ctx.urls] == ["http://a.test/v1", "https://b.test"]
    assert str(ctx.url) == "http://a.test/v1"
    for bad in ("/relative", "ftp://a.test", "http://a.test/?q=1", []):
        with pytest.raises(ValueError):
            ProxyContext(url=bad)  # type: ignore[arg-type]


async def test_the_default_session_is_built_once_for_relaying_and_closed() -> None:
    ctx = ProxyContext(url="http://a.test")
    session = ctx.session
    assert ctx.session is session
    assert (session.decompress, session.store_cookies) == (False, False)
    assert ctx.for_request(Request("GET", "http://proxy.test/")).session is session
    await ctx.aclose()
    assert session.is_closed


async def test_a_factory_builds_the_session_and_an_attached_one_stays_open() -> None:
    built: list[ferryman.AsyncClient] = []

    def factory() -> ferryman.AsyncClient:
        built.append(ferryman.AsyncClient(trust_env=False))
        return built[-1]

    ctx = ProxyContext(url="http://a.test", session_factory=factory)
    assert ctx.session is built[0] and ctx.session is built[0]
    await ctx.aclose()
    assert built[0].is_closed

    async with ferryman.AsyncClient(trust_env=False) as shared:
        attached = ProxyContext(url="http://a.test")
        attached.attach_session(shared)
        assert attached.session is shared
        await attached.aclose()
        assert not shared.is_closed


def test_each_request_gets_its_own_context_and_a_copy_of_the_state() -> None:
    shared = ["kept by reference"]
    ctx = ProxyContext(url="http://a.test", state={"tier": "gold", "shared": shared})
    inbound = Request("GET", "http://proxy.test/x")
    first = ctx.for_request(inbound, "api")
    second = ctx.for_request(inbound, "api")
    assert first is not second and first.is_request_context and not ctx.is_request_context
    assert (first.request, first.endpoint, first.response, first.upstream_request) == (
        inbound,
        "api",
        None,
        None,
    )
    first.state["tier"] = "changed"
    first.state["new"] = 1
    assert second.state == {"tier": "gold", "shared": shared}
    assert ctx.state == {"tier": "gold", "shared": shared}
    # A shallow copy: values are shared (services, locks), keys are per request.
    assert second.state["shared"] is shared
