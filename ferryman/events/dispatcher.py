"""A Symfony-style event dispatcher, tuned for being called on every proxied request.

Listeners are registered per event name with a priority; **higher priorities run first**, and
listeners of equal priority run in the order they were added (Symfony's convention; whistle,
HARP's dispatcher, runs the *lowest* first, which
:class:`~ferryman.events.whistle.AsyncEventDispatcher` keeps for listeners written for it)::

    dispatcher = EventDispatcher()

    @dispatcher.listen(EVENT_REQUEST, priority=10)
    async def authenticate(event: RequestEvent) -> None:
        if not allowed(event.request):
            event.response = forbidden()
            event.stop_propagation()

    event = await dispatcher.adispatch(EVENT_REQUEST, RequestEvent(request))

Why it is built the way it is:

* The client and the proxy dispatch several events per request, and most of the time nothing
  listens. So all the work (sorting by priority, finding out which listeners are coroutine
  functions) happens when listeners are added or removed, and dispatching a name nobody
  listens to costs one dict lookup.
* Hot paths can skip even that, and the construction of the event object, by asking first::

      if dispatcher.has_listeners(EVENT_REQUEST):
          event = await dispatcher.adispatch(EVENT_REQUEST, RequestEvent(request))

  ``has_listeners(name)`` is a plain ``in`` test on a dict (well under 0.1 µs); skipping the
  ``await`` also spares creating and running the ``adispatch`` coroutine.
* Each event name maps to an immutable snapshot of its listeners, replaced (never mutated) when a
  listener is added or removed. A running dispatch keeps iterating the snapshot it started with:
  a listener added meanwhile is first called by the *next* dispatch, and one removed meanwhile is
  still called by the current one. This also makes dispatching from several threads safe.
* :meth:`~EventDispatcher.dispatch` serves synchronous code (configuration, CLI). It refuses to
  run when an asynchronous listener is registered for the name, *before* calling any listener,
  so an event is never left half-handled; use :meth:`~EventDispatcher.adispatch` there.
* A listener failure is raised as :class:`~ferryman.exceptions.EventListenerError` naming the
  listener and the event, chained (``from``) to the original error, because a bare traceback
  from deep inside a plugin rarely says which hook was being run. Cancellation,
  ``KeyboardInterrupt`` and ``SystemExit`` pass through untouched, and an ``EventListenerError``
  from a nested dispatch is not wrapped a second time (it already names the failing listener).
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Callable
from typing import Any, Final, TypeAlias, TypeVar, overload

from ferryman.events.event import Event
from ferryman.exceptions import EventListenerError

__all__ = ["EventDispatcher", "Listener"]

#: Anything called with the event. Its return value is ignored, unless it is awaitable, in which
#: case :meth:`EventDispatcher.adispatch` awaits it. The parameter is ``Any`` because the
#: dispatcher cannot tie an event name to an event class; listeners annotate the class they get.
Listener: TypeAlias = Callable[[Any], object]

E = TypeVar("E", bound=Event)
L = TypeVar("L", bound=Listener)


def _describe(listener: object) -> str:
    """Name a listener the way :class:`EventListenerError` does, so both messages match."""
    name = getattr(listener, "__qualname__", None) or repr(listener)
    module = getattr(listener, "__module__", None)
    return f"{module}.{name}" if module else name


def _is_async(listener: Listener) -> bool:
    """Tell once, at registration, whether calling the listener gives a coroutine to await."""
    target: Any = listener
    while isinstance(target, functools.partial):
        target = target.func
    if inspect.iscoroutinefunction(target):
        return True
    if inspect.isroutine(target) or inspect.isclass(target):
        return False
    # An instance whose __call__ is ``async def`` (add_listener checked it is callable).
    return inspect.iscoroutinefunction(type(target).__call__)


def _not_awaitable_here(event_name: str, listener: object) -> TypeError:
    return TypeError(
        f"listener {_describe(listener)} of event {event_name!r} is asynchronous and cannot be "
        f"run by dispatch(); use 'await dispatcher.adispatch({event_name!r}, event)' instead"
    )


class _Chain:
    """The listeners of one event name, in call order, as dispatch wants them.

    Immutable once built: dispatches hold on to it while add/remove build a replacement.
    """

    __slots__ = ("calls", "first_async", "listeners")

    def __init__(self, entries: list[tuple[int, int, Listener, bool]]) -> None:
        self.listeners: Final = tuple(entry[2] for entry in entries)
        # Any return: the is_async flag, not the type checker, knows which calls are awaitable.
        self.calls: Final[tuple[tuple[Callable[[Any], Any], bool], ...]] = tuple(
            (entry[2], entry[3]) for entry in entries
        )
        self.first_async: Final = next((entry[2] for entry in entries if entry[3]), None)


class EventDispatcher:
    """Calls the listeners registered for an event name, highest priority first."""

    __slots__ = ("__weakref__", "_chains", "_entries", "_lock", "_sequence", "version")

    def __init__(self) -> None:
        # What dispatch reads: only names that have at least one listener are keys, so "is
        # anybody listening" is a single membership test.
        self._chains: dict[str, _Chain] = {}
        # The source of truth for add/remove: (-priority, sequence, listener, is_async), sorted.
        self._entries: dict[str, list[tuple[int, int, Listener, bool]]] = {}
        self._sequence = 0
        #: Changes whenever a listener is added or removed: a hot path that decided something
        #: from ``has_listeners`` may keep its decision while the version stays the same.
        self.version = 0
        # Guards registration only (rare); dispatch never takes it.
        self._lock = threading.Lock()

    # Registration

    def add_listener(self, event_name: str, listener: Listener, priority: int = 0) -> None:
        """Register ``listener`` for ``event_name``; higher ``priority`` runs earlier.

        Adding the same listener twice registers it twice, like Symfony does.
        """
        if not callable(listener):
            # Fail where the mistake is, not on the first request that dispatches the event.
            raise TypeError(f"event listener must be callable, got {listener!r}")
        is_async = _is_async(listener)
        with self._lock:
            self._sequence += 1
            entries = [
                *self._entries.get(event_name, ()),
                (-priority, self._sequence, listener, is_async),
            ]
            entries.sort(key=lambda entry: (entry[0], entry[1]))
            self._publish(event_name, entries)

    def remove_listener(self, event_name: str, listener: Listener) -> None:
        """Unregister every registration of ``listener`` for ``event_name``.

        Listeners are matched by equality, so passing ``obj.method`` again finds the bound method
        registered earlier. Removing a listener that is not registered does nothing, which lets
        teardown code run unconditionally.
        """
        with self._lock:
            entries = self._entries.get(event_name)
            if entries is None:
                return
            kept = [entry for entry in entries if entry[2] != listener]
            if len(kept) != len(entries):
                self._publish(event_name, kept)

    def listen(self, event_name: str, priority: int = 0) -> Callable[[L], L]:
        """Decorator form of :meth:`add_listener`; gives the function back unchanged."""

        def register(listener: L) -> L:
            self.add_listener(event_name, listener, priority)
            return listener

        return register

    def _publish(self, event_name: str, entries: list[tuple[int, int, Listener, bool]]) -> None:
        self.version += 1
        if entries:
            self._entries[event_name] = entries
            self._chains[event_name] = _Chain(entries)
        else:
            self._entries.pop(event_name, None)
            self._chains.pop(event_name, None)

    # Introspection

    def has_listeners(self, event_name: str | None = None) -> bool:
        """Whether dispatching ``event_name`` (or any name, if ``None``) would call anything.

        Meant for hot paths: checking first avoids building an event nobody will see.
        """
        if event_name is None:
            return bool(self._chains)
        return event_name in self._chains

    def is_synchronous(self, event_name: str) -> bool:
        """Whether every listener of ``event_name`` is synchronous (so :meth:`dispatch` can run
        them, from a callback with no coroutine); True when there is none."""
        chain = self._chains.get(event_name)
        return chain is None or chain.first_async is None

    def get_listeners(self, event_name: str) -> list[Listener]:
        """The listeners of ``event_name`` in the order a dispatch would call them."""
        chain = self._chains.get(event_name)
        return [] if chain is None else list(chain.listeners)

    # Dispatch

    @overload
    def dispatch(self, event_name: str, event: None = None) -> Event: ...
    @overload
    def dispatch(self, event_name: str, event: E) -> E: ...

    def dispatch(self, event_name: str, event: Event | None = None) -> Event:
        """Run the synchronous listeners of ``event_name`` and give the event back.

        Raises :class:`TypeError` without calling anything if one of the listeners is
        asynchronous, and also if a listener turns out to return an awaitable (which is then
        closed, not run), because there is no event loop to run it on from here.
        """
        chain = self._chains.get(event_name)
        if event is None:
            event = Event()
        if chain is None:
            return event
        if chain.first_async is not None:
            raise _not_awaitable_here(event_name, chain.first_async)
        for listener in chain.listeners:
            if event.is_propagation_stopped:
                break
            try:
                result = listener(event)
            except EventListenerError:
                raise
            except Exception as exc:
                raise EventListenerError(event_name, listener, exc) from exc
            if result is not None and inspect.isawaitable(result):
                close = getattr(result, "close", None)
                if close is not None:
                    close()  # no "coroutine was never awaited" warning on top of our error
                raise _not_awaitable_here(event_name, listener)
        return event

    @overload
    async def adispatch(self, event_name: str, event: None = None) -> Event: ...
    @overload
    async def adispatch(self, event_name: str, event: E) -> E: ...

    async def adispatch(self, event_name: str, event: Event | None = None) -> Event:
        """Run every listener of ``event_name``, awaiting the asynchronous ones, in order.

        A synchronous listener that returns an awaitable (e.g. a lambda calling a coroutine
        function) has it awaited too, so wrapping does not silently drop the work.
        """
        chain = self._chains.get(event_name)
        if event is None:
            event = Event()
        if chain is None:
            return event
        for listener, is_async in chain.calls:
            if event.is_propagation_stopped:
                break
            try:
                if is_async:
                    await listener(event)
                else:
                    result = listener(event)
                    if result is not None and inspect.isawaitable(result):
                        await result
            except EventListenerError:
                raise
            except Exception as exc:
                raise EventListenerError(event_name, listener, exc) from exc
        return event
