"""The four events of a system's life, in the order the system builder sends them.

* ``EVENT_BIND`` (:class:`OnBindEvent`): applications register their services in the container.
* ``EVENT_BOUND`` (:class:`OnBoundEvent`): every dependency is known to be satisfiable; services
  can be resolved and started (open a database, warm a cache).
* ``EVENT_READY`` (:class:`OnReadyEvent`): the ASGI kernel exists; listeners may wrap it with
  middleware by assigning ``event.kernel``, and the last value is what gets served.
* ``EVENT_SHUTDOWN`` (:class:`OnShutdownEvent`, also named :data:`OnShutdown` as HARP's
  documentation calls it): sent once by ``System.dispose()``; release what ``on_bound``
  acquired.

``settings`` is the validated configuration: ``settings["applications"]`` lists the application
names, and ``settings[<application name>]`` is that application's settings model.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any, Final, TypeAlias

from ferryman.events import Event
from ferryman.system.container import Container

__all__ = [
    "EVENT_BIND",
    "EVENT_BOUND",
    "EVENT_READY",
    "EVENT_SHUTDOWN",
    "ASGIApp",
    "OnBindEvent",
    "OnBoundEvent",
    "OnReadyEvent",
    "OnShutdown",
    "OnShutdownEvent",
]

EVENT_BIND: Final = "system.bind"
EVENT_BOUND: Final = "system.bound"
EVENT_READY: Final = "system.ready"
EVENT_SHUTDOWN: Final = "system.shutdown"

# ASGI 3, as the spec defines it; any callable of this shape can be the kernel or wrap it.
Scope: TypeAlias = MutableMapping[str, Any]
Message: TypeAlias = MutableMapping[str, Any]
Receive: TypeAlias = Callable[[], Awaitable[Message]]
Send: TypeAlias = Callable[[Message], Awaitable[None]]
ASGIApp: TypeAlias = Callable[[Scope, Receive, Send], Awaitable[None]]


class OnBindEvent(Event):
    """Applications add their services to ``container``; nothing is resolved yet."""

    __slots__ = ("container", "settings")

    def __init__(self, container: Container, settings: Mapping[str, Any]) -> None:
        super().__init__()
        self.container = container
        self.settings = settings


class OnBoundEvent(Event):
    """Every service can now be resolved from ``provider``."""

    __slots__ = ("provider", "settings")

    def __init__(self, provider: Container, settings: Mapping[str, Any]) -> None:
        super().__init__()
        self.provider = provider
        self.settings = settings


class OnReadyEvent(Event):
    """The kernel is built; wrap it by replacing it: ``event.kernel = Gzip(event.kernel)``."""

    __slots__ = ("kernel", "provider", "settings")

    def __init__(self, kernel: ASGIApp, provider: Container, settings: Mapping[str, Any]) -> None:
        super().__init__()
        self.kernel = kernel
        self.provider = provider
        self.settings = settings


class OnShutdownEvent(Event):
    """The system stops; listeners release what they acquired on bound."""

    __slots__ = ("provider",)

    def __init__(self, provider: Container) -> None:
        super().__init__()
        self.provider = provider


#: HARP's documentation names the shutdown event's class ``OnShutdown`` (its code,
#: ``OnShutdownEvent``); both names are the same class, so code written either way runs.
OnShutdown = OnShutdownEvent
