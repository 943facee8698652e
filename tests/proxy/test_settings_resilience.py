"""An endpoint's upstream roles, weights, health checks, breaker and retry settings."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from ferryman.proxy.settings import EndpointSettings


def endpoint(**values: Any) -> EndpointSettings:
    return EndpointSettings.model_validate(
        {"name": "api", "port": 4000, "url": "http://127.0.0.1:9000", **values}
    )


def test_the_defaults_keep_one_url_working_with_a_breaker_and_retries() -> None:
    settings = endpoint()
    assert settings.url == ["http://127.0.0.1:9000"]
    assert settings.breaker.enabled and settings.breaker.consecutive_failures == 5
    assert settings.retry.attempts == 2 and settings.retry.unsafe_methods is False
    assert settings.retry.on == ["connect"] and settings.retry.statuses == []
    assert settings.health_check is None
    assert settings.balance.strategy == "round_robin"


def test_upstreams_given_as_mappings_become_urls_weights_and_fallbacks() -> None:
    settings = endpoint(
        url=[
            "http://a:1",
            {"url": "http://b:1", "weight": 3},
            {"url": "http://c:1", "role": "fallback"},
        ]
    )
    assert settings.url == ["http://a:1", "http://b:1", "http://c:1"]
    assert settings.balance.weights == {"http://b:1": 3}
    assert settings.balance.fallback == ["http://c:1"]
    # What `ferryman config` prints loads back to the same.
    again = EndpointSettings.model_validate(settings.model_dump(by_alias=True))
    assert again.url == settings.url and again.balance == settings.balance


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"url": [{"url": "http://a:1", "role": "backup"}]}, "role must be 'default' or"),
        ({"url": [{"url": "http://a:1", "priority": 1}]}, "may have 'role'"),
        ({"url": [{"url": "http://a:1", "role": "fallback"}]}, "every upstream is a fallback"),
        ({"balance": {"weights": {"http://x:1": 2}}}, "not one of the endpoint's url"),
        ({"balance": {"strategy": "random"}}, "round_robin"),
        ({"breaker": {"failures": ["teapot"]}}, "is not a kind of failure"),
        ({"breaker": {"failures": [404]}}, "a status counted as a failure is a 5xx"),
        ({"breaker": {"error_rate": 1.5}}, "less than or equal to 1"),
        ({"health_check": {"path": "health"}}, "must be a path starting with '/'"),
        ({"health_check": {"path": "/h", "interval": 1, "timeout": 2}}, "not be longer"),
        ({"retry": {"statuses": [429]}}, "greater than or equal to 500"),
        ({"retry": {"attempts": 50}}, "less than or equal to 10"),
    ],
)
def test_mistakes_are_named(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as exc:
        endpoint(**values)
    assert message in str(exc.value)


def test_failure_kinds_and_statuses() -> None:
    settings = endpoint(breaker={"failures": ["connect", "503", 502]})
    assert settings.breaker.failing_statuses() == frozenset({502, 503})
    assert endpoint().breaker.failing_statuses() == frozenset(range(500, 600))
