"""WebSocket client connections: the upgrade goes through the transport, the frames through wsproto.

Why not wsproto's ``H11Handshake``: the transport has already sent the upgrade through its pool
and parsed the ``101``; letting wsproto drive the handshake would mean a second HTTP parser (h11)
on a connection the pool does not know. So the headers and the ``101`` checks use wsproto's
helpers, and its frame-level ``Connection`` starts OPEN on the upgraded network stream.

All handler calls run in one reader task per connection, in the peer's order, so a handler
never needs a lock. Writes go through one outbox: ``write()`` from a sync handler and
``await send()`` keep the order in which they were called.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import inspect
import logging
import os
import re
from collections import deque
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any

from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Event, Ping, Pong, TextMessage
from wsproto.extensions import Extension
from wsproto.handshake import client_extensions_handshake
from wsproto.utilities import LocalProtocolError as WsprotoLocalError
from wsproto.utilities import RemoteProtocolError as WsprotoRemoteError
from wsproto.utilities import generate_accept_token, generate_nonce

from ferryman.client.transport.network import AsyncNetworkStream
from ferryman.exceptions import (
    LocalProtocolError,
    ProtocolError,
    RemoteProtocolError,
    TransportError,
    UnsupportedProtocol,
)
from ferryman.http.headers import Headers, HeadersTypes
from ferryman.http.models import Request, Response
from ferryman.http.url import URL

__all__ = ["WS", "WebSocketConnection", "WebSocketHandshake", "handshake_request", "open_websocket"]

logger = logging.getLogger("ferryman.client.websocket")

# Close codes (RFC 6455 section 7.4.1) this module sends or reports itself.
NORMAL_CLOSURE, ABNORMAL_CLOSURE, MESSAGE_TOO_BIG, INTERNAL_ERROR = 1000, 1006, 1009, 1011

DEFAULT_MAX_MESSAGE_SIZE = 16 * 1024 * 1024
DEFAULT_MAX_QUEUE = 16
DEFAULT_CLOSE_TIMEOUT = 10.0
READ_SIZE = 64 * 1024

_HTTP_SCHEMES = {"ws": "http", "wss": "https", "http": "http", "https": "https"}
# A subprotocol name is an RFC 7230 token (RFC 6455 section 4.1).
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_OPEN = ConnectionState.OPEN
_CLOSED = ConnectionState.CLOSED


class WS:
    """Base class of WebSocket handlers: override what you need, as plain or ``async`` methods.

    Each runs in the connection's reader task, one at a time, in the order the peer's frames
    arrived: an ``async`` method holds back the next message until it returns (backpressure
    for a slow handler). A method that raises is logged and the connection closed with 1011.
    ``on_open`` runs before any message; ``on_message`` gets whole messages (``str`` for text,
    ``bytes`` for binary) and, when not overridden, leaves them to ``async for message in ws``;
    ``on_ping`` is told of a ping the connection has already answered (RFC 6455 requires the
    pong); ``on_close`` runs once closed, with ``ws.close_code`` and ``ws.close_reason`` set.
    """

    def on_open(self, ws: WebSocketConnection) -> Awaitable[None] | None:
        return None

    def on_message(self, ws: WebSocketConnection, message: str | bytes) -> Awaitable[None] | None:
        return None

    def on_ping(self, ws: WebSocketConnection, data: bytes) -> Awaitable[None] | None:
        return None

    def on_pong(self, ws: WebSocketConnection, data: bytes) -> Awaitable[None] | None:
        return None

    def on_close(self, ws: WebSocketConnection) -> Awaitable[None] | None:
        return None


@dataclass(frozen=True, slots=True)
class WebSocketHandshake:
    """What the client offered, to check the server's ``101`` against. The wsproto extension
    objects keep the negotiated parameters: one handshake serves one connection."""

    key: bytes
    subprotocols: tuple[str, ...] = ()
    extensions: tuple[Extension, ...] = ()


def handshake_request(
    url: URL | str,
    *,
    headers: HeadersTypes | None = None,
    subprotocols: Sequence[str] | str = (),
    extensions: Sequence[Extension] | None = None,
) -> tuple[Request, WebSocketHandshake]:
    """The upgrade request for ``url`` (``ws://`` and ``wss://`` become ``http``/``https``).

    ``subprotocols`` are offered in order of preference; a ``Sec-WebSocket-Protocol`` header
    among ``headers`` is read as the same offer, so the server's choice is checked against
    what was really sent. ``extensions`` are wsproto extension objects used as templates: each
    handshake negotiates on copies, so one list can serve any number of connections.
    """
    url = url if isinstance(url, URL) else URL(url)
    scheme = _HTTP_SCHEMES.get(url.scheme)
    if scheme is None:
        raise UnsupportedProtocol(
            f"the URL scheme {url.scheme!r} is not a WebSocket scheme (ws and wss are)"
        )
    key = generate_nonce()
    merged = Headers(headers)
    offered_protocols = _subprotocol_offer(merged, subprotocols)
    if "sec-websocket-extensions" in merged:
        # An extension changes how frames are read and written: one the connection does not
        # run would garble every message once the server accepted it.
        raise ValueError(
            "a Sec-WebSocket-Extensions header cannot be set by hand: the extensions offered "
            "must be ones the connection runs; pass them as objects instead, e.g. "
            "websocket_extensions=[wsproto.extensions.PerMessageDeflate()]"
        )
    merged["Upgrade"] = "websocket"
    merged["Connection"] = "Upgrade"
    merged["Sec-WebSocket-Key"] = key.decode("ascii")
    merged["Sec-WebSocket-Version"] = "13"
    if offered_protocols:
        merged["Sec-WebSocket-Protocol"] = ", ".join(offered_protocols)
    offered = tuple(copy.copy(extension) for extension in extensions or ())
    offers = ((extension.name, extension.offer()) for extension in offered)
    offer_list = ", ".join(  # as wsproto's own handshake writes it
        f"{name}; {offer}" if isinstance(offer, str) and offer else name
        for name, offer in offers
        if offer
    )
    if offer_list:
        merged["Sec-WebSocket-Extensions"] = offer_list
    # RFC 6455 section 3: a WebSocket URL has no fragment.
    request = Request("GET", url.copy_with(scheme=scheme, fragment=None), headers=merged)
    return request, WebSocketHandshake(key, offered_protocols, offered)


def _subprotocol_offer(headers: Headers, subprotocols: Sequence[str] | str) -> tuple[str, ...]:
    """The subprotocols to offer: the argument, else a hand-set ``Sec-WebSocket-Protocol``."""
    given = (subprotocols,) if isinstance(subprotocols, str) else tuple(subprotocols)
    hand_set = tuple(
        token.strip()
        for token in headers.get_list("sec-websocket-protocol", split_commas=True)
        if token.strip()
    )
    if given and hand_set and given != hand_set:
        raise ValueError(
            f"subprotocols={list(given)} and the Sec-WebSocket-Protocol header "
            f"{', '.join(hand_set)!r} offer different subprotocols: give them one way"
        )
    offer = given or hand_set
    for name in offer:
        if not isinstance(name, str) or not _TOKEN.fullmatch(name):
            raise ValueError(
                f"{name!r} is not a valid WebSocket subprotocol name (an HTTP token: "
                "letters, digits and !#$%&'*+-.^_`|~, no spaces or commas)"
            )
    if len(set(offer)) != len(offer):
        raise ValueError(f"subprotocols {list(offer)} name one subprotocol twice")
    return offer


async def open_websocket(
    response: Response,
    handshake: WebSocketHandshake,
    handler: WS | None = None,
    *,
    max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE,
    max_queue: int = DEFAULT_MAX_QUEUE,
    ping_interval: float | None = None,
    close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
    write_timeout: float | None = None,
) -> WebSocketConnection:
    """Check the server's answer to ``handshake``, then run the connection over its stream.

    Returns once ``handler.on_open`` has run. ``max_message_size`` (bytes; characters for
    text; ``None``: no limit) closes the connection with 1009 when exceeded; ``max_queue`` is
    how many unread messages ``async for`` buffers before the connection stops reading;
    ``ping_interval`` sends a keepalive ping that must be answered before the next one.
    """
    if max_queue < 1:
        raise ValueError("max_queue must be at least 1")
    if response.status_code != 101:
        await _discard_body(response)
        raise ProtocolError(
            "the server refused the WebSocket handshake: "
            f"{response.status_code} {response.reason_phrase}".rstrip(),
            request=response.request,
        )
    stream = response.extensions.get("network_stream")
    if not isinstance(stream, AsyncNetworkStream):
        raise ProtocolError("the transport gave no network stream for the upgraded connection")
    try:
        subprotocol, extensions = _check_switching_protocols(response.headers, handshake)
    except RemoteProtocolError as exc:
        exc.request = response.request
        await stream.aclose()
        raise
    ws = WebSocketConnection(stream, Connection(ConnectionType.CLIENT, extensions), handler)
    ws.subprotocol = subprotocol
    ws.extensions = tuple(extensions)
    ws._max_message_size, ws._max_queue = max_message_size, max_queue
    ws._close_timeout, ws._write_timeout = close_timeout, write_timeout
    ws._start(ping_interval)
    try:
        await ws._opened
    except BaseException:
        ws._abort()
        raise
    return ws


async def _discard_body(response: Response, limit: int = 64 * 1024) -> None:
    """Read a small refusal body so its connection can serve another request."""
    received = 0
    with contextlib.suppress(TransportError):
        async for chunk in response.aiter_bytes():
            received += len(chunk)
            if received > limit:
                break
    await response.aclose()


def _check_switching_protocols(
    headers: Headers, handshake: WebSocketHandshake
) -> tuple[str | None, list[Extension]]:
    """The subprotocol and extensions the server chose, after RFC 6455 4.1's checks."""
    if headers.get("upgrade", "").lower() != "websocket":
        raise RemoteProtocolError(
            "the server switched protocols without 'Upgrade: websocket' "
            f"(got {headers.get('upgrade')!r})"
        )
    tokens = headers.get_list("connection", split_commas=True)
    if not any(token.lower() == "upgrade" for token in tokens):
        raise RemoteProtocolError("the server's 101 response lacks 'Connection: Upgrade'")
    accept = headers.get("sec-websocket-accept", "")
    if accept.encode("ascii", "replace") != generate_accept_token(handshake.key):
        raise RemoteProtocolError(
            f"the server's Sec-WebSocket-Accept {accept!r} does not match the key sent "
            "(not a WebSocket server, or a proxy in the way answered)"
        )
    subprotocol = headers.get("sec-websocket-protocol")
    if subprotocol is not None and subprotocol not in handshake.subprotocols:
        offered = ", ".join(handshake.subprotocols) or "none"
        raise RemoteProtocolError(
            f"the server chose the subprotocol {subprotocol!r}, which was not offered "
            f"(offered: {offered})"
        )
    accepted = headers.get_list("sec-websocket-extensions", split_commas=True)
    try:
        extensions = client_extensions_handshake(accepted, handshake.extensions)
    except WsprotoRemoteError as exc:
        raise RemoteProtocolError(f"the server accepted an extension not offered: {exc}") from exc
    return subprotocol, extensions


class WebSocketConnection:
    """An open WebSocket, made by ``open_websocket``: send with ``send()``/``write()``,
    receive with a handler or ``async for``, end with ``close()`` or ``async with``.

    ``subprotocol`` is the one the server chose, or None when it chose none (also when some
    were offered: RFC 6455 lets the client fail then, but many servers speak the protocol
    without naming it, so the caller decides); ``extensions`` are the wsproto extensions the
    server accepted, with the parameters it agreed to.
    """

    def __init__(
        self, stream: AsyncNetworkStream, protocol: Connection, handler: WS | None
    ) -> None:
        self.handler = handler
        self.subprotocol: str | None = None
        self.extensions: tuple[Extension, ...] = ()
        self.close_code: int | None = None
        self.close_reason = ""
        self._stream = stream
        self._protocol = protocol
        self._loop = asyncio.get_running_loop()
        self._max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE
        self._max_queue = DEFAULT_MAX_QUEUE
        self._close_timeout = DEFAULT_CLOSE_TIMEOUT
        self._write_timeout: float | None = None
        self._handler_takes_messages = (
            handler is not None and type(handler).on_message is not WS.on_message
        )
        self._messages: deque[str | bytes] = deque()  # for ``async for``, at most max_queue
        self._message_waiter: asyncio.Future[None] | None = None
        self._space_waiter: asyncio.Future[None] | None = None
        self._parts: list[Any] = []  # fragments of the message being received
        self._parts_size = 0
        self._discarding = False  # a message was too big: drop data until the close completes
        self._outbox: list[bytes] = []
        self._write_lock = asyncio.Lock()
        self._write_task: asyncio.Task[None] | None = None
        self._opened: asyncio.Future[None] = self._loop.create_future()
        self._reader: asyncio.Task[None] | None = None
        self._keepalive: asyncio.Task[None] | None = None
        self._unanswered_ping: bytes | None = None
        self._closing = False
        self._closed = False

    @property
    def closed(self) -> bool:
        """True once the connection is closed and its network stream released."""
        return self._closed

    async def wait_closed(self) -> None:
        """Wait until the connection is closed (by either side, or by a failure)."""
        if self._reader is not None and not self._reader.done():
            await asyncio.wait({self._reader})

    async def send(self, message: str | bytes | bytearray | memoryview) -> None:
        """Send one message; returns once its bytes were handed to the socket."""
        self._queue(_message_event(message))
        await self._flush()

    def write(self, message: str | bytes | bytearray | memoryview) -> None:
        """Send one message without waiting (for sync handlers), after every message sent
        before it. A failed write is logged; the reader then sees the connection close."""
        self._queue(_message_event(message))
        self._schedule_flush()

    async def ping(self, data: bytes = b"") -> None:
        self._queue(Ping(payload=bytes(data)))
        await self._flush()

    def _queue(self, event: Event) -> None:
        try:
            self._outbox.append(self._protocol.send(event))
        except WsprotoLocalError:
            raise LocalProtocolError(
                f"cannot send on a WebSocket that is closing or closed (code {self.close_code})"
            ) from None

    def _schedule_flush(self) -> None:
        # A flush task still running picks up whatever joins the outbox while it writes.
        if self._write_task is None or self._write_task.done():
            self._write_task = self._loop.create_task(self._flush())
            self._write_task.add_done_callback(_log_write_failure)

    async def _flush(self) -> None:
        """Write the outbox, one writer at a time (the stream's drain has one waiter)."""
        async with self._write_lock:
            outbox = self._outbox
            while outbox:
                data = outbox[0] if len(outbox) == 1 else b"".join(outbox)
                outbox.clear()
                await self._stream.write(data, self._write_timeout)

    async def close(
        self, code: int = NORMAL_CLOSURE, reason: str = "", timeout: float | None = None
    ) -> None:
        """Start the closing handshake and wait (``timeout``, default ``close_timeout``) for
        the peer's close frame; past it, the connection is dropped."""
        self._start_close(code, reason)
        reader = self._reader
        if reader is None or reader.done():
            return
        with contextlib.suppress(TransportError):  # the reader sees the broken connection
            await self._flush()
        if asyncio.current_task() is reader:
            return  # called from a handler: the reader reads the answer after it returns
        wait = self._close_timeout if timeout is None else timeout
        done, _ = await asyncio.wait({reader}, timeout=wait)
        if not done:
            logger.debug("no close frame from the peer within %s s: dropping the connection", wait)
            self._abort()
            await asyncio.wait({reader})

    def _start_close(self, code: int, reason: str) -> None:
        self._closing = True
        _wake(self._space_waiter)  # a full queue must not keep the reader from the answer
        if self._protocol.state is _OPEN:
            self._outbox.append(self._protocol.send(CloseConnection(code, reason or None)))

    def _abort(self) -> None:
        """Drop the connection without a closing handshake."""
        self._closing = True
        if self._reader is not None:
            self._reader.cancel()  # its cleanup closes the stream and calls on_close

    async def __aenter__(self) -> WebSocketConnection:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def __aiter__(self) -> WebSocketConnection:
        return self

    async def __anext__(self) -> str | bytes:
        if self._handler_takes_messages:
            raise RuntimeError("this WebSocket's messages go to its handler's on_message")
        messages = self._messages
        while not messages:
            if self._closed:
                raise StopAsyncIteration
            if self._message_waiter is not None:
                raise RuntimeError("another task is already waiting for a message")
            waiter = self._message_waiter = self._loop.create_future()
            try:
                await waiter
            finally:
                self._message_waiter = None
        _wake(self._space_waiter)
        return messages.popleft()

    def _start(self, ping_interval: float | None) -> None:
        self._reader = self._loop.create_task(self._run())
        if ping_interval is not None:
            self._keepalive = self._loop.create_task(self._keep_alive(ping_interval))

    async def _run(self) -> None:
        try:
            await self._call("on_open")
            _wake(self._opened)
            await self._receive()
            await self._wait_for_eof()
        except asyncio.CancelledError:
            pass  # aborted: close() timed out, or the opener was cancelled
        except TransportError as exc:
            logger.debug("WebSocket connection failed: %s", exc)
        finally:
            await self._finish()

    async def _receive(self) -> None:
        protocol = self._protocol
        read = self._stream.read
        while protocol.state is not _CLOSED:
            data = await read(READ_SIZE)
            protocol.receive_data(data or None)  # None: the peer vanished (code 1006)
            for event in protocol.events():
                if isinstance(event, TextMessage | BytesMessage):
                    await self._on_data(event)
                elif isinstance(event, Ping):
                    if protocol.state is _OPEN:
                        self._queue(event.response())
                        self._schedule_flush()
                    await self._call("on_ping", bytes(event.payload))
                elif isinstance(event, Pong):
                    if event.payload == self._unanswered_ping:
                        self._unanswered_ping = None
                    await self._call("on_pong", bytes(event.payload))
                elif isinstance(event, CloseConnection):
                    await self._on_close_frame(event)

    async def _on_data(self, event: TextMessage | BytesMessage) -> None:
        if self._discarding:
            return
        data, limit = event.data, self._max_message_size
        if event.message_finished and not self._parts:  # the common case: one frame
            if limit is not None and len(data) > limit:
                return self._too_big(len(data))
            return await self._deliver(data if isinstance(data, str) else bytes(data))
        self._parts.append(data)
        self._parts_size += len(data)
        if limit is not None and self._parts_size > limit:
            return self._too_big(self._parts_size)
        if event.message_finished:
            parts, self._parts, self._parts_size = self._parts, [], 0
            await self._deliver("".join(parts) if isinstance(data, str) else b"".join(parts))

    def _too_big(self, size: int) -> None:
        logger.warning(
            "WebSocket message of at least %d bytes exceeds max_message_size=%s: closing",
            size,
            self._max_message_size,
        )
        self._parts, self._parts_size, self._discarding = [], 0, True
        self._start_close(MESSAGE_TOO_BIG, "message too big")
        self._schedule_flush()

    async def _deliver(self, message: str | bytes) -> None:
        if self._handler_takes_messages:
            return await self._call("on_message", message)
        messages = self._messages
        messages.append(message)
        _wake(self._message_waiter)
        # Backpressure: stop reading while the consumer is behind, but not once closing:
        # the peer's close frame must still be read.
        while len(messages) >= self._max_queue and not self._closing:
            space = self._space_waiter = self._loop.create_future()
            try:
                await space
            finally:
                self._space_waiter = None

    async def _on_close_frame(self, event: CloseConnection) -> None:
        self.close_code, self.close_reason = int(event.code), event.reason or ""
        self._closing = True
        # REMOTE_CLOSING: the peer started the close; OPEN: wsproto found a framing error and
        # reports the code to fail with (it moves to CLOSED after this event). Answer both.
        if self._protocol.state in (ConnectionState.REMOTE_CLOSING, _OPEN):
            self._queue(event.response())
            with contextlib.suppress(TransportError):
                await self._flush()

    async def _wait_for_eof(self) -> None:
        """After the closing handshake the server closes TCP first (RFC 6455 7.1.1)."""
        with contextlib.suppress(TimeoutError, TransportError):
            async with asyncio.timeout(self._close_timeout):
                while await self._stream.read(READ_SIZE):
                    pass

    async def _finish(self) -> None:
        self._closing = True
        if self.close_code is None:
            self.close_code = ABNORMAL_CLOSURE
        if self._keepalive is not None:
            self._keepalive.cancel()
        with contextlib.suppress(TransportError):
            await self._stream.aclose()
        self._closed = True
        for waiter in (self._message_waiter, self._space_waiter, self._opened):
            _wake(waiter)
        await self._call("on_close")

    async def _keep_alive(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            if self._closing:
                return
            if self._unanswered_ping is not None:
                logger.info("WebSocket keepalive ping unanswered for %s s: closing", interval)
                return await self.close(INTERNAL_ERROR, "keepalive ping timeout")
            payload = self._unanswered_ping = os.urandom(4)
            try:
                await self.ping(payload)
            except (LocalProtocolError, TransportError):
                return

    async def _call(self, name: str, *args: Any) -> None:
        """Run one handler method; a failure is logged and closes the connection (1011)."""
        handler = self.handler
        if handler is None:
            return
        try:
            result = getattr(handler, name)(self, *args)
            if result is not None and inspect.isawaitable(result):
                await result
        except Exception:
            logger.exception("WebSocket handler %s.%s failed", type(handler).__qualname__, name)
            if not self._closing:
                self._start_close(INTERNAL_ERROR, "handler error")
                self._schedule_flush()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "closing" if self._closing else "open"
        return f"<WebSocketConnection [{state}] {self._stream!r}>"


def _wake(waiter: asyncio.Future[None] | None) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


def _message_event(message: str | bytes | bytearray | memoryview) -> Event:
    if isinstance(message, str):
        return TextMessage(data=message)
    return BytesMessage(data=bytes(message))


def _log_write_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.debug("WebSocket write failed: %s", task.exception())
