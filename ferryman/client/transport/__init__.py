"""The client's transport core: pooled HTTP/1.1 connections, TLS, tunnels and tracing.

It speaks httpcore's language: ``handle_async_request(request) -> response``, with request
extensions (``timeout``, ``trace``, ``sni_hostname``, ``target``) and response extensions
(``http_version``, ``reason_phrase``, ``network_stream``).
"""

from ferryman.client.transport.network import AsyncNetworkStream
from ferryman.client.transport.pool import AsyncConnectionPool
from ferryman.client.transport.sync import ConnectionPool, NetworkStream
from ferryman.client.transport.tls import create_ssl_context

__all__ = [
    "AsyncConnectionPool",
    "AsyncNetworkStream",
    "ConnectionPool",
    "NetworkStream",
    "create_ssl_context",
]
