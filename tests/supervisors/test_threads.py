"""Thread budget: supervisors share the dispatcher's pool; a ThreadingActor child has its
own thread; delayed restarts share one timer thread."""

from __future__ import annotations

import threading

from supervisors import Backoff, ChildState, Supervisor
from supervisors.testing import Crash, crasher_spec, wait_until


def test_many_supervisors_with_pending_restarts_share_one_timer_thread() -> None:
    before = {t.ident for t in threading.enumerate()}
    sups = [
        Supervisor.start(
            [crasher_spec("a"), crasher_spec("b")], backoff=Backoff(min=30.0, max=30.0)
        )
        for _ in range(20)
    ]
    for sup in sups:
        sup.proxy().which_children().get()[0].ref.tell(Crash())
    for sup in sups:
        wait_until(
            lambda sup=sup: sup.proxy().which_children().get()[0].state is ChildState.RESTARTING
        )
    new = [t for t in threading.enumerate() if t.ident not in before and t.is_alive()]
    actors = [t for t in new if t.name.startswith(("Supervisor-", "Crasher-"))]
    pooled = [t for t in new if t.name.startswith("pooled-actors-")]
    others = {t.name for t in new} - {t.name for t in actors} - {t.name for t in pooled}
    assert len(actors) == 20  # each supervisor's one surviving (threading) child, no more
    assert len(pooled) <= 4, [t.name for t in pooled]  # 20 supervisors on a few shared threads
    assert others <= {"supervisors-timer"}
    assert sum(1 for t in threading.enumerate() if t.name == "supervisors-timer") == 1
