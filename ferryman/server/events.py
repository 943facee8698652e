"""The events the ASGI kernel dispatches around each request, with HARP's names and semantics.

In the order they fire for an HTTP request:

* ``EVENT_CORE_REQUEST`` (:class:`RequestEvent`): the request has arrived, nothing has been
  done with it. ``event.set_controller(...)`` skips controller resolution.
* ``EVENT_CORE_CONTROLLER`` (:class:`ControllerEvent`): a controller has been chosen; listeners
  may wrap or replace ``event.controller``.
* ``EVENT_CORE_VIEW`` (:class:`ViewEvent`): only when the controller returned something other
  than a :class:`~ferryman.http.Response`; ``event.set_response(...)`` renders it.
* ``EVENT_CORE_RESPONSE`` (:class:`ResponseEvent`): the response is about to be sent; listeners
  may replace ``event.response``.

``EVENT_CORE_STARTED`` fires once per kernel, on the ASGI ``lifespan.startup`` message, with a
plain :class:`~ferryman.events.Event`.

The kernel builds an event only when the dispatcher has a listener for its name.
"""

from __future__ import annotations

from typing import Final

from ferryman.events import Event
from ferryman.http.models import Request, Response
from ferryman.server.controllers import ASGIApp, Controller

__all__ = [
    "EVENT_CORE_CONTROLLER",
    "EVENT_CORE_REQUEST",
    "EVENT_CORE_RESPONSE",
    "EVENT_CORE_STARTED",
    "EVENT_CORE_VIEW",
    "ControllerEvent",
    "RequestEvent",
    "ResponseEvent",
    "ViewEvent",
]

EVENT_CORE_STARTED: Final = "core.started"
EVENT_CORE_REQUEST: Final = "core.request"
EVENT_CORE_CONTROLLER: Final = "core.controller"
EVENT_CORE_VIEW: Final = "core.view"
EVENT_CORE_RESPONSE: Final = "core.response"


class RequestEvent(Event):
    """A request has arrived; a listener may answer it by choosing its controller."""

    __slots__ = ("controller", "request")

    def __init__(self, request: Request) -> None:
        super().__init__()
        self.request = request
        self.controller: Controller | ASGIApp | None = None

    def set_controller(self, controller: Controller | ASGIApp) -> None:
        """Use ``controller`` for this request instead of asking the resolver.

        Propagation goes on, as in HARP: a later listener may still pick another controller.
        """
        self.controller = controller

    def __repr__(self) -> str:
        return f"<RequestEvent {self.request!r} controller={self.controller!r}>"


class ControllerEvent(Event):
    """A controller was chosen for the request; ``controller`` may be replaced or wrapped."""

    __slots__ = ("controller", "request")

    def __init__(self, request: Request, controller: Controller | ASGIApp) -> None:
        super().__init__()
        self.request = request
        self.controller = controller

    def __repr__(self) -> str:
        return f"<ControllerEvent {self.request!r} controller={self.controller!r}>"


class ViewEvent(Event):
    """The controller returned ``value``, which is not a response; a listener may render it.

    A listener may also replace ``value`` for the kernel's default rule (dicts and lists become
    JSON) to render.
    """

    __slots__ = ("request", "response", "value")

    def __init__(self, request: Request, value: object) -> None:
        super().__init__()
        self.request = request
        self.value = value
        self.response: Response | None = None

    def set_response(self, response: Response) -> None:
        """Answer with ``response``; the listeners after this one do not run (one renderer)."""
        self.response = response
        self.stop_propagation()

    def __repr__(self) -> str:
        return f"<ViewEvent {self.request!r} value={type(self.value).__name__}>"


class ResponseEvent(Event):
    """``response`` is about to be sent for ``request``; listeners may replace it."""

    __slots__ = ("request", "response")

    def __init__(self, request: Request, response: Response) -> None:
        super().__init__()
        self.request = request
        self.response = response

    def __repr__(self) -> str:
        return f"<ResponseEvent {self.request!r} -> {self.response!r}>"
