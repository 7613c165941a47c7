"""The circuit breaker's transitions, on a fake clock."""

import pytest

from callscope.jobs.breaker import (
    BreakerChange,
    BreakerPolicy,
    BreakerState,
    CircuitBreaker,
    Pass,
)

pytestmark = pytest.mark.unit

POLICY = BreakerPolicy(window_s=10.0, window_calls=40, failure_rate=0.6, min_calls=10, open_s=2.0)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _breaker() -> tuple[CircuitBreaker, Clock, list[BreakerChange]]:
    clock, changes = Clock(), list[BreakerChange]()
    return CircuitBreaker(POLICY, clock=clock, on_change=changes.append), clock, changes


def _state(breaker: CircuitBreaker) -> BreakerState:
    """Read afresh each time (mypy would take an asserted state for a constant)."""
    return breaker.state


def _calls(breaker: CircuitBreaker, *, failed: int, ok: int) -> None:
    for outcome in [True] * failed + [False] * ok:
        admitted = breaker.admit()
        assert admitted == Pass.call
        breaker.record(admitted, failed=outcome)


def test_a_healthy_provider_failing_a_quarter_of_the_time_keeps_it_closed() -> None:
    breaker, _, changes = _breaker()
    for _ in range(50):
        _calls(breaker, failed=1, ok=3)
    assert _state(breaker) == BreakerState.closed
    assert changes == []


def test_too_few_calls_never_open_it_however_they_failed() -> None:
    breaker, _, _ = _breaker()
    _calls(breaker, failed=POLICY.min_calls - 1, ok=0)
    assert _state(breaker) == BreakerState.closed


def test_a_failure_rate_over_the_threshold_opens_it_and_holds_calls_back() -> None:
    breaker, clock, changes = _breaker()
    _calls(breaker, failed=6, ok=3)
    assert _state(breaker) == BreakerState.closed  # 9 calls: below min_calls
    _calls(breaker, failed=1, ok=0)  # 7 of 10 failed
    assert _state(breaker) == BreakerState.open
    assert changes[-1].state == BreakerState.open
    assert changes[-1].failure_rate == pytest.approx(0.7)
    assert changes[-1].calls_in_window == 10
    clock.now += 0.5
    assert breaker.admit() == pytest.approx(1.5)  # seconds until the probe


def test_only_the_most_recent_calls_count_however_many_came_before() -> None:
    breaker, _, _ = _breaker()
    for _ in range(100):  # a healthy stretch: 10 % failed, all within the window's seconds
        _calls(breaker, failed=1, ok=9)
    assert _state(breaker) == BreakerState.closed
    failures = 0
    while _state(breaker) == BreakerState.closed:
        _calls(breaker, failed=1, ok=0)
        failures += 1
    # 23 failures and the one among the 17 outcomes before them: 24 of the last 40, 60 %.
    # Measured over all 1,000 outcomes of the window's seconds it would have taken 1,250.
    assert failures == 23


def test_failures_older_than_the_window_are_forgotten() -> None:
    breaker, clock, _ = _breaker()
    _calls(breaker, failed=9, ok=0)
    clock.now += POLICY.window_s + 1
    _calls(breaker, failed=1, ok=9)
    assert _state(breaker) == BreakerState.closed


def test_after_open_one_probe_goes_and_its_success_closes_it() -> None:
    breaker, clock, changes = _breaker()
    _calls(breaker, failed=10, ok=0)
    clock.now += POLICY.open_s
    assert _state(breaker) == BreakerState.half_open
    probe = breaker.admit()
    assert probe == Pass.probe
    waiting = breaker.admit()  # the probe is out: everyone else waits
    assert isinstance(waiting, float)
    assert waiting > 0
    breaker.record(probe, failed=False)
    assert _state(breaker) == BreakerState.closed
    assert [c.state for c in changes] == [
        BreakerState.open,
        BreakerState.half_open,
        BreakerState.closed,
    ]
    # closed again with a clean window: a few failures do not reopen it at once
    _calls(breaker, failed=5, ok=0)
    assert _state(breaker) == BreakerState.closed


def test_a_failed_probe_reopens_it_for_twice_as_long_at_most() -> None:
    breaker, clock, _ = _breaker()
    _calls(breaker, failed=10, ok=0)
    open_for = []
    for _ in range(6):
        clock.now += 1000
        probe = breaker.admit()
        assert probe == Pass.probe
        breaker.record(probe, failed=True)
        assert _state(breaker) == BreakerState.open
        wait = breaker.admit()
        assert isinstance(wait, float)
        open_for.append(wait)
    assert open_for == [4.0, 4.0, 4.0, 4.0, 4.0, 4.0]
    clock.now += 4
    probe = breaker.admit()
    assert probe == Pass.probe
    breaker.record(probe, failed=False)
    _calls(breaker, failed=10, ok=0)
    assert breaker.admit() == POLICY.open_s  # a success resets how long it stays open


def test_a_probe_not_used_is_handed_back() -> None:
    breaker, clock, _ = _breaker()
    _calls(breaker, failed=10, ok=0)
    clock.now += POLICY.open_s
    probe = breaker.admit()
    assert probe == Pass.probe
    breaker.withdraw(probe)
    assert breaker.admit() == Pass.probe


def test_outcomes_of_calls_let_through_before_it_opened_do_not_count() -> None:
    breaker, clock, changes = _breaker()
    early = breaker.admit()
    assert early == Pass.call
    _calls(breaker, failed=10, ok=0)
    breaker.record(early, failed=False)
    assert _state(breaker) == BreakerState.open
    clock.now += POLICY.open_s
    assert _state(breaker) == BreakerState.half_open
    assert len(changes) == 2
