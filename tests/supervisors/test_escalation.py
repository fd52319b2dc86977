"""Restart intensity: too many restarts too fast escalate to the parent supervisor."""

from __future__ import annotations

import itertools
from typing import Any

import pykka

from supervisors import (
    Backoff,
    ChildSpec,
    ChildState,
    RestartIntensityExceeded,
    Supervisor,
)
from supervisors.testing import Crasher, EventRecorder, wait_until


def test_intensity_exceeded_escalates_to_the_parent(recorder: EventRecorder) -> None:
    inner_events = EventRecorder()
    starts = itertools.count()

    def flaky() -> pykka.ActorRef[Crasher]:
        # The first three instances die in on_start; later ones live.
        n = next(starts)
        return Crasher.start(f"w{n}", fail_on_start=RuntimeError("bad") if n < 3 else None)

    def inner() -> pykka.ActorRef[Any]:
        return Supervisor.start(
            [ChildSpec("worker", flaky)],
            max_restarts=1,
            within=30.0,
            backoff=Backoff.immediate(),
            breaker=None,
            name="inner",
            listeners=[inner_events],
        )

    parent = Supervisor.start(
        [ChildSpec("inner", inner)],
        backoff=Backoff.immediate(),
        name="parent",
        listeners=[recorder],
    )
    [escalated] = inner_events.wait_for("supervisor_escalated")
    assert escalated["supervisor"] == "inner"
    assert (escalated["max_restarts"], escalated["within"]) == (1, 30.0)

    [exited] = recorder.wait_for("child_exited", child_id="inner")
    assert exited["normal"] is False
    assert exited["exc_type"] == "supervisors.errors.RestartIntensityExceeded"
    recorder.wait_for("child_started", child_id="inner", restarts=1)

    def settled() -> Any:
        [info] = parent.proxy().which_children().get()
        return info if info.state is ChildState.RUNNING else None

    info = wait_until(settled)
    assert info.supervisor is True
    assert isinstance(info.last_exit.exception, RestartIntensityExceeded)

    def worker_answers() -> bool:
        # The new inner supervisor may still restart its worker once (start #2 fails).
        [worker] = info.ref.proxy().which_children().get()
        try:
            return worker.ref is not None and worker.ref.proxy().ping().get(timeout=5) == "pong"
        except pykka.ActorDeadError:
            return False

    wait_until(worker_answers)
    assert parent.proxy().count_children().get().supervisors == 1


def test_a_root_supervisor_that_escalates_stops_its_children(recorder: EventRecorder) -> None:
    journal: list[tuple[str, str]] = []

    def start_a() -> pykka.ActorRef[Crasher]:
        return Crasher.start("a", journal)

    root = Supervisor.start(
        [
            ChildSpec("a", start_a),
            ChildSpec("b", lambda: Crasher.start("b", fail_on_start=RuntimeError("loop"))),
        ],
        max_restarts=2,
        backoff=Backoff.immediate(),
        breaker=None,
        listeners=[recorder],
    )
    recorder.wait_for("supervisor_escalated")
    wait_until(lambda: not root.is_alive())
    wait_until(lambda: ("stop", "a") in journal)
    [stopped] = recorder.wait_for("supervisor_stopped")
    assert "RestartIntensityExceeded" in stopped["reason"]
