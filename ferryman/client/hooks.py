"""Response events: the handlers a client calls around each exchange (pulsar's one-time and
many-time events).

One-time events fire once per exchange: ``pre_request`` before the request leaves (handlers
get the :class:`Request`, since no response exists yet, and may change its headers),
``on_headers`` when the response head has arrived, ``post_request`` when the response is done
(body read or stream closed) or failed. Many-time events fire per body chunk:
``data_received`` with the bytes as they came off the wire, ``data_processed`` with the bytes
after decoding (decompression).

Why not the :class:`~ferryman.events.EventDispatcher`: these handlers are bound per client
*and* per request and take the response positionally, as pulsar's do; the many-time events fire
for every chunk, where an event object per chunk would cost more than the handler. The
dispatcher still carries what crosses layers (the filter events of the outbound transport).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Iterator
from typing import Any

__all__ = [
    "EVENT_NAMES",
    "MANY_TIMES_EVENTS",
    "ONE_TIME_EVENTS",
    "EventHandlers",
    "Handler",
    "fire",
]

ONE_TIME_EVENTS = ("pre_request", "on_headers", "post_request")
MANY_TIMES_EVENTS = ("data_received", "data_processed")
EVENT_NAMES = ONE_TIME_EVENTS + MANY_TIMES_EVENTS

Handler = Callable[..., Any]


class EventHandlers:
    """The handlers bound to one event of a client: ``client.event("on_headers").bind(fn)``."""

    __slots__ = ("_handlers", "name")

    def __init__(self, name: str) -> None:
        if name not in EVENT_NAMES:
            raise ValueError(
                f"unknown client event {name!r}; the events are {', '.join(EVENT_NAMES)}"
            )
        self.name = name
        self._handlers: list[Handler] = []

    def bind(self, handler: Handler) -> Handler:
        """Add a handler (sync or async); returns it, so ``bind`` also works as a decorator."""
        if not callable(handler):
            raise TypeError(f"a {self.name} handler must be callable, not {handler!r}")
        self._handlers.append(handler)
        return handler

    def unbind(self, handler: Handler) -> bool:
        """Remove a handler; ``False`` if it was not bound."""
        try:
            self._handlers.remove(handler)
        except ValueError:
            return False
        return True

    def clear(self) -> None:
        self._handlers.clear()

    def __iter__(self) -> Iterator[Handler]:
        return iter(self._handlers)

    def __len__(self) -> int:
        return len(self._handlers)

    def __bool__(self) -> bool:
        return bool(self._handlers)

    def __repr__(self) -> str:
        return f"<EventHandlers {self.name!r} ({len(self._handlers)} bound)>"


def combine(
    session: EventHandlers, extra: Handler | Iterable[Handler] | None
) -> tuple[Handler, ...]:
    """The handlers of one exchange: the session's first, then the request's own."""
    if extra is None:
        return tuple(session._handlers)
    if callable(extra):
        return (*session._handlers, extra)
    extras = tuple(extra)
    for handler in extras:
        if not callable(handler):
            raise TypeError(f"a {session.name} handler must be callable, not {handler!r}")
    return (*session._handlers, *extras)


async def fire(handlers: tuple[Handler, ...], target: Any, keyword: str, value: Any) -> None:
    """Call each handler with ``target`` and, when ``value`` is not ``None``, ``keyword=value``;
    await the ones that return an awaitable."""
    for handler in handlers:
        result = handler(target) if value is None else handler(target, **{keyword: value})
        if inspect.isawaitable(result):
            await result
