"""The connection pool: one idle stack per origin, a per-origin and a total limit.

Why not httpcore's pool: it scans every connection (and polls its socket) on every request,
which makes it slower the more connections it holds. Here taking a connection is a dict
look-up and a list pop; the health of a connection is what the event loop already told its
protocol (EOF, unexpected bytes, closing), checked only for the connection taken out. A
connection found dead is dropped and the next one tried, so a keep-alive connection the
server closed while idle costs a request nothing.

Waiting for a free connection (the limits are reached) is a future per waiter, bounded by the
``pool`` timeout; a released connection is handed straight to a waiter of its origin.

HTTP/2 (``http2=True``) stays off the HTTP/1.1 path: an HTTP/2 connection is never in an idle
stack, so a request finds it only on the miss path, where an origin's shared HTTP/2
connections are offered while they have a free stream slot. While a connection that may turn
out to be HTTP/2 is being opened, other requests to its origin wait for it rather than open
connections of their own; if ALPN picks HTTP/1.1 they are let go to open theirs.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import deque
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeAlias

from ferryman.client.transport.connect import (
    negotiated_protocol,
    open_http11_connection,
    start_http2,
)
from ferryman.client.transport.http11 import (
    DEFAULT_MAX_RESPONSE_HEAD,
    DEFAULT_MAX_RESPONSE_HEADERS,
    AsyncHTTP11Connection,
)
from ferryman.client.transport.http11_state import ACTIVE, CLOSED, IDLE
from ferryman.client.transport.tls import CertTypes, VerifyTypes, create_ssl_context
from ferryman.exceptions import (
    ConnectError,
    ConnectTimeout,
    PoolTimeout,
    ReadError,
    RemoteProtocolError,
    TransportError,
    UnsupportedProtocol,
    WriteError,
)
from ferryman.http.models import Request, Response
from ferryman.http.streams import ByteStream

if TYPE_CHECKING:  # imported when HTTP/2 is first used: h2 costs import time
    from ferryman.client.transport.http2 import AsyncHTTP2Connection, StreamNotAnswered

__all__ = ["AsyncConnectionPool"]

# Seconds ``aclose()`` waits for TLS close_notify exchanges before dropping the sockets.
CLOSE_GRACE = 0.25
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
_NO_TIMEOUTS: dict[str, float | None] = {}
# Times a request goes again after the server declined its stream (REFUSED_STREAM, a GOAWAY
# that took no stream) or lost it unanswered. A GOAWAY that names streams it took (a reload,
# keepalive_requests) is not counted: each one completes streams, so a burst larger than the
# server's per-connection limit gets through, however many connections that takes.
HTTP2_RESENDS = 3

# A connection that is not an AsyncHTTP11Connection is an AsyncHTTP2Connection.
Connection: TypeAlias = "AsyncHTTP11Connection | AsyncHTTP2Connection"


class _Origin:
    """What the pool knows of one origin: idle HTTP/1.1 connections (most recent last), its
    HTTP/2 connections, and a count of all its connections."""

    __slots__ = ("http11", "idle", "open", "probing", "shared")

    def __init__(self) -> None:
        self.idle: list[AsyncHTTP11Connection] = []
        self.open = 0
        self.shared: list[AsyncHTTP2Connection] = []  # HTTP/2, offered while they have room
        self.probing = False  # a connection that may speak HTTP/2 is being opened
        self.http11 = False  # ALPN said HTTP/1.1: no need to wait for the next probe


class AsyncConnectionPool:
    """Sends requests over pooled keep-alive HTTP/1.1 connections.

    ``handle_async_request(request)`` returns once the response head has arrived; the body is
    read from the response, and the connection returns to the pool when the response is read
    to the end or closed.

    Options: ``ssl_context`` (or ``verify``/``cert`` to build one), ``max_connections``
    (total, default 100), ``max_connections_per_origin`` (default 10), ``keepalive_expiry``
    (seconds an idle connection is kept, default 5), ``retries`` (new attempts when a
    connection cannot be established), ``local_address`` (source IP), ``uds`` (connect every
    request to this Unix socket path), ``trust_env`` (``SSL_CERT_FILE``/``SSL_CERT_DIR``).

    ``http2=True`` offers HTTP/2 by ALPN on https and uses it when the server picks it;
    ``http1=False`` makes it HTTP/2 only; ``http2_prior_knowledge=True`` speaks HTTP/2 to
    http:// origins without asking (h2c), as does ``http1=False``.

    ``max_response_head_size`` (64 KiB) and ``max_response_headers`` (100) bound a response
    head, the interim (1xx) heads before it included; past either, the request fails with
    :class:`~ferryman.exceptions.RemoteProtocolError` and the connection is closed. ``None``:
    no limit. On HTTP/2 the size is the SETTINGS_MAX_HEADER_LIST_SIZE we announce and enforce
    (HPACK's measure: each field counts 32 bytes more than its name and value); a larger
    header block ends the connection, as its compression state is lost with it, and a head
    with too many fields fails its stream only. A request's ``response_limits`` extension
    overrides both on HTTP/1.1.

    ``http09=True`` accepts an HTTP/0.9 answer (no status line, no headers: the body until
    the server closes) as a 200 with ``http_version`` ``b"HTTP/0.9"``, and only as the first
    answer of a connection the pool opened itself (not through a proxy), never on a reused
    one. It is off by default, as in curl (``--http0.9``): without a head, any bytes read as
    a successful answer, a non-HTTP service's banner as much as a stream that lost its place.
    """

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext | None = None,
        verify: VerifyTypes = True,
        cert: CertTypes | None = None,
        trust_env: bool = False,
        max_connections: int | None = 100,
        max_connections_per_origin: int = 10,
        keepalive_expiry: float | None = 5.0,
        retries: int = 0,
        local_address: str | None = None,
        uds: str | None = None,
        http1: bool = True,
        http2: bool = False,
        http2_prior_knowledge: bool = False,
        max_response_head_size: int | None = DEFAULT_MAX_RESPONSE_HEAD,
        max_response_headers: int | None = DEFAULT_MAX_RESPONSE_HEADERS,
        http09: bool = False,
    ) -> None:
        if not (http1 or http2 or http2_prior_knowledge):
            raise ValueError("at least one of http1 and http2 must be enabled")
        for name, value in (
            ("max_response_head_size", max_response_head_size),
            ("max_response_headers", max_response_headers),
        ):
            if value is not None and (type(value) is not int or value < 1):
                raise ValueError(f"{name} must be a positive integer or None, not {value!r}")
        if max_connections_per_origin < 1:
            raise ValueError("max_connections_per_origin must be at least 1")
        if max_connections is not None and max_connections < 1:
            raise ValueError("max_connections must be at least 1 (or None for no limit)")
        self._ssl_context = ssl_context
        self._verify = verify
        self._cert = cert
        self._trust_env = trust_env
        self._max_total = max_connections if max_connections is not None else 1 << 62
        self._max_per_origin = max_connections_per_origin
        self._keepalive_expiry = keepalive_expiry
        self._retries = retries
        self._local_address = local_address
        self._uds = uds
        self._http1 = http1
        self._http2 = http2 or http2_prior_knowledge
        self._h2c = http2_prior_knowledge or (http2 and not http1)
        self._response_limits: tuple[int | None, int | None] | None = None
        if max_response_head_size is not None or max_response_headers is not None:
            self._response_limits = (max_response_head_size, max_response_headers)
        self._http09 = http09
        self._origins: dict[Any, _Origin] = {}
        self._total = 0
        self._waiters: deque[tuple[Any, asyncio.Future[Connection | None]]] = deque()
        self._active: set[Connection] = set()
        self._sweep_handle: asyncio.TimerHandle | None = None
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- the hot path ----------------------------------------------------------------------

    async def handle_async_request(self, request: Request) -> Response:
        if self._closed:
            raise RuntimeError("the connection pool is closed")
        url = request.url
        scheme = url.scheme
        if scheme != "http" and scheme != "https":
            raise UnsupportedProtocol(
                f"the URL scheme {scheme!r} is not supported (http and https are)",
                request=request,
            )
        extensions = request.extensions
        sni = extensions.get("sni_hostname") if extensions else None
        key = url.origin if sni is None else (url.origin, sni)
        while True:
            conn = self._take_idle(key)
            if conn is None:
                opened = await self._open_or_wait(key, request)
                if not isinstance(opened, AsyncHTTP11Connection):
                    return await self._send_http2(opened, key, request)
                conn = opened
            conn.state = ACTIVE
            reused = conn.requests_handled > 0
            try:
                return await conn.handle_async_request(request)
            except (RemoteProtocolError, ReadError, WriteError) as exc:
                nothing_back = conn._response_bytes == 0
                conn.close()
                self._release(conn)
                if reused and nothing_back and _can_resend(conn, request, exc):
                    continue  # the server had closed this keep-alive connection: use another
                if exc.request is None:
                    exc.request = request
                raise
            except BaseException:
                conn.close()
                self._release(conn)
                raise

    def _take_idle(self, key: Any) -> AsyncHTTP11Connection | None:
        origin = self._origins.get(key)
        if origin is None:
            return None
        idle = origin.idle
        while idle:
            conn = idle.pop()
            if conn.is_reusable():
                expiry = self._keepalive_expiry
                if expiry is None or conn._loop.time() - conn.idle_since < expiry:
                    return conn
            conn.close()
            self._forget(conn)
        return None

    # -- opening and waiting -----------------------------------------------------------------

    async def _open_or_wait(self, key: Any, request: Request) -> Connection:
        extensions = request.extensions
        timeouts = extensions.get("timeout", _NO_TIMEOUTS) if extensions else _NO_TIMEOUTS
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        while True:
            origin = self._origins.get(key)
            if origin is None:
                origin = self._origins[key] = _Origin()
            if origin.shared:
                shared = self._reserve_stream(origin)
                if shared is not None:
                    return shared
            if origin.open < self._max_per_origin and not origin.probing:
                if self._total >= self._max_total:
                    self._evict_one_idle()
                if self._total < self._max_total:
                    return await self._open(key, origin, request, timeouts)
            handed = await self._wait_for_slot(loop, key, timeouts.get("pool"))
            if handed is not None:
                if not isinstance(handed, AsyncHTTP11Connection):
                    return handed  # with a stream slot reserved for this request
                if handed.is_reusable():
                    return handed
                handed.close()
                self._forget(handed)
            conn = self._take_idle(key)
            if conn is not None:
                return conn

    async def _open(self, key: Any, origin: _Origin, request: Request, timeouts: Any) -> Connection:
        origin.open += 1
        self._total += 1
        probing = self._http2 and not origin.http11 and self._may_be_http2(request)
        origin.probing = probing
        attempts = self._retries
        delay = 0.5
        while True:
            try:
                conn = await self._connect(key, request, timeouts)
                if self._http2 and isinstance(conn, AsyncHTTP11Connection):
                    conn = await self._start_http2_if_agreed(conn, request)
            except (ConnectError, ConnectTimeout) as exc:
                if attempts > 0:
                    attempts -= 1
                    await asyncio.sleep(delay)
                    delay *= 2
                    continue
                self._open_failed(key, origin, probing)
                exc.request = request
                raise
            except BaseException:
                self._open_failed(key, origin, probing)
                raise
            origin.probing = False
            self._active.add(conn)
            if not isinstance(conn, AsyncHTTP11Connection):
                conn.on_release = self._release_http2
                conn.in_flight = 1  # this request's stream
                origin.shared.append(conn)
                self._hand_out_streams(conn)
                return conn
            conn.on_release = self._release
            if probing:
                origin.http11 = True
                self._wake_waiters_of(key)
            return conn

    def _open_failed(self, key: Any, origin: _Origin, probing: bool) -> None:
        origin.open -= 1
        self._total -= 1
        if probing:
            origin.probing = False
            self._wake_waiters_of(key)
        self._wake_waiter()

    def _may_be_http2(self, request: Request) -> bool:
        return request.url.scheme == "https" or self._h2c

    async def _start_http2_if_agreed(
        self, conn: AsyncHTTP11Connection, request: Request
    ) -> Connection:
        """The connection as HTTP/2 when TLS agreed on ``h2`` or h2c is known to work."""
        protocol = negotiated_protocol(conn)
        cleartext = protocol is None and request.url.scheme == "http"
        if protocol == "h2" or (cleartext and self._h2c):
            trace = request.extensions.get("trace") if request.extensions else None
            try:
                return await start_http2(conn, request, trace)
            except BaseException:
                conn.close()
                raise
        if not self._http1:
            conn.close()
            raise ConnectError(f"the server does not speak HTTP/2 (ALPN: {protocol!r})")
        return conn

    async def _connect(self, key: Any, request: Request, timeouts: Any) -> Connection:
        """Open a connection for ``request``'s origin, TLS included.

        The one place a connection is made: a proxy pool overrides it to connect through the
        proxy (a ``CONNECT`` tunnel) instead of to the origin itself."""
        url = request.url
        extensions = request.extensions
        sni = extensions.get("sni_hostname")
        conn = await open_http11_connection(
            asyncio.get_running_loop(),
            key,
            scheme=url.scheme,
            host=url.host,
            port=url.effective_port or (443 if url.scheme == "https" else 80),
            ssl_context=self._get_ssl_context() if url.scheme == "https" else None,
            server_hostname=(sni.decode("ascii") if isinstance(sni, bytes) else sni) or url.host,
            connect_timeout=timeouts.get("connect"),
            trace=extensions.get("trace"),
            local_address=self._local_address,
            uds=self._uds,
            response_limits=self._response_limits,
        )
        conn.accepts_http09 = self._http09
        return conn

    async def _wait_for_slot(
        self, loop: asyncio.AbstractEventLoop, key: Any, timeout: float | None
    ) -> Connection | None:
        waiter: asyncio.Future[Connection | None] = loop.create_future()
        entry = (key, waiter)
        self._waiters.append(entry)
        handle = None
        if timeout is not None:
            handle = loop.call_later(timeout, _expire_pool_wait, waiter, timeout)
        try:
            return await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                handed = waiter.result()  # handed over just as we gave up: give it back
                if isinstance(handed, AsyncHTTP11Connection):
                    self._release(handed)
                elif handed is not None:
                    handed.in_flight -= 1  # the stream slot reserved for us
                    self._release_http2(handed)
            raise
        finally:
            if handle is not None:
                handle.cancel()
            with contextlib.suppress(ValueError):
                self._waiters.remove(entry)

    def _get_ssl_context(self) -> ssl.SSLContext:
        context = self._ssl_context
        if context is None:
            alpn = ("h2", "http/1.1") if self._http1 else ("h2",)
            context = self._ssl_context = create_ssl_context(
                self._verify,
                self._cert,
                alpn_protocols=alpn if self._http2 else ("http/1.1",),
                trust_env=self._trust_env,
            )
        return context

    # -- HTTP/2 ---------------------------------------------------------------------------

    async def _send_http2(self, conn: AsyncHTTP2Connection, key: Any, request: Request) -> Response:
        """Send ``request`` on ``conn`` (a stream slot is reserved), again elsewhere when the
        server declined the stream without acting on it."""
        from ferryman.client.transport.http2 import StreamNotAnswered

        resends = HTTP2_RESENDS
        while True:
            try:
                return await conn.handle_async_request(request)
            except StreamNotAnswered as exc:
                if not _can_resend_http2(exc, request) or (resends <= 0 and not exc.rotated):
                    if exc.request is None:
                        exc.request = request
                    raise
                if not exc.rotated:  # a GOAWAY naming streams it took: the server made progress
                    resends -= 1
            except TransportError as exc:
                if exc.request is None:
                    exc.request = request
                raise
            other = self._take_idle(key) or await self._open_or_wait(key, request)
            if not isinstance(other, AsyncHTTP11Connection):
                conn = other
                continue
            other.state = ACTIVE  # the origin now answers over HTTP/1.1
            try:
                return await other.handle_async_request(request)
            except BaseException:
                other.close()
                self._release(other)
                raise

    def _reserve_stream(self, origin: _Origin) -> AsyncHTTP2Connection | None:
        """A shared connection of ``origin`` with a free stream slot, the slot taken."""
        expiry = self._keepalive_expiry
        for conn in origin.shared:
            if conn.accepts_streams():
                if conn.in_flight or expiry is None or conn._loop.time() - conn.idle_since < expiry:
                    conn.in_flight += 1
                    return conn
                conn.close()  # idle for too long: the server may be closing it right now
        for conn in [conn for conn in origin.shared if conn.is_closed]:
            self._drop_http2(conn)
        return None

    def _hand_out_streams(self, conn: AsyncHTTP2Connection) -> None:
        """Give free stream slots of ``conn`` to requests waiting for its origin; when they
        run out, let one more waiter open another connection if the limits allow."""
        key = conn.origin
        free = conn.max_streams - conn.in_flight if conn.accepts_streams() else 0
        chosen = []
        for entry in self._waiters:
            if entry[0] == key and not entry[1].done():
                chosen.append(entry)
                if len(chosen) > free:
                    break
        for entry in chosen[:free]:
            conn.in_flight += 1
            self._waiters.remove(entry)
            entry[1].set_result(conn)
        if len(chosen) > free:
            origin = self._origins.get(key)
            if (
                origin is not None
                and not origin.probing
                and origin.open < self._max_per_origin
                and self._total < self._max_total
            ):
                self._waiters.remove(chosen[free])
                chosen[free][1].set_result(None)

    def _release_http2(self, conn: AsyncHTTP2Connection) -> None:
        """A stream of ``conn`` is done, or ``conn`` changed state (settings, GOAWAY, closed)."""
        if conn.is_closed:
            self._drop_http2(conn)
            return
        if conn.going_away or self._closed:  # close it once its streams are done
            origin = self._origins.get(conn.origin)
            if origin is not None and conn in origin.shared:
                origin.shared.remove(conn)
                self._wake_waiters_of(conn.origin)  # they may open a new connection
            if not conn.in_flight:
                conn.close()
                self._forget(conn)
            return
        if self._waiters:
            self._hand_out_streams(conn)
        if not conn.in_flight and self._sweep_handle is None and self._keepalive_expiry is not None:
            self._sweep_handle = conn._loop.call_later(self._keepalive_expiry, self._sweep)

    def _drop_http2(self, conn: AsyncHTTP2Connection) -> None:
        origin = self._origins.get(conn.origin)
        if origin is not None and conn in origin.shared:
            origin.shared.remove(conn)
        self._forget(conn)

    # -- giving back -----------------------------------------------------------------------

    def _release(self, conn: AsyncHTTP11Connection) -> None:
        """A response is done with ``conn`` (or ``conn`` died): reuse it, or free its slot."""
        if conn.state == IDLE and not self._closed:
            if self._waiters:
                for index, (key, waiter) in enumerate(self._waiters):
                    if key == conn.origin and not waiter.done():
                        del self._waiters[index]
                        waiter.set_result(conn)
                        return
            origin = self._origins.get(conn.origin)
            if origin is not None:
                origin.idle.append(conn)
                if self._sweep_handle is None and self._keepalive_expiry is not None:
                    self._sweep_handle = conn._loop.call_later(self._keepalive_expiry, self._sweep)
                return
        conn.close()
        if conn.state == CLOSED:
            origin = self._origins.get(conn.origin)
            if origin is not None and conn in origin.idle:
                origin.idle.remove(conn)
            self._forget(conn)

    def _forget(self, conn: Connection) -> None:
        """Give back the slot of a closed connection, once."""
        if conn in self._active:
            self._active.discard(conn)
            origin = self._origins.get(conn.origin)
            if origin is not None:
                origin.open -= 1
                if origin.open == 0 and not origin.idle and not origin.probing:
                    del self._origins[conn.origin]
            self._total -= 1
            self._wake_waiter()

    def _wake_waiter(self) -> None:
        """A slot was freed: let the first waiter try to open a connection."""
        for _, waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
                return

    def _wake_waiters_of(self, key: Any) -> None:
        """The protocol of ``key`` is known (or its probe failed): its waiters look again."""
        for waiting_for, waiter in self._waiters:
            if waiting_for == key and not waiter.done():
                waiter.set_result(None)

    def _evict_one_idle(self) -> None:
        """At the total limit, close the longest-idle connection of any origin to make room."""
        oldest: Connection | None = None
        for origin in self._origins.values():
            candidates: list[Connection] = [conn for conn in origin.shared if not conn.in_flight]
            if origin.idle:
                candidates.append(origin.idle[0])
            for conn in candidates:
                if oldest is None or conn.idle_since < oldest.idle_since:
                    oldest = conn
        if isinstance(oldest, AsyncHTTP11Connection):
            self._origins[oldest.origin].idle.remove(oldest)
            oldest.close()
            self._forget(oldest)
        elif oldest is not None:
            oldest.close()
            self._drop_http2(oldest)

    def _sweep(self) -> None:
        """Close connections idle for longer than ``keepalive_expiry``."""
        self._sweep_handle = None
        expiry = self._keepalive_expiry
        if expiry is None or self._closed:
            return
        loop = self._loop or asyncio.get_running_loop()
        now = loop.time()
        pending = False
        for origin in list(self._origins.values()):
            for conn in list(origin.idle):
                if now - conn.idle_since >= expiry or not conn.is_reusable():
                    origin.idle.remove(conn)
                    conn.close()
                    self._forget(conn)
                else:
                    pending = True
            for shared in list(origin.shared):
                if shared.in_flight:
                    continue
                if now - shared.idle_since >= expiry or shared.is_closed:
                    shared.close()
                    self._drop_http2(shared)
                else:
                    pending = True
        if pending:
            self._sweep_handle = loop.call_later(expiry, self._sweep)

    # -- introspection and closing -------------------------------------------------------

    @property
    def connections(self) -> list[Connection]:
        """Every open connection, idle or in use (for tests and diagnostics)."""
        return list(self._active)

    @property
    def idle_connections(self) -> list[Connection]:
        """Connections with no request in progress."""
        idle: list[Connection] = []
        for origin in self._origins.values():
            idle += origin.idle
            idle += [conn for conn in origin.shared if not conn.in_flight]
        return idle

    async def aclose(self) -> None:
        self._closed = True
        if self._sweep_handle is not None:
            self._sweep_handle.cancel()
            self._sweep_handle = None
        closing = list(self._active)
        for conn in closing:
            conn.close()
        self._active.clear()
        self._origins.clear()
        self._total = 0
        for _, waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(RuntimeError("the connection pool was closed"))
        self._waiters.clear()
        # A plain socket closes on the next loop iteration; a TLS one first sends close_notify
        # and waits for the peer's. Give them a moment, then drop the sockets that are still
        # open: a pool closed just before its event loop stops must not leak file descriptors.
        # The first look comes after one iteration, the later ones less and less often: a
        # fixed 5 ms step made every short-lived pool (a script's one request) 5 ms slower.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CLOSE_GRACE
        pause = 0.0
        while any(not conn.is_lost for conn in closing):
            if loop.time() >= deadline:
                for conn in closing:
                    conn.abort()
                break
            await asyncio.sleep(pause)
            pause = min(max(2 * pause, 0.001), 0.02)

    async def __aenter__(self) -> AsyncConnectionPool:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def _expire_pool_wait(waiter: asyncio.Future[Any], timeout: float) -> None:
    if not waiter.done():
        waiter.set_exception(PoolTimeout(f"no connection became free within {timeout} s"))


def _can_resend_http2(exc: StreamNotAnswered, request: Request) -> bool:
    """A declined stream goes again when its body can be sent again (unsent, or bytes); a
    stream lost with its connection only when the request is idempotent too and the loss is
    not a plain server failure (see ``StreamNotAnswered.idempotent_retry``)."""
    if not exc.body_started or isinstance(request.stream, ByteStream):
        return exc.unprocessed or (exc.idempotent_retry and request.method in _IDEMPOTENT)
    return False


def _can_resend(conn: AsyncHTTP11Connection, request: Request, exc: Exception) -> bool:
    """A request may go again on a fresh connection when the server cannot have acted on it.

    That is when nothing of it left this process, or when it is idempotent (RFC 9110 9.2.2)
    and its body can be sent again unchanged.
    """
    if not conn._sent_anything:
        return True  # not even the head went, and a streamed body starts after the head
    return isinstance(request.stream, ByteStream) and request.method in _IDEMPOTENT
