"""The circuit breaker wired into a supervisor, on real actors with short timeouts."""

from __future__ import annotations

import time
from typing import Any

import pykka

from supervisors import Backoff, BreakerState, ChildState, CircuitBreaker, Supervisor
from supervisors.testing import Crash, EventRecorder, crasher_spec, wait_until


def _running_ref(sup: pykka.ActorRef[Supervisor]) -> pykka.ActorRef[Any]:
    def current() -> Any:
        [info] = sup.proxy().which_children().get()
        return info.ref if info.state is ChildState.RUNNING else None

    return wait_until(current)  # type: ignore[no-any-return]


def test_breaker_opens_blocks_restarts_tries_half_open_reopens_longer_then_closes(
    recorder: EventRecorder,
) -> None:
    stamps: dict[str, list[float]] = {}

    def stamp(event: str, data: dict[str, Any]) -> None:
        key = f"{event}:{data.get('state', '')}"
        stamps.setdefault(key, []).append(time.monotonic())

    sup = Supervisor.start(
        [crasher_spec("w")],
        backoff=Backoff.immediate(),
        breaker=CircuitBreaker(fail_max=2, reset_timeout=0.3, reset_backoff=4.0),
        healthy_after=0.2,
        max_restarts=100,
        listeners=[recorder, stamp],
    )
    # Failure 1: restarted at once.
    _running_ref(sup).tell(Crash("1"))
    recorder.wait_for("child_started", restarts=1)
    # Failure 2: fail_max reached, the breaker opens and nothing restarts.
    _running_ref(sup).tell(Crash("2"))
    recorder.wait_for("breaker_state_changed", state="open")
    [info] = sup.proxy().which_children().get()
    assert (info.state, info.breaker, info.ref) == (ChildState.CIRCUIT_OPEN, BreakerState.OPEN, None)
    assert info.restarts == 1

    # After the reset timeout: half-open, and exactly one trial restart.
    recorder.wait_for("breaker_state_changed", state="half_open")
    recorder.wait_for("child_started", restarts=2)
    opened, half = stamps["breaker_state_changed:open"][0], stamps["breaker_state_changed:half_open"][0]
    assert half - opened >= 0.3 * 0.9

    # The trial fails at once: open again, now for 0.3 * 4 = 1.2 s.
    _running_ref(sup).tell(Crash("trial"))
    recorder.wait_for("breaker_state_changed", 2, state="open")
    [info] = sup.proxy().which_children().get()
    assert info.state is ChildState.CIRCUIT_OPEN
    assert info.restart_in > 0.5  # longer than the first 0.3 s timeout

    # Second trial; it stays healthy for healthy_after, which closes the breaker.
    recorder.wait_for("child_started", restarts=3, timeout=10)
    reopened = stamps["breaker_state_changed:open"][1]
    assert stamps["breaker_state_changed:half_open"][1] - reopened >= 1.2 * 0.9
    recorder.wait_for("breaker_state_changed", state="closed")
    [info] = sup.proxy().which_children().get()
    assert (info.state, info.breaker) == (ChildState.RUNNING, BreakerState.CLOSED)
    assert _running_ref(sup).proxy().ping().get(timeout=5) == "pong"


def test_restart_child_overrides_an_open_breaker(recorder: EventRecorder) -> None:
    sup = Supervisor.start(
        [crasher_spec("w")],
        backoff=Backoff.immediate(),
        breaker=CircuitBreaker(fail_max=1, reset_timeout=60.0),
        listeners=[recorder],
    )
    _running_ref(sup).tell(Crash())
    recorder.wait_for("breaker_state_changed", state="open")
    ref = sup.proxy().restart_child("w").get(timeout=5)
    assert ref.proxy().ping().get(timeout=5) == "pong"
    [info] = sup.proxy().which_children().get()
    assert (info.state, info.breaker) == (ChildState.RUNNING, BreakerState.CLOSED)
    recorder.wait_for("breaker_state_changed", state="closed")
