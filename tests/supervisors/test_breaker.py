"""Circuit breaker: a pure state machine driven by a fake clock."""

from __future__ import annotations

import pytest

from supervisors import BreakerState, CircuitBreaker
from supervisors.testing import FakeClock


def _breaker(clock: FakeClock, **kwargs: float) -> CircuitBreaker:
    params: dict[str, float] = {"fail_max": 3, "reset_timeout": 10.0} | kwargs
    return CircuitBreaker(**params, clock=clock)  # type: ignore[arg-type]


def test_opens_after_fail_max_consecutive_failures() -> None:
    cb = _breaker(FakeClock())
    assert cb.record_failure() is BreakerState.CLOSED
    assert cb.record_failure() is BreakerState.CLOSED
    assert cb.allow()
    assert cb.record_failure() is BreakerState.OPEN
    assert not cb.allow()


def test_a_success_clears_the_failure_count_while_closed() -> None:
    cb = _breaker(FakeClock())
    cb.record_failure()
    cb.record_failure()
    cb.record_success()
    cb.record_failure()
    cb.record_failure()
    assert cb.state is BreakerState.CLOSED


def test_open_turns_half_open_after_the_reset_timeout() -> None:
    clock = FakeClock()
    cb = _breaker(clock, fail_max=1)
    cb.record_failure()
    clock.advance(9.9)
    assert cb.state is BreakerState.OPEN
    assert cb.retry_in() == pytest.approx(0.1)
    clock.advance(0.1)
    assert cb.state is BreakerState.HALF_OPEN
    assert cb.retry_in() is None


def test_half_open_allows_exactly_one_trial() -> None:
    clock = FakeClock()
    cb = _breaker(clock, fail_max=1)
    cb.record_failure()
    clock.advance(10.0)
    assert cb.allow() is True
    assert cb.allow() is False
    assert cb.allow() is False


def test_failed_trial_reopens_with_a_longer_timeout_up_to_the_cap() -> None:
    clock = FakeClock()
    cb = _breaker(clock, fail_max=1, reset_backoff=2.0, max_reset_timeout=35.0)
    cb.record_failure()
    timeouts = []
    for _ in range(4):
        timeouts.append(cb.timeout)
        clock.advance(cb.timeout)
        assert cb.allow()
        assert cb.record_failure() is BreakerState.OPEN
    assert timeouts == [10.0, 20.0, 35.0, 35.0]
    clock.advance(34.9)
    assert cb.state is BreakerState.OPEN


def test_success_threshold_successes_close_it_and_reset_the_timeout() -> None:
    clock = FakeClock()
    cb = _breaker(clock, fail_max=1, success_threshold=2)
    cb.record_failure()
    clock.advance(10.0)
    assert cb.allow()
    assert cb.record_failure() is BreakerState.OPEN  # timeout is now 20
    clock.advance(20.0)
    assert cb.allow()
    assert cb.record_success() is BreakerState.HALF_OPEN
    assert cb.record_success() is BreakerState.CLOSED
    assert cb.timeout == 10.0
    assert cb.allow()


def test_fresh_copies_settings_but_not_state() -> None:
    clock = FakeClock()
    cb = _breaker(clock, fail_max=1)
    cb.record_failure()
    copy = cb.fresh()
    assert cb.state is BreakerState.OPEN
    assert copy.state is BreakerState.CLOSED
    assert (copy.fail_max, copy.reset_timeout) == (1, 10.0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"fail_max": 0},
        {"success_threshold": 0},
        {"reset_timeout": 0.0},
        {"reset_backoff": 0.5},
        {"reset_timeout": 10.0, "max_reset_timeout": 5.0},
    ],
)
def test_invalid_parameters_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="CircuitBreaker"):
        CircuitBreaker(**kwargs)  # type: ignore[arg-type]
