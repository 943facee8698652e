"""Opening a connection: TCP or a Unix socket, then TLS, each phase traced on its own.

TLS is started on the connected socket (``loop.start_tls``) rather than in one
``create_connection(ssl=...)`` call so that ``connection.connect_tcp`` and
``connection.start_tls`` are two phases with their own timing and errors, as httpcore reports
them.

Every connection starts as an HTTP/1.1 one; when TLS negotiated ``h2`` (or the caller knows
the server speaks HTTP/2 in clear text), :func:`start_http2` hands its socket to an
:class:`AsyncHTTP2Connection`. Doing the switch after the fact, rather than choosing the
protocol before connecting, lets any code that opens connections (a proxy's tunnel) get
HTTP/2 too.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
from typing import TYPE_CHECKING, Any

from ferryman.client.transport import _trace
from ferryman.client.transport.http11 import DEFAULT_RESPONSE_LIMITS, AsyncHTTP11Connection
from ferryman.client.transport.http11_state import DETACHED, PARSE, RAW
from ferryman.exceptions import ConnectError, ConnectTimeout
from ferryman.http.models import Request

if TYPE_CHECKING:  # imported by start_http2: h2 costs import time, HTTP/2 may go unused
    from ferryman.client.transport.http2 import AsyncHTTP2Connection

__all__ = ["negotiated_protocol", "open_http11_connection", "start_http2"]


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
    response_limits: tuple[int | None, int | None] | None = DEFAULT_RESPONSE_LIMITS,
) -> AsyncHTTP11Connection:
    """A connected (and, for https, TLS-wrapped) HTTP/1.1 connection to ``host:port``;
    ``response_limits`` bound its response heads (bytes, header fields), and HTTP/2's if it
    becomes an HTTP/2 connection."""
    conn = AsyncHTTP11Connection(origin, loop, response_limits)

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
            raise ConnectError(f"cannot resolve {host}: {exc.strerror or exc}") from exc
        except OSError as exc:
            where = uds if uds is not None else f"{host}:{port}"
            # The errno's words: asyncio's strerror is "Connect call failed ('127.0.0.1', 9)".
            reason = os.strerror(exc.errno).lower() if exc.errno else exc.strerror or str(exc)
            raise ConnectError(f"cannot connect to {where}: {reason}") from exc
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
            # An HTTP/2 server speaks first (its SETTINGS) and may do so before this coroutine
            # resumes: raw mode keeps those bytes for start_http2 instead of dropping them.
            conn._mode = RAW
            await conn.start_tls(ssl_context, server_hostname, connect_timeout)
            if negotiated_protocol(conn) != "h2":
                conn._mode = PARSE
                if conn._raw_chunks:  # an HTTP/1.1 server never speaks first
                    conn._must_close = True
            return conn.network_stream()

        await _trace.start_tls(trace, start_tls, ssl_context, server_hostname, connect_timeout)
    return conn


def negotiated_protocol(conn: AsyncHTTP11Connection) -> str | None:
    """The protocol ALPN agreed on for ``conn``'s TLS, or None (no TLS, or no ALPN)."""
    transport = conn._transport
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    if ssl_object is None:
        return None
    protocol: str | None = ssl_object.selected_alpn_protocol()
    return protocol


async def start_http2(
    conn: AsyncHTTP11Connection, request: Request, trace: _trace.TraceCallback | None
) -> AsyncHTTP2Connection:
    """Move a freshly opened connection's socket to HTTP/2 and send the connection preface.

    Bytes the server already sent (collected in raw mode during the TLS handshake, or during
    a tunnel's) are handed over to the new connection; ``conn`` is left detached, unused.
    """
    from ferryman.client.transport.http2 import AsyncHTTP2Connection

    transport = conn._transport
    if transport is None or transport.is_closing():
        raise ConnectError("the connection closed before HTTP/2 could start")
    early = b"".join(conn._raw_chunks)
    conn._raw_chunks.clear()
    conn.state = DETACHED
    conn.on_release = None
    h2_conn = AsyncHTTP2Connection(conn.origin, conn._loop, transport, conn.response_limits)
    transport.set_protocol(h2_conn)
    if conn._reading_paused:
        conn._reading_paused = False
        transport.resume_reading()

    async def send_connection_init() -> None:
        h2_conn.initiate(early)

    if trace is None:
        h2_conn.initiate(early)
    else:
        await _trace.traced(
            trace, _trace.HTTP2_SEND_CONNECTION_INIT, {"request": request}, send_connection_init
        )
    return h2_conn
