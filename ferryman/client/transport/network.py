"""The raw byte stream under a connection: the ``network_stream`` response extension.

It is how code steps outside request/response: after ``CONNECT`` (a tunnel to start TLS in)
or a ``101 Switching Protocols`` (WebSocket), the connection stops speaking HTTP and its owner
reads and writes bytes here. Reading from the stream of an ordinary response takes the
connection away from its pool, as it no longer knows where an HTTP message starts.
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING, Any

from ferryman.client.transport.http11_state import CLOSED, DETACHED, RAW
from ferryman.exceptions import ConnectError, WriteError

if TYPE_CHECKING:
    from ferryman.client.transport.http11 import AsyncHTTP11Connection

__all__ = ["AsyncNetworkStream"]


class AsyncNetworkStream:
    """``read``/``write``/``start_tls``/``get_extra_info``/``close`` over one connection."""

    def __init__(self, conn: AsyncHTTP11Connection) -> None:
        self._conn = conn

    def _take_over(self) -> None:
        conn = self._conn
        if conn._mode != RAW:
            conn._mode = RAW
            # Body bytes the HTTP layer already buffered are the first raw bytes.
            conn._stop_receiving_into()
            if conn._chunks:
                conn._raw_chunks.extend(conn._chunks)
                conn._chunks.clear()
        if conn.state != CLOSED:
            conn.state = DETACHED

    async def read(self, max_bytes: int = 65536, timeout: float | None = None) -> bytes:
        """Up to ``max_bytes`` bytes; ``b""`` once the peer has closed its side."""
        self._take_over()
        conn = self._conn
        chunks = conn._raw_chunks
        while not chunks:
            if conn._eof or conn._transport is None or conn._transport.is_closing():
                return b""
            await conn._wait(timeout)
        data = chunks.popleft()
        if len(data) > max_bytes:
            chunks.appendleft(data[max_bytes:])
            data = data[:max_bytes]
        return data

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        transport = self._conn._transport
        if transport is None or transport.is_closing():
            raise WriteError("the connection is closed")
        transport.write(buffer)
        await self._conn._drain(timeout)

    async def aclose(self) -> None:
        self._conn.close()

    async def close(self) -> None:
        """Close the connection (awaitable, like httpcore's async stream)."""
        self._conn.close()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | bytes | None = None,
        timeout: float | None = None,
    ) -> AsyncNetworkStream:
        """Wrap the connection in TLS (inside a CONNECT tunnel, say); returns the TLS stream."""
        self._take_over()
        if self._conn._raw_chunks:
            raise ConnectError("cannot start TLS: the peer already sent unencrypted bytes")
        await self._conn.start_tls(ssl_context, server_hostname, timeout)
        return self

    def get_extra_info(self, info: str) -> Any:
        transport = self._conn._transport
        if transport is None:
            return None
        if info == "client_addr":
            return transport.get_extra_info("sockname")
        if info == "server_addr":
            return transport.get_extra_info("peername")
        if info == "ssl_object":
            return transport.get_extra_info("ssl_object")
        if info == "is_readable":
            conn = self._conn
            return bool(conn._raw_chunks or conn._chunks or conn._eof or conn._must_close)
        if info == "socket":
            return transport.get_extra_info("socket")
        return transport.get_extra_info(info)

    def __repr__(self) -> str:
        return f"<AsyncNetworkStream {self.get_extra_info('server_addr')}>"
