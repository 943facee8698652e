"""An origin that answers with the exact bytes a test queued: for answers no well-behaved
server writes (a chunked body cut before its terminator, a Content-Length the body falls
short of, fields of thousands of digits).

``origin.answer(path, RawAnswer(b"HTTP/1.1 200 OK\\r\\n..."), ...)`` queues answers for one path
(the last one repeats); ``close=True`` closes the connection after writing them. It records
each request's method, target, head and body (``Content-Length`` or chunked) in ``seen``, so a
test can count what reached it. It runs on its own loop in a daemon thread, like the other
scripted servers.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from urllib.parse import urlsplit

from tests.servers.threaded import ThreadedStreamServer

__all__ = ["RawAnswer", "RawOrigin", "RawSeen"]


@dataclass
class RawAnswer:
    data: bytes
    close: bool = False


@dataclass
class RawSeen:
    method: str
    target: str
    head: bytes
    body: bytes


class RawOrigin(ThreadedStreamServer):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[RawSeen] = []
        self._answers: dict[str, list[RawAnswer]] = {}

    def answer(self, path: str, *answers: RawAnswer) -> None:
        self._answers[path] = list(answers)

    def hits(self, path: str) -> int:
        return sum(1 for seen in self.seen if urlsplit(seen.target).path == path)

    def _next(self, path: str) -> RawAnswer:
        answers = self._answers.get(path)
        if not answers:
            return RawAnswer(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
        return answers.pop(0) if len(answers) > 1 else answers[0]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                fields = {
                    name.strip().lower(): value.strip()
                    for name, _, value in (line.partition(":") for line in lines[1:] if line)
                }
                body = await _read_body(reader, fields)
                self.seen.append(RawSeen(method, target, head, body))
                answer = self._next(urlsplit(target).path)
                writer.write(answer.data)
                await writer.drain()
                if answer.close:
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()


async def _read_body(reader: asyncio.StreamReader, fields: dict[str, str]) -> bytes:
    if fields.get("transfer-encoding", "").lower() == "chunked":
        body = bytearray()
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                return bytes(body)
            body += await reader.readexactly(size)
            await reader.readexactly(2)
    length = int(fields.get("content-length", "0") or 0)
    return await reader.readexactly(length) if length else b""
