"""``pulsar.apps.http`` on ferryman: ``from ferryman.compat.pulsar import http``.

:class:`HttpClient`, the :class:`HttpRequest` and :class:`HttpResponse` its events and
requests give, the auth classes, and the exceptions under pulsar's names; ``oauth`` holds
``OAuth1`` and ``OAuth2``. See each module for what is translated and what is refused.
"""

from ferryman.compat.pulsar.http import oauth
from ferryman.compat.pulsar.http.auth import HTTPBasicAuth, HTTPDigestAuth
from ferryman.compat.pulsar.http.client import HttpClient
from ferryman.compat.pulsar.http.messages import HttpRequest, HttpResponse
from ferryman.exceptions import ConnectError as HttpConnectionError
from ferryman.exceptions import HTTPStatusError as HttpRequestException
from ferryman.exceptions import StreamConsumedError, TooManyRedirects

__all__ = [
    "HTTPBasicAuth",
    "HTTPDigestAuth",
    "HttpClient",
    "HttpConnectionError",
    "HttpRequest",
    "HttpRequestException",
    "HttpResponse",
    "StreamConsumedError",
    "TooManyRedirects",
    "oauth",
]
