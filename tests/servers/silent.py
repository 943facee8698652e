"""A server that stops reading: an upload to it fills the socket buffers and stalls for good.

Each connection is held open until the server stops, and the server reads nothing of it: its
stream reader takes in 128 KiB at most, then stops reading the socket. With ``answer``, the
request head is read and ``answer`` sent, and then nothing more: a server refusing an upload
early (a 413, a 401) without draining it.
"""

from __future__ import annotations

import asyncio
import ssl

from tests.servers.threaded import ThreadedStreamServer

__all__ = ["SilentServer"]


class SilentServer(ThreadedStreamServer):
    def __init__(
        self, answer: bytes | None = None, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        super().__init__(ssl_context)
        self.answer = answer
        self.connections = 0
        self._parked: list[asyncio.Future[None]] = []

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        if self.answer is not None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(self.answer)
        # Held here: a task waiting on a future nothing else references would be collected
        # once its client goes away ("Task was destroyed but it is pending").
        parked = asyncio.get_running_loop().create_future()
        self._parked.append(parked)
        try:
            await parked
        except asyncio.CancelledError:  # stop(): a quiet end, not a cancelled task to report
            writer.transport.abort()
