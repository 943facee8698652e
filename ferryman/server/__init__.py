"""The server side: an ASGI 3 kernel that answers requests through controllers and core events.

See :mod:`ferryman.server.kernel` for the order of events around a request.
"""

from ferryman.server.asgi import ReceiveStream, request_from_scope, send_response
from ferryman.server.controllers import (
    ASGIApp,
    ASGIApplication,
    Controller,
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
from ferryman.server.kernel import ASGIKernel
from ferryman.server.resolvers import (
    ControllerResolver,
    DefaultControllerResolver,
    PathPrefixResolver,
)

__all__ = [
    "EVENT_CORE_CONTROLLER",
    "EVENT_CORE_REQUEST",
    "EVENT_CORE_RESPONSE",
    "EVENT_CORE_STARTED",
    "EVENT_CORE_VIEW",
    "ASGIApp",
    "ASGIApplication",
    "ASGIKernel",
    "Controller",
    "ControllerEvent",
    "ControllerResolver",
    "DefaultControllerResolver",
    "PathPrefixResolver",
    "ReceiveStream",
    "RequestEvent",
    "ResponseEvent",
    "ViewEvent",
    "error_response",
    "not_found_controller",
    "request_from_scope",
    "send_response",
]
