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
          trusted_proxies: [10.0.0.0/8]      # whose X-Forwarded-*/Forwarded are believed
          underscores_in_headers: false      # request header names with "_" are dropped
          via: true                          # add Via both ways
          redirect_rewrite: true             # the upstream's URLs in Location... -> ours
        - name: maps
          path: /maps            # ... or a path prefix on proxy.port
          url: http://127.0.0.1:9000
          rewrite: {from: /maps, to: /}
          preserve_host: true
          state: {tier: gold}    # each request's ctx.state starts as a copy
          request_options: {http2: true}   # passed to the http client for each request
      limits: {head: 65536, body: 67108864, listener_body: 1048576}  # every endpoint's defaults
      client_timeout: {head: 10, keepalive: 75}  # defaults for every endpoint (below)

Every listening socket bounds what a client may send and how slowly (``limits``,
``client_timeout``); ``proxy.limits`` and ``proxy.client_timeout`` are the defaults, and an
endpoint's own blocks override them field by field. The kernel's port (path-prefix endpoints)
reads heads under the proxy's defaults; the body limit and request buffering are an endpoint's.
"""

from __future__ import annotations

import ipaddress
import os
import ssl
from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated, Any, Final, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_serializer,
    model_validator,
)

from ferryman.client.config import Timeout, to_timeout
from ferryman.client.routing import check_proxies
from ferryman.exceptions import InvalidURL
from ferryman.http.url import URL
from ferryman.proxy.headers import HeaderRules
from ferryman.proxy.rewrite import Rewrite
from ferryman.proxy.settings_resilience import (
    BalanceSettings,
    BreakerSettings,
    HealthCheckSettings,
    RetrySettings,
    check_balance,
    split_upstream_entries,
)
from ferryman.server.protocol import ServerLimits
from ferryman.system.applications import Settings

__all__ = [
    "DEFAULT_PORT",
    "ClientTimeoutSettings",
    "EndpointSettings",
    "HeaderRulesSettings",
    "LimitSettings",
    "ProxySettings",
    "RequestOptions",
    "RewriteSettings",
    "TimeoutSettings",
    "is_loopback",
]

DEFAULT_PORT = 4080
Port = Annotated[int, Field(ge=0, le=65535)]
Seconds = Annotated[float, Field(gt=0)]
Size = Annotated[int, Field(gt=0)]
#: What a timeout mapping may hold, in both ``timeout`` and ``request_options.timeout``.
TIMEOUT_PHASES: Final = ("connect", "read", "write", "pool")
#: ``AsyncClient.send``'s event handler options: functions, which only Python can give.
HANDLER_OPTIONS: Final = (
    "pre_request",
    "on_headers",
    "post_request",
    "data_received",
    "data_processed",
)


class LimitSettings(Settings):
    """What one request (and one upstream answer) may hold; past a limit the client gets the
    status in the comment, the upstream's answer a 502. The defaults are nginx's and Apache's
    orders of magnitude: far above what an API call needs, far below what hurts the proxy."""

    request_line: Size = 8192  # bytes of the request line: 414
    header: Size = 8192  # one header field, name and value: 431
    head: Size = 65536  # the request line and every header: 431 (trailers: 400)
    headers: Size = 100  # header fields: 431 (trailers too: 400)
    body: Size | None = 64 * 1024 * 1024  # request body bytes: 413; null: no limit
    response_head: Size = 65536  # an upstream answer's head: 502
    response_headers: Size = 100  # an upstream answer's header fields: 502
    #: Body bytes an async listener or middleware may read whole on the fast relay
    #: (``await request.aread()``: 413 past it; ``await response.aread()``: the listener
    #: fails, 500); null: no limit. Bodies nobody reads stream, whatever their size.
    listener_body: Size | None = 1024 * 1024


class ClientTimeoutSettings(Settings):
    """Seconds a client may take on its side of an exchange; past one, the connection closes
    (with a 408 when an answer can still be given). The proxy's view of slowloris."""

    head: Seconds = 10.0  # from a request head's first byte to its end
    body_idle: Seconds = 30.0  # without a byte of the request body
    #: Bytes per second a request body must average: it has body_idle seconds, plus one more
    #: for every body_min_rate bytes received (Apache's mod_reqtimeout MinRate). 0: no rate.
    body_min_rate: Annotated[float, Field(ge=0)] = 500.0
    keepalive: Seconds = 75.0  # idle between requests
    send: Seconds = 60.0  # the client reading nothing of the answer while its socket is full
    tunnel_idle: Seconds = 600.0  # an upgraded connection (a WebSocket) silent both ways


class TimeoutSettings(Settings):
    """Seconds allowed to reach the upstream; ``null`` waits forever (a long poll, a stream)."""

    connect: Seconds | None = 5.0
    read: Seconds | None = 60.0
    write: Seconds | None = 60.0
    pool: Seconds | None = 5.0

    def to_timeout(self) -> Timeout:
        return Timeout(connect=self.connect, read=self.read, write=self.write, pool=self.pool)


class RequestOptions(Settings):
    """An endpoint's ``request_options``: what it passes to ``AsyncClient.send`` for each
    upstream call, checked when the configuration is loaded, as the client will take them (a
    misspelt name was a traceback at start-up, and ``timeout: abc`` a 500 for every request).

    The fields are ``send``'s keyword options but ``stream`` (the proxy streams every answer);
    only those given are passed (:meth:`to_options`), so the session's own settings stand for
    the others. The event handlers (``pre_request``...) take functions, which only Python gives
    (``HTTPProxyHandler(request_options=...)``), not a configuration file.
    """

    allow_redirects: bool = False
    max_redirects: Annotated[int, Field(ge=0)] | None = None
    decompress: bool | None = None
    #: Seconds for all four phases, a mapping of some of them, or null: no limit.
    timeout: Any = None
    #: true, false (no verification), a CA bundle file or directory, or an ``ssl.SSLContext``.
    verify: Any = None
    #: A PEM file with the client certificate and key, or ``[cert, key]``/``[cert, key,
    #: password]``.
    cert: Any = None
    #: ``{http: URL, https: URL, all: URL, ws: ..., wss: ...}``; null for none.
    proxies: Any = None
    http2: bool | None = None
    pool_size: Annotated[int, Field(gt=0)] | None = None
    pre_request: Any = None
    on_headers: Any = None
    post_request: Any = None
    data_received: Any = None
    data_processed: Any = None

    def to_options(self) -> dict[str, Any]:
        """The keyword arguments for ``send``: the options given, no default added."""
        given = self.model_fields_set
        return {name: getattr(self, name) for name in type(self).model_fields if name in given}

    @model_serializer(mode="plain")
    def _dump(self) -> dict[str, Any]:
        # What a dump prints, and loads back to the same: the options given, not every default.
        return self.to_options()

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            for phase, seconds in value.items():
                if phase not in TIMEOUT_PHASES:
                    raise ValueError(
                        f"{phase!r} is not a timeout phase: they are {', '.join(TIMEOUT_PHASES)}"
                    )
                if seconds is not None and not _is_seconds(seconds):
                    raise ValueError(f"{phase} must be a number of seconds or null (no limit)")
        elif not (value is None or isinstance(value, Timeout) or _is_seconds(value)):
            raise ValueError(
                "must be a number of seconds (all four phases), null (no limit), or a mapping "
                f"of {', '.join(TIMEOUT_PHASES)}"
            )
        try:
            to_timeout(value)  # what send() does with it: anything it refuses, refused now
        except (TypeError, ValueError) as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("verify")
    @classmethod
    def _verify(cls, value: Any) -> Any:
        if isinstance(value, bool | ssl.SSLContext):
            return value
        if isinstance(value, str | os.PathLike):
            if not os.path.exists(value):
                raise ValueError(f"there is no CA bundle file or directory at {value!r}")
            return value
        raise ValueError(
            "must be true, false (no verification) or the path of a CA bundle file or directory"
        )

    @field_validator("cert")
    @classmethod
    def _cert(cls, value: Any) -> Any:
        if value is None:
            return None
        files: tuple[Any, ...]
        if isinstance(value, str | os.PathLike):
            files = (value,)
        elif isinstance(value, list | tuple) and len(value) in (2, 3):
            files = tuple(value)
            value = files  # the client takes a tuple, and pools are keyed by it (hashable)
        else:
            raise ValueError(
                "must be the path of a PEM file with the certificate and its key, or a list "
                "[certificate, key] or [certificate, key, password]"
            )
        if not all(isinstance(part, str | os.PathLike) for part in files):
            raise ValueError("the certificate, key and password must be strings")
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_cert_chain(*files)
        except OSError as exc:  # ssl.SSLError included
            reason = exc.strerror or getattr(exc, "reason", None) or str(exc)
            raise ValueError(f"cannot load the client certificate {files[0]!r}: {reason}") from None
        return value

    @field_validator("proxies")
    @classmethod
    def _proxies(cls, value: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise ValueError("must be a mapping of http, https, all, ws or wss to a proxy URL")
        check_proxies(value)  # the keys the client looks up
        for scheme, proxy in value.items():
            if proxy is None or proxy == "":
                continue
            try:
                url = URL(str(proxy))
            except InvalidURL as exc:
                raise ValueError(f"{scheme}: {proxy!r} is not a URL: {exc}") from None
            if url.scheme not in ("http", "https") or not url.host:
                raise ValueError(f"{scheme}: {proxy!r} must be an http:// or https:// URL")
        return value

    @field_validator(*HANDLER_OPTIONS)
    @classmethod
    def _handlers(cls, value: Any) -> Any:
        if value is None or callable(value):
            return value
        if isinstance(value, Iterable) and not isinstance(value, str | bytes | Mapping):
            handlers = list(value)
            if all(callable(handler) for handler in handlers):
                return handlers
        raise ValueError(
            "must be a function or a list of functions, given from Python: a configuration "
            "file cannot give one"
        )


def _is_seconds(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


class HeaderRulesSettings(Settings):
    """Headers to add and remove in one direction; they apply to ferryman's own headers too
    (``remove: [Via]``), never to ``Host`` or the framing headers (refused)."""

    add: dict[str, str] = {}
    remove: list[str] = []

    @model_validator(mode="after")
    def _check(self) -> HeaderRulesSettings:
        self.to_rules()  # raises ValueError with the reason
        return self

    def to_rules(
        self,
        *,
        via: bool = True,
        trusted_proxies: Sequence[str] = (),
        underscores: bool = False,
        redirects: bool = True,
    ) -> HeaderRules:
        """The rules, with the endpoint's switches (see :class:`HeaderRules`)."""
        return HeaderRules(
            add=self.add.items(),
            remove=self.remove,
            via=via,
            trusted_proxies=trusted_proxies,
            underscores=underscores,
            redirects=redirects,
        )


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
    request_options: RequestOptions = RequestOptions()
    limits: LimitSettings = LimitSettings()
    client_timeout: ClientTimeoutSettings = ClientTimeoutSettings()
    #: Request bodies up to this many bytes are read whole before an upstream connection is
    #: taken, so that a slow client holds none; longer ones stream once this much has come.
    request_buffer: Annotated[int, Field(ge=0)] = 65536
    #: The ``Upgrade`` protocols relayed (case-insensitive); a request asking for another is
    #: relayed as plain HTTP, without its Upgrade (RFC 9110 section 7.8 lets a server ignore it).
    upgrades: list[str] = ["websocket"]
    #: Addresses and networks (CIDR) whose forwarding headers are kept and extended; from any
    #: other client they are replaced by this hop's own.
    trusted_proxies: list[str] = []
    #: Relay request header names with underscores (nginx's ``underscores_in_headers``).
    underscores_in_headers: bool = False
    #: Add ``Via`` to what is relayed, both ways.
    via: bool = True
    #: Rewrite the upstream's own URLs in ``Location``, ``Content-Location`` and ``Refresh``
    #: to the proxy's (nginx's ``proxy_redirect default``).
    redirect_rewrite: bool = True
    #: Spreading requests over the upstreams, probing them, and what happens when they fail
    #: (:mod:`ferryman.proxy.settings_resilience`).
    balance: BalanceSettings = BalanceSettings()
    health_check: HealthCheckSettings | None = None
    breaker: BreakerSettings = BreakerSettings()
    retry: RetrySettings = RetrySettings()

    @model_validator(mode="before")
    @classmethod
    def _upstream_entries(cls, value: Any) -> Any:
        return split_upstream_entries(value) if isinstance(value, Mapping) else value

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

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, entries: list[str]) -> list[str]:
        for entry in entries:
            try:
                ipaddress.ip_network(entry)
            except ValueError as exc:
                raise ValueError(f"{entry!r} is not an IP address or network ({exc})") from None
        return entries

    @field_validator("timeout", mode="before")
    @classmethod
    def _seconds_for_all(cls, value: Any) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return dict.fromkeys(TIMEOUT_PHASES, value)
        if not isinstance(value, Mapping | TimeoutSettings):
            raise ValueError(
                "must be a number of seconds (all four phases) or a mapping of "
                f"{', '.join(TIMEOUT_PHASES)} (each a number, or null: no limit)"
            )
        return value

    @model_validator(mode="after")
    def _port_or_path(self) -> EndpointSettings:
        if (self.port is None) == (self.path is None):
            raise ValueError("an endpoint listens on its own 'port' or under a 'path', one of them")
        if self.path is not None and (not self.path.startswith("/") or self.path == "/"):
            raise ValueError(f"path must start with '/' and not be '/' alone, got {self.path!r}")
        check_balance(self.url, self.balance)
        return self

    @property
    def upstreams(self) -> list[URL]:
        return [URL(url) for url in self.url]

    def server_limits(self) -> ServerLimits:
        """What the endpoint's own port allows a client."""
        return server_limits(self.limits, self.client_timeout, self.upgrades)

    def request_rules(self) -> HeaderRules:
        """What the endpoint does to request headers: its rules and switches."""
        return self.request_headers.to_rules(
            via=self.via,
            trusted_proxies=self.trusted_proxies,
            underscores=self.underscores_in_headers,
        )

    def response_rules(self) -> HeaderRules:
        """What the endpoint does to response headers: its rules and switches."""
        return self.response_headers.to_rules(via=self.via, redirects=self.redirect_rewrite)


class ProxySettings(Settings):
    host: str = "127.0.0.1"
    port: Port = DEFAULT_PORT
    endpoints: list[EndpointSettings] = []
    #: Seconds that in-flight requests get to finish after SIGTERM/SIGINT.
    grace_period: Annotated[float, Field(ge=0)] = 10.0
    #: The defaults of every endpoint's ``limits`` and ``client_timeout`` (and the kernel
    #: port's own).
    limits: LimitSettings = LimitSettings()
    client_timeout: ClientTimeoutSettings = ClientTimeoutSettings()

    def server_limits(self) -> ServerLimits:
        """What the kernel's port allows a client (its path-prefix endpoints included)."""
        return server_limits(self.limits, self.client_timeout)

    @model_validator(mode="after")
    def _inherit(self) -> ProxySettings:
        """An endpoint's ``limits`` and ``client_timeout`` start from the proxy's: the fields
        it sets itself override those."""
        for endpoint in self.endpoints:
            endpoint.limits = _override(self.limits, endpoint.limits)
            endpoint.client_timeout = _override(self.client_timeout, endpoint.client_timeout)
        return self

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


def server_limits(
    limits: LimitSettings, timeouts: ClientTimeoutSettings, upgrades: list[str] | None = None
) -> ServerLimits:
    return ServerLimits(
        request_line=limits.request_line,
        header=limits.header,
        head=limits.head,
        headers=limits.headers,
        body=limits.body,
        head_timeout=timeouts.head,
        body_idle=timeouts.body_idle,
        body_min_rate=timeouts.body_min_rate,
        keepalive=timeouts.keepalive,
        send_timeout=timeouts.send,
        tunnel_idle=timeouts.tunnel_idle,
        upgrades=("websocket",) if upgrades is None else upgrades,
    )


_S = TypeVar("_S", bound=Settings)


def _override(defaults: _S, own: _S) -> _S:
    """``defaults`` with the fields ``own`` was given explicitly."""
    if not own.model_fields_set:
        return defaults.model_copy()
    merged = defaults.model_copy(update={name: getattr(own, name) for name in own.model_fields_set})
    merged.__pydantic_fields_set__ = set(defaults.model_fields_set | own.model_fields_set)
    return merged


def is_loopback(host: str) -> bool:
    """``127.0.0.1``, ``::1``, ``localhost``: reachable from this machine only. Any other
    name (which may resolve anywhere) and ``""``/``0.0.0.0`` (every interface) are not."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
