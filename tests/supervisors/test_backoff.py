"""Backoff: a pure schedule, tested without threads."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from supervisors import Backoff


def test_delays_grow_by_factor_until_the_cap() -> None:
    b = Backoff(min=0.1, max=1.0, factor=2.0, jitter=0.0)
    assert [b.delay(n) for n in range(1, 7)] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])


def test_huge_attempt_counts_stay_at_the_cap_without_overflow() -> None:
    b = Backoff(min=0.1, max=30.0, factor=2.0, jitter=0.0)
    assert b.delay(10_000) == 30.0


def test_injected_rng_makes_the_schedule_deterministic() -> None:
    b = Backoff()
    first = [b.delay(n, random.Random(7)) for n in range(1, 20)]
    again = [b.delay(n, random.Random(7)) for n in range(1, 20)]
    other = [b.delay(n, random.Random(8)) for n in range(1, 20)]
    assert first == again
    assert first != other


def test_jitter_only_shortens_the_delay() -> None:
    b = Backoff(min=1.0, max=8.0, factor=2.0, jitter=0.5)
    rng = random.Random(1)
    for attempt in range(1, 10):
        base = b.base_delay(attempt)
        for _ in range(50):
            d = b.delay(attempt, rng)
            assert base * 0.5 <= d <= base


def test_immediate_backoff_is_always_zero() -> None:
    b = Backoff.immediate()
    assert {b.delay(n, random.Random(n)) for n in range(1, 50)} == {0.0}


def test_reset_after_a_long_enough_run() -> None:
    b = Backoff(reset_after=60.0)
    assert not b.resets(59.9)
    assert b.resets(60.0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"min": -1.0},
        {"min": 2.0, "max": 1.0},
        {"factor": 0.5},
        {"jitter": 1.5},
        {"reset_after": float("nan")},
    ],
)
def test_invalid_parameters_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="Backoff"):
        Backoff(**kwargs)


def test_attempts_count_from_one() -> None:
    with pytest.raises(ValueError, match="from 1"):
        Backoff().delay(0)


@settings(max_examples=60, deadline=None)
@given(
    min_delay=st.floats(0.001, 1.0),
    factor=st.floats(1.1, 4.0),
    cap_over_min=st.floats(1.0, 1000.0),
    jitter=st.floats(0.05, 1.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_jitter_at_the_cap_is_still_spread(
    min_delay: float, factor: float, cap_over_min: float, jitter: float, seed: int
) -> None:
    """Children that all reached max must not restart in one thundering herd."""
    b = Backoff(min=min_delay, max=min_delay * cap_over_min, factor=factor, jitter=jitter)
    rng = random.Random(seed)
    delays = [b.delay(10_000, rng) for _ in range(200)]
    assert all(b.max * (1 - jitter) - 1e-9 <= d <= b.max for d in delays)
    # 200 uniform draws cover more than half of the jitter band (failure odds ~ 2**-190).
    assert max(delays) - min(delays) > 0.5 * jitter * b.max
    assert len(set(delays)) > 150
