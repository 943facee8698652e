"""``pulsar.apps.ws`` for the client side: ``from ferryman.compat.pulsar import ws``.

``ws.WS`` is ferryman's :class:`~ferryman.WS`: handlers with pulsar's method names and
arguments (``on_open(websocket)``, ``on_message(websocket, message)``, ``on_ping``,
``on_pong``, ``on_close``), the ``websocket`` being ferryman's
:class:`~ferryman.WebSocketConnection` (``write()``, ``await send()``, ``await close()``).
"""

from ferryman.client.websocket import WS, WebSocketConnection

__all__ = ["WS", "WebSocketConnection"]
