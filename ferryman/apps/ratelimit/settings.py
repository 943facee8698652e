"""The ``ratelimit`` settings: per endpoint inbound limits, per upstream outbound budgets.

.. code-block:: yaml

    applications: [proxy, accesslog, metrics, ratelimit]
    ratelimit:
      redis: {url: "redis://127.0.0.1:6379/0"}   # optional: shared by every worker and host
      endpoints:
        payments:                  # an endpoint's name (proxy.endpoints)
          requests: 100            # tokens ...
          per: 60                  # ... per this many seconds (1 by default)
          burst: 20                # the most at once (default: requests)
          key: client              # or "header:X-Tenant", or "api_key:X-Api-Key"
      upstreams:
        - url: https://api.payments.example    # every endpoint relaying there shares it
          requests: 50
          per: 1
          max_wait: 2              # seconds a request may wait for its turn, then 429
          max_waiters: 1000        # requests waiting at once, beyond: 429

Every limit is a token bucket (as GCRA computes it: one timestamp per key), so ``burst``
requests may come at once and then ``requests`` per ``per`` seconds.
"""

from __future__ import annotations

import re
from typing import Annotated, Final

from pydantic import Field, field_validator, model_validator

from ferryman.exceptions import InvalidURL
from ferryman.http.url import URL
from ferryman.system.applications import Settings

__all__ = [
    "BudgetSettings",
    "EndpointLimitSettings",
    "LimitKey",
    "RateLimitSettings",
    "RedisSettings",
]

Seconds = Annotated[float, Field(gt=0)]
#: A header name as RFC 9110 section 5.1 allows it (a token).
_TOKEN: Final = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


class LimitKey:
    """What a request's bucket is found by: its client's address, a header's value, or an API
    key (a header's value, kept only as a hash: buckets hold no secret)."""

    __slots__ = ("header", "kind")

    def __init__(self, kind: str, header: bytes | None = None) -> None:
        self.kind = kind
        #: The header's lower-case name (``None`` for ``client``).
        self.header = header

    @classmethod
    def parse(cls, text: str) -> LimitKey:
        kind, _, header = text.partition(":")
        kind = kind.strip()
        header = header.strip()
        if kind == "client" and not header:
            return cls("client")
        if kind in ("header", "api_key"):
            if not _TOKEN.match(header):
                raise ValueError(
                    f"{text!r}: {kind} needs a header name after the colon ({kind}:X-Api-Key)"
                )
            return cls(kind, header.lower().encode("ascii"))
        raise ValueError(
            f"{text!r} is not a key: it is 'client' (the client's address), "
            "'header:NAME' (that header's value) or 'api_key:NAME' (that header's value, kept "
            "as a hash)"
        )

    def __str__(self) -> str:
        return self.kind if self.header is None else f"{self.kind}:{self.header.decode()}"


class _Rate(Settings):
    requests: Annotated[float, Field(gt=0)]
    per: Seconds = 1.0
    #: The most requests at once (a full bucket); default: ``requests``.
    burst: Annotated[int, Field(ge=1)] | None = None

    @property
    def interval(self) -> float:
        """Seconds between two tokens."""
        return self.per / self.requests

    @property
    def capacity(self) -> int:
        return self.burst if self.burst is not None else max(1, int(self.requests))


class EndpointLimitSettings(_Rate):
    """One endpoint's inbound limit: a bucket per key."""

    key: str = "client"
    #: Keys (buckets) remembered in memory at once; past it the least recently used is
    #: forgotten (it starts full again). Idle buckets, full anyway, are forgotten first.
    max_keys: Annotated[int, Field(ge=1)] = 100_000

    @field_validator("key")
    @classmethod
    def _key(cls, value: str) -> str:
        LimitKey.parse(value)
        return value

    @property
    def limit_key(self) -> LimitKey:
        return LimitKey.parse(self.key)


class BudgetSettings(_Rate):
    """One upstream's outbound budget, shared by every endpoint relaying to it."""

    url: str
    #: Seconds a request may wait for its turn; a request that would wait longer gets a 429
    #: at once (it could not make it in time).
    max_wait: Annotated[float, Field(ge=0)] = 2.0
    #: Requests waiting for their turn at once; past it, 429.
    max_waiters: Annotated[int, Field(ge=1)] = 1000

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        try:
            url = URL(value)
        except InvalidURL as exc:
            raise ValueError(f"{value!r} is not a URL: {exc}") from None
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"{value!r} must be an absolute http:// or https:// URL")
        return value

    @property
    def origin(self) -> str:
        """``scheme://host[:port]``, as the relay's pools name their upstream (``UpstreamPool``)."""
        url = URL(self.url)
        return f"{url.scheme}://{url.host_header.decode('ascii')}"


class RedisSettings(Settings):
    """Where the buckets live when every worker and host must share them."""

    url: str = "redis://127.0.0.1:6379/0"
    #: Seconds one round trip (a batch of decisions) may take; past it the batch fails open.
    timeout: Seconds = 0.25
    #: Seconds Redis is left alone after it failed (decisions fail open meanwhile).
    retry_interval: Seconds = 1.0
    #: Decisions waiting for Redis at once; past it, requests fail open.
    max_pending: Annotated[int, Field(ge=1)] = 10_000
    prefix: str = "ferryman:ratelimit:"

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"{value!r} must be a redis://, rediss:// or unix:// URL")
        return value


class RateLimitSettings(Settings):
    """Validated ``ratelimit`` settings (see the module documentation)."""

    #: ``null``: the buckets are this process's (each worker counts its own).
    redis: RedisSettings | None = None
    endpoints: dict[str, EndpointLimitSettings] = {}
    upstreams: list[BudgetSettings] = []

    @property
    def secret_headers(self) -> frozenset[str]:
        """The headers ``api_key:NAME`` keys read: their values are the clients' keys, which
        the buckets keep only as hashes and nothing else may keep in clear."""
        return frozenset(
            key.header.decode("ascii")
            for limit in self.endpoints.values()
            if (key := limit.limit_key).kind == "api_key" and key.header is not None
        )

    @model_validator(mode="after")
    def _one_budget_per_upstream(self) -> RateLimitSettings:
        seen: dict[str, int] = {}
        for index, budget in enumerate(self.upstreams):
            other = seen.setdefault(budget.origin, index)
            if other != index:
                raise ValueError(
                    f"upstreams.{other} and upstreams.{index} both name {budget.origin}: one "
                    "budget per upstream"
                )
        return self
