"""A scripted HTTP/1.1 upstream for the relay tests, and a raw client to read what a proxy sends.

The upstreams real servers give us (uvicorn, httpbin, the edge server) are polite or shared with
other tests; this one records everything a proxy does to it (each connection, each request's raw
head and body, when a connection closed) and misbehaves on request: answers late, answers
HTTP/1.0 with a close-delimited body, closes in the middle of a body, closes a kept-alive
connection just as the next request arrives, switches protocols. Each path is one behaviour,
chosen by the request's last path segment, so a base path or a rewrite in front does not hide it.

It runs on its own event loop in a daemon thread, like the edge server, so the test's loop (where
the relay under test runs) is never blocked by it.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

from tests.servers.threaded import ThreadedStreamServer

__all__ = [
    "RawResponse",
    "ScriptedUpstream",
    "SeenRequest",
    "pattern",
    "read_response",
    "roundtrip",
    "wait_until",
]


def pattern(size: int) -> bytes:
    """Bytes where a lost, doubled or reordered piece shows."""
    block = b"".join(i.to_bytes(4, "big") for i in range(16384))  # 64 KiB, no repeats inside
    return (block * (size // len(block) + 1))[:size]


@dataclass
class SeenRequest:
    """One request as the upstream read it off the wire."""

    connection: int
    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]
    body: bytes = b""
    chunked: bool = False

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def all(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key.lower() == name.lower()]

    @property
    def names(self) -> set[str]:
        return {key.lower() for key, _ in self.headers}


@dataclass
class _Conn:
    index: int
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    stale: bool = False
    open: bool = True


@dataclass
class _Ctx:
    conn: _Conn
    request: SeenRequest
    query: dict[str, list[str]]
    keep_alive: bool = True

    def arg(self, name: str, default: str) -> str:
        return self.query.get(name, [default])[0]

    def write(self, data: bytes) -> None:
        self.conn.writer.write(data)

    async def drain(self) -> None:
        await self.conn.writer.drain()

    def send(
        self,
        status: int = 200,
        body: bytes = b"",
        headers: list[tuple[str, str]] | None = None,
        reason: str = "OK",
        length: bool = True,
    ) -> None:
        lines = [f"HTTP/1.1 {status} {reason}"]
        lines += [f"{name}: {value}" for name, value in headers or []]
        if length:
            lines.append(f"Content-Length: {len(body)}")
        self.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)


Route = Callable[[_Ctx], Awaitable[None]]


class ScriptedUpstream(ThreadedStreamServer):
    """``start()`` returns once it listens; see the module documentation for the routes."""

    def __init__(self) -> None:
        super().__init__()
        #: Connections accepted so far, and the indexes of those that have closed.
        self.connections = 0
        self.closed: list[int] = []
        #: Connections whose peer (the proxy) closed while a route was still answering.
        self.abandoned: list[int] = []
        self.requests: list[SeenRequest] = []
        self._routes: dict[str, Route] = {
            "slow": self._slow,
            "slow-body": self._slow_body,
            "http10": self._http10,
            "cut": self._cut,
            "cut-chunked": self._cut_chunked,
            "stale": self._stale,
            "status": self._status,
            "big": self._big,
            "sink": self._sink,
            "echo-stream": self._echo_stream,
            "drip": self._drip,
            "hop": self._hop,
            "upgrade": self._upgrade,
            "switch-unasked": self._switch_unasked,
            "garbage": self._garbage,
            "early-hints": self._early_hints,
            "early-hints-split": self._early_hints_split,
            "api": self._api,
            "endless-head": self._endless_head,
            "overlong": self._overlong,
            "close": self._close,
            "hangup": self._hangup,
            "close-body": self._close_body,
            "cut-head": self._cut_head,
            "big-head": self._big_head,
            "coded": self._coded,
            "many-headers": self._many_headers,
            "sized-head": self._sized_head,
            "many-interim": self._many_interim,
            "endless-value": self._endless_value,
            "endless-trailers": self._endless_trailers,
            "endless-extension": self._endless_extension,
            "redirect": self._redirect,
        }

    def reset(self) -> None:
        """Forget what was seen (connections stay open and keep their indexes)."""
        self.requests.clear()
        self.abandoned.clear()

    def open_connections(self) -> int:
        return self.connections - len(self.closed)

    # -- serving ------------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        conn = _Conn(self.connections, reader, writer)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
                    return
                if conn.stale:
                    return  # a kept-alive connection closed just as a request came in
                lines = head.decode("latin-1").split("\r\n")
                method, target, version = lines[0].split(" ", 2)
                headers = [
                    (name, value.strip())
                    for name, _, value in (line.partition(":") for line in lines[1:] if line)
                ]
                request = SeenRequest(conn.index, method, target, version, headers)
                request.chunked = (request.header("transfer-encoding") or "").lower() == "chunked"
                self.requests.append(request)
                split = urlsplit(target)
                ctx = _Ctx(conn, request, parse_qs(split.query))
                route = self._routes.get(split.path.rstrip("/").rsplit("/", 1)[-1], self._echo)
                await route(ctx)
                await writer.drain()
                if not ctx.keep_alive or (request.header("connection") or "").lower() == "close":
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            conn.open = False
            self.closed.append(conn.index)
            writer.close()

    async def _read_body(self, ctx: _Ctx) -> bytes:
        """The whole request body, de-chunked."""
        parts = [part async for part in self._body_parts(ctx)]
        ctx.request.body = b"".join(parts)
        return ctx.request.body

    async def _body_parts(self, ctx: _Ctx):  # type: ignore[no-untyped-def]
        reader = ctx.conn.reader
        if ctx.request.chunked:
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    while await reader.readuntil(b"\r\n") != b"\r\n":
                        pass  # a trailer field
                    return
                while size:
                    piece = await reader.read(min(size, 65536))
                    if not piece:
                        raise asyncio.IncompleteReadError(b"", size)
                    size -= len(piece)
                    yield piece
                await reader.readexactly(2)
        else:
            left = int(ctx.request.header("content-length") or 0)
            while left:
                piece = await reader.read(min(left, 65536))
                if not piece:
                    raise asyncio.IncompleteReadError(b"", left)
                left -= len(piece)
                yield piece

    async def _peer_gone_within(self, ctx: _Ctx, seconds: float) -> bool:
        """Wait up to ``seconds``; True (and recorded) if the proxy closed the connection."""
        try:
            data = await asyncio.wait_for(ctx.conn.reader.read(1), seconds)
        except TimeoutError:
            return False
        except ConnectionError:
            data = b""
        if not data:
            self.abandoned.append(ctx.conn.index)
            ctx.keep_alive = False
            return True
        raise AssertionError(f"unexpected bytes from the proxy mid-answer: {data!r}")

    # -- routes -------------------------------------------------------------------------------

    def _payload(self, ctx: _Ctx) -> bytes:
        request = ctx.request
        return json.dumps(
            {
                "connection": request.connection,
                "method": request.method,
                "target": request.target,
                "version": request.version,
                "headers": request.headers,
                "body": request.body.decode("latin-1"),
                "chunked": request.chunked,
            }
        ).encode()

    async def _echo(self, ctx: _Ctx) -> None:
        await self._read_body(ctx)
        ctx.send(200, self._payload(ctx), [("Content-Type", "application/json")])

    async def _slow(self, ctx: _Ctx) -> None:
        """Answer after ``delay`` s, or notice that the proxy gave up first."""
        await self._read_body(ctx)
        if await self._peer_gone_within(ctx, float(ctx.arg("delay", "2"))):
            return
        ctx.send(200, b"late", [("Content-Type", "text/plain")])

    async def _slow_body(self, ctx: _Ctx) -> None:
        await self._read_body(ctx)
        ctx.send(200, b"start", [("Content-Length", "10")], length=False)
        await ctx.drain()
        if await self._peer_gone_within(ctx, float(ctx.arg("delay", "2"))):
            return
        ctx.write(b"-end-")

    async def _http10(self, ctx: _Ctx) -> None:
        """An HTTP/1.0 answer without Content-Length: the body ends with the connection."""
        await self._read_body(ctx)
        ctx.write(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n")
        for i in range(int(ctx.arg("parts", "3"))):
            ctx.write(b"part%d;" % i)
            await ctx.drain()
            await asyncio.sleep(0.02)
        ctx.keep_alive = False

    async def _cut(self, ctx: _Ctx) -> None:
        await self._read_body(ctx)
        ctx.send(200, b"0123456789", [("Content-Length", "100")], length=False)
        await ctx.drain()
        await asyncio.sleep(0.05)
        ctx.keep_alive = False

    async def _cut_chunked(self, ctx: _Ctx) -> None:
        await self._read_body(ctx)
        ctx.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n")
        await ctx.drain()
        await asyncio.sleep(0.05)
        ctx.keep_alive = False

    async def _stale(self, ctx: _Ctx) -> None:
        """Answer as if keeping the connection, then drop it when the next request arrives."""
        await self._read_body(ctx)
        ctx.send(200, b"fresh", [("Connection", "keep-alive")])
        ctx.conn.stale = True

    async def _close(self, ctx: _Ctx) -> None:
        """Answer with ``Connection: close`` and close."""
        await self._read_body(ctx)
        ctx.send(200, b"closing", [("Connection", "close")])
        ctx.keep_alive = False

    async def _hangup(self, ctx: _Ctx) -> None:
        """Read the request, close without a word."""
        await self._read_body(ctx)
        ctx.keep_alive = False

    async def _close_body(self, ctx: _Ctx) -> None:
        """An HTTP/1.1 answer whose body ends with the connection (no length, no chunks)."""
        await self._read_body(ctx)
        ctx.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\ncomplete body")
        ctx.keep_alive = False

    async def _cut_head(self, ctx: _Ctx) -> None:
        """Half an answer's head, then the connection closes."""
        await self._read_body(ctx)
        ctx.write(b"HTTP/1.1 200 OK\r\nContent-Ty")
        await ctx.drain()
        ctx.keep_alive = False

    async def _status(self, ctx: _Ctx) -> None:
        await self._read_body(ctx)
        code = int(ctx.arg("code", "200"))
        if code in (204, 304):
            # A 304 says which representation is still valid; its length is that of the body
            # a GET would get, which it does not carry.
            headers = [("ETag", '"v1"')]
            if code == 304:
                headers.append(("Content-Length", "1234"))
            ctx.send(code, b"", headers, reason="Custom", length=False)
        else:
            ctx.send(code, b"body of %d" % code, reason="Custom Reason")

    async def _big(self, ctx: _Ctx) -> None:
        """``size`` bytes of :func:`pattern`, with a length or (``chunked=1``) chunked."""
        await self._read_body(ctx)
        size = int(ctx.arg("size", str(1024 * 1024)))
        chunked = ctx.arg("chunked", "0") == "1"
        data = pattern(size)
        if ctx.request.method == "HEAD":
            ctx.send(200, b"", [("Content-Length", str(size))], length=False)
            return
        if ctx.arg("once", "0") == "1":
            ctx.send(200, data, [("Content-Type", "application/octet-stream")])
            return
        framing = ("Transfer-Encoding", "chunked") if chunked else ("Content-Length", str(size))
        ctx.send(200, b"", [("Content-Type", "application/octet-stream"), framing], length=False)
        for start in range(0, size, 65536):
            piece = data[start : start + 65536]
            ctx.write(b"%x\r\n%b\r\n" % (len(piece), piece) if chunked else piece)
            await ctx.drain()
        if chunked:
            ctx.write(b"0\r\n\r\n")

    async def _sink(self, ctx: _Ctx) -> None:
        """Count the body without keeping it; answer ``<bytes> <first 8 hex> <last 8 hex>``."""
        total = 0
        first = last = b""
        async for piece in self._body_parts(ctx):
            if not first:
                first = piece[:4]
            last = (last + piece)[-4:]
            total += len(piece)
        ctx.send(200, b"%d %s %s" % (total, first.hex().encode(), last.hex().encode()))

    async def _echo_stream(self, ctx: _Ctx) -> None:
        """Each piece of the request body goes straight back as a chunk of the response."""
        ctx.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        async for piece in self._body_parts(ctx):
            ctx.write(b"%x\r\n%b\r\n" % (len(piece), piece))
            await ctx.drain()
        ctx.write(b"0\r\n\r\n")

    async def _drip(self, ctx: _Ctx) -> None:
        """``n`` chunks, ``delay`` s apart; stops when the proxy goes away."""
        await self._read_body(ctx)
        ctx.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for i in range(int(ctx.arg("n", "100"))):
            piece = b"drop%d;" % i
            try:
                ctx.write(b"%x\r\n%b\r\n" % (len(piece), piece))
                await ctx.drain()
            except ConnectionError:
                self.abandoned.append(ctx.conn.index)
                ctx.keep_alive = False
                return
            if await self._peer_gone_within(ctx, float(ctx.arg("delay", "0.05"))):
                return
        ctx.write(b"0\r\n\r\n")

    async def _hop(self, ctx: _Ctx) -> None:
        """An answer full of hop-by-hop headers a proxy must not pass on."""
        await self._read_body(ctx)
        ctx.send(
            200,
            b"hop",
            [
                ("Connection", "X-Upstream-Secret, keep-alive"),
                ("X-Upstream-Secret", "s3cr3t"),
                ("Keep-Alive", "timeout=5"),
                ("Proxy-Authenticate", "Basic realm=upstream"),
                ("Proxy-Connection", "keep-alive"),
                ("Trailer", "X-Checksum"),
                ("Upgrade", "h2c"),
                ("Via", "1.0 upstream-cache"),
                ("Server", "scripted"),
                ("X-Kept", "yes"),
            ],
        )

    async def _api(self, ctx: _Ctx) -> None:
        """A third-party API's answer: a long head (over 512 bytes, relayed from its bytes),
        plain hop-by-hop headers among the others, and names that only begin like hop-by-hop
        ones. ``?chunked=1`` sends the body chunked; ``?via=...`` adds a ``Via``."""
        await self._read_body(ctx)
        body = b'{"id": 4711}'
        head = (
            b"HTTP/1.1 200 OK\r\n"
            b"Server: api-gateway\r\n"
            b"Content-Type: application/json; charset=utf-8\r\n"
            b"connection: Keep-Alive\r\n"
            b"Keep-Alive: timeout=5, max=100\r\n"
            b"Cache-Control: private, max-age=60\r\n"
            b"Proxy-Authenticate: Basic realm=upstream\r\n"
            b"X-RateLimit-Limit: 5000\r\n"
            b"X-RateLimit-Remaining: 4999\r\n"
            b"Connection-Id: 17\r\n"
            b"X-Connection: upstream-only-by-name\r\n"
            b"TE-Hint: none\r\n"
            b"Via-Region: eu-west\r\n"
            b"Upgrade: h2c\r\n"
            b"Set-Cookie: a=1\r\n"
            b"Set-Cookie: b=2\r\n"
            b"X-Spaced:   padded\r\n"
            b"Strict-Transport-Security: max-age=31536000; includeSubDomains; preload\r\n"
            b"Content-Security-Policy: default-src 'none'; frame-ancestors 'none'\r\n"
            b"X-Request-Id: 7f3c2a9e-5b1d-4c8e-9a2f-0d6e1b3c4a5f\r\n"
        )
        if ctx.arg("via", ""):
            head += b"Via: %s\r\n" % ctx.arg("via", "").encode()
        if ctx.arg("chunked", "0") == "1":
            head += b"Transfer-Encoding: chunked\r\n\r\n"
            ctx.write(head + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
        else:
            ctx.write(head + b"Content-Length: %d\r\n\r\n%s" % (len(body), body))

    async def _redirect(self, ctx: _Ctx) -> None:
        """A 302 whose ``Location``, ``Content-Location`` and ``Refresh`` name ``?to=``;
        ``?pad=N`` adds an N-byte header (a long head is relayed from its bytes)."""
        await self._read_body(ctx)
        to = ctx.arg("to", "/")
        headers = [("Location", to), ("Content-Location", to), ("Refresh", f"0; url={to}")]
        pad = int(ctx.arg("pad", "0"))
        if pad:
            headers.append(("X-Pad", "p" * pad))
        ctx.send(302, b"moved", headers, reason="Found")

    async def _upgrade(self, ctx: _Ctx) -> None:
        """``101 Switching Protocols`` to ``raw-echo``: every byte after it comes back."""
        protocol = ctx.request.header("upgrade") or "raw-echo"
        ctx.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: %s\r\nConnection: Upgrade\r\n"
            b"X-Switched: yes\r\n\r\n" % protocol.encode()
        )
        await ctx.drain()
        reader = ctx.conn.reader
        for _ in range(int(ctx.arg("push", "0"))):  # ``?push=N``: N ticks, 0.5 s apart, first
            ctx.write(b"tick")
            await ctx.drain()
            await asyncio.sleep(0.5)
        while data := await reader.read(65536):
            ctx.write(b"echo:" + data)
            await ctx.drain()
        ctx.keep_alive = False

    async def _switch_unasked(self, ctx: _Ctx) -> None:
        await self._read_body(ctx)
        ctx.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: surprise\r\n\r\n")
        ctx.keep_alive = False

    async def _garbage(self, ctx: _Ctx) -> None:
        await self._read_body(ctx)
        ctx.write(b"HTTP/1.1 abc Nope\r\nContent-Length: 0\r\n\r\n")
        ctx.keep_alive = False

    async def _endless_head(self, ctx: _Ctx) -> None:
        """A head that never ends: header lines until the proxy goes away (at most ``kib``)."""
        await self._read_body(ctx)
        ctx.write(b"HTTP/1.1 200 OK\r\n")
        for number in range(int(ctx.arg("kib", "1024"))):
            try:
                ctx.write(b"X-Pad-%06d: %s\r\n" % (number, b"p" * 1006))
                await ctx.drain()
            except ConnectionError:
                break
        ctx.keep_alive = False

    async def _big_head(self, ctx: _Ctx) -> None:
        """A head of about ``kib`` KiB in one write (``pieces=1``: a write per KiB)."""
        await self._read_body(ctx)
        lines = [
            b"X-Pad-%06d: %s\r\n" % (n, b"p" * 1006) for n in range(int(ctx.arg("kib", "100")))
        ]
        head = b"HTTP/1.1 200 OK\r\n" + b"".join(lines) + b"Content-Length: 2\r\n\r\nok"
        if ctx.arg("pieces", "0") == "1":
            for start in range(0, len(head), 1024):
                ctx.write(head[start : start + 1024])
                await ctx.drain()
                await asyncio.sleep(0.001)
        else:
            ctx.write(head)

    async def _coded(self, ctx: _Ctx) -> None:
        """A chunked body under ``Transfer-Encoding: <te>`` (each ``te`` given a header)."""
        await self._read_body(ctx)
        codings = ctx.query.get("te", ["chunked"])
        lines = b"".join(b"Transfer-Encoding: %s\r\n" % te.encode() for te in codings)
        ctx.write(b"HTTP/1.1 200 OK\r\n" + lines + b"\r\n4\r\nbody\r\n0\r\n\r\n")

    async def _many_headers(self, ctx: _Ctx) -> None:
        """``n`` short headers in one head."""
        await self._read_body(ctx)
        lines = b"".join(b"X-%d: v\r\n" % i for i in range(int(ctx.arg("n", "20000"))))
        ctx.write(b"HTTP/1.1 200 OK\r\n" + lines + b"Content-Length: 2\r\n\r\nok")

    async def _sized_head(self, ctx: _Ctx) -> None:
        """A head of exactly ``size`` bytes (its blank line included) with ``fields`` header
        fields, then a 2-byte body; in writes of ``piece`` bytes (default: all in one)."""
        await self._read_body(ctx)
        size, fields = int(ctx.arg("size", "65536")), int(ctx.arg("fields", "3"))
        lines = [b"HTTP/1.1 200 OK\r\n", b"Content-Length: 2\r\n"]
        lines += [b"X-%d: v\r\n" % number for number in range(fields - 2)]
        padding = size - sum(map(len, lines)) - len(b"X-Pad: \r\n\r\n")
        data = b"".join(lines) + b"X-Pad: " + b"p" * padding + b"\r\n\r\nok"
        piece = int(ctx.arg("piece", "0")) or len(data)
        for start in range(0, len(data), piece):
            ctx.write(data[start : start + piece])
            await ctx.drain()

    async def _many_interim(self, ctx: _Ctx) -> None:
        """``n`` interim heads (103 Early Hints with a Link field), a hundred to a write, then
        the answer; until the client goes away."""
        await self._read_body(ctx)
        hints = b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n" * 100
        for _ in range(int(ctx.arg("n", "100000")) // 100):
            try:
                ctx.write(hints)
                await ctx.drain()
            except ConnectionError:
                ctx.keep_alive = False
                return
        ctx.send(200, b"final")

    async def _endless_value(self, ctx: _Ctx) -> None:
        """One header value, a KiB per write, until the proxy goes away (at most ``kib``)."""
        await self._read_body(ctx)
        ctx.write(b"HTTP/1.1 200 OK\r\nX-Long: ")
        await self._drip_bytes(ctx, b"v" * 1024, int(ctx.arg("kib", "4096")))

    async def _endless_trailers(self, ctx: _Ctx) -> None:
        """A chunked body, then trailer fields that never end."""
        await self._read_body(ctx)
        ctx.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nbody\r\n0\r\n")
        await self._drip_bytes(ctx, b"X-Trailer: " + b"t" * 1000 + b"\r\n", 4096)

    async def _endless_extension(self, ctx: _Ctx) -> None:
        """A chunked body whose second chunk's extension never ends."""
        await self._read_body(ctx)
        ctx.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nbody\r\n4;e=")
        await self._drip_bytes(ctx, b"e" * 1024, 4096)

    async def _drip_bytes(self, ctx: _Ctx, piece: bytes, count: int) -> None:
        for _ in range(count):
            try:
                ctx.write(piece)
                await ctx.drain()
            except ConnectionError:
                break
            await asyncio.sleep(0.001)
            if ctx.conn.reader.at_eof():
                break
        ctx.keep_alive = False

    async def _overlong(self, ctx: _Ctx) -> None:
        """An answer with more bytes than its Content-Length says, the surplus looking like an
        answer of its own, sent after ``delay`` s in one write with the end of the body."""
        await self._read_body(ctx)
        size = int(ctx.arg("size", "70000"))
        ctx.send(200, b"", [("Content-Length", str(size))], length=False)
        await ctx.drain()
        await asyncio.sleep(float(ctx.arg("delay", "0.2")))
        ctx.write(b"a" * size + b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled")
        await ctx.drain()

    async def _early_hints(self, ctx: _Ctx) -> None:
        """103 then the answer; ``?pad=N``: both in one write, the answer's head N bytes long."""
        await self._read_body(ctx)
        ctx.write(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n")
        pad = int(ctx.arg("pad", "0"))
        if not pad:
            await ctx.drain()
        ctx.send(200, b"final", [("X-After", "hints"), ("X-Pad", "p" * pad)])

    async def _early_hints_split(self, ctx: _Ctx) -> None:
        """An interim answer and the final head in one write, the head's (long) end in the next."""
        await self._read_body(ctx)
        ctx.write(
            b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Le"
        )
        await ctx.drain()
        await asyncio.sleep(0.05)
        # Long enough (over 512 bytes) for the relay to look for a head it could take whole.
        ctx.write(b"ngth: 5\r\nX-Pad: %s\r\nX-After: hints\r\n\r\nfinal" % (b"p" * 600))


# -- a raw client ------------------------------------------------------------------------------


@dataclass
class RawResponse:
    """A response read byte by byte off a socket, framing facts included."""

    version: str
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes = b""
    chunked: bool = False
    #: The body ended with the connection (no length, not chunked).
    close_delimited: bool = False
    informational: list[int] = field(default_factory=list)

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def all(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key.lower() == name.lower()]

    @property
    def names(self) -> set[str]:
        return {key.lower() for key, _ in self.headers}

    def json(self) -> object:
        return json.loads(self.body)


async def read_head(reader: asyncio.StreamReader) -> RawResponse:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    version, status, reason = [*lines[0].split(" ", 2), ""][:3]
    headers = [
        (name, value.strip())
        for name, _, value in (line.partition(":") for line in lines[1:] if line)
    ]
    return RawResponse(version, int(status), reason, headers)


async def read_response(
    reader: asyncio.StreamReader, *, head_only: bool = False, timeout: float = 10.0
) -> RawResponse:
    """One response; raises ``asyncio.IncompleteReadError`` when the connection is cut short."""
    async with asyncio.timeout(timeout):
        informational: list[int] = []
        while True:
            response = await read_head(reader)
            if response.status >= 200 or response.status == 101:
                break
            informational.append(response.status)
        response.informational = informational
        if head_only or response.status in (101, 204, 304):
            return response
        if (response.header("transfer-encoding") or "").lower() == "chunked":
            response.chunked = True
            parts = []
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await reader.readuntil(b"\r\n")
                    break
                parts.append(await reader.readexactly(size))
                await reader.readexactly(2)
            response.body = b"".join(parts)
        elif (length := response.header("content-length")) is not None:
            response.body = await reader.readexactly(int(length))
        else:
            response.close_delimited = True
            response.body = await reader.read()
        return response


async def roundtrip(
    port: int, data: bytes, *, head_only: bool = False, timeout: float = 10.0
) -> RawResponse:
    """Open a connection, send ``data``, read one response, close."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        return await read_response(reader, head_only=head_only, timeout=timeout)
    finally:
        writer.close()


async def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll ``predicate`` until true or ``timeout``; returns its last value."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True
