"""Tests for ferryman.http.cookies: the jar's rules, then real exchanges with httpbin."""

from __future__ import annotations

import json
import time
from http.cookiejar import Cookie, CookieJar
from typing import Any
from urllib.parse import quote

import pytest
import trustme
from hypothesis import given
from hypothesis import strategies as st

from ferryman import AsyncConnectionPool
from ferryman.client.transport import create_ssl_context
from ferryman.exceptions import LocalProtocolError
from ferryman.http import URL, Headers, Request, Response
from ferryman.http.cookies import CookieConflict, Cookies, cookies_from_response
from tests.servers.edge import EdgeServer
from tests.servers.httpbin_server import HttpbinServer


def _response(url: str, *set_cookies: str) -> Response:
    return Response(
        200, headers=[("Set-Cookie", value) for value in set_cookies], request=Request("GET", url)
    )


def _sent(cookies: Cookies, url: str) -> dict[str, str]:
    """The cookies a request to ``url`` carries, parsed back from its Cookie header."""
    request = Request("GET", url)
    cookies.set_cookie_header(request)
    header = request.headers.get_list("cookie")
    assert len(header) <= 1
    if not header:
        return {}
    return dict(pair.partition("=")[::2] for pair in header[0].split("; "))


def _stored(cookies: Cookies) -> list[tuple[str, str, str]]:
    return sorted((cookie.name, cookie.domain, cookie.path) for cookie in cookies.jar)


# -- the mapping API -------------------------------------------------------------------------


def test_set_get_and_mapping_view() -> None:
    cookies = Cookies()
    cookies["a"] = "1"
    cookies.set("b", "2", domain="example.com", path="/api")
    assert cookies["a"] == "1"
    assert cookies.get("b") == "2"
    assert cookies.get("b", domain="example.com", path="/api") == "2"
    assert cookies.get("b", path="/other") is None
    assert cookies.get("missing", "fallback") == "fallback"
    assert sorted(cookies) == ["a", "b"]
    assert len(cookies) == 2
    assert dict(cookies) == {"a": "1", "b": "2"}
    with pytest.raises(KeyError):
        cookies["missing"]


@pytest.mark.parametrize(
    "source",
    [{"a": "1", "b": "2"}, [("a", "1"), ("b", "2")], Cookies({"a": "1", "b": "2"})],
)
def test_construct_from_mapping_pairs_or_cookies(source: Any) -> None:
    assert dict(Cookies(source)) == {"a": "1", "b": "2"}


def test_copy_from_cookies_is_independent() -> None:
    original = Cookies({"a": "1"})
    copy = Cookies(original)
    copy["b"] = "2"
    del copy["a"]
    assert dict(original) == {"a": "1"}
    assert dict(copy) == {"b": "2"}


def test_a_cookiejar_is_shared_not_copied() -> None:
    jar = CookieJar()
    cookies = Cookies(jar)
    cookies["a"] = "1"
    assert cookies.jar is jar
    assert [cookie.name for cookie in jar] == ["a"]


def test_update_keeps_domains_of_a_jar_and_sets_plain_pairs_for_any_host() -> None:
    source = Cookies()
    source.extract_cookies(_response("http://example.com/", "a=1; Domain=example.com"))
    cookies = Cookies()
    cookies.update(source)
    cookies.update({"b": "2"})
    cookies.update([("c", "3")])
    assert _stored(cookies) == [("a", ".example.com", "/"), ("b", "", "/"), ("c", "", "/")]


def test_several_cookies_of_one_name_conflict_with_a_clear_message() -> None:
    cookies = Cookies()
    cookies.set("session", "1", domain="a.example")
    cookies.set("session", "2", domain="b.example")
    with pytest.raises(CookieConflict) as caught:
        cookies.get("session")
    message = str(caught.value)
    assert "'a.example'" in message
    assert "'b.example'" in message
    assert "domain=" in message
    with pytest.raises(CookieConflict):
        cookies["session"]
    assert cookies.get("session", domain="b.example") == "2"


def test_domain_argument_finds_the_spellings_the_jar_stores() -> None:
    cookies = Cookies()
    cookies.extract_cookies(_response("http://example.com/", "d=1; Domain=example.com"))
    cookies.extract_cookies(_response("http://localhost:8000/", "h=2"))
    assert cookies.get("d", domain="example.com") == "1"
    assert cookies.get("d", domain=".example.com") == "1"
    assert cookies.get("h", domain="localhost") == "2"
    assert cookies.get("h", domain=".localhost") is None


def test_delete_by_name_domain_and_path() -> None:
    cookies = Cookies()
    cookies.set("a", "1", domain="x.example")
    cookies.set("a", "2", domain="y.example")
    cookies.set("a", "3", domain="y.example", path="/p")
    cookies.delete("a", domain="y.example", path="/p")
    assert _stored(cookies) == [("a", "x.example", "/"), ("a", "y.example", "/")]
    cookies.delete("a", domain="x.example")
    assert cookies["a"] == "2"
    cookies.delete("a")
    assert not cookies
    cookies.delete("a")  # Deleting what is not there is not an error...
    with pytest.raises(KeyError):
        del cookies["a"]  # ...but the mapping protocol says KeyError.


def test_clear_everything_or_by_domain_or_by_path() -> None:
    cookies = Cookies()
    cookies.set("a", "1", domain="x.example")
    cookies.set("b", "2", domain="y.example")
    cookies.set("c", "3", domain="y.example", path="/p")
    cookies.clear(path="/p")
    assert _stored(cookies) == [("a", "x.example", "/"), ("b", "y.example", "/")]
    cookies.clear(domain="x.example")
    assert _stored(cookies) == [("b", "y.example", "/")]
    cookies.clear()
    assert _stored(cookies) == []


def test_repr_shows_names_and_domains_never_values() -> None:
    cookies = Cookies()
    cookies.set("session", "s3cr3t-value", domain="example.com")
    cookies["token"] = "another-s3cr3t"
    text = repr(cookies)
    assert "session" in text
    assert "example.com" in text
    assert "token" in text
    assert "s3cr3t" not in text


@pytest.mark.parametrize(
    ("name", "value"),
    [("bad name", "v"), ("", "v"), ("a;b", "v"), ("a", "v;injected=1"), ("a", "v\r\nX: y")],
)
def test_set_refuses_what_would_break_the_cookie_header(name: str, value: str) -> None:
    with pytest.raises(LocalProtocolError) as caught:
        Cookies().set(name, value)
    assert "injected" not in str(caught.value)
    assert "X: y" not in str(caught.value)


class _UncountableJar(CookieJar):
    def __len__(self) -> int:
        raise AssertionError("CookieJar.__len__ walks every cookie; __bool__ must not use it")


def test_bool_does_not_count_the_jar() -> None:
    cookies = Cookies(_UncountableJar())
    assert not cookies
    cookies["a"] = "1"
    assert cookies
    cookies.delete("a")
    assert not cookies  # The jar keeps empty per-domain maps behind: still false.


def test_bool_sees_every_way_into_the_jar() -> None:
    cookies = Cookies()
    assert not cookies
    cookies.jar.set_cookie(Cookie(
        0, "direct", "1", None, False, "", False, False, "/", True,
        False, None, True, None, None, {},
    ))  # fmt: skip
    assert cookies
    cookies.clear()
    assert not cookies
    cookies.extract_cookies(_response("http://example.com/", "a=1"))
    assert cookies


# -- rules: domain ---------------------------------------------------------------------------


def test_host_only_cookie_goes_back_to_that_host_only() -> None:
    cookies = Cookies()
    cookies.extract_cookies(_response("http://example.com/", "h=1"))
    assert _stored(cookies) == [("h", "example.com", "/")]
    assert _sent(cookies, "http://example.com/x") == {"h": "1"}
    assert _sent(cookies, "http://www.example.com/x") == {}
    assert _sent(cookies, "http://other.com/x") == {}


def test_domain_cookie_goes_to_the_domain_and_its_subdomains() -> None:
    cookies = Cookies()
    cookies.extract_cookies(_response("http://www.example.com/", "d=1; Domain=example.com"))
    assert _sent(cookies, "http://example.com/") == {"d": "1"}
    assert _sent(cookies, "http://a.b.example.com/") == {"d": "1"}
    assert _sent(cookies, "http://notexample.com/") == {}
    assert _sent(cookies, "http://example.com.evil/") == {}


@pytest.mark.parametrize(
    "set_cookie",
    ["x=1; Domain=other.com", "x=1; Domain=www.example.com.evil", "x=1; Domain=com"],
)
def test_a_domain_the_host_is_not_in_is_refused(set_cookie: str) -> None:
    cookies = Cookies()
    cookies.extract_cookies(_response("http://www.example.com/", set_cookie))
    assert not cookies


# -- rules: localhost and IP addresses -------------------------------------------------------


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "[::1]"])
def test_host_only_cookies_of_local_hosts_round_trip(host: str) -> None:
    cookies = Cookies()
    cookies.extract_cookies(_response(f"http://{host}:8000/login", "s=1; Path=/"))
    assert _sent(cookies, f"http://{host}:9000/anything") == {"s": "1"}


def test_domain_localhost_round_trips_and_covers_subdomains() -> None:
    cookies = Cookies()
    cookies.extract_cookies(_response("http://localhost:8000/", "d=1; Domain=localhost"))
    assert _sent(cookies, "http://localhost:8000/") == {"d": "1"}
    assert _sent(cookies, "http://app.localhost:8000/") == {"d": "1"}
    assert _sent(cookies, "http://127.0.0.1:8000/") == {}


def test_localhost_and_127_0_0_1_are_different_hosts() -> None:
    cookies = Cookies()
    cookies.extract_cookies(_response("http://localhost:8000/", "l=1"))
    cookies.extract_cookies(_response("http://127.0.0.1:8000/", "i=2"))
    assert _sent(cookies, "http://localhost/") == {"l": "1"}
    assert _sent(cookies, "http://127.0.0.1/") == {"i": "2"}


def test_domain_ip_address_round_trips() -> None:
    cookies = Cookies()
    cookies.extract_cookies(_response("http://127.0.0.1:8000/", "d=1; Domain=127.0.0.1"))
    assert _sent(cookies, "http://127.0.0.1:8001/") == {"d": "1"}
    assert _sent(cookies, "http://127.0.0.2:8000/") == {}


# -- rules: path -----------------------------------------------------------------------------


def test_path_matching() -> None:
    cookies = Cookies()
    cookies.extract_cookies(_response("http://example.com/", "p=1; Path=/api"))
    assert _sent(cookies, "http://example.com/api") == {"p": "1"}
    assert _sent(cookies, "http://example.com/api/v1/items") == {"p": "1"}
    assert _sent(cookies, "http://example.com/apix") == {}
    assert _sent(cookies, "http://example.com/") == {}


def test_default_path_is_the_directory_of_the_request() -> None:
    cookies = Cookies()
    cookies.extract_cookies(_response("http://example.com/a/b/c?q=1", "p=1"))
    assert _stored(cookies) == [("p", "example.com", "/a/b")]
    assert _sent(cookies, "http://example.com/a/b/d") == {"p": "1"}
    assert _sent(cookies, "http://example.com/a/x") == {}


# -- rules: expiry ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "deletion",
    ["s=; Max-Age=0; Path=/", "s=; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/"],
)
def test_max_age_zero_or_a_past_expiry_deletes(deletion: str) -> None:
    cookies = Cookies()
    cookies.extract_cookies(_response("http://example.com/", "s=1; Path=/", "t=2; Path=/"))
    cookies.extract_cookies(_response("http://example.com/", deletion))
    assert _stored(cookies) == [("t", "example.com", "/")]


def test_deletion_only_hits_the_same_domain_and_path() -> None:
    cookies = Cookies()
    cookies.extract_cookies(_response("http://example.com/", "s=1; Path=/api"))
    cookies.extract_cookies(_response("http://example.com/", "s=; Max-Age=0; Path=/"))
    assert _stored(cookies) == [("s", "example.com", "/api")]


def test_max_age_sets_an_expiry_in_the_future() -> None:
    cookies = Cookies()
    cookies.extract_cookies(_response("http://example.com/", "m=1; Max-Age=3600"))
    (cookie,) = cookies.jar
    assert cookie.expires is not None
    assert cookie.expires > time.time()


def test_an_expired_cookie_is_never_sent() -> None:
    cookies = Cookies()
    cookies.set("fresh", "1", domain="example.com")
    expired = Cookie(
        0, "stale", "1", None, False, "example.com", True, False, "/", True,
        False, int(time.time()) - 60, False, None, None, {},
    )  # fmt: skip
    cookies.jar.set_cookie(expired)
    assert _sent(cookies, "http://example.com/") == {"fresh": "1"}


# -- rules: Secure and HttpOnly --------------------------------------------------------------


def test_secure_cookie_only_over_https() -> None:
    cookies = Cookies()
    cookies.extract_cookies(_response("https://example.com/", "s=1; Secure", "p=2"))
    assert _sent(cookies, "https://example.com/") == {"s": "1", "p": "2"}
    assert _sent(cookies, "http://example.com/") == {"p": "2"}
    assert _sent(cookies, "wss://example.com/") == {"s": "1", "p": "2"}


def test_httponly_is_kept_on_the_cookie() -> None:
    cookies = Cookies()
    cookies.extract_cookies(_response("http://example.com/", "h=1; HttpOnly", "n=2"))
    flags = {cookie.name: cookie.has_nonstandard_attr("HttpOnly") for cookie in cookies.jar}
    assert flags == {"h": True, "n": False}


# -- the Cookie header -----------------------------------------------------------------------


def test_a_cookie_header_set_by_the_caller_wins() -> None:
    cookies = Cookies({"jar": "1"})
    request = Request("GET", "http://example.com/", headers={"Cookie": "mine=2"})
    cookies.set_cookie_header(request)
    assert request.headers.get_list("cookie") == ["mine=2"]


def test_set_cookie_header_on_headers_being_assembled() -> None:
    cookies = Cookies()
    cookies.extract_cookies(_response("http://example.com/", "a=1"))
    headers = Headers({"Accept": "*/*"})
    cookies.set_cookie_header_on(headers, URL("http://example.com/x"))
    assert headers.get_list("cookie") == ["a=1"]


def test_an_empty_jar_adds_no_header() -> None:
    request = Request("GET", "http://example.com/")
    before = request.headers.raw
    Cookies().set_cookie_header(request)
    assert request.headers.raw == before


def test_userinfo_in_the_url_does_not_hide_the_host() -> None:
    cookies = Cookies()
    cookies.extract_cookies(_response("http://user:pw@example.com/", "a=1"))
    assert _stored(cookies) == [("a", "example.com", "/")]
    assert _sent(cookies, "http://other:pw@example.com/") == {"a": "1"}


# -- responses -------------------------------------------------------------------------------


def test_cookies_from_response_holds_only_that_response() -> None:
    response = _response("http://example.com/", "a=1", "b=2; Domain=evil.com")
    cookies = cookies_from_response(response)
    assert dict(cookies) == {"a": "1"}


def test_a_response_without_set_cookie_is_ignored_without_request_refused() -> None:
    cookies = Cookies({"k": "v"})
    cookies.extract_cookies(Response(200, headers={"Content-Type": "text/plain"}))
    assert dict(cookies) == {"k": "v"}
    with pytest.raises(ValueError, match="request"):
        Cookies().extract_cookies(Response(200, headers={"Set-Cookie": "a=1"}))


# -- properties ------------------------------------------------------------------------------

_TOKEN = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# RFC 6265 cookie-octet: no controls, whitespace, DQUOTE, comma, semicolon or backslash.
_COOKIE_OCTETS = "".join(
    chr(code) for code in range(0x21, 0x7F) if chr(code) not in {'"', ",", ";", "\\"}
)
_names = st.text(alphabet=_TOKEN, min_size=1, max_size=20)
_values = st.text(alphabet=_COOKIE_OCTETS, max_size=40)


@given(st.dictionaries(_names, _values, min_size=1, max_size=5))
def test_set_cookie_values_round_trip_to_the_cookie_header(pairs: dict[str, str]) -> None:
    cookies = Cookies()
    response = _response("http://example.com/", *(f"{n}={v}; Path=/" for n, v in pairs.items()))
    cookies.extract_cookies(response)
    assert dict(cookies) == pairs
    assert _sent(cookies, "http://example.com/") == pairs


@given(st.dictionaries(_names, _values, max_size=5))
def test_set_and_send_round_trip(pairs: dict[str, str]) -> None:
    cookies = Cookies(pairs)
    assert bool(cookies) == bool(pairs)
    # Set without a domain: sent to every host, as with httpx's and requests' cookies=.
    assert _sent(cookies, "http://example.com/") == pairs
    assert _sent(cookies, "http://127.0.0.1:8000/") == pairs


# -- real exchanges with httpbin -------------------------------------------------------------


async def _fetch(pool: AsyncConnectionPool, cookies: Cookies, url: str, **kwargs: Any) -> Any:
    """One exchange, the way the session client does it: Cookie header out, Set-Cookie in."""
    request = Request("GET", url, **kwargs)
    cookies.set_cookie_header(request)
    response = await pool.handle_async_request(request)
    await response.aread()
    cookies.extract_cookies(response)
    return response


def _json(response: Response) -> Any:
    return json.loads(response.content)


def _set_header_url(base: str, set_cookie: str) -> str:
    """An httpbin URL whose response carries ``Set-Cookie: <set_cookie>``."""
    return f"{base}/response-headers?Set-Cookie={quote(set_cookie)}"


async def test_httpbin_sets_then_echoes_a_cookie(httpbin: HttpbinServer) -> None:
    cookies = Cookies()
    async with AsyncConnectionPool() as pool:
        response = await _fetch(pool, cookies, f"{httpbin.url}/cookies/set?flavour=oatmeal")
        assert response.status_code == 302
        assert dict(cookies_from_response(response)) == {"flavour": "oatmeal"}
        assert dict(cookies) == {"flavour": "oatmeal"}
        echoed = await _fetch(pool, cookies, f"{httpbin.url}/cookies")
    assert _json(echoed) == {"cookies": {"flavour": "oatmeal"}}


async def test_httpbin_deletes_a_cookie(httpbin: HttpbinServer) -> None:
    cookies = Cookies()
    async with AsyncConnectionPool() as pool:
        await _fetch(pool, cookies, f"{httpbin.url}/cookies/set?a=1&b=2")
        assert dict(cookies) == {"a": "1", "b": "2"}
        await _fetch(pool, cookies, f"{httpbin.url}/cookies/delete?a")
        assert dict(cookies) == {"b": "2"}
        await _fetch(pool, cookies, f"{httpbin.url}/cookies/delete?b")
        assert not cookies
        echoed = await _fetch(pool, cookies, f"{httpbin.url}/cookies")
    assert _json(echoed) == {"cookies": {}}
    assert "cookie" not in echoed.request.headers


async def test_httpbin_over_localhost(httpbin: HttpbinServer) -> None:
    cookies = Cookies()
    local = f"http://localhost:{httpbin.port}"
    async with AsyncConnectionPool() as pool:
        await _fetch(pool, cookies, f"{local}/cookies/set?host=only")
        await _fetch(pool, cookies, _set_header_url(local, "dom=ain; Domain=localhost; Path=/"))
        by_name = await _fetch(pool, cookies, f"{local}/cookies")
        by_ip = await _fetch(pool, cookies, f"{httpbin.url}/cookies")
    assert _json(by_name) == {"cookies": {"host": "only", "dom": "ain"}}
    assert _json(by_ip) == {"cookies": {}}


async def test_httpbin_path_and_max_age(httpbin: HttpbinServer) -> None:
    cookies = Cookies()
    async with AsyncConnectionPool() as pool:
        await _fetch(pool, cookies, _set_header_url(httpbin.url, "scoped=1; Path=/cookies"))
        await _fetch(pool, cookies, _set_header_url(httpbin.url, "short=1; Path=/"))
        elsewhere = await _fetch(pool, cookies, f"{httpbin.url}/anything")
        await _fetch(pool, cookies, _set_header_url(httpbin.url, "short=; Max-Age=0; Path=/"))
        echoed = await _fetch(pool, cookies, f"{httpbin.url}/cookies")
    assert _json(elsewhere)["headers"]["Cookie"] == "short=1"
    assert _json(echoed) == {"cookies": {"scoped": "1"}}


async def test_httpbin_sees_the_callers_cookie_header_only(httpbin: HttpbinServer) -> None:
    cookies = Cookies()
    async with AsyncConnectionPool() as pool:
        await _fetch(pool, cookies, f"{httpbin.url}/cookies/set?jar=1")
        echoed = await _fetch(pool, cookies, f"{httpbin.url}/cookies", headers={"Cookie": "mine=2"})
    assert _json(echoed) == {"cookies": {"mine": "2"}}


async def test_secure_cookie_is_sent_over_https_only(
    httpbin: HttpbinServer, tls_edge: EdgeServer, ca: trustme.CA
) -> None:
    cookies = Cookies()
    context = create_ssl_context()
    ca.configure_trust(context)
    async with AsyncConnectionPool() as pool, AsyncConnectionPool(ssl_context=context) as tls:
        # Both servers are 127.0.0.1: cookies do not care about ports.
        await _fetch(pool, cookies, _set_header_url(httpbin.url, "s=1; Secure; Path=/"))
        await _fetch(pool, cookies, _set_header_url(httpbin.url, "p=2; Path=/"))
        over_http = await _fetch(pool, cookies, f"{httpbin.url}/cookies")
        over_https = await _fetch(tls, cookies, f"{tls_edge.url}/echo")
    assert _json(over_http) == {"cookies": {"p": "2"}}
    sent = [value for name, value in _json(over_https)["headers"] if name.lower() == "cookie"]
    assert len(sent) == 1
    assert sorted(sent[0].split("; ")) == ["p=2", "s=1"]
