"""A small forward proxy for the tests: absolute-form forwarding and CONNECT tunnels.

It runs on its own event loop in a daemon thread (like ``edge.py``), records what it was sent,
and only ever connects to 127.0.0.1: a target named ``localhost`` is reached there, any other
host is refused with 403. Options: ``auth`` (Basic credentials it demands, answering 407
otherwise), ``connect_status`` (answer every CONNECT with this status instead of tunnelling),
``ssl_context`` (serve as an ``https://`` proxy).
"""

from __future__ import annotations

import asyncio
import base64
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import urlsplit

from tests.servers.threaded import ThreadedStreamServer

ALLOWED_HOSTS = frozenset({"127.0.0.1", "localhost"})
# Hop-by-hop fields meant for the proxy, not for the origin.
PROXY_ONLY = frozenset({"proxy-authorization", "proxy-connection"})


@dataclass
class SeenRequest:
    """One request head as the proxy received it."""

    method: str
    target: str
    headers: list[tuple[str, str]]

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


class Head:
    """A parsed message head: first line and fields."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        lines = raw.decode("latin-1").split("\r\n")
        self.first_line = lines[0]
        self.headers: list[tuple[str, str]] = []
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                self.headers.append((name, value.strip()))

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None

    def wants_close(self) -> bool:
        return (self.header("connection") or "").lower() == "close"


async def read_head(reader: asyncio.StreamReader) -> Head | None:
    try:
        return Head(await reader.readuntil(b"\r\n\r\n"))
    except (asyncio.IncompleteReadError, ConnectionError):
        return None


async def relay_body(
    head: Head, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, until_eof: bool
) -> None:
    """Copy one message body as its head frames it; ``until_eof`` for responses without framing."""
    if (head.header("transfer-encoding") or "").lower() == "chunked":
        while True:
            size_line = await reader.readuntil(b"\r\n")
            writer.write(size_line)
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                while (trailer := await reader.readuntil(b"\r\n")) != b"\r\n":
                    writer.write(trailer)
                writer.write(b"\r\n")
                return
            writer.write(await reader.readexactly(size + 2))
            await writer.drain()
    length = head.header("content-length")
    if length is not None:
        left = int(length)
        while left:
            data = await reader.read(min(left, 65536))
            if not data:
                raise asyncio.IncompleteReadError(b"", left)
            writer.write(data)
            await writer.drain()
            left -= len(data)
    elif until_eof:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()


def answer(
    writer: asyncio.StreamWriter, status: int, extra: Sequence[tuple[str, str]] = ()
) -> None:
    """A short final answer from the proxy itself, after which the connection closes."""
    phrase = HTTPStatus(status).phrase
    body = f"{status} {phrase}".encode()
    lines = [f"HTTP/1.1 {status} {phrase}", *(f"{n}: {v}" for n, v in extra)]
    lines += [f"Content-Length: {len(body)}", "Connection: close"]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)


class ForwardProxy(ThreadedStreamServer):
    """The proxy, on 127.0.0.1 and a free port, in a background thread."""

    def __init__(
        self,
        *,
        auth: tuple[str, str] | None = None,
        connect_status: int | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(ssl_context)
        self.auth = auth
        self.connect_status = connect_status
        self.requests: list[SeenRequest] = []
        self.connections = 0  # client connections accepted
        self.upstream_connections = 0  # connections opened to origins (forwarding and tunnels)

    @property
    def connect_targets(self) -> list[str]:
        return [seen.target for seen in self.requests if seen.method == "CONNECT"]

    def _authorized(self, head: Head) -> bool:
        if self.auth is None:
            return True
        expected = base64.b64encode(":".join(self.auth).encode()).decode()
        return head.header("proxy-authorization") == f"Basic {expected}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        upstreams: dict[tuple[str, int], tuple[asyncio.StreamReader, asyncio.StreamWriter]] = {}
        try:
            while (head := await read_head(reader)) is not None:
                method, target, _ = head.first_line.split(" ", 2)
                self.requests.append(SeenRequest(method, target, head.headers))
                if not self._authorized(head):
                    answer(writer, 407, [("Proxy-Authenticate", 'Basic realm="ferryman-test"')])
                    return
                if method == "CONNECT":
                    await self._tunnel(target, reader, writer)
                    return
                if not await self._forward(head, method, target, reader, writer, upstreams):
                    return
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            return
        finally:
            for _, up_writer in upstreams.values():
                up_writer.close()
            writer.close()

    async def _open_upstream(
        self, host: str, port: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        if host not in ALLOWED_HOSTS:
            return None
        self.upstream_connections += 1
        return await asyncio.open_connection("127.0.0.1", port)

    async def _tunnel(
        self, target: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        if self.connect_status is not None:
            answer(writer, self.connect_status)
            return
        host, _, port = target.rpartition(":")
        try:
            upstream = await self._open_upstream(host.strip("[]"), int(port))
        except OSError:
            answer(writer, 502)
            return
        if upstream is None:
            answer(writer, 403)
            return
        up_reader, up_writer = upstream
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, ssl.SSLError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def _forward(
        self,
        head: Head,
        method: str,
        target: str,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        upstreams: dict[tuple[str, int], tuple[asyncio.StreamReader, asyncio.StreamWriter]],
    ) -> bool:
        """Relay one absolute-form request and its response; False when the client must go."""
        split = urlsplit(target)
        if split.scheme != "http" or not split.hostname:
            answer(writer, 400)
            return False
        origin = (split.hostname, split.port or 80)
        upstream = upstreams.get(origin)
        if upstream is None or upstream[1].is_closing():
            try:
                upstream = await self._open_upstream(*origin)
            except OSError:
                answer(writer, 502)
                return False
            if upstream is None:
                answer(writer, 403)
                return False
            upstreams[origin] = upstream
        up_reader, up_writer = upstream
        after_authority = target.find("/", len("http://"))
        path = target[after_authority:] if after_authority != -1 else "/"  # verbatim
        lines = [f"{method} {path} HTTP/1.1"]
        lines += [f"{n}: {v}" for n, v in head.headers if n.lower() not in PROXY_ONLY]
        up_writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        await relay_body(head, reader, up_writer, until_eof=False)
        await up_writer.drain()

        while True:  # 1xx heads are relayed, then the final one
            response = await read_head(up_reader)
            if response is None:
                answer(writer, 502)
                return False
            writer.write(response.raw)
            status = int(response.first_line.split(" ")[1])
            if status >= 200:
                break
        has_body = method != "HEAD" and status not in (204, 304)
        ends_with_eof = has_body and not (
            response.header("content-length") or response.header("transfer-encoding")
        )
        if has_body:
            await relay_body(response, up_reader, writer, until_eof=True)
        await writer.drain()
        if response.wants_close() or ends_with_eof:
            up_writer.close()
            del upstreams[origin]
            if ends_with_eof:
                return False  # the body ended with the connection: so must the client's
        return not head.wants_close()
