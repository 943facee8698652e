"""Micro-benchmark of the event dispatcher's per-request cost; run it, it is not a test.

    PYTHONPATH=. python benchmarks/events_bench.py

The proxy and the client dispatch several events per request, most with nobody listening, so
the numbers that matter are the 0-listener ones (and the has_listeners() guard).
"""

from __future__ import annotations

import asyncio
import timeit
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from ferryman.events import Event, EventDispatcher

NUMBER = 1_000_000
REPEAT = 5


def best_of(stmt: Callable[[], object], number: int = NUMBER) -> float:
    """Best per-call time in µs: the minimum is the least disturbed by the rest of the machine."""
    return min(timeit.repeat(stmt, number=number, repeat=REPEAT)) / number * 1e6


def run_coroutine_cost(
    loop: asyncio.AbstractEventLoop, make: Callable[[], Awaitable[object]], number: int
) -> float:
    """Per-await cost of a coroutine, measured inside one task so loop overhead is excluded."""

    async def body() -> None:
        for _ in range(number):
            await make()

    async def baseline() -> None:
        for _ in range(number):
            pass

    def timed(factory: Callable[[], Coroutine[Any, Any, None]]) -> float:
        best = float("inf")
        for _ in range(REPEAT):
            start = timeit.default_timer()
            loop.run_until_complete(factory())
            best = min(best, timeit.default_timer() - start)
        return best

    return (timed(body) - timed(baseline)) / number * 1e6


def main() -> None:
    dispatcher = EventDispatcher()
    event = Event()

    def sync_listener(event: Event) -> None:
        pass

    async def async_listener(event: Event) -> None:
        pass

    dispatcher.add_listener("one.sync", sync_listener)
    dispatcher.add_listener("one.async", async_listener)

    rows = [
        ("has_listeners('none')", best_of(lambda: dispatcher.has_listeners("none"))),
        ("dispatch('none', event)", best_of(lambda: dispatcher.dispatch("none", event))),
        ("dispatch('one.sync', event)", best_of(lambda: dispatcher.dispatch("one.sync", event))),
        ("(timeit of an empty lambda, included above)", best_of(lambda: None)),
    ]

    loop = asyncio.new_event_loop()
    try:
        n = NUMBER // 4
        rows += [
            (
                "await adispatch('none', event)",
                run_coroutine_cost(loop, lambda: dispatcher.adispatch("none", event), n),
            ),
            (
                "await adispatch('one.sync', event)",
                run_coroutine_cost(loop, lambda: dispatcher.adispatch("one.sync", event), n),
            ),
            (
                "await adispatch('one.async', event)",
                run_coroutine_cost(loop, lambda: dispatcher.adispatch("one.async", event), n),
            ),
        ]
    finally:
        loop.close()

    width = max(len(name) for name, _ in rows)
    for name, micros in rows:
        print(f"{name:<{width}}  {micros:8.3f} µs")


if __name__ == "__main__":
    main()
