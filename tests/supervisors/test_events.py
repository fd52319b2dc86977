"""Events reach listeners and structlog with stable names and keys; listeners are safe."""

from __future__ import annotations

from typing import Any

import structlog

from supervisors import EVENTS, Backoff, Supervisor
from supervisors.testing import Crash, EventRecorder, crasher_spec


def test_listener_sees_the_lifecycle_with_the_new_ref(recorder: EventRecorder) -> None:
    sup = Supervisor.start([crasher_spec("w")], backoff=Backoff.immediate(), name="s1")
    sup.proxy().add_listener(recorder).get()
    old = sup.proxy().which_children().get()[0].ref
    old.tell(Crash("x"))
    [started] = recorder.wait_for("child_started", restarts=1)
    assert started["supervisor"] == "s1"
    assert started["child_id"] == "w"
    assert started["ref"] is sup.proxy().which_children().get()[0].ref
    assert started["ref"].actor_urn != old.actor_urn
    names = [e for e, _ in recorder.events]
    assert names == ["child_exited", "child_restart_scheduled", "child_started"]
    assert set(names) <= EVENTS
    assert sup.proxy().remove_listener(recorder).get() is True


def test_a_failing_listener_is_logged_and_the_supervisor_carries_on(recorder: EventRecorder) -> None:
    def broken(event: str, data: dict[str, Any]) -> None:
        raise KeyError("listener bug")

    with structlog.testing.capture_logs() as logs:
        sup = Supervisor.start(
            [crasher_spec("w")], backoff=Backoff.immediate(), listeners=[broken, recorder]
        )
        sup.proxy().which_children().get()[0].ref.tell(Crash())
        recorder.wait_for("child_started", restarts=1)
        assert sup.proxy().count_children().get().active == 1
    failures = [e for e in logs if e["event"] == "listener_failed"]
    assert failures
    assert {e["event"] for e in failures} == {"listener_failed"}
    assert failures[0]["log_level"] == "error"


def test_structlog_gets_the_same_events_with_stable_keys(recorder: EventRecorder) -> None:
    with structlog.testing.capture_logs() as logs:
        sup = Supervisor.start(
            [crasher_spec("w")],
            backoff=Backoff(min=0.01, max=0.01, jitter=0.0),
            name="s2",
            listeners=[recorder],
        )
        sup.proxy().which_children().get()[0].ref.tell(Crash("kaput"))
        recorder.wait_for("child_started", restarts=1)
    by_name = {e["event"]: e for e in logs if e.get("supervisor") == "s2"}
    exited = by_name["child_exited"]
    assert exited["log_level"] == "warning"
    assert (exited["child_id"], exited["reason"], exited["normal"]) == ("w", "RuntimeError: kaput", False)
    assert by_name["child_restart_scheduled"]["delay"] == 0.01
    assert by_name["supervisor_started"]["strategy"] == "one_for_one"
