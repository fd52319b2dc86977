"""Pooled pykka actors: many actors on a few shared threads.

A :class:`pykka.ThreadingActor` owns one OS thread for its whole life. That is simple, but
it costs memory maps and a GIL hand-off per message, and a process runs out of threads long
before it runs out of actors (each thread holds about two memory mappings; Linux's default
``vm.max_map_count`` is 65,530). A :class:`PooledActor` is a pykka actor whose mailbox is run
by a :class:`Dispatcher`: a small, elastic pool of worker threads. It is still a pykka actor
in every way a caller sees — ``ActorRef``, ``tell``/``ask``, proxies, ``on_start`` /
``on_stop`` / ``on_failure``, the registry — and its mailbox is still serial: at most one
thread runs one actor at a time, in mailbox order (Akka's dispatcher model).

* **Throughput fairness.** A worker handles at most ``throughput`` messages of one actor
  before it moves on, so one busy actor cannot starve the others.
* **Blocking is allowed, not free.** When an actor blocks (an ``ask`` to another actor, a
  supervisor waiting for a child to stop) its worker is busy; when the oldest queued actor
  has waited ``stall_after`` with no worker idle, a watchdog starts another worker (up to
  ``max_workers``), so waiting on another pooled actor cannot deadlock the pool. Extra
  workers retire after ``idle_timeout``.
* **Run-on-caller ("inline") for quick actors.** A thread that serves a socket (the control
  port) can :meth:`Dispatcher.adopt` a local run list. Actors of a class with
  ``inline = True`` that are made runnable on that thread are run by it, after it finishes
  the request in hand (never inside the ``put``), instead of being handed to a worker — no
  GIL hand-off, no context switch. An actor whose recent messages took longer than
  ``inline_budget`` is handed to the pool instead, so one slow actor cannot stall the socket.

Example::

    from supervisors import PooledActor

    class Adder(PooledActor):
        def add(self, a: int, b: int) -> int:
            return a + b

    ref = Adder.start()
    assert ref.proxy().add(1, 2).get() == 3
    ref.stop()
"""

from __future__ import annotations

import collections
import os
import sys
import threading
import time
from typing import Any, ClassVar

import pykka
import structlog
from pykka import messages as pykka_messages

_log = structlog.get_logger("supervisors.dispatch")

_EWMA_SHIFT = 3  # cost estimate: new = old + (sample - old) / 8


class Dispatcher:
    """An elastic pool of worker threads that runs :class:`PooledActor` mailboxes.

    Args:
        name: Prefix of the worker threads' names.
        min_workers: Workers kept alive while idle.
        max_workers: Upper bound of workers (blocked actors make the pool grow to it).
        throughput: Messages of one actor a worker handles before it moves on.
        idle_timeout: Seconds an extra worker (beyond ``min_workers``) waits for work before
            it retires.
        inline_budget: Seconds a message may take (recent average) for its actor to still
            run on an adopting caller thread; slower actors go to the pool.
        stall_after: Seconds the oldest queued actor may wait while every worker is busy
            before the pool starts another worker.

    Raises:
        ValueError: A bound is not positive or ``min_workers > max_workers``.
    """

    def __init__(
        self,
        name: str = "pooled-actors",
        *,
        min_workers: int = 2,
        max_workers: int = 256,
        throughput: int = 64,
        idle_timeout: float = 30.0,
        inline_budget: float = 0.001,
        stall_after: float = 0.02,
    ) -> None:
        if min_workers < 1:
            raise ValueError(f"min_workers must be >= 1, got {min_workers!r}")
        if max_workers < min_workers:
            raise ValueError(
                f"max_workers ({max_workers!r}) must be >= min_workers ({min_workers!r})")
        if throughput < 1:
            raise ValueError(f"throughput must be >= 1, got {throughput!r}")
        if inline_budget < 0:
            raise ValueError(f"inline_budget must be >= 0 seconds, got {inline_budget!r}")
        # Both are wait timeouts: at 0 or below the watchdog (stall_after) or an idle
        # worker (idle_timeout) would spin on its condition instead of sleeping.
        if not stall_after > 0:
            raise ValueError(f"stall_after must be > 0 seconds, got {stall_after!r}")
        if not idle_timeout > 0:
            raise ValueError(f"idle_timeout must be > 0 seconds, got {idle_timeout!r}")
        self.name = name
        self.min_workers = min_workers
        self.max_workers = max_workers
        self.throughput = throughput
        self.idle_timeout = idle_timeout
        self.inline_budget_ns = int(inline_budget * 1e9)
        lock = threading.Lock()
        self._cond = threading.Condition(lock)
        self._watch_cond = threading.Condition(lock)
        self._queue: collections.deque[_Mailbox] = collections.deque()
        self._workers = 0
        self._idle = 0
        self._seq = 0
        self._local = threading.local()
        self.stall_after = stall_after
        self._slow_cpus: frozenset[int] | None = None
        self._watching = True
        threading.Thread(target=self._watch, name=f"{name}-watchdog", daemon=True).start()
        self.peak_workers = 0
        """The most workers that ran at once."""

    # ---------------------------------------------------------------- scheduling

    def _submit(self, box: _Mailbox, *, local_ok: bool) -> None:
        # an inline actor whose recent messages were quick (not box.slow(), inlined: once per
        # message; the dispatcher is this one) runs on this (adopting) thread
        if local_ok and box.inline and box._cost_ns <= self.inline_budget_ns:
            ready = getattr(self._local, "ready", None)
            if ready is not None:
                ready.append(box)
                return
        with self._cond:
            box.queued_at = time.monotonic()
            self._queue.append(box)
            if self._idle > 0:
                self._cond.notify()
                return
            if self._workers < self.min_workers:
                self._spawn_locked()
            elif not self._watching:
                self._watching = True
                self._watch_cond.notify()

    def _spawn_locked(self) -> None:
        self._workers += 1
        self._seq += 1
        self.peak_workers = max(self.peak_workers, self._workers)
        threading.Thread(target=self._work, name=f"{self.name}-{self._seq}",
                         daemon=True).start()

    def set_slow_actor_cpus(self, cpus: set[int] | None) -> None:
        """Run the slow actors' turns on these CPUs (Linux ``sched_setaffinity``).

        A process that keeps its Python threads on one CPU (see ``caxton --gil-cpu``) wants
        the hand-offs between quick actors to stay on that CPU, but not a slow actor's long
        call into native code (a WASM guest's run, which releases the GIL): that must not
        take the CPU of the threads serving everyone else. A worker moves to ``cpus`` while
        it runs an actor whose messages average more than ``inline_budget`` (the actors that
        are no longer run inline) and back to the CPUs it started with otherwise.

        Args:
            cpus: The CPUs, or ``None`` to leave every worker where it is.
        """
        self._slow_cpus = frozenset(cpus) if cpus else None

    def _work(self) -> None:
        cond, queue = self._cond, self._queue
        home: frozenset[int] | None = None  # this worker's own CPUs, once it needs them
        wide = False
        while True:
            with cond:
                while not queue:
                    self._idle += 1
                    woke = cond.wait(self.idle_timeout)
                    self._idle -= 1
                    if not woke and not queue and self._workers > self.min_workers:
                        self._workers -= 1
                        return
                box = queue.popleft()
                if queue and not self._watching:
                    # Others wait behind ``box``, which may block this worker. _submit did
                    # not wake the watchdog for them if it counted this worker as idle
                    # (it counts as idle from its notify until it wakes), so wake it now.
                    self._watching = True
                    self._watch_cond.notify()
            slow_cpus = self._slow_cpus
            if slow_cpus is not None or wide:
                slow = slow_cpus is not None and box.slow()
                if slow != wide:
                    try:
                        if home is None:
                            home = frozenset(os.sched_getaffinity(0))
                        os.sched_setaffinity(0, slow_cpus if slow and slow_cpus else home)
                        wide = slow
                    except (AttributeError, OSError) as exc:  # a platform without it
                        _log.warning("dispatcher.slow_actor_cpus_not_applied",
                                     dispatcher=self.name, error=str(exc))
                        self._slow_cpus = None
            box.run(from_pool=True)

    def _watch(self) -> None:
        # Starvation watchdog: when the oldest queued actor has waited ``stall_after`` with
        # every worker busy (blocked, most likely), start one more worker (at most one per
        # ``stall_after``). It sleeps while the queue is empty or a worker is idle.
        cond, queue = self._cond, self._queue
        stall = self.stall_after
        with cond:
            while True:
                if not queue or self._idle > 0:
                    self._watching = False
                    self._watch_cond.wait()
                    continue
                self._watch_cond.wait(stall)
                if queue and self._idle == 0 and self._workers < self.max_workers and \
                        time.monotonic() - queue[0].queued_at >= stall:
                    self._spawn_locked()
                    _log.debug("dispatcher.grew", dispatcher=self.name, workers=self._workers)

    # ---------------------------------------------------------------- caller threads

    def adopt(self) -> None:
        """Let the calling thread run quick (``inline``) actors it makes runnable.

        After this, actors of an ``inline`` class that become runnable on this thread wait in
        its local run list until it calls :meth:`run_pending`, which it must do before it
        blocks (a socket loop calls it after each request).
        """
        if getattr(self._local, "ready", None) is None:
            self._local.ready = collections.deque()

    def release(self) -> None:
        """Undo :meth:`adopt`: hand anything still in the local run list to the pool."""
        ready = getattr(self._local, "ready", None)
        self._local.ready = None
        while ready:
            self._submit(ready.popleft(), local_ok=False)

    def run_pending(self) -> int:
        """Run the actors made runnable on this (adopting) thread, until none is left.

        Returns:
            How many actor slices ran.
        """
        ready = getattr(self._local, "ready", None)
        ran = 0
        while ready:
            ready.popleft().run(from_pool=False)
            ran += 1
        return ran

    @property
    def workers(self) -> int:
        """Worker threads alive now."""
        return self._workers

    def __repr__(self) -> str:
        return (f"Dispatcher({self.name!r}, workers={self._workers}, idle={self._idle}, "
                f"queued={len(self._queue)})")


_default: Dispatcher | None = None
_default_lock = threading.Lock()


def default_dispatcher() -> Dispatcher:
    """Return the process-wide dispatcher (created on first use).

    Returns:
        The dispatcher that :class:`PooledActor` classes use unless they name another.
    """
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = Dispatcher("pooled-actors")
    return _default


class _Mailbox:
    """A pooled actor's inbox and its run state (pykka's ``ActorInbox`` protocol)."""

    __slots__ = ("_actor", "_cost_ns", "_dispatcher", "_lock", "_q", "_scheduled",
                 "_started", "finished", "inline", "queued_at")

    def __init__(self) -> None:
        self._q: collections.deque[Any] = collections.deque()
        self._lock = threading.Lock()
        self._scheduled = True  # until bound and started: puts only queue
        self._started = False
        self.finished = False
        self.inline = False
        self._cost_ns = 0
        self.queued_at = 0.0
        self._actor: PooledActor | None = None
        self._dispatcher: Dispatcher | None = None

    # -- pykka's ActorInbox protocol --------------------------------------------------

    def put(self, envelope: Any, /) -> None:
        with self._lock:
            if self.finished:
                dead = True
            else:
                dead = False
                self._q.append(envelope)
                if self._scheduled:
                    return
                self._scheduled = True
        if dead:
            _refuse(envelope, self._actor)
            return
        dispatcher = self._dispatcher
        assert dispatcher is not None
        dispatcher._submit(self, local_ok=True)

    def get(self) -> Any:
        return self._q.popleft()  # only the teardown calls it, after checking empty()

    def empty(self) -> bool:
        return not self._q

    # -- run state ----------------------------------------------------------------------

    def slow(self) -> bool:
        """Whether its messages average more than the dispatcher's ``inline_budget``."""
        dispatcher = self._dispatcher
        return dispatcher is not None and self._cost_ns > dispatcher.inline_budget_ns

    def start(self, actor: PooledActor, dispatcher: Dispatcher) -> None:
        self._actor = actor
        self._dispatcher = dispatcher
        self.inline = bool(actor.inline)
        dispatcher._submit(self, local_ok=False)  # on_start always runs on a worker

    def run(self, *, from_pool: bool) -> None:
        actor = self._actor
        dispatcher = self._dispatcher
        assert actor is not None and dispatcher is not None
        q = self._q
        stopped = actor.actor_stopped
        actor._pool_slice_begin()
        handled = 0
        if not self._started:
            self._started = True
            actor._actor_loop_setup()
        t0 = time.perf_counter_ns()  # after on_start: the cost estimate is per message
        budget = dispatcher.throughput
        # On a caller's thread a turn also ends after ``inline_budget`` of work, so a guest
        # that turned slow costs the caller one message, not a whole turn of them.
        until = 0 if from_pool else t0 + dispatcher.inline_budget_ns
        is_stopped = stopped.is_set
        # ``q`` before popleft(): only this thread pops, and an IndexError raised and caught
        # at the end of every turn cost more than the check
        while q and handled < budget and not is_stopped():
            actor._pool_handle(q.popleft())
            handled += 1
            if until and time.perf_counter_ns() > until:
                break
        if is_stopped():
            with self._lock:
                self.finished = True
            actor._actor_loop_teardown()
            actor._pool_finished()
            actor._pool_slice_end()
            return
        actor._pool_slice_end()
        if handled:
            # A moving average, so one pause (a GC, a preempted thread) does not demote an
            # actor, while a guest that is slow every time is demoted after a message or two.
            cost = (time.perf_counter_ns() - t0) // handled
            self._cost_ns += (cost - self._cost_ns) >> _EWMA_SHIFT
        with self._lock:
            if not q:
                self._scheduled = False
                return
        # More arrived (or the budget ran out): give the others a turn first.
        dispatcher._submit(self, local_ok=not from_pool)


def _refuse(envelope: Any, actor: PooledActor | None) -> None:
    reply_to = getattr(envelope, "reply_to", None)
    if reply_to is None:
        return
    if isinstance(envelope.message, pykka_messages._ActorStop):
        reply_to.set(None)
        return
    exc = pykka.ActorDeadError(f"{actor.actor_ref if actor else 'actor'} is dead")
    reply_to.set_exception(exc_info=(pykka.ActorDeadError, exc, None))


class PooledActor(pykka.Actor):
    """A pykka actor run by a :class:`Dispatcher` instead of a thread of its own.

    Subclass it exactly like :class:`pykka.ThreadingActor` (and put
    :class:`~supervisors.Supervised` first to supervise it). Class attributes:

    Attributes:
        dispatcher: The dispatcher to run on; ``None`` = :func:`default_dispatcher`.
        inline: Whether its messages may run on an adopting caller thread (set it only for
            actors whose messages are quick and never block, e.g. a sandboxed guest call
            with a deadline).
    """

    dispatcher: ClassVar[Dispatcher | None] = None
    inline: ClassVar[bool] = False

    @staticmethod
    def _create_actor_inbox() -> _Mailbox:
        return _Mailbox()

    @staticmethod
    def _create_future() -> pykka.Future[Any]:
        return pykka.ThreadingFuture()

    def _start_actor_loop(self) -> None:
        inbox = self.actor_inbox
        assert isinstance(inbox, _Mailbox)
        inbox.start(self, self.dispatcher or default_dispatcher())

    # -- hooks the mailbox calls (on whichever thread runs this actor now) ---------------

    def _pool_slice_begin(self) -> None:
        """Called as a thread starts running this actor (before ``on_start`` or messages)."""

    def _pool_finished(self) -> None:
        """Called once, after the actor stopped and its mailbox was drained."""

    def _pool_slice_end(self) -> None:
        """Called as the running thread leaves this actor (it may run elsewhere next)."""

    def _pool_handle(self, envelope: Any) -> None:
        # The body of pykka's Actor._actor_loop_running, for one envelope.
        try:
            response = self._handle_receive(envelope.message)
            if envelope.reply_to is not None:
                envelope.reply_to.set(response)
        except Exception:
            if envelope.reply_to is not None:
                envelope.reply_to.set_exception()
            else:
                self._handle_failure(*sys.exc_info())
                try:
                    self.on_failure(*sys.exc_info())
                except Exception:
                    self._handle_failure(*sys.exc_info())
        except BaseException:
            _log.debug("pooled_actor.base_exception", actor=str(self),
                       error=repr(sys.exc_info()[1]))
            self._stop()
            pykka.ActorRegistry.stop_all(block=False)


__all__ = ["Dispatcher", "PooledActor", "default_dispatcher"]
