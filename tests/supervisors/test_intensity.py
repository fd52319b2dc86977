"""Restart intensity: OTP's "more than MaxR restarts within MaxT seconds"."""

from __future__ import annotations

import pytest

from supervisors import RestartIntensity
from supervisors.testing import FakeClock


def test_more_than_max_restarts_inside_the_window_exceeds() -> None:
    clock = FakeClock()
    window = RestartIntensity(3, 5.0, clock=clock)
    assert [window.record() for _ in range(3)] == [True, True, True]
    assert window.record() is False


def test_old_restarts_slide_out_of_the_window() -> None:
    clock = FakeClock()
    window = RestartIntensity(2, 5.0, clock=clock)
    assert window.record()
    clock.advance(3.0)
    assert window.record()
    clock.advance(2.5)  # the first restart is now 5.5 s old
    assert window.record()
    assert window.count() == 2
    assert window.record() is False


def test_zero_max_restarts_escalates_on_the_first_restart() -> None:
    assert RestartIntensity(0, 1.0, clock=FakeClock()).record() is False


@pytest.mark.parametrize(("max_restarts", "within"), [(-1, 5.0), (3, 0.0), (3, float("inf"))])
def test_invalid_parameters_are_refused(max_restarts: int, within: float) -> None:
    with pytest.raises(ValueError):
        RestartIntensity(max_restarts, within)
