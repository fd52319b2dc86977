"""The supervisor actor: starts children, watches their exits, restarts them.

It wires the pure parts (:class:`~supervisors.Backoff`,
:class:`~supervisors.CircuitBreaker`, :class:`~supervisors.intensity.RestartIntensity`)
to a pykka mailbox and the shared timer thread. It never sleeps: a restart under
backoff is a timer that later sends the supervisor a message, so the mailbox keeps
answering ``which_children()`` and ``stop()`` while the restart is pending.
"""

from __future__ import annotations

import functools
import itertools
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple, Self

import pykka

from supervisors import events as ev
from supervisors.backoff import Backoff
from supervisors.breaker import BreakerState, CircuitBreaker
from supervisors.child import ChildExit, ExitReason, Supervised, attach, capture_started
from supervisors.dispatch import PooledActor
from supervisors.errors import (
    ChildAlreadyExistsError,
    ChildNotFoundError,
    ChildRunningError,
    ChildStartError,
    RestartIntensityExceeded,
)
from supervisors.events import EventEmitter, Listener
from supervisors.intensity import RestartIntensity
from supervisors.spec import AutoShutdown, ChildSpec, Restart, Strategy
from supervisors.timer import TimerService, shared_timer

__all__ = ["ChildCounts", "ChildInfo", "ChildState", "Supervisor"]


class ChildState(StrEnum):
    """Where a child stands, as :meth:`Supervisor.which_children` reports it."""

    RUNNING = "running"
    """An instance is running; ``ref`` reaches it."""
    RESTARTING = "restarting"
    """It exited and a restart is pending (under backoff)."""
    CIRCUIT_OPEN = "circuit_open"
    """It exited and its breaker is open: no restart until the breaker's trial."""
    TERMINATED = "terminated"
    """Not running and not going to be restarted (stopped, or exited for good)."""


@dataclass(frozen=True, slots=True)
class ChildInfo:
    """One record of :meth:`Supervisor.which_children`.

    Attributes:
        id: The child's id.
        state: Where it stands.
        ref: Its current :class:`pykka.ActorRef` while running, else None. It
            changes on every restart.
        restarts: How many times the supervisor restarted it.
        breaker: Its breaker state, None without a breaker.
        last_exit: Why its last instance ended, None if none has.
        restart_in: Seconds until the pending restart (RESTARTING) or breaker trial
            (CIRCUIT_OPEN), else None.
        restart: Its restart type.
        significant: Whether its exit can shut the supervisor down.
        supervisor: Whether the child is itself a supervisor.
    """

    id: str
    state: ChildState
    ref: pykka.ActorRef[Any] | None
    restarts: int
    breaker: BreakerState | None
    last_exit: ExitReason | None
    restart_in: float | None
    restart: Restart
    significant: bool
    supervisor: bool


@dataclass(frozen=True, slots=True)
class ChildCounts:
    """The counts of :meth:`Supervisor.count_children` (OTP's count_children)."""

    specs: int
    """Children the supervisor knows, running or not."""
    active: int
    """Children with a running instance."""
    supervisors: int
    """Children that are supervisors."""
    workers: int
    """Children that are not supervisors."""


class _RestartDue(NamedTuple):
    token: int


class _TrialDue(NamedTuple):
    child_id: str
    token: int


class _HealthyDue(NamedTuple):
    child_id: str
    incarnation: int


class _Init(NamedTuple):
    pass


_ABANDONED_TYPE = "Abandoned"


class _Child:
    __slots__ = (
        "attempt",
        "breaker",
        "due",
        "incarnation",
        "is_supervisor",
        "last_exit",
        "pending",
        "ref",
        "restarts",
        "spec",
        "started_at",
        "state",
    )

    def __init__(self, spec: ChildSpec, breaker: CircuitBreaker | None) -> None:
        self.spec = spec
        self.breaker = breaker
        self.state = ChildState.TERMINATED
        self.ref: pykka.ActorRef[Any] | None = None
        self.incarnation: int | None = None
        self.restarts = 0
        self.attempt = 0
        self.started_at = 0.0
        self.last_exit: ExitReason | None = None
        self.pending: int | None = None
        self.due: float | None = None
        self.is_supervisor = False


def _tell_quietly(ref: pykka.ActorRef[Any], message: Any) -> None:
    try:
        ref.tell(message)
    except pykka.ActorDeadError:
        pass


_DEFAULT_BACKOFF = Backoff()
_DEFAULT_BREAKER = CircuitBreaker()
_names = itertools.count(1)


class Supervisor(Supervised, PooledActor):
    """An OTP-style supervisor with backoff and a circuit breaker per child.

    Start it with :meth:`start`; drive it through its proxy, e.g.
    ``ref.proxy().which_children().get()``. It is itself :class:`Supervised`, so
    it can be the child of another supervisor (a nested tree). ``ref.stop()``
    stops its children in reverse start order, each within its spec's
    ``shutdown``; a child that does not stop in time is abandoned.

    Use :meth:`start` rather than constructing it; the constructor takes the same
    arguments.
    """

    def __init__(
        self,
        children: Sequence[ChildSpec] = (),
        *,
        strategy: Strategy = Strategy.ONE_FOR_ONE,
        max_restarts: int = 3,
        within: float = 5.0,
        backoff: Backoff = _DEFAULT_BACKOFF,
        breaker: CircuitBreaker | None = _DEFAULT_BREAKER,
        healthy_after: float = 5.0,
        auto_shutdown: AutoShutdown = AutoShutdown.NEVER,
        name: str | None = None,
        listeners: Sequence[Listener] = (),
        timer: TimerService | None = None,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__()
        if healthy_after < 0:
            raise ValueError(f"healthy_after must be >= 0 seconds, got {healthy_after!r}")
        self.name = name or f"supervisor-{next(_names)}"
        self.strategy = Strategy(strategy)
        self.auto_shutdown = AutoShutdown(auto_shutdown)
        self._backoff = backoff
        self._breaker = breaker
        self._healthy_after = healthy_after
        self._intensity = RestartIntensity(max_restarts, within, clock=clock)
        self._timer = timer or shared_timer()
        self._clock = clock
        self._rng = rng
        self._events = EventEmitter(self.name, list(listeners))
        self._children: dict[str, _Child] = {}
        self._pending: dict[int, list[str]] = {}
        self._tokens = itertools.count(1)
        self._incarnations = itertools.count(1)
        self._closed = False
        self._initial: list[ChildSpec] = []
        for spec in children:
            self._check_spec(spec)
            if any(s.id == spec.id for s in self._initial):
                raise ChildAlreadyExistsError(self.name, spec.id)
            self._initial.append(spec)

    @classmethod
    def start(
        cls,
        children: Sequence[ChildSpec] = (),
        *,
        strategy: Strategy = Strategy.ONE_FOR_ONE,
        max_restarts: int = 3,
        within: float = 5.0,
        backoff: Backoff = _DEFAULT_BACKOFF,
        breaker: CircuitBreaker | None = _DEFAULT_BREAKER,
        healthy_after: float = 5.0,
        auto_shutdown: AutoShutdown = AutoShutdown.NEVER,
        name: str | None = None,
        listeners: Sequence[Listener] = (),
        timer: TimerService | None = None,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> pykka.ActorRef[Self]:
        """Start a supervisor and its children, in order; return once all run.

        Args:
            children: Specs of the children to start, in start order.
            strategy: Which siblings restart with a failed child.
            max_restarts: Restarts tolerated within ``within`` seconds; one more
                makes the supervisor stop its children and fail with
                :class:`RestartIntensityExceeded` (escalation to its parent).
            within: The intensity window in seconds.
            backoff: Delay schedule of consecutive restarts of one child.
            breaker: Template of each child's circuit breaker (each child gets a
                :meth:`~CircuitBreaker.fresh` copy); None disables breaking.
            healthy_after: Seconds a child must run without failing for its breaker
                to count a success (closing it from HALF_OPEN, or clearing its
                failure count when CLOSED).
            auto_shutdown: Whether the exit of significant children stops the
                supervisor (OTP 24's auto_shutdown).
            name: Name used in events; defaults to ``supervisor-N``.
            listeners: ``fn(event, data)`` callables called on the supervisor's
                thread for every event (see :mod:`supervisors.events`).
            timer: Timer service for delayed restarts; defaults to the process-wide
                :func:`~supervisors.timer.shared_timer`.
            clock: Monotonic clock for intensity, breakers and run times.
            rng: Random source of backoff jitter (seed it for determinism).

        Returns:
            The supervisor's :class:`pykka.ActorRef`.

        Raises:
            ChildStartError: if a child failed to start; the children started
                before it are stopped again (reverse order) and so is the
                supervisor.
            ChildAlreadyExistsError: if two specs share an id.
            ValueError: if a spec is significant while ``auto_shutdown`` is NEVER.
        """
        ref = super().start(
            children,
            strategy=strategy,
            max_restarts=max_restarts,
            within=within,
            backoff=backoff,
            breaker=breaker,
            healthy_after=healthy_after,
            auto_shutdown=auto_shutdown,
            name=name,
            listeners=listeners,
            timer=timer,
            clock=clock,
            rng=rng,
        )
        try:
            ref.ask(_Init())
        except BaseException:
            ref.stop(block=True)
            raise
        return ref

    # -- public operations (call them through the proxy) ----------------------------

    def start_child(self, spec: ChildSpec) -> pykka.ActorRef[Any]:
        """Add a child after the others and start it.

        Args:
            spec: The new child's spec.

        Returns:
            The child's ref.

        Raises:
            ChildAlreadyExistsError: if a child with that id exists.
            ChildStartError: if it failed to start (it is then not added).
            ValueError: if it is significant while ``auto_shutdown`` is NEVER.
        """
        self._check_spec(spec)
        if spec.id in self._children:
            raise ChildAlreadyExistsError(self.name, spec.id)
        child = self._add(spec)
        failure = self._start(child)
        if failure is not None:
            del self._children[spec.id]
            raise ChildStartError(self.name, spec.id, str(failure)) from failure.exception
        assert child.ref is not None
        return child.ref

    def terminate_child(self, child_id: str) -> None:
        """Stop a child and keep its spec (a temporary child's spec is dropped).

        The child gets its spec's ``shutdown`` seconds; then it is abandoned. A
        pending restart or breaker trial is cancelled.

        Args:
            child_id: The child's id.

        Raises:
            ChildNotFoundError: if there is no such child.
        """
        child = self._get(child_id)
        if child.state is ChildState.RUNNING:
            self._terminate(child)
        self._park(child)
        if child.spec.restart is Restart.TEMPORARY:
            del self._children[child_id]

    def restart_child(self, child_id: str) -> pykka.ActorRef[Any]:
        """Start a child that is not running now, overriding backoff and breaker.

        The breaker is reset to CLOSED and the backoff starts over. This manual
        restart does not count towards the restart intensity.

        Args:
            child_id: The child's id.

        Returns:
            The new instance's ref.

        Raises:
            ChildNotFoundError: if there is no such child.
            ChildRunningError: if it is running.
            ChildStartError: if it failed to start (it is then terminated).
        """
        child = self._get(child_id)
        if child.state is ChildState.RUNNING:
            raise ChildRunningError(self.name, child_id, "restart")
        self._park(child)
        child.attempt = 0
        if child.breaker is not None and child.breaker.state is not BreakerState.CLOSED:
            previous = child.breaker.state
            child.breaker.reset()
            self._breaker_changed(child, previous)
        failure = self._start(child)
        if failure is not None:
            child.last_exit = failure
            raise ChildStartError(self.name, child_id, str(failure)) from failure.exception
        child.restarts += 1
        assert child.ref is not None
        return child.ref

    def delete_child(self, child_id: str) -> None:
        """Forget a child that is not running (a pending restart is cancelled).

        Args:
            child_id: The child's id.

        Raises:
            ChildNotFoundError: if there is no such child.
            ChildRunningError: if it is running.
        """
        child = self._get(child_id)
        if child.state is ChildState.RUNNING:
            raise ChildRunningError(self.name, child_id, "delete")
        self._park(child)
        del self._children[child_id]
        self._events.emit(ev.CHILD_DELETED, "info", child_id=child_id)

    def which_children(self) -> list[ChildInfo]:
        """Describe every child, in start order.

        Returns:
            One :class:`ChildInfo` per child.
        """
        now = self._clock()
        infos = []
        for child in self._children.values():
            restart_in: float | None = None
            if child.state is ChildState.RESTARTING and child.due is not None:
                restart_in = max(0.0, child.due - now)
            elif child.state is ChildState.CIRCUIT_OPEN and child.breaker is not None:
                restart_in = child.breaker.retry_in() or 0.0
            infos.append(
                ChildInfo(
                    id=child.spec.id,
                    state=child.state,
                    ref=child.ref,
                    restarts=child.restarts,
                    breaker=None if child.breaker is None else child.breaker.state,
                    last_exit=child.last_exit,
                    restart_in=restart_in,
                    restart=child.spec.restart,
                    significant=child.spec.significant,
                    supervisor=child.is_supervisor,
                )
            )
        return infos

    def count_children(self) -> ChildCounts:
        """Count the children (OTP's count_children).

        Returns:
            Specs, active instances, supervisors and workers.
        """
        kids = self._children.values()
        supervisors = sum(1 for c in kids if c.is_supervisor)
        return ChildCounts(
            specs=len(self._children),
            active=sum(1 for c in kids if c.state is ChildState.RUNNING),
            supervisors=supervisors,
            workers=len(self._children) - supervisors,
        )

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(event, data)`` for every later event.

        Listeners run on the supervisor's thread and must be fast; one that
        raises is logged (``listener_failed``) and never harms the supervisor.

        Args:
            listener: The callable.

        Raises:
            TypeError: if it is not callable.
        """
        self._events.add(listener)

    def remove_listener(self, listener: Listener) -> bool:
        """Stop calling ``listener``.

        Args:
            listener: A listener added before.

        Returns:
            True if it was registered.
        """
        return self._events.remove(listener)

    # -- pykka hooks ------------------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        """Handle the library's internal messages (exit reports and timers).

        Args:
            message: An internal message.

        Returns:
            None.
        """
        if isinstance(message, ChildExit):
            self._on_exit(message)
        elif isinstance(message, _RestartDue):
            self._on_restart_due(message.token)
        elif isinstance(message, _TrialDue):
            self._on_trial_due(message)
        elif isinstance(message, _HealthyDue):
            self._on_healthy_due(message)
        elif isinstance(message, _Init):
            self._init_children()
        else:
            return super().on_receive(message)
        return None

    def on_stop(self) -> None:
        """Stop every child in reverse start order (each within its ``shutdown``)."""
        self._shutdown_children()
        self._events.emit(ev.SUPERVISOR_STOPPED, "info", reason="normal")

    def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        """Stop every child in reverse start order when the supervisor itself fails.

        Args:
            exception_type: As in :meth:`pykka.Actor.on_failure`.
            exception_value: The exception.
            traceback: Its traceback.
        """
        self._shutdown_children()
        reason = ExitReason.from_exception(exception_value) if exception_value else None
        self._events.emit(ev.SUPERVISOR_STOPPED, "error", reason=str(reason))

    # -- starting and stopping ------------------------------------------------------------

    def _check_spec(self, spec: ChildSpec) -> None:
        if not isinstance(spec, ChildSpec):
            raise TypeError(f"supervisor {self.name!r}: expected a ChildSpec, got {spec!r}")
        if spec.significant and self.auto_shutdown is AutoShutdown.NEVER:
            raise ValueError(
                f"supervisor {self.name!r}: child {spec.id!r} is significant but "
                "auto_shutdown is NEVER; pass auto_shutdown=AutoShutdown.ANY_SIGNIFICANT "
                "or ALL_SIGNIFICANT, or make the child not significant"
            )

    def _add(self, spec: ChildSpec) -> _Child:
        breaker = None if self._breaker is None else self._breaker.fresh(self._clock)
        child = _Child(spec, breaker)
        self._children[spec.id] = child
        return child

    def _init_children(self) -> None:
        for spec in self._initial:
            child = self._add(spec)
            failure = self._start(child)
            if failure is not None:
                self._shutdown_children()
                raise ChildStartError(self.name, spec.id, str(failure)) from failure.exception
        # Routine, like a child's first start: a node starts one supervisor per agent it
        # deploys, and at info each was a log line (hundreds a second while deploying).
        self._events.emit(
            ev.SUPERVISOR_STARTED, "debug", strategy=self.strategy.value, children=len(self._initial)
        )
        self._initial = []

    def _start(self, child: _Child) -> ExitReason | None:
        """Start one instance; return None on success, else the failure."""
        spec = child.spec
        incarnation = next(self._incarnations)
        ref: Any = None
        try:
            with capture_started() as started:
                ref = spec.start()
            if not isinstance(ref, pykka.ActorRef):
                raise TypeError(
                    f"start() of child {spec.id!r} returned {type(ref).__name__}, "
                    "expected a pykka.ActorRef"
                )
            early = attach(ref, self.actor_ref, spec.id, incarnation, started)
        except Exception as exc:
            if isinstance(ref, pykka.ActorRef):
                ref.stop(block=False)
            failure = ExitReason.from_exception(exc)
            self._events.emit(
                ev.CHILD_START_FAILED,
                "error",
                child_id=spec.id,
                reason=str(failure),
                exc_type=failure.exc_type,
            )
            return failure
        child.ref = ref
        child.incarnation = incarnation
        child.state = ChildState.RUNNING
        child.started_at = self._clock()
        child.is_supervisor = issubclass(ref.actor_class, Supervisor)
        self._events.emit(
            ev.CHILD_STARTED,
            "debug" if child.restarts == 0 else "info",
            child_id=spec.id,
            ref=ref,
            restarts=child.restarts,
        )
        if early is not None:
            # It ended before it was linked; report it as if it had told us.
            self.actor_ref.tell(ChildExit(spec.id, incarnation, early))
        elif child.breaker is not None and child.breaker.state is BreakerState.HALF_OPEN:
            self._arm_healthy(child)
        return None

    def _terminate(self, child: _Child) -> None:
        """Stop a running child within its shutdown time, or abandon it."""
        ref = child.ref
        child.ref = None
        child.incarnation = None  # its own exit report is now stale
        child.state = ChildState.TERMINATED
        if ref is None:
            return
        try:
            ref.stop(block=True, timeout=child.spec.shutdown)
        except pykka.Timeout:
            child.last_exit = ExitReason(
                normal=False,
                exc_type=_ABANDONED_TYPE,
                message=f"did not stop within {child.spec.shutdown:g} s",
            )
            self._events.emit(
                ev.CHILD_ABANDONED,
                "error",
                child_id=child.spec.id,
                timeout=child.spec.shutdown,
                reason=str(child.last_exit),
            )
            return
        child.last_exit = ExitReason.shutdown()
        self._events.emit(ev.CHILD_TERMINATED, "info", child_id=child.spec.id, reason="shutdown")

    def _park(self, child: _Child) -> None:
        """Make a non-running child TERMINATED, cancelling what was pending for it."""
        child.pending = None
        child.due = None
        if child.state is not ChildState.RUNNING:
            child.state = ChildState.TERMINATED

    def _shutdown_children(self) -> None:
        self._closed = True
        self._pending.clear()
        for child in reversed(list(self._children.values())):
            if child.state is ChildState.RUNNING:
                self._terminate(child)
            self._park(child)

    # -- exits, restarts, breakers -------------------------------------------------------

    def _on_exit(self, report: ChildExit) -> None:
        child = self._children.get(report.child_id)
        if child is None or child.incarnation != report.incarnation or self._closed:
            return  # stale: an instance we already stopped, abandoned or forgot
        reason = report.reason
        child.ref = None
        child.incarnation = None
        child.last_exit = reason
        ran_for = self._clock() - child.started_at
        self._events.emit(
            ev.CHILD_EXITED,
            "info" if reason.normal else "warning",
            child_id=child.spec.id,
            reason=str(reason),
            normal=reason.normal,
            exc_type=reason.exc_type,
            restarts=child.restarts,
        )
        self._after_exit(child, reason, ran_for)

    def _after_exit(self, child: _Child, reason: ExitReason, ran_for: float) -> None:
        breaker = child.breaker
        if breaker is not None:
            previous = breaker.state
            if ran_for >= self._healthy_after:
                breaker.record_success()
            if not reason.normal:
                breaker.record_failure()
            self._breaker_changed(child, previous)
        if self._backoff.resets(ran_for):
            child.attempt = 0

        restart = child.spec.restart
        if restart is Restart.TEMPORARY or (restart is Restart.TRANSIENT and reason.normal):
            child.state = ChildState.TERMINATED
            if restart is Restart.TEMPORARY:
                del self._children[child.spec.id]
            if child.spec.significant:
                self._maybe_auto_shutdown(child)
            return

        if breaker is not None and not breaker.allow():
            self._open_circuit(child)
            return
        self._schedule_restart(child)

    def _group(self, child: _Child) -> list[_Child]:
        """The children restarted together with ``child``, in start order."""
        if self.strategy is Strategy.ONE_FOR_ONE:
            return [child]
        kids = list(self._children.values())
        if self.strategy is Strategy.REST_FOR_ONE:
            kids = kids[kids.index(child) :]
        return [
            c for c in kids if c is child or c.state in (ChildState.RUNNING, ChildState.RESTARTING)
        ]

    def _schedule_restart(self, child: _Child, delay: float | None = None) -> None:
        if delay is None:
            child.attempt += 1
            delay = self._backoff.delay(child.attempt, self._rng)
        group = self._group(child)
        token = next(self._tokens)
        due = self._clock() + delay
        members: list[str] = []
        for sibling in reversed(group):
            if sibling is not child and sibling.state is ChildState.RUNNING:
                self._terminate(sibling)
                if sibling.spec.restart is Restart.TEMPORARY:
                    # OTP: a temporary child stopped for a sibling is never restarted.
                    del self._children[sibling.spec.id]
                    continue
            sibling.state = ChildState.RESTARTING
            sibling.pending = token
            sibling.due = due
            members.append(sibling.spec.id)
        members.reverse()
        self._pending[token] = members
        self._events.emit(
            ev.CHILD_RESTART_SCHEDULED,
            "info",
            child_id=child.spec.id,
            delay=delay,
            attempt=child.attempt,
            restarts=child.restarts,
        )
        message = _RestartDue(token)
        if delay <= 0:
            self.actor_ref.tell(message)
        else:
            self._timer.call_later(delay, functools.partial(_tell_quietly, self.actor_ref, message))

    def _on_restart_due(self, token: int) -> None:
        ids = self._pending.pop(token, None)
        if ids is None or self._closed:
            return
        members = [
            c for i in ids if (c := self._children.get(i)) is not None and c.pending == token
        ]
        if not members:
            return
        if not self._intensity.record():
            self._escalate()
            return
        for member in members:
            member.pending = None
            member.due = None
        for member in members:
            if member.pending is not None or member.state is not ChildState.RESTARTING:
                continue  # folded into a newer restart, or terminated meanwhile
            member.restarts += 1
            failure = self._start(member)
            if failure is not None:
                member.last_exit = failure
                self._after_exit(member, failure, 0.0)
            if self._closed:
                return

    def _open_circuit(self, child: _Child) -> None:
        assert child.breaker is not None
        child.state = ChildState.CIRCUIT_OPEN
        token = next(self._tokens)
        child.pending = token
        retry_in = child.breaker.retry_in() or 0.0
        child.due = self._clock() + retry_in
        self._timer.call_later(
            retry_in,
            functools.partial(_tell_quietly, self.actor_ref, _TrialDue(child.spec.id, token)),
        )

    def _on_trial_due(self, message: _TrialDue) -> None:
        child = self._children.get(message.child_id)
        if child is None or child.breaker is None or child.pending != message.token or self._closed:
            return
        if child.state is not ChildState.CIRCUIT_OPEN:
            return
        self._breaker_changed(child, BreakerState.OPEN)
        if not child.breaker.allow():
            self._open_circuit(child)  # woke early (clock skew): wait again
            return
        self._schedule_restart(child, delay=0.0)

    def _arm_healthy(self, child: _Child) -> None:
        assert child.incarnation is not None
        message = _HealthyDue(child.spec.id, child.incarnation)
        self._timer.call_later(
            self._healthy_after, functools.partial(_tell_quietly, self.actor_ref, message)
        )

    def _on_healthy_due(self, message: _HealthyDue) -> None:
        child = self._children.get(message.child_id)
        if child is None or child.breaker is None or child.incarnation != message.incarnation:
            return
        previous = child.breaker.state
        state = child.breaker.record_success()
        self._breaker_changed(child, previous)
        if state is BreakerState.HALF_OPEN:
            self._arm_healthy(child)
        elif state is BreakerState.CLOSED:
            child.attempt = 0

    def _breaker_changed(self, child: _Child, previous: BreakerState) -> None:
        assert child.breaker is not None
        state = child.breaker.state
        if state is not previous:
            self._events.emit(
                ev.BREAKER_STATE_CHANGED,
                "warning",
                child_id=child.spec.id,
                state=state.value,
                previous=previous.value,
            )

    def _maybe_auto_shutdown(self, child: _Child) -> None:
        if self.auto_shutdown is AutoShutdown.NEVER:
            return
        if self.auto_shutdown is AutoShutdown.ALL_SIGNIFICANT and any(
            c.spec.significant and c.state is not ChildState.TERMINATED
            for c in self._children.values()
        ):
            return
        self._events.emit(ev.SUPERVISOR_AUTO_SHUTDOWN, "info", child_id=child.spec.id)
        self._shutdown_children()
        self.stop()

    def _escalate(self) -> None:
        error = RestartIntensityExceeded(
            self.name, self._intensity.max_restarts, self._intensity.within
        )
        self._events.emit(
            ev.SUPERVISOR_ESCALATED,
            "error",
            reason=str(error),
            max_restarts=self._intensity.max_restarts,
            within=self._intensity.within,
        )
        self._shutdown_children()
        self.fail(error)

    def _get(self, child_id: str) -> _Child:
        child = self._children.get(child_id)
        if child is None:
            raise ChildNotFoundError(self.name, child_id)
        return child
