"""The proxy filter events served from the fast relay's callbacks, with models built lazily.

``proxy.filter.request`` and ``proxy.filter.response`` (:mod:`ferryman.proxy.events`) used to
send every request of the system down the general path (ASGI kernel, client session) as soon as
one listener existed, at about 3.4x the CPU. When every listener of the two events is
synchronous and the endpoint only relays (``HTTPProxyHandler.is_plain``: no middleware, no
error handler, no request options), the relay dispatches them itself (:class:`RelayFilters`),
with the semantics the general path has (see :mod:`ferryman.proxy.handler`):

* one :class:`RelayFilterEvent` per request, the same instance for both events, listeners in
  priority order, ``stop_propagation()`` skipping all further filtering (both events);
* a response set on ``proxy.filter.request`` is the answer: no upstream call;
* a changed or replaced ``event.request`` (method, URL, headers, an in-memory body) is what
  goes upstream, through the same header rules, rewrite and forwarding headers;
* a replaced ``event.response`` on ``proxy.filter.response`` is the answer; the upstream's
  body is then drained (a ``Content-Length`` body of at most :data:`DRAIN_LIMIT` bytes: the
  connection goes back to the pool) or its connection closed (longer or chunked bodies);
  changed status or headers of the upstream's own response go out with its body streamed;
* a listener's exception answers a logged JSON 500, as on the general path;
* the endpoint's HTTP cache sits where the general path's does, after the request listeners
  (and the middleware's way in), its answers seen by the response listeners
  (:mod:`ferryman.proxy.relay_events_cache`).

Nothing is built that a listener does not read: the event's request is a :class:`RelayRequest`
over the exchange's raw method, target and header pairs, which become ``str``/``URL``/
``Headers`` on first access; the response a ``Response`` over the relayed header lines (its
``Headers`` parsed on first access); the per-request ``ProxyContext`` is made on first access.
A request head is built again only when the request changed (a replaced request, another
method or URL, header pairs that differ from the received ones): a listener that only looked
leaves the relay's own head, byte for byte. Bodies are never buffered here: the body of a
relayed request or response is a stream that cannot be read from a synchronous listener, as
on the general path, where reading it needs ``await`` (``content`` raises the general path's
``ResponseNotRead``). Asynchronous listeners, which may read them (bounded:
:mod:`ferryman.proxy.relay_bodies`), and the endpoint's
middleware are run around the same relaying by :mod:`ferryman.proxy.relay_middleware`; the http
client's and the kernel's events still take the general path: the gate
(``ferryman.proxy.server.FastPathGate``) decides.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, Final

from ferryman.events import EventDispatcher
from ferryman.http.caching import CacheEntry
from ferryman.http.headers import Headers
from ferryman.http.models import Request, Response
from ferryman.http.streams import AsyncByteStream, ByteStream
from ferryman.http.url import URL
from ferryman.proxy import relay_events_cache
from ferryman.proxy.context import ProxyContext
from ferryman.proxy.errors import ListenerBodyTooLarge, error_response
from ferryman.proxy.events import (
    EVENT_FILTER_PROXY_REQUEST,
    EVENT_FILTER_PROXY_RESPONSE,
    ProxyFilterEvent,
)
from ferryman.proxy.headers import upstream_pieces
from ferryman.proxy.targets import ESCAPE_BODY, ESCAPE_MESSAGE, target_escapes
from ferryman.server.exchange import ServerExchange, status_line
from ferryman.server.protocol import origin_form, response_head

if TYPE_CHECKING:
    from ferryman.proxy.relay import Relay
    from ferryman.proxy.relay_cache import RelayCache
    from ferryman.proxy.upstream import UpstreamPool

__all__ = [
    "DRAIN_LIMIT",
    "RELAYED_BODY",
    "RelayFilterEvent",
    "RelayFilters",
    "RelayRequest",
    "RelayedBody",
    "send_answer",
]

logger = logging.getLogger("ferryman.proxy")

#: The most bytes of an upstream body read and thrown away after a listener replaced the
#: response, to keep the connection; a longer (or chunked) body costs the connection instead.
DRAIN_LIMIT: Final = 64 * 1024

#: What :meth:`RelayFilters.filter_response` found.
UNCHANGED: Final = 0
CHANGED: Final = 1
ANSWERED: Final = 2
#: The answer's head waits for asynchronous work (ways out, listeners): the relay holds it,
#: pauses the upstream and keeps what body bytes were already read (``Relay.hold``).
HELD: Final = 3

_CRLF: Final = b"\r\n"
_HTTP11_LINE_END: Final = b" HTTP/1.1\r\n"
_CHUNKED_LINE: Final = b"Transfer-Encoding: chunked\r\n"
_NO_BODY_STATUSES: Final = frozenset({204, 304})


class RelayedBody(AsyncByteStream):
    """The body of a request or response the relay streams: it is not in memory. This one
    (:data:`RELAYED_BODY`, what synchronous listeners see) cannot be read; the ones an
    asynchronous listener gets read it, bounded (:mod:`ferryman.proxy.relay_bodies`)."""

    __slots__ = ()

    def __aiter__(self) -> AsyncIterator[bytes]:
        raise RuntimeError(
            "this body is streamed by the fast relay: a synchronous proxy listener or "
            "middleware cannot wait for it; an async def one reads it with "
            "`await request.aread()` or `await response.aread()`"
        )


RELAYED_BODY: Final = RelayedBody()


class RelayRequest(Request):
    """The client's request over the exchange's raw parts, turned into models when read.

    ``changed`` says whether what a listener did makes it differ from what was received."""

    __slots__ = ("_exchange", "_headers", "_method", "_received_url", "_url")

    def __init__(self, exchange: ServerExchange) -> None:  # (no super(): nothing built yet)
        self._exchange = exchange
        self._method: str | None = None
        self._url: URL | None = None
        self._received_url: URL | None = None
        self._headers: Headers | None = None
        self.stream = RELAYED_BODY
        self.extensions = {}

    @property
    def method(self) -> str:
        method = self._method
        if method is None:
            method = self._method = self._exchange.method.decode("ascii").upper()
        return method

    @method.setter
    def method(self, value: str) -> None:
        self._method = value

    @property
    def url(self) -> URL:
        url = self._url
        if url is None:
            url = self._url = self._received_url = _received_url(self._exchange)
        return url

    @url.setter
    def url(self, value: URL) -> None:
        if self._received_url is None:
            self._received_url = _received_url(self._exchange)
        self._url = value

    @property
    def headers(self) -> Headers:
        headers = self._headers
        if headers is None:
            headers = self._headers = Headers.from_raw(list(self._exchange.headers))
        return headers

    @headers.setter
    def headers(self, value: Headers) -> None:
        self._headers = value

    @property
    def url_changed(self) -> bool:
        return self._url is not None and self._url is not self._received_url

    @property
    def changed(self) -> bool:
        """Whether the head going upstream must be built from this request again."""
        exchange = self._exchange
        if self._method is not None and self._method.encode("ascii") != exchange.method:
            return True
        if self.url_changed:
            return True
        headers = self._headers
        if headers is not None and headers._raw != exchange.headers:
            return True
        return not isinstance(self.stream, RelayedBody)

    def __repr__(self) -> str:
        exchange = self._exchange
        return f"<Request [{self.method!r} {exchange.target.decode('latin-1')!r}]>"


def _received_url(exchange: ServerExchange) -> URL:
    """The URL the general path gives the same request (``request_from_scope``)."""
    target = exchange.target
    if target[:1] != b"/":
        return URL(target.decode("latin-1"))
    server = exchange.server
    if server is not None:
        host, port = server[0], server[1]
        netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    else:
        netloc = next(
            (
                value.decode("latin-1")
                for name, value in exchange.headers
                if name.lower() == b"host"
            ),
            "localhost",
        )
    return URL(f"{exchange.scheme}://{netloc}{target.decode('latin-1')}")


class RelayFilterEvent(ProxyFilterEvent):
    """A :class:`ProxyFilterEvent` whose per-request context is made when first read."""

    __slots__ = (
        "_base_context",
        "_context",
        "body_replaced",
        "filtered_head",
        "run",
        "upstream_target",
    )

    def __init__(self, endpoint: str, request: Request, base: ProxyContext | None) -> None:
        self._propagation_stopped = False
        self.endpoint = endpoint
        self.request = request
        self.response = None
        self._base_context = base
        self._context: ProxyContext | None = None
        #: The relay's own: the target that goes upstream when the request changed (``None``:
        #: it did not, the relay builds its head as without events), whether the body is a
        #: listener's, and a changed answer head (status, reason, lines).
        self.upstream_target: bytes | None = None
        self.body_replaced = False
        self.filtered_head: tuple[int, bytes, bytes] | None = None
        #: The endpoint middleware's run for this request (``relay_middleware``), if any.
        self.run: Any = None

    @property
    def context(self) -> ProxyContext | None:
        ctx = self._context
        if ctx is None and self._base_context is not None:
            ctx = self._context = self._base_context.for_request(self.request, self.endpoint)
            ctx.response = self.response
        return ctx

    @context.setter
    def context(self, value: ProxyContext | None) -> None:
        self._context = value


class RelayFilters:
    """One endpoint's proxy filter events on the relay: whether they may run there now
    (``active``, the gate's word) and running them for one :class:`Relay`."""

    __slots__ = ("active", "dispatcher", "handler", "listener_body", "name", "next_upstream")

    def __init__(
        self,
        name: str,
        dispatcher: EventDispatcher,
        handler: Any,
        active: Callable[[], bool],
        listener_body: int | None = 1024 * 1024,
    ) -> None:
        self.name = name
        #: The most bytes of a body an asynchronous listener or middleware may read (the
        #: endpoint's ``limits.listener_body``; ``None``: no limit): ``relay_bodies``.
        self.listener_body = listener_body
        self.dispatcher = dispatcher
        #: The endpoint's ``HTTPProxyHandler`` (its context is the per-request one's base).
        self.handler = handler
        #: True while the relay may serve the events (all listeners synchronous...).
        self.active = active
        #: The round robin of the requests relayed with events (the general path's handler
        #: keeps its own too: each way starts from the first upstream).
        self.next_upstream = 0

    def filter_request(self, relay: Relay) -> bool:
        """Dispatch ``proxy.filter.request`` for ``relay``'s request; False when that answered
        it (a forged response, an error) and the relay has nothing more to do."""
        exchange = relay.exchange
        context = getattr(self.handler, "context", None)
        event = RelayFilterEvent(self.name, RelayRequest(exchange), context)
        relay.filter_event = event
        dispatcher = self.dispatcher
        if dispatcher.has_listeners(EVENT_FILTER_PROXY_REQUEST):
            try:
                dispatcher.dispatch(EVENT_FILTER_PROXY_REQUEST, event)
            except Exception as exc:
                self._failed(exc, event)
                return self._answer_early(relay, event)
        if event.response is not None:
            return self._answer_early(relay, event)
        request = event.request
        if type(request) is not RelayRequest or request.changed:
            try:
                return self._changed_request(relay, request)
            except Exception as exc:
                self._failed(exc, event)
                return self._answer_early(relay, event)
        return True

    def _changed_request(self, relay: Relay, request: Request) -> bool:
        """Check and keep what goes upstream instead of the received request."""
        received = isinstance(request, RelayRequest) and not request.url_changed
        target = relay.exchange.target if received else request.url.raw_path
        if target[:1] != b"/":
            target = origin_form(target)
        endpoint = relay.endpoint
        event = relay.filter_event
        assert event is not None
        if target_escapes(target, endpoint.rewrite):
            # (the general path's RefusedTarget: the client's error, filtered as answers are)
            self.finish_with(relay, error_response(400, ESCAPE_MESSAGE), ESCAPE_BODY)
            return False
        stream = request.stream
        if not isinstance(stream, RelayedBody):
            if not isinstance(stream, ByteStream):
                raise TypeError(
                    "a proxy.filter.request listener on the fast relay may replace the request "
                    "body with bytes only (an asynchronous listener may stream one)"
                )
            event.body_replaced = True
            relay.replace_body(stream.content)
        event.upstream_target = target
        relay.head_only = request.method == "HEAD"
        return True

    def request_head(self, relay: Relay, pool: UpstreamPool) -> bytes:
        """The head the upstream gets for a request a listener changed."""
        endpoint = relay.endpoint
        exchange = relay.exchange
        event = relay.filter_event
        assert event is not None and event.upstream_target is not None
        request = event.request
        target = event.upstream_target
        if endpoint.rewrite is not None:
            target = endpoint.rewrite.apply(target)
        if pool.base_path:
            target = pool.base_path + target
        if event.body_replaced:
            framing = b"Content-Length: %d\r\n" % relay.body_size
        elif exchange.content_length is not None:
            framing = b"Content-Length: %d\r\n" % exchange.content_length
        elif exchange.chunked:
            framing = _CHUNKED_LINE
        else:
            framing = b""
        client = exchange.protocol.client
        pieces = [request.method.encode("ascii"), b" ", target, _HTTP11_LINE_END]
        upstream_pieces(
            request.headers.raw,
            host=None if endpoint.preserve_host else pool.host_header,
            client_ip=None if client is None else client[0],
            scheme=exchange.protocol.scheme,
            rules=endpoint.request_rules,
            pieces=pieces,
        )
        pieces += (framing, _CRLF)
        return b"".join(pieces)

    def filter_response(self, relay: Relay, status: int, reason: bytes, lines: bytes) -> int:
        """Dispatch ``proxy.filter.response`` over the upstream's answer head: UNCHANGED,
        CHANGED (``event.filtered_head`` holds the new status, reason and lines) or ANSWERED
        (another response went to the client: the upstream's body is to be discarded)."""
        event = relay.filter_event
        assert event is not None
        dispatcher = self.dispatcher
        if event.is_propagation_stopped or not dispatcher.has_listeners(
            EVENT_FILTER_PROXY_RESPONSE
        ):
            return UNCHANGED
        upstream = upstream_response(event, status, reason, lines)
        answer = self._dispatch_response(event)
        return self.outcome(relay, upstream, answer, status, reason, lines)

    def outcome(
        self,
        relay: Relay,
        upstream: Response,
        answer: Response,
        status: int,
        reason: bytes,
        lines: bytes,
    ) -> int:
        """What became of the upstream's answer (``upstream``, lazily made over its head): the
        final ``answer`` replaced it (sent here: ANSWERED), changed its head (CHANGED, the new
        head in ``event.filtered_head``) or left it as it came (UNCHANGED)."""
        event = relay.filter_event
        assert event is not None
        if answer is not upstream:
            send_answer(relay.exchange, answer, relay.head_only)
            return ANSWERED
        headers = upstream._headers
        changed_lines = lines
        if headers is not None:
            changed_lines = b"".join([name + b": " + value + _CRLF for name, value in headers._raw])
        if answer.status_code == status and changed_lines == lines:
            return UNCHANGED
        new_reason = reason if answer.status_code == status else b""
        event.filtered_head = (answer.status_code, new_reason, changed_lines)
        return CHANGED

    def _dispatch_response(self, event: RelayFilterEvent) -> Response:
        """``proxy.filter.response`` over ``event.response``; the answer it leaves."""
        response = event.response
        assert response is not None
        try:
            self.dispatcher.dispatch(EVENT_FILTER_PROXY_RESPONSE, event)
        except Exception as exc:
            return self._response_filtered(event, response, exc)
        return self._response_filtered(event, response, None)

    def _response_filtered(
        self, event: RelayFilterEvent, response: Response, error: Exception | None
    ) -> Response:
        """The answer ``proxy.filter.response`` leaves (dispatched or awaited) over
        ``response``: a failing listener's replacement is closed and the answer is the error's,
        as is one that removed the response."""
        if error is not None:
            replaced = event.response
            if replaced is not None and replaced is not response:
                _close_later(replaced)
            event.response = response
            self._failed(error, event)
        elif event.response is None:
            self._failed(
                RuntimeError("a proxy.filter.response listener removed the response"), event
            )
        answer = event.response
        assert answer is not None
        return answer

    def finish_with(self, relay: Relay, response: Response, error: bytes | None = None) -> None:
        """Answer without (more of) the upstream: a forged response, an error's, the relay's
        own error; ``proxy.filter.response`` sees it first, as on the general path. ``error``:
        the relay's error body, sent as the relay sends it if no listener replaced it."""
        event = relay.filter_event
        assert event is not None
        event.response = response
        if event._context is not None:
            event._context.response = response
        answer = response
        if not event.is_propagation_stopped and self.dispatcher.has_listeners(
            EVENT_FILTER_PROXY_RESPONSE
        ):
            answer = self._dispatch_response(event)
        if answer is response and error is not None:
            relay.exchange.send_error(response.status_code, error)
        else:
            send_answer(relay.exchange, answer, relay.head_only)

    def answer_first(self, exchange: ServerExchange, response: Response) -> bool:
        """An answer given before the request reached the filters (a rate limit's 429): if
        ``proxy.filter.response`` has listeners, they see it first, over a new event for the
        request (``proxy.filter.request`` did not run: nothing of it was let through), and
        may replace it; the answer is sent (awaited from a task when a listener is async).
        False: no listener, the caller answers as it would have."""
        dispatcher = self.dispatcher
        if exchange.upgrade or not dispatcher.has_listeners(EVENT_FILTER_PROXY_RESPONSE):
            return False
        context = getattr(self.handler, "context", None)
        event = RelayFilterEvent(self.name, RelayRequest(exchange), context)
        event.response = response
        head_only = exchange.method == b"HEAD"
        if dispatcher.is_synchronous(EVENT_FILTER_PROXY_RESPONSE):
            send_answer(exchange, self._dispatch_response(event), head_only)
            return True

        async def filtered() -> None:
            error: Exception | None = None
            try:
                await dispatcher.adispatch(EVENT_FILTER_PROXY_RESPONSE, event)
            except Exception as exc:
                error = exc
            send_answer(exchange, self._response_filtered(event, response, error), head_only)

        task = asyncio.ensure_future(filtered())
        _TASKS.add(task)
        task.add_done_callback(_TASKS.discard)
        return True

    def look_up(self, relay: Relay, cache: RelayCache) -> None:
        """The endpoint's cache for a request the events let go (``Relay.proceed``): as the
        general path's sits, after the request listeners and the ways in
        (:mod:`ferryman.proxy.relay_events_cache`). A request whose method they changed, or
        that a middleware sent to another URL, is relayed uncached."""
        event = relay.filter_event
        assert event is not None
        exchange = relay.exchange
        request = event.request
        run = event.run
        upstream = None if run is None else run.upstream
        if (
            _method_changed(request, exchange)
            or (upstream is not None and (upstream.url_changed or upstream.method_changed))
            or exchange.upgrade
        ):
            cache.counts.bypass += 1
            relay.forward()
            return
        if type(request) is RelayRequest and request._headers is None:
            fields = exchange.headers  # (nobody read them: the client's, unchanged)
        else:
            fields = request.headers.raw
        target = event.upstream_target or exchange.target
        if target[:1] != b"/":
            target = origin_form(target)
        relay_events_cache.look_up(relay, cache, fields, target)

    def cache_answer(
        self, relay: Relay, cache: RelayCache, entry: CacheEntry, status: bytes, now: float
    ) -> bool:
        """An answer of the cache's after the upstream was asked (a 304 merged, a stale
        answer on a failure): through the ways out and response listeners, as a hit."""
        return relay_events_cache.answer(relay, cache, entry, status, now)

    def _answer_early(self, relay: Relay, event: RelayFilterEvent) -> bool:
        """Answer with ``event.response`` (forged, or the error's) without the upstream."""
        response = event.response
        assert response is not None
        self.finish_with(relay, response)
        return False

    def client_lost(self, relay: Relay) -> None:
        """The client of ``relay`` went away (nothing to do without asynchronous work)."""

    def close(self) -> None:
        """The server stops (nothing held here)."""

    def _failed(self, exc: Exception, event: RelayFilterEvent) -> None:
        """A listener raised: logged, and the answer a JSON 500 (as ``HTTPProxyHandler._fail``),
        or the 413 of a request body too long for a listener to read (``relay_bodies``)."""
        previous = event.response
        event.response = failure_response(exc, self.name, event.request)
        if previous is not None and not isinstance(previous.stream, ByteStream):
            _close_later(previous)


def _method_changed(request: Request, exchange: ServerExchange) -> bool:
    """Whether a request listener gave the request another method than the client's."""
    if type(request) is RelayRequest:
        changed = request._method
        return changed is not None and changed.encode("ascii") != exchange.method
    return request.method.encode("ascii") != exchange.method


def failure_response(exc: Exception, endpoint: str, request: object) -> Response:
    """The answer for a listener's or middleware's error, logged: a JSON 500, or a JSON 413
    when the error is a request body longer than listeners may read (a client's doing, logged
    without a traceback)."""
    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, ListenerBodyTooLarge):
        cause = cause.__cause__  # (the dispatcher wraps a listener's: EventListenerError)
    if cause is not None and cause.status_code == 413:
        logger.warning("endpoint %s: %s", endpoint, cause)
        return error_response(413, cause.message)
    logger.error("endpoint %s: error while proxying %s", endpoint, request, exc_info=exc)
    return error_response(500)


def upstream_response(
    event: RelayFilterEvent, status: int, reason: bytes, lines: bytes
) -> Response:
    """The upstream's answer as a ``Response`` over its relayed head (headers parsed when
    read; the body stays the relay's), set as the event's and the context's response."""
    head = status_line(status, reason or None)
    raw_head = head + lines[:-2] if lines else head[:-2]
    extensions: dict[str, Any] = {"reason_phrase": reason} if reason else {}
    upstream = Response.from_transport(status, raw_head, RELAYED_BODY, extensions, event.request)
    event.response = upstream
    if event._context is not None:
        event._context.response = upstream
    return upstream


def send_answer(exchange: ServerExchange, response: Response, head_only: bool) -> None:
    """Write ``response`` (a listener's) to the client as the ASGI bridge writes the general
    path's: at once when its body is in memory, else from a task that streams it chunked
    (HTTP/1.1) or to the connection's end (1.0)."""
    if exchange.finished:
        _close_later(response)
        return
    status = response.status_code
    headers = response.headers.raw
    stream = response.stream
    reason = response.extensions.get("reason_phrase") if response.extensions else None
    no_body = head_only or status in _NO_BODY_STATUSES or status < 200
    # (a request body left unread ends the connection after the answer: say so)
    closes = not exchange.keep_alive or not exchange.body_complete
    has_length = any(name.lower() == b"content-length" for name, _ in headers)
    in_memory = isinstance(stream, ByteStream)
    body = stream.content if isinstance(stream, ByteStream) else b""
    chunked = False
    if not has_length and status not in _NO_BODY_STATUSES and status >= 200:
        if in_memory:
            if not head_only or body:
                headers.append((b"Content-Length", b"%d" % len(body)))
        elif exchange.http_version == "1.1":
            headers.append((b"Transfer-Encoding", b"chunked"))
            chunked = True
        else:
            closes = True  # an HTTP/1.0 body ends where the connection does
    if closes:
        headers.append((b"Connection", b"close"))
    elif exchange.http_version == "1.0":
        headers.append((b"Connection", b"keep-alive"))
    exchange.status = status
    head = response_head(status, reason if isinstance(reason, bytes) and reason else None, headers)
    if in_memory or no_body:
        if body and not no_body:
            exchange.body_sent += len(body)
            exchange.writelines([head, body])
        else:
            exchange.write(head)
        exchange.finish(keep_alive=not closes)
        if not in_memory:
            _close_later(response)
        return
    exchange.write(head)
    task = asyncio.ensure_future(_stream_answer(exchange, response, chunked, not closes))
    _TASKS.add(task)
    task.add_done_callback(_TASKS.discard)


_TASKS: set[asyncio.Future[None]] = set()


async def _stream_answer(
    exchange: ServerExchange, response: Response, chunked: bool, keep_alive: bool
) -> None:
    """A listener's streamed body, to the client; cut (not finished) if it breaks off."""
    try:
        async for chunk in response.aiter_bytes():
            if exchange.finished:
                return
            if chunk:
                exchange.body_sent += len(chunk)
                exchange.writelines([b"%x\r\n" % len(chunk), chunk, _CRLF] if chunked else [chunk])
        if chunked:
            exchange.write(b"0\r\n\r\n")
        exchange.finish(keep_alive=keep_alive)
    except Exception:
        logger.exception("a proxy filter listener's response body failed")
        exchange.abort()
    finally:
        await response.aclose()


def _close_later(response: Response) -> None:
    """Close a response nobody will send (it may hold a connection)."""
    if inspect.iscoroutinefunction(response.aclose):
        task = asyncio.ensure_future(response.aclose())
        _TASKS.add(task)
        task.add_done_callback(_TASKS.discard)
