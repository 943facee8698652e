"""WebSockets through :class:`~ferryman.proxy.handler.HTTPProxyHandler`'s ASGI face.

The client's handshake was accepted by the ASGI server; this opens a handshake of its own to the
upstream (its own key, the client's offered subprotocols, the endpoint's header rules) with
ferryman's WebSocket client, then relays messages both ways until either side closes, passing
close codes through. The fast relay (:mod:`ferryman.proxy.relay`) tunnels WebSocket bytes
instead and never gets here.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Final

from ferryman.client.websocket import WebSocketConnection, handshake_request, open_websocket
from ferryman.exceptions import TransportError
from ferryman.http.headers import Headers
from ferryman.http.streams import EMPTY_STREAM
from ferryman.proxy.context import ProxyContext
from ferryman.proxy.errors import upstream_error
from ferryman.proxy.logs import report_upstream
from ferryman.server.asgi import request_from_scope
from ferryman.server.controllers import Receive, Scope, Send

if TYPE_CHECKING:
    from ferryman.proxy.handler import HTTPProxyHandler

__all__ = ["relay_websocket"]

logger = logging.getLogger("ferryman.proxy")

#: Close codes that say something happened without a close frame: never sent in one.
_UNSENDABLE_CODES: Final = frozenset({1005, 1006, 1015})
#: Headers of the client's handshake that belong to its hop (the upstream one is our own).
_HANDSHAKE_HEADERS: Final = frozenset(
    {
        b"sec-websocket-key",
        b"sec-websocket-version",
        b"sec-websocket-extensions",
        b"sec-websocket-protocol",
        b"sec-websocket-accept",
    }
)


async def relay_websocket(
    handler: HTTPProxyHandler, scope: Scope, receive: Receive, send: Send
) -> None:
    """Relay a WebSocket: open one to the upstream, accept the client's, pass messages both
    ways until either side closes, and pass the close code on.

    The upstream handshake goes through the context's session transport (so the http client
    filter events see it), with the endpoint's forwarding headers and rules and the client's
    subprotocols. Middlewares and the proxy events do not run: they are about HTTP exchanges.
    Extensions (compression) are per hop: each side negotiates its own.
    """
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    request = request_from_scope(scope, EMPTY_STREAM, handler._scope_urls)
    ctx = handler.context.for_request(request, handler.name)
    try:
        handler._prepare(ctx, request.url)
        upstream = await _open_upstream(handler, ctx, scope)
    except TransportError as exc:
        upstream_request = ctx.upstream_request
        if upstream_request is None:
            logger.warning("endpoint %s: the upstream WebSocket could not be opened", handler.name)
        else:
            url = upstream_request.url
            error = upstream_error(exc, f"{url.scheme}://{url.host_header.decode('latin-1')}")
            report_upstream(error.kind, error.origin or "", f"{error.message} (a WebSocket)")
        await send({"type": "websocket.close", "code": 1011})  # before accept: a 403
        return
    except Exception as exc:
        failed = "endpoint %s: the upstream WebSocket could not be opened: %r"
        logger.error(failed, handler.name, exc)
        await send({"type": "websocket.close", "code": 1011})
        return
    await send({"type": "websocket.accept", "subprotocol": upstream.subprotocol})

    async def client_to_upstream() -> None:
        while True:
            message = await receive()
            kind = message["type"]
            if kind == "websocket.receive":
                text = message.get("text")
                await upstream.send(text if text is not None else message.get("bytes") or b"")
            elif kind == "websocket.disconnect":
                code = message.get("code", 1000)
                await upstream.close(1000 if code in _UNSENDABLE_CODES else code)
                return

    async def upstream_to_client() -> None:
        async for data in upstream:
            if isinstance(data, str):
                await send({"type": "websocket.send", "text": data})
            else:
                await send({"type": "websocket.send", "bytes": data})
        code = upstream.close_code
        await send(
            {
                "type": "websocket.close",
                "code": 1000 if code is None or code in _UNSENDABLE_CODES else code,
                "reason": upstream.close_reason,
            }
        )

    up = asyncio.ensure_future(client_to_upstream())
    down = asyncio.ensure_future(upstream_to_client())
    try:
        done, _ = await asyncio.wait((up, down), return_when=asyncio.FIRST_COMPLETED)
        if up in done and not down.done():
            # The client closed: the upstream's closing handshake ends its reader.
            await asyncio.wait((down,), timeout=_CLOSE_WAIT)
    finally:
        for task in (up, down):
            task.cancel()
        results = await asyncio.gather(up, down, return_exceptions=True)
        if not upstream.closed:
            await upstream.close()
        for result in results:
            if isinstance(result, Exception) and not isinstance(result, TransportError):
                logger.debug("endpoint %s: WebSocket relay ended with %r", handler.name, result)


_CLOSE_WAIT: Final = 10.0


async def _open_upstream(
    handler: HTTPProxyHandler, ctx: ProxyContext, scope: Scope
) -> WebSocketConnection:
    prepared = ctx.upstream_request
    assert prepared is not None
    raw = [
        (name, value)
        for name, value in prepared.headers.raw
        if name.lower() not in _HANDSHAKE_HEADERS
    ]
    # ASGI servers give the client's offer in ``subprotocols`` (some leave the header, too).
    offered = list(scope.get("subprotocols") or ()) or [
        token.strip()
        for name, value in scope["headers"]
        if name.lower() == b"sec-websocket-protocol"
        for token in value.decode("latin-1").split(",")
        if token.strip()
    ]
    upgrade, handshake = handshake_request(
        prepared.url, headers=Headers.from_raw(raw), subprotocols=offered
    )
    upgrade.extensions = dict(prepared.extensions)
    response = await ctx.session.transport.handle_async_request(upgrade)
    return await open_websocket(response, handshake)
