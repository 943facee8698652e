"""The rules as event listeners: one per event that rules use, matching endpoint and route.

A listener is registered only for an event some rule uses, and is synchronous unless one of
that event's functions is ``async def``, so rules of plain functions on ``proxy.filter.*`` run
inline on the fast relay (:mod:`ferryman.proxy.relay_events`) with no task per request. Which
rules apply to an endpoint is worked out once per endpoint (a bounded set: the configuration's
names), the route per request.

The ``http_client.filter.*`` events carry no endpoint: a rule's ``endpoint`` glob is matched
there against the endpoints whose upstream the request goes to (by origin), so a rule for
``*`` also sees a bare ``AsyncClient``'s requests made with the system's dispatcher, and the
route is matched against the request going upstream (after any rewrite).
"""

from __future__ import annotations

import fnmatch
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from ferryman.apps.rules.routes import Route, normalized_path
from ferryman.events import EventDispatcher
from ferryman.proxy.events import EVENT_FILTER_PROXY_REQUEST, EVENT_FILTER_PROXY_RESPONSE

__all__ = ["AttachedRule", "RuleListener", "attach_rules", "is_async"]

Function = Callable[[Any], Any]
PROXY_EVENTS = (EVENT_FILTER_PROXY_REQUEST, EVENT_FILTER_PROXY_RESPONSE)


class AttachedRule(NamedTuple):
    """One rule's functions for one event."""

    endpoint: str  # a glob of endpoint names
    route: Route
    event: str
    functions: tuple[Function, ...]


def is_async(function: Function) -> bool:
    return inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(
        getattr(function, "__call__", None)  # noqa: B004 (an object with an async __call__)
    )


class RuleListener:
    """Calls the functions of the rules of one event that match the event's request."""

    def __init__(self, rules: Sequence[AttachedRule], origins: Mapping[str, tuple[str, ...]]):
        self.rules = tuple(rules)
        #: For the client events: upstream origin -> the endpoints relaying there.
        self.origins = origins
        self._by_endpoints: dict[tuple[str, ...], tuple[AttachedRule, ...]] = {}
        self.proxy_event = rules[0].event in (
            EVENT_FILTER_PROXY_REQUEST,
            EVENT_FILTER_PROXY_RESPONSE,
        )

    def matching(self, event: Any) -> list[Function]:
        """The functions to call for ``event``, in configuration order."""
        request = event.request
        if self.proxy_event:
            endpoints: tuple[str, ...] = (event.endpoint,)
        else:
            url = request.url
            endpoints = self.origins.get(f"{url.scheme}://{url.host_header.decode('ascii')}", ())
        rules = self._by_endpoints.get(endpoints)
        if rules is None:
            rules = self._by_endpoints[endpoints] = tuple(
                rule
                for rule in self.rules
                if rule.endpoint == "*"
                or any(fnmatch.fnmatchcase(name, rule.endpoint) for name in endpoints)
            )
        if not rules:
            return []
        method = request.method
        path = normalized_path(request.url.path)
        return [
            function
            for rule in rules
            if rule.route.matches(method, path)
            for function in rule.functions
        ]

    def __call__(self, event: Any) -> None:
        for function in self.matching(event):
            if event.is_propagation_stopped:
                return
            function(event)


class AsyncRuleListener(RuleListener):
    """The same, for an event one of whose functions is ``async def``."""

    async def __call__(self, event: Any) -> None:  # type: ignore[override]
        for function in self.matching(event):
            if event.is_propagation_stopped:
                return
            result = function(event)
            if inspect.isawaitable(result):
                await result


def attach_rules(
    dispatcher: EventDispatcher,
    rules: Sequence[AttachedRule],
    origins: Mapping[str, tuple[str, ...]],
) -> dict[str, RuleListener]:
    """Register one listener per event the rules use; event name -> its listener."""
    listeners: dict[str, RuleListener] = {}
    events = dict.fromkeys(rule.event for rule in rules)
    for event in events:
        own = [rule for rule in rules if rule.event == event]
        asynchronous = any(is_async(f) for rule in own for f in rule.functions)
        listener = (AsyncRuleListener if asynchronous else RuleListener)(own, origins)
        dispatcher.add_listener(event, listener)
        listeners[event] = listener
    return listeners
