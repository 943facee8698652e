"""Assembling a system from a configuration: applications, services, kernel, in a fixed order.

``await SystemBuilder(config).build(kernel_factory)``:

1. validates the configuration and creates each application with its settings;
2. registers the applications' listeners on one :class:`~ferryman.events.EventDispatcher`
   (in the order of ``applications``; ``on_shutdown`` listeners in reverse order, so what started
   first stops last);
3. puts the dispatcher and every settings model in the container, so services can ask for them;
4. dispatches ``EVENT_BIND`` (applications register services), checks every dependency can be
   met, then dispatches ``EVENT_BOUND`` (services may be resolved and started);
5. builds the ASGI kernel with ``kernel_factory(dispatcher, provider)`` and dispatches
   ``EVENT_READY``, whose listeners may wrap ``event.kernel``; the final kernel is served.

If a step after ``EVENT_BOUND`` started fails, ``EVENT_SHUTDOWN`` is dispatched before the error
is raised, so services that were already started are released.

Each of the three events is sent by a method of its own, named as HARP names them
(:meth:`SystemBuilder.dispatch_bind_event`, :meth:`~SystemBuilder.dispatch_bound_event`,
:meth:`~SystemBuilder.dispatch_ready_event`): one place per phase that says what its event
carries, which a subclass or a test can also call on a dispatcher of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ferryman.events import EventDispatcher
from ferryman.system.config import resolve_config
from ferryman.system.container import Container
from ferryman.system.events import (
    EVENT_BIND,
    EVENT_BOUND,
    EVENT_READY,
    EVENT_SHUTDOWN,
    ASGIApp,
    OnBindEvent,
    OnBoundEvent,
    OnReadyEvent,
    OnShutdownEvent,
)

__all__ = ["KernelFactory", "System", "SystemBuilder"]

#: Builds the ASGI kernel once services are bound; given the dispatcher and the provider.
KernelFactory = Callable[[EventDispatcher, Container], ASGIApp]

_STARTUP_LISTENERS = ((EVENT_BIND, "on_bind"), (EVENT_BOUND, "on_bound"), (EVENT_READY, "on_ready"))


class System:
    """A built system: what to serve (``asgi_app``) and what to dispose of afterwards."""

    __slots__ = ("_disposed", "asgi_app", "config", "dispatcher", "provider")

    def __init__(
        self,
        config: Mapping[str, Any],
        dispatcher: EventDispatcher,
        provider: Container,
        asgi_app: ASGIApp,
    ) -> None:
        #: The validated settings, as events carry them.
        self.config = config
        self.dispatcher = dispatcher
        self.provider = provider
        self.asgi_app = asgi_app
        self._disposed = False

    async def dispose(self) -> None:
        """Dispatch ``EVENT_SHUTDOWN``; later calls do nothing, so every exit path may call it."""
        if self._disposed:
            return
        self._disposed = True
        await self.dispatcher.adispatch(EVENT_SHUTDOWN, OnShutdownEvent(self.provider))


class SystemBuilder:
    """Turns a configuration (as :func:`~ferryman.system.load_config` returns it) into a system."""

    __slots__ = ("config",)

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.config = config

    async def build(self, kernel_factory: KernelFactory) -> System:
        """Run the bind, bound and ready phases and give back the system to serve."""
        resolved = resolve_config(self.config)
        settings = resolved.settings
        dispatcher = EventDispatcher()
        container = Container()
        container.add(EventDispatcher, dispatcher)
        applications = [cls(settings.get(cls.name)) for cls in resolved.applications]
        for application in applications:
            if application.settings is not None:
                container.add(type(application.settings), application.settings)
            for event_name, method in _STARTUP_LISTENERS:
                listener = getattr(application, method, None)
                if listener is not None:
                    dispatcher.add_listener(event_name, listener)
        for application in reversed(applications):
            listener = getattr(application, "on_shutdown", None)
            if listener is not None:
                dispatcher.add_listener(EVENT_SHUTDOWN, listener)

        await self.dispatch_bind_event(dispatcher, container, settings)
        container.check()
        try:
            await self.dispatch_bound_event(dispatcher, container, settings)
            kernel = kernel_factory(dispatcher, container)
            ready = await self.dispatch_ready_event(dispatcher, kernel, container, settings)
        except BaseException as error:
            try:
                await dispatcher.adispatch(EVENT_SHUTDOWN, OnShutdownEvent(container))
            except Exception as cleanup_error:
                error.add_note(f"and then shutting down failed too: {cleanup_error}")
            raise
        return System(settings, dispatcher, container, ready.kernel)

    # One method per phase (HARP's names): what each event carries, said in one place.

    async def dispatch_bind_event(
        self, dispatcher: EventDispatcher, container: Container, settings: Mapping[str, Any]
    ) -> OnBindEvent:
        """``EVENT_BIND``: applications register their services in ``container``."""
        return await dispatcher.adispatch(EVENT_BIND, OnBindEvent(container, settings))

    async def dispatch_bound_event(
        self, dispatcher: EventDispatcher, provider: Container, settings: Mapping[str, Any]
    ) -> OnBoundEvent:
        """``EVENT_BOUND``: every dependency can be met; services may be resolved and started."""
        return await dispatcher.adispatch(EVENT_BOUND, OnBoundEvent(provider, settings))

    async def dispatch_ready_event(
        self,
        dispatcher: EventDispatcher,
        kernel: ASGIApp,
        provider: Container,
        settings: Mapping[str, Any],
    ) -> OnReadyEvent:
        """``EVENT_READY``: listeners may wrap ``event.kernel``; the event's last kernel is
        the one served."""
        return await dispatcher.adispatch(EVENT_READY, OnReadyEvent(kernel, provider, settings))
