"""The GCRA buckets in memory: a burst, then the steady rate; reserved turns; bounded keys."""

from __future__ import annotations

import pytest

from ferryman.apps.ratelimit.buckets import MemoryBuckets


class Clock:
    """Time that moves only when the test says (the buckets read it through ``clock=``)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_goes_then_one_request_per_interval() -> None:
    clock = Clock()
    buckets = MemoryBuckets(clock=clock)
    decisions = [buckets.decide("k", 0.5, 3) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert decisions[3].wait == pytest.approx(0.5)  # the next token, in half a second
    clock.now += 0.5
    assert buckets.decide("k", 0.5, 3).allowed
    assert not buckets.decide("k", 0.5, 3).allowed


def test_keys_have_their_own_buckets() -> None:
    buckets = MemoryBuckets(clock=Clock())
    assert buckets.decide("a", 1.0, 1).allowed
    assert not buckets.decide("a", 1.0, 1).allowed
    assert buckets.decide("b", 1.0, 1).allowed


def test_a_reservation_waits_its_turn_and_turns_add_up() -> None:
    clock = Clock()
    buckets = MemoryBuckets(clock=clock)
    waits = [buckets.decide("up", 0.2, 1, max_wait=0.5) for _ in range(5)]
    # Each one reserves the next free turn: 0, 0.2 and 0.4 s from now; 0.6 is past max_wait.
    assert [d.allowed for d in waits] == [True, True, True, False, False]
    assert [d.wait for d in waits[:3]] == pytest.approx([0.0, 0.2, 0.4])
    assert waits[3].wait == pytest.approx(0.6)
    clock.now += 0.2
    assert buckets.decide("up", 0.2, 1, max_wait=0.5).wait == pytest.approx(0.4)


def test_a_refused_request_takes_no_token() -> None:
    clock = Clock()
    buckets = MemoryBuckets(clock=clock)
    assert buckets.decide("k", 1.0, 1).allowed
    for _ in range(10):
        assert not buckets.decide("k", 1.0, 1).allowed
    clock.now += 1.0
    assert buckets.decide("k", 1.0, 1).allowed  # (refusals did not push the turn back)


def test_the_number_of_keys_is_bounded_and_idle_keys_are_forgotten() -> None:
    clock = Clock()
    buckets = MemoryBuckets(max_keys=100, clock=clock)
    for index in range(1000):
        buckets.decide(f"key-{index}", 1.0, 1)
    assert len(buckets) == 100
    assert buckets.evicted == 900  # (busy keys: each forgotten while its bucket was not full)
    clock.now += 2.0
    buckets.decide("fresh", 1.0, 1)
    assert len(buckets) == 100
    assert buckets.evicted == 900  # (an idle key went, at no cost to anyone)
