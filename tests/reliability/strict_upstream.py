"""The fuzz target's upstream: reads what the proxy sends with :mod:`strict_http` and answers
what the test scripted.

Every request is parsed strictly; one that does not parse is a violation (the proxy sent
something another server could read differently), recorded with its bytes, and the connection
is closed. A request to ``.../scripted?rid=R`` is answered with the raw bytes the test put in
:attr:`StrictUpstream.scripts` for ``R`` (then the connection closes, or stays open, as scripted);
any other request gets ``200`` with ``<rid> <body length>``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from tests.reliability.strict_http import Malformed, Message, parse
from tests.servers.threaded import ThreadedStreamServer

__all__ = ["Script", "StrictRequest", "StrictUpstream"]


@dataclass(frozen=True)
class Script:
    """Raw bytes to answer with; ``close``: end the connection after them."""

    answer: bytes
    close: bool


@dataclass
class StrictRequest:
    connection: int
    rid: str | None
    message: Message


class StrictUpstream(ThreadedStreamServer):
    def __init__(self) -> None:
        super().__init__()
        self.connections = 0
        self.requests: list[StrictRequest] = []
        self.violations: list[str] = []
        self.scripts: dict[str, Script] = {}
        #: Connection -> bytes received that are not a whole request yet.
        self.pending: dict[int, int] = {}

    def quiet(self) -> bool:
        """No connection holds part of a request."""
        return not any(self.pending.values())

    def seen(self, rid: str) -> list[StrictRequest]:
        return [request for request in list(self.requests) if request.rid == rid]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        index = self.connections
        buffer = b""
        eof = False
        try:
            while True:
                self.pending[index] = len(buffer)
                try:
                    found = parse(buffer, request=True, eof=eof)
                except Malformed as exc:
                    if "the connection ended" in str(exc):
                        self.violations.append(f"part of a request reached the upstream ({exc})")
                    else:
                        self.violations.append(f"the proxy sent a malformed request: {exc}")
                    return
                if found is None:
                    if eof:
                        return
                    data = await reader.read(65536)
                    eof = not data
                    buffer += data
                    continue
                message, taken = found
                buffer = buffer[taken:]
                query = parse_qs(urlsplit(message.second.decode("latin-1")).query)
                rid = query.get("rid", [None])[0]
                self.requests.append(StrictRequest(index, rid, message))
                script = self.scripts.get(rid or "")
                if message.second.split(b"?")[0].endswith(b"/scripted") and script:
                    writer.write(script.answer)
                    await writer.drain()
                    if script.close:
                        return
                    continue
                body = f"{rid} {len(message.body)}".encode()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                await writer.drain()
        except ConnectionError:
            if buffer:
                self.violations.append("part of a request reached the upstream (reset)")
            return
        finally:
            self.pending.pop(index, None)
            writer.close()
