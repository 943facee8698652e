"""The HTTP client: the transport core below (``transport``), the session API above.

``AsyncClient`` and ``Client`` are what application code uses; the rest is exported for those
who build their own (auth flows, filter listeners, WebSocket handlers).
"""

from ferryman.client.auth import Auth, BasicAuth, DigestAuth, FunctionAuth, OAuth1, OAuth2
from ferryman.client.config import Timeout
from ferryman.client.filtering import (
    EVENT_FILTER_HTTP_CLIENT_REQUEST,
    EVENT_FILTER_HTTP_CLIENT_RESPONSE,
    AsyncFilterableTransport,
    HttpClientFilterEvent,
)
from ferryman.client.hooks import EventHandlers
from ferryman.client.session import AsyncClient
from ferryman.client.sync_client import Client
from ferryman.client.websocket import WS, WebSocketConnection

__all__ = [
    "EVENT_FILTER_HTTP_CLIENT_REQUEST",
    "EVENT_FILTER_HTTP_CLIENT_RESPONSE",
    "WS",
    "AsyncClient",
    "AsyncFilterableTransport",
    "Auth",
    "BasicAuth",
    "Client",
    "DigestAuth",
    "EventHandlers",
    "FunctionAuth",
    "HttpClientFilterEvent",
    "OAuth1",
    "OAuth2",
    "Timeout",
    "WebSocketConnection",
]
