"""pulsar's ``HttpRequest`` and ``HttpResponse`` over the ferryman request and response of one
exchange.

pulsar's response object exists before the request leaves (its ``pre_request`` handlers
receive it, its ``request`` already set), is filled in when the head arrives and again as the
body does. ferryman's client has a :class:`~ferryman.Request` first and a
:class:`~ferryman.Response` later; :class:`HttpResponse` stands for both, bound to the response
once it comes, and what pulsar has that ferryman calls differently is translated here:
``text()`` as a method that decodes strictly (UTF-8 unless the response names a charset),
``recv_body()``, ``decode_content()``, ``info()``, and the request's ``has_header``,
``get_header``, ``remove_header``, ``add_header`` and ``encode()``. Anything else is
ferryman's response's own (``elapsed``, ``extensions``, ``aiter_bytes()``...).
"""

from __future__ import annotations

import json as jsonlib
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from ferryman.client.transport.http11_request import METHOD_BYTES, serialize_head
from ferryman.exceptions import ResponseNotRead
from ferryman.http import URL, Headers, Request, Response
from ferryman.http.headers import SENSITIVE_HEADERS

if TYPE_CHECKING:
    from ferryman.http.cookies import Cookies
    from ferryman.http.response import RawBody

__all__ = ["JSON_CONTENT_TYPES", "HttpRequest", "HttpResponse", "PrintableHeaders"]

JSON_CONTENT_TYPES = frozenset(
    {"application/json", "application/javascript", "text/json", "text/x-json"}
)
FORM_URL_ENCODED = "application/x-www-form-urlencoded"


class PrintableHeaders(Headers):
    """Headers that print as pulsar's did: one ``Name: value`` line each (credentials and
    cookies masked, as ferryman's ``repr`` masks them)."""

    __slots__ = ()

    def __str__(self) -> str:
        encoding = self.encoding
        return "\n".join(
            f"{name.decode(encoding)}: "
            + ("[secure]" if name.lower() in SENSITIVE_HEADERS else value.decode(encoding))
            for name, value in self.raw
        )


class HttpRequest:
    """The request of one exchange, as pulsar's ``HttpRequest`` showed it.

    Changes made here (headers, ``url``) before the request leaves, in a ``pre_request``
    handler, go out with it.
    """

    def __init__(
        self,
        request: Request,
        *,
        version: str = "HTTP/1.1",
        wait_continue: bool = False,
        stream: bool = False,
    ) -> None:
        self._request = request
        self.version = version
        #: Whether the request carries ``Expect: 100-continue`` (its body waits for the 100).
        self.wait_continue = wait_continue
        self.stream = stream
        #: The responses before this request's (redirects), oldest first.
        self.history: list[HttpResponse] = []

    @property
    def method(self) -> str:
        return self._request.method

    @property
    def url(self) -> str:
        return str(self._request.url)

    @url.setter
    def url(self, value: str) -> None:
        url = URL(value)
        self._request.url = url
        self._request.headers["Host"] = url.host_header.decode("ascii")

    @property
    def headers(self) -> PrintableHeaders:
        headers = self._request.headers
        if not isinstance(headers, PrintableHeaders):
            # The same fields, in a Headers that prints as pulsar's did; the request sends
            # whatever this object holds.
            headers = self._request.headers = PrintableHeaders(headers)
        return headers

    @property
    def body(self) -> bytes | None:
        """The body when it is fixed bytes; ``None`` for none or a stream."""
        try:
            return self._request.content or None
        except ResponseNotRead:
            return None

    def has_header(self, header_name: str) -> bool:
        return header_name in self._request.headers

    def get_header(self, header_name: str, default: str | None = None) -> str | None:
        return self._request.headers.get(header_name, default)

    def remove_header(self, header_name: str) -> str | None:
        """Remove every field of that name; the (first) value removed, or ``None``."""
        return self._request.headers.pop(header_name, None)

    def add_header(self, key: str, value: str) -> None:
        """Set a header, replacing any of that name (as pulsar's did)."""
        self._request.headers[key] = value

    def first_line(self) -> str:
        return f"{self.method} {self._request.url.raw_path.decode('ascii')} {self.version}"

    def encode(self) -> bytes:
        """The request line and headers as they go on the wire (the body is sent after)."""
        request = self._request
        method = METHOD_BYTES.get(request.method) or request.method.encode("ascii")
        return serialize_head(method, request)

    def __repr__(self) -> str:
        return self.first_line()

    __str__ = __repr__


class HttpResponse:
    """One exchange as pulsar's ``HttpResponse`` showed it: ``request`` from the start, the
    head and the body once they came."""

    def __init__(self, request: HttpRequest) -> None:
        self.request = request
        self._response: Response | None = None
        self._arrived: list[bytes] | None = None  # what recv_body() has not returned yet
        self._flushed = 0  # bytes of ``content`` recv_body() returned, without a hook

    def _bind(self, response: Response) -> None:
        self._response = response

    @property
    def _bound(self) -> Response:
        if self._response is None:
            raise AttributeError("the response has not arrived yet (this is a pre_request)")
        return self._response

    # -- the head ---------------------------------------------------------------------------

    @property
    def status_code(self) -> int | None:
        return None if self._response is None else self._response.status_code

    @property
    def headers(self) -> Headers | None:
        return None if self._response is None else self._response.headers

    @property
    def url(self) -> str:
        """The request's full URL."""
        return self.request.url

    @property
    def history(self) -> list[HttpResponse]:
        """The redirect responses before this one, oldest first."""
        return self.request.history

    @property
    def reason(self) -> str | None:
        return None if self._response is None else self._response.reason_phrase

    @property
    def ok(self) -> bool:
        return self._response is not None and self._response.status_code < 400

    @property
    def cookies(self) -> Cookies:
        """The cookies this response set."""
        return self._bound.cookies

    @property
    def links(self) -> dict[str, dict[str, str]]:
        return self._bound.links

    @property
    def encoding(self) -> str | None:
        """The charset the response names (``Content-Type``), or ``None``."""
        return self._bound.encoding

    def info(self) -> InfoHeaders:
        """The headers as :mod:`http.cookiejar` asks for them (``get_all``)."""
        return InfoHeaders(self._bound.headers)

    def raise_for_status(self) -> None:
        """:class:`~ferryman.HTTPStatusError` (pulsar's ``HttpRequestException``) for a 4xx or
        5xx answer."""
        self._bound.raise_for_status()

    # -- the body ---------------------------------------------------------------------------

    @property
    def content(self) -> bytes | None:
        """The body read so far in full, or ``None`` (a ``stream=True`` response)."""
        try:
            return self._bound.content
        except ResponseNotRead:
            return None

    @property
    def raw(self) -> RawBody:
        """The body as a one-shot async iterable of bytes, with ``read()``."""
        return self._bound.raw

    def text(self, charset: str | None = None, errors: str | None = None) -> str:
        """The body decoded with ``charset``, else the response's, else UTF-8, strictly: a
        body that is not text (still compressed, say) raises ``UnicodeDecodeError``."""
        data = self.content
        if not data:
            return ""
        return data.decode(charset or self.encoding or "utf-8", errors or "strict")

    def json(self) -> Any:
        return jsonlib.loads(self.text())

    def decode_content(self) -> Any:
        """The body as what its ``Content-Type`` says: JSON parsed, text decoded, a form as
        ``(name, value)`` pairs; bytes otherwise."""
        content_type = self._bound.headers.get("content-type")
        if content_type:
            media_type = content_type.split(";", 1)[0].strip().lower()
            if media_type in JSON_CONTENT_TYPES:
                return self.json()
            if media_type.startswith("text/"):
                return self.text()
            if media_type == FORM_URL_ENCODED:
                return parse_qsl(self.text(), keep_blank_values=True)
        return self.content

    def recv_body(self) -> bytes:
        """The body that came since the last call, each byte once: in a ``data_processed``
        handler, the piece just decoded (pulsar's parser flushed it the same way)."""
        arrived = self._arrived
        if arrived is not None:
            data = b"".join(arrived)
            arrived.clear()
            return data
        content = self.content or b""
        data = content[self._flushed :]
        self._flushed = len(content)
        return data

    def _received(self, data: bytes) -> None:
        if self._arrived is None:
            self._arrived = []
        self._arrived.append(data)

    def __getattr__(self, name: str) -> Any:
        # The rest is ferryman's response's (elapsed, extensions, iter_bytes()...).
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._bound, name)

    def __repr__(self) -> str:
        return f"<Response [{self.status_code or 'None'}]>"

    __str__ = __repr__


class InfoHeaders:
    """What ``HttpResponse.info()`` returns: headers with the email.Message methods
    :mod:`http.cookiejar` calls."""

    def __init__(self, headers: Headers) -> None:
        self._headers = headers

    def get_all(self, name: str, default: Any = None) -> list[str] | Any:
        return self._headers.get_list(name) or default

    def get(self, name: str, default: str | None = None) -> str | None:
        return self._headers.get(name, default)
