"""The base class every event dispatched through :class:`~ferryman.events.EventDispatcher` shares.

An event is a plain object holding whatever the listeners need to look at or change (a request,
a response, a controller...). The dispatcher only needs one thing from it: whether a listener has
asked to stop propagation, so that is all this base class carries.
"""

from __future__ import annotations

__all__ = ["Event"]


class Event:
    """A message handed to every listener of one event name, in priority order.

    Subclasses add the objects the event is about as attributes, and may declare their own
    ``__slots__`` (events are created on every request, so slots keep them small and fast).
    Calling ``super().__init__()`` is not required: subclasses built with
    ``@dataclass(slots=True)`` skip it, and the propagation flag then simply reads as unset.
    """

    __slots__ = ("_propagation_stopped",)

    def __init__(self) -> None:
        self._propagation_stopped = False

    def stop_propagation(self) -> None:
        """Keep the listeners that come after the current one from seeing this event.

        Propagation cannot be resumed: a listener that stops it has taken responsibility for the
        outcome (for example by setting a response), and lower-priority listeners must not undo
        that. The flag is checked before each listener, so an event stopped before it is
        dispatched (or reused for a second event name) reaches no listener at all.
        """
        self._propagation_stopped = True

    @property
    def is_propagation_stopped(self) -> bool:
        """Whether a listener called :meth:`stop_propagation`; read by the dispatcher."""
        try:
            return self._propagation_stopped
        except AttributeError:
            # Subclass whose __init__ did not call ours (e.g. a slotted dataclass).
            return False
