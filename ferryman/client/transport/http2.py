"""One HTTP/2 client connection: an asyncio ``Protocol`` around h2's sans-I/O state machine.

h2 does the framing, HPACK and the flow-control bookkeeping; this class is the I/O shell: it
feeds received bytes to h2, routes h2's events to the stream they concern, and writes what h2
wants sent. Requests share the connection as streams; the pool reserves a stream slot
(``in_flight``) before it hands the connection to a request, so this class never queues.

A GOAWAY from the server ends the connection for new streams only (RFC 9113 6.8): the streams
up to its last stream id are read to their end, and those above it fail as unprocessed, so the
pool sends them again on another connection. h2 itself closes its state machine on a received
GOAWAY and then refuses every later frame, the answers still due included; ``_H2State`` keeps
it open (see there).

Writes are coalesced: a request's HEADERS frame is written on the next loop iteration, so the
requests that tasks start in one iteration leave in one ``write()`` (one TLS record, one
syscall) instead of one each. Received DATA is acknowledged (WINDOW_UPDATE) only as the reader
takes it, so a slow reader holds at most one stream window of body in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
from hyperframe.frame import Frame, GoAwayFrame

from ferryman.client.transport import _trace
from ferryman.client.transport.http11 import DEFAULT_RESPONSE_LIMITS, ResponseHeadTooLarge
from ferryman.client.transport.http11_request import aiter_sync
from ferryman.exceptions import (
    LocalProtocolError,
    ReadError,
    ReadTimeout,
    RemoteProtocolError,
    StreamConsumedError,
    WriteError,
    WriteTimeout,
)
from ferryman.http.headers import Headers
from ferryman.http.models import Request, Response
from ferryman.http.streams import EMPTY_STREAM, AsyncByteStream, ByteStream, SyncByteStream

__all__ = [
    "AsyncHTTP2Connection",
    "HTTP2ResponseStream",
    "StreamNotAnswered",
    "http2_header_fields",
]

# Receive window of each stream: the most body a slow reader makes us hold per stream.
STREAM_WINDOW = 1024 * 1024
# Receive window of the whole connection (h2's default of 64 KiB would starve many streams).
CONNECTION_WINDOW = 16 * 1024 * 1024
# Streams assumed allowed until the server's SETTINGS say otherwise (RFC 9113 6.5.2 advises
# servers to allow at least 100), and the most we use whatever the server allows.
INITIAL_MAX_STREAMS = 100
MAX_STREAMS_CAP = 1000

OPEN, DRAINING, CLOSED = range(3)

_CONFIG = h2.config.H2Configuration(
    client_side=True,
    header_encoding=None,
    # Request headers come from ``Headers``, which validated them already; this module
    # lower-cases names and leaves out the connection-specific ones itself.
    validate_outbound_headers=False,
    normalize_outbound_headers=False,
    # Response heads are checked by _on_response_head, in one pass.
    validate_inbound_headers=False,
    normalize_inbound_headers=False,
)
_INVALID_NAME = re.compile(rb"[^!#$%&'*+\-.^_`|~0-9a-zA-Z]")
_INVALID_VALUE = re.compile(rb"[\x00\r\n]")
_CONNECTION_SPECIFIC = frozenset(
    {b"host", b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"}
)
_NO_TIMEOUTS: dict[str, float | None] = {}
_CANCEL = h2.errors.ErrorCodes.CANCEL
_REFUSED_STREAM = h2.errors.ErrorCodes.REFUSED_STREAM
_DataReceived = h2.events.DataReceived
_ResponseReceived = h2.events.ResponseReceived
_StreamEnded = h2.events.StreamEnded


class StreamNotAnswered(RemoteProtocolError):
    """A stream ended without a response.

    ``unprocessed`` is True when HTTP/2 guarantees the server did not act on the request
    (it was never sent, its stream is above a GOAWAY's last stream id, or it was refused):
    the pool may send it again. ``idempotent_retry``: the connection was lost with no byte of
    an answer, on a connection that had served before (an idle close racing the request) and
    with no GOAWAY received: an idempotent request may go again. A stream a GOAWAY counted as
    taken (at or below its last stream id) and then lost is neither: the server may have acted.
    ``rotated``: declined by a GOAWAY whose last stream id is not 0 (a reload,
    ``keepalive_requests``): that server took at least the connection's first stream, so each
    such GOAWAY is progress, and the pool does not count it against its resend limit.
    """

    def __init__(
        self,
        message: str,
        *,
        unprocessed: bool,
        idempotent_retry: bool = False,
        body_started: bool = True,
        rotated: bool = False,
    ) -> None:
        super().__init__(message)
        self.unprocessed = unprocessed
        self.idempotent_retry = idempotent_retry
        self.body_started = body_started
        self.rotated = rotated


class _H2State(h2.connection.H2Connection):
    """h2's connection, kept open after a received GOAWAY.

    h2 (4.4 as of this writing; python-hyper/h2#1181, open since 2019) moves its state
    machine to CLOSED on a GOAWAY and drops what it had queued to send (a SETTINGS or PING
    acknowledgement included); every later frame is then a ProtocolError ("Invalid input
    RECV_HEADERS in state CLOSED"), the answers the GOAWAY promised included. Here the GOAWAY
    only becomes h2's own ``ConnectionTerminated`` event: no new stream is opened after it
    because ``AsyncHTTP2Connection`` stops taking them, and the streams in progress keep
    sending and receiving (request body data and window updates included) until the
    connection closes. The tests against nginx and the scripted server fail if an h2 release
    stops calling this method.
    """

    def _receive_goaway_frame(
        self, frame: GoAwayFrame
    ) -> tuple[list[Frame], list[h2.events.Event]]:
        event = h2.events.ConnectionTerminated()
        try:
            event.error_code = h2.errors.ErrorCodes(frame.error_code)
        except ValueError:
            event.error_code = frame.error_code
        event.last_stream_id = frame.last_stream_id
        event.additional_data = frame.additional_data or None
        return [], [event]


class _Stream:
    """What one request's stream has received, and who waits for it."""

    __slots__ = (
        "body_started",
        "chunks",
        "error",
        "finished",
        "headers",
        "local_ended",
        "remote_ended",
        "reused",
        "status",
        "stream_id",
        "unacked",
        "waiter",
    )

    def __init__(self, reused: bool) -> None:
        self.stream_id = 0
        self.reused = reused
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.chunks: list[bytes] = []
        self.unacked = 0  # flow-controlled bytes received but not yet taken by the reader
        self.local_ended = False
        self.remote_ended = False
        self.body_started = False
        self.finished = False
        self.error: BaseException | None = None
        # What the request's task awaits: the head, body data, or window to send in. One task
        # drives a stream, so one future serves; a wake-up for another reason is re-checked.
        self.waiter: asyncio.Future[None] | None = None


class AsyncHTTP2Connection(asyncio.Protocol):
    """An HTTP/2 connection to one origin, shared by up to ``max_streams`` requests at once."""

    def __init__(
        self,
        origin: Any,
        loop: asyncio.AbstractEventLoop,
        transport: asyncio.Transport,
        response_limits: tuple[int | None, int | None] | None = DEFAULT_RESPONSE_LIMITS,
    ) -> None:
        self.origin = origin
        self._loop = loop
        self._transport = transport
        self._h2 = _H2State(config=_CONFIG)
        self._streams: dict[int, _Stream] = {}
        self.state = OPEN
        self.in_flight = 0  # stream slots the pool handed out and not yet given back
        self.max_streams = INITIAL_MAX_STREAMS
        self.requests_handled = 0
        self.idle_since = loop.time()
        self.is_lost = False
        # Called with this connection when a stream slot frees up or its state changes.
        self.on_release: Callable[[AsyncHTTP2Connection], None] | None = None
        self._error: BaseException | None = None
        self._closed_locally = False
        self._goaway_received = False
        self._flush_scheduled = False
        self._write_paused = False
        self._drain_waiters: list[asyncio.Future[None]] = []
        # The limits of a response head (see AsyncConnectionPool): the header list size is
        # the connection's, announced in our SETTINGS; the number of fields (the :status
        # pseudo-header besides) is checked for each head.
        max_size, max_fields = (None, None) if response_limits is None else response_limits
        self._max_header_list = max_size
        self._max_fields = max_fields
        self._most_fields = sys.maxsize if max_fields is None else max_fields + 1

    def initiate(self, early_data: bytes = b"") -> None:
        """Send the connection preface and our settings; ``early_data`` is what the server
        sent before this object took over the socket (its SETTINGS, usually)."""
        codes = h2.settings.SettingCodes
        settings = {
            codes.ENABLE_PUSH: 0,
            codes.MAX_CONCURRENT_STREAMS: INITIAL_MAX_STREAMS,
            codes.INITIAL_WINDOW_SIZE: STREAM_WINDOW,
        }
        if self._max_header_list is not None:
            settings[codes.MAX_HEADER_LIST_SIZE] = self._max_header_list
        self._h2.local_settings = h2.settings.Settings(client=True, initial_values=settings)
        # h2 gives its HPACK decoder a limit of its own (64 KiB) and never ours: settings given
        # as initial values are not "changed" when the server acknowledges them. A header
        # block past it fails in h2 with a DenialOfServiceError (see data_received).
        self._h2.decoder.max_header_list_size = self._max_header_list or sys.maxsize
        self._h2.initiate_connection()
        self._h2.increment_flow_control_window(CONNECTION_WINDOW - 65535)
        self._flush()
        if early_data:
            self.data_received(early_data)

    # -- asyncio protocol callbacks ----------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        try:
            events = self._h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            error: RemoteProtocolError
            oversized = isinstance(exc, h2.exceptions.DenialOfServiceError)
            if oversized and str(exc).startswith("Oversized header block"):
                # Which stream's head it was is not known, and the HPACK state is lost with it:
                # the connection ends, and its streams that had no head yet fail with this.
                error = ResponseHeadTooLarge(
                    f"sent a response head larger than {self._max_header_list} bytes, as"
                    " HTTP/2 measures a header list",
                    "max_response_head_size",
                )
            else:
                error = RemoteProtocolError(f"the server broke the HTTP/2 protocol: {exc!r}")
            error.__cause__ = exc
            self._fail(error)
            return
        streams = self._streams
        for event in events:
            kind = type(event)
            if kind is _DataReceived:
                stream = streams.get(event.stream_id)  # type: ignore[attr-defined]
                self._on_data(stream, event)  # type: ignore[arg-type]
            elif kind is _ResponseReceived:
                stream = streams.get(event.stream_id)  # type: ignore[attr-defined]
                if stream is not None:
                    headers = event.headers  # type: ignore[attr-defined]
                    if len(headers) > self._most_fields:
                        stream.error = ResponseHeadTooLarge(
                            f"sent more than {self._max_fields} headers", "max_response_headers"
                        )
                        _wake(stream)
                    else:
                        _on_response_head(stream, headers)
            elif kind is _StreamEnded:
                stream = streams.get(event.stream_id)  # type: ignore[attr-defined]
                if stream is not None:
                    stream.remote_ended = True
                    _wake(stream)
            else:
                self._on_rare_event(event)
        self._flush()

    def _on_data(self, stream: _Stream | None, event: h2.events.DataReceived) -> None:
        if stream is None or stream.finished:
            # Nobody reads this stream any more: give the window back at once.
            self._h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            return
        if event.data:
            stream.chunks.append(event.data)
        stream.unacked += event.flow_controlled_length
        _wake(stream)

    def _on_rare_event(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.StreamReset):
            stream = self._streams.get(event.stream_id)
            # RST_STREAM(NO_ERROR) after a complete response only asks us to stop sending.
            if stream is not None and not (stream.remote_ended and event.error_code == 0):
                if event.error_code == _REFUSED_STREAM and not stream.status:
                    stream.error = StreamNotAnswered(
                        "the server refused the stream",
                        unprocessed=True,
                        body_started=stream.body_started,
                    )
                else:
                    stream.error = RemoteProtocolError(
                        f"the server reset the stream ({_code_name(event.error_code)})"
                    )
                stream.remote_ended = True
                _wake(stream)
        elif isinstance(event, h2.events.WindowUpdated):
            if event.stream_id:
                stream = self._streams.get(event.stream_id)
                if stream is not None:
                    _wake(stream)
            else:
                for stream in self._streams.values():
                    _wake(stream)
        elif isinstance(event, h2.events.RemoteSettingsChanged):
            self._on_settings(event)
        elif isinstance(event, h2.events.ConnectionTerminated):
            self._on_goaway(event)

    def _on_settings(self, event: h2.events.RemoteSettingsChanged) -> None:
        changed = event.changed_settings.get(h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS)
        if changed is not None:
            previous = self.max_streams
            self.max_streams = min(changed.new_value, MAX_STREAMS_CAP)
            if self.max_streams > previous and self.on_release is not None:
                self.on_release(self)  # room for more streams: let waiting requests in
        for stream in self._streams.values():  # INITIAL_WINDOW_SIZE may have grown
            _wake(stream)

    def _on_goaway(self, event: h2.events.ConnectionTerminated) -> None:
        """No new streams; those above the last stream id go again elsewhere, the others are
        still answered (a server may send a second GOAWAY with a lower last stream id)."""
        last = event.last_stream_id or 0
        for stream in self._streams.values():
            if stream.stream_id > last and not stream.remote_ended:
                stream.error = StreamNotAnswered(
                    f"the server is going away and did not process stream {stream.stream_id}",
                    unprocessed=True,
                    body_started=stream.body_started,
                    rotated=last > 0,
                )
                stream.remote_ended = True
                _wake(stream)
        if event.error_code:
            self._error = RemoteProtocolError(
                f"the server closed the connection ({_code_name(event.error_code)})"
            )
        self._goaway_received = True
        if self.state == OPEN:
            self.state = DRAINING
            if self.on_release is not None:
                self.on_release(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.is_lost = True
        self.state = CLOSED
        for stream in self._streams.values():
            if stream.remote_ended and stream.error is None:
                continue
            if stream.error is None:
                stream.error = self._lost_error(stream, exc)
            stream.remote_ended = True
            _wake(stream)
        for waiter in self._drain_waiters:
            if not waiter.done():
                waiter.set_exception(WriteError(f"connection lost while sending: {exc or 'EOF'}"))
        self._drain_waiters.clear()
        if self.on_release is not None:
            self.on_release(self)

    def _lost_error(self, stream: _Stream, exc: Exception | None) -> BaseException:
        """A new error for each stream: one instance raised in many tasks would collect
        every task's traceback."""
        cause = self._error
        if cause is None and self._closed_locally:
            return ReadError("the connection was closed")
        if isinstance(cause, ResponseHeadTooLarge) and not stream.status:
            return ResponseHeadTooLarge(cause.reason, "max_response_head_size")
        if not stream.status and not stream.chunks:
            # After a GOAWAY that took this stream the server may have acted on it: no resend.
            taken = self._goaway_received
            message = f"{cause or 'the server closed the connection'}; the request got no answer"
            if taken:
                message += " (its GOAWAY had taken the stream: it may have been processed)"
            error: RemoteProtocolError = StreamNotAnswered(
                message,
                unprocessed=False,
                idempotent_retry=stream.reused and not taken,
                body_started=stream.body_started,
            )
        else:
            error = RemoteProtocolError(
                f"{cause or 'the server closed the connection'} in the middle of a response"
            )
        error.__cause__ = cause or exc
        return error

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        for waiter in self._drain_waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._drain_waiters.clear()

    # -- writing -------------------------------------------------------------------------------

    def _flush(self) -> None:
        data = self._h2.data_to_send()
        if data and not self._transport.is_closing():
            self._transport.write(data)

    def _flush_soon(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._scheduled_flush)

    def _scheduled_flush(self) -> None:
        self._flush_scheduled = False
        self._flush()

    async def _drain(self, timeout: float | None) -> None:
        if self.state == CLOSED:
            raise WriteError("the connection closed while the request body was sent")
        waiter = self._loop.create_future()
        self._drain_waiters.append(waiter)
        await _wait_for(self._loop, waiter, timeout, WriteTimeout, "the server accepted no data")

    def _fail(self, exc: BaseException) -> None:
        self._error = exc
        self.close()

    # -- one exchange --------------------------------------------------------------------------

    def accepts_streams(self) -> bool:
        """True when a new request may be sent here now: open, with a free stream slot."""
        return (
            self.state == OPEN
            and self.in_flight < self.max_streams
            and not self._transport.is_closing()
        )

    async def handle_async_request(self, request: Request) -> Response:
        """Send ``request`` on a new stream and return once the response head has arrived.

        The caller reserved a stream slot (``in_flight``); from here on this method, and then
        the response stream, own it and give it back exactly once."""
        extensions = request.extensions
        timeouts = (extensions.get("timeout") or _NO_TIMEOUTS) if extensions else _NO_TIMEOUTS
        trace = extensions.get("trace") if extensions else None
        stream = _Stream(self.requests_handled > 0)
        try:
            if trace is None:
                self._send_headers(stream, request)
                if not stream.local_ended:
                    await self._send_body(stream, request, timeouts.get("write"))
                await self._receive_head(stream, timeouts.get("read"))
            else:
                await self._exchange_traced(stream, request, timeouts, trace)
        except BaseException:
            self._finish(stream)
            raise
        return Response(
            stream.status,
            headers=Headers.from_raw(stream.headers),
            stream=HTTP2ResponseStream(self, stream, request, timeouts.get("read"), trace),
            extensions={
                "http_version": b"HTTP/2",
                "reason_phrase": b"",
                "stream_id": stream.stream_id,
            },
            request=request,
        )

    async def _exchange_traced(
        self, stream: _Stream, request: Request, timeouts: Any, trace: _trace.TraceCallback
    ) -> None:
        error: BaseException | None = None
        try:  # headers are queued at once: stream ids must be used in the order they are taken
            self._send_headers(stream, request)
        except BaseException as exc:
            error = exc
        kwargs = {"request": request, "stream_id": stream.stream_id}

        async def send_headers() -> None:
            if error is not None:
                raise error
            self._flush()

        async def send_body() -> None:
            if not stream.local_ended:
                await self._send_body(stream, request, timeouts.get("write"))

        async def receive_head() -> tuple[int, list[tuple[bytes, bytes]]]:
            await self._receive_head(stream, timeouts.get("read"))
            return stream.status, stream.headers

        await _trace.traced(trace, _trace.HTTP2_SEND_REQUEST_HEADERS, kwargs, send_headers)
        await _trace.traced(trace, _trace.HTTP2_SEND_REQUEST_BODY, kwargs, send_body)
        await _trace.traced(trace, _trace.HTTP2_RECEIVE_RESPONSE_HEADERS, kwargs, receive_head)

    def _send_headers(self, stream: _Stream, request: Request) -> None:
        if self.state != OPEN or self._transport.is_closing():
            raise StreamNotAnswered(
                "the connection no longer takes new streams", unprocessed=True, body_started=False
            )
        h2_state = self._h2
        stream_id = h2_state.get_next_available_stream_id()
        body = request.stream
        end = body is EMPTY_STREAM or (isinstance(body, ByteStream) and not body.content)
        try:
            h2_state.send_headers(stream_id, http2_header_fields(request), end_stream=end)
        except h2.exceptions.TooManyStreamsError as exc:
            raise StreamNotAnswered(
                "the server allows no more streams", unprocessed=True, body_started=False
            ) from exc
        stream.stream_id = stream_id
        stream.local_ended = end
        self._streams[stream_id] = stream
        self._flush_soon()

    async def _send_body(self, stream: _Stream, request: Request, timeout: float | None) -> None:
        body = request.stream
        stream.body_started = True
        if isinstance(body, ByteStream):
            await self._send_data(stream, body.content, timeout)
        else:
            chunks: AsyncIterator[bytes]
            if isinstance(body, AsyncByteStream):
                chunks = body.__aiter__()
            elif isinstance(body, SyncByteStream):
                chunks = aiter_sync(body)
            else:  # pragma: no cover - guarded by the Request constructor
                raise LocalProtocolError(f"unsupported request stream {body!r}")
            async for chunk in chunks:
                if stream.remote_ended:
                    return  # answered or reset early: the rest of the body is not wanted
                await self._send_data(stream, chunk, timeout)
        if not stream.remote_ended and self.state != CLOSED:
            self._h2.end_stream(stream.stream_id)
            stream.local_ended = True
            self._flush()

    async def _send_data(self, stream: _Stream, data: bytes, timeout: float | None) -> None:
        h2_state = self._h2
        stream_id = stream.stream_id
        sent, size = 0, len(data)
        while sent < size:
            if stream.remote_ended:
                return
            if self.state == CLOSED:
                raise WriteError("the connection closed while the request body was sent")
            window = h2_state.local_flow_control_window(stream_id)
            if window <= 0:
                waiter = stream.waiter = self._loop.create_future()
                message = "the server's flow-control window stayed shut"
                await _wait_for(self._loop, waiter, timeout, WriteTimeout, message)
                continue
            step = min(window, h2_state.max_outbound_frame_size, size - sent)
            h2_state.send_data(stream_id, data[sent : sent + step])
            sent += step
            self._flush()
            if self._write_paused:
                await self._drain(timeout)

    async def _receive_head(self, stream: _Stream, timeout: float | None) -> None:
        while not stream.status:
            if stream.error is not None:
                raise stream.error
            if stream.remote_ended:
                raise RemoteProtocolError("the stream ended without a response head")
            await self._wait(stream, timeout)

    async def _wait(self, stream: _Stream, timeout: float | None) -> None:
        waiter = stream.waiter = self._loop.create_future()
        if timeout is None:
            await waiter
        else:
            await _wait_for(self._loop, waiter, timeout, ReadTimeout, "no data from the server")

    # -- the response body, driven by HTTP2ResponseStream ----------------------------------

    def _take(self, stream: _Stream) -> bytes:
        """Hand buffered body bytes to the reader, and only now open the window for more."""
        chunks = stream.chunks
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        if stream.unacked:
            self._h2.acknowledge_received_data(stream.unacked, stream.stream_id)
            stream.unacked = 0
            self._flush_soon()
        return data

    def _finish(self, stream: _Stream) -> None:
        """The request is done with its stream: cancel what is still open, free the slot."""
        if stream.finished:
            return
        stream.finished = True
        stream_id = stream.stream_id
        if stream_id:
            del self._streams[stream_id]
            if self.state != CLOSED:
                h2_state = self._h2
                if stream.unacked:
                    h2_state.acknowledge_received_data(stream.unacked, stream_id)
                if not (stream.remote_ended and stream.local_ended):
                    with contextlib.suppress(h2.exceptions.ProtocolError):  # closed meanwhile
                        h2_state.reset_stream(stream_id, _CANCEL)
                self._flush_soon()
        self.in_flight -= 1
        self.requests_handled += 1
        if not self.in_flight:
            self.idle_since = self._loop.time()
        if self.on_release is not None:
            self.on_release(self)

    # -- state seen by the pool ------------------------------------------------------------

    @property
    def is_closed(self) -> bool:
        return self.state == CLOSED

    @property
    def going_away(self) -> bool:
        """No new streams here (GOAWAY received or sent, or closed)."""
        return self.state != OPEN

    def close(self) -> None:
        """Say goodbye (GOAWAY) and close; streams still open fail with an error."""
        if self.state != CLOSED:
            self.state = CLOSED
            self._closed_locally = True
            transport = self._transport
            if not transport.is_closing():
                try:
                    self._h2.close_connection()
                    self._flush()
                except h2.exceptions.ProtocolError:
                    pass
                if transport.get_write_buffer_size():
                    transport.abort()  # a server that stopped reading would keep it open
                else:
                    transport.close()

    def abort(self) -> None:
        """Close the socket at once, without the TLS goodbye."""
        self.state = CLOSED
        self._closed_locally = True
        if not self.is_lost:
            self._transport.abort()

    def get_extra_info(self, name: str) -> Any:
        return self._transport.get_extra_info(name)

    def __repr__(self) -> str:
        state = ("open", "draining", "closed")[self.state]
        return f"<AsyncHTTP2Connection {self.origin} {state} streams={self.in_flight}>"


class HTTP2ResponseStream(AsyncByteStream):
    """The body of one response; closing it frees the stream (reset if unread)."""

    __slots__ = ("_conn", "_read_timeout", "_request", "_started", "_stream", "_trace")

    def __init__(
        self,
        conn: AsyncHTTP2Connection,
        stream: _Stream,
        request: Request,
        read_timeout: float | None,
        trace: _trace.TraceCallback | None,
    ) -> None:
        self._conn = conn
        self._stream = stream
        self._request = request
        self._read_timeout = read_timeout
        self._trace = trace
        self._started = False

    @property
    def buffered(self) -> int:
        """Body bytes received and not read yet: flow control keeps it within one window."""
        return sum(map(len, self._stream.chunks))

    def read_if_complete(self) -> bytes | None:
        stream = self._stream
        if self._started or self._trace is not None or not stream.remote_ended:
            return None
        if stream.error is not None or stream.finished:
            return None
        self._started = True
        data = self._conn._take(stream) if stream.chunks or stream.unacked else b""
        self._conn._finish(stream)
        return data

    async def aread(self) -> bytes:
        return b"".join([chunk async for chunk in self])

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self._started:
            raise StreamConsumedError()
        self._started = True
        trace = self._trace
        if trace is None:
            async for chunk in self._chunks():
                yield chunk
            return
        name = _trace.HTTP2_RECEIVE_RESPONSE_BODY
        kwargs = {"request": self._request, "stream_id": self._stream.stream_id}
        await _trace.emit(trace, f"{name}.started", kwargs)
        try:
            async for chunk in self._chunks():
                yield chunk
        except BaseException as exc:
            await _trace.emit(trace, f"{name}.failed", {"exception": exc})
            raise
        await _trace.emit(trace, f"{name}.complete", {"return_value": None})

    async def _chunks(self) -> AsyncIterator[bytes]:
        conn, stream = self._conn, self._stream
        while True:
            if stream.chunks or stream.unacked:
                data = conn._take(stream)
                if data:
                    yield data
            elif stream.error is not None:
                raise stream.error
            elif stream.remote_ended:
                return
            else:
                await conn._wait(stream, self._read_timeout)

    async def aclose(self) -> None:
        stream = self._stream
        if stream.finished:
            return
        trace = self._trace
        if trace is None:
            self._conn._finish(stream)
            return

        async def close() -> None:
            self._conn._finish(stream)

        kwargs = {"stream_id": stream.stream_id}
        await _trace.traced(trace, _trace.HTTP2_RESPONSE_CLOSED, kwargs, close)


def http2_header_fields(request: Request) -> list[tuple[bytes, bytes]]:
    """The request head as HTTP/2 fields: pseudo-headers first, names lower-cased, the
    HTTP/1.1 connection-specific fields left out (RFC 9113 8.2.2), Host as ``:authority``."""
    url = request.url
    target = request.extensions.get("target") if request.extensions else None
    if target is None:
        target = url.raw_path
    elif isinstance(target, str):
        target = target.encode("ascii")
    authority = None
    fields: list[tuple[bytes, bytes]] = []
    for name, value in request.headers.raw:
        name = name.lower()
        if name in _CONNECTION_SPECIFIC:
            if name == b"host":
                authority = value
        elif name != b"te" or value.lower() == b"trailers":
            fields.append((name, value))
    return [
        (b":method", request.method.encode("ascii")),
        (b":authority", authority or url.host_header),
        (b":scheme", url.scheme.encode("ascii")),
        (b":path", target),
        *fields,
    ]


def _on_response_head(stream: _Stream, headers: list[tuple[bytes, bytes]]) -> None:
    """Take the head in, checking what matters downstream (h2's own checks are off: they cost
    a chain of generators per field): a valid status, and no byte that could split an
    HTTP/1.1 message if the fields are relayed."""
    fields = stream.headers
    status = b""
    for name, value in headers:
        if name[:1] == b":":
            if name != b":status" or status or fields:
                break
            status = value
        elif _INVALID_NAME.search(name) or _INVALID_VALUE.search(value) or not name:
            break
        else:
            fields.append((name, value))
    else:
        if len(status) == 3 and status.isdigit():
            stream.status = int(status)
            _wake(stream)
            return
    fields.clear()
    stream.error = RemoteProtocolError("the server sent a malformed response head")
    _wake(stream)


def _wake(stream: _Stream) -> None:
    waiter = stream.waiter
    if waiter is not None:
        stream.waiter = None
        if not waiter.done():
            waiter.set_result(None)


async def _wait_for(
    loop: asyncio.AbstractEventLoop,
    waiter: asyncio.Future[None],
    timeout: float | None,
    error: type[Exception],
    message: str,
) -> None:
    if timeout is None:
        await waiter
        return
    handle = loop.call_later(timeout, _expire, waiter, error, f"{message} for {timeout} s")
    try:
        await waiter
    finally:
        handle.cancel()


def _expire(waiter: asyncio.Future[None], error: type[Exception], message: str) -> None:
    if not waiter.done():
        waiter.set_exception(error(message))


def _code_name(code: int) -> str:
    try:
        return h2.errors.ErrorCodes(code).name
    except ValueError:
        return f"error code {code}"
