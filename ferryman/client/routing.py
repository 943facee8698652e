"""Which transport a request goes through: the session's pool, a proxy, or a pool built for a
request's own ``verify``/``cert``/``http2`` settings.

Pools are built lazily and kept for the life of the client, one per distinct setting, so that a
per-request override still gets connection reuse. With no proxy configured and no override, the
choice is one attribute read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ferryman.client.cache.layer import CachingTransport, HttpCache
from ferryman.client.config import UNSET
from ferryman.client.environment import (
    get_environment_no_proxy,
    get_environment_proxies,
    proxy_for_url,
)
from ferryman.client.filtering import AsyncFilterableTransport, AsyncTransport
from ferryman.client.transport.http11 import (
    DEFAULT_MAX_RESPONSE_HEAD,
    DEFAULT_MAX_RESPONSE_HEADERS,
)
from ferryman.client.transport.pool import AsyncConnectionPool
from ferryman.client.transport.proxy import AsyncHTTPProxy
from ferryman.events import EventDispatcher
from ferryman.http.url import URL

__all__ = ["TransportRouter", "check_proxies"]

_PROXY_KEYS = frozenset({"http", "https", "all", "ws", "wss"})


class TransportRouter:
    def __init__(
        self,
        *,
        verify: Any,
        cert: Any,
        proxies: Mapping[str, str | URL | None] | None,
        trust_env: bool,
        pool_size: int,
        max_connections: int | None,
        keepalive_expiry: float | None,
        retries: int,
        http1: bool,
        http2: bool,
        transport: AsyncTransport | None,
        dispatcher: EventDispatcher | None,
        max_response_head_size: int | None = DEFAULT_MAX_RESPONSE_HEAD,
        max_response_headers: int | None = DEFAULT_MAX_RESPONSE_HEADERS,
        cache: HttpCache | None = None,
    ) -> None:
        self.dispatcher = dispatcher
        self.cache = cache
        self._verify = verify
        self._cert = cert
        self._http2 = http2
        self._pool_size = pool_size
        self._options: dict[str, Any] = {
            "trust_env": trust_env,
            "max_connections_per_origin": pool_size,
            "max_connections": max_connections,
            "keepalive_expiry": keepalive_expiry,
            "retries": retries,
            "max_response_head_size": max_response_head_size,
            "max_response_headers": max_response_headers,
        }
        if http2 or not http1:
            self._options.update(http1=http1)
        self._own_transport = transport is None
        self._proxies: dict[str, str | None] = {}
        self._no_proxy: str | None = None
        if trust_env:
            self._proxies.update(get_environment_proxies())
            self._no_proxy = get_environment_no_proxy()
        if proxies:
            self._proxies.update(check_proxies(proxies))
        self._transports: dict[Any, AsyncTransport] = {}
        if transport is None:
            self.default = self._build((verify, cert, http2, None, pool_size))
        else:
            self.default = self._wrap(transport)
            self._transports[None] = self.default
        # What select() answers for a request that overrides nothing, when that does not
        # depend on its URL (None when proxies route by URL): the client's hot path reads it
        # instead of calling select().
        self.unrouted: AsyncTransport | None = (
            self.default if not self._proxies or not self._own_transport else None
        )

    def select(
        self,
        url: URL,
        verify: Any,
        cert: Any,
        proxies: Any,
        http2: bool | None,
        pool_size: int | None = None,
    ) -> AsyncTransport:
        overridden = not (
            verify is UNSET
            and cert is UNSET
            and proxies is UNSET
            and http2 is None
            and pool_size is None
        )
        if not overridden and self.unrouted is not None:
            return self.unrouted
        if not self._own_transport:
            if overridden:
                raise ValueError(
                    "per-request verify, cert, proxies, http2 and pool_size need the client's "
                    "own connection pools; this client was given a transport"
                )
            return self.default
        table = self._proxies
        if proxies is not UNSET:
            table = {**self._proxies, **check_proxies(proxies or {})}
        proxy = proxy_for_url(url, table, self._no_proxy) if table else None
        key = (
            self._verify if verify is UNSET else verify,
            self._cert if cert is UNSET else cert,
            self._http2 if http2 is None else http2,
            proxy,
            self._pool_size if pool_size is None else pool_size,
        )
        if key == (self._verify, self._cert, self._http2, None, self._pool_size):
            return self.default
        return self._build(key)

    def _build(self, key: tuple[Any, Any, bool, str | None, int]) -> AsyncTransport:
        hashable = tuple(_hashable(part) for part in key)
        transport = self._transports.get(hashable)
        if transport is None:
            verify, cert, http2, proxy, pool_size = key
            options = dict(
                self._options, verify=verify, cert=cert, max_connections_per_origin=pool_size
            )
            if http2:
                options["http2"] = True
            pool: AsyncTransport
            if proxy is None:
                pool = AsyncConnectionPool(**options)
            else:
                pool = AsyncHTTPProxy(proxy, **options)
            transport = self._transports[hashable] = self._wrap(pool)
        return transport

    def _wrap(self, transport: AsyncTransport) -> AsyncTransport:
        if self.dispatcher is not None and not isinstance(
            transport, (AsyncFilterableTransport, CachingTransport)
        ):
            transport = AsyncFilterableTransport(transport, self.dispatcher)
        if self.cache is not None and not isinstance(transport, CachingTransport):
            # Outside the filter events: a hit dispatches none of them.
            transport = CachingTransport(transport, self.cache)
        return transport

    def has_open_connections(self) -> bool:
        for transport in self._transports.values():
            connections = getattr(transport, "connections", None)
            if connections:
                return True
        return False

    async def aclose(self) -> None:
        transports = list(self._transports.values())
        self._transports.clear()
        for transport in transports:
            await transport.aclose()


def check_proxies(proxies: Mapping[str, str | URL | None]) -> dict[str, str | None]:
    """A ``proxies`` mapping with its keys checked and its URLs as text; ``ValueError`` names a
    key the router does not look up (public: configurations check theirs when loaded)."""
    checked: dict[str, str | None] = {}
    for scheme, value in proxies.items():
        if scheme not in _PROXY_KEYS:
            raise ValueError(
                f"proxies key {scheme!r} is not one of {sorted(_PROXY_KEYS)} "
                "(use 'http', 'https' or 'all')"
            )
        checked[scheme] = None if value is None else str(value)
    return checked


def _hashable(value: Any) -> Any:
    try:
        hash(value)
    except TypeError:
        return id(value)
    return value
