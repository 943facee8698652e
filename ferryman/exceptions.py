"""One exception hierarchy for every layer of ferryman.

The transport translates every ``OSError``, ``ssl.SSLError`` and parser failure into one of these
classes, so code above it (and users) never has to catch raw socket or parser exceptions. The
tree follows httpcore/httpx so that users moving from those libraries find the names they know.

    FerrymanError
    ├── TransportError
    │   ├── TimeoutException
    │   │   ├── ConnectTimeout
    │   │   ├── ReadTimeout
    │   │   ├── WriteTimeout
    │   │   └── PoolTimeout
    │   ├── NetworkError
    │   │   ├── ConnectError
    │   │   ├── ReadError
    │   │   ├── WriteError
    │   │   └── CloseError
    │   ├── ProtocolError
    │   │   ├── LocalProtocolError
    │   │   └── RemoteProtocolError
    │   ├── ProxyError
    │   └── UnsupportedProtocol
    ├── DecodingError
    │   └── DecompressionBombError
    ├── ResponseTooLarge
    ├── HTTPStatusError
    ├── TooManyRedirects
    ├── InvalidURL
    ├── StreamError
    │   ├── StreamConsumedError
    │   ├── StreamClosed
    │   └── ResponseNotRead
    └── EventListenerError
"""

from __future__ import annotations

from typing import Any


class FerrymanError(Exception):
    """Base class of every error ferryman raises on purpose."""


class TransportError(FerrymanError):
    """Sending a request or receiving its response failed below the HTTP semantics.

    ``answer_began`` says whether any byte of the server's answer had arrived when it failed
    (``None``: not known). A caller that sends a request again (a proxy's retries) may do so
    only when it is ``False``: once an answer began, the server may have acted on the request.
    """

    answer_began: bool | None = None

    def __init__(self, message: str = "", *, request: Any = None) -> None:
        super().__init__(message)
        self.request = request


class TimeoutException(TransportError):
    """One of the four timeouts of the ``timeout`` extension expired."""


class ConnectTimeout(TimeoutException):
    """Opening the TCP connection (or its TLS handshake) took longer than ``timeout['connect']``."""


class ReadTimeout(TimeoutException):
    """No bytes arrived from the server within ``timeout['read']``."""


class WriteTimeout(TimeoutException):
    """The server did not accept our bytes within ``timeout['write']``."""


class PoolTimeout(TimeoutException):
    """No connection of the pool became free within ``timeout['pool']``."""


class NetworkError(TransportError):
    """The socket failed: refused, reset, unreachable."""


class ConnectError(NetworkError):
    """The connection (TCP or TLS) could not be established."""


class ReadError(NetworkError):
    """Receiving bytes failed, or the peer closed the connection mid-message."""


class WriteError(NetworkError):
    """Sending bytes failed."""


class CloseError(NetworkError):
    """Closing the connection failed."""


class ProtocolError(TransportError):
    """The HTTP exchange broke the protocol."""


class LocalProtocolError(ProtocolError):
    """We were asked to send something HTTP does not allow (bad header, bad method...)."""


class RemoteProtocolError(ProtocolError):
    """The server sent something that is not valid HTTP, or closed the connection too early."""


class ProxyError(TransportError):
    """A forward proxy or CONNECT tunnel refused or failed the request."""


class UnsupportedProtocol(TransportError):
    """The URL's scheme is not one the transport speaks."""


class DecodingError(FerrymanError, ValueError):
    """A body could not be decoded as its ``Content-Encoding`` (or charset) says it is encoded."""


class DecompressionBombError(DecodingError):
    """A compressed body expanded far beyond what real data does: past the client's
    ``decompression_bomb_threshold`` and more than ``max_decompression_ratio`` times the bytes
    read off the wire. Raised while decoding, before the expanded bytes fill the memory."""

    def __init__(self, message: str, *, decoded_size: int, encoded_size: int) -> None:
        super().__init__(message)
        self.decoded_size = decoded_size
        self.encoded_size = encoded_size


class ResponseTooLarge(FerrymanError):
    """A body read whole (``content``, ``aread()``, ``json()``) went past the client's
    ``max_body_size``; streaming the body (``stream=True``, ``iter_bytes()``) is not capped."""

    def __init__(self, message: str, *, limit: int) -> None:
        super().__init__(message)
        self.limit = limit


class HTTPStatusError(FerrymanError):
    """``raise_for_status()`` met a 4xx or 5xx answer; carries the request and the response."""

    def __init__(self, message: str, *, request: Any, response: Any) -> None:
        super().__init__(message)
        self.request = request
        self.response = response


class TooManyRedirects(FerrymanError):
    """A redirect chain went past ``max_redirects``; ``history`` holds the responses seen."""

    def __init__(self, message: str, *, request: Any = None, history: Any = None) -> None:
        super().__init__(message)
        self.request = request
        self.history = history if history is not None else []


class InvalidURL(FerrymanError, ValueError):
    """A URL could not be parsed or is missing a part the caller needs."""


class StreamError(FerrymanError, RuntimeError):
    """A body stream was used in a way streams cannot be used."""


class StreamConsumedError(StreamError):
    """The body stream was already read once and cannot be replayed."""

    def __init__(self, message: str = "The body stream has already been consumed.") -> None:
        super().__init__(message)


class StreamClosed(StreamError):
    """The body stream was closed before it was read."""

    def __init__(self, message: str = "The body stream was closed before it was read.") -> None:
        super().__init__(message)


class ResponseNotRead(StreamError):
    """Body content was asked for before the streamed body was read."""

    def __init__(
        self, message: str = "The response body has not been read; call read() first."
    ) -> None:
        super().__init__(message)


class EventListenerError(FerrymanError):
    """A listener raised while an event was being dispatched; names the listener and event."""

    def __init__(self, event_name: str, listener: Any, original: BaseException) -> None:
        name = getattr(listener, "__qualname__", None) or repr(listener)
        module = getattr(listener, "__module__", None)
        where = f"{module}.{name}" if module else name
        super().__init__(
            f"listener {where} failed while handling event {event_name!r}: "
            f"{type(original).__name__}: {original}"
        )
        self.event_name = event_name
        self.listener = listener
        self.original = original
