"""The answers a proxy gives when the upstream cannot (502, 503, 504, as JSON saying why), and
the words its log uses for each kind of failure.

Both proxy paths build their messages here, so a client cannot tell from an error which path
served it: the fast relay (:mod:`ferryman.proxy.relay`) from the ``OSError`` its event loop
raised, the general path (:mod:`ferryman.proxy.handler`) from the http client's exception,
whose ``__cause__`` is that same ``OSError``.

The message names what failed (refused, unreachable, timed out, broke off) and which upstream
origin, never an exception's text, which may carry a URL's credentials or a query's secrets;
the parser's complaint about a malformed answer and the TLS library's about a certificate are
the exceptions, as they only describe what the upstream sent.
"""

from __future__ import annotations

import errno
import json
import socket
import ssl
from typing import Final

import httptools

from ferryman.client.transport.http11 import ResponseHeadTooLarge
from ferryman.exceptions import (
    ConnectError,
    ConnectTimeout,
    FerrymanError,
    NetworkError,
    PoolTimeout,
    ReadTimeout,
    RemoteProtocolError,
    TimeoutException,
    WriteTimeout,
)
from ferryman.http.models import Response, reason_phrase

__all__ = [
    "DNS_FAILURE",
    "MALFORMED",
    "NO_ANSWER",
    "POOL_TIMEOUT",
    "RATE_LIMITED",
    "REFUSED",
    "TIMEOUT",
    "TLS_FAILURE",
    "TRUNCATED",
    "UNAVAILABLE",
    "UNREACHABLE",
    "ListenerBodyTooLarge",
    "RetryDeadline",
    "UpstreamError",
    "broken_answer",
    "connect_error",
    "deadline_passed",
    "error_body",
    "error_kind",
    "error_response",
    "no_answer",
    "no_upstream_available",
    "pool_timeout",
    "read_timeout",
    "truncated_answer",
    "upstream_error",
]

JSON_TYPE: Final = b"application/json"
_OUT_OF_FILES: Final = frozenset({errno.EMFILE, errno.ENFILE})

# The kinds of failure, in the words a log line uses (``ferryman.proxy.logs``): one line per
# kind and upstream per interval, so these are also what repeats are counted by.
REFUSED: Final = "refused"
DNS_FAILURE: Final = "DNS failure"
TLS_FAILURE: Final = "TLS failure"
UNREACHABLE: Final = "unreachable"
TIMEOUT: Final = "timeout"
POOL_TIMEOUT: Final = "no free connection"
NO_ANSWER: Final = "no answer"
MALFORMED: Final = "malformed answer"
TRUNCATED: Final = "truncated answer"
#: Every upstream of the endpoint is down (health probes) or its circuit breaker open.
UNAVAILABLE: Final = "no upstream available"
#: A request refused by a rate limit or an outbound budget (``ferryman.apps.ratelimit``).
RATE_LIMITED: Final = "rate limited"
#: What an upstream did when its answer has a transfer coding other than one ``chunked``.
FOREIGN_CODING: Final = "sent a transfer coding other than chunked"


class UpstreamError(Exception):
    """Why the upstream gave no answer: the status (502/503/504) and message to send, the kind
    of failure (one of this module's words) the log counts it under, and the upstream's origin
    (``None`` when the code that raised it did not say)."""

    def __init__(
        self, status_code: int, message: str, kind: str = UNREACHABLE, origin: str | None = None
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.kind = kind
        self.origin = origin


class ListenerBodyTooLarge(FerrymanError):
    """A listener or middleware on the fast relay read a body longer than the endpoint's
    ``limits.listener_body`` (:mod:`ferryman.proxy.relay_bodies`). ``status_code`` is what
    the client gets if the error is left to the proxy: 413 for the request's body, 500 (a
    failing listener's) for the answer's; ``message`` the client's words."""

    def __init__(self, what: str, limit: int, endpoint: str, status_code: int) -> None:
        setting = "limits.listener_body"
        super().__init__(
            f"{what} is larger than {limit} bytes, the most a listener or middleware may read "
            f"on endpoint {endpoint!r}: its {setting} (proxy.endpoints.N.{setting}; "
            f"proxy.{setting} for every endpoint)"
        )
        self.limit = limit
        self.status_code = status_code
        self.message = f"{what} is larger than {limit} bytes"


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


# -- connecting ----------------------------------------------------------------------------------


def connect_error(error: BaseException, origin: str, endpoint: str | None = None) -> UpstreamError:
    """Why a connection to ``origin`` could not be opened: 504 for a timeout, else 502.

    ``error`` is what the event loop raised (``OSError``, ``TimeoutError``) or the http
    client's ``ConnectError``/``ConnectTimeout`` around it. ``endpoint`` names the endpoint
    when each of its several upstreams failed in turn, ``origin`` being the last of them.
    """
    cause = _root_cause(error)
    if isinstance(error, ConnectTimeout) or isinstance(cause, TimeoutError):
        return UpstreamError(504, f"connecting to the upstream {origin} timed out", TIMEOUT, origin)
    if isinstance(cause, ssl.SSLError | ssl.CertificateError):
        reason, kind = f"failed the TLS handshake ({_tls_problem(cause)})", TLS_FAILURE
    elif isinstance(cause, socket.gaierror):
        reason, kind = "could not be resolved (DNS failure)", DNS_FAILURE
    elif isinstance(cause, ConnectionRefusedError):
        reason, kind = "refused the connection", REFUSED
    elif isinstance(cause, OSError) and cause.errno in _OUT_OF_FILES:
        reason, kind = "could not be connected to: this proxy has too many open files", UNREACHABLE
    else:
        strerror = cause.strerror if isinstance(cause, OSError) else None
        words = strerror[:1].lower() + strerror[1:] if strerror else "connection failed"
        reason, kind = f"is unreachable ({words})", UNREACHABLE
    if endpoint is not None:
        return UpstreamError(
            502,
            f"every upstream of {endpoint!r} failed; the last, {origin}, {reason}",
            kind,
            origin,
        )
    return UpstreamError(502, f"the upstream {origin} {reason}", kind, origin)


def _root_cause(error: BaseException) -> BaseException:
    """The exception at the bottom of ``raise ... from`` chains (the socket's own error)."""
    seen = 0
    while error.__cause__ is not None and seen < 8:
        error = error.__cause__
        seen += 1
    return error


def _tls_problem(error: BaseException) -> str:
    """What the TLS library said was wrong, in its words (``self-signed certificate``)."""
    verify_message = getattr(error, "verify_message", None)
    if verify_message:
        return str(verify_message)
    reason = getattr(error, "reason", None)
    if reason:
        return str(reason).lower().replace("_", " ")
    return "TLS failure"


def pool_timeout(origin: str) -> UpstreamError:
    """Every connection to ``origin`` the endpoint may open stayed busy for the pool timeout."""
    return UpstreamError(
        503, f"no connection to the upstream {origin} was free in time", POOL_TIMEOUT, origin
    )


def no_upstream_available(endpoint: str) -> UpstreamError:
    """No upstream of ``endpoint`` may be sent a request now: none was tried."""
    return UpstreamError(
        503,
        f"no upstream of {endpoint!r} is available: each is failing its health checks or "
        "its circuit breaker is open",
        UNAVAILABLE,
    )


# -- the answer ----------------------------------------------------------------------------------


def read_timeout(origin: str) -> UpstreamError:
    return UpstreamError(504, f"the upstream {origin} did not answer in time", TIMEOUT, origin)


class RetryDeadline(ReadTimeout):
    """The general path's later try had no answer's head when the retry deadline ran out
    (:mod:`ferryman.proxy.general_resilience`): :func:`upstream_error` words it as the
    relay does (:func:`deadline_passed`)."""

    def __init__(self, deadline: float) -> None:
        super().__init__(f"the retry deadline of {deadline:g} s ran out")
        self.deadline = deadline
        self.answer_began = False


def deadline_passed(origin: str, deadline: float) -> UpstreamError:
    """A later try had no answer's head when the retry deadline (seconds from the first try)
    ran out: every try of a request ends within it."""
    return UpstreamError(
        504,
        f"the upstream {origin} did not answer in time: the retry deadline of {deadline:g} s "
        "ran out",
        TIMEOUT,
        origin,
    )


def no_answer(origin: str) -> UpstreamError:
    """The upstream closed the connection before a whole response head (or any of it) came."""
    return UpstreamError(
        502, f"the upstream {origin} closed the connection before answering", NO_ANSWER, origin
    )


def broken_answer(origin: str, reason: str) -> UpstreamError:
    """The upstream broke the protocol: ``reason`` completes "the upstream ... " (``sent a
    malformed response (...)``, ``switched protocols unasked``)."""
    return UpstreamError(502, f"the upstream {origin} {reason}", MALFORMED, origin)


def truncated_answer(origin: str, timed_out: bool = False) -> UpstreamError:
    """The answer started and then broke off: nothing is sent for it (the client's connection
    is cut, as a status can no longer be given), so this is only what the log says."""
    if timed_out:
        return UpstreamError(
            504, f"the upstream {origin} stopped sending its answer half-way", TIMEOUT, origin
        )
    return UpstreamError(
        502, f"the upstream {origin} broke off its answer half-way", TRUNCATED, origin
    )


def upstream_error(exc: BaseException, origin: str, endpoint: str | None = None) -> UpstreamError:
    """Classify an http client exception raised while sending to ``origin`` and waiting for
    its answer's head (502, 503 or 504); ``endpoint`` as for :func:`connect_error`."""
    if isinstance(exc, ConnectError | ConnectTimeout):
        return connect_error(exc, origin, endpoint)
    if isinstance(exc, RetryDeadline):
        return deadline_passed(origin, exc.deadline)
    if isinstance(exc, ReadTimeout):
        return read_timeout(origin)
    if isinstance(exc, WriteTimeout):
        return UpstreamError(
            504, f"sending the request to the upstream {origin} timed out", TIMEOUT, origin
        )
    if isinstance(exc, PoolTimeout):
        return pool_timeout(origin)
    if isinstance(exc, TimeoutException):
        return UpstreamError(504, f"the upstream {origin} timed out", TIMEOUT, origin)
    if isinstance(exc, ResponseHeadTooLarge):
        return broken_answer(origin, exc.reason)
    cause = exc.__cause__
    if isinstance(cause, httptools.HttpParserError):
        return broken_answer(origin, f"sent a malformed response ({cause})")
    if isinstance(exc, NetworkError | RemoteProtocolError):
        # Raised before the head was whole: the connection ended (or could not take the
        # request) with no answer to relay.
        return no_answer(origin)
    return UpstreamError(
        502, f"the upstream {origin} could not be sent the request", MALFORMED, origin
    )


# -- reading the words back ----------------------------------------------------------------------

#: Words of this module's messages, in the order they are looked for, and the kind each means.
_KIND_WORDS: Final = (
    ("refused the connection", REFUSED),
    ("could not be resolved", DNS_FAILURE),
    ("failed the TLS handshake", TLS_FAILURE),
    ("was free in time", POOL_TIMEOUT),
    ("broke off its answer", TRUNCATED),
    ("closed the connection before answering", NO_ANSWER),
    ("timed out", TIMEOUT),
    ("did not answer in time", TIMEOUT),
    ("stopped sending its answer", TIMEOUT),
    ("is unreachable", UNREACHABLE),
    ("could not be connected to", UNREACHABLE),
    ("rate limit", RATE_LIMITED),
)
#: The kinds of the words the server says when an exchange ends otherwise
#: (:meth:`ferryman.server.exchange.ServerExchange.ended`).
CLIENT_CLOSED: Final = "client closed"
REQUEST_REFUSED: Final = "request refused"
CUT_OFF: Final = "cut off"
OTHER: Final = "other"


def error_kind(message: str) -> str:
    """The kind of failure a transaction's ``error`` (words from this module, or the server's)
    names: one of this module's kinds (``refused``, ``timeout``...), ``client closed``,
    ``request refused``, ``cut off`` or ``other``. A small fixed set, fit to be a metric's label;
    for the metrics, which see only the words."""
    for words, kind in _KIND_WORDS:
        if words in message:
            return kind
    if message.startswith(("the upstream ", "every upstream ")):
        return MALFORMED  # broken_answer's reasons, and a request that could not be sent
    if message.startswith("the client closed"):
        return CLIENT_CLOSED
    if message.startswith("the request was refused"):
        return REQUEST_REFUSED
    if message.startswith("the answer was cut off"):
        return CUT_OFF
    return OTHER
