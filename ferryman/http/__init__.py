"""Sans-I/O HTTP models shared by the client, the server and the proxy: no sockets here."""

from ferryman.http.headers import Headers
from ferryman.http.models import Request, Response, reason_phrase
from ferryman.http.streams import (
    AsyncByteStream,
    AsyncIteratorByteStream,
    ByteStream,
    IteratorByteStream,
    SyncByteStream,
)
from ferryman.http.url import URL, QueryParams

__all__ = [
    "URL",
    "AsyncByteStream",
    "AsyncIteratorByteStream",
    "ByteStream",
    "Headers",
    "IteratorByteStream",
    "QueryParams",
    "Request",
    "Response",
    "SyncByteStream",
    "reason_phrase",
]
