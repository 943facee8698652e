"""pulsar's HTTP client API (``pulsar.apps``) on ferryman: replace ``pulsar.apps`` by
``ferryman.compat.pulsar`` in the imports, as in ``from ferryman.compat.pulsar import http, ws``
or ``from ferryman.compat.pulsar.http import HTTPBasicAuth``.

Only the client is here (``http``, ``ws.WS``); pulsar's servers and actors have no face.
"""

from ferryman.compat.pulsar import http, ws

__all__ = ["http", "ws"]
