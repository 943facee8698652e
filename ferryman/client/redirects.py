"""Building the request that follows a redirect (RFC 9110 section 15.4), without I/O.

- 301/302 of a POST and every 303 (but of a HEAD) become a GET without a body, as browsers and
  requests/httpx do; 307/308 repeat the method and the body (which must be replayable).
- ``Authorization`` (and ``Proxy-Authorization``) are dropped when the redirect leaves the
  origin, except for the http -> https upgrade of the same host on default ports, so that
  credentials are never handed to another server.
- ``Cookie`` is dropped: the client computes it again from its jar for the new URL.
- The fragment of the original URL carries over when the new location has none (RFC 9110
  section 10.2.2).
"""

from __future__ import annotations

from ferryman.exceptions import RemoteProtocolError, StreamConsumedError, UnsupportedProtocol
from ferryman.http.headers import Headers
from ferryman.http.request import Request
from ferryman.http.response import Response
from ferryman.http.streams import EMPTY_STREAM, ByteStream
from ferryman.http.url import URL

__all__ = ["REDIRECT_STATUS_CODES", "build_redirect_request", "redirect_method"]

REDIRECT_STATUS_CODES = frozenset({301, 302, 303, 307, 308})
_BODY_HEADERS = ("content-length", "content-type", "transfer-encoding", "content-encoding")


def redirect_method(method: str, status_code: int) -> str:
    if status_code == 303 and method != "HEAD":
        return "GET"
    if status_code in (301, 302) and method == "POST":
        return "GET"
    return method


def redirect_url(request: Request, response: Response) -> URL:
    location = response.headers.get("location")
    if location is None:
        raise RemoteProtocolError(
            f"{response.status_code} redirect without a Location header", request=request
        )
    try:
        url = request.url.join(location.strip())
    except ValueError as exc:
        raise RemoteProtocolError(
            f"{response.status_code} redirect to an invalid Location {location!r}: {exc}",
            request=request,
        ) from exc
    if url.scheme not in ("http", "https"):
        raise UnsupportedProtocol(
            f"refusing to follow a redirect to the {url.scheme!r} scheme ({location!r})",
            request=request,
        )
    if url.fragment == "" and request.url.fragment and "#" not in location:
        url = url.copy_with(fragment=request.url.fragment)
    return url


def _same_origin_or_upgrade(old: URL, new: URL) -> bool:
    if old.origin == new.origin:
        return True
    return (
        old.scheme == "http"
        and new.scheme == "https"
        and old.host == new.host
        and old.port in (None, 80)
        and new.port in (None, 443)
    )


def build_redirect_request(request: Request, response: Response) -> Request:
    url = redirect_url(request, response)
    method = redirect_method(request.method, response.status_code)
    headers = Headers(request.headers)
    headers.pop("host", None)
    headers.pop("cookie", None)
    if not _same_origin_or_upgrade(request.url, url):
        headers.pop("authorization", None)
        headers.pop("proxy-authorization", None)
    if method != request.method and method == "GET":
        for name in _BODY_HEADERS:
            headers.pop(name, None)
        stream = EMPTY_STREAM
    else:
        if not isinstance(request.stream, ByteStream):
            raise StreamConsumedError(
                f"cannot follow the {response.status_code} redirect to {url}: the request body "
                "was a stream and has been sent; pass bytes to allow it to be sent again"
            )
        stream = request.stream
    # ``target`` named the request-target of the old URL; the new request computes its own.
    extensions = {key: value for key, value in request.extensions.items() if key != "target"}
    return Request(method, url, headers=headers, stream=stream, extensions=extensions)
