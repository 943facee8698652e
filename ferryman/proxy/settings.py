"""The ``proxy`` configuration: where it listens and, per endpoint, where it sends traffic.

.. code-block:: yaml

    proxy:
      host: 127.0.0.1            # every listening socket binds here unless --host says otherwise
      port: 4080                 # the kernel's own port: path-prefix endpoints and mounted apps
      endpoints:
        - name: payments
          port: 4000             # its own port ...
          url: https://api.payments.example   # or a list: round robin, the next on refusal
          timeout: {connect: 5, read: 30}
          request_headers: {add: {X-Team: core}, remove: [Cookie]}
          response_headers: {remove: [Server]}
        - name: maps
          path: /maps            # ... or a path prefix on proxy.port
          url: http://127.0.0.1:9000
          rewrite: {from: /maps, to: /}
          preserve_host: true
          state: {tier: gold}    # each request's ctx.state starts as a copy
          request_options: {http2: true}   # passed to the http client for each request
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ferryman.client.config import Timeout
from ferryman.exceptions import InvalidURL
from ferryman.http.url import URL
from ferryman.proxy.headers import HeaderRules
from ferryman.proxy.rewrite import Rewrite
from ferryman.system.applications import Settings

__all__ = [
    "DEFAULT_PORT",
    "EndpointSettings",
    "HeaderRulesSettings",
    "ProxySettings",
    "RewriteSettings",
    "TimeoutSettings",
]

DEFAULT_PORT = 4080
Port = Annotated[int, Field(ge=0, le=65535)]
Seconds = Annotated[float, Field(gt=0)]


class TimeoutSettings(Settings):
    """Seconds allowed to reach the upstream; ``null`` waits forever (a long poll, a stream)."""

    connect: Seconds | None = 5.0
    read: Seconds | None = 60.0
    write: Seconds | None = 60.0
    pool: Seconds | None = 5.0

    def to_timeout(self) -> Timeout:
        return Timeout(connect=self.connect, read=self.read, write=self.write, pool=self.pool)


class HeaderRulesSettings(Settings):
    add: dict[str, str] = {}
    remove: list[str] = []

    def to_rules(self) -> HeaderRules:
        return HeaderRules(add=self.add.items(), remove=self.remove)


class RewriteSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    rfrom: str = Field(alias="from")
    rto: str = Field(alias="to")

    @model_validator(mode="after")
    def _check(self) -> RewriteSettings:
        Rewrite(self.rfrom, self.rto)  # raises ValueError with the reason
        return self

    def to_rewrite(self) -> Rewrite:
        return Rewrite(self.rfrom, self.rto)


class EndpointSettings(Settings):
    name: Annotated[str, Field(min_length=1)]
    port: Port | None = None
    path: str | None = None
    url: list[str]
    timeout: TimeoutSettings = TimeoutSettings()
    request_headers: HeaderRulesSettings = HeaderRulesSettings()
    response_headers: HeaderRulesSettings = HeaderRulesSettings()
    preserve_host: bool = False
    rewrite: RewriteSettings | None = None
    state: dict[str, Any] = {}
    request_options: dict[str, Any] = {}

    @field_validator("url", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("url")
    @classmethod
    def _upstream_urls(cls, urls: list[str]) -> list[str]:
        if not urls:
            raise ValueError("at least one upstream URL is needed")
        for url in urls:
            try:
                parsed = URL(url)
            except InvalidURL as exc:
                raise ValueError(f"{url!r} is not a URL: {exc}") from None
            if parsed.scheme not in ("http", "https") or not parsed.host:
                raise ValueError(f"{url!r} must be an absolute http:// or https:// URL")
            if parsed.query or parsed.fragment:
                raise ValueError(f"{url!r} must not have a query or a fragment")
        return urls

    @field_validator("timeout", mode="before")
    @classmethod
    def _seconds_for_all(cls, value: Any) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return {"connect": value, "read": value, "write": value, "pool": value}
        return value

    @model_validator(mode="after")
    def _port_or_path(self) -> EndpointSettings:
        if (self.port is None) == (self.path is None):
            raise ValueError("an endpoint listens on its own 'port' or under a 'path', one of them")
        if self.path is not None and (not self.path.startswith("/") or self.path == "/"):
            raise ValueError(f"path must start with '/' and not be '/' alone, got {self.path!r}")
        return self

    @property
    def upstreams(self) -> list[URL]:
        return [URL(url) for url in self.url]


class ProxySettings(Settings):
    host: str = "127.0.0.1"
    port: Port = DEFAULT_PORT
    endpoints: list[EndpointSettings] = []
    #: Seconds that in-flight requests get to finish after SIGTERM/SIGINT.
    grace_period: Annotated[float, Field(ge=0)] = 10.0

    @model_validator(mode="after")
    def _unique(self) -> ProxySettings:
        names: set[str] = set()
        ports: dict[int, str] = {}
        paths: set[str] = set()
        for endpoint in self.endpoints:
            if endpoint.name in names:
                raise ValueError(f"two endpoints are named {endpoint.name!r}")
            names.add(endpoint.name)
            if endpoint.port is not None and endpoint.port != 0:
                if endpoint.port == self.port:
                    raise ValueError(
                        f"endpoint {endpoint.name!r} uses port {endpoint.port}, which is "
                        "proxy.port (the kernel's port; give it a 'path' there instead)"
                    )
                other = ports.setdefault(endpoint.port, endpoint.name)
                if other != endpoint.name:
                    raise ValueError(
                        f"endpoints {other!r} and {endpoint.name!r} both use port {endpoint.port}"
                    )
            if endpoint.path is not None:
                key = endpoint.path.rstrip("/")
                if key in paths:
                    raise ValueError(f"two endpoints use the path {endpoint.path!r}")
                paths.add(key)
        return self
