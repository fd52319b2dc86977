"""OTP-named operations: start/terminate/restart/delete_child, which/count_children."""

from __future__ import annotations

import pykka
import pytest

from supervisors import (
    ChildAlreadyExistsError,
    ChildNotFoundError,
    ChildRunningError,
    ChildSpec,
    ChildStartError,
    ChildState,
    Restart,
    Supervisor,
)
from supervisors.testing import Crasher, crasher_spec, wait_until


def test_start_child_appends_and_returns_a_live_ref() -> None:
    sup = Supervisor.start([crasher_spec("a")])
    ref = sup.proxy().start_child(crasher_spec("b")).get()
    assert ref.proxy().ping().get(timeout=5) == "pong"
    assert [i.id for i in sup.proxy().which_children().get()] == ["a", "b"]
    assert sup.proxy().count_children().get().active == 2


def test_duplicate_ids_are_refused() -> None:
    sup = Supervisor.start([crasher_spec("a")])
    with pytest.raises(ChildAlreadyExistsError, match="already has a child 'a'"):
        sup.proxy().start_child(crasher_spec("a")).get()
    with pytest.raises(ChildAlreadyExistsError):
        Supervisor.start([crasher_spec("x"), crasher_spec("x")])


def test_terminate_then_restart_then_delete() -> None:
    sup = Supervisor.start([crasher_spec("a")])
    proxy = sup.proxy()
    old = proxy.which_children().get()[0].ref
    proxy.terminate_child("a").get()
    [info] = proxy.which_children().get()
    assert (info.state, info.ref, str(info.last_exit)) == (ChildState.TERMINATED, None, "shutdown")
    assert not old.is_alive()
    assert proxy.count_children().get().active == 0

    new = proxy.restart_child("a").get()
    assert new.actor_urn != old.actor_urn
    assert proxy.which_children().get()[0].state is ChildState.RUNNING
    with pytest.raises(ChildRunningError, match="terminate_child"):
        proxy.restart_child("a").get()
    with pytest.raises(ChildRunningError):
        proxy.delete_child("a").get()

    proxy.terminate_child("a").get()
    proxy.delete_child("a").get()
    assert proxy.which_children().get() == []


def test_terminating_a_temporary_child_drops_its_spec() -> None:
    sup = Supervisor.start([crasher_spec("tmp", restart=Restart.TEMPORARY)])
    sup.proxy().terminate_child("tmp").get()
    assert sup.proxy().which_children().get() == []


def test_unknown_ids_name_the_supervisor_and_the_child() -> None:
    sup = Supervisor.start([], name="root")
    for op in ("terminate_child", "restart_child", "delete_child"):
        with pytest.raises(ChildNotFoundError, match="supervisor 'root' has no child 'ghost'"):
            getattr(sup.proxy(), op)("ghost").get()


def test_a_failing_start_is_reported_and_the_child_is_not_added() -> None:
    def broken() -> pykka.ActorRef[Crasher]:
        raise ConnectionError("registry unreachable")

    sup = Supervisor.start([crasher_spec("a")])
    with pytest.raises(ChildStartError, match="ConnectionError: registry unreachable") as info:
        sup.proxy().start_child(ChildSpec("b", broken)).get()
    assert isinstance(info.value.__cause__, ConnectionError)
    assert [i.id for i in sup.proxy().which_children().get()] == ["a"]


def test_supervisor_start_fails_and_cleans_up_when_a_child_cannot_start() -> None:
    journal: list[tuple[str, str]] = []

    def broken() -> pykka.ActorRef[Crasher]:
        raise ValueError("bad config")

    before = set(pykka.ActorRegistry.get_all())
    with pytest.raises(ChildStartError, match="could not start child 'b'"):
        Supervisor.start([crasher_spec("a", journal), ChildSpec("b", broken), crasher_spec("c")])
    assert journal == [("start", "a"), ("stop", "a")]
    wait_until(lambda: set(pykka.ActorRegistry.get_all()) == before)


def test_significant_children_need_auto_shutdown() -> None:
    with pytest.raises(ValueError, match="auto_shutdown"):
        Supervisor.start([crasher_spec("x", restart=Restart.TRANSIENT, significant=True)])


def test_count_children_tells_supervisors_from_workers() -> None:
    inner = ChildSpec("inner", lambda: Supervisor.start([crasher_spec("x")]), shutdown=10.0)
    sup = Supervisor.start([crasher_spec("a"), inner])
    counts = sup.proxy().count_children().get()
    assert (counts.specs, counts.active, counts.supervisors, counts.workers) == (2, 2, 1, 1)
