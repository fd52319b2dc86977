"""The shared timer service: one thread, ordered calls, cancellation."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from supervisors import TimerService, shared_timer
from supervisors.testing import wait_until


@pytest.fixture
def timer() -> Iterator[TimerService]:
    service = TimerService(name="test-timer")
    yield service
    service.close()


def test_calls_run_in_due_order_on_one_thread(timer: TimerService) -> None:
    seen: list[tuple[int, str]] = []
    for i, delay in enumerate([0.06, 0.02, 0.04, 0.0]):
        timer.call_later(delay, lambda i=i: seen.append((i, threading.current_thread().name)))
    wait_until(lambda: len(seen) == 4)
    assert [i for i, _ in seen] == [3, 1, 2, 0]
    assert {name for _, name in seen} == {"test-timer"}
    assert sum(1 for t in threading.enumerate() if t.name == "test-timer") == 1


def test_a_cancelled_call_never_runs(timer: TimerService) -> None:
    seen: list[str] = []
    handle = timer.call_later(0.02, lambda: seen.append("cancelled"))
    timer.call_later(0.05, lambda: seen.append("kept"))
    handle.cancel()
    wait_until(lambda: seen)
    assert seen == ["kept"]


def test_a_failing_callback_does_not_stop_the_others(timer: TimerService) -> None:
    seen: list[str] = []

    def broken() -> None:
        raise RuntimeError("callback bug")

    timer.call_later(0.0, broken)
    timer.call_later(0.01, lambda: seen.append("after"))
    wait_until(lambda: seen)
    assert seen == ["after"]


def test_a_closed_service_refuses_new_calls(timer: TimerService) -> None:
    timer.close()
    with pytest.raises(RuntimeError, match="closed"):
        timer.call_later(0.0, lambda: None)


def test_shared_timer_is_one_instance() -> None:
    assert shared_timer() is shared_timer()
