"""Requests through an HTTP proxy: forwarding for http:// targets, CONNECT tunnels for https://.

The proxy is a kind of pool rather than a layer above one, as in httpcore: the pool already
knows how to keep, reuse, limit and expire connections, and a proxied connection differs only
in how it is opened (``_connect``) and, for forwarding, in the request line and headers.

- ``http://`` targets are forwarded: the connection goes to the proxy and the request line
  carries the absolute URL. Connections stay keyed by the target origin, so per-origin limits
  mean what they mean without a proxy.
- ``https://`` targets get a tunnel per origin: ``CONNECT host:port`` to the proxy, then TLS
  with the target inside it (end to end: the proxy sees only ciphertext), then plain HTTP/1.1.
  A tunnel is pooled and reused like any connection.

An ``https://`` proxy URL means TLS to the proxy first; a tunnel is then TLS inside TLS, which
asyncio supports from Python 3.11.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
from typing import Any

from ferryman.client.transport import _trace
from ferryman.client.transport.connect import open_http11_connection
from ferryman.client.transport.http11 import AsyncHTTP11Connection
from ferryman.client.transport.pool import AsyncConnectionPool
from ferryman.client.transport.tls import create_ssl_context
from ferryman.exceptions import (
    ConnectError,
    ConnectTimeout,
    InvalidURL,
    ProxyError,
    ReadError,
    RemoteProtocolError,
    TransportError,
    UnsupportedProtocol,
    WriteError,
)
from ferryman.http.headers import Headers, HeadersTypes
from ferryman.http.models import Request, Response
from ferryman.http.url import URL

__all__ = ["AsyncHTTPProxy", "basic_proxy_authorization"]


def basic_proxy_authorization(username: str, password: str) -> bytes:
    """The ``Proxy-Authorization`` value for Basic credentials (UTF-8, as RFC 7617 advises)."""
    token = base64.b64encode(f"{username}:{password}".encode())
    return b"Basic " + token


class AsyncHTTPProxy(AsyncConnectionPool):
    """A connection pool whose every connection goes through one HTTP proxy.

    ``proxy_url`` is ``http://host:port`` or ``https://host:port``; credentials in it
    (``http://user:pw@host:port``) are used as ``proxy_auth`` unless that is given.
    ``proxy_headers`` go to the proxy with every forwarded request and every ``CONNECT``;
    ``proxy_ssl_context`` verifies an ``https://`` proxy (default: a verified context from
    certifi, or ``SSL_CERT_FILE``/``SSL_CERT_DIR`` with ``trust_env``). The other options are
    the pool's; ``ssl_context``/``verify``/``cert`` apply to the targets, through the tunnel.

    A target that answers 407 to a forwarded request is a response like any other; a
    ``CONNECT`` answered with anything but 2xx raises :class:`ProxyError`.
    """

    def __init__(
        self,
        proxy_url: str | URL,
        *,
        proxy_auth: tuple[str, str] | None = None,
        proxy_headers: HeadersTypes | None = None,
        proxy_ssl_context: ssl.SSLContext | None = None,
        **pool_options: Any,
    ) -> None:
        super().__init__(**pool_options)
        url = proxy_url if isinstance(proxy_url, URL) else URL(proxy_url)
        if url.scheme not in ("http", "https"):
            raise UnsupportedProtocol(
                f"proxy URL scheme {url.scheme!r} is not supported (http and https are)"
            )
        if not url.host:
            raise InvalidURL(f"the proxy URL has no host: {url!r}")
        if proxy_auth is None and url.userinfo:
            proxy_auth = (url.username, url.password)
        self._proxy_scheme = url.scheme
        self._proxy_host = url.host
        self._proxy_raw_host = url.raw_host.decode("ascii")
        self._proxy_port = url.effective_port or (443 if url.scheme == "https" else 80)
        # Named in errors and repr: scheme, host and port only, never the credentials.
        self.proxy_origin = f"{url.scheme}://{url.netloc.decode('ascii')}"
        headers = Headers(proxy_headers)
        if proxy_auth is not None:
            headers["Proxy-Authorization"] = basic_proxy_authorization(*proxy_auth).decode()
        self._proxy_fields = list(headers.raw)
        self._proxy_ssl_context = proxy_ssl_context

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.proxy_origin}>"

    # -- forwarding --------------------------------------------------------------------------

    async def handle_async_request(self, request: Request) -> Response:
        if request.url.scheme != "http":
            # https: the tunnel is opened by _connect; other schemes are refused by the pool.
            return await super().handle_async_request(request)
        forwarded = self._forwarded(request)
        try:
            response = await super().handle_async_request(forwarded)
        except TransportError as exc:
            if exc.request is forwarded:
                exc.request = request
            raise
        response.request = request
        return response

    def _forwarded(self, request: Request) -> Request:
        """``request`` as a proxy wants it: absolute-form target, the proxy's headers added.

        A new Request, so the caller's (its headers, its extensions dict, which it may share
        between requests) stays as it was and can be sent again, to a redirect say.
        """
        extensions = dict(request.extensions)
        extensions["target"] = absolute_form_target(request.url, extensions.get("target"))
        forwarded = Request(
            request.method,
            request.url,
            headers=request.headers,
            stream=request.stream,
            extensions=extensions,
        )
        if self._proxy_fields:
            headers = forwarded.headers
            for name, value in self._proxy_fields:
                if name.decode("latin-1") not in headers:  # the request's own value wins
                    headers.add(name, value)
        return forwarded

    # -- connecting ------------------------------------------------------------------------

    async def _connect(self, key: Any, request: Request, timeouts: Any) -> AsyncHTTP11Connection:
        """Connect to the proxy; for an https target, open the tunnel through it as well."""
        trace = request.extensions.get("trace")
        conn = await self._connect_to_proxy(key, timeouts.get("connect"), trace)
        if request.url.scheme == "https":
            try:
                await self._open_tunnel(conn, request, timeouts, trace)
            except BaseException:
                conn.close()
                raise
        return conn

    async def _connect_to_proxy(
        self, key: Any, connect_timeout: float | None, trace: _trace.TraceCallback | None
    ) -> AsyncHTTP11Connection:
        https = self._proxy_scheme == "https"
        try:
            return await open_http11_connection(
                asyncio.get_running_loop(),
                key,
                scheme=self._proxy_scheme,
                host=self._proxy_raw_host,
                port=self._proxy_port,
                ssl_context=self._get_proxy_ssl_context() if https else None,
                server_hostname=self._proxy_host if https else None,
                connect_timeout=connect_timeout,
                trace=trace,
                local_address=self._local_address,
                uds=self._uds,
                response_limits=self._response_limits,
            )
        except ConnectTimeout as exc:
            raise ConnectTimeout(f"proxy {self.proxy_origin}: {exc}") from exc
        except ConnectError as exc:
            raise ConnectError(f"proxy {self.proxy_origin}: {exc}") from exc

    async def _open_tunnel(
        self,
        conn: AsyncHTTP11Connection,
        request: Request,
        timeouts: Any,
        trace: _trace.TraceCallback | None,
    ) -> None:
        """``CONNECT`` through ``conn``, then TLS to the target; leaves ``conn`` ready for HTTP."""
        url = request.url
        authority = connect_authority(url)
        extensions: dict[str, Any] = {"target": authority}
        if timeouts:
            extensions["timeout"] = timeouts
        if trace is not None:
            extensions["trace"] = trace
        connect_request = Request(
            "CONNECT",
            url,
            headers=[(b"Host", authority), *self._proxy_fields],
            extensions=extensions,
        )
        where = f"proxy {self.proxy_origin}, CONNECT {authority.decode('ascii')}"
        try:
            response = await conn.handle_async_request(connect_request)
        except (ReadError, WriteError, RemoteProtocolError) as exc:
            raise ProxyError(f"{where}: {exc}", request=request) from exc
        status = response.status_code
        if not 200 <= status < 300:
            raise ProxyError(
                f"{where}: the proxy answered {status} {response.reason_phrase}", request=request
            )

        ssl_context = self._get_ssl_context()
        sni = request.extensions.get("sni_hostname")
        server_hostname = (sni.decode("ascii") if isinstance(sni, bytes) else sni) or url.host
        connect_timeout = timeouts.get("connect")
        stream = conn.network_stream()

        async def start_tls() -> Any:
            return await stream.start_tls(ssl_context, server_hostname, connect_timeout)

        await _trace.start_tls(trace, start_tls, ssl_context, server_hostname, connect_timeout)
        conn.resume_after_tunnel()

    def _get_proxy_ssl_context(self) -> ssl.SSLContext:
        context = self._proxy_ssl_context
        if context is None:
            context = self._proxy_ssl_context = create_ssl_context(trust_env=self._trust_env)
        return context


def absolute_form_target(url: URL, target: bytes | str | None = None) -> bytes:
    """The request target a forward proxy needs (RFC 9112 3.2.2): ``scheme://host[:port]/path?q``.

    Userinfo and fragment never go on the wire. A ``target`` the caller set is kept when it is
    not origin-form (``*``, already absolute); an origin-form one replaces the URL's path.
    """
    if target is None:
        path = url.raw_path
    else:
        path = target.encode("ascii") if isinstance(target, str) else target
        if not path.startswith(b"/"):
            return path
    return url.scheme.encode("ascii") + b"://" + url.netloc + path


def connect_authority(url: URL) -> bytes:
    """``host:port`` for a ``CONNECT`` request line and its ``Host`` (RFC 9112 3.2.3)."""
    _, raw_host, port = url.origin
    host = b"[" + raw_host + b"]" if b":" in raw_host else raw_host
    return b"%b:%d" % (host, port)
