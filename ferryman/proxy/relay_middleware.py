"""Endpoint middleware, and asynchronous proxy filter listeners, served by the fast relay.

An endpoint with middleware (:mod:`ferryman.proxy.middleware`) or with ``async def``
``proxy.filter.*`` listeners used to send every request down the general path (ASGI kernel,
``HTTPProxyHandler``, the client session) at about 3.5x the CPU. :class:`RelayHooks` runs them
from the relay's callbacks instead, in the general path's order and with its semantics
(:mod:`ferryman.proxy.handler`)::

    proxy.filter.request -> middleware ways in -> upstream -> ways out -> proxy.filter.response

Two ways of running, chosen per request by what is registered:

* **Inline**: every middleware a generator or plain function, every listener synchronous, the
  error handler (if any) a plain function. The ways in run from ``on_request`` (``next()`` on
  each generator), the ways out from the upstream answer's head callback, with no coroutine,
  task or future. Middlewares of one phase run one after the other (nothing of theirs can
  wait, so that is what running them concurrently comes to).
* **One task per request** as soon as one middleware is an async generator or ``async def``,
  one filter listener ``async``, or the error handler ``async``: the task runs the events
  with ``adispatch`` and the chain with :meth:`MiddlewareChain.run`, the general path's own
  code (``asyncio.gather`` in a phase, errors, short-circuits, a generator yielding twice).
  The upstream call in the middle is still the relay's: the task lets the relay go on
  (``Relay.proceed``) and waits for the answer's head, which the relay holds (``Relay.hold``:
  the upstream paused, at most one read of body kept) until the ways out and the response
  listeners have run.

The context is the general path's: ``ctx.request`` the client's request (after the request
listeners), ``ctx.upstream_request`` the request prepared for the upstream (rewritten target,
upstream ``Host``, forwarding headers, header rules: an :class:`UpstreamRelayRequest`, whose
URL and headers are built only when read), ``ctx.response`` the answer on the way out (a
``Response`` over the relayed head, headers parsed when read). What a middleware changes goes
upstream exactly so; a request head is built again only when something changed (a method,
URL or header that differs, a body set as bytes); a URL on another origin goes to that origin
only (a pool made for it, at most :data:`MAX_EXTRA_ORIGINS`), as on the general path. A
replaced answer (``ctx.response = Response(...)``) is sent instead of the upstream's, whose body
is then drained (``DRAIN_LIMIT``) or its connection closed; a changed status or header goes out
with the upstream's body streamed.

Bodies stream unless something asks for them: with a task, ``await ctx.request.aread()`` (or
a request listener's) and ``await ctx.response.aread()`` on the way out (or a response
listener's) read them through :mod:`ferryman.proxy.relay_bodies`, bounded by the endpoint's
``limits.listener_body``; a body a listener began to read is read whole before the request
goes, and goes as it came. Inline, nothing can wait for a body: reading one raises, saying
so, and ``content`` raises ``ResponseNotRead`` as on the general path. An error handler
(``HTTPProxyHandler``'s ``error_handler``) makes the answer for middleware errors and upstream
failures (502/503/504) as on the general path.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections.abc import Awaitable, Callable, Generator
from typing import TYPE_CHECKING, Any, Final

from ferryman.client.transport import create_ssl_context
from ferryman.events import EventDispatcher
from ferryman.exceptions import InvalidURL
from ferryman.http.headers import Headers
from ferryman.http.models import Request, Response
from ferryman.http.streams import ByteStream
from ferryman.http.url import URL
from ferryman.proxy.context import ProxyContext
from ferryman.proxy.errors import ListenerBodyTooLarge, UpstreamError, error_response
from ferryman.proxy.events import EVENT_FILTER_PROXY_REQUEST, EVENT_FILTER_PROXY_RESPONSE
from ferryman.proxy.headers import header_pairs, upstream_pieces
from ferryman.proxy.middleware import Middleware, MiddlewareChain
from ferryman.proxy.relay_bodies import HeldBody, RequestBody
from ferryman.proxy.relay_events import (
    ANSWERED,
    CHANGED,
    HELD,
    RELAYED_BODY,
    UNCHANGED,
    RelayedBody,
    RelayFilterEvent,
    RelayFilters,
    RelayRequest,
    failure_response,
    send_answer,
    upstream_response,
)
from ferryman.proxy.upstream import UpstreamPool
from ferryman.server.protocol import origin_form

if TYPE_CHECKING:
    from ferryman.proxy.relay import Relay

__all__ = ["MAX_EXTRA_ORIGINS", "RelayHooks", "UpstreamRelayRequest", "is_inline"]

logger = logging.getLogger("ferryman.proxy")

#: Origins other than the endpoint's upstreams that middlewares may send requests to, each
#: with a connection pool of its own; a request to one more answers 502.
MAX_EXTRA_ORIGINS: Final = 32

_CRLF: Final = b"\r\n"
_SEPARATOR: Final = b": "
_HTTP11_LINE_END: Final = b" HTTP/1.1\r\n"
_CHUNKED_LINE: Final = b"Transfer-Encoding: chunked\r\n"
_FRAMING: Final = frozenset({b"content-length", b"transfer-encoding"})


def is_inline(middleware: Middleware) -> bool:
    """Whether ``middleware`` can run without an event loop: a generator function or a plain
    function (a callable of unknown kind counts as asynchronous, to be safe)."""
    if inspect.isasyncgenfunction(middleware) or inspect.iscoroutinefunction(middleware):
        return False
    if inspect.isgeneratorfunction(middleware):
        return True
    return inspect.isroutine(middleware) or isinstance(middleware, functools.partial)


class UpstreamRelayRequest(Request):
    """``ctx.upstream_request`` on the relay: the request the relay would send upstream, its
    URL and headers built on first access; ``changed`` says whether the head must be built
    from it rather than by the relay."""

    __slots__ = (
        "_built_url",
        "_event",
        "_headers",
        "_method",
        "_pool",
        "_raw",
        "_received_stream",
        "_relay",
        "_url",
    )

    def __init__(self, relay: Relay, event: RelayFilterEvent) -> None:  # (nothing built yet)
        self._relay = relay
        self._event = event
        self._pool = relay.pool
        self._method: str | None = None
        self._url: URL | None = None
        self._built_url: URL | None = None
        self._headers: Headers | None = None
        self._raw: list[tuple[bytes, bytes]] | None = None
        # The client's body stream, as on the general path (the one a listener may read), or
        # the bytes a request listener replaced it with.
        stream = event.request.stream
        if event.body_replaced and relay.body is not None:
            stream = ByteStream(b"".join(relay.body))
        elif not isinstance(stream, RelayedBody):
            stream = RELAYED_BODY
        self.stream = self._received_stream = stream
        self.extensions = {}

    @property
    def method(self) -> str:
        method = self._method
        if method is None:
            method = self._method = self._event.request.method
        return method

    @method.setter
    def method(self, value: str) -> None:
        self._method = value

    def target(self) -> bytes:
        """The upstream target before the pool's base path: the client's (or a request
        listener's), rewritten."""
        relay = self._relay
        target = self._event.upstream_target
        if target is None:
            target = relay.exchange.target
            if target[:1] != b"/":
                target = origin_form(target)
        rewrite = relay.endpoint.rewrite
        return target if rewrite is None else rewrite.apply(target)

    @property
    def url(self) -> URL:
        url = self._url
        if url is None:
            url = self._url = self._built_url = self._build_url()
        return url

    @url.setter
    def url(self, value: URL) -> None:
        if self._built_url is None:
            self._built_url = self._build_url()
        self._url = value

    def _build_url(self) -> URL:
        pool = self._pool
        path = (pool.base_path + self.target()).decode("latin-1")
        try:
            return URL(pool.origin + path)
        except InvalidURL:
            return URL(pool.origin + (pool.base_path.decode("latin-1") or "/"))

    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        """The header pairs the relay sends upstream (Host, forwarding headers, rules)."""
        raw = self._raw
        if raw is None:
            relay = self._relay
            endpoint = relay.endpoint
            exchange = relay.exchange
            request = self._event.request
            if type(request) is RelayRequest and request._headers is None:
                received: Any = exchange.headers
            else:
                received = request.headers.raw
            client = exchange.protocol.client
            pieces, _ = upstream_pieces(
                received,
                host=None if endpoint.preserve_host else self._pool.host_header,
                client_ip=None if client is None else client[0],
                scheme=exchange.protocol.scheme,
                rules=endpoint.request_rules,
            )
            raw = self._raw = header_pairs(pieces)
        return raw

    @property
    def headers(self) -> Headers:
        headers = self._headers
        if headers is None:
            headers = self._headers = Headers.from_raw(list(self.raw_headers()))
        return headers

    @headers.setter
    def headers(self, value: Headers) -> None:
        self.raw_headers()
        self._headers = value

    @property
    def url_changed(self) -> bool:
        return self._url is not None and self._url is not self._built_url

    @property
    def method_changed(self) -> bool:
        return self._method is not None and self._method != self._event.request.method

    @property
    def changed(self) -> bool:
        if self.method_changed:
            return True
        if self.url_changed or self.stream is not self._received_stream:
            return True
        headers = self._headers
        return headers is not None and headers._raw != self._raw

    def __repr__(self) -> str:
        return f"<Request [{self.method!r} upstream]>"


class MiddlewareRun:
    """One request's way through the middleware chain: what waits for its way out."""

    __slots__ = (
        "answer",
        "body",
        "ctx",
        "entered",
        "error_body",
        "head",
        "pending",
        "task",
        "upstream",
    )

    def __init__(self) -> None:
        self.ctx: ProxyContext | None = None
        #: With a task: the client's body as listeners may read it.
        self.body: RequestBody | None = None
        self.upstream: UpstreamRelayRequest | None = None
        #: Inline: the generators whose way out is still to run, by phase.
        self.entered: list[list[Generator[Any, Any, Any]]] = []
        #: Whether the ways out (and the response listeners) are still to run.
        self.pending = False
        #: With a task: the task, the relay's word on the answer (a future), the held head.
        self.task: asyncio.Task[None] | None = None
        self.answer: asyncio.Future[Response] | None = None
        self.head: tuple[int, bytes, bytes] | None = None
        #: The relay's own error body, sent as the relay sends it when nothing replaced it.
        self.error_body: bytes | None = None


class RelayHooks(RelayFilters):
    """The proxy filter events and the endpoint's middleware, on the relay (see the module)."""

    __slots__ = ("_extra", "_key", "_tasked", "tasks")

    def __init__(
        self,
        name: str,
        dispatcher: EventDispatcher,
        handler: Any,
        active: Callable[[], bool],
        listener_body: int | None = 1024 * 1024,
    ) -> None:
        super().__init__(name, dispatcher, handler, active, listener_body)
        self._key: tuple[Any, ...] = ()
        self._tasked = False
        self._extra: dict[str, UpstreamPool] = {}
        #: The per-request tasks running now (the server waits for them on shutdown).
        self.tasks: set[asyncio.Task[None]] = set()

    # -- which way ------------------------------------------------------------------------------

    def _chain(self) -> MiddlewareChain | None:
        chain = getattr(self.handler, "_middlewares", None)
        return chain if chain else None

    def needs_task(self) -> bool:
        """Whether this request needs a task: something asynchronous is registered."""
        dispatcher = self.dispatcher
        chain = self._chain()
        handler = self.handler
        key = (
            dispatcher.version,
            None if chain is None else chain.phases,
            getattr(handler, "error_handler", None),
        )
        if key != self._key:
            self._key = key
            error_handler = key[2]
            self._tasked = (
                not dispatcher.is_synchronous(EVENT_FILTER_PROXY_REQUEST)
                or not dispatcher.is_synchronous(EVENT_FILTER_PROXY_RESPONSE)
                or (chain is not None and not all(map(is_inline, _middlewares(chain))))
                or (error_handler is not None and inspect.iscoroutinefunction(error_handler))
            )
        return self._tasked

    # -- the way in -----------------------------------------------------------------------------

    def filter_request(self, relay: Relay) -> bool:
        chain = self._chain()
        if self.needs_task():
            self._start_task(relay, chain)
            return False
        if not super().filter_request(relay):
            return False
        if chain is None:
            return True
        return self._enter_inline(relay, chain)

    def _enter_inline(self, relay: Relay, chain: MiddlewareChain) -> bool:
        event = relay.filter_event
        assert event is not None
        run = event.run = MiddlewareRun()
        ctx = self._context(relay, event, run)
        run.pending = True
        error = _enter_inline(chain, ctx, run.entered)
        if error is not None:
            self._fail_inline(error, ctx)
        if ctx.response is not None:  # (a short-circuit, or the error's answer)
            self.finish_with(relay, ctx.response)
            return False
        try:
            self._take_upstream_request(relay, run)
        except Exception as exc:
            self.finish_with(relay, self._fail_inline(exc, ctx))
            return False
        return True

    def _context(self, relay: Relay, event: RelayFilterEvent, run: MiddlewareRun) -> ProxyContext:
        ctx = event.context
        if ctx is None:  # (a handler without a context: one for this request alone)
            ctx = event._context = ProxyContext(relay.pool.origin).for_request(
                event.request, self.name
            )
        ctx.request = event.request
        ctx.response = None
        run.ctx = ctx
        run.upstream = upstream = UpstreamRelayRequest(relay, event)
        ctx.upstream_request = upstream
        return ctx

    def _take_upstream_request(self, relay: Relay, run: MiddlewareRun) -> None:
        """What the ways in left in ``ctx.upstream_request`` becomes the relay's to send."""
        ctx = run.ctx
        upstream = run.upstream
        assert ctx is not None and upstream is not None
        request = ctx.upstream_request
        if request is None:
            raise RuntimeError("a proxy middleware removed ctx.upstream_request")
        if request is not upstream:
            raise TypeError(
                "on the fast relay a middleware changes ctx.upstream_request (its method, URL, "
                "headers or body) rather than replacing it"
            )
        if not upstream.changed:
            return
        event = relay.filter_event
        assert event is not None
        stream = upstream.stream
        if stream is not upstream._received_stream and not isinstance(stream, RelayedBody):
            if not isinstance(stream, ByteStream):
                raise TypeError(
                    "a proxy middleware on the fast relay may replace the upstream request's "
                    "body with bytes only"
                )
            event.body_replaced = True
            relay.replace_body(stream.content)
        if upstream.url_changed:
            url = upstream.url
            origin = f"{url.scheme}://{url.host_header.decode('latin-1')}"
            if origin != relay.pool.origin:
                relay.pool = self._pool_for(relay, url, origin)
            relay.tried = len(relay.endpoint.pools)  # (its URL: to that host only)
        relay.head_only = upstream.method == "HEAD"
        if event.upstream_target is None:
            event.upstream_target = relay.exchange.target  # (attach asks request_head then)

    def _pool_for(self, relay: Relay, url: URL, origin: str) -> UpstreamPool:
        for known in relay.endpoint.pools:
            if known.origin == origin:
                return known
        pool = self._extra.get(origin)
        if pool is None:
            if url.scheme not in ("http", "https") or not url.host:
                raise ValueError(f"a middleware sent the request to {str(url)!r}: not http(s)")
            if len(self._extra) >= MAX_EXTRA_ORIGINS:
                raise RuntimeError(
                    f"middlewares sent requests to more than {MAX_EXTRA_ORIGINS} other origins"
                )
            first = relay.endpoint.pools[0]
            context = create_ssl_context(True) if url.scheme == "https" else None
            pool = UpstreamPool(url.copy_with(raw_path=b"/"), first.loop, context)
            pool.response_rules = first.response_rules
            pool.pool_timeout = first.pool_timeout
            pool.max_head = first.max_head
            pool.max_headers = first.max_headers
            self._extra[origin] = pool
        return pool

    def request_head(self, relay: Relay, pool: UpstreamPool) -> bytes:
        event = relay.filter_event
        assert event is not None
        run = event.run
        upstream = None if run is None else run.upstream
        if upstream is None or not upstream.changed:
            return super().request_head(relay, pool)
        return self._changed_head(relay, pool, upstream)

    def _changed_head(
        self, relay: Relay, pool: UpstreamPool, upstream: UpstreamRelayRequest
    ) -> bytes:
        """The head of a request a middleware changed: as it left it, framed by the relay."""
        endpoint = relay.endpoint
        exchange = relay.exchange
        event = relay.filter_event
        assert event is not None
        if upstream.url_changed:
            target = upstream.url.raw_path or b"/"
            new_host = upstream.url.host_header
        else:
            target = pool.base_path + upstream.target()
            new_host = pool.host_header
        headers = upstream._headers
        raw = upstream.raw_headers() if headers is None else headers.raw
        old_host = upstream._pool.host_header
        pieces = [upstream.method.encode("ascii"), b" ", target, _HTTP11_LINE_END]
        for name, value in raw:
            lower = name.lower()
            if lower in _FRAMING:
                continue  # (the relay frames the body it sends)
            if lower == b"host" and value == old_host and not endpoint.preserve_host:
                value = new_host  # (the upstream it goes to now: a retry, another URL)
            pieces += (name, _SEPARATOR, value, _CRLF)
        if event.body_replaced:
            pieces.append(b"Content-Length: %d\r\n" % relay.body_size)
        elif exchange.content_length is not None:
            pieces.append(b"Content-Length: %d\r\n" % exchange.content_length)
        elif exchange.chunked:
            pieces.append(_CHUNKED_LINE)
        pieces.append(_CRLF)
        return b"".join(pieces)

    # -- the way out ----------------------------------------------------------------------------

    def filter_response(self, relay: Relay, status: int, reason: bytes, lines: bytes) -> int:
        event = relay.filter_event
        assert event is not None
        run = event.run
        if run is None or not run.pending:
            return super().filter_response(relay, status, reason, lines)
        upstream = upstream_response(event, status, reason, lines)
        if run.task is not None:
            # (its body, held with the head, may be read by the ways out and listeners)
            upstream.stream = HeldBody(relay, self.listener_body)
            run.head = (status, reason, lines)
            _resolve(run, upstream)
            return HELD
        answer = self._leave_inline(run, upstream)
        event.response = answer
        if not event.is_propagation_stopped and self.dispatcher.has_listeners(
            EVENT_FILTER_PROXY_RESPONSE
        ):
            answer = self._dispatch_response(event)
        return self.outcome(relay, upstream, answer, status, reason, lines)

    def finish_with(self, relay: Relay, response: Response, error: bytes | None = None) -> None:
        event = relay.filter_event
        assert event is not None
        run = event.run
        if run is not None and run.pending:
            if run.task is not None:  # (the task makes the answer)
                run.error_body = error
                _resolve(run, response)
                return
            answer = response
            if error is not None:
                answer = self._upstream_failed_inline(event, answer)
            answer = self._leave_inline(run, answer)
        elif error is not None:
            answer = self._upstream_failed_inline(event, response)
        else:
            answer = response
        super().finish_with(relay, answer, error if answer is response else None)

    def _leave_inline(self, run: MiddlewareRun, response: Response) -> Response:
        """The ways out, descending, with ``response`` as ``ctx.response``: the answer."""
        ctx = run.ctx
        assert ctx is not None
        run.pending = False
        ctx.response = response
        _leave_inline(run.entered, ctx, self._fail_inline)
        answer: Response | None = getattr(ctx, "response", None)  # (a way out may clear it)
        if answer is None:
            return self._fail_inline(RuntimeError("a proxy middleware removed the response"), ctx)
        return answer

    def _fail_inline(self, exc: Exception, ctx: ProxyContext) -> Response:
        """``HTTPProxyHandler._fail`` for an error raised by a middleware, without a loop: the
        answer (also left in ``ctx.response``)."""
        logger.error("endpoint %s: error while proxying %s", self.name, ctx.request, exc_info=exc)
        answer = _replaced(ctx.response, self._handled(exc, ctx) or error_response(500))
        ctx.response = answer
        return answer

    def _upstream_failed_inline(self, event: RelayFilterEvent, response: Response) -> Response:
        """The relay's 502/503/504: the error handler's answer instead, if it gives one."""
        if getattr(self.handler, "error_handler", None) is None:
            return response
        ctx = event.context
        if ctx is None:
            return response
        ctx.response = response
        return self._handled(_upstream_error(response), ctx) or response

    def _handled(self, exc: Exception, ctx: ProxyContext) -> Response | None:
        handler = getattr(self.handler, "error_handler", None)
        if handler is None:
            return None
        try:
            answer = handler(exc, ctx)
            if inspect.isawaitable(answer):
                if inspect.iscoroutine(answer):
                    answer.close()
                raise TypeError("an error handler returned an awaitable: make it async def")
        except Exception:
            logger.exception("endpoint %s: the error handler failed", self.name)
            return error_response(500)
        return answer if isinstance(answer, Response) else None

    # -- with a task ------------------------------------------------------------------------------

    def _start_task(self, relay: Relay, chain: MiddlewareChain | None) -> None:
        context = getattr(self.handler, "context", None)
        request = RelayRequest(relay.exchange)
        body = request.stream = RequestBody(relay, self.listener_body)
        event = RelayFilterEvent(self.name, request, context)
        relay.filter_event = event
        run = event.run = MiddlewareRun()
        run.body = body
        run.pending = True
        run.answer = asyncio.get_running_loop().create_future()
        exchange = relay.exchange
        paused = not exchange.body_complete
        if paused:
            exchange.pause_reading()  # (the body waits in the socket while the task decides)
        task = run.task = asyncio.ensure_future(self._serve(relay, event, run, chain, paused))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def client_lost(self, relay: Relay) -> None:
        event = relay.filter_event
        run = None if event is None else event.run
        if run is not None and run.task is not None and not run.task.done():
            run.task.cancel()

    async def _serve(
        self,
        relay: Relay,
        event: RelayFilterEvent,
        run: MiddlewareRun,
        chain: MiddlewareChain | None,
        paused: bool,
    ) -> None:
        """One request, events and middleware awaited: the general path's ``handle``."""
        dispatcher = self.dispatcher
        exchange = relay.exchange
        try:
            if dispatcher.has_listeners(EVENT_FILTER_PROXY_REQUEST):
                try:
                    await dispatcher.adispatch(EVENT_FILTER_PROXY_REQUEST, event)
                except Exception as exc:
                    self._failed(exc, event)
            response = event.response
            if response is None:
                request = event.request
                if type(request) is not RelayRequest or request.changed:
                    try:
                        self._changed_request(relay, request)  # (a 400 lands in run.answer)
                    except Exception as exc:
                        self._failed(exc, event)
                        response = event.response
                    assert run.answer is not None
                    if response is None and run.answer.done():
                        response = run.answer.result()
            if response is None:
                response = await self._around_upstream(relay, event, run, chain, paused)
            else:
                run.pending = False
            event.response = response
            if event._context is not None:
                event._context.response = response
            answer = await self._afilter_response(event, response)
            self._deliver(relay, run, response, answer)
        except asyncio.CancelledError:
            relay.abandon()
            raise
        except Exception:
            logger.exception("endpoint %s: the relay's middleware task failed", self.name)
            relay.abandon()
            exchange.abort()
        finally:
            if paused and not exchange.finished:
                exchange.resume_reading()

    async def _around_upstream(
        self,
        relay: Relay,
        event: RelayFilterEvent,
        run: MiddlewareRun,
        chain: MiddlewareChain | None,
        paused: bool,
    ) -> Response:
        """The ways in, the relay's upstream call, the ways out: the answer they leave."""
        answer = run.answer
        assert answer is not None

        async def upstream_call(ctx: ProxyContext | None) -> None:
            if ctx is not None:
                try:
                    self._take_upstream_request(relay, run)
                except Exception as exc:
                    await self._afail(exc, ctx)
                    return
            refusal = await self._read_body(relay, event, run)
            if refusal is not None:  # (what a listener began to read cannot go upstream)
                run.pending = False
                if ctx is not None:
                    ctx.response = refusal
                _resolve(run, refusal)
                return
            if paused:
                relay.exchange.resume_reading()
            relay.proceed()
            response = await answer
            run.pending = False
            if ctx is not None:
                if run.error_body is not None:
                    handled = await self._ahandled(_upstream_error(response), ctx)
                    if handled is not None:
                        response = handled
                ctx.response = response

        if chain is None:
            await upstream_call(None)
            response = await answer
            ctx = event.context
            if run.error_body is not None and ctx is not None:
                ctx.response = response
                response = await self._ahandled(_upstream_error(response), ctx) or response
            return response
        ctx = self._context(relay, event, run)
        await chain.run(ctx, upstream_call, self._afail)
        run.pending = False
        left: Response | None = getattr(ctx, "response", None)  # (a way out may clear it)
        if left is None:
            await self._afail(RuntimeError("a proxy middleware removed the response"), ctx)
            left = ctx.response
            assert left is not None
        return left

    async def _read_body(
        self, relay: Relay, event: RelayFilterEvent, run: MiddlewareRun
    ) -> Response | None:
        """A body a listener or middleware began to read is read to its end (bounded) and
        goes upstream whole, unless one replaced it; the answer when it cannot go (a 413, or a
        400 when the client broke it off)."""
        body = run.body
        if body is None or not body.started:
            return None  # (not read: it streams, as without listeners)
        try:
            await body.aread()
        except ListenerBodyTooLarge as exc:
            return error_response(413, exc.message)
        except Exception:
            return error_response(400, "the request body ended early")
        if not event.body_replaced and relay.exchange.has_body:
            body.hand_over()
        return None

    async def _afail(self, exc: Exception, ctx: ProxyContext) -> None:
        default = failure_response(exc, self.name, ctx.request)
        answer = await self._ahandled(exc, ctx)
        ctx.response = _replaced(ctx.response, answer or default)

    async def _ahandled(self, exc: Exception, ctx: ProxyContext) -> Response | None:
        handler = getattr(self.handler, "error_handler", None)
        if handler is None:
            return None
        try:
            answer = handler(exc, ctx)
            if inspect.isawaitable(answer):
                answer = await answer
        except Exception:
            logger.exception("endpoint %s: the error handler failed", self.name)
            return error_response(500)
        return answer if isinstance(answer, Response) else None

    async def _afilter_response(self, event: RelayFilterEvent, response: Response) -> Response:
        """``proxy.filter.response``, awaited: the answer it leaves."""
        dispatcher = self.dispatcher
        if event.is_propagation_stopped or not dispatcher.has_listeners(
            EVENT_FILTER_PROXY_RESPONSE
        ):
            return response
        try:
            await dispatcher.adispatch(EVENT_FILTER_PROXY_RESPONSE, event)
        except Exception as exc:
            return self._response_filtered(event, response, exc)
        return self._response_filtered(event, response, None)

    def _deliver(
        self, relay: Relay, run: MiddlewareRun, response: Response, answer: Response
    ) -> None:
        """Send the task's answer: the held upstream answer (as it is, changed or replaced),
        or an answer made without it."""
        head = run.head
        upstream = None if head is None or run.answer is None else run.answer.result()
        if head is not None and upstream is not None:
            status, reason, lines = head
            outcome = self.outcome(relay, upstream, answer, status, reason, lines)
            if outcome == ANSWERED:
                # (a body read past the limit is not drained: its connection is closed)
                stream = upstream.stream
                relay.drop_held(not (isinstance(stream, HeldBody) and stream.overflowed))
                return
            if outcome == CHANGED:
                event = relay.filter_event
                assert event is not None and event.filtered_head is not None
                status, reason, lines = event.filtered_head
            assert outcome in (UNCHANGED, CHANGED)
            relay.resume_held(status, reason, lines)
            return
        error = run.error_body
        relays_own = run.answer is not None and run.answer.done() and answer is run.answer.result()
        if relays_own and error is not None:
            relay.exchange.send_error(response.status_code, error)
        else:
            send_answer(relay.exchange, answer, relay.head_only)

    def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        for pool in self._extra.values():
            pool.close()
        self._extra.clear()


def _middlewares(chain: MiddlewareChain) -> list[Middleware]:
    return [middleware for _, middlewares in chain.phases for middleware in middlewares]


def _resolve(run: MiddlewareRun, response: Response) -> None:
    answer = run.answer
    if answer is not None and not answer.done():
        answer.set_result(response)


def _upstream_error(response: Response) -> UpstreamError:
    """The relay's failure answer as the exception an error handler gets on the general path."""
    content = response.stream.content if isinstance(response.stream, ByteStream) else b""
    message = response.reason_phrase
    try:
        import json

        message = str(json.loads(content)["message"])
    except Exception:
        pass
    return UpstreamError(response.status_code, message)


def _replaced(previous: Response | None, answer: Response) -> Response:
    """``answer``, after closing ``previous`` if it may hold something (a relayed body)."""
    if (
        previous is not None
        and previous is not answer
        and not isinstance(previous.stream, ByteStream)
        and not isinstance(previous.stream, RelayedBody)
    ):
        task = asyncio.ensure_future(previous.aclose())
        task.add_done_callback(lambda done: done.exception())
    return answer


# -- the chain without an event loop --------------------------------------------------------------


def _enter_inline(
    chain: MiddlewareChain, ctx: ProxyContext, entered: list[list[Generator[Any, Any, Any]]]
) -> Exception | None:
    """The ways in, ascending, as ``MiddlewareChain.run`` runs them; the first error."""
    for _, middlewares in chain.phases:
        pending: list[Generator[Any, Any, Any]] = []
        error: Exception | None = None
        for middleware in middlewares:
            try:
                result = middleware(ctx)
                if inspect.isgenerator(result):
                    try:
                        next(result)
                    except StopIteration:
                        continue
                    pending.append(result)
                elif inspect.isawaitable(result) or inspect.isasyncgen(result):
                    _discard(result)
                    raise TypeError(
                        f"the proxy middleware {middleware!r} returned {result!r}: "
                        "an asynchronous middleware is declared async def"
                    )
            except Exception as exc:
                error = error or exc
        entered.append(pending)
        if error is not None:
            return error
        if ctx.response is not None:
            return None
    return None


def _leave_inline(
    entered: list[list[Generator[Any, Any, Any]]],
    ctx: ProxyContext,
    on_error: Callable[[Exception, ProxyContext], object],
) -> None:
    """The ways out, descending; each phase's first error goes to ``on_error``."""
    while entered:
        error: Exception | None = None
        for step in entered[-1]:
            try:
                next(step)
            except StopIteration:
                continue
            except Exception as exc:
                error = error or exc
                continue
            step.close()
            name = getattr(getattr(step, "gi_code", None), "co_qualname", step)
            error = error or RuntimeError(
                f"the proxy middleware {name} yielded more than once; it must yield exactly once"
            )
        entered.pop()
        if error is not None:
            on_error(error, ctx)


def _discard(result: object) -> None:
    close = getattr(result, "close", None)
    if inspect.iscoroutine(result) and callable(close):
        close()
    elif isinstance(result, Awaitable):
        asyncio.ensure_future(result).cancel()
