"""Filter events for outbound requests: the hook the system (cache, mocks, policies) uses to
see, forge or replace what the http client sends and receives, as HARP's http_client does.

Every request going through :class:`AsyncFilterableTransport` dispatches
``EVENT_FILTER_HTTP_CLIENT_REQUEST`` with an :class:`HttpClientFilterEvent`. A listener that sets
``event.response`` bypasses the network: that forged response is what comes back. Then
``EVENT_FILTER_HTTP_CLIENT_RESPONSE`` is dispatched with the *same* event instance (response
set), and its listeners may replace the response. Since both dispatches share the instance,
``event.stop_propagation()`` in any listener skips all further filtering, for both events.

A listener written for HARP, whose events carry httpx models, may set ``event.response`` to an
``httpx.Response``: it is turned into a ferryman one right after that dispatch
(:mod:`ferryman.client.httpx_responses`), so later listeners and the caller see one kind.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any, Protocol

from ferryman.client.httpx_responses import as_ferryman_response
from ferryman.events import Event, EventDispatcher
from ferryman.http.models import Request, Response

__all__ = [
    "EVENT_FILTER_HTTP_CLIENT_REQUEST",
    "EVENT_FILTER_HTTP_CLIENT_RESPONSE",
    "AsyncFilterableTransport",
    "AsyncTransport",
    "HttpClientFilterEvent",
]

EVENT_FILTER_HTTP_CLIENT_REQUEST = "http_client.filter.request"
EVENT_FILTER_HTTP_CLIENT_RESPONSE = "http_client.filter.response"


class AsyncTransport(Protocol):
    """What a client sends requests through: a connection pool, a proxy pool, a wrapper."""

    async def handle_async_request(self, request: Request) -> Response: ...

    async def aclose(self) -> None: ...


class HttpClientFilterEvent(Event):
    """One outbound exchange under filtering: the request, and the response once there is one."""

    __slots__ = ("request", "response")

    def __init__(self, request: Request, response: Response | None = None) -> None:
        super().__init__()
        self.request = request
        self.response = response

    def __repr__(self) -> str:
        return f"<HttpClientFilterEvent {self.request!r} -> {self.response!r}>"


class AsyncFilterableTransport:
    """Wraps a transport so that every request and response goes through the filter events.

    With no listener on either event, the wrapper costs two dictionary look-ups per request.
    """

    def __init__(self, transport: AsyncTransport, dispatcher: EventDispatcher) -> None:
        self.transport = transport
        self.dispatcher = dispatcher

    async def handle_async_request(self, request: Request) -> Response:
        dispatcher = self.dispatcher
        if not (
            dispatcher.has_listeners(EVENT_FILTER_HTTP_CLIENT_REQUEST)
            or dispatcher.has_listeners(EVENT_FILTER_HTTP_CLIENT_RESPONSE)
        ):
            return await self.transport.handle_async_request(request)
        event = HttpClientFilterEvent(request)
        await dispatcher.adispatch(EVENT_FILTER_HTTP_CLIENT_REQUEST, event)
        if event.response is None:
            # A request listener may have replaced the request itself.
            event.response = await self.transport.handle_async_request(event.request)
        else:
            event.response = as_ferryman_response(event.response, EVENT_FILTER_HTTP_CLIENT_REQUEST)
        await dispatcher.adispatch(EVENT_FILTER_HTTP_CLIENT_RESPONSE, event)
        response = event.response
        if response is None:
            raise RuntimeError(
                f"a {EVENT_FILTER_HTTP_CLIENT_RESPONSE} listener removed the response "
                "instead of replacing it"
            )
        response = as_ferryman_response(response, EVENT_FILTER_HTTP_CLIENT_RESPONSE)
        if response.request is None:
            response.request = event.request
        return response

    async def aclose(self) -> None:
        await self.transport.aclose()

    async def __aenter__(self) -> AsyncFilterableTransport:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __getattr__(self, name: str) -> Any:
        # Pool introspection (``connections``...) passes through to the wrapped transport.
        return getattr(self.transport, name)
