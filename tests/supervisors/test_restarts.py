"""Restart policy on real actors: backoff delays, restart types, a responsive mailbox."""

from __future__ import annotations

import time
from typing import Any

import pykka
import pytest

from supervisors import Backoff, ChildState, Restart, Supervisor
from supervisors.testing import Crash, EventRecorder, crasher_spec, wait_until


def _ref(sup: pykka.ActorRef[Supervisor], child_id: str = "w") -> pykka.ActorRef[Any]:
    def current() -> pykka.ActorRef[Any] | None:
        info = {i.id: i for i in sup.proxy().which_children().get()}[child_id]
        return info.ref if info.state is ChildState.RUNNING else None

    ref = wait_until(current)
    assert isinstance(ref, pykka.ActorRef)
    return ref


def test_crash_restarts_with_growing_delays(recorder: EventRecorder) -> None:
    stamps: list[tuple[str, float]] = []
    sup = Supervisor.start(
        [crasher_spec("w")],
        backoff=Backoff(min=0.02, max=1.0, factor=2.0, jitter=0.0),
        max_restarts=100,
        breaker=None,
        listeners=[recorder, lambda event, _: stamps.append((event, time.monotonic()))],
    )
    first = _ref(sup)
    refs = [first]
    for n in range(1, 5):
        refs[-1].tell(Crash(f"crash {n}"))
        recorder.wait_for("child_started", restarts=n)
        refs.append(_ref(sup))
        assert refs[-1].proxy().ping().get(timeout=5) == "pong"

    delays = [d["delay"] for d in recorder.named("child_restart_scheduled")]
    assert delays == pytest.approx([0.02, 0.04, 0.08, 0.16])
    # Each restart really waited (at least) its delay after the exit.
    exits = [t for e, t in stamps if e == "child_exited"]
    restarts = [t for e, t in stamps if e == "child_started"][1:]
    for exited, restarted, delay in zip(exits, restarts, delays, strict=True):
        assert restarted - exited >= delay * 0.9
    assert len({r.actor_urn for r in refs}) == 5  # a fresh instance each time
    assert sup.proxy().which_children().get()[0].restarts == 4


def test_supervisor_answers_while_a_restart_is_pending(recorder: EventRecorder) -> None:
    sup = Supervisor.start(
        [crasher_spec("w")], backoff=Backoff(min=30.0, max=30.0, jitter=0.0), listeners=[recorder]
    )
    _ref(sup).tell(Crash())
    recorder.wait_for("child_restart_scheduled")
    [info] = sup.proxy().which_children().get(timeout=2)
    assert info.state is ChildState.RESTARTING
    assert info.ref is None
    assert 25.0 < info.restart_in <= 30.0
    started = time.monotonic()
    assert sup.stop(timeout=5) is True
    assert time.monotonic() - started < 5.0  # nowhere near the 30 s backoff


def test_transient_child_is_restarted_only_after_an_abnormal_exit(recorder: EventRecorder) -> None:
    sup = Supervisor.start(
        [crasher_spec("t", restart=Restart.TRANSIENT)],
        backoff=Backoff.immediate(),
        listeners=[recorder],
    )
    _ref(sup, "t").tell(Crash())
    recorder.wait_for("child_started", restarts=1)
    _ref(sup, "t").stop()
    recorder.wait_for("child_exited", 2)
    [info] = sup.proxy().which_children().get()
    assert (info.state, info.restarts, str(info.last_exit)) == (ChildState.TERMINATED, 1, "normal")
    assert len(recorder.named("child_started")) == 2


def test_temporary_child_is_never_restarted_and_is_forgotten(recorder: EventRecorder) -> None:
    sup = Supervisor.start(
        [crasher_spec("tmp", restart=Restart.TEMPORARY), crasher_spec("keep")],
        backoff=Backoff.immediate(),
        listeners=[recorder],
    )
    _ref(sup, "tmp").tell(Crash())
    recorder.wait_for("child_exited", child_id="tmp")
    wait_until(lambda: [i.id for i in sup.proxy().which_children().get()] == ["keep"])
    assert recorder.named("child_restart_scheduled") == []


def test_permanent_child_is_restarted_even_after_a_normal_exit(recorder: EventRecorder) -> None:
    sup = Supervisor.start([crasher_spec("p")], backoff=Backoff.immediate(), listeners=[recorder])
    old = _ref(sup, "p")
    old.stop()
    recorder.wait_for("child_started", restarts=1)
    assert _ref(sup, "p").actor_urn != old.actor_urn


def test_backoff_starts_over_after_a_long_healthy_run(recorder: EventRecorder) -> None:
    sup = Supervisor.start(
        [crasher_spec("w")],
        backoff=Backoff(min=0.01, max=1.0, factor=4.0, jitter=0.0, reset_after=0.3),
        breaker=None,
        max_restarts=100,
        listeners=[recorder],
    )
    _ref(sup).tell(Crash())
    recorder.wait_for("child_started", restarts=1)
    _ref(sup).tell(Crash())
    recorder.wait_for("child_started", restarts=2)
    time.sleep(0.35)  # a healthy run longer than reset_after
    _ref(sup).tell(Crash())
    recorder.wait_for("child_started", restarts=3)
    delays = [d["delay"] for d in recorder.named("child_restart_scheduled")]
    assert delays == pytest.approx([0.01, 0.04, 0.01])
