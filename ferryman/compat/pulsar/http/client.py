"""pulsar's ``HttpClient`` over ferryman's :class:`~ferryman.AsyncClient`.

What pulsar code expects and ferryman's client does differently, translated here:

- **One loop, sync or async.** As in pulsar, a request returns an awaitable while the
  client's event loop runs (in a coroutine) and the response itself otherwise (plain code runs
  the loop until it is done). The loop is ``loop=`` when given (pulsar's ``HttpClient(loop=
  new_event_loop())`` for a thread of its own); otherwise the running loop of the first call,
  or, called from plain code, a private loop the client keeps.
- **Its options and attributes**: ``version`` (HTTP/1.1 only), ``keep_alive`` (seconds an
  idle connection is kept), ``close_connections`` (``Connection: close`` on every request, so
  none is reused), ``websocket_handler``, ``client_version``, ``logger``, ``verify``,
  ``cert``, ``pool_size``, ``proxies`` (``"no"``: hosts reached directly), ``headers``
  starting from ``DEFAULT_HTTP_HEADERS``, ``connection_pools``, and ``close()``, after which
  the client still works, as pulsar's did.
- **``timeout``**: pulsar's bound on a whole request (to its head when streaming), as
  ``asyncio.TimeoutError``; ``None`` or ``0``, the default, puts no bound on reading and
  writing. Connecting and waiting for a pooled connection keep ferryman's 5 s, which no
  pulsar program can have relied on waiting past; a :class:`ferryman.Timeout` sets all four
  phases instead.
- **Events** receive what pulsar passed: an :class:`HttpResponse` whose ``request`` is set,
  from ``pre_request`` on. pulsar's own default handlers (cookies, redirects, 100-continue,
  upgrades, tunnels) are ferryman's built-in behaviour, so the lists start empty.
- Internals refused rather than ignored: ``parser=``, ``frame_parser=`` (ferryman parses with
  httptools and wsproto), ``source_address=`` per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine, Iterable, Mapping
from types import TracebackType
from typing import Any

from ferryman.client import AsyncClient, EventHandlers, Timeout
from ferryman.client.config import UNSET, USER_AGENT
from ferryman.client.hooks import EVENT_NAMES, Handler, combine
from ferryman.client.websocket import WebSocketConnection
from ferryman.compat.pulsar.http.exchanges import Exchanges
from ferryman.compat.pulsar.http.messages import PrintableHeaders
from ferryman.http import URL, Response
from ferryman.http.cookies import Cookies

__all__ = ["HttpClient"]

LOGGER = logging.getLogger("ferryman.compat.pulsar")
# Connecting and waiting for a pooled connection stay bounded when pulsar's timeout is None.
_PHASES_WITHOUT_PULSAR_TIMEOUT = Timeout(None, connect=5.0, pool=5.0)
_PROXY_SCHEMES = ("http", "https", "all", "ws", "wss")
_DIRECT = {scheme: None for scheme in _PROXY_SCHEMES}


class HttpClient:
    """A client for HTTP/HTTPS servers, as pulsar's; see the module for what it translates."""

    DEFAULT_HTTP_HEADERS: tuple[tuple[str, str], ...] = (
        ("Connection", "Keep-Alive"),
        ("Accept", "*/*"),
        ("Accept-Encoding", "deflate"),
        ("Accept-Encoding", "gzip"),
    )
    client_version = USER_AGENT
    version = "HTTP/1.1"
    max_redirects = 10

    def __init__(
        self,
        proxies: Mapping[str, str | None] | None = None,
        headers: Mapping[str, str | None] | Iterable[tuple[str, str | None]] | None = None,
        verify: Any = True,
        cookies: Mapping[str, str] | Cookies | None = None,
        store_cookies: bool = True,
        cert: Any = None,
        max_redirects: int = 10,
        decompress: bool = True,
        version: str | None = None,
        websocket_handler: Any = None,
        parser: Any = None,
        trust_env: bool = True,
        loop: asyncio.AbstractEventLoop | None = None,
        client_version: str | None = None,
        timeout: float | Timeout | None = None,
        stream: bool = False,
        pool_size: int = 10,
        frame_parser: Any = None,
        logger: logging.Logger | None = None,
        close_connections: bool = False,
        keep_alive: float | None = None,
    ) -> None:
        for name, value in (("parser", parser), ("frame_parser", frame_parser)):
            if value is not None:
                raise TypeError(
                    f"HttpClient({name}=...) is not supported: ferryman parses HTTP with "
                    "httptools and WebSocket frames with wsproto"
                )
        self.version = _checked_version(version or self.version)
        self.logger = logger or LOGGER
        self.client_version = client_version or self.client_version
        self.pool_size = pool_size
        self.trust_env = trust_env
        self.timeout = timeout
        self.store_cookies = store_cookies
        self.max_redirects = max_redirects
        self.cookies = cookies if isinstance(cookies, Cookies) else Cookies(cookies)
        self.decompress = decompress
        self.verify = verify
        self.cert = cert
        self.stream = stream
        self.close_connections = close_connections
        self.keep_alive = keep_alive
        self.websocket_handler = websocket_handler
        self.proxies: dict[str, str | None] = dict(proxies or ())
        self.headers = PrintableHeaders(self.DEFAULT_HTTP_HEADERS)
        self.headers["User-Agent"] = self.client_version
        _apply_headers(self.headers, headers)
        if close_connections:
            self.headers["Connection"] = "close"
        self._events = {name: EventHandlers(name) for name in EVENT_NAMES}
        self._given_loop = loop
        self._loop: asyncio.AbstractEventLoop | None = loop
        self._private_loop: asyncio.AbstractEventLoop | None = None
        self._client: AsyncClient | None = None

    # -- pulsar's API -------------------------------------------------------------------------

    def event(self, name: str) -> EventHandlers:
        """The client-level handlers of one event: ``client.event("on_headers").bind(fn)``."""
        try:
            return self._events[name]
        except KeyError:
            raise ValueError(
                f"unknown client event {name!r}; the events are {', '.join(EVENT_NAMES)}"
            ) from None

    @property
    def connection_pools(self) -> dict[str, Any]:
        """The connection pool holding connections to each origin (``scheme://host:port``)."""
        if self._client is None:
            return {}
        pool = self._client.transport
        connections = getattr(pool, "connections", ())
        return {_origin_text(conn.origin): pool for conn in connections}

    def get(self, url: str, **kwargs: Any) -> Any:
        """GET ``url``; redirects are followed unless ``allow_redirects=False``."""
        kwargs.setdefault("allow_redirects", True)
        return self.request("GET", url, **kwargs)

    def options(self, url: str, **kwargs: Any) -> Any:
        kwargs.setdefault("allow_redirects", True)
        return self.request("OPTIONS", url, **kwargs)

    def head(self, url: str, **kwargs: Any) -> Any:
        """HEAD ``url``; redirects are not followed (as for every verb but HEAD they are)."""
        return self.request("HEAD", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> Any:
        kwargs.setdefault("allow_redirects", True)
        return self.request("POST", url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> Any:
        kwargs.setdefault("allow_redirects", True)
        return self.request("PUT", url, **kwargs)

    def patch(self, url: str, **kwargs: Any) -> Any:
        kwargs.setdefault("allow_redirects", True)
        return self.request("PATCH", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> Any:
        kwargs.setdefault("allow_redirects", True)
        return self.request("DELETE", url, **kwargs)

    def request(self, method: str, url: str, **params: Any) -> Any:
        """Send a request: an awaitable of the :class:`HttpResponse` while the client's loop
        runs (the request goes at once, as pulsar's future did), the response itself from
        plain code. Redirects are not followed unless ``allow_redirects=True``."""
        return self._run(self._request(method, url, **params))

    def close(self) -> Any:
        """Close every connection; the client stays usable. Awaitable in a coroutine."""
        client, self._client = self._client, None
        loop = self._loop
        if client is None:
            return _done(loop) if loop is not None and _running_loop() is loop else None
        result = self._run(client.aclose())
        private = self._private_loop
        if private is not None and loop is private:
            # Plain code's loop: closed with the connections (a next request makes another).
            private.close()
            self._private_loop = self._loop = None
        return result

    async def __aenter__(self) -> HttpClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<HttpClient {self.version} pool_size={self.pool_size}>"

    # -- running on one loop --------------------------------------------------------------------

    def _run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        try:
            loop = self._loop_for_call()
        except BaseException:
            coro.close()
            raise
        if loop.is_running():
            return loop.create_task(coro)
        return loop.run_until_complete(coro)

    def _loop_for_call(self) -> asyncio.AbstractEventLoop:
        """The loop this call runs on, as pulsar chose it (see the module)."""
        running = _running_loop()
        loop = self._loop
        if loop is not None and loop.is_closed() and self._given_loop is None:
            self._client, loop = None, None  # (its connections died with their loop)
        if loop is None:
            if running is None:
                if self._private_loop is None or self._private_loop.is_closed():
                    self._private_loop = asyncio.new_event_loop()
                loop = self._private_loop
            else:
                loop = running
            self._loop = loop
        if loop.is_running() and loop is not running:
            raise RuntimeError(
                "this HttpClient runs on an event loop of another thread or coroutine stack; "
                "build one client per loop (or pass loop=)"
            )
        if running is not None and loop is not running:
            raise RuntimeError(
                "this HttpClient runs on another event loop than the one running here; build "
                "one client per loop (or pass loop=)"
            )
        return loop

    def _session(self) -> AsyncClient:
        client = self._client
        if client is None:
            timeout = self.timeout
            client = self._client = AsyncClient(
                store_cookies=self.store_cookies,
                timeout=timeout if isinstance(timeout, Timeout) else _PHASES_WITHOUT_PULSAR_TIMEOUT,
                verify=self.verify,
                cert=self.cert,
                proxies={k: v for k, v in self.proxies.items() if k != "no"},
                trust_env=self.trust_env,
                max_redirects=self.max_redirects,
                decompress=self.decompress,
                stream=self.stream,
                pool_size=self.pool_size,
                keepalive_expiry=self.keep_alive or 5.0,
            )
            # The client's own objects: changed here, they apply to the next request.
            client.headers = self.headers
            client.cookies = self.cookies
        return client

    # -- one request ------------------------------------------------------------------------------

    async def _request(
        self, method: str, url: str, *, timeout: float | Timeout | None = None, **options: Any
    ) -> Any:
        """pulsar's ``timeout`` (the client's, or this request's) bounds the whole exchange, to
        its head when the body streams; a :class:`ferryman.Timeout` sets each phase instead."""
        total = self.timeout if timeout is None else timeout
        if isinstance(total, Timeout):
            return await self._send(method, url, phase_timeouts=total, **options)
        if total:
            async with asyncio.timeout(total):
                return await self._send(method, url, **options)
        return await self._send(method, url, **options)

    async def _send(
        self,
        method: str,
        url: str,
        *,
        phase_timeouts: Timeout | None = None,
        params: Any = None,
        headers: Mapping[str, str | None] | Iterable[tuple[str, str | None]] | None = None,
        data: Any = None,
        files: Any = None,
        json: Any = None,
        auth: Any = None,
        cookies: Mapping[str, str] | None = None,
        allow_redirects: bool = False,
        max_redirects: int | None = None,
        decompress: bool | None = None,
        stream: bool | None = None,
        verify: Any = UNSET,
        cert: Any = UNSET,
        proxies: Mapping[str, str | None] | None = None,
        version: str | None = None,
        wait_continue: bool = False,
        websocket_handler: Any = None,
        charset: str | None = None,
        source_address: Any = None,
        pre_request: Handler | Iterable[Handler] | None = None,
        on_headers: Handler | Iterable[Handler] | None = None,
        post_request: Handler | Iterable[Handler] | None = None,
        data_received: Handler | Iterable[Handler] | None = None,
        data_processed: Handler | Iterable[Handler] | None = None,
    ) -> Any:
        version = _checked_version(version or self.version)
        if source_address is not None:
            raise TypeError(
                "source_address= per request is not supported: ferryman binds a source address "
                "per connection pool (ferryman.AsyncConnectionPool(local_address=...))"
            )
        client = self._session()
        handler = websocket_handler or self.websocket_handler
        if handler is not None or url.startswith(("ws://", "wss://")):
            socket: WebSocketConnection = await client.get(
                url, params=params, headers=_without_none(headers), websocket_handler=handler
            )
            return socket
        stream = self.stream if stream is None else stream
        extra_headers = _without_none(headers)
        removed = _removed(headers)
        if isinstance(data, str):
            data = data.encode(charset or "utf-8")
        if wait_continue and (data is not None or files is not None or json is not None):
            extra_headers["Expect"] = "100-continue"
        exchanges = Exchanges(version, wait_continue, stream)
        given = {
            "pre_request": pre_request,
            "on_headers": on_headers,
            "post_request": post_request,
            "data_received": data_received,
            "data_processed": data_processed,
        }
        hooks: dict[str, Any] = {}
        for name, extra in given.items():
            handlers = combine(self._events[name], extra)
            if handlers:
                hooks[name] = exchanges.hook(name, handlers)
        if removed:
            hooks["pre_request"] = exchanges.removing(removed, hooks.get("pre_request"))
        options: dict[str, Any] = {}
        if phase_timeouts is not None:
            options["timeout"] = phase_timeouts
        if proxies is not None or self.proxies.get("no"):
            options["proxies"] = self._proxies_for(url, proxies)
        response: Response = await client.request(
            method,
            url,
            params=params,
            headers=extra_headers,
            cookies=cookies,
            auth=UNSET if auth is None else auth,
            data=data,
            files=files,
            json=json,
            allow_redirects=allow_redirects,
            max_redirects=max_redirects,
            decompress=decompress,
            stream=stream,
            verify=verify,
            cert=cert,
            **options,
            **hooks,
        )
        return exchanges.final(response)

    def _proxies_for(
        self, url: str, proxies: Mapping[str, str | None] | None
    ) -> dict[str, str | None]:
        """The proxies of one request: the client's, the request's, and pulsar's ``"no"`` list
        (host suffixes reached directly)."""
        table = {**self.proxies, **(proxies or {})}
        no_proxy = table.pop("no", None) or ""
        host = URL(url).host
        if any(host.endswith(suffix.strip()) for suffix in no_proxy.split(",") if suffix.strip()):
            return dict(_DIRECT)
        return table


def _checked_version(version: str) -> str:
    if version.upper() != "HTTP/1.1":
        raise ValueError(
            f"version={version!r} is not supported: ferryman sends HTTP/1.1 requests "
            "(and HTTP/2 with ferryman.AsyncClient(http2=True))"
        )
    return "HTTP/1.1"


def _pairs(
    headers: Mapping[str, str | None] | Iterable[tuple[str, str | None]] | None,
) -> list[tuple[str, str | None]]:
    if headers is None:
        return []
    if isinstance(headers, Mapping):
        return list(headers.items())
    return list(headers)


def _apply_headers(target: PrintableHeaders, headers: Any) -> None:
    """pulsar's merge: each name given replaces the default; ``None`` removes it."""
    for name, value in _pairs(headers):
        if value is None:
            target.pop(name, None)
        else:
            target[name] = value


def _without_none(headers: Any) -> dict[str, str]:
    merged: dict[str, str] = {}
    for name, value in _pairs(headers):
        if value is not None:
            merged[name] = value
    return merged


def _removed(headers: Any) -> list[str]:
    return [name for name, value in _pairs(headers) if value is None]


def _origin_text(origin: Any) -> str:
    if isinstance(origin, tuple) and len(origin) == 3:
        scheme, host, port = origin
        return f"{_text(scheme)}://{_text(host)}:{port}"
    return str(origin)


def _text(value: Any) -> str:
    return value.decode("ascii") if isinstance(value, bytes) else str(value)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    with contextlib.suppress(RuntimeError):
        return asyncio.get_running_loop()
    return None


def _done(loop: asyncio.AbstractEventLoop) -> asyncio.Future[None]:
    future: asyncio.Future[None] = loop.create_future()
    future.set_result(None)
    return future
