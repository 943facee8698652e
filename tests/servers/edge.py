"""A small HTTP/1.1 server for the edge cases real servers are too polite to produce.

It runs on its own event loop in a daemon thread, so sync and async tests share it. Each path
is one behaviour; the request head is parsed by hand on purpose (the server must be able to
misbehave in ways a real parser would forbid).
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

from tests.servers.threaded import ThreadedStreamServer

Handler = Callable[["Exchange"], "asyncio.Future[None] | None"]


class Exchange:
    """One request as the server read it, and the means to answer."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        method: str,
        target: str,
        version: str,
        headers: list[tuple[str, str]],
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        split = urlsplit(target) if target != "*" else urlsplit("")
        self.path = split.path if target != "*" else "*"
        self.query = parse_qs(split.query)
        self.keep_alive = True

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def arg(self, name: str, default: str) -> str:
        return self.query.get(name, [default])[0]

    async def read_body(self) -> bytes:
        length = self.header("content-length")
        if length is not None:
            return await self.reader.readexactly(int(length))
        if (self.header("transfer-encoding") or "").lower() == "chunked":
            body = bytearray()
            while True:
                size_line = await self.reader.readuntil(b"\r\n")
                size = int(size_line.split(b";")[0], 16)
                if size == 0:
                    await self.reader.readuntil(b"\r\n")
                    return bytes(body)
                body += await self.reader.readexactly(size)
                await self.reader.readexactly(2)
        return b""

    def send(
        self,
        status: int = 200,
        body: bytes = b"",
        headers: list[tuple[str, str]] | None = None,
        reason: str = "OK",
    ) -> None:
        head = [f"HTTP/1.1 {status} {reason}"]
        names = set()
        for name, value in headers or []:
            head.append(f"{name}: {value}")
            names.add(name.lower())
        if "content-length" not in names and "transfer-encoding" not in names:
            head.append(f"Content-Length: {len(body)}")
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)


async def echo(ex: Exchange) -> None:
    body = await ex.read_body()
    payload = {
        "method": ex.method,
        "target": ex.target,
        "headers": ex.headers,
        "body": body.decode("latin-1"),
    }
    ssl_object = ex.writer.get_extra_info("ssl_object")
    if ssl_object is not None:
        peer = ssl_object.getpeercert()
        payload["client_cert"] = dict(x[0] for x in peer["subject"]) if peer else None
    ex.send(200, json.dumps(payload).encode(), [("Content-Type", "application/json")])


async def close_after(ex: Exchange) -> None:
    """Answer as if keeping the connection alive, then close it anyway."""
    ex.send(200, b"bye", [("Connection", "keep-alive")])
    await ex.writer.drain()
    ex.keep_alive = False


async def truncated(ex: Exchange) -> None:
    ex.send(200, b"0123456789", [("Content-Length", "100")])
    await ex.writer.drain()
    ex.keep_alive = False


async def slow_body(ex: Exchange) -> None:
    ex.send(200, b"start", [("Content-Length", "10")])
    await ex.writer.drain()
    await asyncio.sleep(float(ex.arg("delay", "2")))
    ex.writer.write(b"-end-")


async def slow_head(ex: Exchange) -> None:
    await asyncio.sleep(float(ex.arg("delay", "2")))
    ex.send(200, b"late")


async def bad_status(ex: Exchange) -> None:
    ex.writer.write(b"HTTP/1.1 abc Nope\r\nContent-Length: 0\r\n\r\n")
    ex.keep_alive = False


async def overlong(ex: Exchange) -> None:
    """A body longer than its Content-Length, the surplus shaped like a second answer, in one
    write (``size`` bytes announced; 100 KiB and more go through the client's bypass)."""
    size = int(ex.arg("size", "2"))
    ex.writer.write(
        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (size, b"o" * size)
        + b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled"
    )


async def chunked(ex: Exchange) -> None:
    count = int(ex.arg("n", "5"))
    ex.writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    for i in range(count):
        part = f"chunk{i};".encode()
        ex.writer.write(b"%x\r\n%b\r\n" % (len(part), part))
        await ex.writer.drain()
    ex.writer.write(b"0\r\n\r\n")


def pattern(size: int) -> bytes:
    """Deterministic, non-repeating-looking bytes so a lost or doubled chunk shows."""
    block = bytes(range(256)) * 256 + b"ferryman"
    out = (block * (size // len(block) + 1))[:size]
    return out


async def big(ex: Exchange) -> None:
    size = int(ex.arg("size", str(1024 * 1024)))
    ex.send(200, pattern(size), [("Content-Type", "application/octet-stream")])


async def until_close(ex: Exchange) -> None:
    ex.writer.write(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it until EOF")
    ex.keep_alive = False


async def http09(ex: Exchange) -> None:
    """An HTTP/0.9 answer: no status line, no headers, the body until the connection closes.
    ``split=N`` sends the first N bytes on their own first (a start that could still have
    been ``HTTP/``)."""
    body = ex.arg("body", "an HTTP/0.9 answer has no head, only this").encode()
    split = int(ex.arg("split", "0"))
    if split:
        ex.writer.write(body[:split])
        await ex.writer.drain()
        await asyncio.sleep(0.05)
        body = body[split:]
    ex.writer.write(body)
    ex.keep_alive = False


async def expect_continue(ex: Exchange) -> None:
    if (ex.header("expect") or "").lower() == "100-continue":
        if ex.arg("reject", "0") == "1":
            ex.send(417, b"no body please", reason="Expectation Failed")
            ex.keep_alive = False
            return
        ex.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    body = await ex.read_body()
    ex.send(200, b"got " + str(len(body)).encode())


async def early_hints(ex: Exchange) -> None:
    ex.writer.write(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n")
    ex.send(200, b"final")


async def status(ex: Exchange) -> None:
    code = int(ex.arg("code", "200"))
    ex.send(code, b"" if code in (204, 304) else b"body", reason="Custom Reason")


async def sink(ex: Exchange) -> None:
    """Count a (streamed) request body without keeping it."""
    total = 0
    if (ex.header("transfer-encoding") or "").lower() == "chunked":
        while True:
            size = int((await ex.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await ex.reader.readuntil(b"\r\n")
                break
            while size:
                got = await ex.reader.read(min(size, 65536))
                size -= len(got)
                total += len(got)
            await ex.reader.readexactly(2)
    else:
        left = int(ex.header("content-length") or 0)
        while left:
            got = await ex.reader.read(min(left, 65536))
            left -= len(got)
            total += len(got)
    ex.send(200, str(total).encode())


async def no_read(ex: Exchange) -> None:
    """Never read the request body, so a large upload fills the socket buffers and stalls."""
    await asyncio.sleep(float(ex.arg("delay", "3")))
    ex.keep_alive = False


async def connect_tunnel(ex: Exchange) -> None:
    """A CONNECT proxy: open the target and splice bytes both ways."""
    host, _, port = ex.target.rpartition(":")
    try:
        up_reader, up_writer = await asyncio.open_connection(host.strip("[]"), int(port))
    except OSError:
        ex.send(502, b"cannot reach target", reason="Bad Gateway")
        ex.keep_alive = False
        return
    ex.writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")

    async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            dst.close()

    await asyncio.gather(pipe(ex.reader, up_writer), pipe(up_reader, ex.writer))
    ex.keep_alive = False


ROUTES: dict[str, Handler] = {
    "/echo": echo,
    "/close-after": close_after,
    "/truncated": truncated,
    "/slow-body": slow_body,
    "/slow-head": slow_head,
    "/bad-status": bad_status,
    "/overlong": overlong,
    "/chunked": chunked,
    "/big": big,
    "/until-close": until_close,
    "/http09": http09,
    "/continue": expect_continue,
    "/early-hints": early_hints,
    "/status": status,
    "/sink": sink,
    "/no-read": no_read,
}


class EdgeServer(ThreadedStreamServer):
    """Runs the routes above on 127.0.0.1 (optionally over TLS) in a background thread."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        super().__init__(ssl_context)
        self.connections = 0
        self.requests: list[tuple[str, str]] = []
        self.server_names: list[str | None] = []
        if ssl_context is not None:
            ssl_context.sni_callback = self._record_sni

    def _record_sni(self, ssl_object: ssl.SSLObject, name: str | None, ctx: object) -> None:
        self.server_names.append(name)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, target, version = lines[0].split(" ", 2)
                headers = [tuple(line.split(": ", 1)) for line in lines[1:] if line]
                ex = Exchange(reader, writer, method, target, version, headers)  # type: ignore[arg-type]
                self.requests.append((method, target))
                if method == "CONNECT":
                    await connect_tunnel(ex)
                    return
                handler = ROUTES.get(ex.path, echo)
                await handler(ex)
                await writer.drain()
                # ``ignore-close=1``: keep the connection open whatever the request asked.
                if (ex.header("connection") or "").lower() == "close" and (
                    ex.arg("ignore-close", "0") != "1"
                ):
                    return
                if not ex.keep_alive:
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()
