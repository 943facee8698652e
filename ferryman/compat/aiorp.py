"""aiorp's API over ferryman's proxy: code written for aiorp runs with its imports changed.

::

    from ferryman.compat.aiorp import HTTPProxyHandler, MiddlewarePhase, ProxyContext, ...
    # was: from aiorp import HTTPProxyHandler, MiddlewarePhase, ProxyContext, ...

    ctx = ProxyContext(url="http://api.internal", state={"resource_name": "target-A"})
    handler = HTTPProxyHandler(ctx=ctx, request_options={"max_redirects": 5})

    @handler.client_edge
    def log_resource(ctx: ProxyContext):
        print(ctx.state["resource_name"])

    app = web.Application()
    app.router.add_route("*", "/{path:.*}", handler)   # an aiohttp route handler, as aiorp's

ferryman's own proxy (:mod:`ferryman.proxy`) already has aiorp's shapes: contexts with a state
copied per request, middleware phases from 0 to 1000 and their decorators, ``Rewrite``. What
differs, and what this face does about it:

* **Mounting on aiohttp.** aiorp's handler is an aiohttp route handler (one ``web.Request`` in,
  a response out); ferryman's is an ASGI app. This one is both: called with a ``web.Request``,
  it serves the request through ferryman's ASGI face and streams the answer into a
  ``web.StreamResponse`` (reason phrase and header names as the upstream spelled them).
  aiohttp keeps a handler running when its client leaves unless the application is run with
  ``handler_cancellation=True``; with it, the upstream call is cancelled too.
* **Errors.** aiorp calls the upstream with aiohttp and ``raise_for_status()``: an upstream
  answer of 400 or more becomes a ``ClientResponseError``, handed to ``error_handler(err)``,
  which is expected to raise an aiohttp ``HTTPException`` (that is the answer); if it returns,
  or there is none, the answer is aiorp's ``500 External API Error`` with
  ``{"status": ..., "message": ...}``. The same happens here, right after the upstream call, so
  no middleware's way out runs for such an answer (in aiorp, neither). Upstreams that cannot be
  reached keep ferryman's answers (a JSON 502, 503 or 504), where aiorp let aiohttp's exception
  through as a bare 500.
* **request_options** are aiohttp's ``ClientSession.request`` keywords. Those with a ferryman
  equivalent are mapped (:func:`ferryman_request_options`); the others are refused when the
  handler is built, each with the reason, rather than ignored on every request. Redirects are
  followed unless ``allow_redirects=False``, as aiohttp does.
* **session_factory** may return an aiohttp ``ClientSession``, as in aiorp's documentation: its
  connector's limits (``limit``, ``limit_per_host``) and default headers shape the ferryman
  http client that makes the calls, and the aiohttp session itself is closed unused.

aiohttp is an optional extra: ``pip install ferryman[aiorp]``.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import ssl
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from typing import Any

try:
    from aiohttp import ClientResponseError, ClientSession, ClientTimeout, RequestInfo, web
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError("ferryman.compat.aiorp needs aiohttp: pip install 'ferryman[aiorp]'") from exc
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL as YarlURL

from ferryman.client.config import Timeout
from ferryman.client.session import AsyncClient
from ferryman.events import EventDispatcher
from ferryman.http.models import Request, Response
from ferryman.http.url import URL
from ferryman.proxy.context import PROXY_POOL_SIZE
from ferryman.proxy.context import ProxyContext as _ProxyContext
from ferryman.proxy.handler import DEFAULT_TIMEOUT
from ferryman.proxy.handler import HTTPProxyHandler as _HTTPProxyHandler
from ferryman.proxy.middleware import MiddlewarePhase, ProxyMiddlewareDef
from ferryman.proxy.rewrite import Rewrite
from ferryman.server.asgi import RAW_HEADERS, REASON

__all__ = [
    "AiorpErrorHandler",
    "HTTPProxyHandler",
    "MiddlewarePhase",
    "ProxyContext",
    "ProxyMiddlewareDef",
    "Rewrite",
    "ferryman_request_options",
]

#: aiorp's ``error_handler(err)``: raises the aiohttp ``HTTPException`` to answer with.
AiorpErrorHandler = Callable[[ClientResponseError], object]

# What aiorp refuses itself: the request's own parts come from the request.
_REQUEST_PARTS = ("method", "url", "headers", "params", "data")
_WHY_NOT: Mapping[str, str] = {
    "read_until_eof": (
        "read_until_eof=False (an answer without Content-Length or chunks read as empty) has "
        "no ferryman equivalent: such an answer is read until the upstream closes, as HTTP/1.1 "
        "says; leave it out (True is what ferryman does)"
    ),
    "raise_for_status": "the handler already turns an answer >= 400 into error_handler(err)",
    "auto_decompress": "a proxy relays bodies with their Content-Encoding, never decoded",
    "json": "the body comes from the request",
    "cookies": "a proxy relays the client's cookies and keeps none",
    "auth": "set the header in a middleware: ctx.upstream_request.headers['Authorization']",
}


def ferryman_request_options(
    options: Mapping[str, Any] | None,
) -> tuple[dict[str, Any], Timeout | None]:
    """aiohttp's ``request`` keywords as ferryman's (``AsyncClient.send``'s) and the
    handler's timeout, or ``ValueError`` naming each keyword that has no equivalent."""
    mapped: dict[str, Any] = {"allow_redirects": True}  # aiohttp's default
    timeout: Timeout | None = None
    problems: list[str] = []
    for key, value in (options or {}).items():
        if key in _REQUEST_PARTS:
            problems.append(
                f"{key}: the request options can't contain method, url, headers, params or "
                "data; change ctx.upstream_request in a middleware"
            )
        elif key in ("allow_redirects", "max_redirects"):
            mapped[key] = value
        elif key == "read_until_eof" and value is True:
            pass
        elif key in ("ssl", "verify_ssl"):
            if value is False or isinstance(value, ssl.SSLContext):
                mapped["verify"] = value
            elif value is not True and value is not None:
                problems.append(f"{key}: only True, False or an ssl.SSLContext map to verify=")
        elif key == "proxy":
            mapped["proxies"] = None if value is None else {"all": str(value)}
        elif key == "timeout":
            try:
                timeout = _timeout_of(value)
            except ValueError as exc:
                problems.append(f"timeout: {exc}")
        else:
            reason = _WHY_NOT.get(key, "aiohttp's option has no ferryman equivalent")
            problems.append(f"{key}: {reason}")
    if problems:
        raise ValueError("request_options: " + "; ".join(problems))
    return mapped, timeout


def _timeout_of(value: object) -> Timeout:
    if not isinstance(value, ClientTimeout):
        raise ValueError(f"an aiohttp.ClientTimeout, got {value!r}")
    if value.total is not None:
        raise ValueError(
            "total has no equivalent (ferryman bounds each phase, not the whole call): give "
            "sock_connect and sock_read"
        )
    connects = [t for t in (value.connect, value.sock_connect) if t is not None]
    return Timeout(
        connect=min(connects) if connects else DEFAULT_TIMEOUT.connect,
        read=value.sock_read if value.sock_read is not None else DEFAULT_TIMEOUT.read,
        write=DEFAULT_TIMEOUT.write,
        pool=DEFAULT_TIMEOUT.pool,
    )


class ProxyContext(_ProxyContext):
    """aiorp's ``ProxyContext``: ferryman's, whose ``session_factory`` may build an aiohttp
    ``ClientSession`` (see the module documentation)."""

    __slots__ = ("_aiohttp_sessions",)

    def __init__(
        self,
        url: URL | str | Sequence[URL | str],
        *,
        state: dict[str, Any] | None = None,
        session_factory: Callable[[], AsyncClient | ClientSession] | None = None,
        dispatcher: EventDispatcher | None = None,
    ) -> None:
        self._aiohttp_sessions: list[ClientSession] = []
        factory = None if session_factory is None else self._adapt(session_factory)
        super().__init__(url, state=state, session_factory=factory, dispatcher=dispatcher)

    def _adapt(
        self, factory: Callable[[], AsyncClient | ClientSession]
    ) -> Callable[[], AsyncClient]:
        def build() -> AsyncClient:
            session = factory()
            if isinstance(session, AsyncClient):
                return session
            if not isinstance(session, ClientSession):
                raise TypeError(
                    "session_factory returns an aiohttp.ClientSession or a ferryman.AsyncClient, "
                    f"not {type(session).__name__}"
                )
            self._aiohttp_sessions.append(session)  # closed (unused) with the context
            return _client_like(session)

        return build

    async def aclose(self) -> None:
        await super().aclose()
        sessions, self._aiohttp_sessions = self._aiohttp_sessions, []
        for session in sessions:
            await session.close()


def _client_like(session: ClientSession) -> AsyncClient:
    """A relaying ferryman client with ``session``'s connection limits and default headers."""
    connector = session.connector
    limit = connector.limit if connector is not None else 0
    per_host = connector.limit_per_host if connector is not None else 0
    return AsyncClient(
        headers=dict(session.headers),
        decompress=False,
        store_cookies=False,
        trust_env=False,
        pool_size=per_host or limit or PROXY_POOL_SIZE,
        max_connections=limit or None,  # (aiohttp's 0: no limit)
    )


class HTTPProxyHandler(_HTTPProxyHandler):
    """aiorp's ``HTTPProxyHandler``: an aiohttp route handler and an ASGI app, with aiorp's
    ``request_options`` and ``error_handler(err)``; see the module documentation. Other
    keywords are ferryman's handler's (``name``, ``preserve_host``, ``dispatcher``...)."""

    def __init__(
        self,
        context: _ProxyContext | None = None,
        *,
        ctx: _ProxyContext | None = None,
        request_options: Mapping[str, Any] | None = None,
        error_handler: AiorpErrorHandler | None = None,
        rewrite: Rewrite | None = None,
        **options: Any,
    ) -> None:
        mapped, timeout = ferryman_request_options(request_options)
        if timeout is not None:
            options.setdefault("timeout", timeout)
        super().__init__(context, ctx=ctx, request_options=mapped, rewrite=rewrite, **options)
        #: aiorp's handler of upstream answers >= 400 (ferryman's ``error_handler`` stays
        #: for failures to reach the upstream).
        self.aiorp_error_handler = error_handler
        _mark_as_coroutine_function(self)

    async def __call__(  # type: ignore[override]
        self, scope: Any, receive: Any = None, send: Any = None
    ) -> web.StreamResponse | None:
        """``handler(request)`` from aiohttp's router; ``handler(scope, receive, send)`` from
        an ASGI server."""
        if receive is None and send is None and isinstance(scope, web.BaseRequest):
            return await _serve_aiohttp(self, scope)
        await super().__call__(scope, receive, send)
        return None

    async def handle(self, request: Request) -> Response:
        try:
            return await super().handle(request)
        except web.HTTPException as error:  # aiorp's answer for an upstream error
            return _response_of(error)

    async def _forward(self, ctx: _ProxyContext) -> None:
        # (ferryman's fast relay, which makes its upstream calls itself, never serves this
        # handler: it always has request_options, which only the general path honours)
        await super()._forward(ctx)
        response = ctx.response
        # (the upstream's own answer: ferryman's error answers carry no http_version)
        if response is None or response.status_code < 400:
            return
        if "http_version" not in response.extensions:
            return
        await response.aclose()
        error = _client_response_error(ctx, response)
        if self.aiorp_error_handler is not None:
            result = self.aiorp_error_handler(error)
            if inspect.isawaitable(result):  # (aiorp calls it plainly; an async one works too)
                await result
        raise web.HTTPInternalServerError(
            reason="External API Error",
            content_type="application/json",
            text=json.dumps({"status": error.status, "message": error.message}),
        )


def _mark_as_coroutine_function(handler: HTTPProxyHandler) -> None:
    """Let aiohttp's router see the handler (an object whose ``__call__`` is ``async``) as the
    coroutine function it behaves as; unmarked, it is wrapped with a "Bare functions are
    deprecated" warning (as aiorp's own handler is)."""
    mark = getattr(inspect, "markcoroutinefunction", None)  # Python 3.12+
    if mark is not None:
        mark(handler)
    else:  # 3.11: what asyncio.iscoroutinefunction looks for
        handler._is_coroutine = getattr(asyncio.coroutines, "_is_coroutine", None)  # type: ignore[attr-defined]


def _client_response_error(ctx: _ProxyContext, response: Response) -> ClientResponseError:
    """What aiohttp's ``raise_for_status()`` raises for ``response``."""
    request = response.request or ctx.upstream_request
    assert request is not None
    url = YarlURL(str(request.url), encoded=True)
    headers = CIMultiDictProxy(CIMultiDict(request.headers.items()))
    return ClientResponseError(
        RequestInfo(url, request.method, headers, url),
        (),
        status=response.status_code,
        message=response.reason_phrase,
        headers=CIMultiDictProxy(CIMultiDict(response.headers.items())),
    )


def _response_of(error: web.HTTPException) -> Response:
    """An aiohttp ``HTTPException`` (the error handler's answer) as a ferryman response."""
    headers = [(name, value) for name, value in error.headers.items()]
    if error.content_type and not any(name.lower() == "content-type" for name, _ in headers):
        headers.append(("Content-Type", error.content_type))
    body = error.body
    return Response(
        error.status,
        headers=headers,
        content=body if isinstance(body, bytes) else b"",
        extensions={"reason_phrase": error.reason.encode("latin-1", "replace")},
    )


async def _serve_aiohttp(handler: HTTPProxyHandler, request: web.BaseRequest) -> web.StreamResponse:
    """Serve an aiohttp request through the handler's ASGI face (request target, client
    address, body stream and disconnect handling stay ferryman's)."""
    path, _, query = request.raw_path.partition("?")
    transport = request.transport
    peer = transport.get_extra_info("peername") if transport is not None else None
    local = transport.get_extra_info("sockname") if transport is not None else None
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": f"{request.version.major}.{request.version.minor}",
        "method": request.method,
        "scheme": request.scheme,
        "path": request.path,
        "raw_path": path.encode("latin-1"),
        "query_string": query.encode("latin-1"),
        "root_path": "",
        "headers": [(name.lower(), value) for name, value in request.raw_headers],
        "client": tuple(peer[:2]) if isinstance(peer, tuple) else None,
        "server": tuple(local[:2]) if isinstance(local, tuple) else None,
        "extensions": {RAW_HEADERS: {"headers": list(request.raw_headers)}},
    }
    body_done = False

    async def receive() -> dict[str, Any]:
        nonlocal body_done
        if not body_done:
            chunk = await request.content.readany()
            if chunk:
                return {"type": "http.request", "body": chunk, "more_body": True}
            body_done = True
            return {"type": "http.request", "body": b"", "more_body": False}
        # aiohttp tells a handler of its client leaving only by cancelling it (with
        # handler_cancellation=True), which cancels the upstream call too.
        await asyncio.Event().wait()
        return {"type": "http.disconnect"}  # (not reached)

    answer: web.StreamResponse | None = None

    async def send(message: MutableMapping[str, Any]) -> None:
        nonlocal answer
        if message["type"] == "http.response.start":
            reason = message.get(REASON)
            answer = web.StreamResponse(
                status=message["status"],
                reason=reason.decode("latin-1") if isinstance(reason, bytes) else None,
            )
            raw = message.get(RAW_HEADERS) or message["headers"]
            for name, value in raw:
                answer.headers.add(name.decode("latin-1"), value.decode("latin-1"))
            await answer.prepare(request)
        elif message["type"] == "http.response.body":
            assert answer is not None
            body = message.get("body", b"")
            if body:
                await answer.write(body)
            if not message.get("more_body", False):
                await answer.write_eof()

    await handler(scope, receive, send)
    if answer is None:  # (the ASGI face always answers; a server error if it did not)
        raise web.HTTPInternalServerError()
    return answer
