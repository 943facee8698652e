"""whistle's ``AsyncEventDispatcher`` over ferryman's dispatcher, for listeners written for HARP.

HARP dispatches its events with whistle, and its documentation registers listeners this way;
ported, only the import changes::

    from ferryman.events import AsyncEventDispatcher      # was: from whistle import ...

    async def on_filter_request(event: HttpClientFilterEvent):
        print(f"Filtering request: {event}")

    dispatcher = AsyncEventDispatcher()
    dispatcher.add_listener(EVENT_FILTER_HTTP_CLIENT_REQUEST, on_filter_request)

:class:`AsyncEventDispatcher` *is* a ferryman :class:`~ferryman.events.EventDispatcher` (give
it to an ``AsyncClient``, a kernel, a proxy handler: they dispatch to it as to any other), and
reads a listener's registration the way whistle does, where the two disagree:

* **Priorities.** whistle calls the *lowest* number first (``-20`` before ``0`` before ``20``;
  HARP registers its health check at ``-100`` to run before everything), ferryman the highest.
  Here ``priority`` means what it meant to whistle, so listeners keep the order they were
  written for.
* **Coroutine listeners only.** whistle's ``AsyncEventDispatcher`` refuses a plain function, and
  so does this one (``TypeError`` at ``add_listener``). It also keeps the next point sound.
* **``dispatch`` is awaitable**, as whistle 2.0's was: ``await dispatcher.dispatch(name, event)``
  runs the listeners in order and gives the event back. ``adispatch`` (whistle 2.1's name, and
  ferryman's) does the same. ferryman's own code only calls the synchronous ``dispatch`` of a
  dispatcher whose listeners are all synchronous (:meth:`EventDispatcher.is_synchronous`), which
  a dispatcher holding coroutine listeners only never is.

Not carried over: whistle sets ``event.name`` and ``event.dispatcher`` on the events it
dispatches; ferryman's events are slotted and carry neither (a listener needing the dispatcher
closes over it), and the stop flag reads ``event.is_propagation_stopped`` (``stop_propagation()``
is the same).
"""

from __future__ import annotations

from collections.abc import Awaitable

from ferryman.events.dispatcher import EventDispatcher, Listener, _is_async
from ferryman.events.event import Event

__all__ = ["AsyncEventDispatcher"]


class AsyncEventDispatcher(EventDispatcher):
    """A ferryman dispatcher that takes listeners as whistle's ``AsyncEventDispatcher`` does."""

    __slots__ = ()

    def add_listener(self, event_name: str, listener: Listener, priority: int = 0) -> None:
        """Register the coroutine function ``listener``; a *lower* ``priority`` runs earlier,
        as in whistle (ferryman's own dispatcher runs the higher first)."""
        if not callable(listener) or not _is_async(listener):
            raise TypeError(
                f"listener should be a coroutine function (async def), {type(listener)} given: "
                "whistle's AsyncEventDispatcher only takes those; a plain function goes to "
                "ferryman.events.EventDispatcher"
            )
        super().add_listener(event_name, listener, -priority)

    def dispatch(  # type: ignore[override]
        self, event_name: str, event: Event | None = None
    ) -> Awaitable[Event]:
        """Awaitable, as whistle 2.0's: ``event = await dispatcher.dispatch(name, event)``."""
        return self.adispatch(event_name, event)
