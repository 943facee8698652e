"""httpx ``Response`` objects where ferryman expects its own: what HARP's filter listeners forge.

HARP's http client dispatches its filter events with httpx models, so a listener written for
it answers a request itself with ``event.response = httpx.Response(200, json={...})``. The
filter transport (:mod:`ferryman.client.filtering`) turns such an object into a
:class:`~ferryman.http.models.Response` as soon as the listener has run, so every later
listener, the session and the proxy see one kind of response. httpx is an optional extra
(``pip install ferryman[harp]``): it is only imported when a listener hands over something
that is not a ferryman response.

What is carried: the status, the reason phrase, the header fields in order (repeated ones
included), and the body:

* read already (``httpx.Response(200, content=...)``, ``json=``, ``text=``, or after
  ``read()``): its bytes. httpx keeps those *decoded*, so a ``Content-Encoding`` the headers
  still name is dropped and ``Content-Length`` set to the decoded size, or the bytes would be
  decoded a second time downstream;
* not read (a streamed answer of an httpx client): its raw bytes as they come
  (``aiter_raw``, still encoded, headers unchanged), and closing the ferryman response closes
  the httpx one (its connection).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from ferryman.http.headers import Headers
from ferryman.http.models import Response
from ferryman.http.streams import AsyncByteStream

if TYPE_CHECKING:
    import httpx

__all__ = ["as_ferryman_response"]

_DROPPED_WHEN_DECODED = frozenset({b"content-encoding", b"content-length"})


def as_ferryman_response(value: object, where: str) -> Response:
    """``value`` as a ferryman response: itself if it is one, converted if it is httpx's.

    ``where`` names the event that set it, for the error anything else gets."""
    if isinstance(value, Response):
        return value
    httpx_response = _httpx_response_class()
    if httpx_response is None or not isinstance(value, httpx_response):
        raise TypeError(
            f"a {where} listener set event.response to {type(value).__name__!r}: give a "
            "ferryman.Response, or an httpx.Response (with httpx installed: ferryman[harp])"
        )
    return _from_httpx(value)


def _httpx_response_class() -> type[httpx.Response] | None:
    try:
        import httpx
    except ImportError:
        return None
    return httpx.Response


def _from_httpx(response: httpx.Response) -> Response:
    import httpx

    extensions: dict[str, object] = {}
    reason = response.extensions.get("reason_phrase")
    if isinstance(reason, bytes) and reason:
        extensions["reason_phrase"] = reason
    raw = list(response.headers.raw)
    try:
        content = response.content
    except httpx.ResponseNotRead:
        return Response(
            response.status_code,
            headers=Headers(raw),
            stream=_HttpxBody(response),
            extensions=extensions,
        )
    if any(name.lower() == b"content-encoding" for name, _ in raw):
        # (the Response sets Content-Length again, from the decoded bytes)
        raw = [(name, value) for name, value in raw if name.lower() not in _DROPPED_WHEN_DECODED]
    return Response(
        response.status_code, headers=Headers(raw), content=content, extensions=extensions
    )


class _HttpxBody(AsyncByteStream):
    """The raw body of an httpx response nobody has read yet."""

    __slots__ = ("_response",)

    def __init__(self, response: httpx.Response) -> None:
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._response.aiter_raw():
            yield chunk

    async def aclose(self) -> None:
        await self._response.aclose()
