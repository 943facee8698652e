"""Putting a request on an HTTP/1.1 connection: the head's bytes, and what decides the body.

Kept apart from the connection (``http11.py``) because none of it touches the socket or the
connection's state: it reads only the :class:`~ferryman.http.models.Request` (and remembers
the extension methods it has validated).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ferryman.exceptions import LocalProtocolError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from ferryman.http.models import Request
    from ferryman.http.streams import SyncByteStream

__all__ = ["METHOD_BYTES", "aiter_sync", "expects_continue", "serialize_head"]

_TOKEN_FORBIDDEN = frozenset(b' \t\r\n\x00()<>@,;:\\"/[]?={}')

_VALID_METHODS = {b"GET", b"HEAD", b"POST", b"PUT", b"PATCH", b"DELETE", b"OPTIONS", b"CONNECT"}
#: The same bytes objects every time (their hash is kept), not a new encoding per request.
METHOD_BYTES = {method.decode(): method for method in _VALID_METHODS}


def serialize_head(method: bytes, request: Request) -> bytes:
    """The request line and header lines, ending with the blank line.

    The ``target`` extension (absolute-form for a forward proxy, authority-form for CONNECT,
    ``*``) replaces the URL's path; it is checked here, as it does not come through ``URL``.
    """
    target = request.extensions.get("target") if request.extensions else None
    if target is None:
        target = request.url.raw_path  # the URL type guarantees a clean, encoded target
    else:
        if isinstance(target, str):
            target = target.encode("ascii")
        if not target or b" " in target or b"\r" in target or b"\n" in target:
            raise LocalProtocolError(f"invalid request target {target!r}")
    if method not in _VALID_METHODS:
        if not method or any(byte in _TOKEN_FORBIDDEN or byte > 126 for byte in method):
            raise LocalProtocolError(f"invalid HTTP method {method!r}")
        if len(_VALID_METHODS) < 64:
            _VALID_METHODS.add(method)
    fields = request.headers._raw  # (name, value) pairs, checked by Headers
    if not fields:
        return b"%s %s HTTP/1.1\r\n\r\n" % (method, target)
    lines = b"\r\n".join(map(b": ".join, fields))  # no Python-level loop per header
    return b"%s %s HTTP/1.1\r\n%s\r\n\r\n" % (method, target, lines)


def is_chunked(request: Request) -> bool:
    """Whether the request's own headers say its body goes in chunks (a caller may set
    ``Transfer-Encoding: chunked`` on an in-memory body too: it is then framed so)."""
    coding = request.headers.get("transfer-encoding")
    return coding is not None and coding.lower() == "chunked"


def expects_continue(request: Request) -> bool:
    """Whether the body waits for the server's ``100 Continue`` (RFC 9110 section 10.1.1)."""
    expect = request.headers.get("expect")
    return expect is not None and expect.lower() == "100-continue"


async def aiter_sync(stream: SyncByteStream) -> AsyncIterator[bytes]:
    """A synchronous request body, sent by the async connection."""
    for chunk in stream:
        yield chunk
