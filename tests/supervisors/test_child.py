"""The Supervised mixin reports every way a child can end, with the right reason."""

from __future__ import annotations

from typing import Any

import pykka
import pytest

from supervisors import (
    Backoff,
    ChildSpec,
    ChildStartError,
    ExitReason,
    NotSupervisedError,
    Supervised,
    Supervisor,
)
from supervisors.testing import Crash, Crasher, EventRecorder, crasher_spec, wait_until


def _single(recorder: EventRecorder, spec: ChildSpec | None = None) -> pykka.ActorRef[Supervisor]:
    return Supervisor.start(
        [spec or crasher_spec("w")],
        backoff=Backoff(min=30.0, max=30.0, jitter=0.0),  # exits stay visible: no quick restart
        breaker=None,
        listeners=[recorder],
    )


def _child_ref(sup: pykka.ActorRef[Supervisor]) -> pykka.ActorRef[Any]:
    ref = sup.proxy().which_children().get()[0].ref
    assert ref is not None
    return ref


def test_unhandled_exception_from_a_tell_is_an_abnormal_exit(recorder: EventRecorder) -> None:
    sup = _single(recorder)
    _child_ref(sup).tell(Crash("disk on fire"))
    [exited] = recorder.wait_for("child_exited", child_id="w")
    assert exited["normal"] is False
    assert exited["exc_type"] == "RuntimeError"
    assert exited["reason"] == "RuntimeError: disk on fire"
    info = sup.proxy().which_children().get()[0]
    assert info.last_exit == ExitReason(normal=False, exc_type="RuntimeError", message="disk on fire")


def test_a_normal_stop_is_a_normal_exit(recorder: EventRecorder) -> None:
    sup = _single(recorder)
    _child_ref(sup).stop()
    [exited] = recorder.wait_for("child_exited", child_id="w")
    assert (exited["normal"], exited["reason"], exited["exc_type"]) == (True, "normal", None)


def test_fail_replies_to_the_caller_then_exits_abnormally(recorder: EventRecorder) -> None:
    sup = _single(recorder)
    trap = OSError("wasm trap: unreachable")
    assert _child_ref(sup).proxy().fail_after_reply(trap).get(timeout=5) == "failed"
    [exited] = recorder.wait_for("child_exited", child_id="w")
    assert exited["reason"] == "OSError: wasm trap: unreachable"
    assert sup.proxy().which_children().get()[0].last_exit.exception is trap


def test_messages_queued_behind_fail_get_actor_dead_errors(recorder: EventRecorder) -> None:
    sup = _single(recorder)
    proxy = _child_ref(sup).proxy()
    blocked = proxy.block(0.2)
    failing = proxy.fail_after_reply(ValueError("bad state"))
    queued = proxy.ping()
    blocked.get(timeout=5)
    assert failing.get(timeout=5) == "failed"
    with pytest.raises(pykka.ActorDeadError):
        queued.get(timeout=5)


def test_exception_in_on_start_is_an_abnormal_exit(recorder: EventRecorder) -> None:
    spec = ChildSpec("w", lambda: Crasher.start("w", fail_on_start=KeyError("config")))
    _single(recorder, spec)
    [exited] = recorder.wait_for("child_exited", child_id="w")
    assert exited["normal"] is False
    assert exited["exc_type"] == "KeyError"


class _BadStop(Supervised, pykka.ThreadingActor):
    def on_stop(self) -> None:
        raise ValueError("cleanup failed")


def test_exception_in_on_stop_is_an_abnormal_exit(recorder: EventRecorder) -> None:
    sup = _single(recorder, ChildSpec("w", _BadStop.start))
    _child_ref(sup).stop()
    [exited] = recorder.wait_for("child_exited", child_id="w")
    assert exited["reason"] == "ValueError: cleanup failed"


def test_exception_answering_an_ask_goes_to_the_caller_not_the_supervisor(
    recorder: EventRecorder,
) -> None:
    sup = _single(recorder)
    ref = _child_ref(sup)
    with pytest.raises(RuntimeError, match="asked"):
        ref.ask(Crash("asked"), timeout=5)
    assert ref.proxy().ping().get(timeout=5) == "pong"
    assert recorder.named("child_exited") == []


def test_fail_from_another_thread_is_refused_with_the_way_out() -> None:
    ref = Crasher.start()
    actor = ref._actor_weakref()  # reaching in on purpose: this is the misuse being tested
    assert actor is not None
    with pytest.raises(RuntimeError, match=r"proxy\(\)\.fail"):
        actor.fail(ValueError("x"))
    ref.stop()


class _Plain(pykka.ThreadingActor):
    pass


def test_an_actor_without_the_mixin_is_refused_and_stopped() -> None:
    sup = Supervisor.start([])
    before = len(pykka.ActorRegistry.get_by_class(_Plain))
    with pytest.raises(ChildStartError, match=r"does not mix in supervisors\.Supervised") as info:
        sup.proxy().start_child(ChildSpec("plain", _Plain.start)).get(timeout=5)
    assert isinstance(info.value.__cause__, NotSupervisedError)
    wait_until(lambda: len(pykka.ActorRegistry.get_by_class(_Plain)) == before)
    assert sup.proxy().which_children().get() == []


def test_a_child_that_dies_before_it_is_linked_is_still_reported(recorder: EventRecorder) -> None:
    # The child's thread may end before start() even returns; the exit must not be lost.
    spec = ChildSpec("w", lambda: Crasher.start("w", fail_on_start=RuntimeError("instant")))
    for _ in range(20):
        recorder.events.clear()
        sup = _single(recorder, spec)
        [exited] = recorder.wait_for("child_exited", child_id="w")
        assert exited["reason"] == "RuntimeError: instant"
        sup.stop()
