"""The answers a proxy gives when the upstream cannot: 502 and 504, as JSON saying why.

The message names what failed (refused, unreachable, timed out, broke off) and which upstream
origin, never an exception's text, which may carry a URL's credentials or a query's secrets.
"""

from __future__ import annotations

import json
from typing import Final

from ferryman.exceptions import (
    ConnectError,
    ConnectTimeout,
    PoolTimeout,
    ReadTimeout,
    TimeoutException,
    WriteTimeout,
)
from ferryman.http.models import Response, reason_phrase

__all__ = ["UpstreamError", "error_body", "error_response", "upstream_error"]

JSON_TYPE: Final = b"application/json"


class UpstreamError(Exception):
    """Why the upstream gave no answer: carries the status (502/504) and the message to send."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message


def error_body(status_code: int, message: str | None = None) -> bytes:
    """``{"status": ..., "message": ...}`` as bytes; the message defaults to the reason phrase."""
    return json.dumps(
        {"status": status_code, "message": message or reason_phrase(status_code)}
    ).encode("utf-8")


def error_response(status_code: int, message: str | None = None) -> Response:
    """The same body as a response model (what the ASGI path and error handlers return)."""
    return Response(
        status_code,
        headers=[(b"Content-Type", JSON_TYPE)],
        content=error_body(status_code, message),
    )


def upstream_error(exc: BaseException, origin: str) -> UpstreamError:
    """Classify a client exception raised while talking to ``origin`` (502 or 504)."""
    if isinstance(exc, ConnectTimeout):
        return UpstreamError(504, f"connecting to the upstream {origin} timed out")
    if isinstance(exc, ReadTimeout):
        return UpstreamError(504, f"the upstream {origin} did not answer in time")
    if isinstance(exc, WriteTimeout):
        return UpstreamError(504, f"sending the request to the upstream {origin} timed out")
    if isinstance(exc, PoolTimeout):
        return UpstreamError(504, f"no connection to the upstream {origin} was free in time")
    if isinstance(exc, TimeoutException):
        return UpstreamError(504, f"the upstream {origin} timed out")
    if isinstance(exc, ConnectError):
        return UpstreamError(502, f"the upstream {origin} is unreachable (connection failed)")
    return UpstreamError(502, f"the upstream {origin} failed to answer ({type(exc).__name__})")
