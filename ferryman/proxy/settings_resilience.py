"""An endpoint's upstream settings beyond their URLs: balancing, health checks, the circuit
breaker and retries.

.. code-block:: yaml

    - name: api
      port: 4000
      url:
        - http://10.0.0.5:9000
        - {url: http://10.0.0.6:9000, weight: 3}
        - {url: http://backup.example:9000, role: fallback}   # only when every default is down
      balance: {strategy: round_robin}      # or least_outstanding
      health_check: {path: /health, interval: 5, timeout: 2}
      breaker: {consecutive_failures: 5, half_open_after: 30}
      retry: {attempts: 2, deadline: 10}

A ``url`` entry given as a mapping is read into the plain list of URLs and ``balance`` (its
``weight`` into ``balance.weights``, a ``fallback`` role into ``balance.fallback``), which is
how the effective configuration shows it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Final, Literal

from pydantic import Field, field_validator, model_validator

from ferryman.system.applications import Settings

__all__ = [
    "FAILURE_KINDS",
    "BalanceSettings",
    "BreakerSettings",
    "HealthCheckSettings",
    "RetrySettings",
    "split_upstream_entries",
]

#: What the breaker may count as an upstream's failure: ``connect`` (refused, unreachable, DNS,
#: TLS, connect timeout), ``timeout`` (no answer in time), ``broken`` (closed or malformed
#: answer), ``5xx`` (any 5xx status); or a status number (``503``).
FAILURE_KINDS: Final = ("connect", "timeout", "broken", "5xx")
Seconds = Annotated[float, Field(gt=0)]


class BalanceSettings(Settings):
    """How requests are spread over an endpoint's upstreams."""

    #: ``round_robin`` (weighted), or ``least_outstanding``: the upstream with the fewest
    #: requests in flight (ties by weight, then in order).
    strategy: Literal["round_robin", "least_outstanding"] = "round_robin"
    #: URL -> weight (1 for those not named): a weight-3 upstream gets three requests to one.
    weights: dict[str, Annotated[int, Field(ge=1, le=1000)]] = {}
    #: URLs tried only when every other (``default``) upstream is down.
    fallback: list[str] = []


class HealthCheckSettings(Settings):
    """Active probes: one task per upstream sends ``method path`` every ``interval`` seconds."""

    path: str
    method: Literal["GET", "HEAD", "OPTIONS"] = "GET"
    #: The statuses that mean healthy (default: any 2xx or 3xx).
    expect_status: list[Annotated[int, Field(ge=100, le=599)]] = []
    interval: Seconds = 5.0
    timeout: Seconds = 2.0
    #: Probes in a row that take an upstream down, and back up.
    unhealthy_after: Annotated[int, Field(ge=1, le=100)] = 2
    healthy_after: Annotated[int, Field(ge=1, le=100)] = 2

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/") or "#" in value or any(c.isspace() for c in value):
            raise ValueError("must be a path starting with '/' (no spaces, no fragment)")
        return value

    @model_validator(mode="after")
    def _timeout_within_interval(self) -> HealthCheckSettings:
        if self.timeout > self.interval:
            raise ValueError("timeout must not be longer than interval (one probe at a time)")
        return self

    def healthy(self, status: int) -> bool:
        if self.expect_status:
            return status in self.expect_status
        return 200 <= status < 400


class BreakerSettings(Settings):
    """The circuit breaker of each upstream (:mod:`ferryman.proxy.breaker`); on by default."""

    enabled: bool = True
    consecutive_failures: Annotated[int, Field(ge=1)] = 5
    #: The share of failed requests within ``window`` seconds that opens it, once at least
    #: ``min_requests`` were counted there.
    error_rate: Annotated[float, Field(gt=0, le=1)] = 0.5
    window: Seconds = 10.0
    min_requests: Annotated[int, Field(ge=1)] = 20
    #: Seconds an open breaker waits before letting probes through (half-open).
    half_open_after: Seconds = 30.0
    #: Requests let through at once when half-open; all must succeed to close it.
    half_open_requests: Annotated[int, Field(ge=1, le=100)] = 1
    #: What counts as a failure (:data:`FAILURE_KINDS`, or status numbers).
    failures: list[str | int] = ["connect", "timeout", "broken", "5xx"]

    @field_validator("failures")
    @classmethod
    def _kinds(cls, values: list[str | int]) -> list[str | int]:
        for value in values:
            if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
                if not 500 <= int(value) <= 599:
                    raise ValueError(f"{value!r}: a status counted as a failure is a 5xx")
            elif value not in FAILURE_KINDS:
                raise ValueError(
                    f"{value!r} is not a kind of failure: they are {', '.join(FAILURE_KINDS)} "
                    "or a 5xx status"
                )
        return [int(v) if isinstance(v, str) and v.isdigit() else v for v in values]

    def failing_statuses(self) -> frozenset[int]:
        """The statuses that count as failures."""
        if "5xx" in self.failures:
            return frozenset(range(500, 600))
        return frozenset(value for value in self.failures if isinstance(value, int))


class RetrySettings(Settings):
    """Sending a failed request again, on another upstream when there is one.

    A request that reached no upstream (refused, unreachable) goes again whatever its method:
    nothing was sent. One that may have reached it (a ``statuses`` answer, and with ``on``
    saying so a timeout or a broken answer) goes again only when its method is idempotent, or
    ``unsafe_methods`` allows it, and its body, if any, was read whole (``request_buffer``
    bytes at most) so that the same bytes go again; never once a byte of an answer other than
    a ``statuses`` one came, nor once the client got one.
    """

    #: Tries after the first (0: none).
    attempts: Annotated[int, Field(ge=0, le=10)] = 2
    #: The failures without an answer that make a request go again: ``connect`` (nothing was
    #: sent), and, only if listed, ``timeout`` and ``broken`` (closed or malformed before one
    #: byte of an answer): the upstream may have acted on those, so by default a request is
    #: executed once, as an upstream that hangs or crashes sees it.
    on: list[Literal["connect", "timeout", "broken"]] = ["connect"]
    #: Statuses that make an idempotent request go again (with the upstream's ``Retry-After``
    #: respected: a longer one than the deadline allows gives the client that answer); none
    #: by default, as nginx (``[502, 503, 504]`` is the usual choice for an API that says
    #: 503 when it is overloaded).
    statuses: list[Annotated[int, Field(ge=500, le=599)]] = []
    #: Retry POST, PATCH... too (their body replayable): only for APIs whose calls are safe
    #: to repeat (idempotency keys).
    unsafe_methods: bool = False
    #: Exponential backoff with full jitter: a random wait up to ``backoff * 2**(try - 1)``,
    #: at most ``max_backoff``.
    backoff: Annotated[float, Field(ge=0)] = 0.05
    max_backoff: Annotated[float, Field(ge=0)] = 2.0
    #: Seconds from the request's first try within which every try ends: no try starts
    #: after it, and a later try still waiting for its answer's head then is cut off (a
    #: 504). The first try is bounded by the endpoint's ``timeout`` alone (one longer than
    #: the deadline leaves no time for another).
    deadline: Seconds = 10.0


def split_upstream_entries(endpoint: Mapping[str, Any]) -> Mapping[str, Any]:
    """An endpoint's raw settings with ``url`` entries given as mappings (``{url, role,
    weight}``) turned into plain URLs and ``balance`` entries; anything else as it came (the
    fields' own validation says what is wrong)."""
    urls = endpoint.get("url")
    if not isinstance(urls, list) or not any(isinstance(entry, Mapping) for entry in urls):
        return endpoint
    plain: list[Any] = []
    balance = endpoint.get("balance")
    balance = dict(balance) if isinstance(balance, Mapping) else {}
    weights = dict(balance.get("weights") or {})
    fallback = list(balance.get("fallback") or [])
    for entry in urls:
        if not isinstance(entry, Mapping):
            plain.append(entry)
            continue
        unknown = set(entry) - {"url", "role", "weight"}
        if unknown or "url" not in entry:
            raise ValueError(
                "an upstream given as a mapping has 'url' and may have 'role' (default or "
                f"fallback) and 'weight'; got {sorted(map(str, entry))}"
            )
        url = entry["url"]
        plain.append(url)
        role = entry.get("role", "default")
        if role not in ("default", "fallback"):
            raise ValueError(f"{url!r}: role must be 'default' or 'fallback', got {role!r}")
        if role == "fallback":
            fallback.append(url)
        if "weight" in entry:
            weights[url] = entry["weight"]
    if weights:
        balance["weights"] = weights
    if fallback:
        balance["fallback"] = fallback
    return {**endpoint, "url": plain, "balance": balance}


def check_balance(urls: list[str], balance: BalanceSettings) -> None:
    """The weights and fallbacks name the endpoint's URLs, and some upstream is a default."""
    for url in [*balance.weights, *balance.fallback]:
        if url not in urls:
            raise ValueError(f"balance names {url!r}, which is not one of the endpoint's url")
    if balance.fallback and all(url in balance.fallback for url in urls):
        raise ValueError("every upstream is a fallback: at least one must be a default")
