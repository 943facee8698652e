"""Events: the hook points every layer of ferryman (client, ASGI kernel, proxy) offers.

See :mod:`ferryman.events.dispatcher` for the ordering rules and the hot-path pattern.
"""

from ferryman.events.dispatcher import EventDispatcher, Listener
from ferryman.events.event import Event
from ferryman.exceptions import EventListenerError

__all__ = ["Event", "EventDispatcher", "EventListenerError", "Listener"]
