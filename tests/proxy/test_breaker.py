"""The circuit breaker's state machine, row by row of its table, on a clock the test moves."""

from __future__ import annotations

import pytest

from ferryman.proxy.breaker import CLOSED, HALF_OPEN, OPEN, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def breaker(clock: Clock, **options: float) -> tuple[CircuitBreaker, list[tuple[str, str, str]]]:
    seen: list[tuple[str, str, str]] = []
    made = CircuitBreaker(
        clock=clock,
        on_transition=lambda b, old, new, why, remote: seen.append(
            (("closed", "open", "half_open")[old], b.state_name, why)
        ),
        **options,  # type: ignore[arg-type]
    )
    return made, seen


def test_consecutive_failures_open_it_and_a_success_starts_the_count_again(clock: Clock) -> None:
    b, seen = breaker(clock, consecutive_failures=3, min_requests=100)
    b.failed("refused")
    b.failed("refused")
    b.succeeded()
    b.failed("refused")
    b.failed("refused")
    assert b.state == CLOSED and seen == []
    b.failed("timeout")
    assert b.state == OPEN
    assert seen == [("closed", "open", "3 failures in a row (the last: timeout)")]


def test_an_error_rate_opens_it_once_enough_requests_were_counted(clock: Clock) -> None:
    b, seen = breaker(clock, consecutive_failures=100, error_rate=0.5, min_requests=4, window=10)
    b.succeeded()
    b.failed("503")
    b.succeeded()
    assert b.state == CLOSED
    b.failed("503")  # 2 of 4
    assert b.state == OPEN and "2 of 4 requests failed within 10 s" in seen[0][2]


def test_the_error_rate_forgets_a_window_that_ended(clock: Clock) -> None:
    b, _ = breaker(clock, consecutive_failures=100, error_rate=0.5, min_requests=4, window=10)
    b.failed("503")
    b.failed("503")
    b.succeeded()
    clock.now += 11
    b.succeeded()
    b.failed("503")  # a new window: 1 request counted, below min_requests
    assert b.state == CLOSED


def test_open_admits_nothing_until_the_delay_then_one_probe(clock: Clock) -> None:
    b, seen = breaker(clock, consecutive_failures=1, half_open_after=30)
    b.failed("refused")
    assert not b.admits() and not b.would_admit()
    clock.now += 29.9
    assert not b.admits()
    clock.now += 0.1
    assert b.would_admit()
    assert b.admits() and b.state == HALF_OPEN
    assert not b.admits()  # one probe at a time
    assert seen[-1][:2] == ("open", "half_open")


def test_a_good_probe_closes_it_and_a_bad_one_opens_it_again(clock: Clock) -> None:
    b, seen = breaker(clock, consecutive_failures=1, half_open_after=5, half_open_requests=2)
    b.failed("x")
    clock.now += 5
    assert b.admits() and b.admits() and not b.admits()
    probe = b.probe_ticket()
    assert probe != 0
    b.succeeded(probe)
    assert b.state == HALF_OPEN
    b.succeeded(probe)
    assert b.state == CLOSED
    assert b.probe_ticket() == 0  # (admitted closed: not a probe)
    b.failed("x")
    clock.now += 5
    assert b.admits()
    b.failed("timeout", b.probe_ticket())
    assert b.state == OPEN and seen[-1] == ("half_open", "open", "a probe failed (timeout)")
    assert not b.admits()  # the delay starts again


def test_only_its_probes_decide_a_half_open_breaker(clock: Clock) -> None:
    # Requests admitted while it was closed (ticket 0) end while it is half-open: their
    # answers, good or bad, are about the upstream before it failed.
    b, seen = breaker(clock, consecutive_failures=1, half_open_after=5)
    old = b.probe_ticket()
    assert b.admits() and old == 0
    b.failed("refused")
    clock.now += 5
    assert b.admits()
    probe = b.probe_ticket()
    b.succeeded(old)
    b.failed("timeout", old)
    assert b.state == HALF_OPEN and not b.admits()  # (the probe still counts as in flight)
    b.succeeded(probe)
    assert b.state == CLOSED
    assert [change[:2] for change in seen] == [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
    ]


def test_a_probe_of_an_earlier_half_open_period_decides_nothing(clock: Clock) -> None:
    b, _ = breaker(clock, consecutive_failures=1, half_open_after=5, half_open_requests=2)
    b.failed("x")
    clock.now += 5
    assert b.admits() and b.admits()
    first = b.probe_ticket()
    b.failed("timeout", first)  # one of the two probes failed: open again
    clock.now += 5
    assert b.admits()
    second = b.probe_ticket()
    assert second != first
    b.succeeded(first)  # the other probe of the first period, late
    b.succeeded(first)
    assert b.state == HALF_OPEN
    b.succeeded(second)
    assert b.state == HALF_OPEN  # (two probes must succeed)
    assert b.admits()
    b.succeeded(second)
    assert b.state == CLOSED


def test_a_lost_probe_stops_counting_after_the_delay(clock: Clock) -> None:
    b, _ = breaker(clock, consecutive_failures=1, half_open_after=5)
    b.failed("x")
    clock.now += 5
    assert b.admits()  # its outcome never comes (the client left)
    clock.now += 4
    assert not b.admits()
    clock.now += 1
    assert b.admits()


def test_a_forced_state_is_taken_and_said_to_be_remote(clock: Clock) -> None:
    remote: list[bool] = []
    b = CircuitBreaker(clock=clock, on_transition=lambda *args: remote.append(args[-1]))
    b.force(OPEN, "shared", remaining=2)
    assert b.state == OPEN and b.remaining_open() == 2
    clock.now += 2
    assert b.admits()
    b.force(CLOSED, "shared")
    assert b.state == CLOSED and remote == [True, False, True]


def test_absurd_thresholds_are_refused() -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(consecutive_failures=0)
    with pytest.raises(ValueError):
        CircuitBreaker(error_rate=0)
