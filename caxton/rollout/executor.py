"""The thin driver of one rollout: one thread applying a plan's actions to a router.

The executor starts the new version through the caller's factory (so the node can plug in a
real supervised agent), adds it to the router at weight 0, then loops: take an operator
command if one is queued (waking at once for it), else tick the plan every ``tick_interval``
with the router's status over the plan's window, and apply the returned actions. It ends when
the plan ends or :meth:`RolloutExecutor.stop` is called (which aborts a running plan).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable

import structlog

from caxton.errors import CaxtonError, InvalidArgument, NoRollout
from caxton.messages import Message, Performative
from caxton.rollout.actions import (
    Action,
    Drain,
    HealthCheck,
    Retire,
    SetWeights,
    StartShadow,
    StopShadow,
    Switch,
    Undrain,
)
from caxton.rollout.plan import Plan
from caxton.rollout.status import RolloutStatus
from caxton.rollout.strategy import Command
from caxton.routing import (
    Comparator,
    Router,
    ShadowStatus,
    VersionHandle,
    ask,
    replies_agree,
)

_log = structlog.get_logger("caxton.rollout")

HealthProbe = Callable[[VersionHandle], tuple[bool, str]]
"""``probe(handle) -> (healthy, detail)``; may block (it runs on the executor thread)."""


def probe_health(timeout: float = 2.0, content: object = None) -> HealthProbe:
    """A probe that sends one message straight to the version and expects a non-failure
    reply within ``timeout``.

    Args:
        timeout: Seconds to wait for the reply.
        content: The probe message's content (default ``{"probe": "health"}``).

    Returns:
        The probe.
    """
    body = {"probe": "health"} if content is None else content

    def probe(handle: VersionHandle) -> tuple[bool, str]:
        message = Message(receiver=handle.version, content=body, sender="caxton-health")
        try:
            reply = ask(handle, message).get(timeout=timeout)
        except CaxtonError as exc:
            return False, f"{exc.code}: {exc.message}"
        if isinstance(reply, Message) and reply.performative is Performative.FAILURE:
            return False, f"failure reply: {reply.content!r}"
        return True, "replied"

    return probe


class RolloutExecutor:
    """Drive one plan over one router on a dedicated thread.

    Args:
        router: The agent's router.
        plan: The plan (its ``new`` label must match the started handle's ``version``).
        start_new: Starts the new version instance and returns its handle (``None``: the
            new version is already in the router, e.g. a rollback target added by the caller).
        health_check: Probe for ``HealthCheck`` actions (default :func:`probe_health`).
        tick_interval: Seconds between plan ticks.
        on_finish: Called once with the final status (on the executor thread).
        compare: Parallel strategy's reply comparator (default: same content/error code).
    """

    def __init__(
        self,
        router: Router,
        plan: Plan,
        *,
        start_new: Callable[[], VersionHandle] | None = None,
        health_check: HealthProbe | None = None,
        tick_interval: float = 0.05,
        on_finish: Callable[[RolloutStatus], None] | None = None,
        compare: Comparator = replies_agree,
    ) -> None:
        self.router = router
        self._compare = compare
        self.plan = plan
        self._start_new = start_new
        self._probe = health_check or probe_health()
        self._tick = tick_interval
        self._on_finish = on_finish
        self._commands: queue.Queue[Command] = queue.Queue()
        self._lock = threading.Lock()
        self._finished = threading.Event()
        self._stop = threading.Event()
        self._started_at = time.time()
        self._finished_at: float | None = None
        self._last_shadow: ShadowStatus | None = None
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"rollout-{router.agent}-{plan.new}")

    # -- control -----------------------------------------------------------------------------

    def start(self) -> RolloutExecutor:
        """Start the thread; returns self."""
        _log.info("rollout.started", agent=self.router.agent, version=self.plan.new,
                  strategy=str(self.plan.strategy), old=self.plan.old)
        self._thread.start()
        return self

    def command(self, command: Command | str) -> None:
        """Queue an operator command (``promote``, ``abort``, ``rollback``).

        Raises:
            NoRollout: The rollout already ended.
            InvalidArgument: ``promote`` for a strategy that cannot be promoted.
        """
        command = Command(command)
        if command is Command.PROMOTE and not self.plan.promotable:
            raise InvalidArgument(f"strategy {self.plan.strategy} cannot be promoted; abort "
                                  f"it or let it finish")
        if self._finished.is_set():
            raise NoRollout(f"the rollout of {self.router.agent} {self.plan.new} already "
                            f"ended ({self.plan.outcome})")
        self._commands.put(command)

    def promote(self) -> None:
        """Queue ``promote``."""
        self.command(Command.PROMOTE)

    def abort(self) -> None:
        """Queue ``abort``."""
        self.command(Command.ABORT)

    def rollback(self) -> None:
        """Queue ``rollback``."""
        self.command(Command.ROLLBACK)

    @property
    def finished(self) -> bool:
        """Whether the rollout ended."""
        return self._finished.is_set()

    def wait(self, timeout: float | None = None) -> RolloutStatus:
        """Wait for the rollout to end (or ``timeout``) and return its status."""
        self._finished.wait(timeout)
        return self.status()

    def stop(self, timeout: float | None = 10.0) -> RolloutStatus:
        """Abort a running rollout, stop the thread, and return the final status."""
        if not self._finished.is_set():
            self._commands.put(Command.ABORT)
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        return self.status()

    def status(self) -> RolloutStatus:
        """The rollout's progress, with the router's current weights."""
        with self._lock:
            ps = self.plan.status()
        router_status = self.router.status()
        # a finished parallel run keeps showing its final counts
        shadow = router_status.shadow if router_status.shadow is not None else self._last_shadow
        return RolloutStatus(
            self.router.agent, ps.strategy, ps.old_version, ps.new_version, ps.step,
            ps.step_index, ps.steps, router_status.weights(), ps.analyses, ps.variants,
            shadow, ps.outcome, ps.reason, self._started_at, self._finished_at,
        )

    # -- the thread --------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            if self._start_new is not None:
                handle = self._start_new()
                if handle.version != self.plan.new:
                    handle.stop(5.0)
                    raise CaxtonError(f"the started instance is version {handle.version!r}, "
                                      f"the plan rolls out {self.plan.new!r}")
                self.router.add_version(handle, 0)
            self._call(lambda now: self.plan.start(now))
            while not self.plan.done:
                try:
                    command = self._commands.get(timeout=self._tick)
                except queue.Empty:
                    status = self.router.status(since=self.plan.window_start)
                    if status.shadow is not None and status.shadow.shadow == self.plan.new:
                        self._last_shadow = status.shadow
                    self._call(lambda now, s=status: self.plan.tick(now, s))  # type: ignore[misc]
                else:
                    try:
                        self._call(lambda now, c=command: self.plan.command(c, now))  # type: ignore[misc]
                    except CaxtonError as exc:
                        _log.warning("rollout.command_refused", agent=self.router.agent,
                                     version=self.plan.new, reason=exc.message)
                if self._stop.is_set() and not self.plan.done:
                    self._call(lambda now: self.plan.command(Command.ABORT, now))
        except Exception as exc:
            _log.error("rollout.executor_failed", agent=self.router.agent,
                       version=self.plan.new, reason=repr(exc))
            if not self.plan.done:
                why = f"executor error: {exc!r}"
                self._call(lambda now: self.plan.fail(why, now), raising=False)
        finally:
            self._finished_at = time.time()
            self._report()
            self._finished.set()

    def _call(self, step: Callable[[float], list[Action]], *, raising: bool = True) -> None:
        with self._lock:
            try:
                actions = step(self.router.now())
            except Exception:
                if raising:
                    raise
                return
        for action in actions:
            self._apply(action)

    def _apply(self, action: Action) -> None:
        router = self.router
        try:
            if isinstance(action, SetWeights):
                router.set_weights(action.weights)
            elif isinstance(action, Switch):
                router.switch(action.version)
            elif isinstance(action, Drain):
                router.drain(action.version, action.timeout)
            elif isinstance(action, Undrain):
                router.undrain(action.version)
            elif isinstance(action, Retire):
                router.retire(action.version, to=action.to)
            elif isinstance(action, StartShadow):
                router.start_shadow(action.primary, action.shadow, self._compare)
            elif isinstance(action, StopShadow):
                final = router.stop_shadow()
                if final is not None and final.shadow == self.plan.new:
                    self._last_shadow = final
            elif isinstance(action, HealthCheck):
                try:
                    ok, detail = self._probe(router.handle(action.version))
                except Exception as exc:
                    ok, detail = False, repr(exc)
                _log.info("rollout.health_check", agent=router.agent, version=action.version,
                          ok=ok, reason=detail)
                self._call(lambda now: self.plan.on_health(action.version, ok, detail, now))
        except CaxtonError as exc:
            # e.g. undraining a version that already retired: the rest of the plan stands
            _log.warning("rollout.action_failed", agent=router.agent, version=self.plan.new,
                         action=type(action).__name__, reason=exc.message)

    def _report(self) -> None:
        status = self.status()
        fields = {"agent": status.agent, "version": status.new_version,
                  "strategy": str(status.strategy), "step": status.step,
                  "outcome": str(status.outcome), "reason": status.reason}
        if status.outcome.is_abort:
            _log.warning("rollout.aborted", **fields)
        else:
            _log.info("rollout.finished", **fields)
        if self._on_finish is not None:
            try:
                self._on_finish(status)
            except Exception as exc:
                _log.error("rollout.on_finish_failed", agent=status.agent, reason=repr(exc))


__all__ = ["HealthProbe", "RolloutExecutor", "probe_health"]
