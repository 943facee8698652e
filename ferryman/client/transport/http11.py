"""One HTTP/1.1 client connection: an asyncio ``BufferedProtocol`` driving httptools.

Why this shape: asyncio delivers bytes through protocol callbacks, and httptools (llhttp) turns
them into header and body callbacks without allocating per byte, so one response costs one
future (the head waiter) and a few C-level callbacks. No task, no stream reader, no per-read
``bytes`` for the socket: the socket is read straight into a buffer that every connection of
the event loop reuses (see ``_read_buffer``).

Large ``Content-Length`` bodies bypass the parser: once the head is parsed, the remaining
byte count is known, so the bytes are counted instead of parsed, and ``aread()`` receives them
straight into one pre-sized buffer (no chunk list, no join).

The parser is sans-I/O (it only sees bytes); this class is the thin I/O shell around it.
The request's bytes come from ``http11_request``, the reader's handle on the body is
``http11_stream``, and the states both sides read are in ``http11_state``.
"""

from __future__ import annotations

import asyncio
import ssl
import sys
import weakref
from collections import deque
from typing import TYPE_CHECKING, Any

import httptools

from ferryman.client.transport import _trace
from ferryman.client.transport.http11_request import (
    METHOD_BYTES,
    aiter_sync,
    expects_continue,
    is_chunked,
    serialize_head,
)
from ferryman.client.transport.http11_state import (
    ACTIVE,
    BYPASS,
    CLOSED,
    CONNECTING,
    DETACHED,
    IDLE,
    PARSE,
    RAW,
)
from ferryman.client.transport.http11_stream import HTTP11ResponseStream
from ferryman.exceptions import (
    ConnectError,
    ConnectTimeout,
    LocalProtocolError,
    ReadError,
    ReadTimeout,
    RemoteProtocolError,
    WriteError,
    WriteTimeout,
)
from ferryman.http.headers import parse_header_block
from ferryman.http.models import Request, Response
from ferryman.http.streams import EMPTY_STREAM, AsyncByteStream, ByteStream, SyncByteStream

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from ferryman.client.transport.network import AsyncNetworkStream

__all__ = [
    "DEFAULT_RESPONSE_LIMITS",
    "AsyncHTTP11Connection",
    "HTTP11ResponseStream",
    "ResponseHeadTooLarge",
]

READ_BUFFER_SIZE = 64 * 1024
# Body bytes held for a slow reader before the socket stops being read (flow control).
BODY_HIGH_WATER = 256 * 1024
# Reads buffered for a tunnel or upgraded stream before the socket is paused.
RAW_HIGH_WATER_CHUNKS = 16
# Remaining Content-Length bytes from which a body bypasses the parser.
BYPASS_THRESHOLD = 32 * 1024
# Largest body buffer a connection keeps for its next response.
REUSED_BODY_BUFFER_MAX = 8 * 1024 * 1024
# How long a request with ``Expect: 100-continue`` waits for the 100 before sending its body.
EXPECT_CONTINUE_WAIT = 1.0
# In-memory request bodies up to this size leave with the head in one write; larger ones go in
# pieces of this size, each written once the socket's buffer has drained below its high-water
# mark, so that the write timeout applies and the transport never holds a second copy of them.
WRITE_PIECE = 256 * 1024
#: The most bytes the response heads of one exchange may take, interim (1xx) heads included,
#: and the most header fields they may have: the proxy's limits for its upstreams' answers
#: (``ferryman.server.limits``), and ``max_response_head_size``/``max_response_headers`` of
#: the pool and the client. ``None`` in either place: no limit.
DEFAULT_MAX_RESPONSE_HEAD = 64 * 1024
DEFAULT_MAX_RESPONSE_HEADERS = 100
DEFAULT_RESPONSE_LIMITS: tuple[int | None, int | None] = (
    DEFAULT_MAX_RESPONSE_HEAD,
    DEFAULT_MAX_RESPONSE_HEADERS,
)

#: Each event loop's read buffer, shared by its HTTP/1.1 connections (see ``_read_buffer``).
_READ_BUFFERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, memoryview] = (
    weakref.WeakKeyDictionary()
)


def _read_buffer(loop: asyncio.AbstractEventLoop) -> memoryview:
    """The buffer ``loop`` reads its HTTP/1.1 connections' sockets into.

    One per loop, not one per connection: a loop reads one socket at a time, and every read is
    parsed or copied out before ``buffer_updated`` returns, so no connection needs its own. A
    fresh 64 KiB buffer for every connection cost ~25 µs of zeroing and page faults to open it
    (a third of what opening a connection to a local server costs in all), and 64 KiB of
    memory for every idle connection kept.
    """
    view = _READ_BUFFERS.get(loop)
    if view is None:
        view = _READ_BUFFERS[loop] = memoryview(bytearray(READ_BUFFER_SIZE))
    return view


_HTTP_VERSIONS = {b"1.1": b"HTTP/1.1", b"1.0": b"HTTP/1.0", b"0.9": b"HTTP/0.9"}
_NO_TIMEOUTS: dict[str, float | None] = {}
_NEVER = float("inf")
_NO_LIMIT = sys.maxsize


class ResponseHeadTooLarge(RemoteProtocolError):
    """The response head broke a limit: the connection's (``max_response_head_size``,
    ``max_response_headers``) or the request's ``response_limits`` extension (``(bytes, header
    fields)``, either ``None``), which a proxy sets as its fast path does. ``reason`` says
    which, in the words the proxy passes on; ``option`` names the setting that set the limit,
    when it was not the extension."""

    def __init__(self, reason: str, option: str | None = None) -> None:
        super().__init__(
            f"the server {reason}" if option is None else f"the server {reason} ({option})"
        )
        self.reason = reason


class AsyncHTTP11Connection(asyncio.BufferedProtocol):
    """A keep-alive HTTP/1.1 connection to one origin; one request at a time (no pipelining)."""

    def __init__(
        self,
        origin: Any,
        loop: asyncio.AbstractEventLoop,
        response_limits: tuple[int | None, int | None] | None = DEFAULT_RESPONSE_LIMITS,
    ) -> None:
        self.origin = origin
        self._loop = loop
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        # Shared with the loop's other connections: nothing may keep a view of it once
        # ``buffer_updated`` has returned.
        self._view = _read_buffer(loop)
        self._buffer: bytearray = self._view.obj  # type: ignore[assignment]
        self.state = CONNECTING
        self.is_lost = False  # the event loop reported the socket closed
        self.requests_handled = 0
        self.idle_since = 0.0
        # Called with this connection when a response is done (or the connection dies).
        self.on_release: Callable[[AsyncHTTP11Connection], None] | None = None
        self._mode = PARSE
        self._waiter: asyncio.Future[None] | None = None
        # The read timeout of the wait in progress, and when it runs out (see ``_arm``).
        self._wait_timeout: float | None = None
        self._deadline = 0.0
        self._deadline_timer: asyncio.TimerHandle | None = None
        self._timer_at = _NEVER  # when the deadline timer fires
        self._drain_waiter: asyncio.Future[None] | None = None
        self._write_paused = False
        self._reading_paused = False
        self._error: BaseException | None = None
        self._eof = False
        self._network_stream: AsyncNetworkStream | None = None
        self._sent_anything = False
        self._body_buffer: bytearray | None = None
        self._chunks: deque[bytes] = deque()
        self._raw_chunks: deque[bytes] = deque()  # bytes after the head of a tunnel / upgrade
        self._head_parts: list[bytes] = []  # reads of a head that spans several
        self._interim_heads = 0
        self._interim = False
        self._got_continue = False
        # A Content-Length body received straight into one buffer (see _receive_into):
        # where reads land (None once the body is complete), the whole body's buffer,
        # how much has arrived, and how much a streaming reader has taken.
        self._into: memoryview | None = None
        self._into_body: memoryview | None = None
        self._into_pos = 0
        self._into_taken = 0
        # Set when the connection cannot take another request; never cleared (a connection
        # with it set is not reused).
        self._must_close = False
        self._reset_message_state()
        self._progress_wanted = False  # a streaming reader wants a wake-up for every read
        #: The limits of a response head (bytes, header fields) when the request sets none.
        self.response_limits = response_limits
        self._use_limits(response_limits, False)
        self._head_lines = 0  # line ends in the reads of a head that spans several
        self._method = b"GET"
        #: Whether the first answer may be HTTP/0.9 (no status line: the body until EOF); set
        #: by a pool built with ``http09=True``. Off by default, as in curl: without a head,
        #: any bytes (a non-HTTP service's banner, a desynchronised stream) read as a 200.
        self.accepts_http09 = False
        self._http09 = False  # this connection's answer is HTTP/0.9

    def _reset_message_state(self) -> None:
        # Runs for every request: the state only rare responses touch (1xx, bodies received
        # into the body buffer) is reset only when it was touched.
        self._status = 0
        self._response_bytes = 0
        self._raw_head = b""
        self._reason = b""
        self._raw_headers: list[tuple[bytes, bytes]] | None = None
        self._head_complete = False
        self._message_complete = False
        self._keep_alive = False
        self._http_version = b"HTTP/1.1"
        if self._chunks:
            self._chunks.clear()
        self._buffered = 0
        self._body_received = 0
        self._remaining = -1  # bytes left of a Content-Length body, when known
        self._skip_body = False  # HEAD: a Content-Length describes a body that never comes
        self._parser_spent = False  # the parser's state no longer matches the stream
        self._streaming = False  # a reader iterates over the body (flow control applies)
        if self._interim_heads:
            self._interim_heads = 0
            self._interim = False  # a 1xx response is being parsed
            self._got_continue = False
        if self._into_body is not None:
            self._into = self._into_body = None
            self._into_pos = self._into_taken = 0

    # -- asyncio protocol callbacks ----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def get_buffer(self, sizehint: int) -> memoryview:
        into = self._into
        if into is not None:
            if self._streaming:  # reads of a normal size, so that flow control can bite
                return into[self._into_pos : self._into_pos + READ_BUFFER_SIZE]
            return into[self._into_pos :]
        return self._view

    def buffer_updated(self, nbytes: int) -> None:
        mode = self._mode
        if self._into is not None:
            self._into_pos += nbytes
            self._remaining -= nbytes
            self._body_received += nbytes
            if self._remaining <= 0:
                if self._remaining < 0:  # into the spare byte: more than the body announced
                    self._into_pos += self._remaining
                    self._body_received += self._remaining
                    self._remaining = 0
                    self._answer_after_answer()
                self._into = None
                self._finish_bypassed_body()
            elif self._progress_wanted:
                self._wake()
            elif self._streaming and self._into_pos - self._into_taken > BODY_HIGH_WATER:
                self._pause_reading()  # flow control for a streaming reader, as when parsing
            return
        if mode == PARSE:
            if self.state != ACTIVE:
                # A server that speaks while no request is out (a 408, garbage) makes the
                # connection unusable; the pool drops it when it next looks.
                self._must_close = True
                return
            self._response_bytes += nbytes
            if self._head_complete:
                self._feed(self._view[:nbytes])
            else:
                self._feed_head(nbytes)
            # _after_feed(), inlined: the parser callbacks only record; one wake-up per read
            # tells the waiting reader.
            waiter = self._waiter
            if waiter is not None:
                self._waiter = None
                if not waiter.done():
                    waiter.set_result(None)
            if self._head_complete and not self._message_complete and self._mode == PARSE:
                self._consider_bypass()
        elif mode == BYPASS:
            self._bypass(bytes(self._view[:nbytes]))
        else:
            chunks = self._raw_chunks
            chunks.append(bytes(self._view[:nbytes]))
            if len(chunks) > RAW_HIGH_WATER_CHUNKS:
                self._pause_reading()  # a tunnel/WebSocket reader that lags holds the socket
            self._wake()

    def _feed_head(self, nbytes: int) -> None:
        """Feed a read while the head is incomplete, and keep the head's bytes.

        The parser reports no header callbacks (eight Python calls a response saved): once
        it has validated the head, the head is cut out of the read buffer in one piece and
        split into fields only if someone looks at them.

        The parser keeps nothing of a head; its bytes are kept here, read by read, until the
        head ends, and every read is checked against the limits as it is kept: what a head
        that never ends holds is at most the limit and one read.
        """
        self._feed(self._view[:nbytes])
        if self._head_complete:
            if not self._raw_head and not self._http09:  # (an upgrade captured it already)
                self._capture_head(nbytes)
        elif self._error is None:
            parts = self._head_parts
            if not parts:
                self._head_lines = 0
            parts.append(bytes(self._view[:nbytes]))
            if self._response_bytes > self._max_head:  # every byte so far is a head's
                self._head_too_large()
            elif self._max_fields != _NO_LIMIT:
                # Lines so far, less two for each interim head (its status line, its blank
                # line): the fields, and the final head's status line if it has come whole.
                self._head_lines += parts[-1].count(b"\r\n")
                if self._head_lines - 2 * self._interim_heads > self._max_fields + 1:
                    self._too_many_headers()

    def _use_limits(self, limits: tuple[int | None, int | None] | None, extension: bool) -> None:
        """Check the next response heads against ``limits`` (bytes, header fields)."""
        max_bytes, max_fields = (None, None) if limits is None else limits
        self._max_head = _NO_LIMIT if max_bytes is None else max_bytes
        self._max_fields = _NO_LIMIT if max_fields is None else max_fields
        # Heads shorter than this keep both limits without a look: every header field takes
        # three bytes at least (a character and CR LF), so there is nothing to count.
        self._head_unchecked = min(self._max_head - 4, 3 * self._max_fields)
        self._limits_from_extension = extension

    def _head_within_limits(self, block: bytes | bytearray, end: int) -> bool:
        """Whether the heads of this exchange, interim (1xx) heads included, keep the limits;
        ``block[:end]`` holds them all, the final one without its blank line."""
        if end + 4 > self._max_head:
            self._head_too_large()
            return False
        # The lines of all heads, less two for each interim one (its status and blank lines).
        if block.count(b"\r\n", 0, end) - 2 * self._interim_heads > self._max_fields:
            self._too_many_headers()
            return False
        return True

    def _head_too_large(self) -> None:
        reason = f"sent a response head larger than {self._max_head} bytes"
        self._head_refused(reason, "max_response_head_size")

    def _too_many_headers(self) -> None:
        self._head_refused(f"sent more than {self._max_fields} headers", "max_response_headers")

    def _head_refused(self, reason: str, option: str) -> None:
        self._head_complete = False  # (no answer to hand over: the request fails)
        self._head_parts.clear()
        error = ResponseHeadTooLarge(reason, None if self._limits_from_extension else option)
        self._fail(error)

    def _capture_head(self, nbytes: int) -> None:
        if self._head_parts:
            self._head_parts.append(bytes(self._view[:nbytes]))
            block: bytes | bytearray = b"".join(self._head_parts)
            self._head_parts.clear()
            limit = len(block)
        else:
            block, limit = self._buffer, nbytes
        start = 0
        if self._interim_heads:
            for _ in range(self._interim_heads):  # 1xx heads come first; the last one is ours
                start = block.find(b"\r\n\r\n", start, limit) + 4
        end = block.find(b"\r\n\r\n", start, limit)
        if end > self._head_unchecked and not self._head_within_limits(block, end):
            return
        head = self._raw_head = bytes(block[start:end])
        # From the status line the parser accepted: get_http_version() formats a str (0.3 us).
        version = head[5:8]
        self._http_version = (
            b"HTTP/1.1" if version == b"1.1" else _HTTP_VERSIONS.get(version, b"HTTP/1.1")
        )
        # The reason phrase follows "HTTP/1.1 200 " (the parser checked the status line).
        line_end = head.find(b"\r\n")
        if line_end < 0:
            line_end = len(head)
        if line_end > 12 and head[12] == 32:
            self._reason = head[13:line_end]
        else:
            self._reason = b""

    def _feed(self, data: memoryview | bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            offset = exc.args[0] if exc.args else len(data)
            if not self._raw_head and self._head_complete:
                self._capture_head(len(data))
            self._mode = RAW
            self._parser_spent = True
            rest = bytes(data[offset:])
            if rest:
                self._raw_chunks.append(rest)
            self._wake()
            return
        except httptools.HttpParserError as exc:
            hint = ""
            if self._looks_like_http09(data):
                if self.accepts_http09:
                    self._start_http09(data)
                    return
                hint = " (no status line: an HTTP/0.9 answer? a pool with http09=True takes one)"
            error = RemoteProtocolError(f"the server sent malformed HTTP: {exc}{hint}")
            error.answer_began = True
            error.__cause__ = exc  # (a proxy quotes the parser's words, as its fast path does)
            self._fail(error)
            return

    def _looks_like_http09(self, data: memoryview | bytes) -> bool:
        """Whether bytes the parser refused may be an HTTP/0.9 answer: only the first answer
        of a fresh connection, and only if they do not even begin as a status line
        (``HTTP/1.1 abc`` is malformed HTTP/1.x, not 0.9)."""
        if self.requests_handled or self._head_complete or self._interim_heads:
            return False
        start = (b"".join(self._head_parts) + bytes(data[:5]))[:5]
        return start != b"HTTP/"[: len(start)]

    def _start_http09(self, data: memoryview | bytes) -> None:
        """Take every byte from the first on as the body of a 200, ended by the connection's
        close: HTTP/0.9 has no head, so no length, no headers, and no keep-alive."""
        body = b"".join(self._head_parts) + bytes(data)
        self._head_parts.clear()
        self._http09 = True
        self._status = 200
        self._raw_head = b""
        self._raw_headers = []
        self._reason = b""
        self._http_version = b"HTTP/0.9"
        self._keep_alive = False
        self._must_close = True
        self._parser_spent = True
        self._head_complete = True
        # Counted like a Content-Length body that never runs out; the EOF ends it.
        self._mode = BYPASS
        self._remaining = _NO_LIMIT
        if body:
            self._add_body(body)

    def _consider_bypass(self) -> None:
        """A long Content-Length body is counted, not parsed, from now on."""
        if self._remaining == -1:
            self._remaining = -2  # looked up once per message
            for name, value in self.header_fields():
                if len(name) == 14 and name.lower() == b"content-length":
                    try:
                        self._remaining = int(value) - self._body_received
                    except ValueError:
                        return
                elif len(name) == 17 and name.lower() == b"transfer-encoding":
                    self._remaining = -2
                    return
        if self._remaining >= BYPASS_THRESHOLD and not self._skip_body:
            self._mode = BYPASS
            self._parser_spent = True
            size = self._buffered + self._remaining
            if size <= REUSED_BODY_BUFFER_MAX:
                # The rest goes straight into the body's buffer from the next read on. Left
                # to aread(), it would start a few reads late: the event loop reads a socket
                # again and again while reads fill the buffer, before any task runs.
                self._receive_into(size)

    def _receive_into(self, size: int) -> None:
        """Receive the rest of a ``size``-byte body (buffered bytes included) into one buffer.

        The buffer has one byte more than the body: a read that fills it too says the server
        sent more than it announced, in time to keep the connection from being reused.
        """
        target = self._receive_buffer(size + 1)
        position = 0
        for chunk in self._chunks:
            target[position : position + len(chunk)] = chunk
            position += len(chunk)
        self._chunks.clear()
        self._buffered = 0
        self._into = self._into_body = target
        self._into_pos = position
        self._into_taken = 0

    def _stop_receiving_into(self) -> None:
        """Back to reads of the shared buffer, what arrived in the body's buffer as a chunk."""
        if self._into_body is not None and self._into_pos > self._into_taken:
            self._chunks.append(bytes(self._into_body[self._into_taken : self._into_pos]))
        self._into = self._into_body = None
        self._into_pos = self._into_taken = 0

    def _bypass(self, data: bytes) -> None:
        remaining = self._remaining
        if len(data) > remaining:
            # More bytes than the body announced: we never pipeline, so they are garbage.
            data = data[:remaining]
            self._must_close = True
        self._remaining = remaining - len(data)
        self._add_body(data)
        if self._remaining == 0:
            self._finish_bypassed_body()

    def _finish_bypassed_body(self) -> None:
        self._mode = PARSE
        self._message_complete = True
        self._wake()
        if self._drain_waiter is not None:
            self._wake_drain()

    def eof_received(self) -> bool | None:
        self._eof = True
        self._must_close = True
        return None  # let the transport close; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = True
        self.is_lost = True
        self._cancel_deadline()
        previous = self.state
        if previous != DETACHED:
            self.state = CLOSED
        if previous in (ACTIVE, DETACHED):
            if self._http09 and not self._message_complete and self._error is None:
                self._message_complete = True  # an HTTP/0.9 body ends with the connection
                self._mode = PARSE
            elif (
                self._head_complete
                and not self._message_complete
                and self._mode == PARSE
                and self._error is None
                and self._body_ends_with_connection()
            ):
                self._message_complete = True
                self._keep_alive = False
            elif not self._message_complete and self._mode != RAW and self._error is None:
                if not self._head_complete and self._response_bytes == 0:
                    self._error = RemoteProtocolError(
                        "the server closed the connection without sending a response"
                    )
                    self._error.answer_began = False
                elif not self._head_complete:
                    self._error = RemoteProtocolError(
                        "the server closed the connection in the middle of the response head"
                    )
                    self._error.answer_began = True
                else:
                    self._error = RemoteProtocolError(
                        "the server closed the connection before the complete body was received"
                        f" ({self._body_received} bytes received)"
                    )
                    self._error.answer_began = True
                    if exc is not None:
                        self._error.__cause__ = exc
        self._wake()
        drain = self._drain_waiter
        if drain is not None and not drain.done():
            drain.set_exception(WriteError(f"connection lost while sending: {exc or 'EOF'}"))
        self._drain_waiter = None
        # An idle, tunnelled or upgraded connection has no response left to release it: give
        # its pool slot back now. (An active one is released when its response is closed.)
        if previous != ACTIVE and self.on_release is not None:
            self.on_release(self)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._wake_drain()

    def _wake_drain(self) -> None:
        waiter = self._drain_waiter
        if waiter is not None:
            self._drain_waiter = None
            if not waiter.done():
                waiter.set_result(None)

    # -- httptools callbacks -----------------------------------------------------------------

    def header_fields(self) -> list[tuple[bytes, bytes]]:
        """The final response head's fields, split from its bytes on first use."""
        fields = self._raw_headers
        if fields is None:
            fields = self._raw_headers = parse_header_block(self._raw_head)
        return fields

    def on_headers_complete(self) -> None:
        if self._message_complete:
            self._answer_after_answer()
            return
        parser = self._parser
        status = parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            self._interim = True
            self._interim_heads += 1
            if status == 100:
                self._got_continue = True
            return
        self._status = status
        self._keep_alive = parser.should_keep_alive()
        self._head_complete = True
        method = self._method
        if method == b"HEAD":
            self._skip_body = True
            self._parser_spent = True
            self._message_complete = True
        elif method == b"CONNECT" and 200 <= status < 300:
            self._mode = RAW
            self._parser_spent = True

    def _body_ends_with_connection(self) -> bool:
        """True when the head framed the body by neither a length nor chunks (RFC 9112 6.3).

        Asked only when the connection ends mid-body, so the hot path never scans headers.
        """
        if self._status in (204, 304) or self._skip_body:
            return False
        for name, _ in self.header_fields():
            lowered = name.lower()
            if lowered == b"content-length" or lowered == b"transfer-encoding":
                return False
        return True

    def on_body(self, body: bytes) -> None:
        if self._message_complete:
            self._answer_after_answer()
            return
        if self._mode == PARSE:
            if not self._skip_body:
                self._chunks.append(body)
                self._body_received += len(body)
                self._buffered += len(body)
                if self._buffered > BODY_HIGH_WATER:
                    self._pause_reading()
        else:
            self._raw_chunks.append(body)

    def on_message_complete(self) -> None:
        if self._interim:
            # The 1xx is done; the real response follows on the same parser.
            self._interim = False
            return
        if self._mode == RAW:
            return
        self._message_complete = True
        if self._drain_waiter is not None:
            self._wake_drain()  # answered while the body waits to be sent: it is not wanted

    def _answer_after_answer(self) -> None:
        """Bytes after the whole response, in the same read: we never pipeline, so nobody asked
        for them. They are not this response's, and the connection cannot be trusted again."""
        self._must_close = True

    # -- plumbing ------------------------------------------------------------------------------

    def _add_body(self, data: bytes) -> None:
        self._chunks.append(data)
        self._body_received += len(data)
        self._buffered += len(data)
        if self._buffered > BODY_HIGH_WATER:
            self._pause_reading()
        self._wake()

    def _pause_reading(self) -> None:
        """Flow control: stop reading the socket until the consumer catches up."""
        if not self._reading_paused:
            self._reading_paused = True
            if self._transport is not None:
                self._transport.pause_reading()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def _fail(self, exc: BaseException) -> None:
        self._error = exc
        self._must_close = True
        if self._transport is not None:
            self._transport.close()
        self._wake()

    async def _wait(self, timeout: float | None) -> None:
        """Wait for the protocol callbacks to report progress, at most ``timeout`` seconds."""
        if self._error is not None:
            raise self._error
        if self.state == CLOSED and self._mode != RAW:
            raise self._error or ReadError("the connection is closed")
        if self._reading_paused:
            self._reading_paused = False
            if self._transport is not None:
                self._transport.resume_reading()
        self._wait_timeout = timeout
        if timeout is not None:
            self._arm(timeout)
        waiter = self._waiter = self._loop.create_future()
        try:
            await waiter
        finally:
            if self._waiter is waiter:
                self._waiter = None
        if self._error is not None:
            raise self._error

    def _arm(self, timeout: float) -> None:
        """Give the wait that starts ``timeout`` seconds to see progress.

        One timer per connection, moved lazily: it is scheduled only when none is (or the one
        there is set too late), and when it fires before the current deadline (it was set by
        an earlier wait) it re-arms itself for the current one.
        Scheduling and cancelling a timer for every wait cost about an eighth of a small
        request's instructions.
        """
        self._deadline = deadline = self._loop.time() + timeout
        if deadline < self._timer_at:  # no timer, or one set for a longer timeout
            self._set_timer(deadline)

    def _set_timer(self, when: float) -> None:
        if self._deadline_timer is not None:
            self._deadline_timer.cancel()
        self._timer_at = when
        self._deadline_timer = self._loop.call_at(when, self._check_deadline)

    def _check_deadline(self) -> None:
        self._deadline_timer = None
        self._timer_at = _NEVER
        waiter = self._waiter
        if waiter is None or waiter.done() or self._wait_timeout is None:
            return  # nobody waits with a timeout: the timer lapses until a wait arms it
        if self._loop.time() >= self._deadline:
            self._waiter = None
            timed_out = ReadTimeout(f"no data received from the server for {self._wait_timeout} s")
            timed_out.answer_began = self._head_complete or self._response_bytes > 0
            waiter.set_exception(timed_out)
        else:
            self._set_timer(self._deadline)

    def _cancel_deadline(self) -> None:
        timer = self._deadline_timer
        if timer is not None:
            self._deadline_timer = None
            self._timer_at = _NEVER
            timer.cancel()

    async def _drain(self, timeout: float | None) -> None:
        if not self._write_paused:
            return
        if self.state == CLOSED:
            raise WriteError("the connection closed while the request was being sent")
        waiter = self._loop.create_future()
        self._drain_waiter = waiter
        if timeout is None:
            await waiter
        else:
            handle = self._loop.call_later(timeout, _expire_write, waiter, timeout)
            try:
                await waiter
            finally:
                handle.cancel()

    # -- state seen by the pool ------------------------------------------------------------

    def is_reusable(self) -> bool:
        """True when an idle connection can take a request: open, quiet, not closing.

        The end of the connection (EOF, a close of ours, a stray byte from the server) sets
        ``state`` or ``_must_close`` as it happens, so this is two reads; the pool inlines it.
        A socket error that asyncio reports a moment later is caught by the write, and the
        pool then retries the request on another connection, as nothing was sent.
        """
        return self.state == IDLE and not self._must_close

    @property
    def is_closed(self) -> bool:
        return self.state == CLOSED

    def close(self) -> None:
        self._cancel_deadline()
        if self.state != CLOSED:
            self.state = CLOSED
            transport = self._transport
            if transport is not None:
                if transport.get_write_buffer_size():
                    # asyncio's close() waits for unsent bytes to drain; from a server that
                    # stopped reading they never will, and the socket would stay open for good.
                    transport.abort()
                else:
                    transport.close()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | bytes | None,
        timeout: float | None,
    ) -> None:
        """Wrap this connection's socket in TLS; the protocol (this object) stays the same."""
        transport = self._transport
        if transport is None or transport.is_closing():
            raise ConnectError("cannot start TLS: the connection is closed")
        if isinstance(server_hostname, bytes):
            server_hostname = server_hostname.decode("ascii")
        try:
            new_transport = await self._loop.start_tls(
                transport,
                self,
                ssl_context,
                server_hostname=server_hostname,
                ssl_handshake_timeout=timeout,
            )
        except TimeoutError as exc:
            self.close()
            raise ConnectTimeout(f"TLS handshake timed out after {timeout} s") from exc
        except (ssl.SSLError, ssl.CertificateError, OSError) as exc:
            self.close()
            raise ConnectError(f"TLS handshake failed: {exc}") from exc
        if new_transport is None:  # pragma: no cover - the transport closed meanwhile
            self.close()
            raise ConnectError("TLS handshake failed: the connection closed")
        self._transport = new_transport

    def resume_after_tunnel(self) -> None:
        """Speak HTTP again after a ``CONNECT`` tunnel (and its TLS) was set up on this socket.

        The CONNECT exchange detached the connection; the next request resets the parser. It
        counts as a fresh connection, so a failure on its first request is not taken for a
        stale keep-alive connection and retried."""
        self.state = IDLE
        self.requests_handled = 0

    def abort(self) -> None:
        """Close the socket at once, without the TLS goodbye."""
        self.state = CLOSED
        if self._transport is not None and not self.is_lost:
            self._transport.abort()

    def network_stream(self) -> AsyncNetworkStream:
        stream = self._network_stream
        if stream is None:
            from ferryman.client.transport.network import AsyncNetworkStream

            stream = self._network_stream = AsyncNetworkStream(self)
        return stream

    # -- one exchange --------------------------------------------------------------------------

    async def handle_async_request(self, request: Request) -> Response:
        """Send ``request`` and return the response as soon as its head has arrived."""
        extensions = request.extensions
        if extensions:
            timeouts = extensions.get("timeout") or _NO_TIMEOUTS
            trace = extensions.get("trace")
            if trace is not None:
                return await self._handle_traced(request, timeouts, trace)
            read_timeout = timeouts.get("read")
        else:
            timeouts = _NO_TIMEOUTS
            read_timeout = None
        head = self._begin(request)
        stream = request.stream
        if stream is EMPTY_STREAM:
            self._send_head(head)
        else:
            body = stream.content if isinstance(stream, ByteStream) else None
            if (
                body is not None
                and len(body) <= WRITE_PIECE
                and not expects_continue(request)
                and not is_chunked(request)
            ):
                self._send_head(head + body)
                # Set by the write itself when the socket did not take it all: the write
                # timeout applies until it has (no await at all when it did).
                if self._write_paused:
                    await self._drain_body(timeouts.get("write"))
            else:
                self._send_head(head)
                await self._send_body_after_head(request, timeouts)
        # Inlined wait for the head: one future, no extra coroutine frame on the hot path.
        while not self._head_complete:
            if self._error is not None:
                raise self._error
            if self.state == ACTIVE:
                self._wait_timeout = read_timeout
                if read_timeout is not None:
                    self._arm(read_timeout)
                waiter = self._waiter = self._loop.create_future()
                await waiter
            else:
                await self._wait(read_timeout)
        return self._response(request, read_timeout, None)

    def _begin(self, request: Request) -> bytes:
        """Reset the per-message state and serialize the request head."""
        self.state = ACTIVE
        self._mode = PARSE
        extensions = request.extensions
        limits = extensions.get("response_limits") if extensions else None
        if limits is not None:
            self._use_limits(limits, True)
        elif self._limits_from_extension:
            self._use_limits(self.response_limits, False)
        if self._parser_spent:
            self._parser = httptools.HttpResponseParser(self)
        self._reset_message_state()
        self._sent_anything = False
        method = METHOD_BYTES.get(request.method) or request.method.encode("ascii")
        self._method = method
        head = serialize_head(method, request)
        # RFC 9112 9.6: a request that says "Connection: close" is its connection's last, even
        # if the server answers as if it would keep it (one scan of the head's bytes).
        if head.lower().find(b"\r\nconnection:") >= 0 and _says_close(request):
            self._must_close = True
        return head

    async def _send_body_after_head(self, request: Request, timeouts: Any) -> None:
        read_timeout = timeouts.get("read")
        if not expects_continue(request) or await self._await_continue(read_timeout):
            await self._send_body(request, timeouts.get("write"))
        elif not self._got_continue:
            self._must_close = True  # a final answer came instead; the declared body never went

    async def _handle_traced(
        self, request: Request, timeouts: Any, trace: _trace.TraceCallback
    ) -> Response:
        """The same exchange, each phase between its trace events."""
        read_timeout = timeouts.get("read")
        kwargs = {"request": request}
        head = self._begin(request)

        async def send_head() -> None:
            self._send_head(head)

        async def send_body() -> None:
            if request.stream is not EMPTY_STREAM:
                await self._send_body_after_head(request, timeouts)

        async def receive_head() -> tuple[bytes, int, bytes, list[tuple[bytes, bytes]]]:
            await self._receive_head(read_timeout)
            return self._http_version, self._status, self._reason, self.header_fields()

        await _trace.traced(trace, _trace.HTTP11_SEND_REQUEST_HEADERS, kwargs, send_head)
        await _trace.traced(trace, _trace.HTTP11_SEND_REQUEST_BODY, kwargs, send_body)
        await _trace.traced(trace, _trace.HTTP11_RECEIVE_RESPONSE_HEADERS, kwargs, receive_head)
        return self._response(request, read_timeout, trace)

    def _response(
        self, request: Request, read_timeout: float | None, trace: _trace.TraceCallback | None
    ) -> Response:
        self.requests_handled += 1
        if self._mode == RAW or self._status == 101:
            self.state = DETACHED  # the connection now belongs to whoever holds the stream
            self._mode = RAW
        return Response.from_transport(
            self._status,
            self._raw_head,
            HTTP11ResponseStream(self, request, read_timeout, trace),
            {
                "http_version": self._http_version,
                "reason_phrase": self._reason,
                "network_stream": self._network_stream or self.network_stream(),
            },
            request,
        )

    def _send_head(self, data: bytes) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            raise WriteError("the connection is closed")
        transport.write(data)
        self._sent_anything = True

    async def _send_body(self, request: Request, write_timeout: float | None) -> None:
        stream = request.stream
        chunked = is_chunked(request)
        if isinstance(stream, ByteStream):
            content = stream.content
            if chunked:
                # (rare: a caller's own Transfer-Encoding on bytes; one copy is fine here)
                framed = b"%x\r\n%b\r\n" % (len(content), content) if content else b""
                await self._send_bytes(framed + b"0\r\n\r\n", write_timeout)
            elif content:
                await self._send_bytes(content, write_timeout)
            return
        transport = self._transport
        assert transport is not None
        iterator: AsyncIterator[bytes]
        if isinstance(stream, AsyncByteStream):
            iterator = stream.__aiter__()
        elif isinstance(stream, SyncByteStream):
            iterator = aiter_sync(stream)
        else:  # pragma: no cover - guarded by the Request constructor
            raise LocalProtocolError(f"unsupported request stream {stream!r}")
        async for chunk in iterator:
            if self._head_complete and self._message_complete:
                # The server answered early (a 413, a redirect): stop sending, drop the
                # connection afterwards as the body was cut short.
                self._must_close = True
                return
            if not chunk:
                continue
            if transport.is_closing():
                if self._head_complete:
                    self._must_close = True
                    return
                raise WriteError("the connection closed while the request body was being sent")
            if chunked:
                transport.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
            else:
                transport.write(chunk)
            if self._write_paused and not await self._drain_body(write_timeout):
                return
        if chunked and not transport.is_closing():
            transport.write(b"0\r\n\r\n")

    async def _send_bytes(self, data: bytes, write_timeout: float | None) -> None:
        """An in-memory body, in pieces of ``WRITE_PIECE`` bytes, each written once the socket
        has taken the ones before it (the transport is below its high-water mark).

        In one write, the transport would keep a copy of all that the socket did not take,
        with no wait that a write timeout could bound: a server that stops reading would be
        noticed only by the read timeout, as the wait for its answer.
        """
        transport = self._transport
        assert transport is not None
        view = memoryview(data)
        for start in range(0, len(data), WRITE_PIECE):
            if transport.is_closing():
                if self._head_complete:
                    self._must_close = True
                    return
                raise WriteError("the connection closed while the request body was being sent")
            transport.write(view[start : start + WRITE_PIECE])
            if self._write_paused and not await self._drain_body(write_timeout):
                return

    async def _drain_body(self, write_timeout: float | None) -> bool:
        """Wait, at most ``write_timeout`` seconds, for the socket to take the body's bytes
        written so far; False when the rest of the body is not wanted: the server answered
        early (a 413, a 401, a redirect), and the connection then closes.

        An answer whose head is whole stands when the sending fails: a server may close the
        connection, or stop reading, once it has answered.
        """
        try:
            await self._drain(write_timeout)
        except (WriteError, WriteTimeout):
            if not self._head_complete:
                raise
            self._must_close = True
            return False
        if self._message_complete and self._head_complete:
            self._must_close = True
            return False
        return True

    async def _await_continue(self, read_timeout: float | None) -> bool:
        """Wait for ``100 Continue``; a final answer instead means: do not send the body."""
        wait = EXPECT_CONTINUE_WAIT if read_timeout is None else min(read_timeout, 1.0)
        deadline = self._loop.time() + wait
        while not self._got_continue and not self._head_complete:
            left = deadline - self._loop.time()
            if left <= 0:
                return True  # servers that ignore Expect get the body after a short wait
            try:
                await self._wait(left)
            except ReadTimeout:
                return True
        return not self._head_complete

    async def _receive_head(self, read_timeout: float | None) -> None:
        while not self._head_complete:
            await self._wait(read_timeout)

    # -- the response body, driven by HTTP11ResponseStream -----------------------------------

    def _take_body(self) -> bytes:
        """The body bytes received and not yet taken."""
        body = self._into_body
        if body is not None:
            end = self._into_pos
            data = bytes(body[self._into_taken : end])
            if self._into is None:  # complete: the buffer goes back to the connection
                self._into_body = None
                self._into_pos = self._into_taken = 0
            else:
                self._into_taken = end
            return data
        chunks = self._chunks
        if not chunks:
            return b""
        if len(chunks) == 1:
            data = chunks.popleft()
        else:
            data = b"".join(chunks)
            chunks.clear()
        self._buffered = 0
        return data

    async def _read_body(self, read_timeout: float | None) -> bytes:
        """The whole remaining body, received into one buffer when its size is known."""
        while not self._message_complete:
            if (
                self._mode == BYPASS
                and self._into is None
                and 0 < self._remaining < _NO_LIMIT  # (HTTP/0.9: no size to receive into)
            ):
                # Longer than the buffer a connection keeps: received into its own buffer.
                self._receive_into(self._buffered + self._remaining)
            await self._wait(read_timeout)
        return self._take_body()

    def _take_chunk(self) -> bytes:
        """What a streaming reader gets next: what arrived, in pieces of at most
        ``BODY_HIGH_WATER`` bytes when it sits in the body's buffer."""
        body = self._into_body
        if body is not None and self._into_pos - self._into_taken > BODY_HIGH_WATER:
            start = self._into_taken
            self._into_taken = end = start + BODY_HIGH_WATER
            return bytes(body[start:end])
        return self._take_body()

    def _has_body_data(self) -> bool:
        return bool(self._chunks) or self._into_pos > self._into_taken

    def _receive_buffer(self, size: int) -> memoryview:
        """Where ``aread()`` receives a body of known size.

        The buffer is kept and reused by the next response of this connection (up to
        ``REUSED_BODY_BUFFER_MAX``): a fresh large buffer per response costs zeroing and a page
        fault per 4 KiB, which is most of the price of a large download.
        """
        if size > REUSED_BODY_BUFFER_MAX:
            return memoryview(bytearray(size))
        buffer = self._body_buffer
        if buffer is None or len(buffer) < size:
            buffer = self._body_buffer = bytearray(size)
        return memoryview(buffer)[:size]

    def _response_closed(self) -> None:
        """The response is done with: back to the pool if the exchange ended cleanly."""
        if self.state == ACTIVE:
            # (EOF and failures set _must_close as they happen.)
            if self._message_complete and self._keep_alive and not self._must_close:
                self.state = IDLE
                self.idle_since = self._loop.time()
                if self._reading_paused:
                    self._reading_paused = False
                    if self._transport is not None:
                        self._transport.resume_reading()
            else:
                self.close()
        if self.state != DETACHED and self.on_release is not None:
            self.on_release(self)


def _says_close(request: Request) -> bool:
    """Whether a request's ``Connection`` fields hold the ``close`` option."""
    for value in request.headers.get_list("connection"):
        if any(token.strip().lower() == "close" for token in value.split(",")):
            return True
    return False


def _expire_write(waiter: asyncio.Future[None], timeout: float) -> None:
    if not waiter.done():
        waiter.set_exception(WriteTimeout(f"the server did not accept data for {timeout} s"))
