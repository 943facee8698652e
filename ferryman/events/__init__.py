"""Events: the hook points every layer of ferryman (client, ASGI kernel, proxy) offers.

See :mod:`ferryman.events.dispatcher` for the ordering rules and the hot-path pattern, and
:mod:`ferryman.events.whistle` for ``AsyncEventDispatcher``, which takes listeners written for
whistle's (HARP's) dispatcher as they were written.
"""

from ferryman.events.dispatcher import EventDispatcher, Listener
from ferryman.events.event import Event
from ferryman.events.whistle import AsyncEventDispatcher
from ferryman.exceptions import EventListenerError

__all__ = ["AsyncEventDispatcher", "Event", "EventDispatcher", "EventListenerError", "Listener"]
