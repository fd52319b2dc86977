"""one_for_all and rest_for_one restart exactly the right siblings, in start order."""

from __future__ import annotations

from typing import Any

import pykka

from supervisors import Backoff, ChildState, Restart, Strategy, Supervisor
from supervisors.testing import Crash, EventRecorder, crasher_spec, wait_until


def _start(strategy: Strategy, ids: str, journal: list[tuple[str, str]], recorder: EventRecorder,
           **spec_kwargs: Any) -> pykka.ActorRef[Supervisor]:
    return Supervisor.start(
        [crasher_spec(i, journal, **spec_kwargs) for i in ids],
        strategy=strategy,
        backoff=Backoff.immediate(),
        listeners=[recorder],
    )


def _refs(sup: pykka.ActorRef[Supervisor]) -> dict[str, str | None]:
    return {i.id: i.ref.actor_urn if i.ref else None for i in sup.proxy().which_children().get()}


def _all_running(sup: pykka.ActorRef[Supervisor]) -> bool:
    return all(i.state is ChildState.RUNNING for i in sup.proxy().which_children().get())


def test_one_for_one_restarts_only_the_failed_child(recorder: EventRecorder) -> None:
    journal: list[tuple[str, str]] = []
    sup = _start(Strategy.ONE_FOR_ONE, "abc", journal, recorder)
    before = _refs(sup)
    sup.proxy().which_children().get()[1].ref.tell(Crash())
    recorder.wait_for("child_started", restarts=1)
    wait_until(lambda: _all_running(sup))
    after = _refs(sup)
    assert [k for k in before if before[k] != after[k]] == ["b"]
    assert journal[3:] == [("start", "b")]


def test_one_for_all_stops_the_others_in_reverse_then_restarts_all_in_order(
    recorder: EventRecorder,
) -> None:
    journal: list[tuple[str, str]] = []
    sup = _start(Strategy.ONE_FOR_ALL, "abc", journal, recorder)
    before = _refs(sup)
    sup.proxy().which_children().get()[1].ref.tell(Crash())
    recorder.wait_for("child_started", 3, restarts=1)
    wait_until(lambda: _all_running(sup))
    after = _refs(sup)
    assert all(before[k] != after[k] for k in "abc")
    # b crashed (no on_stop); c then a stopped (reverse start order); all start in order.
    assert journal[3:] == [
        ("stop", "c"),
        ("stop", "a"),
        ("start", "a"),
        ("start", "b"),
        ("start", "c"),
    ]
    assert [i.restarts for i in sup.proxy().which_children().get()] == [1, 1, 1]


def test_rest_for_one_restarts_the_failed_child_and_those_started_after_it(
    recorder: EventRecorder,
) -> None:
    journal: list[tuple[str, str]] = []
    sup = _start(Strategy.REST_FOR_ONE, "abcd", journal, recorder)
    before = _refs(sup)
    sup.proxy().which_children().get()[1].ref.tell(Crash())
    recorder.wait_for("child_started", 3, restarts=1)
    wait_until(lambda: _all_running(sup))
    after = _refs(sup)
    assert [k for k in "abcd" if before[k] != after[k]] == ["b", "c", "d"]
    assert journal[4:] == [
        ("stop", "d"),
        ("stop", "c"),
        ("start", "b"),
        ("start", "c"),
        ("start", "d"),
    ]


def test_one_for_all_does_not_restart_a_temporary_sibling(recorder: EventRecorder) -> None:
    journal: list[tuple[str, str]] = []
    sup = Supervisor.start(
        [crasher_spec("a", journal), crasher_spec("tmp", journal, restart=Restart.TEMPORARY)],
        strategy=Strategy.ONE_FOR_ALL,
        backoff=Backoff.immediate(),
        listeners=[recorder],
    )
    sup.proxy().which_children().get()[0].ref.tell(Crash())
    recorder.wait_for("child_started", restarts=1, child_id="a")
    wait_until(lambda: _all_running(sup))
    assert [i.id for i in sup.proxy().which_children().get()] == ["a"]
    assert journal[2:] == [("stop", "tmp"), ("start", "a")]
