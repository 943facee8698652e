"""httpcore's API over ferryman's transport core: ``import ferryman.compat.httpcore as httpcore``.

ferryman's transport already speaks httpcore's language (``handle_request``, request and
response ``extensions``, the trace event names, the network stream); what httpcore code reaches
for beyond that is here, and nothing more:

- module-level :func:`request` and :func:`stream`, each on a pool of its own that closes
  with the call, as httpcore's do; the pools' ``request()``/``stream()`` methods too;
- :func:`default_ssl_context` (certifi's bundle, or ``SSL_CERT_FILE``/``SSL_CERT_DIR`` when
  set, as ferryman's client reads them);
- :class:`Response` with httpcore's ``status`` and ``iter_stream()``;
- the ``network_stream`` extension with httpcore's documented
  ``start_tls(ssl_context=..., hostname=...)`` spelling, and ``client_addr``/``server_addr``
  that still answer once ``request()`` has closed the connection (httpcore's do).

Where it differs: ``Response.headers`` is ferryman's :class:`~ferryman.Headers` (a
case-insensitive mapping; ``.raw`` is httpcore's list of byte pairs), ``URL`` is ferryman's
(built from a string), and a ``trace`` callback may be plain or async on either face. The trace
names are the ones httpcore emits, which its documentation's example shows: its list names the
HTTP/1.1 head phase ``http11.receive_response``, a prefix of the emitted
``http11.receive_response_headers``.

The module-level functions accept an HTTP/0.9 answer (no status line, the body until the
connection closes; ``http_version`` ``b"HTTP/0.9"``), which httpcore documents as possible:
they use a fresh connection for one exchange, the only place ferryman takes one. Pools built
here or by ferryman refuse it unless given ``http09=True``.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

from ferryman.client.transport import AsyncConnectionPool as _CoreAsyncConnectionPool
from ferryman.client.transport import AsyncNetworkStream as _CoreAsyncNetworkStream
from ferryman.client.transport import ConnectionPool as _CoreConnectionPool
from ferryman.client.transport import NetworkStream as _CoreNetworkStream
from ferryman.client.transport import create_ssl_context
from ferryman.exceptions import (
    ConnectError,
    ConnectTimeout,
    LocalProtocolError,
    NetworkError,
    PoolTimeout,
    ProtocolError,
    ProxyError,
    ReadError,
    ReadTimeout,
    RemoteProtocolError,
    TimeoutException,
    UnsupportedProtocol,
    WriteError,
    WriteTimeout,
)
from ferryman.http import URL, Headers, Request
from ferryman.http import Response as _CoreResponse

__all__ = [
    "URL",
    "AsyncConnectionPool",
    "AsyncNetworkStream",
    "ConnectError",
    "ConnectTimeout",
    "ConnectionPool",
    "LocalProtocolError",
    "NetworkError",
    "NetworkStream",
    "PoolTimeout",
    "ProtocolError",
    "ProxyError",
    "ReadError",
    "ReadTimeout",
    "RemoteProtocolError",
    "Request",
    "Response",
    "TimeoutException",
    "UnsupportedProtocol",
    "WriteError",
    "WriteTimeout",
    "default_ssl_context",
    "request",
    "stream",
]

HeadersArg = Headers | Mapping[Any, Any] | list[tuple[Any, Any]] | None
_ADDRESSES = ("client_addr", "server_addr")


def default_ssl_context() -> ssl.SSLContext:
    """A verifying TLS context: certifi's CA bundle, or ``SSL_CERT_FILE``/``SSL_CERT_DIR``."""
    return create_ssl_context(trust_env=True)


class Response(_CoreResponse):
    """ferryman's :class:`~ferryman.Response` with httpcore's names for what it calls
    differently."""

    __slots__ = ()

    @property
    def status(self) -> int:
        """The status code (httpcore's name for ``status_code``)."""
        return self.status_code

    def iter_stream(self) -> Iterator[bytes]:
        """The body as it arrives, from plain code (a sync pool's response)."""
        yield from self._iter_bytes()

    async def aiter_stream(self) -> AsyncIterator[bytes]:
        """The body as it arrives (an async pool's response)."""
        async for chunk in self.aiter_bytes():
            yield chunk


class NetworkStream:
    """The ``network_stream`` extension of a sync response, with httpcore's spellings."""

    def __init__(self, stream: _CoreNetworkStream) -> None:
        self._stream = stream
        # Read now, while the connection is open: httpcore's stream still answers these once
        # request() has returned (its pool, and the connection with it, closed).
        self._addresses = {name: stream.get_extra_info(name) for name in _ADDRESSES}

    def read(self, max_bytes: int = 65536, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, timeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, timeout)

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | bytes | None = None,
        timeout: float | None = None,
        *,
        hostname: str | bytes | None = None,
    ) -> NetworkStream:
        """TLS over this stream (in a ``CONNECT`` tunnel, say); ``hostname`` is the name the
        httpcore documentation's example passes, ``server_hostname`` httpcore's own."""
        self._stream.start_tls(ssl_context, _hostname(server_hostname, hostname), timeout)
        return self

    def get_extra_info(self, info: str) -> Any:
        value = self._stream.get_extra_info(info)
        return self._addresses.get(info) if value is None else value


class AsyncNetworkStream:
    """The ``network_stream`` extension of an async response, with httpcore's spellings."""

    def __init__(self, stream: _CoreAsyncNetworkStream) -> None:
        self._stream = stream
        self._addresses = {name: stream.get_extra_info(name) for name in _ADDRESSES}

    async def read(self, max_bytes: int = 65536, timeout: float | None = None) -> bytes:
        return await self._stream.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._stream.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | bytes | None = None,
        timeout: float | None = None,
        *,
        hostname: str | bytes | None = None,
    ) -> AsyncNetworkStream:
        await self._stream.start_tls(ssl_context, _hostname(server_hostname, hostname), timeout)
        return self

    def get_extra_info(self, info: str) -> Any:
        value = self._stream.get_extra_info(info)
        return self._addresses.get(info) if value is None else value


def _hostname(server_hostname: str | bytes | None, hostname: str | bytes | None) -> Any:
    if hostname is None:
        return server_hostname
    if server_hostname is not None and server_hostname != hostname:
        raise TypeError("start_tls() got both server_hostname and hostname; pass one")
    return hostname


def _face(response: _CoreResponse, network_stream: Any) -> Response:
    """The same response as this module's :class:`Response`, its network stream wrapped."""
    extensions = dict(response.extensions)
    if network_stream is not None:
        extensions["network_stream"] = network_stream
    face = Response(
        response.status_code,
        headers=response.headers,
        stream=response.stream,
        extensions=extensions,
        request=response.request,
    )
    return face


def _build_request(
    method: str | bytes,
    url: URL | str | bytes,
    headers: HeadersArg,
    content: bytes | Iterator[bytes] | None,
    extensions: dict[str, Any] | None,
) -> Request:
    if isinstance(url, bytes):
        url = url.decode("ascii")
    return Request(
        method,
        url,
        headers=headers,
        content=content,
        extensions={} if extensions is None else dict(extensions),
    )


def _owns_connection(response: Response) -> bool:
    """Whether the response handed its connection to the caller (an upgrade, a tunnel)."""
    request = response.request
    tunnel = request is not None and request.method == "CONNECT" and response.is_success
    return response.status_code == 101 or tunnel


class ConnectionPool(_CoreConnectionPool):
    """ferryman's sync :class:`~ferryman.ConnectionPool` (the same options) with httpcore's
    ``request()`` and ``stream()`` and this module's :class:`Response`."""

    def __enter__(self) -> ConnectionPool:
        return self

    def handle_request(self, request: Request) -> Response:
        response = super().handle_request(request)
        stream = response.extensions.get("network_stream")
        wrapped = NetworkStream(stream) if isinstance(stream, _CoreNetworkStream) else None
        return _face(response, wrapped)

    def request(
        self,
        method: str | bytes,
        url: URL | str | bytes,
        *,
        headers: HeadersArg = None,
        content: bytes | Iterator[bytes] | None = None,
        extensions: dict[str, Any] | None = None,
    ) -> Response:
        """Send a request and read its response whole."""
        with self.stream(
            method, url, headers=headers, content=content, extensions=extensions
        ) as response:
            response.read()
        return response

    @contextlib.contextmanager
    def stream(
        self,
        method: str | bytes,
        url: URL | str | bytes,
        *,
        headers: HeadersArg = None,
        content: bytes | Iterator[bytes] | None = None,
        extensions: dict[str, Any] | None = None,
    ) -> Iterator[Response]:
        """The response with its body still to read, closed when the block ends; a tunnel's
        or an upgrade's connection (``network_stream``) is closed then too."""
        response = self.handle_request(_build_request(method, url, headers, content, extensions))
        try:
            yield response
        finally:
            response.close()
            network_stream = response.extensions.get("network_stream")
            if isinstance(network_stream, NetworkStream) and _owns_connection(response):
                network_stream.close()


class AsyncConnectionPool(_CoreAsyncConnectionPool):
    """ferryman's :class:`~ferryman.AsyncConnectionPool` (the same options) with httpcore's
    ``request()`` and ``stream()`` and this module's :class:`Response`."""

    async def __aenter__(self) -> AsyncConnectionPool:
        return self

    async def handle_async_request(self, request: Request) -> Response:
        response = await super().handle_async_request(request)
        stream = response.extensions.get("network_stream")
        wrapped = (
            AsyncNetworkStream(stream) if isinstance(stream, _CoreAsyncNetworkStream) else None
        )
        return _face(response, wrapped)

    async def request(
        self,
        method: str | bytes,
        url: URL | str | bytes,
        *,
        headers: HeadersArg = None,
        content: bytes | Iterator[bytes] | None = None,
        extensions: dict[str, Any] | None = None,
    ) -> Response:
        """Send a request and read its response whole."""
        async with self.stream(
            method, url, headers=headers, content=content, extensions=extensions
        ) as response:
            await response.aread()
        return response

    @contextlib.asynccontextmanager
    async def stream(
        self,
        method: str | bytes,
        url: URL | str | bytes,
        *,
        headers: HeadersArg = None,
        content: bytes | Iterator[bytes] | None = None,
        extensions: dict[str, Any] | None = None,
    ) -> AsyncIterator[Response]:
        """The response with its body still to read, closed when the block ends."""
        response = await self.handle_async_request(
            _build_request(method, url, headers, content, extensions)
        )
        try:
            yield response
        finally:
            await response.aclose()
            network_stream = response.extensions.get("network_stream")
            if isinstance(network_stream, AsyncNetworkStream) and _owns_connection(response):
                await network_stream.aclose()


def _one_shot_pool() -> ConnectionPool:
    # One connection, one exchange: the one place an HTTP/0.9 answer cannot be a stream that
    # lost its place, so it is taken, as httpcore's documentation says it may come.
    return ConnectionPool(ssl_context=default_ssl_context(), http09=True)


def request(
    method: str | bytes,
    url: URL | str | bytes,
    *,
    headers: HeadersArg = None,
    content: bytes | Iterator[bytes] | None = None,
    extensions: dict[str, Any] | None = None,
) -> Response:
    """Send one request on a pool of its own and return the response, read whole.

    The pool runs on a private event loop in a thread (see :class:`~ferryman.ConnectionPool`),
    started and stopped with each call: keep a :class:`ConnectionPool` for more than a few.
    """
    with _one_shot_pool() as pool:
        return pool.request(method, url, headers=headers, content=content, extensions=extensions)


@contextlib.contextmanager
def stream(
    method: str | bytes,
    url: URL | str | bytes,
    *,
    headers: HeadersArg = None,
    content: bytes | Iterator[bytes] | None = None,
    extensions: dict[str, Any] | None = None,
) -> Iterator[Response]:
    """Send one request on a pool of its own; the response's body is read inside the block."""
    with (
        _one_shot_pool() as pool,
        pool.stream(
            method, url, headers=headers, content=content, extensions=extensions
        ) as response,
    ):
        yield response
