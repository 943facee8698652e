"""Opening a connection: TCP or a Unix socket, then TLS, each phase traced on its own.

TLS is started on the connected socket (``loop.start_tls``) rather than in one
``create_connection(ssl=...)`` call so that ``connection.connect_tcp`` and
``connection.start_tls`` are two phases with their own timing and errors, as httpcore reports
them.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from typing import Any

from ferryman.client.transport import _trace
from ferryman.client.transport.http11 import AsyncHTTP11Connection
from ferryman.exceptions import ConnectError, ConnectTimeout

__all__ = ["open_http11_connection"]


async def open_http11_connection(
    loop: asyncio.AbstractEventLoop,
    origin: Any,
    *,
    scheme: str,
    host: str,
    port: int,
    ssl_context: ssl.SSLContext | None,
    server_hostname: str | None,
    connect_timeout: float | None,
    trace: _trace.TraceCallback | None,
    local_address: str | None = None,
    uds: str | None = None,
) -> AsyncHTTP11Connection:
    """A connected (and, for https, TLS-wrapped) HTTP/1.1 connection to ``host:port``."""
    conn = AsyncHTTP11Connection(origin, loop)

    async def connect_tcp() -> Any:
        try:
            if uds is not None:
                coro = loop.create_unix_connection(lambda: conn, uds)
            else:
                coro = loop.create_connection(
                    lambda: conn,
                    host,
                    port,
                    local_addr=(local_address, 0) if local_address else None,
                )
            if connect_timeout is None:
                await coro
            else:
                async with asyncio.timeout(connect_timeout):
                    await coro
        except TimeoutError as exc:
            raise ConnectTimeout(
                f"connecting to {host}:{port} timed out after {connect_timeout} s"
            ) from exc
        except socket.gaierror as exc:
            raise ConnectError(f"cannot resolve {host!r}: {exc.strerror or exc}") from exc
        except OSError as exc:
            where = uds if uds is not None else f"{host}:{port}"
            raise ConnectError(f"cannot connect to {where}: {exc.strerror or exc}") from exc
        return conn.network_stream()

    if trace is None:
        await connect_tcp()
    elif uds is not None:
        await _trace.traced(
            trace,
            _trace.CONNECT_UNIX_SOCKET,
            {"path": uds, "timeout": connect_timeout},
            connect_tcp,
        )
    else:
        await _trace.traced(
            trace,
            _trace.CONNECT_TCP,
            {
                "host": host,
                "port": port,
                "local_address": local_address,
                "timeout": connect_timeout,
            },
            connect_tcp,
        )

    if scheme == "https":
        assert ssl_context is not None

        async def start_tls() -> Any:
            await conn.start_tls(ssl_context, server_hostname, connect_timeout)
            return conn.network_stream()

        if trace is None:
            await start_tls()
        else:
            await _trace.traced(
                trace,
                _trace.START_TLS,
                {
                    "ssl_context": ssl_context,
                    "server_hostname": server_hostname,
                    "timeout": connect_timeout,
                },
                start_tls,
            )
    return conn
