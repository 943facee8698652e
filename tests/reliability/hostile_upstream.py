"""An upstream that answers the way broken and malicious servers do, and counts what it executes.

:class:`HostileUpstream` is the relay tests' :class:`~tests.servers.slow_upstream.ScriptedUpstream`
(same routes, chosen by the request's last path segment, same record of every request with its
connection) with the answers issue 20 lists added: close-delimited, shorter than their
Content-Length, cut in the head or in a chunk, heads that never end or are too large, trailers and
chunk extensions without end, bytes after the answer, slow heads, answers that never come, and
absolute URLs pointing back at the upstream itself.

Every request a test sends carries a marker, its ``rid`` (in the query, and in an ``X-Rid`` header
for targets without a query such as ``*`` or CONNECT's), so the suite can tell whether a request
the proxy must refuse reached the upstream, and whether one it relayed was executed twice
(:meth:`HostileUpstream.seen` and :meth:`HostileUpstream.executed_twice`).

It reads request heads up to 16 MiB (the relay tests' upstream stops at 64 KiB), so a head the
proxy should have refused is recorded as having arrived instead of being lost on the way.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from urllib.parse import parse_qs, urlsplit

from tests.servers.slow_upstream import ScriptedUpstream, SeenRequest, _Ctx

__all__ = ["HostileUpstream", "new_rid", "rid_of"]

#: Bytes an endless answer sends at most before it stops and waits for the proxy to leave.
FLOOD_CAP = 8 * 1024 * 1024
#: Seconds an endless answer, or one that never comes, waits for the proxy to give up.
GIVE_UP_WAIT = 15.0

_rids = itertools.count(1)


def new_rid(label: str) -> str:
    """A marker unique in this test run, readable in a failure (``label-N``)."""
    return f"{label}-{next(_rids)}"


def rid_of(request: SeenRequest) -> str | None:
    """The request's marker: its ``rid`` query value, else its ``X-Rid`` header."""
    rid = parse_qs(urlsplit(request.target).query).get("rid")
    if rid:
        return rid[0]
    return request.header("x-rid")


class HostileUpstream(ScriptedUpstream):
    """See the module documentation; ``start()`` returns once it listens."""

    def __init__(self) -> None:
        super().__init__()
        #: rid -> the upstream stopped sending an endless answer because the proxy left.
        self.gave_up: set[str] = set()
        self._routes.update(
            {
                "warm": self._warm,
                "close-delimited": self._close_delimited,
                "short": self._short,
                "cut-head": self._cut_head,
                "cut-mid-chunk": self._cut_mid_chunk,
                "endless-value": self._endless_value,
                "big-head": self._big_head,
                "many-headers": self._many_headers,
                "endless-trailers": self._endless_trailers,
                "endless-ext": self._endless_ext,
                "after-bytes": self._after_bytes,
                "slow-head": self._slow_head,
                "never": self._never,
                "self-redirect": self._self_redirect,
            }
        )

    async def _start(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, sock=self._sock, ssl=self.ssl_context, limit=16 * 1024 * 1024
        )

    # -- what it saw -----------------------------------------------------------------------------

    def seen(self, rid: str) -> list[SeenRequest]:
        """The requests that carried ``rid``, in arrival order."""
        return [request for request in list(self.requests) if rid_of(request) == rid]

    def executed_twice(self) -> list[str]:
        """The markers that arrived more than once."""
        counts = Counter(rid_of(request) for request in list(self.requests))
        return sorted(rid for rid, count in counts.items() if rid is not None and count > 1)

    # -- helpers ---------------------------------------------------------------------------------

    async def _until_gone(self, ctx: _Ctx, seconds: float = GIVE_UP_WAIT) -> bool:
        """Wait for the proxy to close the connection (True). False when ``seconds`` pass or
        the proxy sends another request on it (it kept the connection): either way the
        connection closes here, unanswered."""
        ctx.keep_alive = False
        try:
            if await asyncio.wait_for(ctx.conn.reader.read(65536), seconds):
                return False
        except TimeoutError:
            return False
        except ConnectionError:
            pass
        self._left(ctx)
        return True

    def _left(self, ctx: _Ctx) -> None:
        """The proxy closed the connection in the middle of this answer."""
        ctx.keep_alive = False
        rid = rid_of(ctx.request)
        if rid is not None:
            self.gave_up.add(rid)
        self.abandoned.append(ctx.conn.index)

    async def _send(self, ctx: _Ctx, data: bytes, pieces: int = 1, delay: float = 0.0) -> bool:
        """``data`` in ``pieces`` writes ``delay`` s apart; False if the proxy left meanwhile."""
        size = -(-len(data) // pieces)
        try:
            for start in range(0, len(data), size):
                if start and delay:
                    await asyncio.sleep(delay)
                ctx.write(data[start : start + size])
                await asyncio.wait_for(ctx.drain(), GIVE_UP_WAIT)
        except ConnectionError:
            self._left(ctx)
            return False
        except TimeoutError:
            return False
        return True

    async def _flood(self, ctx: _Ctx, first: bytes, piece: bytes) -> None:
        """``first``, then ``piece`` again and again (at most :data:`FLOOD_CAP` bytes), as fast
        as the proxy reads; then wait for it to leave."""
        ctx.write(first)
        sent = 0
        try:
            while sent < FLOOD_CAP:
                ctx.write(piece)
                sent += len(piece)
                await asyncio.wait_for(ctx.drain(), GIVE_UP_WAIT)
        except ConnectionError:
            self._left(ctx)
            return
        except TimeoutError:
            pass
        await self._until_gone(ctx)

    # -- routes ----------------------------------------------------------------------------------

    async def _warm(self, ctx: _Ctx) -> None:
        """A short, well-framed answer on a kept-alive connection (the issue's ``/warm``)."""
        await self._read_body(ctx)
        ctx.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    async def _close_delimited(self, ctx: _Ctx) -> None:
        """HTTP/1.1, ``Connection: close``, the body ends with the connection."""
        await self._read_body(ctx)
        ctx.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\ncomplete body")
        ctx.keep_alive = False

    async def _short(self, ctx: _Ctx) -> None:
        """Content-Length: 100, ten bytes, then the connection closes."""
        await self._read_body(ctx)
        ctx.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
        ctx.keep_alive = False

    async def _cut_head(self, ctx: _Ctx) -> None:
        """The connection closes in the middle of the head."""
        await self._read_body(ctx)
        ctx.write(b"HTTP/1.1 200 OK\r\nContent-Le")
        ctx.keep_alive = False

    async def _cut_mid_chunk(self, ctx: _Ctx) -> None:
        """A chunk announced as 10 bytes, 5 sent, then the connection closes."""
        await self._read_body(ctx)
        ctx.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\na\r\nfirst")
        ctx.keep_alive = False

    async def _endless_value(self, ctx: _Ctx) -> None:
        """One header whose value never ends."""
        await self._read_body(ctx)
        await self._flood(ctx, b"HTTP/1.1 200 OK\r\nX-Long: ", b"a" * 1024)

    async def _big_head(self, ctx: _Ctx) -> None:
        """A 100 KB head of 1 KB headers, in one write or in ``pieces`` writes 10 ms apart."""
        await self._read_body(ctx)
        head = b"HTTP/1.1 200 OK\r\n"
        head += b"".join(b"X-Pad-%03d: %s\r\n" % (i, b"p" * 1000) for i in range(100))
        head += b"Content-Length: 2\r\n\r\nok"
        if await self._send(ctx, head, int(ctx.arg("pieces", "1")), 0.01):
            await self._until_gone(ctx, 5)

    async def _many_headers(self, ctx: _Ctx) -> None:
        """``count`` short headers (20,000 by default), then a well-framed ``ok``."""
        await self._read_body(ctx)
        count = int(ctx.arg("count", "20000"))
        head = b"HTTP/1.1 200 OK\r\n" + b"".join(b"h%d: v\r\n" % i for i in range(count))
        if await self._send(ctx, head + b"Content-Length: 2\r\n\r\nok"):
            await self._until_gone(ctx, 5)

    async def _endless_trailers(self, ctx: _Ctx) -> None:
        """A chunked body, its last chunk, then trailer fields that never end."""
        await self._read_body(ctx)
        first = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n"
        await self._flood(ctx, first, b"".join(b"X-T-%d: v\r\n" % i for i in range(100)))

    async def _endless_ext(self, ctx: _Ctx) -> None:
        """A chunk-size line whose extension never ends."""
        await self._read_body(ctx)
        first = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext="
        await self._flood(ctx, first, b"e" * 1024)

    async def _after_bytes(self, ctx: _Ctx) -> None:
        """A 2-byte answer and, in the same write, what looks like a second answer."""
        await self._read_body(ctx)
        ctx.write(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
            b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled"
        )

    async def _slow_head(self, ctx: _Ctx) -> None:
        """A well-framed answer whose head arrives a few bytes at a time, ``delay`` s apart."""
        await self._read_body(ctx)
        head = b"HTTP/1.1 200 OK\r\nX-Slow: yes\r\nContent-Length: 9\r\n\r\n"
        if await self._send(ctx, head, len(head) // 4, float(ctx.arg("delay", "0.02"))):
            ctx.write(b"slow head")

    async def _never(self, ctx: _Ctx) -> None:
        """Read the request, never answer."""
        await self._read_body(ctx)
        await self._until_gone(ctx)

    async def _self_redirect(self, ctx: _Ctx) -> None:
        """A redirect whose URLs are the upstream's own absolute address (with the request's
        first path segment when it is a base path such as ``/v1``)."""
        await self._read_body(ctx)
        path = urlsplit(ctx.request.target).path
        base = "/v1" if path.startswith("/v1/") else ""
        origin = f"http://127.0.0.1:{self.port}{base}"
        ctx.send(
            302,
            b"moved",
            [
                ("Location", f"{origin}/next?x=1"),
                ("Content-Location", f"{origin}/content"),
                ("Refresh", f"5; url={origin}/refreshed"),
            ],
            reason="Found",
        )
