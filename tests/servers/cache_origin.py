"""An origin for the cache tests: answers as each test scripts it, and counts what reached it.

``origin.script(path, Reply(...), Reply(...))`` queues answers for one path (the last one
repeats); a :class:`Reply` with ``etag`` answers 304 to a request whose ``If-None-Match``
holds that tag (one with ``last_modified`` to an ``If-Modified-Since`` of that date), as a
real origin would; ``mode`` makes it fail on cue: ``drop`` (close
without a word), ``hang`` (say nothing for ``delay`` s), ``cut`` (half the body, then close).
``origin.hits(path)`` counts the requests that reached it; ``origin.seen`` keeps their heads.
It runs on its own loop in a daemon thread, like the other scripted servers.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from tests.servers.slow_upstream import SeenRequest
from tests.servers.threaded import ThreadedStreamServer

__all__ = ["CacheOrigin", "Reply"]


@dataclass
class Reply:
    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b"body"
    etag: str | None = None
    #: Sent as Last-Modified; a request whose If-Modified-Since is this date gets a 304.
    last_modified: str | None = None
    mode: str = "normal"  # normal, drop, hang, cut
    delay: float = 0.0


class CacheOrigin(ThreadedStreamServer):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[SeenRequest] = []
        self._counts: Counter[str] = Counter()
        self._scripts: dict[str, list[Reply]] = {}
        self._connections = 0

    def script(self, path: str, *replies: Reply) -> None:
        self._scripts[path] = list(replies)

    def hits(self, path: str) -> int:
        return self._counts[path]

    def requests_for(self, path: str) -> list[SeenRequest]:
        return [r for r in self.seen if urlsplit(r.target).path == path]

    def _next(self, path: str) -> Reply:
        replies = self._scripts.get(path)
        if not replies:
            return Reply(404, body=b"not scripted")
        return replies.pop(0) if len(replies) > 1 else replies[0]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._connections += 1
        index = self._connections
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, target, version = lines[0].split(" ", 2)
                headers = [
                    (name, value.strip())
                    for name, _, value in (line.partition(":") for line in lines[1:] if line)
                ]
                request = SeenRequest(index, method, target, version, headers)
                length = int(request.header("content-length") or 0)
                if length:
                    request.body = await reader.readexactly(length)
                self.seen.append(request)
                path = urlsplit(target).path
                self._counts[path] += 1
                reply = self._next(path)
                if reply.delay:
                    await asyncio.sleep(reply.delay)
                if reply.mode == "drop":
                    return
                if reply.mode == "hang":
                    await asyncio.sleep(3600)
                    return
                status, body = reply.status, reply.body
                extra = list(reply.headers)
                if reply.etag is not None:
                    extra.append(("ETag", reply.etag))
                    if request.header("if-none-match") == reply.etag:
                        status, body = 304, b""
                if reply.last_modified is not None:
                    extra.append(("Last-Modified", reply.last_modified))
                    if request.header("if-modified-since") == reply.last_modified:
                        status, body = 304, b""
                out = [f"HTTP/1.1 {status} {'Not Modified' if status == 304 else 'OK'}"]
                out += [f"{name}: {value}" for name, value in extra]
                if status != 304:
                    out.append(f"Content-Length: {len(body)}")
                data = ("\r\n".join(out) + "\r\n\r\n").encode("latin-1")
                if method == "HEAD" or status == 304:
                    writer.write(data)
                elif reply.mode == "cut":
                    writer.write(data + body[: len(body) // 2])
                    await writer.drain()
                    return
                else:
                    writer.write(data + body)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()
