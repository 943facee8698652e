"""The upstream's own URLs in answers, turned into the proxy's (``redirect_rewrite``)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ferryman.http.url import URL
from ferryman.proxy.headers import NO_RULES, DownstreamHead, HeaderRules, plain_response_lines
from ferryman.proxy.redirects import UpstreamRedirects, client_host, relocate
from ferryman.proxy.rewrite import Rewrite

UPSTREAM = UpstreamRedirects.for_url(URL("http://Backend.internal/v1"))


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        (b"http://backend.internal/v1/login?next=%2F", b"https://proxy.test:8443/login?next=%2F"),
        (b"HTTP://BACKEND.INTERNAL:80/v1/a#top", b"https://proxy.test:8443/a#top"),
        (b"http://backend.internal/v1", b"https://proxy.test:8443/"),
        (b"http://backend.internal/v1?q=1", b"https://proxy.test:8443/?q=1"),
        (b"//backend.internal/v1/x", b"//proxy.test:8443/x"),
        # not the upstream's, or not under its base path: unchanged
        (b"http://backend.internal/v10/x", None),
        (b"http://backend.internal/other", None),
        (b"https://backend.internal/v1/x", None),
        (b"http://backend.internal:8080/v1/x", None),
        (b"http://user@backend.internal/v1/x", None),
        (b"http://elsewhere.test/v1/x", None),
        (b"/v1/relative", None),
        (b"relative", None),
        (b"", None),
    ],
)
def test_the_upstreams_urls_become_the_proxys(location: bytes, expected: bytes | None) -> None:
    assert UPSTREAM.proxy_url(location, "https", b"proxy.test:8443") == expected


def test_a_port_that_is_not_the_default_must_match() -> None:
    redirects = UpstreamRedirects.for_url(URL("http://127.0.0.1:9000"))
    assert redirects.proxy_url(b"http://127.0.0.1:9000/a", "http", b"p") == b"http://p/a"
    assert redirects.proxy_url(b"http://127.0.0.1/a", "http", b"p") is None
    https = UpstreamRedirects.for_url(URL("https://api.test"))
    assert https.proxy_url(b"https://api.test:443/a", "http", b"p") == b"http://p/a"


def test_without_a_usable_host_the_path_alone_is_given() -> None:
    assert UPSTREAM.proxy_url(b"http://backend.internal/v1/x", "http", None) == b"/x"


def test_a_rewrite_is_undone() -> None:
    """``rewrite: {from: /api, to: /v2}``: the upstream's /v2/x is the proxy's /api/x; a path
    outside /v2 is the proxy's as it is, unless every proxy path there is rewritten."""
    redirects = UpstreamRedirects.for_url(URL("http://b"), Rewrite("/api", "/v2"))
    assert redirects.proxy_url(b"http://b/v2/x?q", "http", b"p") == b"http://p/api/x?q"
    assert redirects.proxy_url(b"http://b/v2", "http", b"p") == b"http://p/api"
    assert redirects.proxy_url(b"http://b/other", "http", b"p") == b"http://p/other"
    assert redirects.proxy_url(b"http://b/api/x", "http", b"p") is None
    mounted = UpstreamRedirects.for_url(URL("http://b/base"), Rewrite("/maps", "/"))
    assert mounted.proxy_url(b"http://b/base/y", "http", b"p") == b"http://p/maps/y"
    assert mounted.proxy_url(b"http://b/base", "http", b"p") == b"http://p/maps"


_SEGMENT = st.sampled_from(["a", "v1", "v2", "api", "maps", "x", "%2F", ""])
_PATHS = st.lists(_SEGMENT, max_size=4).map(lambda segments: "/" + "/".join(segments))
_QUERIES = st.sampled_from(["", "?q=1", "#f", "?"])


@given(
    base=st.sampled_from(["", "/v1", "/v1/deeper"]),
    rewrite=st.sampled_from([None, ("/api", "/"), ("/api", "/v2"), ("/maps/v1", "/x")]),
    path=_PATHS,
    query=_QUERIES,
)
def test_a_rewritten_url_leads_back_to_the_same_upstream_url(
    base: str, rewrite: tuple[str, str] | None, path: str, query: str
) -> None:
    """Whatever the proxy's path for an upstream URL, asking the proxy for it reaches that
    upstream URL again: the rewrite is the way in undone."""
    rule = Rewrite(*rewrite) if rewrite is not None else None

    def way_in(url: bytes) -> bytes:  # (what the relay sends upstream when a client asks url)
        target = url.split(b"#", 1)[0]  # (a client keeps the fragment to itself)
        return base.encode() + (rule.apply(target) if rule is not None else target)

    redirects = UpstreamRedirects.for_url(URL("http://backend" + base), rule)
    upstream_url = way_in((path + query).encode())
    proxied = redirects.proxy_url(b"http://backend" + upstream_url, "http", b"proxy")
    assert proxied is not None  # every URL a client can reach has a proxy URL
    assert proxied.startswith(b"http://proxy/")
    asked = way_in(proxied[len(b"http://proxy") :])
    assert asked.rstrip(b"/") == upstream_url.split(b"#", 1)[0].rstrip(b"/")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"0; url=http://b/v1/x", b"0; url=http://p/x"),
        (b"5;URL='http://b/v1/x'", b"5;URL='http://p/x'"),
        (b'3, url="http://b/v1/x" ', b'3, url="http://p/x" '),
        (b"1 http://b/v1/x", b"1 http://p/x"),
        (b"10", b"10"),
        (b"0; url=http://other/x", b"0; url=http://other/x"),
    ],
)
def test_a_refreshs_url_is_rewritten_in_place(value: bytes, expected: bytes) -> None:
    redirects = UpstreamRedirects.for_url(URL("http://b/v1"))
    assert relocate(value, lambda url: redirects.proxy_url(url, "http", b"p"), True) == expected


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([(b"HOST", b"proxy.test:8443")], b"proxy.test:8443"),
        ([(b"Host", b"[2001:db8::1]:80")], b"[2001:db8::1]:80"),
        ([(b"Host", b"evil.test/path")], None),
        ([(b"Host", b"a b")], None),
        ([(b"Host", b"a@b")], None),
        ([], None),
    ],
)
def test_the_clients_host_is_used_when_it_fits_in_a_url(
    headers: list[tuple[bytes, bytes]], expected: bytes | None
) -> None:
    assert client_host(headers) == expected


# -- in the head builder -------------------------------------------------------------------------


def locate(url: bytes) -> bytes | None:
    return UPSTREAM.proxy_url(url, "http", b"proxy.test")


def test_the_head_builder_rewrites_location_content_location_and_refresh() -> None:
    head = DownstreamHead(NO_RULES, locate)
    for name, value in [
        (b"Location", b"http://backend.internal/v1/next"),
        (b"content-location", b"http://backend.internal/v1/doc"),
        (b"Refresh", b"0; url=http://backend.internal/v1/later"),
        (b"Link", b"<http://backend.internal/v1/a>"),  # not a redirect: as it is
        (b"Location", b"/relative"),
    ]:
        head.add(name, value)
    assert head.pairs() == [
        (b"Location", b"http://proxy.test/next"),
        (b"content-location", b"http://proxy.test/doc"),
        (b"Refresh", b"0; url=http://proxy.test/later"),
        (b"Link", b"<http://backend.internal/v1/a>"),
        (b"Location", b"/relative"),
        (b"Via", b"1.1 ferryman"),
    ]


def test_redirect_rewriting_can_be_switched_off() -> None:
    head = DownstreamHead(HeaderRules(redirects=False), locate)
    head.add(b"Location", b"http://backend.internal/v1/next")
    assert head.lines() == b"Location: http://backend.internal/v1/next\r\nVia: 1.1 ferryman\r\n"
    removed = DownstreamHead(HeaderRules(remove=["Location"]), locate)
    removed.add(b"Location", b"http://backend.internal/v1/next")
    assert removed.lines() == b"Via: 1.1 ferryman\r\n"


def test_a_long_head_with_a_url_to_rewrite_takes_the_per_header_way() -> None:
    head = b"HTTP/1.1 302 Found\r\nX-Pad: " + b"p" * 600 + b"\r\nlocation: http://b/\r\n"
    assert plain_response_lines(head) is None
    lines = plain_response_lines(head, HeaderRules(redirects=False))
    assert lines is not None and b"location: http://b/\r\n" in lines[1]
