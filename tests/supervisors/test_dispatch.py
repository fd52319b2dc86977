"""PooledActor on a Dispatcher: pykka semantics, a serial mailbox, an elastic pool that
cannot deadlock on blocking asks, fairness, run-on-caller ("inline") and supervision.

Each test that depends on pool sizes gets a Dispatcher of its own (``dispatcher = d`` on a
subclass made inside the test), with a unique thread-name prefix.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any, TypeVar, cast

import pykka
import pytest
from pykka import messages as pykka_messages
from pykka._envelope import Envelope

from supervisors import (
    Backoff,
    ChildSpec,
    ChildState,
    Dispatcher,
    PooledActor,
    Supervised,
    Supervisor,
    default_dispatcher,
)
from supervisors.dispatch import _Mailbox
from supervisors.testing import EventRecorder, wait_until

_names = itertools.count(1)
_A = TypeVar("_A", bound=PooledActor)


def _on(d: Dispatcher, base: type[_A], **attrs: Any) -> type[_A]:
    """A subclass of ``base`` that runs on ``d`` (class attributes ``attrs`` added)."""
    return cast("type[_A]", type(base.__name__, (base,), {"dispatcher": d, **attrs}))


def _dispatcher(**kwargs: Any) -> Dispatcher:
    """A dispatcher of the test's own, its threads named ``test-dispatch-N-...``."""
    return Dispatcher(f"test-dispatch-{next(_names)}", **kwargs)


def _mailbox(ref: pykka.ActorRef[Any]) -> _Mailbox:
    box = ref.actor_inbox
    assert isinstance(box, _Mailbox)
    return box


def _settled(ref: pykka.ActorRef[Any]) -> None:
    """Wait until no thread runs the actor and it has nothing queued.

    A worker sets a reply before it leaves the actor's slice; a put in between is run by
    that worker. The inline tests need the actor idle before they adopt.
    """
    box = _mailbox(ref)
    wait_until(lambda: not box._scheduled and box.empty())


def _pool_threads(d: Dispatcher) -> list[threading.Thread]:
    return [
        t
        for t in threading.enumerate()
        if t.name.startswith(f"{d.name}-") and t.name != f"{d.name}-watchdog" and t.is_alive()
    ]


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    """An event handlers wait on (bounded), always set at teardown so nothing stays stuck."""
    event = threading.Event()
    yield event
    event.set()


# ----------------------------------------------------------------- pykka semantics


class _Probe(PooledActor):
    """Records where and in which order its hooks and messages run."""

    def __init__(self, log: list[tuple[str, Any, str]], start_delay: float = 0.0) -> None:
        super().__init__()
        self.log = log
        self.start_delay = start_delay
        self.started = False
        self.total = 0

    def _note(self, what: str, detail: Any = None) -> None:
        self.log.append((what, detail, threading.current_thread().name))

    def on_start(self) -> None:
        time.sleep(self.start_delay)  # a slow start: messages must still wait for it
        self.started = True
        self._note("start")

    def on_stop(self) -> None:
        self._note("stop")

    def on_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._note("failure", exception_value)

    def on_receive(self, message: Any) -> Any:
        if message == "started?":
            self._note("message", self.started)
            return self.started
        if message == "crash":
            raise RuntimeError("crashed on a tell")
        if message == "ask-error":
            raise ValueError("bad question")
        self._note("message", message)
        return ("echo", message)

    def add(self, n: int) -> int:
        self.total += n
        return self.total


def test_ask_tell_and_proxy_calls_work() -> None:
    d = _dispatcher()
    log: list[tuple[str, Any, str]] = []
    ref = _on(d, _Probe).start(log)
    assert ref.ask("hello", block=True, timeout=5) == ("echo", "hello")
    ref.tell("told")
    proxy = ref.proxy()
    assert proxy.add(2).get(timeout=5) == 2
    assert proxy.add(3).get(timeout=5) == 5
    assert proxy.total.get(timeout=5) == 5  # attribute read through the mailbox
    proxy.total = 40  # attribute write through the mailbox
    assert proxy.add(2).get(timeout=5) == 42
    assert [detail for what, detail, _ in log if what == "message"] == ["hello", "told"]
    assert all(name.startswith(f"{d.name}-") for _, _, name in log)


def test_on_start_runs_first_on_a_pool_worker() -> None:
    d = _dispatcher()
    log: list[tuple[str, Any, str]] = []
    ref = _on(d, _Probe).start(log, start_delay=0.05)
    # Asked at once, while on_start still sleeps: the message waits for on_start.
    assert ref.ask("started?", block=True, timeout=5) is True
    assert [what for what, _, _ in log] == ["start", "message"]
    start_thread = log[0][2]
    assert start_thread.startswith(f"{d.name}-") and start_thread != f"{d.name}-watchdog"
    assert start_thread != threading.current_thread().name


def test_on_stop_runs_on_stop_and_the_actor_is_dead_after() -> None:
    d = _dispatcher()
    log: list[tuple[str, Any, str]] = []
    ref = _on(d, _Probe).start(log)
    ref.tell("before")
    assert ref.stop(timeout=5) is True
    assert [what for what, _, _ in log] == ["start", "message", "stop"]
    assert log[-1][2].startswith(f"{d.name}-")
    assert not ref.is_alive()
    assert ref.stop(timeout=5) is False  # already dead
    assert pykka.ActorRegistry.get_by_urn(ref.actor_urn) is None


def test_an_exception_in_a_tell_ends_the_actor_and_calls_on_failure() -> None:
    d = _dispatcher()
    log: list[tuple[str, Any, str]] = []
    ref = _on(d, _Probe).start(log)
    ref.tell("crash")
    wait_until(lambda: not ref.is_alive())
    wait_until(lambda: any(what == "failure" for what, _, _ in log))
    [(_, exc, thread)] = [entry for entry in log if entry[0] == "failure"]
    assert isinstance(exc, RuntimeError) and str(exc) == "crashed on a tell"
    assert thread.startswith(f"{d.name}-")
    assert "stop" not in [what for what, _, _ in log]  # on_failure instead of on_stop
    assert pykka.ActorRegistry.get_by_urn(ref.actor_urn) is None
    with pytest.raises(pykka.ActorDeadError):
        ref.ask("anyone?", block=True, timeout=5)


def test_an_exception_in_an_ask_goes_to_the_caller_and_the_actor_lives_on() -> None:
    d = _dispatcher()
    log: list[tuple[str, Any, str]] = []
    ref = _on(d, _Probe).start(log)
    with pytest.raises(ValueError, match="bad question"):
        ref.ask("ask-error", block=True, timeout=5)
    assert ref.is_alive()
    assert ref.ask("still there", block=True, timeout=5) == ("echo", "still there")
    assert [what for what, _, _ in log] == ["start", "message"]  # no failure, no stop


def test_pooled_actors_without_a_dispatcher_use_the_shared_default() -> None:
    assert default_dispatcher() is default_dispatcher()

    class OnDefault(PooledActor):
        def on_receive(self, message: Any) -> Any:
            return threading.current_thread().name

    name = OnDefault.start().ask("where?", block=True, timeout=5)
    assert name.startswith(f"{default_dispatcher().name}-")


# ----------------------------------------------------------------- serial mailbox


class _Serial(PooledActor):
    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()
        self.in_progress = 0
        self.peak = 0
        self.seen: dict[int, list[int]] = {}

    def on_receive(self, message: Any) -> Any:
        if message == "report":
            return self.peak, self.seen
        sender, seq = message
        with self.lock:
            self.in_progress += 1
            self.peak = max(self.peak, self.in_progress)
        time.sleep(0)  # let any other thread that (wrongly) runs this actor now catch up
        self.seen.setdefault(sender, []).append(seq)
        with self.lock:
            self.in_progress -= 1
        return None


def test_many_senders_one_actor_runs_serially_in_per_sender_order() -> None:
    # Plenty of workers and a throughput of 1: the actor hops between workers all the time.
    d = _dispatcher(min_workers=6, max_workers=6, throughput=1)
    ref = _on(d, _Serial).start()
    senders, per_sender = 8, 300
    go = threading.Barrier(senders)

    def send(sender: int) -> None:
        go.wait()
        for seq in range(per_sender):
            ref.tell((sender, seq))

    threads = [threading.Thread(target=send, args=(i,)) for i in range(senders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    peak, seen = ref.ask("report", block=True, timeout=5)  # queued behind every tell
    assert peak == 1
    assert seen == {sender: list(range(per_sender)) for sender in range(senders)}


# ----------------------------------------------------------------- few threads


class _Where(PooledActor):
    def __init__(self, index: int) -> None:
        super().__init__()
        self.index = index

    def on_receive(self, message: Any) -> Any:
        return self.index, threading.current_thread().name


def test_a_thousand_actors_run_on_a_few_threads() -> None:
    d = _dispatcher(min_workers=2, max_workers=64, stall_after=0.2)
    cls = _on(d, _Where)
    refs = [cls.start(i) for i in range(1000)]
    futures = [ref.ask("where?", block=False) for ref in refs]
    answers = [f.get(timeout=10) for f in futures]
    assert [index for index, _ in answers] == list(range(1000))
    names = {name for _, name in answers}
    assert all(name.startswith(f"{d.name}-") for name in names)
    assert len(names) <= 8, sorted(names)
    assert len(_pool_threads(d)) <= 8
    assert d.peak_workers <= 8
    assert len(pykka.ActorRegistry.get_by_class(cls)) == 1000


# ----------------------------------------------------------------- blocking and growth


class _Answer(PooledActor):
    def on_receive(self, message: Any) -> Any:
        return ("answer", message, threading.current_thread().name)


class _Asker(PooledActor):
    def __init__(self, other: pykka.ActorRef[Any]) -> None:
        super().__init__()
        self.other = other

    def on_receive(self, message: Any) -> Any:
        # Blocks this worker until the other pooled actor answers.
        return self.other.ask(message, block=True, timeout=5), threading.current_thread().name


def _pair(d: Dispatcher) -> tuple[pykka.ActorRef[Any], pykka.ActorRef[Any]]:
    b = _on(d, _Answer).start()
    a = _on(d, _Asker).start(b)
    return a, b


def test_a_blocking_ask_between_pooled_actors_grows_the_pool_instead_of_deadlocking() -> None:
    d = _dispatcher(min_workers=1, max_workers=4, stall_after=0.01)
    a, _ = _pair(d)
    started = time.monotonic()
    (answer, asked_on, answered_on), a_thread = a.ask("q", block=True, timeout=3)
    assert time.monotonic() - started < 2
    assert (answer, asked_on) == ("answer", "q")
    assert answered_on != a_thread  # B ran on another worker while A's was blocked
    assert d.peak_workers >= 2
    assert d.workers <= 4


def test_an_actor_queued_behind_a_worker_that_then_blocks_is_not_stranded() -> None:
    # Regression: A and B are made runnable back to back while the only worker idles.
    # Both submits counted that worker as idle (it is, until it wakes), so neither woke the
    # watchdog; the worker then took A, which blocks asking B, queued behind it. Nothing
    # grew the pool and A's ask timed out.
    d = _dispatcher(min_workers=1, max_workers=4, stall_after=0.01, idle_timeout=0.05)
    a, b = _pair(d)
    for _ in range(3):
        # Back to one idle worker, nothing queued, the watchdog asleep.
        wait_until(lambda: d.workers == 1 and d._idle == 1 and not d._queue and not d._watching)
        future = a.ask("q", block=False)
        b.tell("meanwhile")
        (answer, _, _), _ = future.get(timeout=3)
        assert answer == "answer"
    assert d.peak_workers >= 2


def test_extra_workers_retire_after_idle_timeout() -> None:
    d = _dispatcher(min_workers=1, max_workers=4, stall_after=0.01, idle_timeout=0.05)
    a, _ = _pair(d)
    a.ask("q", block=True, timeout=3)
    assert d.peak_workers >= 2
    wait_until(lambda: d.workers == 1)
    wait_until(lambda: len(_pool_threads(d)) == 1)


class _Blocker(PooledActor):
    def __init__(self, gate: threading.Event, running: list[str]) -> None:
        super().__init__()
        self.gate = gate
        self.running = running

    def on_receive(self, message: Any) -> Any:
        self.running.append(message)
        self.gate.wait(5)
        return message


def test_the_pool_never_grows_past_max_workers(gate: threading.Event) -> None:
    d = _dispatcher(min_workers=1, max_workers=2, stall_after=0.01)
    cls = _on(d, _Blocker)
    running: list[str] = []
    refs = [cls.start(gate, running) for _ in range(5)]
    futures = [ref.ask(f"b{i}", block=False) for i, ref in enumerate(refs)]
    wait_until(lambda: len(running) == 2)
    time.sleep(0.1)  # ten stall periods: the watchdog would have grown the pool by now
    assert len(running) == 2
    assert d.workers == 2 and d.peak_workers == 2
    gate.set()
    assert [f.get(timeout=5) for f in futures] == [f"b{i}" for i in range(5)]


# ----------------------------------------------------------------- fairness


class _Busy(PooledActor):
    def __init__(self, label: str, order: list[str]) -> None:
        super().__init__()
        self.label = label
        self.order = order

    def on_receive(self, message: Any) -> Any:
        self.order.append(self.label)


@pytest.mark.parametrize(
    ("throughput", "expected"),
    [(1, list("ABABABABAB")), (64, list("AAAAABBBBB"))],
)
def test_throughput_bounds_how_long_one_actor_holds_a_worker(
    gate: threading.Event, throughput: int, expected: list[str]
) -> None:
    d = _dispatcher(min_workers=1, max_workers=1, throughput=throughput)
    order: list[str] = []
    busy = _on(d, _Busy)
    a, b = busy.start("A", order), busy.start("B", order)
    blocker = _on(d, _Blocker).start(gate, [])
    for ref in (a, b):
        ref.ask("warm", block=True, timeout=5)
    order.clear()
    held = blocker.ask("hold", block=False)  # occupy the only worker
    for _ in range(5):
        a.tell("work")
    for _ in range(5):
        b.tell("work")
    gate.set()
    held.get(timeout=5)
    wait_until(lambda: len(order) == 10)
    assert order == expected


# ----------------------------------------------------------------- inline (run on caller)


class _Recorder(PooledActor):
    def __init__(self, ran: list[tuple[Any, int]], then: pykka.ActorRef[Any] | None = None) -> None:
        super().__init__()
        self.ran = ran
        self.then = then

    def on_receive(self, message: Any) -> Any:
        if message == "slow":
            time.sleep(0.03)
        self.ran.append((message, threading.get_ident()))
        if self.then is not None:
            self.then.tell(("after", message))
        return message


@pytest.fixture
def adopting() -> Iterator[Callable[[Dispatcher], Dispatcher]]:
    """Make the test's thread adopt a dispatcher; released at teardown whatever happens."""
    adopted: list[Dispatcher] = []

    def adopt(d: Dispatcher) -> Dispatcher:
        d.adopt()
        adopted.append(d)
        return d

    yield adopt
    for d in adopted:
        d.release()


def test_inline_actor_runs_on_the_adopting_thread_only_at_run_pending(
    adopting: Callable[[Dispatcher], Dispatcher],
) -> None:
    d = _dispatcher(inline_budget=1.0)
    ran: list[tuple[Any, int]] = []
    ref = _on(d, _Recorder, inline=True).start(ran)
    ref.ask("warm", block=True, timeout=5)  # before adopting: on a worker
    assert ran[0][1] != threading.get_ident()
    _settled(ref)
    ran.clear()
    adopting(d)
    ref.tell("m1")
    future = ref.ask("m2", block=False)
    time.sleep(0.05)
    assert ran == []  # not run inside put, nor by a worker
    me = threading.get_ident()
    assert d.run_pending() >= 1
    assert ran == [("m1", me), ("m2", me)]
    assert future.get(timeout=0) == "m2"
    assert d.run_pending() == 0


def test_an_inline_actor_started_on_an_adopting_thread_starts_on_a_worker(
    adopting: Callable[[Dispatcher], Dispatcher],
) -> None:
    d = _dispatcher(inline_budget=1.0)
    log: list[tuple[str, Any, str]] = []
    adopting(d)
    _on(d, _Probe, inline=True).start(log)
    wait_until(lambda: log)  # on_start ran without this thread calling run_pending
    [(what, _, thread)] = log
    assert what == "start" and thread.startswith(f"{d.name}-")
    assert d.run_pending() == 0


def test_inline_work_made_runnable_while_running_pending_runs_in_the_same_call(
    adopting: Callable[[Dispatcher], Dispatcher],
) -> None:
    d = _dispatcher(inline_budget=1.0)
    ran: list[tuple[Any, int]] = []
    cls = _on(d, _Recorder, inline=True)
    second = cls.start(ran)
    first = cls.start(ran, then=second)
    first.ask("warm", block=True, timeout=5)  # on workers, as is ("after", "warm") in second
    wait_until(lambda: len(ran) == 2)
    _settled(first)
    _settled(second)
    ran.clear()
    adopting(d)
    first.tell("go")
    assert ran == []
    assert d.run_pending() == 2
    me = threading.get_ident()
    assert ran == [("go", me), (("after", "go"), me)]


def test_a_non_inline_actor_told_from_an_adopting_thread_runs_on_a_worker(
    adopting: Callable[[Dispatcher], Dispatcher],
) -> None:
    d = _dispatcher(inline_budget=1.0)
    ran: list[tuple[Any, int]] = []
    ref = _on(d, _Recorder, inline=False).start(ran)
    ref.ask("warm", block=True, timeout=5)
    _settled(ref)
    ran.clear()
    adopting(d)
    ref.tell("m")
    wait_until(lambda: ran)  # no run_pending needed
    assert ran[0][0] == "m" and ran[0][1] != threading.get_ident()
    assert d.run_pending() == 0


def test_a_slow_inline_actor_is_handed_to_the_pool(
    adopting: Callable[[Dispatcher], Dispatcher],
) -> None:
    d = _dispatcher(inline_budget=0.005)
    ran: list[tuple[Any, int]] = []
    ref = _on(d, _Recorder, inline=True).start(ran)
    ref.ask("warm", block=True, timeout=5)
    _settled(ref)
    ran.clear()
    me = threading.get_ident()
    adopting(d)
    # Each "slow" takes 30 ms against a 5 ms budget. The estimate is a moving average
    # (1/8 per message), so the first one or two still run here; then the pool takes it.
    inline_runs = 0
    for _ in range(5):
        ref.tell("slow")
        if d.run_pending() == 0:
            break
        inline_runs += 1
        assert ran[-1] == ("slow", me)
    assert 1 <= inline_runs <= 2, inline_runs
    wait_until(lambda: len(ran) == inline_runs + 1)
    assert ran[-1][0] == "slow" and ran[-1][1] != me  # a worker ran it, not this thread
    _settled(ref)
    ref.tell("next")  # still over budget: the pool again
    assert d.run_pending() == 0
    wait_until(lambda: len(ran) == inline_runs + 2)
    assert ran[-1][0] == "next" and ran[-1][1] != me


def test_release_hands_pending_inline_work_to_the_pool(
    adopting: Callable[[Dispatcher], Dispatcher],
) -> None:
    d = _dispatcher(inline_budget=1.0)
    ran: list[tuple[Any, int]] = []
    ref = _on(d, _Recorder, inline=True).start(ran)
    ref.ask("warm", block=True, timeout=5)
    _settled(ref)
    ran.clear()
    adopting(d)
    ref.tell("pending")
    time.sleep(0.05)
    assert ran == []
    d.release()
    wait_until(lambda: ran)
    me = threading.get_ident()
    assert ran == [("pending", ran[0][1])] and ran[0][1] != me
    _settled(ref)
    ref.tell("after release")  # no longer adopted: straight to the pool
    wait_until(lambda: len(ran) == 2)
    assert ran[1][1] != me
    assert d.run_pending() == 0


# ----------------------------------------------------------------- dead actors


def test_ask_after_stop_raises_actor_dead_error() -> None:
    d = _dispatcher()
    ref = _on(d, _Recorder, inline=False).start([])
    ref.stop(timeout=5)
    with pytest.raises(pykka.ActorDeadError):
        ref.ask("late", block=True, timeout=5)
    with pytest.raises(pykka.ActorDeadError):
        ref.tell("late")


def test_an_envelope_put_after_the_actor_finished_fails_its_future() -> None:
    d = _dispatcher()
    ran: list[tuple[Any, int]] = []
    ref = _on(d, _Recorder, inline=False).start(ran)
    ref.stop(timeout=5)
    box = _mailbox(ref)
    wait_until(lambda: box.finished)
    # Past the ref's is_alive check (a put racing the stop): straight into the inbox.
    late: pykka.Future[Any] = pykka.ThreadingFuture()
    ref.actor_inbox.put(Envelope("late", reply_to=late))
    with pytest.raises(pykka.ActorDeadError):
        late.get(timeout=1)
    stop_again: pykka.Future[Any] = pykka.ThreadingFuture()
    ref.actor_inbox.put(Envelope(pykka_messages._ActorStop(), reply_to=stop_again))
    assert stop_again.get(timeout=1) is None  # stopping a stopped actor is not an error
    ref.actor_inbox.put(Envelope("late tell"))  # no reply to fail: dropped quietly
    time.sleep(0.02)
    assert ran == []
    assert box.empty()


def test_asks_queued_behind_a_stop_get_actor_dead_error(gate: threading.Event) -> None:
    d = _dispatcher()
    ref = _on(d, _Blocker).start(gate, [])
    busy = ref.ask("busy", block=False)
    stopped = ref.stop(block=False)
    queued = ref.ask("queued", block=False)
    gate.set()
    assert busy.get(timeout=5) == "busy"
    assert stopped.get(timeout=5) is True
    with pytest.raises(pykka.ActorDeadError):
        queued.get(timeout=5)


# ----------------------------------------------------------------- supervision


class _PooledChild(Supervised, PooledActor):
    def on_receive(self, message: Any) -> Any:
        if message == "crash":
            raise RuntimeError("pooled child crashed")
        return "pong"

    def fail_now(self, reason: BaseException) -> str:
        self.fail(reason)
        return "failed"


def _supervise(d: Dispatcher, recorder: EventRecorder) -> pykka.ActorRef[Supervisor]:
    child = _on(d, _PooledChild)
    return Supervisor.start(
        [ChildSpec("w", child.start)],
        backoff=Backoff.immediate(),
        breaker=None,
        max_restarts=10,
        listeners=[recorder],
    )


def _running_ref(sup: pykka.ActorRef[Supervisor], not_urn: str = "") -> pykka.ActorRef[Any]:
    def current() -> pykka.ActorRef[Any] | None:
        [info] = sup.proxy().which_children().get(timeout=5)
        ok = info.state is ChildState.RUNNING and info.ref is not None
        return info.ref if ok and info.ref.actor_urn != not_urn else None

    ref = wait_until(current)
    assert isinstance(ref, pykka.ActorRef)
    return ref


def test_a_crashed_pooled_child_is_restarted(recorder: EventRecorder) -> None:
    sup = _supervise(_dispatcher(), recorder)
    first = _running_ref(sup)
    assert first.ask("ping", block=True, timeout=5) == "pong"
    first.tell("crash")
    [exited] = recorder.wait_for("child_exited", child_id="w")
    assert exited["normal"] is False
    assert exited["reason"] == "RuntimeError: pooled child crashed"
    second = _running_ref(sup, not_urn=first.actor_urn)
    assert second.ask("ping", block=True, timeout=5) == "pong"
    assert not first.is_alive()
    assert sup.proxy().which_children().get(timeout=5)[0].restarts == 1


def test_fail_inside_a_handler_restarts_the_pooled_child(recorder: EventRecorder) -> None:
    sup = _supervise(_dispatcher(), recorder)
    first = _running_ref(sup)
    reason = OSError("guest trapped")
    assert first.proxy().fail_now(reason).get(timeout=5) == "failed"
    [exited] = recorder.wait_for("child_exited", child_id="w")
    assert exited["reason"] == "OSError: guest trapped"
    second = _running_ref(sup, not_urn=first.actor_urn)
    assert second.ask("ping", block=True, timeout=5) == "pong"
    info = sup.proxy().which_children().get(timeout=5)[0]
    assert info.last_exit is not None and info.last_exit.exception is reason


def test_fail_from_outside_the_pooled_actor_raises_runtime_error(recorder: EventRecorder) -> None:
    sup = _supervise(_dispatcher(), recorder)
    ref = _running_ref(sup)
    actor = ref._actor_weakref()  # reaching in on purpose: this is the misuse being tested
    assert isinstance(actor, _PooledChild)
    with pytest.raises(RuntimeError, match=r"own thread"):
        actor.fail(ValueError("from outside"))
    assert ref.ask("ping", block=True, timeout=5) == "pong"
    assert recorder.named("child_exited") == []


# ----------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("kwargs", "names"),
    [
        ({"min_workers": 0}, "min_workers"),
        ({"min_workers": 3, "max_workers": 2}, "max_workers"),
        ({"throughput": 0}, "throughput"),
        ({"inline_budget": -0.001}, "inline_budget"),
        ({"stall_after": 0}, "stall_after"),
        ({"stall_after": -1.0}, "stall_after"),
        ({"idle_timeout": 0}, "idle_timeout"),
    ],
)
def test_bad_dispatcher_arguments_are_refused_by_name(kwargs: dict[str, Any], names: str) -> None:
    with pytest.raises(ValueError, match=names):
        Dispatcher("test-dispatch-invalid", **kwargs)


class _InlineChild(Supervised, PooledActor):
    inline = True

    def on_receive(self, message: Any) -> Any:
        return threading.get_ident()


def test_fail_is_refused_on_a_thread_that_ran_the_actor_once_its_turn_ended() -> None:
    d = _dispatcher()
    ref = _on(d, _InlineChild).start()
    ref.ask("warm-up", block=True, timeout=5)  # on_start done, mailbox idle
    wait_until(lambda: not ref.actor_inbox._scheduled)  # type: ignore[attr-defined]
    d.adopt()
    try:
        future = ref.ask("who", block=False)
        d.run_pending()
        assert future.get(timeout=5) == threading.get_ident()  # it ran on this thread...
    finally:
        d.release()
    actor = ref._actor_weakref()
    assert isinstance(actor, _InlineChild)
    with pytest.raises(RuntimeError, match=r"own thread"):  # ...but its turn is over
        actor.fail(ValueError("after its turn"))
    ref.stop()


class _SlowInline(PooledActor):
    inline = True

    def __init__(self, log: list[int]) -> None:
        super().__init__()
        self.log = log

    def on_receive(self, message: Any) -> Any:
        time.sleep(0.003)
        self.log.append(threading.get_ident())


def test_an_inline_turn_ends_after_the_budget_and_slow_work_moves_to_the_pool() -> None:
    d = _dispatcher(inline_budget=0.001)
    log: list[int] = []
    ref = _on(d, _SlowInline).start(log)
    ref.ask("warm-up", block=True, timeout=5)  # runs on a worker (idle mailbox: not inline)
    wait_until(lambda: not ref.actor_inbox._scheduled)  # type: ignore[attr-defined]
    log.clear()
    me = threading.get_ident()
    d.adopt()
    try:
        for i in range(20):
            ref.tell(i)
        d.run_pending()
    finally:
        d.release()
    wait_until(lambda: len(log) == 20)
    here = sum(1 for t in log if t == me)
    # 3 ms messages against a 1 ms budget: each inline turn is one message, and the moving
    # average demotes the actor after a few; the pool's workers do the rest.
    assert 1 <= here <= 6, here
    assert any(t != me for t in log)
    ref.stop()


class _WhereAmI(PooledActor):
    def on_receive(self, message: Any) -> Any:
        if message == "slow":
            time.sleep(0.004)  # over the 1 ms inline budget: a slow actor
        return os.sched_getaffinity(0)


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs CPU affinity and two CPUs")
def test_slow_actors_run_on_the_slow_actor_cpus_and_quick_ones_stay_home() -> None:
    every = os.sched_getaffinity(0)
    home = {min(every)}
    os.sched_setaffinity(0, home)  # this thread only: the workers it starts inherit it
    try:
        d = _dispatcher()
        d.set_slow_actor_cpus(every)
        quick = _on(d, _WhereAmI).start()
        slow = _on(d, _WhereAmI).start()
    finally:
        os.sched_setaffinity(0, every)
    try:
        assert quick.ask("where", timeout=5) == home
        seen = [slow.ask("slow", timeout=5) for _ in range(30)]
        # its first messages ran at home; once its average crossed the budget, on every CPU
        assert seen[0] == home and seen[-1] == every
        assert quick.ask("where", timeout=5) == home  # and a worker goes back home after
        d.set_slow_actor_cpus(None)
        assert slow.ask("slow", timeout=5) == home
    finally:
        quick.stop()
        slow.stop()
