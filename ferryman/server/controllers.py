"""What the kernel calls to answer a request: controllers, mounted ASGI apps, error answers.

A *controller* is ``async def controller(request) -> Response | other``: it sees ferryman's
request model and hands back a response model, so listeners of the kernel's events can inspect
and replace both. A value that is not a :class:`Response` goes through the view event (see
:mod:`ferryman.server.kernel`).

An application that speaks ASGI itself (a Starlette or FastAPI app, a dashboard) is mounted by
wrapping it in :class:`ASGIApp`. The wrapper is the marker that tells the two apart: both are
plain callables, and guessing from a signature would be slow and wrong for ``*args`` callables.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, TypeAlias

from ferryman.http.models import Request, Response, reason_phrase

__all__ = [
    "ASGIApp",
    "ASGIApplication",
    "Controller",
    "Message",
    "Receive",
    "Scope",
    "Send",
    "error_response",
    "not_found_controller",
]

# ASGI 3 (https://asgi.readthedocs.io/en/latest/specs/main.html), loosely typed: servers pass
# their own TypedDicts, which a stricter alias would reject.
Scope: TypeAlias = MutableMapping[str, Any]
Message: TypeAlias = MutableMapping[str, Any]
Receive: TypeAlias = Callable[[], Awaitable[Message]]
Send: TypeAlias = Callable[[Message], Awaitable[None]]
ASGIApplication: TypeAlias = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Answers one request; may return something other than a Response for the view event to render.
Controller: TypeAlias = Callable[[Request], Awaitable[object]]


class ASGIApp:
    """An ASGI application the kernel hands the raw ``(scope, receive, send)`` to.

    The app answers on its own, so the view and response events do not fire for it. It sees the
    scope unchanged (full ``path``, no ``root_path`` rewriting): mounting is routing, not
    rewriting. It is also what serves ``websocket`` scopes.
    """

    __slots__ = ("app",)

    def __init__(self, app: ASGIApplication) -> None:
        self.app = app

    def __repr__(self) -> str:
        return f"ASGIApp({self.app!r})"


def error_response(status_code: int) -> Response:
    """The JSON body every error the kernel produces has, so API clients parse one shape.

    The message is the standard reason phrase and nothing else: exception texts and tracebacks
    can carry secrets and belong in the log, not on the wire.
    """
    return Response(
        status_code, json={"status": status_code, "message": reason_phrase(status_code)}
    )


async def not_found_controller(request: Request) -> Response:
    """The controller for requests nothing else claims."""
    return error_response(404)
