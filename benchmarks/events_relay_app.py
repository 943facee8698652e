"""Applications for ``benchmarks/events_relay.sh``: what one no-op listener or middleware costs.

``events_relay_app:NoOpFilters`` adds ``lambda event: None`` to ``proxy.filter.request`` and
``proxy.filter.response``; ``events_relay_app:NoOpMiddleware`` adds a generator middleware that
yields and does nothing to every endpoint. Loaded with ``--app-dir benchmarks``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

from ferryman.events import EventDispatcher
from ferryman.proxy import ProxyContext, ProxyEndpoints
from ferryman.proxy.events import EVENT_FILTER_PROXY_REQUEST, EVENT_FILTER_PROXY_RESPONSE
from ferryman.system.applications import Application
from ferryman.system.events import OnBoundEvent


def _no_op(event: object) -> None:
    """Looks at nothing, changes nothing."""


def _pass_through(ctx: ProxyContext) -> Iterator[None]:
    yield


class NoOpFilters(Application):
    name: ClassVar[str] = "noop_filters"

    def on_bound(self, event: OnBoundEvent) -> None:
        dispatcher = event.provider.resolve(EventDispatcher)
        dispatcher.add_listener(EVENT_FILTER_PROXY_REQUEST, _no_op)
        dispatcher.add_listener(EVENT_FILTER_PROXY_RESPONSE, _no_op)


class NoOpMiddleware(Application):
    name: ClassVar[str] = "noop_middleware"

    def on_bound(self, event: OnBoundEvent) -> None:
        endpoints = event.provider.resolve(ProxyEndpoints)
        for name in endpoints:
            endpoints[name].client_edge(_pass_through)
