"""Bodies a listener or middleware reads on the fast relay, bounded.

On the relay a body streams through (:mod:`ferryman.proxy.relay`): nothing of it is kept. An
``async def`` proxy filter listener or middleware (served by one task per request,
:mod:`ferryman.proxy.relay_middleware`) may still want it whole, as it gets it on the general
path: ``await event.request.aread()`` (then ``request.content``) or ``await
ctx.response.aread()`` (then ``response.content``, ``.json()``). The two streams here give it
to them, read from the relay's own callbacks and kept in memory up to the endpoint's
``limits.listener_body`` bytes (:data:`DEFAULT_LISTENER_BODY`):

* :class:`RequestBody`, the client's body: it becomes the exchange's consumer (what arrived
  already is replayed), reading resumes, and the chunks are kept until the body ends. The
  server's own rules still apply while it reads (the endpoint's ``limits.body`` 413, the
  client's ``body_idle``/``body_min_rate`` 408). The body read then goes upstream as it came
  (its framing, Content-Length or chunked, kept), whole, so a request that may be sent twice
  may be (``Relay.upstream_lost``). Past the limit reading stops (the rest stays in the
  socket), the reader gets :class:`ListenerBodyTooLarge` and the client a JSON 413, unless a
  listener answered otherwise.
* :class:`HeldBody`, the upstream's answer: its head is held (``Relay._hold``) while the
  task runs; reading resumes the upstream connection and keeps what it sends in the held
  answer until it ends. The answer then goes out with the bytes kept, as the listener left
  it, or is replaced. Past the limit the upstream is paused, the reader gets
  :class:`ListenerBodyTooLarge`; a listener that lets it go answers the JSON 500 any failing
  listener gives, and the upstream connection is closed rather than drained.

``async for chunk in body`` is bounded alike (the chunks are kept, to be sent on): a body a
listener streams is no more than one it reads whole. A synchronous listener cannot wait for
a body; ``content`` before a read raises :class:`~ferryman.exceptions.ResponseNotRead`, as on
the general path.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Final

from ferryman.exceptions import ReadError
from ferryman.proxy.errors import ListenerBodyTooLarge
from ferryman.proxy.relay_events import RelayedBody

if TYPE_CHECKING:
    from ferryman.proxy.relay import Relay

__all__ = [
    "DEFAULT_LISTENER_BODY",
    "HeldBody",
    "ListenerBodyTooLarge",
    "RequestBody",
]

#: The most bytes of a body a listener or middleware reads on the relay (1 MiB), unless the
#: endpoint's ``limits.listener_body`` says otherwise.
DEFAULT_LISTENER_BODY: Final = 1024 * 1024

# RequestBody's states.
_UNREAD: Final = 0
_READING: Final = 1
_WHOLE: Final = 2
_FAILED: Final = 3


class RequestBody(RelayedBody):
    """The client's request body, read from the exchange for a listener (see the module)."""

    __slots__ = ("_content", "_waiter", "chunks", "error", "limit", "relay", "size", "state")

    def __init__(self, relay: Relay, limit: int | None) -> None:
        self.relay = relay
        self.limit = limit
        self.chunks: list[bytes] = []
        self.size = 0
        self.state = _UNREAD
        self.error: Exception | None = None
        self._content: bytes | None = None
        self._waiter: asyncio.Future[None] | None = None

    @property
    def started(self) -> bool:
        """Whether a listener began reading it (the relay then takes it from here)."""
        return self.state != _UNREAD

    def read_if_complete(self) -> bytes | None:
        return self._content

    async def aread(self) -> bytes:
        content = self._content
        if content is None:
            async for _ in self:
                pass
            content = self._content = b"".join(self.chunks)
            self.chunks = [content] if content else []  # (one copy kept, not two)
        return content

    async def __aiter__(self) -> AsyncIterator[bytes]:
        self._start()
        index = 0
        while True:
            if self.state == _FAILED:
                assert self.error is not None
                raise self.error
            chunks = self.chunks
            while index < len(chunks):
                index += 1
                yield chunks[index - 1]
            if self.state == _WHOLE:
                return
            if self.state == _READING:
                waiter = self._waiter = asyncio.get_running_loop().create_future()
                try:
                    await waiter
                finally:
                    self._waiter = None

    def _start(self) -> None:
        if self.state != _UNREAD:
            return
        exchange = self.relay.exchange
        if not exchange.has_body:
            self.state = _WHOLE
            return
        length = exchange.content_length
        if self.limit is not None and length is not None and length > self.limit:
            self._fail(self._too_large())  # (nothing read: the body stays in the socket)
            return
        self.state = _READING
        exchange.set_consumer(self)  # (what came already is replayed, its end too)
        if self.state == _READING:
            exchange.resume_reading()

    def _too_large(self) -> ListenerBodyTooLarge:
        relay = self.relay
        assert self.limit is not None
        return ListenerBodyTooLarge("the request body", self.limit, relay.endpoint.name, 413)

    def _fail(self, error: Exception) -> None:
        self.state = _FAILED
        self.error = error
        self.chunks = []
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def hand_over(self) -> None:
        """The body read goes upstream, whole, as the relay's own (``Relay.body``)."""
        relay = self.relay
        relay.body = self.chunks
        relay.body_size = self.size
        relay.body_done = True

    # -- the exchange's consumer ---------------------------------------------------------------

    def on_body(self, data: bytes) -> None:
        if self.state != _READING:
            return
        relay = self.relay
        if relay.transaction is not None:
            relay.transaction.add_request_body(data)
        self.chunks.append(data)
        self.size += len(data)
        if self.limit is not None and self.size > self.limit:
            relay.exchange.pause_reading()
            self._fail(self._too_large())
            return
        self._wake()

    def on_body_end(self) -> None:
        if self.state == _READING:
            self.state = _WHOLE
            self._wake()

    def on_client_lost(self) -> None:
        if self.state == _READING:
            self._fail(ReadError("the client went away before sending the whole request body"))
        self.relay.on_client_lost()

    def pause_producing(self) -> None:
        self.relay.pause_producing()

    def resume_producing(self) -> None:
        self.relay.resume_producing()

    def on_tunnel_data(self, data: bytes) -> None:
        """(An upgrade's request is never read here.)"""

    def __repr__(self) -> str:
        return f"<RequestBody [{self.size} bytes read]>"


class HeldBody(RelayedBody):
    """The upstream answer's body while its head is held, read for a listener (see the
    module): the bytes stay in the relay's held answer (``Relay.held``), to be sent on."""

    __slots__ = ("_content", "_waiter", "counted", "limit", "overflowed", "relay", "size")

    def __init__(self, relay: Relay, limit: int | None) -> None:
        self.relay = relay
        self.limit = limit
        self.size = 0
        self.counted = 0
        #: A reader went past the limit: the answer cannot go out whole from what is held.
        self.overflowed = False
        self._content: bytes | None = None
        self._waiter: asyncio.Future[None] | None = None

    def read_if_complete(self) -> bytes | None:
        return self._content

    async def aread(self) -> bytes:
        content = self._content
        if content is None:
            async for _ in self:
                pass
            held = self.relay.held
            assert held is not None
            content = self._content = b"".join(held)
            held[:] = [content] if content else []  # (one copy kept, not two)
        return content

    async def __aiter__(self) -> AsyncIterator[bytes]:
        relay = self.relay
        relay.held_watcher = self._fed
        index = 0
        while True:
            held = relay.held
            if held is None:
                raise ReadError("the upstream's answer is no longer held (it was sent or dropped)")
            end = relay.held_end
            if end == 3:
                raise ReadError("the upstream broke off its answer")
            self._count()
            if self.limit is not None and self.size > self.limit:
                self.overflowed = True
                raise ListenerBodyTooLarge(
                    "the upstream's answer", self.limit, relay.endpoint.name, 500
                )
            while index < len(held):
                index += 1
                yield held[index - 1]
            if end != 0:
                return  # (1: ended, the connection kept; 2: ended, closed; 4: ended with it)
            connection = relay.connection
            if connection is None:
                raise ReadError("the upstream's connection is gone")
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            connection.resume_reading()
            try:
                await waiter
            finally:
                self._waiter = None

    def _count(self) -> None:
        held = self.relay.held
        if held is None:
            return
        while self.counted < len(held):
            self.size += len(held[self.counted])
            self.counted += 1

    def _fed(self) -> None:
        """The relay's word: the held answer grew or ended. Reading goes on only while a
        reader waits, and never past the limit: the upstream is paused otherwise."""
        relay = self.relay
        self._count()
        waiter = self._waiter
        waiting = waiter is not None and not waiter.done()
        over = self.limit is not None and self.size > self.limit
        if relay.held_end == 0 and (over or not waiting):
            connection = relay.connection
            if connection is not None:
                connection.pause_reading()
        if waiting:
            assert waiter is not None
            waiter.set_result(None)

    def __repr__(self) -> str:
        return f"<HeldBody [{self.size} bytes held]>"
