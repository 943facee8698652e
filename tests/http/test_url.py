"""Tests for ferryman.http.url: parsing, encoding, errors, join, copies and QueryParams."""

from __future__ import annotations

import ipaddress
import pickle
import re
import string
from urllib.parse import urljoin

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from ferryman.exceptions import InvalidURL
from ferryman.http.url import URL, QueryParams

# -- parsing ---------------------------------------------------------------------------------


def test_full_url_components() -> None:
    url = URL("HTTPS://User:p%40ss@Example.COM:8443/a%2Fb/c?x=1&y=2#Frag")
    assert url.scheme == "https"
    assert url.userinfo == b"User:p%40ss"
    assert url.username == "User"
    assert url.password == "p@ss"
    assert url.host == "example.com"
    assert url.raw_host == b"example.com"
    assert url.port == 8443
    assert url.effective_port == 8443
    assert url.netloc == b"example.com:8443"
    assert url.path == "/a/b/c"
    assert url.raw_path == b"/a%2Fb/c?x=1&y=2"
    assert url.query == b"x=1&y=2"
    assert url.fragment == "Frag"
    assert str(url) == "https://User:p%40ss@example.com:8443/a%2Fb/c?x=1&y=2#Frag"


def test_non_ascii_and_space_in_path_are_utf8_percent_encoded() -> None:
    url = URL("http://a/ä b")
    assert url.raw_path == b"/%C3%A4%20b"
    assert url.path == "/ä b"
    assert str(url) == "http://a/%C3%A4%20b"


@pytest.mark.parametrize(
    "target",
    ["/a%2Fb", "/%7e/%7E/x", "/a%20b%2fc", "/%C3%A4?q=%2F%26%3D", "/a%2Fb?x=%ZZ%25"],
)
def test_existing_escapes_are_kept_byte_for_byte(target: str) -> None:
    # "%ZZ" is not an escape, so that one "%" (and only it) gets encoded.
    expected = target.replace("%ZZ", "%25ZZ").encode("ascii")
    assert URL("http://proxy.test" + target).raw_path == expected
    assert URL(target).raw_path == expected


@pytest.mark.parametrize(
    ("given", "raw_path"),
    [
        ("http://a/100%", b"/100%25"),
        ("http://a/%zz", b"/%25zz"),
        ("http://a/%4", b"/%254"),
        ('http://a/"<>`{}|\\^', b"/%22%3C%3E%60%7B%7D%7C%5C%5E"),
        ("http://a/[x]:@!$&'()*+,;=", b"/[x]:@!$&'()*+,;="),
        ("http://a/?q=a b&r=ä", b"/?q=a%20b&r=%C3%A4"),
        ("http://a/?a[]=1&b=/?:@", b"/?a[]=1&b=/?:@"),
        ("http://a/?", b"/?"),
        ("http://a/%2f x%7E", b"/%2f%20x%7E"),
    ],
)
def test_encoding_only_touches_what_must_be_encoded(given: str, raw_path: bytes) -> None:
    assert URL(given).raw_path == raw_path


def test_fragment_is_encoded_and_decoded() -> None:
    url = URL("http://a/#frag ment/ä")
    assert str(url) == "http://a/#frag%20ment/%C3%A4"
    assert url.fragment == "frag ment/ä"
    assert url.raw_path == b"/"


def test_userinfo_with_unencoded_at_sign_uses_last_at_as_separator() -> None:
    url = URL("http://user:p@ss@host/")
    assert url.host == "host"
    assert url.userinfo == b"user:p%40ss"
    assert url.password == "p@ss"


def test_username_without_password() -> None:
    url = URL("http://user@host/")
    assert url.username == "user"
    assert url.password == ""
    assert repr(url) == "URL('http://user@host/')"


def test_ipv6_host() -> None:
    url = URL("http://[2001:DB8::1]:8080/x")
    assert url.host == "2001:db8::1"
    assert url.raw_host == b"2001:db8::1"
    assert url.port == 8080
    assert url.netloc == b"[2001:db8::1]:8080"
    assert str(url) == "http://[2001:db8::1]:8080/x"
    assert URL("http://[::1]").netloc == b"[::1]"


def test_idna_host_is_encoded_for_the_wire_and_decoded_for_display() -> None:
    url = URL("http://Bücher.DE/")
    assert url.host == "bücher.de"
    assert url.raw_host == b"xn--bcher-kva.de"
    assert str(url) == "http://xn--bcher-kva.de/"
    assert url.origin == ("http", b"xn--bcher-kva.de", 80)


def test_punycode_host_is_decoded_for_display() -> None:
    url = URL("https://XN--BCHER-KVA.de/")
    assert url.host == "bücher.de"
    assert url.raw_host == b"xn--bcher-kva.de"
    assert URL("http://例え.テスト/").raw_host == b"xn--r8jz45g.xn--zckzah"


def test_ipv4_host_is_accepted() -> None:
    url = URL("http://192.168.0.1:81/")
    assert url.raw_host == b"192.168.0.1"
    assert url.origin == ("http", b"192.168.0.1", 81)


@pytest.mark.parametrize(
    ("given", "port", "effective"),
    [
        ("http://a/", None, 80),
        ("https://a/", None, 443),
        ("ws://a/", None, 80),
        ("wss://a/", None, 443),
        ("http://a:80/", 80, 80),
        ("https://a:8443/", 8443, 8443),
        ("http://a:/", None, 80),
        ("http://a:0/", 0, 0),
        ("http://a:65535/", 65535, 65535),
        ("ftp://a/", None, None),
        ("/relative", None, None),
    ],
)
def test_port_and_effective_port(given: str, port: int | None, effective: int | None) -> None:
    url = URL(given)
    assert url.port == port
    assert url.effective_port == effective


def test_explicit_default_port_is_kept() -> None:
    assert str(URL("http://a:80/")) == "http://a:80/"
    assert URL("http://a:80/").netloc == b"a:80"


def test_empty_path_gives_slash_request_target() -> None:
    url = URL("http://a")
    assert str(url) == "http://a"
    assert url.path == "/"
    assert url.raw_path == b"/"
    assert URL("http://a?x=1").raw_path == b"/?x=1"


@pytest.mark.parametrize(
    ("given", "path", "raw_path", "query", "fragment"),
    [
        ("/p/q?x=1", "/p/q", b"/p/q?x=1", b"x=1", ""),
        ("?x=1", "", b"?x=1", b"x=1", ""),
        ("#f", "", b"", b"", "f"),
        ("", "", b"", b"", ""),
        ("a/b", "a/b", b"a/b", b"", ""),
        ("./a:b", "./a:b", b"./a:b", b"", ""),
    ],
)
def test_relative_references(
    given: str, path: str, raw_path: bytes, query: bytes, fragment: str
) -> None:
    url = URL(given)
    assert url.is_relative_url
    assert not url.is_absolute_url
    assert url.scheme == ""
    assert url.host == ""
    assert (url.path, url.raw_path, url.query, url.fragment) == (path, raw_path, query, fragment)
    assert str(url) == given


def test_network_path_reference() -> None:
    url = URL("//cdn.test:8080/x")
    assert url.scheme == ""
    assert url.host == "cdn.test"
    assert url.port == 8080
    assert url.is_relative_url
    assert str(url) == "//cdn.test:8080/x"


def test_urls_without_authority() -> None:
    mail = URL("mailto:someone@example.com")
    assert mail.scheme == "mailto"
    assert mail.host == ""
    assert mail.path == "someone@example.com"
    assert str(mail) == "mailto:someone@example.com"
    file_url = URL("file:///etc/hosts")
    assert file_url.host == ""
    assert file_url.path == "/etc/hosts"
    assert str(file_url) == "file:///etc/hosts"


def test_absolute_url_flags() -> None:
    assert URL("http://a/").is_absolute_url
    assert not URL("http://a/").is_relative_url
    assert not URL("http:relative").is_absolute_url


# -- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("http://a:abc/", "Invalid port"),
        ("http://a:-1/", "Invalid port"),
        ("http://a:1:2/", "Invalid port"),
        ("http://a:\uff11\uff12/", "Invalid port"),  # fullwidth digits
        ("http://a:65536/", "out of range"),
        ("http://a:99999999999999999999/", "out of range"),
        ("http://a/\nGET / HTTP/1.1", "non-printable"),
        ("http://a/\r\n", "non-printable"),
        ("http://a/\x00", "non-printable"),
        ("http://a/\x7f", "non-printable"),
        ("http://a\t.com/", "non-printable"),
        ("http://a b/", "Invalid character ' ' in host"),
        ("http://a<b/", "Invalid character '<' in host"),
        ("http://a%41.com/", "Invalid character '%' in host"),
        ("http://a\\b/", "Invalid character"),
        ("http://ä b.com/", "Invalid character ' ' in host"),
        ("http://[::g]/", "Invalid IPv6 address"),
        ("http://[::1/", "missing ']'"),
        ("http://[::1]x/", "after IPv6"),
        ("http://[]/", "Invalid IPv6 address"),
        ("http://[fe80::1%25eth0]/", "zone"),
        ("http://1.2.3/", "Invalid IPv4 address"),
        ("http://256.0.0.1/", "Invalid IPv4 address"),
        ("http://01.2.3.4/", "Invalid IPv4 address"),
        ("http://0x7f.1/", "Invalid IPv4 address"),
        ("http://2130706433/", "Invalid IPv4 address"),
        ("http://xn--zz/", "Invalid IDNA hostname"),
        ("http://" + "ä" * 70 + ".com/", "Invalid IDNA hostname"),
        ("1http://a/", "Invalid URL scheme '1http'"),
        ("a b:c", "Invalid URL scheme"),
        (":nothing", "Invalid URL scheme ''"),
        ("http://a/\ud800", "cannot be encoded"),
        ("http://a/" + "x" * 70000, "too long"),
    ],
)
def test_invalid_urls_raise_invalid_url_naming_the_problem(given: str, message: str) -> None:
    with pytest.raises(InvalidURL, match=message.replace("[", r"\[").replace("]", r"\]")):
        URL(given)


def test_invalid_url_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        URL("http://a:port/")


def test_url_rejects_other_types() -> None:
    with pytest.raises(TypeError):
        URL(b"http://a/")  # type: ignore[arg-type]


def test_host_with_underscore_and_trailing_dot_is_allowed() -> None:
    url = URL("http://my_host.example.com./")
    assert url.raw_host == b"my_host.example.com."


# -- origin ----------------------------------------------------------------------------------


def test_origin_uses_effective_port_and_is_cached() -> None:
    url = URL("https://API.example.com/v1")
    assert url.origin == ("https", b"api.example.com", 443)
    assert url.origin is url.origin
    assert URL("http://[::1]:81/").origin == ("http", b"::1", 81)


@pytest.mark.parametrize("given", ["/relative", "http:no-host", "ftp://a/", "//a/"])
def test_origin_requires_scheme_host_and_port(given: str) -> None:
    with pytest.raises(InvalidURL):
        _ = URL(given).origin


# -- str, repr, equality ---------------------------------------------------------------------


def test_repr_masks_password_but_str_keeps_it() -> None:
    url = URL("https://user:hunter2@a/")
    assert repr(url) == "URL('https://user:[secure]@a/')"
    assert "hunter2" not in repr(url)
    assert str(url) == "https://user:hunter2@a/"


def test_equality_and_hash() -> None:
    url = URL("HTTP://Example.com/a b")
    assert url == URL("http://example.com/a%20b")
    assert url == "http://example.com/a%20b"
    assert url == "HTTP://EXAMPLE.COM/a b"
    assert url != "http://example.com/a%20c"
    assert url != "http://bad:port/"
    assert url != 42
    assert hash(url) == hash(URL("http://example.com/a%20b"))
    assert {url, URL("http://example.com/a%20b")} == {url}


def test_equality_is_not_semantic_normalisation() -> None:
    assert URL("http://a/%7E") != URL("http://a/~")
    assert URL("http://a") != URL("http://a/")


def test_url_from_url_and_pickle() -> None:
    url = URL("https://u:p@h:1/p?q#f")
    assert URL(url) == url
    assert URL(url).origin == url.origin
    restored = pickle.loads(pickle.dumps(url))
    assert restored == url
    assert restored.password == "p"


def test_url_has_slots() -> None:
    url = URL("http://a/")
    assert not hasattr(url, "__dict__")
    with pytest.raises(AttributeError):
        url.anything = 1  # type: ignore[attr-defined]


# -- params argument -------------------------------------------------------------------------


def test_params_are_merged_with_the_query_string() -> None:
    assert str(URL("http://a/?a=1", params={"b": 2})) == "http://a/?a=1&b=2"
    assert str(URL("http://a/?a=1&c=3", params={"a": "x"})) == "http://a/?a=x&c=3"
    assert str(URL("http://a/", params=[("q", "x y"), ("q", "z")])) == "http://a/?q=x%20y&q=z"
    assert URL("http://a/", params={"flag": True}).params["flag"] == "true"


def test_empty_params_leave_the_query_bytes_alone() -> None:
    assert URL("http://a/?a=1+2&b", params={}).query == b"a=1+2&b"
    assert URL(URL("http://a/?x=%2F"), params=None).query == b"x=%2F"


def test_params_property() -> None:
    params = URL("http://a/?a=1&b=x+y&a=2&c").params
    assert params.multi_items() == [("a", "1"), ("b", "x y"), ("a", "2"), ("c", "")]


# -- copy_with and param copies --------------------------------------------------------------


def test_copy_with_replaces_components_and_leaves_original_untouched() -> None:
    url = URL("http://u:p@a:81/x?q=1#f")
    new = url.copy_with(scheme="HTTPS", host="Bücher.de", port=8443, path="/y z", fragment="g")
    assert str(new) == "https://u:p@xn--bcher-kva.de:8443/y%20z?q=1#g"
    assert str(url) == "http://u:p@a:81/x?q=1#f"


def test_copy_with_none_removes_components() -> None:
    url = URL("http://u:p@a:81/x?q=1#f")
    assert str(url.copy_with(port=None, query=None, fragment=None)) == "http://u:p@a/x"
    assert str(url.copy_with(username=None, password=None)) == "http://a:81/x?q=1#f"
    assert str(url.copy_with(password=None)) == "http://u@a:81/x?q=1#f"
    assert str(URL("http://a/x").copy_with(scheme=None, host=None)) == "/x"


def test_copy_with_path_keeps_escapes() -> None:
    assert URL("http://a/").copy_with(path="/a%2Fb c").raw_path == b"/a%2Fb%20c"


def test_copy_with_query_accepts_str_and_bytes() -> None:
    url = URL("http://a/")
    assert url.copy_with(query="a=1 2").query == b"a=1%202"
    assert url.copy_with(query=b"a=%2F").query == b"a=%2F"
    assert url.copy_with(params={"k": "v w"}).query == b"k=v%20w"


def test_copy_with_raw_bytes_are_percent_encoded_exactly() -> None:
    url = URL("http://a/").copy_with(raw_path=b"/\xff\xc3\xa4 x%2F?q=\xe9")
    assert url.raw_path == b"/%FF%C3%A4%20x%2F?q=%E9"
    assert URL("http://a/").copy_with(query=b"a=\xc3\xa4%").query == b"a=%C3%A4%25"


def test_copy_with_raw_path_splits_path_and_query() -> None:
    url = URL("http://a/old?old=1").copy_with(raw_path=b"/new%2Fpath?x=1")
    assert url.raw_path == b"/new%2Fpath?x=1"
    assert URL("http://a/old?old=1").copy_with(raw_path=b"/p").query == b""
    assert str(URL("http://a/old?old=1").copy_with(raw_path=b"/p")) == "http://a/p"


def test_copy_with_credentials_are_taken_literally() -> None:
    url = URL("http://a/").copy_with(username="us:er", password="p%40ss@:/")
    assert url.username == "us:er"
    assert url.password == "p%40ss@:/"
    assert URL(str(url)).password == "p%40ss@:/"
    assert url.copy_with(password=url.password) == url


def test_copy_with_ipv6_host_with_or_without_brackets() -> None:
    assert URL("http://a/").copy_with(host="::1").netloc == b"[::1]"
    assert URL("http://a/").copy_with(host="[::1]").raw_host == b"::1"


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"path": "relative"}, InvalidURL),
        ({"port": 70000}, InvalidURL),
        ({"port": -1}, InvalidURL),
        ({"port": "80"}, InvalidURL),
        ({"port": True}, InvalidURL),
        ({"host": "a b"}, InvalidURL),
        ({"scheme": "1x"}, InvalidURL),
        ({"path": "/a\r\nb"}, InvalidURL),
        ({"query": "a=\n"}, InvalidURL),
        ({"fragment": "\x00"}, InvalidURL),
        ({"host": None}, InvalidURL),  # the URL still has userinfo and a port
        ({"raw_path": b"/\xff\n"}, InvalidURL),
        ({"query": "a=1", "params": {"b": 2}}, TypeError),
        ({"raw_path": b"/", "path": "/"}, TypeError),
    ],
)
def test_copy_with_rejects_invalid_components(kwargs: dict[str, object], error: type) -> None:
    with pytest.raises(error):
        URL("http://u@a:81/").copy_with(**kwargs)  # type: ignore[arg-type]


def test_copy_with_refuses_ambiguous_structures() -> None:
    no_host = URL("/x")
    with pytest.raises(InvalidURL, match="'//'"):
        no_host.copy_with(path="//evil.test/x")
    with pytest.raises(InvalidURL, match="first path segment"):
        no_host.copy_with(path="a:b")
    assert str(URL("x:/y").copy_with(path="a:b")) == "x:a:b"


def test_param_copies() -> None:
    url = URL("http://a/?a=1&b=2&a=3")
    assert str(url.copy_set_param("a", "x")) == "http://a/?a=x&b=2"
    assert str(url.copy_add_param("c", None)) == "http://a/?a=1&b=2&a=3&c="
    assert str(url.copy_remove_param("a")) == "http://a/?b=2"
    assert str(url.copy_remove_param("a").copy_remove_param("b")) == "http://a/"
    assert str(url.copy_with(params={})) == "http://a/"
    assert str(url.copy_merge_params({"b": [4, 5], "d": 6})) == "http://a/?a=1&b=4&b=5&a=3&d=6"
    assert str(url) == "http://a/?a=1&b=2&a=3"


# -- join ------------------------------------------------------------------------------------

RFC3986_BASE = "http://a/b/c/d;p?q"

RFC3986_NORMAL = [
    ("g:h", "g:h"),
    ("g", "http://a/b/c/g"),
    ("./g", "http://a/b/c/g"),
    ("g/", "http://a/b/c/g/"),
    ("/g", "http://a/g"),
    ("//g", "http://g"),
    ("?y", "http://a/b/c/d;p?y"),
    ("g?y", "http://a/b/c/g?y"),
    ("#s", "http://a/b/c/d;p?q#s"),
    ("g#s", "http://a/b/c/g#s"),
    ("g?y#s", "http://a/b/c/g?y#s"),
    (";x", "http://a/b/c/;x"),
    ("g;x", "http://a/b/c/g;x"),
    ("g;x?y#s", "http://a/b/c/g;x?y#s"),
    ("", "http://a/b/c/d;p?q"),
    (".", "http://a/b/c/"),
    ("./", "http://a/b/c/"),
    ("..", "http://a/b/"),
    ("../", "http://a/b/"),
    ("../g", "http://a/b/g"),
    ("../..", "http://a/"),
    ("../../", "http://a/"),
    ("../../g", "http://a/g"),
]

RFC3986_ABNORMAL = [
    ("../../../g", "http://a/g"),
    ("../../../../g", "http://a/g"),
    ("/./g", "http://a/g"),
    ("/../g", "http://a/g"),
    ("g.", "http://a/b/c/g."),
    (".g", "http://a/b/c/.g"),
    ("g..", "http://a/b/c/g.."),
    ("..g", "http://a/b/c/..g"),
    ("./../g", "http://a/b/g"),
    ("./g/.", "http://a/b/c/g/"),
    ("g/./h", "http://a/b/c/g/h"),
    ("g/../h", "http://a/b/c/h"),
    ("g;x=1/./y", "http://a/b/c/g;x=1/y"),
    ("g;x=1/../y", "http://a/b/c/y"),
    ("g?y/./x", "http://a/b/c/g?y/./x"),
    ("g?y/../x", "http://a/b/c/g?y/../x"),
    ("g#s/./x", "http://a/b/c/g#s/./x"),
    ("g#s/../x", "http://a/b/c/g#s/../x"),
    ("http:g", "http:g"),
]


@pytest.mark.parametrize(("reference", "expected"), RFC3986_NORMAL)
def test_join_rfc3986_normal_examples(reference: str, expected: str) -> None:
    assert str(URL(RFC3986_BASE).join(reference)) == expected


@pytest.mark.parametrize(("reference", "expected"), RFC3986_ABNORMAL)
def test_join_rfc3986_abnormal_examples(reference: str, expected: str) -> None:
    assert str(URL(RFC3986_BASE).join(reference)) == expected


def test_join_accepts_url_and_keeps_escapes() -> None:
    base = URL("https://u:p@a:8443/b/c")
    assert str(base.join(URL("x%2Fy z"))) == "https://u:p@a:8443/b/x%2Fy%20z"
    assert base.join("//other/").password == ""


def test_join_against_base_with_empty_path() -> None:
    assert str(URL("http://a").join("g")) == "http://a/g"
    assert str(URL("http://a?q").join("")) == "http://a?q"


def test_join_does_not_create_an_authority_from_the_path() -> None:
    joined = URL("x:/a/b").join("..//evil.test/")
    assert joined.host == ""
    assert URL(str(joined)) == joined


def test_join_rootless_base_follows_rfc_buffer_algorithm() -> None:
    # RFC 3986 5.2.4 turns "a/../../g" into "/g" (the popped segment takes its slash along).
    assert str(URL("x:a/b").join("../../g")) == "x:/g"
    assert str(URL("x:a/b").join("..")) == "x:/"


# -- property-based --------------------------------------------------------------------------

_UNRESERVED = string.ascii_letters + string.digits + "-._~"
_PCHAR = _UNRESERVED + "!$&'()*+,;=:@"
_escapes = st.builds(
    lambda n, upper: f"%{n:02X}" if upper else f"%{n:02x}", st.integers(0, 255), st.booleans()
)


def _encoded(alphabet: str, max_size: int = 12) -> st.SearchStrategy[str]:
    pieces = st.one_of(st.text(alphabet=alphabet, min_size=1, max_size=4), _escapes)
    return st.lists(pieces, max_size=max_size).map("".join)


_label = st.from_regex(r"[a-z][a-z0-9-]{0,9}", fullmatch=True)
_reg_name = st.lists(_label, min_size=1, max_size=4).map(".".join)
_ipv4 = st.ip_addresses(v=4).map(str)
_ipv6 = st.ip_addresses(v=6).map(lambda address: f"[{address}]")


@st.composite
def _urls(draw: st.DrawFn) -> tuple[str, str, int | None, str, str | None]:
    scheme = draw(st.sampled_from(["http", "https", "ws", "wss", "ftp", "svn+ssh"]))
    host = draw(st.one_of(_reg_name, _ipv4, _ipv6))
    userinfo = draw(
        st.none() | st.tuples(_encoded(_UNRESERVED + "!$&'()*+,;="), _encoded(_PCHAR[:-1]))
    )
    port = draw(st.none() | st.integers(0, 65535))
    segments = draw(st.lists(_encoded(_PCHAR), max_size=5))
    query = draw(st.none() | _encoded(_PCHAR + "/?"))
    fragment = draw(st.none() | _encoded(_PCHAR + "/?"))
    text = f"{scheme}://"
    if userinfo is not None and userinfo[0]:
        text += userinfo[0] + (f":{userinfo[1]}" if userinfo[1] else "") + "@"
    text += host
    if port is not None:
        text += f":{port}"
    path = "".join("/" + segment for segment in segments)
    text += path
    if query is not None:
        text += "?" + query
    if fragment is not None:
        text += "#" + fragment
    return text, host, port, path, query


@given(_urls())
def test_encoded_urls_round_trip_unchanged(
    case: tuple[str, str, int | None, str, str | None],
) -> None:
    text, host, port, path, query = case
    url = URL(text)
    assert str(url) == text
    assert url.port == port
    assert url.netloc == (host if port is None else f"{host}:{port}").encode("ascii")
    assert url.raw_path.partition(b"?")[0] == (path or "/").encode("ascii")
    assert url.query == (query or "").encode("ascii")
    assert URL(str(url)) == url


@given(st.ip_addresses())
def test_ip_hosts_round_trip(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
    literal = f"[{address}]" if address.version == 6 else str(address)
    url = URL(f"http://{literal}:8080/")
    assert url.host == str(address)
    assert url.origin == ("http", str(address).encode("ascii"), 8080)


_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=30)


@given(_text)
def test_any_path_text_is_encoded_losslessly_or_refused(text: str) -> None:
    try:
        url = URL("http://example.com/" + text)
    except InvalidURL as exc:
        assert any(ord(char) < 0x20 or char == "\x7f" for char in text), exc
        return
    url.raw_path.decode("ascii")  # The request target is always plain ASCII.
    assert URL(str(url)) == url
    assert str(URL(str(url))) == str(url)
    if not any(char in text for char in "%?#"):
        assert url.path == "/" + text


@given(_encoded(_PCHAR + "/%"))
def test_valid_escapes_survive_byte_for_byte(path: str) -> None:
    # Only a "%" that does not start an escape may change (to "%25"); nothing is decoded.
    expected = "/" + re.sub(r"%(?![0-9A-Fa-f]{2})", "%25", path)
    assert URL("http://a/" + path).raw_path == expected.encode("ascii")


_ref_segment = st.sampled_from(["g", "h", ".", "..", "g;x", "x=1", "..g", "g."])


@st.composite
def _references(draw: st.DrawFn) -> str:
    segments = draw(st.lists(_ref_segment, min_size=1, max_size=6))
    reference = "/".join(segments)
    if draw(st.booleans()):
        reference = "/" + reference
    if draw(st.booleans()):
        reference += "/"
    if draw(st.booleans()):
        reference += "?y=1"
    if draw(st.booleans()):
        reference += "#s"
    return reference


@given(
    st.sampled_from([RFC3986_BASE, "http://a/", "https://a/b/", "http://a:8/b/c/d/e?q"]),
    _references(),
)
def test_join_agrees_with_urljoin(base: str, reference: str) -> None:
    # Restricted to references urljoin resolves per RFC 3986 (no empty segments, no scheme).
    assert str(URL(base).join(reference)) == urljoin(base, reference)


@given(st.sampled_from([RFC3986_BASE, "http://a/"]), _references())
def test_join_output_has_no_dot_segments(base: str, reference: str) -> None:
    segments = URL(base).join(reference).raw_path.partition(b"?")[0].split(b"/")
    assert b"." not in segments
    assert b".." not in segments


# -- QueryParams -----------------------------------------------------------------------------


def test_query_params_from_string_keeps_order_and_blanks() -> None:
    params = QueryParams("a=1&b=2&a=3&empty=&flag")
    assert params.multi_items() == [("a", "1"), ("b", "2"), ("a", "3"), ("empty", ""), ("flag", "")]
    assert list(params.keys()) == ["a", "b", "empty", "flag"]
    assert list(params.values()) == ["1", "2", "", ""]
    assert list(params.items()) == [("a", "1"), ("b", "2"), ("empty", ""), ("flag", "")]
    assert params["a"] == "1"
    assert params.get("a") == "1"
    assert params.get("missing") is None
    assert params.get("missing", "d") == "d"
    assert params.get_list("a") == ["1", "3"]
    assert params.get_list("missing") == []
    assert "b" in params
    assert "z" not in params
    assert len(params) == 4
    assert list(params) == ["a", "b", "empty", "flag"]
    with pytest.raises(KeyError):
        params["missing"]


def test_query_params_from_mapping_with_primitive_values() -> None:
    params = QueryParams({"s": "x", "i": 1, "f": 1.5, "t": True, "n": None, "l": ["a", 2, False]})
    assert params.multi_items() == [
        ("s", "x"),
        ("i", "1"),
        ("f", "1.5"),
        ("t", "true"),
        ("n", ""),
        ("l", "a"),
        ("l", "2"),
        ("l", "false"),
    ]
    assert QueryParams({"empty": []}).multi_items() == []


def test_query_params_from_pairs_bytes_and_query_params() -> None:
    pairs = QueryParams([("a", 1), ("a", 2)])
    assert pairs.get_list("a") == ["1", "2"]
    assert QueryParams((("a", "1"),)).multi_items() == [("a", "1")]
    assert QueryParams(b"x=%C3%A4").multi_items() == [("x", "ä")]
    assert QueryParams(pairs) == pairs
    assert QueryParams(None).multi_items() == []
    assert not QueryParams()
    assert QueryParams("a=")


@pytest.mark.parametrize("bad", [{"a": object()}, [("a",)], ["ab"], 42, {"a": [b"x"]}])
def test_query_params_reject_unsupported_input(bad: object) -> None:
    with pytest.raises(TypeError):
        QueryParams(bad)  # type: ignore[arg-type]


def test_query_params_modifiers_return_new_instances() -> None:
    params = QueryParams("a=1&b=2&a=3")
    assert params.set("a", "x").multi_items() == [("a", "x"), ("b", "2")]
    assert params.set("c", 1).multi_items() == [("a", "1"), ("b", "2"), ("a", "3"), ("c", "1")]
    assert params.add("b", 4).get_list("b") == ["2", "4"]
    assert params.remove("a").multi_items() == [("b", "2")]
    assert params.remove("missing") == params
    merged = params.merge({"a": ["y", "z"], "d": None})
    assert merged.multi_items() == [("a", "y"), ("a", "z"), ("b", "2"), ("d", "")]
    assert params.merge(None) is params
    assert params.multi_items() == [("a", "1"), ("b", "2"), ("a", "3")]


def test_query_params_str_encodes_everything_but_unreserved() -> None:
    params = QueryParams([("a b", "c&d=e+f%g/h"), ("ä", "~ok-._")])
    assert str(params) == "a%20b=c%26d%3De%2Bf%25g%2Fh&%C3%A4=~ok-._"
    assert repr(params) == "QueryParams('a%20b=c%26d%3De%2Bf%25g%2Fh&%C3%A4=~ok-._')"
    assert QueryParams(str(params)) == params


def test_query_params_equality_and_hash() -> None:
    assert QueryParams("a=1&b=2") == QueryParams("b=2&a=1")
    assert QueryParams("a=1&a=2") != QueryParams("a=2&a=1")
    assert QueryParams("a=1") != QueryParams("a=1&a=1")
    assert QueryParams("a=1&b=2") == {"b": "2", "a": "1"}
    assert QueryParams("a=1") == "a=1"
    assert QueryParams("a=1") != 1
    assert hash(QueryParams("a=1&b=2")) == hash(QueryParams("b=2&a=1"))


def test_query_params_are_immutable() -> None:
    params = QueryParams("a=1")
    with pytest.raises(TypeError):
        params["a"] = "2"  # type: ignore[index]
    with pytest.raises(AttributeError):
        params.extra = 1  # type: ignore[attr-defined]


_param_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=8)


@given(st.lists(st.tuples(_param_text, _param_text), max_size=8))
def test_query_params_string_round_trip(pairs: list[tuple[str, str]]) -> None:
    params = QueryParams(pairs)
    assert params.multi_items() == pairs
    assert QueryParams(str(params)).multi_items() == pairs
    assert URL("http://a/", params=pairs).params.multi_items() == pairs


@given(st.lists(st.tuples(_param_text, _param_text), max_size=8), _param_text, _param_text)
def test_query_params_set_then_get(pairs: list[tuple[str, str]], key: str, value: str) -> None:
    updated = QueryParams(pairs).set(key, value)
    assert updated.get_list(key) == [value]
    assert updated.remove(key).get_list(key) == []
    assume(key not in dict(pairs))
    assert updated.multi_items() == [*pairs, (key, value)]
