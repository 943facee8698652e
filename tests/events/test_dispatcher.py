from __future__ import annotations

import asyncio
import functools
import gc
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ferryman.events import Event, EventDispatcher, EventListenerError
from ferryman.exceptions import FerrymanError


class NamedEvent(Event):
    __slots__ = ("calls",)

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []


def recorder(name: str, *, stop: bool = False) -> Callable[[NamedEvent], None]:
    def listener(event: NamedEvent) -> None:
        event.calls.append(name)
        if stop:
            event.stop_propagation()

    return listener


def async_recorder(name: str, *, stop: bool = False) -> Callable[[NamedEvent], Any]:
    async def listener(event: NamedEvent) -> None:
        await asyncio.sleep(0)  # really suspend, so the dispatcher must await us
        event.calls.append(name)
        if stop:
            event.stop_propagation()

    return listener


def failing_listener(event: Event) -> None:
    raise ValueError("boom")


async def failing_async_listener(event: Event) -> None:
    await asyncio.sleep(0)
    raise ValueError("async boom")


class Handlers:
    def __init__(self) -> None:
        self.seen: list[Event] = []

    def on_event(self, event: Event) -> None:
        self.seen.append(event)

    async def on_event_async(self, event: Event) -> None:
        self.seen.append(event)


# Ordering


def test_higher_priority_runs_first() -> None:
    dispatcher = EventDispatcher()
    dispatcher.add_listener("e", recorder("low"), priority=-5)
    dispatcher.add_listener("e", recorder("high"), priority=10)
    dispatcher.add_listener("e", recorder("default"))

    event = dispatcher.dispatch("e", NamedEvent())

    assert event.calls == ["high", "default", "low"]


def test_equal_priorities_run_in_the_order_added() -> None:
    dispatcher = EventDispatcher()
    dispatcher.add_listener("e", recorder("a"), priority=1)
    dispatcher.add_listener("e", recorder("b"))
    dispatcher.add_listener("e", recorder("c"), priority=1)
    dispatcher.add_listener("e", recorder("d"))
    dispatcher.add_listener("e", recorder("e"), priority=1)

    assert dispatcher.dispatch("e", NamedEvent()).calls == ["a", "c", "e", "b", "d"]


def test_get_listeners_returns_call_order() -> None:
    dispatcher = EventDispatcher()
    first, second, third = recorder("1"), recorder("2"), recorder("3")
    dispatcher.add_listener("e", third, priority=-1)
    dispatcher.add_listener("e", first, priority=3)
    dispatcher.add_listener("e", second, priority=3)

    assert dispatcher.get_listeners("e") == [first, second, third]
    assert dispatcher.get_listeners("other") == []


def test_get_listeners_returns_a_copy() -> None:
    dispatcher = EventDispatcher()
    listener = recorder("x")
    dispatcher.add_listener("e", listener)

    dispatcher.get_listeners("e").clear()

    assert dispatcher.get_listeners("e") == [listener]


@given(st.lists(st.integers(min_value=-3, max_value=3), max_size=12))
def test_order_is_a_stable_sort_by_descending_priority(priorities: list[int]) -> None:
    dispatcher = EventDispatcher()
    for index, priority in enumerate(priorities):
        dispatcher.add_listener("e", recorder(str(index)), priority=priority)

    calls = dispatcher.dispatch("e", NamedEvent()).calls

    expected = sorted(range(len(priorities)), key=lambda index: -priorities[index])
    assert calls == [str(index) for index in expected]


async def test_adispatch_mixes_sync_and_async_listeners_in_priority_order() -> None:
    dispatcher = EventDispatcher()
    dispatcher.add_listener("e", async_recorder("async-low"), priority=-1)
    dispatcher.add_listener("e", recorder("sync-mid"))
    dispatcher.add_listener("e", async_recorder("async-high"), priority=5)
    dispatcher.add_listener("e", recorder("sync-high"), priority=5)

    event = await dispatcher.adispatch("e", NamedEvent())

    assert event.calls == ["async-high", "sync-high", "sync-mid", "async-low"]


async def test_adispatch_awaits_what_a_sync_listener_returns() -> None:
    dispatcher = EventDispatcher()
    inner = async_recorder("inner")
    dispatcher.add_listener("e", lambda event: inner(event))
    dispatcher.add_listener("e", recorder("after"), priority=-1)

    event = await dispatcher.adispatch("e", NamedEvent())

    assert event.calls == ["inner", "after"]


async def test_adispatch_runs_async_callables_partials_and_bound_methods() -> None:
    class AsyncCallable:
        async def __call__(self, event: NamedEvent) -> None:
            await asyncio.sleep(0)
            event.calls.append("callable")

    async def with_label(label: str, event: NamedEvent) -> None:
        await asyncio.sleep(0)
        event.calls.append(label)

    handlers = Handlers()
    dispatcher = EventDispatcher()
    dispatcher.add_listener("e", AsyncCallable(), priority=3)
    dispatcher.add_listener("e", functools.partial(with_label, "partial"), priority=2)
    dispatcher.add_listener("e", handlers.on_event_async, priority=1)

    event = await dispatcher.adispatch("e", NamedEvent())

    assert event.calls == ["callable", "partial"]
    assert handlers.seen == [event]


# Stopping propagation


def test_stop_propagation_in_dispatch() -> None:
    dispatcher = EventDispatcher()
    dispatcher.add_listener("e", recorder("first"), priority=2)
    dispatcher.add_listener("e", recorder("stopper", stop=True), priority=1)
    dispatcher.add_listener("e", recorder("never"))

    event = dispatcher.dispatch("e", NamedEvent())

    assert event.calls == ["first", "stopper"]
    assert event.is_propagation_stopped


async def test_stop_propagation_in_adispatch_from_sync_and_async_listeners() -> None:
    for stopper in (recorder("stopper", stop=True), async_recorder("stopper", stop=True)):
        dispatcher = EventDispatcher()
        dispatcher.add_listener("e", async_recorder("first"), priority=2)
        dispatcher.add_listener("e", stopper, priority=1)
        dispatcher.add_listener("e", async_recorder("never"))
        dispatcher.add_listener("e", recorder("never either"), priority=-1)

        event = await dispatcher.adispatch("e", NamedEvent())

        assert event.calls == ["first", "stopper"], stopper
        assert event.is_propagation_stopped


async def test_an_event_stopped_beforehand_reaches_no_listener() -> None:
    dispatcher = EventDispatcher()
    dispatcher.add_listener("sync", recorder("sync"))
    dispatcher.add_listener("mixed", recorder("sync"))
    dispatcher.add_listener("mixed", async_recorder("async"))
    event = NamedEvent()
    event.stop_propagation()

    dispatcher.dispatch("sync", event)
    await dispatcher.adispatch("mixed", event)

    assert event.calls == []


def test_event_starts_with_propagation_running() -> None:
    event = Event()

    assert event.is_propagation_stopped is False
    event.stop_propagation()
    assert event.is_propagation_stopped is True


def test_slotted_dataclass_event_that_skips_base_init_still_works() -> None:
    @dataclass(slots=True)
    class RequestEvent(Event):
        request: str

    dispatcher = EventDispatcher()
    seen: list[str] = []

    def stopper(event: RequestEvent) -> None:
        seen.append(event.request)
        event.stop_propagation()

    dispatcher.add_listener("e", stopper, priority=1)
    dispatcher.add_listener("e", lambda event: seen.append("never"))
    event = RequestEvent("GET /")

    assert event.is_propagation_stopped is False
    assert not hasattr(event, "__dict__")
    assert dispatcher.dispatch("e", event) is event
    assert seen == ["GET /"]
    assert event.is_propagation_stopped is True


# Removing, decorating, introspecting


def test_remove_listener_removes_every_registration_of_it_only() -> None:
    dispatcher = EventDispatcher()
    kept, removed = recorder("kept"), recorder("removed")
    dispatcher.add_listener("e", removed, priority=1)
    dispatcher.add_listener("e", kept)
    dispatcher.add_listener("e", removed, priority=-1)
    dispatcher.add_listener("other", removed)

    dispatcher.remove_listener("e", removed)

    assert dispatcher.dispatch("e", NamedEvent()).calls == ["kept"]
    assert dispatcher.get_listeners("other") == [removed]


def test_remove_listener_matches_bound_methods_by_equality() -> None:
    handlers = Handlers()
    dispatcher = EventDispatcher()
    dispatcher.add_listener("e", handlers.on_event)

    dispatcher.remove_listener("e", handlers.on_event)  # a new, equal, bound method object

    assert not dispatcher.has_listeners("e")
    dispatcher.dispatch("e")
    assert handlers.seen == []


def test_remove_unknown_listener_is_a_no_op() -> None:
    dispatcher = EventDispatcher()
    listener = recorder("x")
    dispatcher.add_listener("e", listener)

    dispatcher.remove_listener("e", recorder("y"))
    dispatcher.remove_listener("unknown", listener)

    assert dispatcher.get_listeners("e") == [listener]


def test_listen_decorator_registers_with_priority_and_returns_the_function() -> None:
    dispatcher = EventDispatcher()
    dispatcher.add_listener("e", recorder("plain"))

    @dispatcher.listen("e", priority=7)
    def decorated(event: NamedEvent) -> None:
        event.calls.append("decorated")

    @dispatcher.listen("e")
    async def decorated_async(event: NamedEvent) -> None:
        event.calls.append("decorated-async")

    assert decorated.__name__ == "decorated"
    assert dispatcher.get_listeners("e")[0] is decorated
    assert dispatcher.get_listeners("e")[-1] is decorated_async
    decorated(event := NamedEvent())
    assert event.calls == ["decorated"]


async def test_listen_decorated_listeners_are_dispatched() -> None:
    dispatcher = EventDispatcher()

    @dispatcher.listen("e", priority=-1)
    async def last(event: NamedEvent) -> None:
        event.calls.append("last")

    @dispatcher.listen("e")
    def first(event: NamedEvent) -> None:
        event.calls.append("first")

    assert (await dispatcher.adispatch("e", NamedEvent())).calls == ["first", "last"]


def test_has_listeners() -> None:
    dispatcher = EventDispatcher()
    assert dispatcher.has_listeners() is False
    assert dispatcher.has_listeners("e") is False

    listener = recorder("x")
    dispatcher.add_listener("e", listener)
    assert dispatcher.has_listeners() is True
    assert dispatcher.has_listeners("e") is True
    assert dispatcher.has_listeners("other") is False

    dispatcher.remove_listener("e", listener)
    assert dispatcher.has_listeners("e") is False
    assert dispatcher.has_listeners() is False


def test_add_listener_rejects_non_callables() -> None:
    dispatcher = EventDispatcher()

    with pytest.raises(TypeError, match="callable"):
        dispatcher.add_listener("e", "not a function")  # type: ignore[arg-type]

    assert not dispatcher.has_listeners()


# Events given back


async def test_dispatchers_return_the_event_they_were_given() -> None:
    dispatcher = EventDispatcher()
    dispatcher.add_listener("e", recorder("sync"))
    event = NamedEvent()

    assert dispatcher.dispatch("e", event) is event
    assert await dispatcher.adispatch("e", event) is event
    assert dispatcher.dispatch("nobody", event) is event
    assert await dispatcher.adispatch("nobody", event) is event
    assert event.calls == ["sync", "sync"]


async def test_a_fresh_event_is_created_when_none_is_given() -> None:
    dispatcher = EventDispatcher()
    seen: list[Event] = []
    dispatcher.add_listener("e", seen.append)

    for returned in (
        dispatcher.dispatch("e"),
        dispatcher.dispatch("e"),
        await dispatcher.adispatch("e"),
        dispatcher.dispatch("nobody"),
        await dispatcher.adispatch("nobody"),
    ):
        assert type(returned) is Event
        assert returned.is_propagation_stopped is False

    assert len(seen) == 3
    assert len({id(event) for event in seen}) == 3


# Errors


def test_listener_error_is_wrapped_naming_listener_and_event() -> None:
    dispatcher = EventDispatcher()
    after = recorder("after")
    dispatcher.add_listener("request.received", failing_listener)
    dispatcher.add_listener("request.received", after, priority=-1)
    event = NamedEvent()

    with pytest.raises(EventListenerError) as caught:
        dispatcher.dispatch("request.received", event)

    error = caught.value
    message = str(error)
    assert f"{failing_listener.__module__}.failing_listener" in message
    assert "'request.received'" in message
    assert "ValueError: boom" in message
    assert isinstance(error.__cause__, ValueError)
    assert error.original is error.__cause__
    assert error.listener is failing_listener
    assert error.event_name == "request.received"
    assert isinstance(error, FerrymanError)
    assert event.calls == []  # listeners after the failing one did not run


async def test_async_listener_error_is_wrapped_naming_listener_and_event() -> None:
    handlers = Handlers()

    async def broken_method_like(event: Event) -> None:
        await handlers.on_event_async(event)
        raise KeyError("missing")

    dispatcher = EventDispatcher()
    dispatcher.add_listener("response.sent", failing_async_listener)

    with pytest.raises(EventListenerError) as caught:
        await dispatcher.adispatch("response.sent")

    assert "failing_async_listener" in str(caught.value)
    assert "'response.sent'" in str(caught.value)
    assert "async boom" in str(caught.value)
    assert isinstance(caught.value.__cause__, ValueError)

    dispatcher.add_listener("other", broken_method_like)
    with pytest.raises(EventListenerError) as caught:
        await dispatcher.adispatch("other")
    assert "test_async_listener_error_is_wrapped_naming_listener_and_event.<locals>" in str(
        caught.value
    )
    assert ".broken_method_like" in str(caught.value)
    assert isinstance(caught.value.__cause__, KeyError)


async def test_error_from_awaitable_returned_by_sync_listener_is_wrapped() -> None:
    dispatcher = EventDispatcher()

    def wrapper(event: Event) -> Any:
        return failing_async_listener(event)

    dispatcher.add_listener("e", wrapper)

    with pytest.raises(EventListenerError) as caught:
        await dispatcher.adispatch("e")

    assert caught.value.listener is wrapper
    assert isinstance(caught.value.__cause__, ValueError)


def test_bound_method_listener_is_named_with_its_class() -> None:
    class Broken:
        def on_request(self, event: Event) -> None:
            raise RuntimeError("nope")

    dispatcher = EventDispatcher()
    dispatcher.add_listener("e", Broken().on_request)

    with pytest.raises(EventListenerError, match=r"Broken\.on_request") as caught:
        dispatcher.dispatch("e")
    assert isinstance(caught.value.__cause__, RuntimeError)


async def test_nested_dispatch_error_is_not_wrapped_twice() -> None:
    dispatcher = EventDispatcher()
    dispatcher.add_listener("inner", failing_async_listener)

    async def outer_listener(event: Event) -> None:
        await dispatcher.adispatch("inner", event)

    def sync_outer_listener(event: Event) -> None:
        dispatcher.dispatch("sync-inner", event)

    dispatcher.add_listener("outer", outer_listener)
    dispatcher.add_listener("sync-inner", failing_listener)
    dispatcher.add_listener("sync-outer", sync_outer_listener)

    with pytest.raises(EventListenerError) as caught:
        await dispatcher.adispatch("outer")
    assert caught.value.listener is failing_async_listener
    assert caught.value.event_name == "inner"
    assert isinstance(caught.value.__cause__, ValueError)

    with pytest.raises(EventListenerError) as caught:
        dispatcher.dispatch("sync-outer")
    assert caught.value.listener is failing_listener
    assert isinstance(caught.value.__cause__, ValueError)


@pytest.mark.parametrize("exc_type", [asyncio.CancelledError, KeyboardInterrupt, SystemExit])
async def test_control_flow_exceptions_are_not_wrapped(exc_type: type[BaseException]) -> None:
    def sync_raiser(event: Event) -> None:
        raise exc_type()

    async def async_raiser(event: Event) -> None:
        raise exc_type()

    sync_dispatcher = EventDispatcher()
    sync_dispatcher.add_listener("e", sync_raiser)
    async_dispatcher = EventDispatcher()
    async_dispatcher.add_listener("e", async_raiser)

    with pytest.raises(exc_type):
        sync_dispatcher.dispatch("e")
    with pytest.raises(exc_type):
        await sync_dispatcher.adispatch("e")
    with pytest.raises(exc_type):
        await async_dispatcher.adispatch("e")


async def test_cancelling_a_dispatching_task_cancels_it() -> None:
    dispatcher = EventDispatcher()
    started = asyncio.Event()

    async def slow(event: Event) -> None:
        started.set()
        await asyncio.sleep(60)

    dispatcher.add_listener("e", slow)
    task = asyncio.create_task(dispatcher.adispatch("e"))
    await started.wait()
    task.cancel()

    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled()


# dispatch() and asynchronous listeners


@pytest.mark.parametrize(
    "make_listener",
    [
        pytest.param(lambda: async_recorder("async"), id="coroutine-function"),
        pytest.param(
            lambda: functools.partial(async_recorder("async")), id="partial-of-coroutine-function"
        ),
        pytest.param(lambda: Handlers().on_event_async, id="bound-coroutine-method"),
    ],
)
def test_dispatch_refuses_async_listeners_before_calling_anything(
    make_listener: Callable[[], Any],
) -> None:
    dispatcher = EventDispatcher()
    dispatcher.add_listener("e", recorder("sync-first"), priority=1)
    dispatcher.add_listener("e", make_listener())
    event = NamedEvent()

    with pytest.raises(TypeError, match=r"adispatch\('e', event\)") as caught:
        dispatcher.dispatch("e", event)

    assert "asynchronous" in str(caught.value)
    assert not isinstance(caught.value, EventListenerError)
    assert event.calls == []


def test_dispatch_refuses_async_callable_objects_naming_them() -> None:
    class Auditor:
        async def __call__(self, event: Event) -> None:
            pass

    dispatcher = EventDispatcher()
    dispatcher.add_listener("audit", recorder("sync-first"), priority=1)
    dispatcher.add_listener("audit", Auditor())
    event = NamedEvent()

    with pytest.raises(TypeError, match="adispatch") as caught:
        dispatcher.dispatch("audit", event)
    assert "Auditor" in str(caught.value)
    assert "'audit'" in str(caught.value)
    assert event.calls == []


def test_dispatch_refuses_sync_listener_returning_an_awaitable_without_warnings() -> None:
    dispatcher = EventDispatcher()
    dispatcher.add_listener("e", lambda event: failing_async_listener(event))
    dispatcher.add_listener("e", recorder("after"), priority=-1)
    event = NamedEvent()

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "coroutine ... was never awaited" would be an error
        with pytest.raises(TypeError, match="adispatch"):
            dispatcher.dispatch("e", event)
        gc.collect()

    assert event.calls == []


async def test_adispatch_accepts_what_dispatch_refuses() -> None:
    dispatcher = EventDispatcher()
    dispatcher.add_listener("e", async_recorder("async"))

    assert (await dispatcher.adispatch("e", NamedEvent())).calls == ["async"]


# Changing listeners while dispatching


def test_listener_added_during_dispatch_runs_from_the_next_dispatch() -> None:
    dispatcher = EventDispatcher()
    late = recorder("late")

    def adder(event: NamedEvent) -> None:
        event.calls.append("adder")
        dispatcher.add_listener("e", late, priority=-1)
        dispatcher.add_listener("e", late, priority=100)

    dispatcher.add_listener("e", adder)

    assert dispatcher.dispatch("e", NamedEvent()).calls == ["adder"]
    assert dispatcher.dispatch("e", NamedEvent()).calls[:2] == ["late", "adder"]


async def test_listener_added_during_adispatch_runs_from_the_next_dispatch() -> None:
    dispatcher = EventDispatcher()
    late = async_recorder("late")

    async def adder(event: NamedEvent) -> None:
        await asyncio.sleep(0)
        event.calls.append("adder")
        dispatcher.add_listener("e", late, priority=-1)

    dispatcher.add_listener("e", adder)

    assert (await dispatcher.adispatch("e", NamedEvent())).calls == ["adder"]
    assert (await dispatcher.adispatch("e", NamedEvent())).calls == ["adder", "late"]


async def test_listener_removed_during_dispatch_does_not_break_it() -> None:
    dispatcher = EventDispatcher()
    second, third = recorder("second"), async_recorder("third")

    def remover(event: NamedEvent) -> None:
        event.calls.append("remover")
        dispatcher.remove_listener("e", second)
        dispatcher.remove_listener("e", remover)

    dispatcher.add_listener("e", remover, priority=1)
    dispatcher.add_listener("e", second)
    dispatcher.add_listener("e", third, priority=-1)

    # The running dispatch keeps its snapshot: nothing is skipped or repeated.
    assert (await dispatcher.adispatch("e", NamedEvent())).calls == ["remover", "second", "third"]
    assert (await dispatcher.adispatch("e", NamedEvent())).calls == ["third"]


async def test_concurrent_adispatches_do_not_see_each_others_changes() -> None:
    dispatcher = EventDispatcher()
    gate = asyncio.Event()

    async def waiter(event: NamedEvent) -> None:
        event.calls.append("waiter")
        await gate.wait()

    dispatcher.add_listener("e", waiter, priority=1)
    running = asyncio.create_task(dispatcher.adispatch("e", NamedEvent()))
    await asyncio.sleep(0)

    dispatcher.add_listener("e", recorder("added"))
    gate.set()

    assert (await running).calls == ["waiter"]
    assert (await dispatcher.adispatch("e", NamedEvent())).calls == ["waiter", "added"]
