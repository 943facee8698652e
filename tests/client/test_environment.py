"""Proxy settings from the environment: which variables win, and what NO_PROXY matches."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterator

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from ferryman import URL, InvalidURL
from ferryman.client.environment import (
    bypasses_proxy,
    get_environment_no_proxy,
    get_environment_proxies,
    proxy_for_url,
)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """An environment without any proxy setting of the machine running the tests."""
    for name in list(os.environ):
        if name.lower().endswith("_proxy") or name == "REQUEST_METHOD":
            monkeypatch.delenv(name)
    yield monkeypatch


# -- reading the variables ---------------------------------------------------------------------


def test_nothing_set(env: pytest.MonkeyPatch) -> None:
    assert get_environment_proxies() == {}
    assert get_environment_no_proxy() is None


def test_each_scheme_upper_case(env: pytest.MonkeyPatch) -> None:
    env.setenv("HTTP_PROXY", "http://p1:3128")
    env.setenv("HTTPS_PROXY", "https://p2:3129")
    env.setenv("ALL_PROXY", "http://p3:3130")
    env.setenv("FTP_PROXY", "http://ignored:1")
    env.setenv("NO_PROXY", "localhost,.internal")
    assert get_environment_proxies() == {
        "http": "http://p1:3128",
        "https": "https://p2:3129",
        "all": "http://p3:3130",
    }
    assert get_environment_no_proxy() == "localhost,.internal"


@pytest.mark.parametrize("upper", ["http://upper:1", ""])
def test_lower_case_wins(env: pytest.MonkeyPatch, upper: str) -> None:
    for scheme in ("http", "https", "all", "no"):
        env.setenv(f"{scheme.upper()}_PROXY", upper)
        env.setenv(f"{scheme}_proxy", "http://lower:2")
    lower = "http://lower:2"
    assert get_environment_proxies() == {"http": lower, "https": lower, "all": lower}
    assert get_environment_no_proxy() == lower


def test_empty_lower_case_unsets_the_upper_case(env: pytest.MonkeyPatch) -> None:
    env.setenv("HTTPS_PROXY", "http://upper:1")
    env.setenv("https_proxy", "")
    env.setenv("NO_PROXY", "example.test")
    env.setenv("no_proxy", "")
    assert get_environment_proxies() == {}
    assert get_environment_no_proxy() is None


def test_a_proxy_without_scheme_is_http(env: pytest.MonkeyPatch) -> None:
    env.setenv("https_proxy", "proxy.internal:3128")
    env.setenv("all_proxy", "  socks5://proxy.internal:1080 ")
    assert get_environment_proxies() == {
        "https": "http://proxy.internal:3128",
        "all": "socks5://proxy.internal:1080",
    }


def test_upper_case_http_proxy_is_ignored_under_cgi(env: pytest.MonkeyPatch) -> None:
    # A CGI server turns a request's "Proxy:" header into HTTP_PROXY (httpoxy).
    env.setenv("REQUEST_METHOD", "GET")
    env.setenv("HTTP_PROXY", "http://attacker:1")
    env.setenv("HTTPS_PROXY", "http://fine:2")
    assert get_environment_proxies() == {"https": "http://fine:2"}
    env.setenv("http_proxy", "http://chosen:3")
    assert get_environment_proxies()["http"] == "http://chosen:3"


# -- choosing the proxy ------------------------------------------------------------------------

PROXIES = {"http": "http://p-http:1", "https": "http://p-https:2", "all": "http://p-all:3"}


@pytest.mark.parametrize(
    ("url", "proxies", "expected"),
    [
        ("http://a.test/", PROXIES, "http://p-http:1"),
        ("https://a.test/", PROXIES, "http://p-https:2"),
        ("ws://a.test/", PROXIES, "http://p-all:3"),
        ("https://a.test/", {"all": "http://p-all:3"}, "http://p-all:3"),
        ("https://a.test/", {"https": None, "all": "http://p-all:3"}, None),
        ("https://a.test/", {"https": "", "all": "http://p-all:3"}, None),
        ("https://a.test/", {"http": "http://p-http:1"}, None),
        ("https://a.test/", {}, None),
    ],
)
def test_proxy_by_scheme_then_all(url: str, proxies: dict[str, str | None], expected: str) -> None:
    assert proxy_for_url(URL(url), proxies, None) == expected


def test_no_proxy_wins_over_the_proxies() -> None:
    assert proxy_for_url(URL("https://api.internal/"), PROXIES, "internal") is None
    assert proxy_for_url(URL("https://api.example/"), PROXIES, "internal") == "http://p-https:2"
    assert proxy_for_url(URL("https://api.example/"), PROXIES, "") == "http://p-https:2"


# -- NO_PROXY ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("no_proxy", "url", "bypass"),
    [
        ("*", "http://anything.test/", True),
        ("*", "http://[::1]:8080/", True),
        ("example.com", "http://example.com/", True),
        ("example.com", "http://api.example.com/", True),
        ("example.com", "http://a.b.example.com/", True),
        ("example.com", "http://badexample.com/", False),
        ("example.com", "http://example.com.evil.test/", False),
        (".example.com", "http://example.com/", True),
        (".example.com", "http://api.example.com/", True),
        ("*.example.com", "http://api.example.com/", True),
        ("EXAMPLE.com.", "http://Api.Example.COM./", True),
        ("api.example.com", "http://example.com/", False),
        ("localhost", "http://localhost:8000/", True),
        ("localhost:8000", "http://localhost:8000/", True),
        ("localhost:8000", "http://localhost:8001/", False),
        ("example.com:443", "https://example.com/", True),
        ("example.com:443", "http://example.com/", False),
        ("127.0.0.1", "http://127.0.0.1:5000/", True),
        ("127.0.0.1", "http://127.0.0.2/", False),
        ("127.0.0.1", "http://localhost/", False),  # names are never resolved
        ("10.0.0.0/8", "http://10.20.30.40/", True),
        ("10.0.0.0/8", "http://11.0.0.1/", False),
        ("10.1.2.3/16", "http://10.1.200.1/", True),  # host bits in a range are ignored
        ("192.168.1.0/24:8080", "http://192.168.1.7:8080/", True),
        ("192.168.1.0/24:8080", "http://192.168.1.7/", False),
        ("::1", "http://[::1]/", True),
        ("[::1]", "http://[::1]/", True),
        ("[::1]:8080", "http://[::1]:8080/", True),
        ("[::1]:8080", "http://[::1]:9090/", False),
        ("fd00::/8", "http://[fd12:3456::1]/", True),
        ("fd00::/8", "http://[fe80::1]/", False),
        ("0:0::1", "http://[::1]/", True),
        ("::1", "http://127.0.0.1/", False),
        ("10.0.0.0/8", "http://[::ffff:10.0.0.1]/", False),
        ("bücher.example", "http://shop.xn--bcher-kva.example/", True),
        ("a.test, b.test ,c.test", "http://b.test/", True),
        ("a.test b.test", "http://b.test/", True),
        (",,  ,", "http://b.test/", False),
        ("a.test,*", "http://b.test/", True),
        ("a.test:notaport,b.test", "http://a.test/", False),
        ("a.test:99999", "http://a.test/", False),
        ("[::1", "http://[::1]/", False),
        ("[::1]x", "http://[::1]/", False),
        ("*.", "http://b.test/", False),
        ("a*.test", "http://ab.test/", False),
    ],
)
def test_no_proxy_rules(no_proxy: str, url: str, bypass: bool) -> None:
    assert bypasses_proxy(URL(url), no_proxy) is bypass


_LABEL = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
_DOMAIN = (
    st.lists(_LABEL, min_size=1, max_size=3).map(".".join).filter(lambda name: _is_host_name(name))
)


def _is_host_name(name: str) -> bool:
    """False for names a URL refuses: a numeric last label ("1", "0x1") reads as IPv4."""
    try:
        URL(f"http://{name}/")
    except InvalidURL:
        return False
    return True


@given(domain=_DOMAIN, sub=st.lists(_LABEL, max_size=3), dot=st.sampled_from(["", ".", "*."]))
def test_a_domain_matches_itself_and_its_subdomains(domain: str, sub: list[str], dot: str) -> None:
    host = ".".join([*sub, domain])
    assert bypasses_proxy(URL(f"https://{host}/"), dot + domain)
    assert bypasses_proxy(URL(f"https://{host}/"), f"other.test, {dot}{domain.upper()}")


@given(domain=_DOMAIN, prefix=_LABEL)
def test_a_domain_does_not_match_names_that_merely_end_like_it(domain: str, prefix: str) -> None:
    host = prefix + domain
    assume(not host.endswith("." + domain))
    try:
        url = URL(f"http://{host}/")
    except InvalidURL:  # "0" + "x1" reads as a malformed hexadecimal IPv4 address
        assume(False)
    assert not bypasses_proxy(url, domain)


@given(
    network=st.ip_addresses().flatmap(
        lambda address: st.integers(0, address.max_prefixlen).map(
            lambda prefix: ipaddress.ip_network(f"{address}/{prefix}", strict=False)
        )
    ),
    offset=st.integers(min_value=0),
)
def test_an_address_inside_a_range_matches(
    network: ipaddress.IPv4Network | ipaddress.IPv6Network, offset: int
) -> None:
    inside = network[offset % network.num_addresses]
    assert bypasses_proxy(URL(f"http://{_host(inside)}:8080/"), str(network))
    assert bypasses_proxy(URL(f"http://{_host(inside)}:8080/"), f"{_host(network)}:8080")
    assert not bypasses_proxy(URL(f"http://{_host(inside)}:8081/"), f"{_host(network)}:8080")
    if network.prefixlen > 0:
        # Flip the last bit of the prefix: the address falls just outside the range.
        flip = 1 << (inside.max_prefixlen - network.prefixlen)
        outside = ipaddress.ip_address(int(inside) ^ flip)
        assert not bypasses_proxy(URL(f"http://{_host(outside)}/"), str(network))


def _host(
    value: ipaddress.IPv4Address
    | ipaddress.IPv6Address
    | ipaddress.IPv4Network
    | ipaddress.IPv6Network,
) -> str:
    """As written in a URL or a NO_PROXY entry with a port: IPv6 in brackets."""
    return f"[{value}]" if value.version == 6 else str(value)


@given(
    entries=st.lists(_DOMAIN, min_size=1, max_size=5),
    separators=st.lists(st.sampled_from([",", ", ", " ", " ,\t", "\n"]), min_size=4, max_size=4),
    data=st.data(),
)
def test_separators_do_not_change_what_matches(
    entries: list[str], separators: list[str], data: st.DataObject
) -> None:
    joined = entries[0] + "".join(
        sep + entry for sep, entry in zip(separators, entries[1:], strict=False)
    )
    # Half the probes are subdomains of a listed entry, half are any name.
    listed = st.sampled_from(entries).flatmap(
        lambda entry: _LABEL.map(lambda label: f"{label}.{entry}")
    )
    probe = data.draw(st.one_of(listed, _DOMAIN))
    url = URL(f"http://{probe}/")
    expected = any(probe == entry or probe.endswith("." + entry) for entry in entries)
    assert bypasses_proxy(url, joined) is expected
    assert bypasses_proxy(url, joined) == any(bypasses_proxy(url, entry) for entry in entries)
