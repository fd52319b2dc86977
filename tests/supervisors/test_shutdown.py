"""Shutdown: reverse start order, bounded by each child's shutdown time, never a hang."""

from __future__ import annotations

import time

from supervisors import AutoShutdown, Backoff, ChildState, Restart, Supervisor
from supervisors.testing import EventRecorder, crasher_spec, wait_until


def test_children_stop_in_reverse_start_order(recorder: EventRecorder) -> None:
    journal: list[tuple[str, str]] = []
    sup = Supervisor.start([crasher_spec(i, journal) for i in "abcd"], listeners=[recorder])
    sup.proxy().start_child(crasher_spec("e", journal)).get()
    assert sup.stop(timeout=10) is True
    assert [n for op, n in journal if op == "stop"] == ["e", "d", "c", "b", "a"]
    assert [d["child_id"] for d in recorder.named("child_terminated")] == list("edcba")
    recorder.wait_for("supervisor_stopped")


def test_a_child_that_ignores_stop_is_abandoned_within_its_timeout(recorder: EventRecorder) -> None:
    journal: list[tuple[str, str]] = []
    sup = Supervisor.start(
        [crasher_spec("a", journal), crasher_spec("stuck", journal, shutdown=0.2)],
        listeners=[recorder],
    )
    stuck = sup.proxy().which_children().get()[1].ref
    stuck.proxy().block(1.5)  # busy: its stop message waits behind this
    started = time.monotonic()
    assert sup.stop(timeout=10) is True
    assert time.monotonic() - started < 1.4  # did not wait for the stuck child
    [abandoned] = recorder.named("child_abandoned")
    assert (abandoned["child_id"], abandoned["timeout"]) == ("stuck", 0.2)
    assert ("stop", "a") in journal  # the others still stopped, after it


def test_terminate_child_abandons_a_stuck_child_and_keeps_answering(recorder: EventRecorder) -> None:
    sup = Supervisor.start([crasher_spec("stuck", shutdown=0.1)], listeners=[recorder])
    sup.proxy().which_children().get()[0].ref.proxy().block(1.0)
    sup.proxy().terminate_child("stuck").get(timeout=5)
    [info] = sup.proxy().which_children().get()
    assert info.state is ChildState.TERMINATED
    assert info.last_exit.exc_type == "Abandoned"
    recorder.wait_for("child_abandoned")


def test_auto_shutdown_when_a_significant_child_exits(recorder: EventRecorder) -> None:
    journal: list[tuple[str, str]] = []
    sup = Supervisor.start(
        [
            crasher_spec("other", journal),
            crasher_spec("main", journal, restart=Restart.TRANSIENT, significant=True),
        ],
        auto_shutdown=AutoShutdown.ANY_SIGNIFICANT,
        backoff=Backoff.immediate(),
        listeners=[recorder],
    )
    sup.proxy().which_children().get()[1].ref.stop()
    recorder.wait_for("supervisor_auto_shutdown", child_id="main")
    wait_until(lambda: not sup.is_alive())
    wait_until(lambda: ("stop", "other") in journal)
