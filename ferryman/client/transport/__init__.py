"""The client's transport core: pooled HTTP/1.1 and HTTP/2 connections, TLS, tunnels, tracing.

It speaks httpcore's language: ``handle_async_request(request) -> response``, with request
extensions (``timeout``, ``trace``, ``sni_hostname``, ``target``, and on HTTP/1.1
``response_limits``: the most bytes and header fields a response head may have, in place of the
pool's ``max_response_head_size`` and ``max_response_headers``) and response
extensions (``http_version``, ``reason_phrase``, ``network_stream`` on HTTP/1.1, ``stream_id``
on HTTP/2). HTTP/2 (``AsyncConnectionPool(http2=True)``) lives in ``http2.py``, imported only
once a connection speaks it: h2 costs import time that HTTP/1.1-only users should not pay.
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
