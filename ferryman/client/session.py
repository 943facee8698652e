"""``AsyncClient``: the client application code imports, on top of the transport core.

A request goes through four small steps, each skipped when it has nothing to do: build the
request (defaults, params, body, cookies), authenticate (an auth flow may send several
requests), follow redirects, and send one exchange (events, filter transport, cookies, body
decoding). A GET with the defaults and no handlers costs a few dictionary look-ups on top of
the transport.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Coroutine, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any

from wsproto.extensions import Extension

from ferryman.client.auth import Auth, to_auth
from ferryman.client.body import (
    DEFAULT_DECOMPRESSION_BOMB_THRESHOLD,
    DEFAULT_MAX_DECOMPRESSION_RATIO,
    BodyLimits,
    ClientBodyStream,
)
from ferryman.client.cache.layer import HttpCache
from ferryman.client.config import (
    DEFAULT_MAX_REDIRECTS,
    DEFAULT_TIMEOUT,
    UNSET,
    USER_AGENT,
    TimeoutTypes,
    to_timeout,
)
from ferryman.client.filtering import AsyncTransport
from ferryman.client.hooks import EVENT_NAMES, EventHandlers, Handler, combine, fire
from ferryman.client.redirects import REDIRECT_STATUS_CODES, build_redirect_request
from ferryman.client.routing import TransportRouter
from ferryman.client.transport.http11 import (
    DEFAULT_MAX_RESPONSE_HEAD,
    DEFAULT_MAX_RESPONSE_HEADERS,
)
from ferryman.client.websocket import WebSocketConnection, handshake_request, open_websocket
from ferryman.events import EventDispatcher
from ferryman.exceptions import TooManyRedirects
from ferryman.http.content import encode_request
from ferryman.http.cookies import Cookies
from ferryman.http.decoders import ACCEPT_ENCODING, get_content_decoder
from ferryman.http.headers import Headers, HeadersTypes
from ferryman.http.request import Request
from ferryman.http.response import Response
from ferryman.http.streams import EMPTY_STREAM, AsyncByteStream
from ferryman.http.url import URL, QueryParamsTypes

__all__ = ["AsyncClient"]

_UNSET = UNSET
_URL_CACHE_SIZE = 512


class _Exchange:
    """What one call of ``request()`` decided, shared by every hop of its redirects and auth."""

    __slots__ = (
        "cookies",
        "decompress",
        "handlers",
        "stream",
        "transport",
    )

    def __init__(
        self,
        transport: AsyncTransport,
        cookies: Cookies | None,
        decompress: bool,
        stream: bool,
        handlers: dict[str, tuple[Handler, ...]] | None,
    ) -> None:
        self.transport = transport
        self.cookies = cookies
        self.decompress = decompress
        self.stream = stream
        self.handlers = handlers


class AsyncClient:
    """An HTTP client session: connection pools, defaults, cookies and events shared by its
    requests. Use it as ``async with AsyncClient() as client:`` so its connections close.

    Session options (every one but the pool settings can be overridden per request):
    ``headers``, ``cookies`` (and ``store_cookies``), ``auth``, ``params``, ``timeout``
    (seconds, a :class:`Timeout` or a dict; default 5 s each), ``verify``, ``cert``, ``proxies``
    (``{"http": url, "https": url, "all": url}``), ``trust_env`` (proxies, ``NO_PROXY`` and
    ``SSL_CERT_FILE`` from the environment), ``max_redirects`` (10), ``decompress`` (True),
    ``stream`` (False), ``pool_size`` (connections per host, 10), ``max_connections`` (100),
    ``http2`` (False), ``base_url``, ``default_encoding`` (for ``text`` when the response names
    no charset). ``transport`` replaces the connection pools altogether; ``dispatcher`` routes
    every request through the filter events (:class:`AsyncFilterableTransport`).

    Body limits (session-wide): a decoded body past ``decompression_bomb_threshold`` (64 MiB)
    and more than ``max_decompression_ratio`` (100) times the bytes read off the wire raises
    :class:`DecompressionBombError` (``max_decompression_ratio=None``: no check); a body read
    whole (``content``, ``aread()``, ``json()``) over ``max_body_size`` bytes (default: no cap)
    raises :class:`ResponseTooLarge`.

    Response heads (session-wide): a head of more than ``max_response_head_size`` bytes (64 KiB)
    or ``max_response_headers`` header fields (100), interim 1xx heads included, raises
    :class:`RemoteProtocolError` and closes its connection; ``None`` lifts a limit. On HTTP/2
    the size is the header list size announced to the server (see
    :class:`~ferryman.client.transport.AsyncConnectionPool`).

    HTTP cache (off by default): ``cache=True`` keeps answers in a private in-memory cache,
    ``cache=HttpCache(...)`` in the one given (its store, shared or private, its TTL...); hits
    are answered before the filter events, ``response.extensions["cache_status"]`` says how
    each answer came (see :mod:`ferryman.client.cache`).
    """

    def __init__(
        self,
        *,
        base_url: URL | str | None = None,
        params: QueryParamsTypes | None = None,
        headers: HeadersTypes | None = None,
        cookies: Cookies | Mapping[str, str] | None = None,
        store_cookies: bool = True,
        auth: Any = None,
        timeout: TimeoutTypes = DEFAULT_TIMEOUT,
        verify: Any = True,
        cert: Any = None,
        proxies: Mapping[str, str | URL | None] | None = None,
        trust_env: bool = True,
        max_redirects: int = DEFAULT_MAX_REDIRECTS,
        decompress: bool = True,
        stream: bool = False,
        pool_size: int = 10,
        max_connections: int | None = 100,
        keepalive_expiry: float | None = 5.0,
        retries: int = 0,
        http1: bool = True,
        http2: bool = False,
        transport: AsyncTransport | None = None,
        dispatcher: EventDispatcher | None = None,
        default_encoding: str | None = None,
        client_version: str = USER_AGENT,
        max_decompression_ratio: float | None = DEFAULT_MAX_DECOMPRESSION_RATIO,
        decompression_bomb_threshold: int = DEFAULT_DECOMPRESSION_BOMB_THRESHOLD,
        max_body_size: int | None = None,
        max_response_head_size: int | None = DEFAULT_MAX_RESPONSE_HEAD,
        max_response_headers: int | None = DEFAULT_MAX_RESPONSE_HEADERS,
        cache: HttpCache | bool | None = None,
    ) -> None:
        self.base_url = None if base_url is None else URL(base_url)
        self.params = params
        self.headers = Headers(
            [
                (b"User-Agent", client_version.encode("ascii")),
                (b"Accept", b"*/*"),
                (b"Accept-Encoding", ACCEPT_ENCODING),
            ]
        )
        if headers is not None:
            self.headers.update(headers)
        self.cookies = Cookies(cookies)
        self.store_cookies = store_cookies
        self.auth: Auth | None = to_auth(auth)
        self.timeout = to_timeout(timeout)
        self.max_redirects = max_redirects
        self.decompress = decompress
        self.stream = stream
        self.default_encoding = default_encoding
        # The bounds a body is decoded and buffered within (see ClientBodyStream).
        self._body_limits = BodyLimits(
            max_decompression_ratio, decompression_bomb_threshold, max_body_size
        )
        self._cap_bodies = max_body_size is not None  # every body is wrapped, to be counted
        self._router = TransportRouter(
            verify=verify,
            cert=cert,
            proxies=proxies,
            trust_env=trust_env,
            pool_size=pool_size,
            max_connections=max_connections,
            keepalive_expiry=keepalive_expiry,
            retries=retries,
            http1=http1,
            http2=http2,
            transport=transport,
            dispatcher=dispatcher,
            max_response_head_size=max_response_head_size,
            max_response_headers=max_response_headers,
            cache=HttpCache() if cache is True else (cache or None),
        )
        self._events = {name: EventHandlers(name) for name in EVENT_NAMES}
        self._pre_request = self._events["pre_request"]
        self._on_headers = self._events["on_headers"]
        self._post_request = self._events["post_request"]
        self._data_received = self._events["data_received"]
        self._data_processed = self._events["data_processed"]
        self._url_cache: dict[str, URL] = {}
        self._closed = False

    # -- events -------------------------------------------------------------------------------

    def event(self, name: str) -> EventHandlers:
        """The session-level handlers of one event: ``client.event("on_headers").bind(fn)``."""
        try:
            return self._events[name]
        except KeyError:
            raise ValueError(
                f"unknown client event {name!r}; the events are {', '.join(EVENT_NAMES)}"
            ) from None

    @property
    def transport(self) -> AsyncTransport:
        """The transport requests without per-request overrides go through."""
        return self._router.default

    @property
    def dispatcher(self) -> EventDispatcher | None:
        return self._router.dispatcher

    # -- verbs --------------------------------------------------------------------------------

    # The verbs are plain functions returning ``request()``'s coroutine: ``await client.get()``
    # works as with coroutine functions, without a second coroutine for every request.

    def get(self, url: URL | str, **kwargs: Any) -> Coroutine[Any, Any, Any]:
        return self.request("GET", url, **kwargs)

    def options(self, url: URL | str, **kwargs: Any) -> Coroutine[Any, Any, Response]:
        return self.request("OPTIONS", url, **kwargs)

    def head(self, url: URL | str, **kwargs: Any) -> Coroutine[Any, Any, Response]:
        return self.request("HEAD", url, **kwargs)

    def post(self, url: URL | str, **kwargs: Any) -> Coroutine[Any, Any, Response]:
        return self.request("POST", url, **kwargs)

    def put(self, url: URL | str, **kwargs: Any) -> Coroutine[Any, Any, Response]:
        return self.request("PUT", url, **kwargs)

    def patch(self, url: URL | str, **kwargs: Any) -> Coroutine[Any, Any, Response]:
        return self.request("PATCH", url, **kwargs)

    def delete(self, url: URL | str, **kwargs: Any) -> Coroutine[Any, Any, Response]:
        return self.request("DELETE", url, **kwargs)

    async def request(
        self,
        method: str,
        url: URL | str,
        *,
        params: QueryParamsTypes | None = None,
        headers: HeadersTypes | None = None,
        cookies: Cookies | Mapping[str, str] | None = None,
        auth: Any = _UNSET,
        content: Any = None,
        data: Any = None,
        files: Any = None,
        json: Any = None,
        timeout: TimeoutTypes = _UNSET,
        allow_redirects: bool | None = None,
        max_redirects: int | None = None,
        decompress: bool | None = None,
        stream: bool | None = None,
        verify: Any = _UNSET,
        cert: Any = _UNSET,
        proxies: Mapping[str, str | URL | None] | None = _UNSET,
        http2: bool | None = None,
        pool_size: int | None = None,
        websocket_handler: Any = None,
        subprotocols: Sequence[str] | str | None = None,
        websocket_extensions: Sequence[Extension] | None = None,
        extensions: dict[str, Any] | None = None,
        pre_request: Handler | Iterable[Handler] | None = None,
        on_headers: Handler | Iterable[Handler] | None = None,
        post_request: Handler | Iterable[Handler] | None = None,
        data_received: Handler | Iterable[Handler] | None = None,
        data_processed: Handler | Iterable[Handler] | None = None,
    ) -> Any:
        """Send a request and return its :class:`Response` (read in full unless ``stream``).

        With ``websocket_handler``, ``subprotocols`` or ``websocket_extensions`` (or a
        ``ws://``/``wss://`` URL) the request is a WebSocket upgrade and the return value is
        the open :class:`WebSocketConnection`. ``subprotocols`` are offered in order of
        preference (the server's choice is ``ws.subprotocol``); ``websocket_extensions`` are
        wsproto extension objects, e.g. ``[PerMessageDeflate()]``, copied for each connection.
        """
        if self._closed:
            raise RuntimeError("this client has been closed")
        request = self._build_request(
            method, url, params, headers, cookies, content, data, files, json, timeout, extensions
        )
        transport = self._router.unrouted
        if transport is None or not (
            verify is _UNSET
            and cert is _UNSET
            and proxies is _UNSET
            and http2 is None
            and pool_size is None
        ):
            transport = self._router.select(request.url, verify, cert, proxies, http2, pool_size)
        if (
            websocket_handler is not None
            or subprotocols is not None
            or websocket_extensions is not None
            or request.url.scheme in ("ws", "wss")
        ):
            # An upgrade needs HTTP/1.1: an h2 pool would strip its Upgrade headers.
            transport = self._router.select(request.url, verify, cert, proxies, False, pool_size)
            return await self._connect_websocket(
                transport, request, websocket_handler, subprotocols, websocket_extensions
            )
        handlers = self._handlers_for(
            pre_request, on_headers, post_request, data_received, data_processed
        )
        exchange = _Exchange(
            transport,
            self.cookies if self.store_cookies else None,
            self.decompress if decompress is None else decompress,
            self.stream if stream is None else stream,
            handlers,
        )
        target = request.url
        if auth is _UNSET:
            auth_flow = self.auth
            if auth_flow is None and target._userinfo:
                auth_flow = to_auth((target.username, target.password))
        else:
            auth_flow = to_auth(auth)
        if target._userinfo:  # credentials travel in Authorization, never on the wire's URL
            request.url = target.copy_with(username=None, password=None)
        if allow_redirects is None:
            allow_redirects = method != "HEAD" and method != "head"
        if auth_flow is None:
            response = await self._send_single(request, exchange, False)
            if allow_redirects and response.status_code in REDIRECT_STATUS_CODES:
                return await self._follow_redirects(
                    request, response, exchange, max_redirects, None, False
                )
            return response
        return await self._send_with_auth(
            request, exchange, auth_flow, allow_redirects, max_redirects
        )

    async def send(
        self,
        request: Request,
        *,
        stream: bool | None = None,
        allow_redirects: bool = False,
        max_redirects: int | None = None,
        decompress: bool | None = None,
        timeout: TimeoutTypes = _UNSET,
        verify: Any = _UNSET,
        cert: Any = _UNSET,
        proxies: Mapping[str, str | URL | None] | None = _UNSET,
        http2: bool | None = None,
        pool_size: int | None = None,
        pre_request: Handler | Iterable[Handler] | None = None,
        on_headers: Handler | Iterable[Handler] | None = None,
        post_request: Handler | Iterable[Handler] | None = None,
        data_received: Handler | Iterable[Handler] | None = None,
        data_processed: Handler | Iterable[Handler] | None = None,
    ) -> Response:
        """Send a request that is already prepared, exactly as it is.

        Unlike ``request()``, nothing is added: no default headers (``User-Agent``,
        ``Accept-Encoding``...), no cookies from the jar, no authentication, no base URL. This
        is what a proxy needs, relaying a request it did not write. It still goes through the
        same transports, filter events (with ``dispatcher=``), handlers, and decoding (unless
        ``decompress=False``) as ``request()``. Redirects are not followed unless asked.
        ``timeout`` replaces the request's ``timeout`` extension; without it, the extension
        the request carries applies, and the session's timeout when it carries none.
        """
        if self._closed:
            raise RuntimeError("this client has been closed")
        extensions = request.extensions
        if timeout is not _UNSET:
            extensions["timeout"] = to_timeout(timeout).as_dict()
        elif "timeout" not in extensions:
            extensions["timeout"] = self.timeout.as_dict()
        transport = self._router.select(request.url, verify, cert, proxies, http2, pool_size)
        exchange = _Exchange(
            transport,
            self.cookies if self.store_cookies else None,
            self.decompress if decompress is None else decompress,
            self.stream if stream is None else stream,
            self._handlers_for(
                pre_request, on_headers, post_request, data_received, data_processed
            ),
        )
        return await self._send_following_redirects(
            request, exchange, allow_redirects, max_redirects
        )

    def _handlers_for(
        self,
        pre_request: Handler | Iterable[Handler] | None,
        on_headers: Handler | Iterable[Handler] | None,
        post_request: Handler | Iterable[Handler] | None,
        data_received: Handler | Iterable[Handler] | None,
        data_processed: Handler | Iterable[Handler] | None,
    ) -> dict[str, tuple[Handler, ...]] | None:
        """The session's handlers joined with one call's, or ``None`` when there are none."""
        if not (
            self._pre_request._handlers
            or self._on_headers._handlers
            or self._post_request._handlers
            or self._data_received._handlers
            or self._data_processed._handlers
            or pre_request is not None
            or on_headers is not None
            or post_request is not None
            or data_received is not None
            or data_processed is not None
        ):
            return None
        return {
            "pre_request": combine(self._pre_request, pre_request),
            "on_headers": combine(self._on_headers, on_headers),
            "post_request": combine(self._post_request, post_request),
            "data_received": combine(self._data_received, data_received),
            "data_processed": combine(self._data_processed, data_processed),
        }

    def build_request(
        self,
        method: str,
        url: URL | str,
        *,
        params: QueryParamsTypes | None = None,
        headers: HeadersTypes | None = None,
        cookies: Cookies | Mapping[str, str] | None = None,
        content: Any = None,
        data: Any = None,
        files: Any = None,
        json: Any = None,
        timeout: TimeoutTypes = _UNSET,
        extensions: dict[str, Any] | None = None,
    ) -> Request:
        """The request ``request()`` would send first, with the session's defaults applied."""
        return self._build_request(
            method, url, params, headers, cookies, content, data, files, json, timeout, extensions
        )

    def _build_request(
        self,
        method: str,
        url: URL | str,
        params: QueryParamsTypes | None,
        headers: HeadersTypes | None,
        cookies: Cookies | Mapping[str, str] | None,
        content: Any,
        data: Any,
        files: Any,
        json: Any,
        timeout: TimeoutTypes,
        extensions: dict[str, Any] | None,
    ) -> Request:
        # build_request() with positional parameters: matching eleven keywords costs more
        # than the rest of a GET's preparation.
        url = self._merge_url(url)
        if self.params:
            url = url.copy_merge_params(self.params)
        if params:
            url = url.copy_merge_params(params)
        raw = [(b"Host", url.host_header), *self.headers._raw]
        merged = Headers.from_raw(raw)
        if headers:
            for name, value in Headers(headers).multi_items():
                merged[name] = value
        stream: Any
        length: int | None
        if content is None and data is None and files is None and json is None:
            stream, length = EMPTY_STREAM, 0
        else:
            content_headers, stream, length = encode_request(
                content=content, data=data, files=files, json=json
            )
            for name_b, value_b in content_headers:
                if name_b.decode("latin-1") not in merged:
                    merged.add(name_b, value_b)
        timeouts = self.timeout if timeout is _UNSET else to_timeout(timeout)
        request_extensions: dict[str, Any] = {"timeout": timeouts._as_dict}
        if extensions:
            request_extensions.update(extensions)
        request = Request.from_parts(method, url, merged, stream, length, request_extensions)
        jar = self.cookies
        if cookies:
            jar = Cookies(jar)
            jar.update(Cookies(cookies))
        if jar:
            jar.set_cookie_header(request)
        return request

    def _merge_url(self, url: URL | str) -> URL:
        if isinstance(url, URL):
            parsed = url
        else:
            # Clients call the same few URLs again and again; parsing one (IDNA, IP checks,
            # percent-encoding) costs more than the rest of the request's preparation.
            # URLs are immutable, so a parsed one can be shared.
            cache = self._url_cache
            cached = cache.get(url)
            if cached is None:
                if len(cache) >= _URL_CACHE_SIZE:
                    cache.clear()
                cached = cache[url] = URL(url)
            parsed = cached
        base = self.base_url
        if base is None or parsed.is_absolute_url:
            return parsed
        # Like httpx: a relative path is appended to the base URL's path.
        base_path = base.raw_path.split(b"?", 1)[0]
        if not base_path.endswith(b"/"):
            base_path += b"/"
        return base.copy_with(raw_path=base_path + parsed.raw_path.lstrip(b"/"))

    async def _connect_websocket(
        self,
        transport: AsyncTransport,
        request: Request,
        handler: Any,
        subprotocols: Sequence[str] | str | None,
        extensions: Sequence[Extension] | None,
    ) -> WebSocketConnection:
        """Upgrade to a WebSocket: the session's headers and cookies go with the handshake."""
        headers = Headers(request.headers)
        headers.pop("accept-encoding", None)  # no compressed HTTP body will follow
        upgrade, handshake = handshake_request(
            request.url, headers=headers, subprotocols=subprotocols or (), extensions=extensions
        )
        upgrade.extensions = request.extensions
        response = await transport.handle_async_request(upgrade)
        return await open_websocket(response, handshake, handler)

    # -- auth and redirects -------------------------------------------------------------------

    async def _send_with_auth(
        self,
        request: Request,
        exchange: _Exchange,
        auth: Auth,
        allow_redirects: bool,
        max_redirects: int | None,
    ) -> Response:
        flow = auth.async_auth_flow(request)
        history: list[Response] = []
        try:
            request = await flow.__anext__()
            while True:
                response = await self._send_following_redirects(
                    request,
                    exchange,
                    allow_redirects,
                    max_redirects,
                    history,
                    read=auth.requires_response_body,
                )
                try:
                    next_request = await flow.asend(response)
                except StopAsyncIteration:
                    return response
                # ``response.history`` already starts with ``history`` (passed down above).
                history = [*response.history, response]
                await response.aclose()
                request = next_request
        finally:
            await flow.aclose()

    async def _send_following_redirects(
        self,
        request: Request,
        exchange: _Exchange,
        allow_redirects: bool,
        max_redirects: int | None,
        history: list[Response] | None = None,
        read: bool = False,
    ) -> Response:
        response = await self._send_single(request, exchange, read)
        if allow_redirects and response.status_code in REDIRECT_STATUS_CODES:
            return await self._follow_redirects(
                request, response, exchange, max_redirects, history, read
            )
        if history:
            response.history = [*history]
        return response

    async def _follow_redirects(
        self,
        request: Request,
        response: Response,
        exchange: _Exchange,
        max_redirects: int | None,
        history: list[Response] | None,
        read: bool,
    ) -> Response:
        """Follow the redirect ``response`` answered to ``request``, and the ones after it."""
        limit = self.max_redirects if max_redirects is None else max_redirects
        chain: list[Response] = []
        while response.has_header(b"location"):
            if len(chain) >= limit:
                await response.aclose()
                raise TooManyRedirects(
                    f"exceeded max_redirects={limit} following redirects from "
                    f"{(chain[0] if chain else response).url}; the last Location was "
                    f"{response.headers.get('location')!r}",
                    request=request,
                    history=[*chain, response],
                )
            if response._content is None:
                await response.aread()  # a streamed hop: drain it so its connection is reused
            next_request = build_redirect_request(request, response)
            if self.cookies and exchange.cookies is not None:
                self.cookies.set_cookie_header(next_request)
            chain.append(response)
            request = next_request
            response = await self._send_single(request, exchange, read)
            if response.status_code not in REDIRECT_STATUS_CODES:
                break
        if chain or history:
            response.history = [*(history or ()), *chain]
        return response

    # -- one exchange -------------------------------------------------------------------------

    async def _send_single(self, request: Request, exchange: _Exchange, read: bool) -> Response:
        handlers = exchange.handlers
        if handlers is not None and handlers["pre_request"]:
            await fire(handlers["pre_request"], request, "exc", None)
        started = time.perf_counter()
        try:
            response = await exchange.transport.handle_async_request(request)
        except BaseException as exc:
            if handlers is not None and handlers["post_request"]:
                await _fire_failed(handlers["post_request"], request, exc)
            raise
        response._elapsed = time.perf_counter() - started
        if response.request is None:
            response.request = request
        if self.default_encoding is not None:
            response.default_encoding = self.default_encoding
        # Which of the headers the client acts on are there: one scan of the raw head rather
        # than building Headers for every response (false positives only cost the exact check).
        if response._headers is None:
            head = response._raw_head.lower()
            # find(), not ``in``: ``bytes in bytes`` first tries the needle as an int and
            # raises and clears a TypeError inside, every time.
            has_cookies = head.find(b"\nset-cookie:") >= 0
            encoded = head.find(b"\ncontent-encoding:") >= 0
        else:
            has_cookies = "set-cookie" in response._headers
            encoded = "content-encoding" in response._headers
        try:
            if handlers is not None and handlers["on_headers"]:
                await fire(handlers["on_headers"], response, "exc", None)
            if has_cookies and exchange.cookies is not None:
                exchange.cookies.extract_cookies(response)
            read_now = not exchange.stream or read
            if handlers is not None or (encoded and exchange.decompress) or self._cap_bodies:
                self._wrap_body(response, exchange, read_now, encoded)
            if read_now:
                if response._read_if_complete() is None:  # (no coroutine when it is all there)
                    await response.aread()
                if handlers is not None and handlers["post_request"]:
                    await fire(handlers["post_request"], response, "exc", None)
        except BaseException:
            await response.aclose()
            raise
        return response

    def _wrap_body(
        self, response: Response, exchange: _Exchange, read_now: bool, encoded: bool
    ) -> None:
        handlers = exchange.handlers
        decoder = None
        if encoded and exchange.decompress:
            decoder = get_content_decoder(response.headers.get("content-encoding"))
        received: tuple[Handler, ...] = ()
        processed: tuple[Handler, ...] = ()
        done: tuple[Handler, ...] = ()
        if handlers is not None:
            received = handlers["data_received"]
            processed = handlers["data_processed"]
            if not read_now:  # a streamed body: post_request fires when it ends
                done = handlers["post_request"]
        if decoder is None and not received and not processed and not done and not self._cap_bodies:
            return
        stream = response.stream
        if not isinstance(stream, AsyncByteStream):
            return  # a forged sync-only body: nothing to observe on this face

        async def on_done(exc: BaseException | None) -> None:
            await fire(done, response, "exc", exc)

        response.stream = ClientBodyStream(
            stream,
            response,
            decoder,
            received,
            processed,
            on_done if done else None,
            self._body_limits,
        )

    # -- closing ------------------------------------------------------------------------------

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await self._router.aclose()

    @property
    def is_closed(self) -> bool:
        return self._closed

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True) and self._router.has_open_connections():
            warnings.warn(
                f"{self!r} was not closed and still holds connections; use `async with "
                "AsyncClient()` or await client.aclose()",
                ResourceWarning,
                stacklevel=2,
            )

    def __repr__(self) -> str:
        return f"<AsyncClient {'closed' if self._closed else 'open'}>"


async def _fire_failed(handlers: tuple[Handler, ...], request: Request, exc: BaseException) -> None:
    """``post_request`` of an exchange that got no response: handlers see the request."""
    await fire(handlers, request, "exc", exc)
