"""The ASGI kernel: turns ASGI scopes into requests, dispatches the core events around the
controller that answers them, and streams the answer back.

For an HTTP request::

    EVENT_CORE_REQUEST     a listener may set the controller, skipping the resolver
    resolver.resolve()     None: the JSON 404 controller
    EVENT_CORE_CONTROLLER  a listener may wrap or replace the controller
    controller(request)    a mounted ASGIApp gets (scope, receive, send) instead, and is done
    EVENT_CORE_VIEW        only for a non-Response result; then dicts and lists become JSON
    EVENT_CORE_RESPONSE    a listener may replace the response
    send                   the body streamed as it is produced

A ``websocket`` scope dispatches no event: the resolver may name an :class:`ASGIApp` to serve
it, and the handshake is refused otherwise (controllers answer HTTP requests only).

Each event costs one ``has_listeners`` look-up when nothing listens: the event object is only
built for listeners. Errors before the response starts become a logged, JSON 500 that tells the
client nothing about the cause; errors after it has started are left to the server, which cuts
the connection: the client must not take a truncated body for a whole one.
"""

from __future__ import annotations

import logging

from ferryman.events import Event, EventDispatcher
from ferryman.exceptions import InvalidURL
from ferryman.http.models import Request, Response
from ferryman.http.streams import EMPTY_STREAM
from ferryman.http.url import URL
from ferryman.server.asgi import ReceiveStream, request_from_scope, send_response
from ferryman.server.controllers import (
    ASGIApp,
    Receive,
    Scope,
    Send,
    error_response,
    not_found_controller,
)
from ferryman.server.events import (
    EVENT_CORE_CONTROLLER,
    EVENT_CORE_REQUEST,
    EVENT_CORE_RESPONSE,
    EVENT_CORE_STARTED,
    EVENT_CORE_VIEW,
    ControllerEvent,
    RequestEvent,
    ResponseEvent,
    ViewEvent,
)
from ferryman.server.resolvers import ControllerResolver

__all__ = ["ASGIKernel"]

logger = logging.getLogger("ferryman.server")


class ASGIKernel:
    """An ASGI 3 application answering through controllers chosen by ``resolver``."""

    __slots__ = ("_started", "_urls", "dispatcher", "resolver")

    def __init__(self, dispatcher: EventDispatcher, resolver: ControllerResolver) -> None:
        self.dispatcher = dispatcher
        self.resolver = resolver
        self._started = False
        self._urls: dict[tuple[object, ...], URL] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._serve_http(scope, receive, send)
        elif kind == "websocket":
            await self._serve_websocket(scope, receive, send)
        elif kind == "lifespan":
            await self._serve_lifespan(receive, send)
        else:
            # The ASGI spec asks applications to raise on scope types they do not know.
            raise ValueError(f"unsupported ASGI scope type {kind!r}")

    # -- http ---------------------------------------------------------------------------------

    async def _serve_http(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            request = request_from_scope(scope, ReceiveStream(receive), self._urls)
        except InvalidURL as exc:
            logger.debug("refused request target %r: %s", scope.get("raw_path"), exc)
            await send_response(error_response(400), send, scope=scope)
            return
        try:
            answer = await self._answer(request)
        except Exception:
            logger.exception("error while answering %s %s", request.method, request.url)
            answer = error_response(500)
        if isinstance(answer, ASGIApp):
            # Outside the try: the app may have started its own response before failing.
            await answer.app(scope, receive, send)
            return
        dispatcher = self.dispatcher
        if dispatcher.has_listeners(EVENT_CORE_RESPONSE):
            try:
                event = await dispatcher.adispatch(
                    EVENT_CORE_RESPONSE, ResponseEvent(request, answer)
                )
                answer = event.response
            except Exception:
                logger.exception("error while filtering the response to %s", request.url)
                await answer.aclose()  # may hold an upstream connection
                answer = error_response(500)
        await send_response(answer, send, head=request.method == "HEAD", scope=scope)

    async def _answer(self, request: Request) -> Response | ASGIApp:
        dispatcher = self.dispatcher
        controller = None
        if dispatcher.has_listeners(EVENT_CORE_REQUEST):
            controller = (
                await dispatcher.adispatch(EVENT_CORE_REQUEST, RequestEvent(request))
            ).controller
        if controller is None:
            controller = self.resolver.resolve(request)
            if controller is None:
                controller = not_found_controller
        if dispatcher.has_listeners(EVENT_CORE_CONTROLLER):
            controller = (
                await dispatcher.adispatch(
                    EVENT_CORE_CONTROLLER, ControllerEvent(request, controller)
                )
            ).controller
        if isinstance(controller, ASGIApp):
            return controller
        value = await controller(request)
        if isinstance(value, Response):
            return value
        return await self._render(request, value)

    async def _render(self, request: Request, value: object) -> Response:
        """Turn a controller's non-Response result into a response, or fail (-> 500)."""
        dispatcher = self.dispatcher
        if dispatcher.has_listeners(EVENT_CORE_VIEW):
            event = await dispatcher.adispatch(EVENT_CORE_VIEW, ViewEvent(request, value))
            if event.response is not None:
                return event.response
            value = event.value
        if isinstance(value, dict | list):
            return Response(200, json=value)
        raise TypeError(
            f"the controller answered {request.method} {request.url} with a "
            f"{type(value).__name__}, which is not a Response and no view listener rendered"
        )

    # -- websocket ------------------------------------------------------------------------------

    async def _serve_websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Hand the connection to the ASGI app the resolver names, or refuse the handshake."""
        try:
            target = self.resolver.resolve(request_from_scope(scope, EMPTY_STREAM, self._urls))
        except InvalidURL:
            target = None
        if isinstance(target, ASGIApp):
            await target.app(scope, receive, send)
            return
        message = await receive()
        if message["type"] == "websocket.connect":
            # Closing before accepting makes the server refuse the upgrade with a 403.
            await send({"type": "websocket.close", "code": 1000})

    # -- lifespan -------------------------------------------------------------------------------

    async def _serve_lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            kind = message["type"]
            if kind == "lifespan.startup":
                try:
                    await self._start()
                except Exception as exc:
                    logger.exception("the kernel failed to start")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif kind == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _start(self) -> None:
        # Flagged before dispatching: a second lifespan scope (the kernel mounted twice, a
        # server restarting its lifespan) must not start the listeners' services again.
        if self._started:
            return
        self._started = True
        if self.dispatcher.has_listeners(EVENT_CORE_STARTED):
            await self.dispatcher.adispatch(EVENT_CORE_STARTED, Event())

    def __repr__(self) -> str:
        return f"ASGIKernel(resolver={self.resolver!r})"
