"""Applications that listen and do nothing, for ``benchmarks/variants.py``: what merely having a
listener costs on each path."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, ClassVar

from ferryman.events import EventDispatcher
from ferryman.proxy.application import ProxyEndpoints
from ferryman.proxy.events import EVENT_FILTER_PROXY_REQUEST, EVENT_FILTER_PROXY_RESPONSE
from ferryman.proxy.transactions import EVENT_TRANSACTION_FINISHED
from ferryman.system.applications import Application
from ferryman.system.events import OnBoundEvent


def _nothing(event: object) -> None:
    return None


class TransactionObserver(Application):
    """One no-op ``proxy.transaction.finished`` listener."""

    name: ClassVar[str] = "noop_observer"

    def on_bound(self, event: OnBoundEvent) -> None:
        event.provider.resolve(EventDispatcher).add_listener(EVENT_TRANSACTION_FINISHED, _nothing)


class FilterListeners(Application):
    """One no-op listener on each of ``proxy.filter.request`` and ``proxy.filter.response``."""

    name: ClassVar[str] = "noop_filters"

    def on_bound(self, event: OnBoundEvent) -> None:
        dispatcher = event.provider.resolve(EventDispatcher)
        dispatcher.add_listener(EVENT_FILTER_PROXY_REQUEST, _nothing)
        dispatcher.add_listener(EVENT_FILTER_PROXY_RESPONSE, _nothing)


def _through(ctx: object) -> Iterator[None]:
    yield


async def _through_async(ctx: object) -> AsyncIterator[None]:
    yield


class _Middleware(Application):
    middleware: ClassVar[Callable[[Any], Any]]

    def on_bound(self, event: OnBoundEvent) -> None:
        for handler in event.provider.resolve(ProxyEndpoints).handlers.values():
            handler.client_edge(type(self).middleware)


class Middleware(_Middleware):
    """One no-op generator middleware on every endpoint (run inline by the relay)."""

    name: ClassVar[str] = "noop_middleware"
    middleware = staticmethod(_through)


class AsyncMiddleware(_Middleware):
    """One no-op async generator middleware on every endpoint (a task per request)."""

    name: ClassVar[str] = "noop_async_middleware"
    middleware = staticmethod(_through_async)
