"""An upstream that fails on cue: the test sets what it does next, whatever the request.

``upstream.cue`` is one of ``ok`` (a JSON answer naming the upstream and echoing the request),
``status`` (``cue_status``, with ``cue_headers``), ``hang`` (reads the request, never answers),
``hangup`` (reads the request, closes without a word), ``half-head`` (part of a head, then
nothing), ``cut`` (half a body, then closes), ``slow`` (a 200 whose head and first half come
at once, the rest ``slow_for`` s later), ``late`` (``ok``, ``slow_for`` s late); a
list of cues is taken one per request, the last one then staying. ``refuse()`` stops listening
(connections are refused) and ``listen()`` starts again on the same port. ``GET /health``
answers ``health_status`` whatever the cue (the active probes' path), and is not recorded
among ``requests``.

It records each request (method, target, body, when it came) so a test can say how many times
a request reached it. Like the other test servers it runs its own loop in a daemon thread.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from dataclasses import dataclass

from tests.servers.threaded import ThreadedStreamServer

__all__ = ["CuedUpstream", "Seen"]


@dataclass
class Seen:
    method: str
    target: str
    body: bytes
    at: float


class CuedUpstream(ThreadedStreamServer):
    def __init__(self, name: str = "upstream") -> None:
        super().__init__()
        self.name = name
        self.cue: str | list[str] = "ok"
        self.cue_status = 503
        self.cue_headers: list[tuple[str, str]] = []
        self.slow_for = 0.5
        self.health_status = 200
        self.health_probes = 0
        self.requests: list[Seen] = []
        self._hanging: list[asyncio.Future[None]] = []
        self._writers: set[asyncio.StreamWriter] = set()
        #: Down (``refuse``): a connection accepted just before, whose handler had not started
        #: yet, is cut as soon as it does (closing the server keeps accepted ones open).
        self._refusing = False

    # -- the test's controls ------------------------------------------------------------------

    def refuse(self) -> None:
        """Go down: open connections are closed, new ones refused until :meth:`listen`."""

        async def _close() -> None:
            self._refusing = True
            for writer in list(self._writers):
                writer.transport.abort()
            if self._server is not None:
                self._server.close()
                await self._server.wait_closed()
                self._server = None

        asyncio.run_coroutine_threadsafe(_close(), self.loop).result(timeout=10)

    def listen(self) -> None:
        async def _open() -> None:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", self.port))
            self._refusing = False
            self._server = await asyncio.start_server(self._serve, sock=sock)

        asyncio.run_coroutine_threadsafe(_open(), self.loop).result(timeout=10)

    def seen(self, method: str | None = None) -> list[Seen]:
        return [r for r in self.requests if method is None or r.method == method]

    # -- serving ------------------------------------------------------------------------------

    def _next_cue(self) -> str:
        cue = self.cue
        if isinstance(cue, list):
            return cue.pop(0) if len(cue) > 1 else cue[0]
        return cue

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._refusing:
            writer.transport.abort()
            return
        self._writers.add(writer)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = {
                    name.strip().lower(): value.strip()
                    for name, _, value in (line.partition(":") for line in lines[1:] if line)
                }
                body = await self._body(reader, headers)
                if target == "/health":
                    self.health_probes += 1
                    self._send(writer, self.health_status, b"health")
                    await writer.drain()
                    continue
                self.requests.append(Seen(method, target, body, time.monotonic()))
                cue = self._next_cue()
                if cue == "late":
                    await asyncio.sleep(self.slow_for)
                    cue = "ok"
                if cue == "ok":
                    payload = {"upstream": self.name, "method": method, "target": target}
                    payload["body"] = body.decode("latin-1")
                    self._send(writer, 200, json.dumps(payload).encode())
                elif cue == "status":
                    self._send(writer, self.cue_status, b"cued status", self.cue_headers)
                elif cue == "hang":
                    parked = asyncio.get_running_loop().create_future()
                    self._hanging.append(parked)
                    reading = asyncio.ensure_future(reader.read(1))
                    await asyncio.wait([parked, reading], return_when=asyncio.FIRST_COMPLETED)
                    reading.cancel()
                    return
                elif cue == "hangup":
                    return
                elif cue == "half-head":  # part of a head, then nothing
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Ty")
                    await writer.drain()
                    await reader.read(1)
                    return
                elif cue == "slow":
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nslow")
                    await writer.drain()
                    await asyncio.sleep(self.slow_for)
                    writer.write(b"body")
                elif cue == "cut":
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nhalf of it")
                    await writer.drain()
                    await asyncio.sleep(0.05)
                    return
                else:
                    raise AssertionError(f"unknown cue {cue!r}")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            self._writers.discard(writer)
            writer.close()

    @staticmethod
    async def _body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = bytearray()
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await reader.readuntil(b"\r\n")
                    return bytes(body)
                body += await reader.readexactly(size)
                await reader.readexactly(2)
        length = int(headers.get("content-length", "0") or 0)
        return await reader.readexactly(length) if length else b""

    def _send(
        self,
        writer: asyncio.StreamWriter,
        status: int,
        body: bytes,
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        head = [
            f"HTTP/1.1 {status} Cued",
            f"Content-Length: {len(body)}",
            f"X-Upstream: {self.name}",
        ]
        head += [f"{name}: {value}" for name, value in headers or []]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
