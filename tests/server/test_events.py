"""The kernel's event classes: what listeners may read and change."""

from __future__ import annotations

from ferryman.events import EventDispatcher
from ferryman.http import Request, Response
from ferryman.server import (
    EVENT_CORE_VIEW,
    ControllerEvent,
    RequestEvent,
    ResponseEvent,
    ViewEvent,
    not_found_controller,
)


def test_names_are_harps() -> None:
    from ferryman.server import events

    assert [
        events.EVENT_CORE_STARTED,
        events.EVENT_CORE_REQUEST,
        events.EVENT_CORE_CONTROLLER,
        events.EVENT_CORE_VIEW,
        events.EVENT_CORE_RESPONSE,
    ] == ["core.started", "core.request", "core.controller", "core.view", "core.response"]


def test_set_controller_does_not_stop_propagation() -> None:
    assert RequestEvent(Request("GET", "http://h/")).controller is None
    event = RequestEvent(Request("GET", "http://h/"))
    event.set_controller(not_found_controller)
    assert event.controller is not_found_controller
    assert not event.is_propagation_stopped


async def test_set_response_stops_the_view_listeners_after_it() -> None:
    dispatcher = EventDispatcher()
    calls: list[str] = []
    dispatcher.add_listener(EVENT_CORE_VIEW, lambda e: calls.append("first"), priority=2)

    def render(event: ViewEvent) -> None:
        calls.append("render")
        event.set_response(Response(204))

    dispatcher.add_listener(EVENT_CORE_VIEW, render, priority=1)
    dispatcher.add_listener(EVENT_CORE_VIEW, lambda e: calls.append("never"))
    event = await dispatcher.adispatch(EVENT_CORE_VIEW, ViewEvent(Request("GET", "http://h/"), 1))
    assert calls == ["first", "render"]
    assert event.response is not None and event.response.status_code == 204


def test_events_have_slots_and_say_what_they_carry() -> None:
    request = Request("GET", "http://h/x")
    events = [
        RequestEvent(request),
        ControllerEvent(request, not_found_controller),
        ViewEvent(request, {"a": 1}),
        ResponseEvent(request, Response(200)),
    ]
    for event in events:
        assert not hasattr(event, "__dict__")
        assert "http://h/x" in repr(event)
    assert "not_found_controller" in repr(events[1])
    assert "value=dict" in repr(events[2])
    assert "200" in repr(events[3])
