"""The one place trace event names are made.

A transport phase runs inside :func:`traced` when the request carries a ``trace`` extension,
so a phase's ``.started``, ``.complete`` and ``.failed`` events cannot drift apart. When there is
no trace callback the phases are called directly: tracing costs nothing when unused.

The names are httpcore's, so tools written for httpcore's trace read ferryman's unchanged.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

__all__ = [
    "CONNECT_TCP",
    "CONNECT_UNIX_SOCKET",
    "HTTP2_RECEIVE_RESPONSE_BODY",
    "HTTP2_RECEIVE_RESPONSE_HEADERS",
    "HTTP2_RESPONSE_CLOSED",
    "HTTP2_SEND_CONNECTION_INIT",
    "HTTP2_SEND_REQUEST_BODY",
    "HTTP2_SEND_REQUEST_HEADERS",
    "HTTP11_RECEIVE_RESPONSE_BODY",
    "HTTP11_RECEIVE_RESPONSE_HEADERS",
    "HTTP11_RESPONSE_CLOSED",
    "HTTP11_SEND_REQUEST_BODY",
    "HTTP11_SEND_REQUEST_HEADERS",
    "START_TLS",
    "TraceCallback",
    "emit",
    "start_tls",
    "traced",
]

CONNECT_TCP = "connection.connect_tcp"
CONNECT_UNIX_SOCKET = "connection.connect_unix_socket"
START_TLS = "connection.start_tls"
HTTP11_SEND_REQUEST_HEADERS = "http11.send_request_headers"
HTTP11_SEND_REQUEST_BODY = "http11.send_request_body"
HTTP11_RECEIVE_RESPONSE_HEADERS = "http11.receive_response_headers"
HTTP11_RECEIVE_RESPONSE_BODY = "http11.receive_response_body"
HTTP11_RESPONSE_CLOSED = "http11.response_closed"
HTTP2_SEND_CONNECTION_INIT = "http2.send_connection_init"
HTTP2_SEND_REQUEST_HEADERS = "http2.send_request_headers"
HTTP2_SEND_REQUEST_BODY = "http2.send_request_body"
HTTP2_RECEIVE_RESPONSE_HEADERS = "http2.receive_response_headers"
HTTP2_RECEIVE_RESPONSE_BODY = "http2.receive_response_body"
HTTP2_RESPONSE_CLOSED = "http2.response_closed"

TraceCallback = Callable[[str, dict[str, Any]], Any]
T = TypeVar("T")


async def emit(callback: TraceCallback, name: str, info: dict[str, Any]) -> None:
    """Call a trace callback; async callbacks are awaited, plain ones are accepted too."""
    result = callback(name, info)
    if inspect.isawaitable(result):
        await result


async def traced(
    callback: TraceCallback,
    name: str,
    kwargs: dict[str, Any],
    phase: Callable[[], Awaitable[T]],
) -> T:
    """Run one transport phase between its ``.started`` and ``.complete``/``.failed`` events."""
    await emit(callback, f"{name}.started", kwargs)
    try:
        value = await phase()
    except BaseException as exc:
        await emit(callback, f"{name}.failed", {"exception": exc})
        raise
    await emit(callback, f"{name}.complete", {"return_value": value})
    return value


async def start_tls(
    callback: TraceCallback | None,
    phase: Callable[[], Awaitable[Any]],
    ssl_context: Any,
    server_hostname: str | None,
    timeout: float | None,
) -> None:
    """The ``connection.start_tls`` phase, of a direct connection or of a proxy tunnel."""
    if callback is None:
        await phase()
        return
    await traced(
        callback,
        START_TLS,
        {"ssl_context": ssl_context, "server_hostname": server_hostname, "timeout": timeout},
        phase,
    )
