"""AsyncEventDispatcher: listeners registered as whistle (HARP's dispatcher) takes them, run
in the order whistle would run them, by ferryman's dispatcher and by code written for whistle."""

from __future__ import annotations

import functools

import pytest

from ferryman.events import AsyncEventDispatcher, Event, EventDispatcher


async def test_a_lower_priority_runs_first_as_in_whistle() -> None:
    dispatcher = AsyncEventDispatcher()
    order: list[str] = []

    def record(name: str):
        async def listener(event: Event) -> None:
            order.append(name)

        return listener

    dispatcher.add_listener("x", record("late"), priority=10)
    dispatcher.add_listener("x", record("early"), priority=-10)
    dispatcher.add_listener("x", record("default"))
    dispatcher.add_listener("x", record("default, added later"))
    await dispatcher.adispatch("x")
    assert order == ["early", "default", "default, added later", "late"]

    @dispatcher.listen("y", priority=-1)
    async def first(event: Event) -> None:
        order.append("listen -1")

    @dispatcher.listen("y", priority=1)
    async def second(event: Event) -> None:
        order.append("listen 1")

    order.clear()
    await dispatcher.adispatch("y")
    assert order == ["listen -1", "listen 1"]


async def test_dispatch_is_awaitable_and_gives_the_event_back() -> None:
    dispatcher = AsyncEventDispatcher()
    seen: list[Event] = []

    async def listener(event: Event) -> None:
        seen.append(event)
        event.stop_propagation()

    async def never(event: Event) -> None:
        raise AssertionError("propagation was stopped")

    dispatcher.add_listener("x", listener)
    dispatcher.add_listener("x", never, priority=1)
    event = Event()
    assert await dispatcher.dispatch("x", event) is event
    assert seen == [event]
    assert isinstance(await dispatcher.dispatch("nobody.listens"), Event)


def test_plain_functions_are_refused_at_registration() -> None:
    dispatcher = AsyncEventDispatcher()
    with pytest.raises(TypeError, match="coroutine function"):
        dispatcher.add_listener("x", lambda event: None)
    assert not dispatcher.has_listeners("x")

    async def listener(event: Event, tag: str) -> None: ...

    dispatcher.add_listener("x", functools.partial(listener, tag="t"))  # still a coroutine
    assert dispatcher.has_listeners("x")


async def test_it_is_a_ferryman_dispatcher_whose_listeners_no_synchronous_caller_runs() -> None:
    dispatcher = AsyncEventDispatcher()

    async def listener(event: Event) -> None: ...

    dispatcher.add_listener("x", listener)
    assert isinstance(dispatcher, EventDispatcher)
    # ferryman's hot paths ask this before a synchronous dispatch: never true here
    assert not dispatcher.is_synchronous("x")
