"""The ``proxy`` configuration: defaults, conversions, and errors that name the problem."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest
import trustme
from pydantic import ValidationError

from ferryman import AsyncClient
from ferryman.proxy import HTTPProxyHandler, ProxyContext
from ferryman.proxy.rewrite import Rewrite
from ferryman.proxy.settings import DEFAULT_PORT, EndpointSettings, ProxySettings, RequestOptions


def endpoint(**values: Any) -> dict[str, Any]:
    return {"name": "api", "port": 4000, "url": "http://127.0.0.1:9000", **values}


def error_text(exc: pytest.ExceptionInfo[ValidationError]) -> str:
    return str(exc.value)


def test_defaults() -> None:
    settings = ProxySettings()
    assert (settings.host, settings.port, settings.endpoints) == ("127.0.0.1", DEFAULT_PORT, [])
    assert settings.grace_period == 10.0


def test_a_full_endpoint() -> None:
    settings = ProxySettings.model_validate(
        {
            "port": 5000,
            "endpoints": [
                endpoint(
                    url=["http://a.test", "https://b.test:8443/v1"],
                    timeout={"connect": 1, "read": 30},
                    request_headers={"add": {"X-Team": "core"}, "remove": ["Cookie"]},
                    response_headers={"remove": ["Server"]},
                    rewrite={"from": "/api", "to": "/"},
                    preserve_host=True,
                    state={"tier": "gold"},
                ),
                {"name": "maps", "path": "/maps", "url": "http://127.0.0.1:9001"},
            ],
        }
    )
    api, maps = settings.endpoints
    assert [str(url) for url in api.upstreams] == ["http://a.test", "https://b.test:8443/v1"]
    timeout = api.timeout.to_timeout()
    assert (timeout.connect, timeout.read, timeout.write, timeout.pool) == (1, 30, 60, 5)
    rules = api.request_headers.to_rules()
    assert rules.add == ((b"X-Team", b"core"),) and b"cookie" in rules.remove
    assert b"server" in api.response_headers.to_rules().remove
    assert api.rewrite is not None and api.rewrite.to_rewrite() == Rewrite("/api", "/")
    assert api.preserve_host and api.state == {"tier": "gold"}
    assert (maps.port, maps.path) == (None, "/maps")


def test_one_url_or_a_list() -> None:
    assert EndpointSettings.model_validate(endpoint()).url == ["http://127.0.0.1:9000"]


def test_a_number_timeout_applies_to_every_phase() -> None:
    timeout = EndpointSettings.model_validate(endpoint(timeout=2.5)).timeout
    assert (timeout.connect, timeout.read, timeout.write, timeout.pool) == (2.5,) * 4


def test_a_null_timeout_waits_forever() -> None:
    timeout = EndpointSettings.model_validate(endpoint(timeout={"read": None})).timeout
    assert timeout.read is None and timeout.to_timeout().read is None


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"url": []}, "at least one upstream URL"),
        ({"url": "ftp://files.test"}, "must be an absolute http:// or https:// URL"),
        ({"url": "/relative"}, "must be an absolute http:// or https:// URL"),
        ({"url": "http://a.test/?q=1"}, "must not have a query or a fragment"),
        ({"url": "http://a.test/#top"}, "must not have a query or a fragment"),
        ({"port": None}, "one of them"),
        ({"path": "/x"}, "one of them"),
        ({"port": None, "path": "x"}, "path must start with '/'"),
        ({"port": None, "path": "/"}, "not be '/' alone"),
        ({"port": 70000}, "less than or equal to 65535"),
        ({"timeout": {"read": 0}}, "greater than 0"),
        ({"timeout": {"reed": 1}}, "reed"),
        ({"rewrite": {"from": "api", "to": "/"}}, "start with '/'"),
        ({"rewrite": {"from": "/api"}}, "to"),
        ({"name": ""}, "at least 1 character"),
        ({"unknown": 1}, "unknown"),
        ({"request_headers": {"add": {"X": 1}}}, "request_headers"),
        ({"trusted_proxies": ["10.0.0.0/8", "10.0.0.1/8"]}, "'10.0.0.1/8' is not an IP"),
        ({"trusted_proxies": ["proxy.internal"]}, "'proxy.internal' is not an IP"),
        ({"request_headers": {"remove": ["Host"]}}, "cannot add or remove 'host'"),
        ({"response_headers": {"add": {"Content-Length": "1"}}}, "'content-length'"),
        ({"via": "sometimes"}, "via"),
    ],
)
def test_endpoint_errors_name_the_problem(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as exc:
        EndpointSettings.model_validate(endpoint(**values))
    assert message in error_text(exc)


def test_the_endpoints_switches_reach_its_header_rules() -> None:
    defaults = EndpointSettings.model_validate(endpoint())
    request, response = defaults.request_rules(), defaults.response_rules()
    assert request.via and response.via and response.redirects
    assert request.trusted_proxies == () and not request.underscores
    switched = EndpointSettings.model_validate(
        endpoint(
            trusted_proxies=["10.0.0.0/8", "2001:db8::1"],
            underscores_in_headers=True,
            via=False,
            redirect_rewrite=False,
            request_headers={"remove": ["X-Forwarded-For"]},
        )
    )
    request, response = switched.request_rules(), switched.response_rules()
    assert not request.via and not response.via and not response.redirects
    assert request.underscores and request.trusts("10.2.3.4") and request.trusts("2001:db8::1")
    assert not request.forwarded_for and b"x-forwarded-for" in request.remove


def test_a_bad_url_is_quoted_in_the_error() -> None:
    with pytest.raises(ValidationError) as exc:
        EndpointSettings.model_validate(endpoint(url=["http://ok.test", "gopher://x"]))
    assert "'gopher://x'" in error_text(exc)


@pytest.mark.parametrize(
    ("endpoints", "message"),
    [
        ([endpoint(), endpoint(port=4001)], "two endpoints are named 'api'"),
        ([endpoint(), endpoint(name="b")], "endpoints 'api' and 'b' both use port 4000"),
        ([endpoint(port=DEFAULT_PORT)], "which is proxy.port"),
        (
            [endpoint(port=None, path="/x"), endpoint(name="b", port=None, path="/x/")],
            "two endpoints use the path '/x/'",
        ),
    ],
)
def test_proxy_errors_name_the_conflict(endpoints: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(ValidationError) as exc:
        ProxySettings.model_validate({"endpoints": endpoints})
    assert message in error_text(exc)


def test_several_endpoints_may_ask_for_port_zero() -> None:
    settings = ProxySettings.model_validate(
        {"endpoints": [endpoint(port=0), endpoint(name="b", port=0)]}
    )
    assert [e.port for e in settings.endpoints] == [0, 0]


@pytest.mark.parametrize(("key", "value"), [("grace_period", -1), ("port", -1), ("hots", "x")])
def test_proxy_level_errors(key: str, value: object) -> None:
    with pytest.raises(ValidationError) as exc:
        ProxySettings.model_validate({key: value})
    assert key in error_text(exc)


# -- request_options: checked when loaded, as AsyncClient.send will take them --------------------


def request_options(**values: Any) -> RequestOptions:
    return EndpointSettings.model_validate(endpoint(request_options=values)).request_options


def test_request_options_are_send_s_options_but_stream() -> None:
    # (The proxy streams every answer; the method, URL, headers and body are the request's.)
    send = set(inspect.signature(AsyncClient.send).parameters) - {"self", "request"}
    assert set(RequestOptions.model_fields) == send - {"stream"}


def test_only_the_options_given_are_passed() -> None:
    assert request_options().to_options() == {}
    assert request_options(http2=True, timeout=None).to_options() == {
        "http2": True,
        "timeout": None,
    }


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"htt2": True}, "htt2"),
        ({"stream": False}, "stream"),
        ({"headers": {}}, "headers"),
        ({"http2": "maybe"}, "http2"),
        ({"timeout": "abc"}, "must be a number of seconds (all four phases)"),
        ({"timeout": {"reed": 1}}, "'reed' is not a timeout phase"),
        ({"timeout": {"read": -1}}, "read must be a number of seconds or null"),
        ({"timeout": True}, "must be a number of seconds"),
        ({"max_redirects": -1}, "max_redirects"),
        ({"pool_size": 0}, "pool_size"),
        ({"verify": None}, "must be true, false"),
        ({"verify": "/nonexistent/ca.pem"}, "there is no CA bundle file or directory"),
        ({"cert": "/nonexistent/client.pem"}, "cannot load the client certificate"),
        ({"cert": ["a"]}, "[certificate, key]"),
        ({"proxies": {"htp": "http://p:3128"}}, "'htp'"),
        ({"proxies": {"http": "ftp://p"}}, "must be an http:// or https:// URL"),
        ({"pre_request": "mymodule.hook"}, "a configuration file cannot give one"),
    ],
)
def test_bad_request_options_are_refused_when_loaded(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as exc:
        request_options(**values)
    assert message in error_text(exc)


def test_good_request_options_are_kept_as_the_client_takes_them(
    tmp_path: Path, ca: trustme.CA
) -> None:
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    leaf = ca.issue_cert("client.test")
    cert, key = tmp_path / "client.pem", tmp_path / "client.key"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))

    options = request_options(
        timeout={"connect": 1, "read": None},
        verify=str(bundle),
        cert=[str(cert), str(key)],
        proxies={"https": "http://proxy.test:3128", "http": None},
        http2=True,
        allow_redirects=True,
        max_redirects=3,
        pool_size=4,
        pre_request=[print],
    ).to_options()

    assert options["cert"] == (str(cert), str(key))  # a tuple: the pools are keyed by it
    assert options["timeout"] == {"connect": 1, "read": None}
    assert options["pre_request"] == [print]


def test_a_dump_of_request_options_holds_what_was_given() -> None:
    settings = EndpointSettings.model_validate(endpoint(request_options={"http2": True}))
    dumped = settings.model_dump(by_alias=True)
    assert dumped["request_options"] == {"http2": True}
    assert EndpointSettings.model_validate(dumped) == settings


def test_the_handler_refuses_what_the_configuration_refuses() -> None:
    context = ProxyContext(url="http://127.0.0.1:9")
    with pytest.raises(ValueError, match="timeout"):
        HTTPProxyHandler(context, request_options={"timeout": "abc"})
    handler = HTTPProxyHandler(context, request_options={"timeout": 5})
    assert handler.request_options == {"timeout": 5, "decompress": False}
