"""A server that answers each path with a body a test put there: bombs, large compressed data,
any ``Content-Encoding``, with a ``Content-Length`` or chunked.

The other scripted servers build their answers from the request; the decompression tests need
bodies of hundreds of KiB made once (a gzip bomb takes a second to compress) and served many
times, exactly as given. It runs on its own loop in a daemon thread, like the edge server, and
stops writing when the client goes away mid-body (as a client tripping a guard does).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from tests.servers.threaded import ThreadedStreamServer

__all__ = ["BodyServer"]

_PIECE = 64 * 1024


@dataclass
class _Body:
    data: bytes
    coding: str | None
    chunked: bool


class BodyServer(ThreadedStreamServer):
    """``put(path, data, coding)`` and GET ``url + path``; unknown paths are 404."""

    def __init__(self) -> None:
        super().__init__()
        self._bodies: dict[str, _Body] = {}

    def put(self, path: str, data: bytes, coding: str | None = None, chunked: bool = False) -> str:
        """Serve ``data`` (already encoded) at ``path``; returns its URL."""
        self._bodies[path] = _Body(data, coding, chunked)
        return self.url + path

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                    return
                target = head.split(b" ", 2)[1].decode("latin-1")
                body = self._bodies.get(target.split("?", 1)[0])
                if body is None:
                    writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                    continue
                lines = [b"HTTP/1.1 200 OK", b"Content-Type: application/octet-stream"]
                if body.coding is not None:
                    lines.append(b"Content-Encoding: " + body.coding.encode("latin-1"))
                if body.chunked:
                    lines.append(b"Transfer-Encoding: chunked")
                else:
                    lines.append(b"Content-Length: %d" % len(body.data))
                writer.write(b"\r\n".join(lines) + b"\r\n\r\n")
                data = memoryview(body.data)
                for start in range(0, len(data), _PIECE):
                    piece = data[start : start + _PIECE]
                    if body.chunked:
                        writer.write(b"%x\r\n" % len(piece) + piece + b"\r\n")
                    else:
                        writer.write(piece)
                    await writer.drain()
                if body.chunked:
                    writer.write(b"0\r\n\r\n")
                await writer.drain()
        except ConnectionError:
            return
        finally:
            writer.close()
