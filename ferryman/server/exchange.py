"""One request on ferryman's own server, and the way to answer it (:class:`ServerExchange`).

A handler gets a :class:`ServerExchange` for each request the server parsed: the method, the
target, the raw header pairs and the framing facts, a body it takes through a
:class:`BodyConsumer` (with back-pressure both ways), and ``write``/``finish`` to answer with the
bytes :func:`response_head` builds. The connection itself is
:class:`~ferryman.server.protocol.ServerProtocol`'s; this module holds what handlers touch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, Protocol

from ferryman.http.models import reason_phrase

if TYPE_CHECKING:
    from ferryman.server.protocol import ServerProtocol

__all__ = [
    "BodyConsumer",
    "RequestHandler",
    "ServerExchange",
    "WriteGate",
    "error_head",
    "origin_form",
    "response_head",
    "status_line",
]

#: Status lines by status (the standard reason) or by (status, reason).
_STATUS_LINES: dict[int | tuple[int, bytes], bytes] = {}
_MAX_STATUS_LINES: Final = 512
_CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"


def response_head(status: int, reason: bytes | None, headers: list[tuple[bytes, bytes]]) -> bytes:
    """``HTTP/1.1 <status> <reason>`` and the headers, ending with the blank line."""
    line = status_line(status, reason)
    if not headers:
        return line + b"\r\n"
    return line + b"\r\n".join(map(b": ".join, headers)) + b"\r\n\r\n"


def status_line(status: int, reason: bytes | None) -> bytes:
    """``HTTP/1.1 <status> <reason>`` and its CRLF (the standard reason when ``reason`` is None)."""
    line = _STATUS_LINES.get(status if reason is None else (status, reason))
    return _status_line(status, reason) if line is None else line


def _status_line(status: int, reason: bytes | None) -> bytes:
    """Formats a status line and remembers it: the same few answer every request."""
    if reason is None:
        line = b"HTTP/1.1 %d %s\r\n" % (status, reason_phrase(status).encode("ascii"))
        _STATUS_LINES[status] = line
    else:
        line = b"HTTP/1.1 %d %s\r\n" % (status, reason)
        if len(_STATUS_LINES) < _MAX_STATUS_LINES:  # reasons come from upstreams: bounded
            _STATUS_LINES[status, reason] = line
    return line


def origin_form(target: bytes) -> bytes:
    """A request target as a path: ``http://host/path?q`` -> ``/path?q`` (RFC 9112 section
    3.2.2: a server takes the absolute form too); a target that is not absolute (``*``, an
    authority) is left alone. The authority ends at the first ``/``, ``?`` or ``#``: what is
    relayed and what is checked (``ferryman.proxy.targets``) must be the same bytes."""
    scheme_end = target.find(b"://")
    if target[:1] == b"/" or scheme_end < 0:
        return target
    end = len(target)
    for mark in _AUTHORITY_ENDS:
        found = target.find(mark, scheme_end + 3)
        if 0 <= found < end:
            end = found
    rest = target[end:]
    return rest if rest[:1] == b"/" else b"/" + rest


_AUTHORITY_ENDS: Final = (b"/", b"?", b"#")


def error_head(status: int, body: bytes, close: bool = True, http10: bool = False) -> bytes:
    headers = [
        (b"Content-Type", b"application/json"),
        (b"Content-Length", str(len(body)).encode("ascii")),
    ]
    if close:
        headers.append((b"Connection", b"close"))
    elif http10:
        headers.append((b"Connection", b"keep-alive"))  # (what HTTP/1.0 has to be told)
    return response_head(status, None, headers)


class BodyConsumer(Protocol):
    """Receives a request's body and hears about the client's connection, for one exchange."""

    def on_body(self, data: bytes) -> None: ...

    def on_body_end(self) -> None: ...

    def on_client_lost(self) -> None:
        """The client went away (or sent garbage) before the exchange finished."""

    def pause_producing(self) -> None:
        """The client's socket buffer is full: stop writing the response until resumed."""

    def resume_producing(self) -> None: ...

    def on_tunnel_data(self, data: bytes) -> None:
        """After an upgrade was accepted (:meth:`ServerExchange.start_tunnel`): raw client bytes."""


class WriteGate:
    """Lets a coroutine that produces a response wait while the client's socket buffer is full
    (the consumer's ``pause_producing``/``resume_producing`` drive it)."""

    __slots__ = ("_waiter", "paused")

    def __init__(self) -> None:
        self.paused = False
        self._waiter: asyncio.Future[None] | None = None

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False
        self.release()

    def release(self) -> None:
        """Wake a waiting producer without resuming (the client left: its next write fails)."""
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait(self) -> None:
        if not self.paused:
            return
        waiter = self._waiter = asyncio.get_running_loop().create_future()
        try:
            await waiter
        finally:
            self._waiter = None


class RequestHandler(Protocol):
    """Answers the requests of every connection of one listening socket."""

    def on_request(self, exchange: ServerExchange) -> None:
        """Called once the head is parsed; answer now or later through ``exchange``."""


class ServerExchange:
    """One request on a connection, and the way to answer it.

    The handler reads ``method``, ``target`` (raw bytes, as sent), ``headers`` (raw pairs, names
    as sent) and the framing facts the parser found; calls :meth:`set_consumer` to receive the body
    (chunks that arrived before are replayed); and answers with :meth:`write` (the head bytes
    first: see :func:`response_head`), then :meth:`finish`.
    """

    __slots__ = (
        "_buffered",
        "_consumer",
        "body_complete",
        "body_limit",
        "body_received",
        "body_sent",
        "chunked",
        "content_length",
        "expect_continue",
        "finished",
        "headers",
        "http_version",
        "keep_alive",
        "method",
        "on_end",
        "protocol",
        "started",
        "status",
        "target",
        "transaction",
        "upgrade",
    )

    def __init__(
        self,
        protocol: ServerProtocol,
        method: bytes,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        http_version: str,
        keep_alive: bool,
        upgrade: bool,
        content_length: int | None,
        chunked: bool,
        expect_continue: bool,
        body_limit: int | None = None,
    ) -> None:
        self.protocol = protocol
        self.method = method
        self.target = target
        self.headers = headers
        self.http_version = http_version
        self.keep_alive = keep_alive
        self.upgrade = upgrade
        #: From the request's Content-Length; None when absent (chunked or no body).
        self.content_length = content_length
        self.chunked = chunked
        self.expect_continue = expect_continue
        #: The whole request body has arrived: from the head on when none follows (RFC 9112
        #: section 6.3), so a handler answering from the head may keep the connection alive.
        self.body_complete = not chunked and not content_length
        #: Body bytes read so far, and how many may come before a 413 (the listener's limit;
        #: the handler may set its own before the body arrives). ``None``: no limit.
        self.body_received = 0
        self.body_limit = body_limit
        #: Response bytes have been written / the answer is complete.
        self.started = False
        self.finished = False
        #: The status of the answer being sent (set by whoever writes its head); 0 before.
        self.status = 0
        #: Response body bytes written by an ASGI application (the bridge counts them).
        self.body_sent = 0
        #: Called once when the exchange ends, with ``None`` when the answer went out whole
        #: and with what happened otherwise, in words (an observer's hook: see
        #: :mod:`ferryman.proxy.transactions`).
        self.on_end: Callable[[ServerExchange, str | None], None] | None = None
        #: What an observer of the exchange keeps about it (a proxy transaction), handed to an
        #: ASGI application as the scope extension ``ferryman.transaction``.
        self.transaction: object | None = None
        self._consumer: BodyConsumer | None = None
        self._buffered: list[bytes] | None = None

    @property
    def has_body(self) -> bool:
        return self.chunked or bool(self.content_length)

    # -- request body -------------------------------------------------------------------------

    def set_consumer(self, consumer: BodyConsumer) -> None:
        self._consumer = consumer
        if self.expect_continue and not self.body_complete and not self.started:
            self.expect_continue = False
            self.protocol.transport_write(_CONTINUE)
        buffered = self._buffered
        if buffered is not None:
            self._buffered = None
            for chunk in buffered:
                consumer.on_body(chunk)
        if self.body_complete:
            consumer.on_body_end()

    def _feed(self, data: bytes) -> None:
        consumer = self._consumer
        if consumer is not None:
            consumer.on_body(data)
        elif self._buffered is None:
            self._buffered = [data]
        else:
            self._buffered.append(data)

    def _end(self) -> None:
        self.body_complete = True
        consumer = self._consumer
        if consumer is not None:
            consumer.on_body_end()

    def pause_reading(self) -> None:
        """Stop reading the request body until :meth:`resume_reading` (a slow upstream)."""
        self.protocol.pause_reading()

    def resume_reading(self) -> None:
        self.protocol.resume_reading()

    # -- response -----------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if self.finished:
            return
        self.started = True
        transport = self.protocol.transport
        if transport is not None:
            transport.write(data)

    def writelines(self, chunks: list[bytes]) -> None:
        if self.finished:
            return
        self.started = True
        transport = self.protocol.transport
        if transport is not None:
            transport.writelines(chunks)

    def finish(self, keep_alive: bool = True) -> None:
        """The answer is complete; ``keep_alive=False`` closes the connection after it."""
        if self.finished:
            return
        self.started = True
        self.finished = True
        # The consumer (a relay, a bridge cycle) holds this exchange: dropping the reference
        # back lets reference counting free both now, so a request leaves no cycle for the
        # garbage collector (whose pauses would otherwise show in the tail latency).
        self._consumer = None
        if self.on_end is not None:
            self.ended(None)
        self.protocol.exchange_finished(self, keep_alive and self.keep_alive)

    def abort(self) -> None:
        """Cut the connection: the answer cannot be completed (the upstream broke off)."""
        self.finished = True
        if self.on_end is not None:
            self.ended("the answer was cut off")
        self.protocol.abort()

    def ended(self, error: str | None) -> None:
        """Tell ``on_end`` (once) that the exchange is over: see ``on_end``."""
        on_end = self.on_end
        if on_end is not None:
            self.on_end = None
            on_end(self, error)

    def send_error(self, status: int, body: bytes) -> None:
        """Answer with a complete JSON error and close the connection (nothing sent yet)."""
        if self.started:
            self.abort()
            return
        # The connection stays usable when the request was read whole.
        keep_alive = self.body_complete and self.keep_alive and not self.upgrade
        self.status = status
        http10 = self.http_version == "1.0"
        self.write(error_head(status, body, close=not keep_alive, http10=http10) + body)
        self.finish(keep_alive=keep_alive)

    def start_tunnel(self) -> None:
        """Switch the connection to raw bytes both ways (after writing a 101 head)."""
        self.protocol.start_tunnel(self)

    # -- connection facts ---------------------------------------------------------------------

    @property
    def client(self) -> tuple[str, int] | None:
        return self.protocol.client

    @property
    def server(self) -> tuple[str, int] | None:
        return self.protocol.server

    @property
    def scheme(self) -> str:
        return self.protocol.scheme

    def __repr__(self) -> str:
        return f"<ServerExchange {self.method.decode('latin-1')} {self.target!r}>"
