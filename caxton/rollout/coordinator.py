"""One rollout at a time per agent, its status for ``reload-status``, and the abort counter."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable

import structlog

from caxton.errors import InvalidArgument, NoRollout, RolloutInProgress
from caxton.rollout.executor import HealthProbe, RolloutExecutor
from caxton.rollout.plan import Plan, RolloutConfig
from caxton.rollout.plans import make_plan
from caxton.rollout.status import RolloutStatus
from caxton.rollout.strategy import Command, Strategy
from caxton.routing import Comparator, Router, VersionHandle, replies_agree

_log = structlog.get_logger("caxton.rollout")


class RolloutCoordinator:
    """Starts and tracks rollouts, refusing a second one for the same agent.

    Args:
        on_abort: Called with the final status of every rollout that did not complete
            (rolled back, aborted or failed) — e.g. to increment a Prometheus counter.
        tick_interval: Executors' tick interval.
    """

    def __init__(self, *, on_abort: Callable[[RolloutStatus], None] | None = None,
                 tick_interval: float = 0.05) -> None:
        self._lock = threading.Lock()
        self._running: dict[str, RolloutExecutor] = {}
        self._last: dict[str, RolloutExecutor] = {}
        self._aborts: Counter[str] = Counter()
        self._on_abort = on_abort
        self._tick = tick_interval

    def start(
        self,
        router: Router,
        strategy: Strategy | str | Plan,
        *,
        new_version: str,
        start_new: Callable[[], VersionHandle] | None,
        old_version: str | None = None,
        config: RolloutConfig | None = None,
        health_check: HealthProbe | None = None,
        compare: Comparator = replies_agree,
    ) -> RolloutExecutor:
        """Start a rollout of ``new_version`` on ``router``.

        Args:
            router: The agent's router.
            strategy: A strategy name, or a ready plan.
            new_version: The label of the version to roll out.
            start_new: Starts its instance (``None``: already in the router).
            old_version: The version replaced (default: the router's highest-weight version).
            config: Strategy tunables.
            health_check: Probe for health checks.
            compare: Reply comparator of the parallel strategy.

        Returns:
            The running executor.

        Raises:
            RolloutInProgress: The agent already has a running rollout.
            InvalidArgument: Bad strategy or configuration.
        """
        agent = router.agent
        with self._lock:
            current = self._running.get(agent)
            if current is not None and not current.finished:
                raise RolloutInProgress(
                    f"agent {agent!r} is already rolling out {current.plan.new} "
                    f"({current.plan.strategy}); wait, or abort it first")
            if isinstance(strategy, Plan):
                plan = strategy
            else:
                if old_version is None:
                    weights = router.weights()
                    old_version = max(weights, key=lambda v: weights[v]) if weights else None
                plan = make_plan(strategy, old=old_version, new=new_version, config=config)
            executor = RolloutExecutor(router, plan, start_new=start_new,
                                       health_check=health_check, tick_interval=self._tick,
                                       on_finish=self._finished, compare=compare)
            self._running[agent] = executor
            self._last[agent] = executor
        return executor.start()

    def rollback_to(self, router: Router, version: str,
                    start_version: Callable[[], VersionHandle], *,
                    strategy: Strategy | str = Strategy.IMMEDIATE,
                    config: RolloutConfig | None = None,
                    health_check: HealthProbe | None = None) -> RolloutExecutor:
        """``rollback --to-version V``: start V as a new instance and switch to it.

        Args:
            router: The agent's router.
            version: The label the restarted instance of V carries (unique among live ones).
            start_version: Starts V from the stored config text / module bytes.
            strategy: ``immediate`` or ``blue-green``.
            config: Tunables (blue-green's warm period, drain timeout).
            health_check: Probe for blue-green.

        Returns:
            The running executor.

        Raises:
            InvalidArgument: Another strategy was asked for.
            RolloutInProgress: A rollout is running.
        """
        kind = Strategy(strategy)
        if kind not in (Strategy.IMMEDIATE, Strategy.BLUE_GREEN):
            raise InvalidArgument("rollback uses 'immediate' or 'blue-green'")
        return self.start(router, kind, new_version=version, start_new=start_version,
                          config=config, health_check=health_check)

    def _finished(self, status: RolloutStatus) -> None:
        with self._lock:
            self._running.pop(status.agent, None)
            if status.outcome.is_abort:
                self._aborts[status.agent] += 1
        if status.outcome.is_abort and self._on_abort is not None:
            self._on_abort(status)

    def _executor(self, agent: str, *, running: bool) -> RolloutExecutor:
        with self._lock:
            executor = (self._running if running else self._last).get(agent)
        if executor is None or (running and executor.finished):
            raise NoRollout(f"agent {agent!r} has no {'running ' if running else ''}rollout")
        return executor

    def status(self, agent: str) -> RolloutStatus:
        """The running (or last) rollout of ``agent``.

        Raises:
            NoRollout: The agent never had a rollout here.
        """
        return self._executor(agent, running=False).status()

    def command(self, agent: str, command: Command | str) -> None:
        """Send ``promote`` / ``abort`` / ``rollback`` to the agent's running rollout.

        Raises:
            NoRollout: No rollout is running.
        """
        self._executor(agent, running=True).command(command)

    def aborted_total(self, agent: str | None = None) -> int:
        """Rollouts that did not complete (rolled back, aborted, failed), per agent or all."""
        with self._lock:
            return self._aborts[agent] if agent is not None else sum(self._aborts.values())

    def shutdown(self, timeout: float = 10.0) -> None:
        """Abort every running rollout and wait for the executors."""
        with self._lock:
            running = list(self._running.values())
        for executor in running:
            executor.stop(timeout)


__all__ = ["RolloutCoordinator"]
