"""Raw-socket clients for the reliability suite: send exact bytes, report exactly what came back.

:func:`exchange` sends bytes (at once or in timed pieces) and reads one answer, telling apart an
answer, a connection cut in the middle of one, a connection closed without a word, and silence.
:func:`probe` is the "is the proxy still serving?" request each vector ends with.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tests.reliability.hostile_upstream import HostileUpstream, new_rid
from tests.reliability.ledger import LEDGER
from tests.servers.slow_upstream import RawResponse, read_response

__all__ = [
    "Client",
    "Outcome",
    "Refusal",
    "closes",
    "connect",
    "ends",
    "error_payload",
    "exchange",
    "judge",
    "probe",
    "read_outcome",
    "request",
    "survives",
    "trickle",
    "upstream_saw",
]


@dataclass
class Outcome:
    """What a client saw after sending a request."""

    #: The answer, when a whole one arrived.
    response: RawResponse | None = None
    #: The connection ended in the middle of an answer (bytes arrived, not a whole answer).
    cut: bool = False
    #: The connection closed (or was reset) before a byte of an answer.
    closed: bool = False
    #: Nothing conclusive within the timeout.
    timed_out: bool = False
    #: What arrived could not be read as HTTP (two heads spliced together, a bad chunk size).
    garbled: str = ""
    #: After an answer with ``Connection: close``: the connection did close.
    closed_after: bool = False
    #: Seconds from the last byte sent to the end of the answer (or of the connection).
    elapsed: float = 0.0

    @property
    def status(self) -> int | None:
        return None if self.response is None else self.response.status

    def describe(self) -> str:
        if self.response is not None:
            return f"{self.response.status} {self.response.body[:200]!r}"
        if self.garbled:
            return f"garbled: {self.garbled}"
        if self.cut:
            return "cut mid-answer"
        if self.closed:
            return "closed without an answer"
        return "no answer (timed out)"


def request(
    rid: str,
    *,
    method: bytes = b"GET",
    target: bytes = b"/echo",
    version: bytes = b"HTTP/1.1",
    host: bytes | None = b"proxy.test",
    headers: bytes = b"",
    body: bytes = b"",
) -> bytes:
    """A request carrying ``rid`` in its query and an ``X-Rid`` header; ``headers`` are raw
    lines (each ending with CRLF), ``body`` goes after the head as it is."""
    if b"?" in target:
        target += b"&rid=" + rid.encode()
    elif target.startswith(b"/"):
        target += b"?rid=" + rid.encode()
    head = b"%s %s %s\r\n" % (method, target, version)
    if host is not None:
        head += b"Host: " + host + b"\r\n"
    return head + headers + b"X-Rid: " + rid.encode() + b"\r\n\r\n" + body


async def read_outcome(
    reader: asyncio.StreamReader, *, timeout: float = 5.0, head_only: bool = False
) -> Outcome:
    """One answer (or why there is none); checks that ``Connection: close`` is meant."""
    started = time.monotonic()
    outcome = Outcome()
    try:
        outcome.response = await read_response(reader, timeout=timeout, head_only=head_only)
    except asyncio.IncompleteReadError as exc:
        outcome.cut = bool(exc.partial)
        outcome.closed = not exc.partial
    except ConnectionError:
        outcome.closed = True
    except TimeoutError:
        outcome.timed_out = True
    except (ValueError, asyncio.LimitOverrunError) as exc:
        outcome.garbled = f"{type(exc).__name__}: {exc}"[:300]
    outcome.elapsed = time.monotonic() - started
    response = outcome.response
    if response is not None and (response.header("connection") or "").lower() == "close":
        outcome.closed_after = await closes(reader, 2.0)
    return outcome


async def ends(reader: asyncio.StreamReader, timeout: float) -> bytes | None:
    """What arrives until the connection ends, if it ends within ``timeout``; else None."""
    try:
        async with asyncio.timeout(timeout):
            return await reader.read()
    except ConnectionError:
        return b""
    except TimeoutError:
        return None


async def closes(reader: asyncio.StreamReader, timeout: float) -> bool:
    """True if the connection ends (EOF or reset) within ``timeout`` with no more bytes."""
    try:
        return await asyncio.wait_for(reader.read(1), timeout) == b""
    except ConnectionError:
        return True
    except TimeoutError:
        return False


#: What a client reads as one line or head at most: larger than any limit under test, so an
#: answer the proxy should have refused is seen whole rather than failing the reader.
READ_LIMIT = 16 * 1024 * 1024


class _KeepWhatArrived(asyncio.StreamReaderProtocol):
    """Ends the reader with EOF however the connection ends: an asyncio stream would give the
    reader the error of a failed write instead, and with it lose what had already arrived."""

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(None)


class Client:
    """A raw connection to the proxy whose reading never depends on its writing.

    A client still sending when the proxy answers and closes (a refused head, a 413 before the
    body) must still see the answer: :attr:`reader` gets every byte that arrived, then EOF, and
    :meth:`send` reports a refused write as False.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> Client:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=READ_LIMIT)
        protocol = _KeepWhatArrived(reader)
        transport, _ = await loop.create_connection(lambda: protocol, "127.0.0.1", port)
        return cls(reader, asyncio.StreamWriter(transport, protocol, reader, loop))

    async def send(self, data: bytes) -> bool:
        """False when the proxy no longer takes bytes (it closed or reset the connection)."""
        if self.writer.is_closing():
            return False
        self.writer.write(data)
        try:
            await self.writer.drain()
        except ConnectionError:
            return False
        return True

    def close(self) -> None:
        self.writer.close()


async def connect(port: int) -> Client:
    return await Client.open(port)


async def exchange(
    port: int,
    data: bytes | Sequence[bytes],
    *,
    timeout: float = 5.0,
    pause: float = 0.0,
) -> Outcome:
    """Open a connection, send ``data`` (pieces ``pause`` s apart; a write the proxy refuses
    ends the sending), read one answer, close."""
    client = await connect(port)
    try:
        pieces = [data] if isinstance(data, bytes) else list(data)
        for index, piece in enumerate(pieces):
            if index and pause:
                await asyncio.sleep(pause)
            if not await client.send(piece):
                break
        return await read_outcome(client.reader, timeout=timeout)
    finally:
        client.close()


def error_payload(response: RawResponse) -> dict[str, Any] | None:
    """The proxy's JSON error body (``{"status": N, "message": ...}``), or None if it is not."""
    if (response.header("content-type") or "").split(";")[0] != "application/json":
        return None
    try:
        payload = json.loads(response.body)
    except ValueError:
        return None
    if not isinstance(payload, dict) or payload.get("status") != response.status:
        return None
    return payload


async def upstream_saw(upstream: HostileUpstream, rid: str, settle: float = 0.05) -> int:
    """How many requests carrying ``rid`` reached the upstream (after ``settle`` s, for one
    still on its way)."""
    await asyncio.sleep(settle)
    return len(upstream.seen(rid))


async def probe(port: int, *, timeout: float = 5.0) -> bool:
    """A normal GET on a new connection: True when it gets its own 200."""
    rid = new_rid("probe")
    try:
        outcome = await exchange(port, request(rid), timeout=timeout)
    except OSError:
        return False
    response = outcome.response
    if response is None or response.status != 200:
        return False
    try:
        answer = response.json()
    except ValueError:
        return False
    return isinstance(answer, dict) and rid in str(answer.get("target"))


async def survives(port: int) -> bool:
    """After a fault: does the proxy still answer a normal request? (Counted in the ledger.)"""
    LEDGER.faults += 1
    if await probe(port):
        LEDGER.survived += 1
        return True
    return False


async def trickle(
    port: int,
    first: bytes,
    piece: bytes,
    *,
    count: int,
    pause: float,
    timeout: float,
) -> tuple[Outcome, int]:
    """Send ``first``, then ``piece`` ``count`` times ``pause`` s apart, while waiting (up to
    ``timeout`` s) for the proxy's answer; returns it and how many bytes of pieces went out."""
    client = await connect(port)
    sent = 0

    async def send() -> None:
        nonlocal sent
        if not await client.send(first):
            return
        for _ in range(count):
            if pause:
                await asyncio.sleep(pause)
            if not await client.send(piece):
                return
            sent += len(piece)

    sender = asyncio.create_task(send())
    try:
        outcome = await read_outcome(client.reader, timeout=timeout)
    finally:
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sender
        client.close()
    return outcome, sent


@dataclass
class Refusal:
    """What became of a request the proxy must refuse with a status of its own."""

    label: str
    outcome: Outcome
    status: int
    #: Times the request reached the upstream (must be 0).
    reached: int
    #: The framing cannot be trusted: the connection must close after the answer.
    close: bool = True

    @property
    def as_specified(self) -> bool:
        response = self.outcome.response
        return (
            not self.reached
            and response is not None
            and response.status == self.status
            and error_payload(response) is not None
            and (self.outcome.closed_after or not self.close)
        )

    def check(self) -> None:
        """Assert it was refused as specified, the worst news first."""
        assert not self.reached, f"{self.label}: reached the upstream {self.reached} time(s)"
        assert self.outcome.status == self.status, f"{self.label}: {self.outcome.describe()}"
        assert self.as_specified, (
            f"{self.label}: not a JSON error, or the connection stayed open: "
            f"{self.outcome.describe()}"
        )


async def judge(
    upstream: HostileUpstream,
    rid: str,
    outcome: Outcome,
    status: int,
    label: str,
    *,
    close: bool = True,
) -> Refusal:
    """Look at a refusal (has ``rid`` reached the upstream?) and count it in the ledger."""
    refusal = Refusal(label, outcome, status, await upstream_saw(upstream, rid), close)
    if refusal.reached:
        LEDGER.reached_upstream.append(label)
    if refusal.as_specified:
        LEDGER.rejected += 1
    return refusal
