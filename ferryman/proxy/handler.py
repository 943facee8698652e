"""``HTTPProxyHandler``: relays the requests of one endpoint to its upstream, the general way.

This is the slow, general path: a kernel controller (``await handler.handle(request)``) and a
plain ASGI app (``await handler(scope, receive, send)``, which also relays WebSockets). Every
hook runs here; the fast path (:mod:`ferryman.proxy.relay`) serves an endpoint only when nothing
could tell the difference, which :attr:`HTTPProxyHandler.is_plain` is part of deciding.

The order of one transaction served by the kernel, HARP's order with aiorp's middleware inside::

    core.request                 (kernel)  the request arrived
    core.controller              (kernel)  this handler's ``handle`` was chosen
    proxy.filter.request         a listener may change/replace event.request, or answer it
    -- the upstream request is prepared from event.request (rewrite, header rules, forwarding)
    middlewares, way in          phases ascending; a middleware may answer (short-circuit)
    -- the endpoint's HTTP cache: a hit answers here (general_cache), nothing below runs
    http_client.filter.request   (the system's http client) may forge the upstream's answer
    -- the upstream call (the endpoint's balancer, breakers and retries: general_resilience;
       without them, round robin and a refused connection tries the next upstream)
    http_client.filter.response  may replace the upstream's answer
    -- the response headers are filtered (hop-by-hop, Via, rules); the body stays streamed
    middlewares, way out         phases descending
    proxy.filter.response        same event instance; may replace event.response
    core.response                (kernel)  the answer is about to be sent

Why this order: the proxy events belong to the system (storage, caches, policies shared by
every endpoint) and see the transaction as the client sees it, so they wrap everything the
endpoint does; the middlewares belong to the endpoint and sit between those and the upstream;
the http client events belong to the outbound call itself. A response forged on
``proxy.filter.request`` skips the middlewares and the upstream call; one set by a middleware
skips the rest of the way in and the upstream call.

Errors never escape as tracebacks to the client: an upstream that refuses or is unreachable
gives 502, one that is too slow 504, no free connection in time 503 (JSON ``{"status",
"message"}`` from :mod:`ferryman.proxy.errors`, the fast relay's words exactly), and an
exception in a middleware or a proxy event listener a logged JSON 500. Once the upstream's
answer has begun, a failure cuts the client's connection instead (no status can be sent any
more, and a chunked body gets no terminator), and the request is never sent again. Before
that, a request goes again as the endpoint's ``retry`` settings say, exactly as on the fast
relay (:mod:`ferryman.proxy.general_resilience`); the http client itself sends a request
twice only if not one byte of its answer arrived and, unless it is idempotent, it provably
never left. No upstream up (health checks, open breakers): 503, none tried. Upstream
failures are logged in words, at most one line per kind and upstream per interval
(:mod:`ferryman.proxy.logs`).

Served by :class:`~ferryman.proxy.server.ProxyServer`, the handler shares its endpoint's HTTP
cache and upstream state with the fast relay (:meth:`HTTPProxyHandler.share_endpoint_state`);
served on its own (another ASGI server), it has neither: uncached, plain round robin, a
refused connection tries the next upstream.

``error_handler(error, ctx)`` (plain or ``async``) replaces those answers: it gets the
:class:`~ferryman.proxy.errors.UpstreamError` (its ``__cause__`` the client's exception) or the
exception raised, and returns the response to send (``None``: the default).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, Final, TypeAlias, TypeVar

from ferryman.client.config import TimeoutTypes, to_timeout
from ferryman.client.session import AsyncClient
from ferryman.events import EventDispatcher
from ferryman.exceptions import (
    ConnectError,
    ConnectTimeout,
    InvalidURL,
    ReadError,
    ReadTimeout,
    TransportError,
)
from ferryman.http.headers import Headers
from ferryman.http.models import Request, Response
from ferryman.http.streams import EMPTY_STREAM, AsyncByteStream, ByteStream, SyncByteStream
from ferryman.http.url import URL
from ferryman.proxy.context import ProxyContext
from ferryman.proxy.errors import (
    FOREIGN_CODING,
    UNAVAILABLE,
    UpstreamError,
    broken_answer,
    error_response,
    no_upstream_available,
    truncated_answer,
    upstream_error,
)
from ferryman.proxy.events import (
    EVENT_FILTER_PROXY_REQUEST,
    EVENT_FILTER_PROXY_RESPONSE,
    ProxyFilterEvent,
)
from ferryman.proxy.general_cache import CACHE_ANSWER, GeneralCache
from ferryman.proxy.general_resilience import body_failed, first_upstream, send_resilient
from ferryman.proxy.headers import (
    NO_RULES,
    HeaderRules,
    Locate,
    downstream_headers,
    header_pairs,
    only_chunked,
    upstream_pieces,
)
from ferryman.proxy.logs import report_upstream, upstream_log
from ferryman.proxy.middleware import (
    Middleware,
    MiddlewareChain,
    MiddlewarePhase,
    ProxyMiddlewareDef,
)
from ferryman.proxy.redirects import UpstreamRedirects, client_host
from ferryman.proxy.relay_cache import RelayCache
from ferryman.proxy.relay_resilience import EndpointResilience
from ferryman.proxy.rewrite import Rewrite
from ferryman.proxy.settings import EndpointSettings, RequestOptions, TimeoutSettings
from ferryman.proxy.targets import RefusedTarget, target_escapes
from ferryman.proxy.transactions import Transaction
from ferryman.proxy.websocket import relay_websocket
from ferryman.server.asgi import AnswerAborted, ReceiveStream, request_from_scope, send_response
from ferryman.server.controllers import Receive, Scope, Send

__all__ = ["ErrorHandler", "HTTPProxyHandler"]

logger = logging.getLogger("ferryman.proxy")

#: ``error_handler(error, ctx) -> Response | None``, plain or ``async``.
ErrorHandler: TypeAlias = Callable[
    [Exception, ProxyContext], "Response | Awaitable[Response | None] | None"
]
M = TypeVar("M", bound=Middleware)

#: What the endpoint allows an upstream when the caller says nothing (the settings' defaults).
DEFAULT_TIMEOUT: Final = TimeoutSettings().to_timeout()
_METHODS_WITH_BODY: Final = frozenset({"POST", "PUT", "PATCH"})
_HTTP1: Final = frozenset({"1.0", "1.1"})
_URL_CACHE_SIZE: Final = 1024
_FORWARDED_SCHEMES: Final = {"ws": "http", "wss": "https"}
_TE: Final = b"transfer-encoding"


class HTTPProxyHandler:
    """Relays requests to ``context``'s upstream(s); see the module documentation.

    ``request_options`` are passed to ``AsyncClient.send`` for every upstream call (``http2``,
    ``verify``, ``allow_redirects``...). ``rewrite`` changes the path prefix, ``request_rules``
    and ``response_rules`` add and remove headers, ``preserve_host`` sends the client's ``Host``
    upstream, ``timeout`` bounds each upstream call, ``dispatcher`` receives the proxy filter
    events (and the http client's, through the default session), ``name`` is the endpoint's,
    ``mount`` its path prefix when it shares a port (a target may not climb above it),
    ``response_limits`` the most bytes and header fields an upstream answer's head may have
    (``(head, headers)``, as the endpoint's ``limits`` say; a 502 past them), and
    ``request_buffer`` how many request body bytes are read before the upstream is called, as
    the fast relay does: a slow client then holds no upstream connection while it sends, and
    a body read whole can go again on another connection.
    """

    def __init__(
        self,
        context: ProxyContext | None = None,
        *,
        ctx: ProxyContext | None = None,
        request_options: Mapping[str, Any] | RequestOptions | None = None,
        error_handler: ErrorHandler | None = None,
        rewrite: Rewrite | None = None,
        name: str = "proxy",
        request_rules: HeaderRules = NO_RULES,
        response_rules: HeaderRules = NO_RULES,
        preserve_host: bool = False,
        timeout: TimeoutTypes = DEFAULT_TIMEOUT,
        dispatcher: EventDispatcher | None = None,
        mount: str | None = None,
        response_limits: tuple[int | None, int | None] | None = None,
        request_buffer: int = 0,
    ) -> None:
        if context is None:
            context = ctx  # aiorp's spelling
        elif ctx is not None:
            raise TypeError("give the proxy context once: context= or ctx=, not both")
        if context is None:
            raise TypeError("HTTPProxyHandler needs a ProxyContext (context=...)")
        # Checked as a configuration's are (names and values: a ValueError now, not a 500
        # for each request); the method, URL, headers and body come from the request.
        if not isinstance(request_options, RequestOptions):
            request_options = RequestOptions.model_validate(dict(request_options or {}))
        options = request_options.to_options()
        self._has_options = bool(options)
        options.setdefault("decompress", False)  # the body goes out with its Content-Encoding
        self.context = context
        self.request_options = options
        self.error_handler = error_handler
        self.rewrite = rewrite
        self.name = name
        self.request_rules = request_rules
        self.response_rules = response_rules
        self.preserve_host = preserve_host
        self.timeout = to_timeout(timeout)
        #: The most bytes and header fields an upstream answer's head may have (502 past them).
        self.response_limits = response_limits
        #: Request body bytes read before the upstream call starts (0: none, the body streams).
        self.request_buffer = request_buffer
        self.dispatcher = dispatcher
        if dispatcher is not None and context.dispatcher is None:
            context.dispatcher = dispatcher  # the default session fires the client events
        self._middlewares = MiddlewareChain()
        self._next = 0
        self._urls: dict[tuple[int, bytes], URL] = {}
        self._scope_urls: dict[tuple[object, ...], URL] = {}
        # The mount a target may not climb above; by upstream index,
        # which URLs in answers are that upstream's (built when first needed)
        self.mount = mount.rstrip("/").encode("ascii") if mount else b""
        self._redirects: dict[int, UpstreamRedirects] = {}
        #: The endpoint's cache and upstream state, shared with its fast relay
        #: (:meth:`share_endpoint_state`; ``None``: uncached, plain round robin).
        self._cache: GeneralCache | None = None
        self._resilience: EndpointResilience | None = None

    @classmethod
    def from_settings(
        cls,
        settings: EndpointSettings,
        *,
        dispatcher: EventDispatcher | None = None,
        session: AsyncClient | None = None,
    ) -> HTTPProxyHandler:
        """The handler an endpoint of the configuration describes; ``session`` is attached
        (the system's http client), else the context builds its default one."""
        context = ProxyContext(settings.upstreams, state=settings.state, dispatcher=dispatcher)
        if session is not None:
            context.attach_session(session)
        return cls(
            context,
            request_options=settings.request_options,
            rewrite=None if settings.rewrite is None else settings.rewrite.to_rewrite(),
            name=settings.name,
            request_rules=settings.request_rules(),
            response_rules=settings.response_rules(),
            preserve_host=settings.preserve_host,
            timeout=settings.timeout.to_timeout(),
            dispatcher=dispatcher,
            mount=settings.path,
            response_limits=(settings.limits.response_head, settings.limits.response_headers),
            request_buffer=settings.request_buffer,
        )

    # -- configuration ----------------------------------------------------------------------------

    def share_endpoint_state(
        self, cache: RelayCache | None, resilience: EndpointResilience | None
    ) -> None:
        """Serve with the endpoint's HTTP cache and its balancer, breakers and retries: the
        very objects its fast relay uses (the proxy server hands them over as it builds the
        relay), so that both paths see one state (see :mod:`ferryman.proxy.general_cache` and
        :mod:`ferryman.proxy.general_resilience`). Their upstreams must be this handler's, in
        its order."""
        if resilience is not None:
            origins = [upstream.origin for upstream in resilience.balancer.upstreams]
            if origins != [_origin(url) for url in self.context.urls]:
                raise ValueError(
                    f"endpoint {self.name!r}: the resilience state names the upstreams "
                    f"{origins}, the handler {[str(url) for url in self.context.urls]}"
                )
        self._cache = None if cache is None else GeneralCache(cache)
        self._resilience = resilience

    @property
    def upstreams(self) -> tuple[URL, ...]:
        """The upstream base URLs, in round-robin order."""
        return self.context.urls

    @property
    def is_plain(self) -> bool:
        """True when the handler only relays: no middleware, no error handler, no request
        options and the default session, so a relay that copies the wire behaviour (the fast
        path) cannot be told apart. Events are the caller's to check (the dispatcher's)."""
        return (
            not self._middlewares.phases
            and self.error_handler is None
            and not self._has_options
            and self.context.session_factory is None
        )

    @property
    def is_relayable(self) -> bool:
        """True when the fast relay can make this handler's upstream calls itself, running its
        middleware and error handler around them (``ferryman.proxy.relay_middleware``): no
        request options and the default session, which only the http client would honour."""
        return not self._has_options and self.context.session_factory is None

    @property
    def middlewares(self) -> list[ProxyMiddlewareDef]:
        return self._middlewares.definitions

    def add_middleware(
        self, definition: ProxyMiddlewareDef | int, middleware: Middleware | None = None
    ) -> None:
        """``add_middleware(ProxyMiddlewareDef(phase=..., middleware=fn))``, or
        ``add_middleware(phase, fn)``."""
        if not isinstance(definition, ProxyMiddlewareDef):
            if middleware is None:
                raise TypeError("add_middleware(phase, middleware) needs the middleware")
            definition = ProxyMiddlewareDef(definition, middleware)
        elif middleware is not None:
            raise TypeError("give the middleware in the ProxyMiddlewareDef or apart, not both")
        self._middlewares.add(definition)

    def client_edge(self, middleware: M) -> M:
        """Decorator: a middleware of the ``CLIENT_EDGE`` phase (0, outermost)."""
        self.add_middleware(ProxyMiddlewareDef(MiddlewarePhase.CLIENT_EDGE, middleware))
        return middleware

    def proxy(self, middleware: M) -> M:
        """Decorator: a middleware of the ``PROXY`` phase (500)."""
        self.add_middleware(ProxyMiddlewareDef(MiddlewarePhase.PROXY, middleware))
        return middleware

    def target_edge(self, middleware: M) -> M:
        """Decorator: a middleware of the ``TARGET_EDGE`` phase (1000, nearest the upstream)."""
        self.add_middleware(ProxyMiddlewareDef(MiddlewarePhase.TARGET_EDGE, middleware))
        return middleware

    async def aclose(self) -> None:
        """Close the session, if the context built it (an attached one stays open)."""
        await self.context.aclose()

    # -- one transaction ----------------------------------------------------------------------

    async def handle(self, request: Request) -> Response:
        """Answer ``request`` through the upstream: the kernel's controller for the endpoint."""
        ctx = self.context.for_request(request, self.name)
        received_url = request.url
        dispatcher = self.dispatcher
        event: ProxyFilterEvent | None = None
        if dispatcher is not None and (
            dispatcher.has_listeners(EVENT_FILTER_PROXY_REQUEST)
            or dispatcher.has_listeners(EVENT_FILTER_PROXY_RESPONSE)
        ):
            event = ProxyFilterEvent(self.name, request, ctx)
            try:
                await dispatcher.adispatch(EVENT_FILTER_PROXY_REQUEST, event)
            except Exception as exc:
                await self._fail(exc, ctx)
            else:
                ctx.request = event.request
                ctx.response = event.response
        if ctx.response is None:
            try:
                self._prepare(ctx, received_url)
            except RefusedTarget as exc:  # the client's error: no handler
                ctx.response = error_response(400, exc.message)
            except Exception as exc:
                await self._fail(exc, ctx)
            else:
                if self._middlewares:
                    await self._middlewares.run(ctx, self._forward, self._fail)
                else:
                    await self._forward(ctx)
        response = ctx.response
        if response is None:
            await self._fail(RuntimeError("a proxy middleware removed the response"), ctx)
            response = ctx.response
            assert response is not None
        if event is not None and dispatcher is not None:
            event.response = response
            try:
                filtered = await dispatcher.adispatch(EVENT_FILTER_PROXY_RESPONSE, event)
            except Exception as exc:
                if event.response is not None and event.response is not response:
                    await event.response.aclose()
                await self._fail(exc, ctx)
                return ctx.response or error_response(500)
            answer = filtered.response
            if answer is None:
                await self._fail(
                    RuntimeError("a proxy.filter.response listener removed the response"), ctx
                )
                return ctx.response or error_response(500)
            response = answer
        return response

    def _prepare(self, ctx: ProxyContext, received_url: URL) -> None:
        """Build ``ctx.upstream_request`` from ``ctx.request`` for the next upstream.

        The target keeps the client's bytes (the ASGI ``raw_path``) unless a listener gave the
        request another URL (``received_url`` is the one it came with): then that URL's."""
        request = ctx.request
        assert request is not None
        urls = self.context.urls
        index = self._next
        self._next = (index + 1) % len(urls)
        scope = request.extensions.get("asgi_scope")
        if request.url is received_url:
            target = _raw_target(request, scope)
        else:
            target = request.url.raw_path
        if target_escapes(target, self.rewrite, self.mount):
            raise RefusedTarget()
        client_target = target  # (the cache's key, as the relay's: before the rewrite)
        if self.rewrite is not None:
            target = self.rewrite.apply(target)
        url, wire_target = self._upstream_url(index, target)
        client = scope.get("client") if scope is not None else None
        pieces, _ = upstream_pieces(
            request.headers.raw,
            host=None if self.preserve_host else url.host_header,
            client_ip=client[0] if client else None,
            scheme=_FORWARDED_SCHEMES.get(request.url.scheme, request.url.scheme),
            rules=self.request_rules,
        )
        length = _body_length(request, scope)
        upstream = Request.from_parts(
            request.method,
            url,
            Headers.from_raw(header_pairs(pieces)),
            # A bodiless request is not read at all: the ASGI receive channel stays free for
            # the disconnect watch.
            request.stream if length != 0 else EMPTY_STREAM,
            length,
            {"timeout": self.timeout.as_dict(), "target": wire_target},
        )
        if self.response_limits is not None:
            upstream.extensions["response_limits"] = self.response_limits
        ctx.upstream_request = upstream
        ctx._prepared = (url, index, target, client_target)

    def _upstream_url(self, index: int, target: bytes) -> tuple[URL, bytes]:
        """The upstream URL for a raw target, and the target's bytes as they go on the wire."""
        base = self.context.urls[index]
        prefix = base.raw_path.rstrip(b"/")
        wire = prefix + target if target.startswith(b"/") else target
        key = (index, wire)
        url = self._urls.get(key)
        if url is None:
            try:
                url = base.copy_with(raw_path=wire)
            except InvalidURL:
                url = base  # bytes the URL type refuses: the target extension still has them
            if len(self._urls) >= _URL_CACHE_SIZE:
                self._urls.clear()
            self._urls[key] = url
        return url, wire

    async def _forward(self, ctx: ProxyContext) -> None:
        """The upstream call: sets ``ctx.response`` to the upstream's answer, the endpoint's
        cache's, or the error's."""
        upstream = ctx.upstream_request
        request = ctx.request
        assert upstream is not None and ctx._prepared is not None and request is not None
        prepared_url, index, target, client_target = ctx._prepared
        ours = upstream.url is prepared_url  # (else a middleware's: its URLs are its own)
        if not ours:
            # A middleware chose another URL: send it as it says, to that host only.
            upstream.extensions.pop("target", None)
            if not self.preserve_host and upstream.headers.get(
                "host"
            ) == prepared_url.host_header.decode("latin-1"):
                upstream.headers["Host"] = upstream.url.host_header.decode("latin-1")
        if self.request_buffer:
            try:
                upstream.stream = await _read_ahead(
                    upstream.stream, self.request_buffer, "content-length" in upstream.headers
                )
            except ReadError:  # (the client left before its body was whole: nobody to answer)
                ctx.response = error_response(400, "the request body ended early")
                return
        transaction = _transaction_of(request)

        def call() -> Awaitable[Response | UpstreamError]:
            return self._exchange(ctx, upstream, index, target, ours, transaction)

        cache = self._cache if ours else None
        if cache is None:
            result = await call()
        else:
            fields = request.headers.raw
            host = next((value for name, value in fields if name.lower() == b"host"), b"")
            result = await cache.forward(
                fields, host, client_target, upstream, transaction, call, self._revalidate
            )
        if isinstance(result, UpstreamError):
            await self._fail(result, ctx)
            return
        if transaction is not None and CACHE_ANSWER not in result.extensions:
            _observe_response(transaction, result)
        ctx.response = result

    async def _exchange(
        self,
        ctx: ProxyContext,
        upstream: Request,
        index: int,
        target: bytes,
        ours: bool,
        transaction: Transaction | None,
    ) -> Response | UpstreamError:
        """Send ``upstream`` (again elsewhere as the endpoint's retries allow) and check and
        rewrite its answer's head; its body streams on."""
        session = ctx.session
        options = self.request_options
        urls = self.context.urls
        resilience = self._resilience if ours else None
        current = index
        probe = 0  # (the try's ticket for a half-open breaker: send_resilient)

        async def send(chosen: int) -> Response:
            nonlocal current
            if chosen != current:
                self._retarget(upstream, chosen, target)
                current = chosen
            if transaction is not None:
                transaction.t_connected = time.monotonic()
            return await session.send(upstream, stream=True, **options)

        if resilience is None:
            answer, index, every = await self._round_robin(send, index, len(urls) if ours else 1)
        else:
            first = first_upstream(resilience, index)
            if first is None:
                unavailable = no_upstream_available(self.name)
                if transaction is not None:
                    transaction.error = unavailable.message
                return unavailable
            answer, index, probe = await send_resilient(
                resilience, send, first, upstream.method, _replayable(upstream.stream)
            )
            every = len(urls) > 1 and isinstance(answer, ConnectError | ConnectTimeout)
        if isinstance(answer, TransportError):
            return self._upstream_failed(answer, upstream, transaction, every)
        response = answer
        if response.status_code == 101:
            # Only a WebSocket asks to switch (relayed by relay_websocket, not here): a 101 to
            # a plain request leaves nothing to relay, as the fast path also answers.
            await response.aclose()
            network_stream = response.extensions.get("network_stream")
            if network_stream is not None:
                await network_stream.aclose()  # (a switched connection is no pool's any more)
            return broken_answer(_origin(upstream.url), "switched protocols unasked")
        codings = [value for name, value in response.headers.raw if name.lower() == _TE]
        if codings and (len(codings) > 1 or not only_chunked(codings[0])):
            # (as the fast relay: a coding it cannot undo would go out as if it were the body)
            await response.aclose()
            return broken_answer(_origin(upstream.url), FOREIGN_CODING)
        locate = None
        if ours and self.response_rules.redirects and ctx.request is not None:
            locate = self._locator(index, ctx.request)
        response.headers = Headers.from_raw(
            downstream_headers(response.headers.raw, rules=self.response_rules, locate=locate)
        )
        if transaction is not None:
            _observe_request(transaction, upstream)
        stream = response.stream
        if isinstance(stream, AsyncByteStream) and not isinstance(stream, ByteStream):
            counted = None
            if resilience is not None:
                counted = _BreakerCount(resilience, index, probe)
            response.stream = _UpstreamBody(stream, _origin(upstream.url), counted)
        return response

    async def _round_robin(
        self, send: Callable[[int], Awaitable[Response]], index: int, attempts: int
    ) -> tuple[Response | TransportError, int, bool]:
        """Without the endpoint's resilience state (a handler served on its own): a refused
        connection tries the next upstream, each once. ``(answer or failure, the upstream's
        index, whether every upstream refused)``."""
        count = len(self.context.urls)
        for attempt in range(attempts):
            try:
                return await send(index), index, False
            except ConnectError as exc:
                if attempt + 1 < attempts:
                    index = (index + 1) % count
                    continue
                return exc, index, attempts > 1
            except TransportError as exc:
                return exc, index, False
        raise AssertionError("at least one attempt is made")

    async def _revalidate(
        self, url: str, headers: list[tuple[bytes, bytes]]
    ) -> tuple[int, list[tuple[bytes, bytes]]]:
        """stale-while-revalidate's background GET: through this endpoint's session, with its
        request options (a client certificate...) and its timeout, as its requests go."""
        parsed = URL(url)
        fields = Headers.from_raw([(b"Host", parsed.host_header), *headers])
        request = Request.from_parts(
            "GET", parsed, fields, EMPTY_STREAM, 0, {"timeout": self.timeout.as_dict()}
        )
        response = await self.context.session.send(request, stream=True, **self.request_options)
        async with response:
            return response.status_code, response.headers.raw

    def _locator(self, index: int, request: Request) -> Locate:
        """The upstream's own URLs in answers (``Location``...) as the
        client of ``request`` reaches them through the proxy (see ``proxy.redirects``)."""
        redirects = self._redirects.get(index)
        if redirects is None:
            redirects = UpstreamRedirects.for_url(self.context.urls[index], self.rewrite)
            self._redirects[index] = redirects
        scheme = _FORWARDED_SCHEMES.get(request.url.scheme, request.url.scheme)
        raw = request.headers.raw
        return lambda url: redirects.proxy_url(url, scheme, client_host(raw))

    def _retarget(self, upstream: Request, index: int, target: bytes) -> None:
        """Point ``upstream`` at another upstream base URL, after a refused connection."""
        old_host = upstream.url.host_header
        url, wire = self._upstream_url(index, target)
        upstream.url = url
        upstream.extensions["target"] = wire
        if not self.preserve_host and upstream.headers.get("host") == old_host.decode("latin-1"):
            upstream.headers["Host"] = url.host_header.decode("latin-1")

    def _upstream_failed(
        self,
        exc: TransportError,
        upstream: Request,
        transaction: Transaction | None,
        every: bool = False,
    ) -> UpstreamError:
        """``every``: each of the endpoint's upstreams refused in turn, ``upstream`` last."""
        error = upstream_error(exc, _origin(upstream.url), self.name if every else None)
        error.__cause__ = exc
        if transaction is not None:  # (what the relay tells its observers too)
            transaction.upstream_url = str(upstream.url)
            transaction.error = error.message
        return error

    async def _fail(self, exc: Exception, ctx: ProxyContext) -> None:
        """Make the answer for ``exc``: the error handler's, or the default (502/503/504/500)."""
        if isinstance(exc, UpstreamError):
            if exc.origin is not None:
                report_upstream(exc.kind, exc.origin, exc.message)
            elif exc.kind == UNAVAILABLE:  # (as the relay words it)
                upstream_log.report(UNAVAILABLE, f"endpoint {self.name!r}", exc.message)
            else:
                logger.warning("endpoint %s: %s", self.name, exc.message)
            default = error_response(exc.status_code, exc.message)
        else:
            request = ctx.request
            transaction = _transaction_of(request)
            if transaction is not None and transaction.error is None:
                transaction.error = f"the proxy failed: {exc!r}"
            logger.error("endpoint %s: error while proxying %s", self.name, request, exc_info=exc)
            default = error_response(500)
        answer: Response | None = None
        if self.error_handler is not None:
            try:
                result = self.error_handler(exc, ctx)
                if inspect.isawaitable(result):
                    result = await result
                answer = result
            except Exception:
                logger.exception("endpoint %s: the error handler failed", self.name)
                answer = error_response(500)
        if answer is None:
            answer = default
        previous = ctx.response
        if previous is not None and previous is not answer:
            await previous.aclose()  # may hold an upstream connection
        ctx.response = answer

    # -- a plain ASGI app -----------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the endpoint as an ASGI app: HTTP through :meth:`handle` (no core events),
        WebSockets relayed message by message to the upstream."""
        kind = scope["type"]
        if kind == "http":
            await self._serve_http(scope, receive, send)
        elif kind == "websocket":
            await relay_websocket(self, scope, receive, send)
        elif kind == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await self.aclose()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        else:
            raise ValueError(f"unsupported ASGI scope type {kind!r}")

    async def _serve_http(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = _WatchedReceive(receive)
        try:
            request = request_from_scope(scope, body, self._scope_urls)
        except InvalidURL:
            await send_response(error_response(400), send, scope=scope)
            return
        if _body_length(request, scope) == 0:
            body.consumed.set()

        async def answer() -> None:
            response = await self.handle(request)
            await send_response(response, send, head=request.method == "HEAD", scope=scope)

        # The client going away cancels the upstream call: nobody would read its answer, and
        # the upstream connection is closed rather than reused mid-response.
        work = asyncio.ensure_future(answer())
        watcher = asyncio.ensure_future(body.wait_disconnect())
        try:
            await asyncio.wait((work, watcher), return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not work.done():
                work.cancel()
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await work
            with contextlib.suppress(asyncio.CancelledError):
                await watcher


def _transaction_of(request: Request | None) -> Transaction | None:
    """The transaction the server started for ``request`` (its ASGI scope's extension)."""
    scope = None if request is None else request.extensions.get("asgi_scope")
    if scope is None:
        return None
    transaction = scope.get("extensions", {}).get("ferryman.transaction")
    return transaction if isinstance(transaction, Transaction) else None


def _observe_request(transaction: Transaction, upstream: Request) -> None:
    """What the relay tells the observers itself: the request went (its answer's head came)."""
    transaction.upstream_url = str(upstream.url)
    transaction.t_request_sent = transaction.t_connected
    transaction.dispatch_request()


def _observe_response(transaction: Transaction, response: Response) -> None:
    """The answer's head the client gets (the cache's ``X-Cache`` among its fields)."""
    lines = b"".join(name + b": " + value + b"\r\n" for name, value in response.headers.raw)
    transaction.dispatch_response(response.status_code, response.reason_phrase.encode(), lines)


def _replayable(stream: SyncByteStream | AsyncByteStream) -> bool:
    """Whether a request body can be sent again unchanged: in memory, or read whole ahead."""
    if isinstance(stream, ByteStream):
        return True
    return isinstance(stream, _ReadAhead) and stream.whole


def _origin(url: URL) -> str:
    """``scheme://host[:port]``, as the fast relay's pools name their upstream."""
    return f"{url.scheme}://{url.host_header.decode('latin-1')}"


async def _read_ahead(
    stream: SyncByteStream | AsyncByteStream, size: int, has_length: bool
) -> SyncByteStream | AsyncByteStream:
    """``stream`` with up to ``size`` bytes read already, as the fast relay reads them: fixed
    bytes (which the client may send again on another connection) when a body with a length
    ended within them, else those bytes and then the rest as it comes (a chunked body stays
    chunked, each piece a chunk)."""
    if not isinstance(stream, AsyncByteStream) or isinstance(stream, ByteStream):
        return stream  # (in memory already, or read synchronously by the client)
    chunks: list[bytes] = []
    read = 0
    rest = stream.__aiter__()
    async for chunk in rest:
        chunks.append(chunk)
        read += len(chunk)
        if read >= size:
            return _ReadAhead(chunks, rest)
    return ByteStream(b"".join(chunks)) if has_length else _ReadAhead(chunks, None)


class _ReadAhead(AsyncByteStream):
    """A request body whose first chunks were read before the upstream call."""

    __slots__ = ("_chunks", "_rest")

    def __init__(self, chunks: list[bytes], rest: AsyncIterator[bytes] | None) -> None:
        self._chunks = chunks
        self._rest = rest

    @property
    def whole(self) -> bool:
        """The body was read to its end: it can be sent again."""
        return self._rest is None

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self._chunks:
            yield chunk
        if self._rest is not None:
            async for chunk in self._rest:
                yield chunk


class _UpstreamBody(AsyncByteStream):
    """An upstream answer's body on its way to the client: when the upstream breaks it off,
    the failure is logged once (per interval) here and the server is told to cut the client's
    connection without a traceback of its own (:class:`~ferryman.server.asgi.AnswerAborted`);
    the head has gone, so no status can say what happened. Reading it whole (``aread``, a
    middleware's) is left as it was: nothing has reached the client then."""

    __slots__ = ("_counted", "_origin", "_stream")

    def __init__(
        self, stream: AsyncByteStream, origin: str, counted: _BreakerCount | None = None
    ) -> None:
        self._stream = stream
        self._origin = origin
        #: The upstream's breaker, told of a body that broke off (``None``: no breaker).
        self._counted = counted

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._stream:
                yield chunk
        except TransportError as exc:
            timed_out = isinstance(exc, ReadTimeout)
            error = truncated_answer(self._origin, timed_out=timed_out)
            report_upstream(error.kind, self._origin, error.message)
            if self._counted is not None:
                counted = self._counted
                body_failed(counted.resilience, counted.index, timed_out, counted.probe)
            raise AnswerAborted(error.message) from exc

    async def aread(self) -> bytes:
        return await self._stream.aread()

    def read_if_complete(self) -> bytes | None:
        return self._stream.read_if_complete()

    async def aclose(self) -> None:
        await self._stream.aclose()


class _BreakerCount:
    """Which upstream's breaker hears of a body that broke off (with the try's probe ticket)."""

    __slots__ = ("index", "probe", "resilience")

    def __init__(self, resilience: EndpointResilience, index: int, probe: int) -> None:
        self.resilience = resilience
        self.index = index
        self.probe = probe


class _WatchedReceive(ReceiveStream):
    """The request body, and once it has been read, the wait for ``http.disconnect``."""

    __slots__ = ("consumed", "receive")

    def __init__(self, receive: Receive) -> None:
        super().__init__(receive)
        self.receive = receive
        self.consumed = asyncio.Event()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in super().__aiter__():
            yield chunk
        self.consumed.set()

    async def wait_disconnect(self) -> None:
        """Return when the client has gone; only listens once the body has been read."""
        await self.consumed.wait()
        while (await self.receive())["type"] != "http.disconnect":
            pass


def _raw_target(request: Request, scope: Any) -> bytes:
    """The request target as the client sent it: the ASGI scope's bytes, if there are any."""
    if scope is not None:
        raw_path = scope.get("raw_path")
        if raw_path:
            query = scope.get("query_string", b"")
            return bytes(raw_path + b"?" + query if query else raw_path)
    return request.url.raw_path


def _body_length(request: Request, scope: Any) -> int | None:
    """How long the body relayed upstream is: the client's length, unknown, or none."""
    headers = request.headers
    length = headers.get("content-length")
    if length is not None:
        with contextlib.suppress(ValueError):
            return int(length)
    if "transfer-encoding" in headers:
        return None
    version = scope.get("http_version", "1.1") if scope is not None else "1.1"
    if version not in _HTTP1 and request.method in _METHODS_WITH_BODY:
        return None
    return 0
