"""Configuration problems in words: pydantic's errors said for people, unknown keys with the key
they resemble, and the source each value came from."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from ferryman.proxy.settings import ProxySettings
from ferryman.system.problems import Sources, describe_errors, keys_at, show_value, unknown_key

# -- sources ---------------------------------------------------------------------------------------


def test_a_value_is_blamed_on_the_source_that_set_it_last() -> None:
    sources = Sources()
    sources.set(("proxy", "endpoints"), [{"name": "a", "port": 1}], "a.yml", {("proxy",): 1})
    sources.set(("proxy", "endpoints", "0", "port"), "abc", "--set proxy.endpoints.0.port=abc")

    assert sources.describe(("proxy", "endpoints", "0", "port")) == (
        "--set proxy.endpoints.0.port=abc"
    )
    assert sources.describe(("proxy", "endpoints", "0", "name")) == "a.yml"
    assert sources.describe(("proxy", "port")) is None  # a default: nobody set it


def test_a_file_value_is_named_with_its_line() -> None:
    sources = Sources()
    lines = {("proxy",): 1, ("proxy", "port"): 2}
    sources.set(("proxy",), {"port": "abc"}, "ferryman.yml", lines)

    assert sources.describe(("proxy", "port")) == "ferryman.yml:2"


def test_a_value_set_whole_forgets_the_sources_of_what_it_replaced() -> None:
    sources = Sources()
    sources.set(("proxy", "endpoints"), [{"name": "a"}], "a.yml")
    sources.set(("proxy", "endpoints"), [{"name": "b"}], "FERRYMAN_PROXY__ENDPOINTS")

    assert sources.describe(("proxy", "endpoints", "0", "name")) == "FERRYMAN_PROXY__ENDPOINTS"


def test_a_value_assembled_from_several_sources_names_each_once() -> None:
    sources = Sources()
    sources.set(("proxy", "endpoints", "0"), {"name": "api"}, "--endpoint api=1:http://a")
    sources.set(("proxy", "endpoints", "1"), {"name": "api"}, "--endpoint api=2:http://b")
    sources.set(("proxy", "host"), "x", "a.yml", {("proxy", "host"): 3})
    sources.set(("proxy", "port"), 1, "a.yml", {("proxy", "port"): 4})

    assert sources.describe(("proxy",)) == (
        "--endpoint api=1:http://a, --endpoint api=2:http://b, a.yml"
    )


def test_a_mapping_made_on_the_way_to_a_deeper_value_is_blamed_on_that_value() -> None:
    sources = Sources()
    sources.set(("proxy", "endpoints"), [{"name": "a", "port": 1}], "a.yml")
    sources.set(("proxy", "endpoints", "1", "port"), 2, "--set proxy.endpoints.1.port=2")

    # (endpoint 1 lacks a name: the --set made it, not the file that made the list)
    assert sources.describe(("proxy", "endpoints", "1")) == "--set proxy.endpoints.1.port=2"


def test_many_sources_are_counted_past_three() -> None:
    sources = Sources()
    for index in range(5):
        sources.set(("proxy", "endpoints", str(index)), {}, f"--endpoint e{index}=1:http://x")

    assert sources.describe(("proxy",)) == (
        "--endpoint e0=1:http://x, --endpoint e1=1:http://x, --endpoint e2=1:http://x and 2 more"
    )


# -- words ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("abc", "'abc'"),
        (70000, "70000"),
        (1.5, "1.5"),
        (True, "true"),
        (None, "null"),
        ({"a": [1, 2, 3]}, "a mapping"),
        ([1, 2, 3], "a list"),
        ("x" * 200, repr("x" * 57) + "..."),
        (object(), None),
    ],
)
def test_values_are_shown_as_yaml_says_them_and_collections_not_dumped(
    value: object, shown: str | None
) -> None:
    assert show_value(value) == shown


def test_an_unknown_key_suggests_the_closest_known_one() -> None:
    known = ["host", "port", "endpoints", "grace_period"]
    assert unknown_key("grace_periode", known) == "unknown key; did you mean 'grace_period'?"
    assert unknown_key("zzz", known) == (
        "unknown key (the keys here are host, port, endpoints, grace_period)"
    )


def test_the_keys_of_a_nested_model_are_found_through_lists_and_optionals() -> None:
    assert keys_at(ProxySettings, ["endpoints", "0", "rewrite"]) == ["from", "to"]
    assert "http2" in (keys_at(ProxySettings, ["endpoints", "3", "request_options"]) or [])
    assert keys_at(ProxySettings, ["endpoints", "0", "state"]) is None  # any keys go there
    assert keys_at(ProxySettings, ["nothing"]) is None


def problems(data: dict[str, Any], sources: Sources | None = None) -> list[str]:
    with pytest.raises(ValidationError) as raised:
        ProxySettings.model_validate(data)
    return describe_errors(raised.value, "proxy", ProxySettings, sources)


ENDPOINT = {"name": "api", "port": 4000, "url": "http://127.0.0.1:9"}


@pytest.mark.parametrize(
    ("data", "line"),
    [
        ({"port": "abc"}, "proxy.port: must be a whole number (got 'abc')"),
        ({"port": 70000}, "proxy.port: must be at most 65535 (got 70000)"),
        ({"grace_period": -1}, "proxy.grace_period: must be at least 0 (got -1)"),
        ({"limits": {"headers": 1.5}}, "proxy.limits.headers: must be a whole number (got 1.5)"),
        ({"host": 5}, "proxy.host: must be a string (got 5)"),
        ({"endpoints": "x"}, "proxy.endpoints: must be a list (got 'x')"),
        ({"endpoints": [5]}, "proxy.endpoints.0: must be a mapping of settings (got 5)"),
        (
            {"endpoints": [{**ENDPOINT, "timeout": "abc"}]},
            "proxy.endpoints.0.timeout: must be a number of seconds (all four phases) or a "
            "mapping of connect, read, write, pool (each a number, or null: no limit) "
            "(got 'abc')",
        ),
        (
            {"endpoints": [{**ENDPOINT, "timeout": {"reed": 1}}]},
            "proxy.endpoints.0.timeout.reed: unknown key; did you mean 'read'?",
        ),
        (
            {"endpoints": [{**ENDPOINT, "via": "sometimes"}]},
            "proxy.endpoints.0.via: must be true or false (got 'sometimes')",
        ),
        (
            {"endpoints": [{**ENDPOINT, "name": ""}]},
            "proxy.endpoints.0.name: must not be empty (got '')",
        ),
        (
            {"endpoints": [{**ENDPOINT, "rewrite": {"from": "/a"}}]},
            "proxy.endpoints.0.rewrite.to: required, and not given",
        ),
        (
            {"endpoints": [{**ENDPOINT, "url": "ftp://x"}]},
            "proxy.endpoints.0.url: 'ftp://x' must be an absolute http:// or https:// URL",
        ),
        (
            {"endpoints": [ENDPOINT, ENDPOINT]},
            "proxy: two endpoints are named 'api'",
        ),
    ],
)
def test_pydantic_errors_are_said_in_plain_words(data: dict[str, Any], line: str) -> None:
    [said] = problems(data)
    assert said == line
    for pydantic_words in ("Input should", "Value error", "input_value", "Field required"):
        assert pydantic_words not in said


def test_every_problem_is_one_line() -> None:
    said = problems(
        {
            "port": "abc",
            "grace_periode": 1,
            "endpoints": [{**ENDPOINT, "request_options": {"htt2": True, "timeout": "x"}}],
        }
    )
    assert said == [
        "proxy.port: must be a whole number (got 'abc')",
        "proxy.endpoints.0.request_options.timeout: must be a number of seconds (all four "
        "phases), null (no limit), or a mapping of connect, read, write, pool (got 'x')",
        "proxy.endpoints.0.request_options.htt2: unknown key; did you mean 'http2'?",
        "proxy.grace_periode: unknown key; did you mean 'grace_period'?",
    ]


def test_the_source_follows_the_value() -> None:
    sources = Sources()
    sources.set(("proxy", "port"), "abc", "FERRYMAN_PROXY__PORT")
    sources.set(("proxy", "endpoints"), [], "a.yml")
    sources.set(("proxy", "endpoints", "0"), {"name": "api"}, "--endpoint api=1:http://a")

    assert problems({"port": "abc", "endpoints": [{"name": "api", "port": 1}]}, sources) == [
        "proxy.port: must be a whole number (got 'abc' from FERRYMAN_PROXY__PORT)",
        "proxy.endpoints.0.url: required, and not given (from --endpoint api=1:http://a)",
    ]
