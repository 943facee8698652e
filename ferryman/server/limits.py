"""What one client may send a listening socket of ferryman's server, and how slowly.

:class:`ServerLimits` is the listener's policy, read by
:class:`~ferryman.server.protocol.ServerProtocol` as bytes arrive and by its once-a-second
sweep; the proxy builds one per endpoint port from ``limits`` and ``client_timeout``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

__all__ = ["DEFAULT_LIMITS", "MAX_HEAD_SIZE", "ServerLimits"]

#: A request line plus headers larger than this is refused (nginx's large_client_header_buffers).
MAX_HEAD_SIZE: Final = 64 * 1024


class ServerLimits:
    """What one client may send a listening socket, and how slowly (see the module docs).

    Sizes are bytes; timeouts seconds, checked by a once-a-second sweep (so up to a second
    late); ``body`` may be ``None`` (no limit), a handler may change it for its exchange
    (``ServerExchange.body_limit``), as an endpoint with its own limit does. ``upgrades`` are the
    lower-case ``Upgrade`` tokens the handler may accept; a request asking only for others is
    served as plain HTTP, its Upgrade ignored (RFC 9110 section 7.8).
    """

    __slots__ = (
        "body",
        "body_idle",
        "body_min_rate",
        "head",
        "head_timeout",
        "header",
        "headers",
        "keepalive",
        "request_line",
        "send_timeout",
        "tunnel_idle",
        "upgrades",
    )

    def __init__(
        self,
        *,
        request_line: int = 8192,
        header: int = 8192,
        head: int = MAX_HEAD_SIZE,
        headers: int = 100,
        body: int | None = 64 * 1024 * 1024,
        head_timeout: float = 10.0,
        body_idle: float = 30.0,
        body_min_rate: float = 500.0,
        keepalive: float = 75.0,
        send_timeout: float = 60.0,
        tunnel_idle: float = 600.0,
        upgrades: Iterable[str] = ("websocket",),
    ) -> None:
        self.request_line = request_line
        self.header = header
        self.head = head
        self.headers = headers
        self.body = body
        self.head_timeout = head_timeout
        self.body_idle = body_idle
        self.body_min_rate = body_min_rate
        self.keepalive = keepalive
        self.send_timeout = send_timeout
        #: An upgraded connection (a WebSocket) with no byte either way for this long closes.
        self.tunnel_idle = tunnel_idle
        self.upgrades = frozenset(token.lower().encode("latin-1") for token in upgrades)

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"ServerLimits({fields})"


DEFAULT_LIMITS: Final = ServerLimits()
