"""The plan base class: a rollout as a pure state machine over router observations.

A plan never touches the router. The executor calls :meth:`Plan.start`, then
:meth:`Plan.tick` with the current time and a :class:`~caxton.routing.RouterStatus` whose
metrics cover :attr:`Plan.window_start` onwards, feeds health-check results and operator
commands, and applies the :mod:`~caxton.rollout.actions` each call returns. Tests drive plans
with a fake clock and hand-made statuses.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import structlog

from caxton.errors import InvalidArgument, NoRollout
from caxton.rollout.actions import Action, Drain, Retire, SetWeights, Undrain
from caxton.rollout.analysis import AnalysisResult, AnalysisThresholds
from caxton.rollout.strategy import Command, Outcome, Strategy
from caxton.routing import MetricsSnapshot, RouterStatus

_log = structlog.get_logger("caxton.rollout")


@dataclass(frozen=True, slots=True)
class RolloutConfig:
    """Tunables of every strategy (each plan reads the ones it needs).

    Attributes:
        steps: Canary / traffic-splitting weights of the new version per step, in percent
            (``None``: 5/25/50/100 for canary, 10/25/50/75/100 for traffic-splitting).
        step_duration: Seconds per step (the pause during which the step is analysed).
        split: A/B weights ``(old, new)``, e.g. ``(80, 20)``.
        conversation_ttl: Gradual: seconds the old version keeps its conversations before
            they move to the new one.
        drain_timeout: Seconds a retiring version keeps its conversations.
        scale_down_delay: Blue-green: seconds blue stays warm after the switch.
        validation_period: Graceful: seconds between loading and switching.
        required_agreements: Parallel: agreeing messages needed to switch.
        max_disagreements: Parallel: disagreements tolerated before aborting.
        thresholds: Analysis thresholds (canary, traffic-splitting).
    """

    steps: tuple[int, ...] | None = None
    step_duration: float = 60.0
    split: tuple[int, int] = (80, 20)
    conversation_ttl: float = 1800.0
    drain_timeout: float = 30.0
    scale_down_delay: float = 300.0
    validation_period: float = 30.0
    required_agreements: int = 100
    max_disagreements: int = 0
    thresholds: AnalysisThresholds = field(default_factory=AnalysisThresholds)


@dataclass(frozen=True, slots=True)
class PlanStatus:
    """A plan's own view of its progress (the executor adds router weights).

    Attributes:
        strategy: The strategy.
        old_version: The version being replaced (``None`` on a first deploy).
        new_version: The version rolled out.
        step: Name of the current (or last) step.
        step_index: Its index, from 0.
        steps: Names of every step, in order.
        outcome: ``running`` until the plan ends.
        reason: Why it ended the way it did.
        analyses: Every analysis so far, oldest first.
        variants: Latest per-version metrics (A/B tests and stepped plans).
    """

    strategy: Strategy
    old_version: str | None
    new_version: str
    step: str
    step_index: int
    steps: tuple[str, ...]
    outcome: Outcome
    reason: str | None
    analyses: tuple[AnalysisResult, ...]
    variants: dict[str, MetricsSnapshot]


class Plan(ABC):
    """Base of every strategy's plan.

    Args:
        old: The version being replaced (``None`` on a first deploy).
        new: The version to roll out (already added to the router at weight 0).
        config: Tunables.
    """

    strategy: Strategy
    needs_old: bool = True
    promotable: bool = False

    def __init__(self, old: str | None, new: str, config: RolloutConfig | None = None) -> None:
        if self.needs_old and old is None:
            raise InvalidArgument(f"strategy {self.strategy} needs a running version to "
                                  f"replace; deploy the first version with 'immediate'")
        if old == new:
            raise InvalidArgument(f"new version label {new!r} equals the running one")
        self.old = old
        self.new = new
        self.config = config or RolloutConfig()
        self.outcome = Outcome.RUNNING
        self.reason: str | None = None
        self.step_index = 0
        self.step_started = 0.0
        self.window_start = 0.0
        self.analyses: list[AnalysisResult] = []
        self.variants: dict[str, MetricsSnapshot] = {}

    # -- the interface the executor drives ---------------------------------------------------

    @property
    @abstractmethod
    def step_names(self) -> tuple[str, ...]:
        """Names of the plan's steps, in order."""

    @abstractmethod
    def start(self, now: float) -> list[Action]:
        """Begin the rollout.

        Args:
            now: The current time.

        Returns:
            Actions to apply.
        """

    def tick(self, now: float, status: RouterStatus) -> list[Action]:
        """Advance on time and observations.

        Args:
            now: The current time.
            status: The router, with metrics since :attr:`window_start`.

        Returns:
            Actions to apply.
        """
        return []

    def on_health(self, version: str, ok: bool, detail: str, now: float) -> list[Action]:
        """Take a health-check result.

        Args:
            version: The probed version.
            ok: Whether it is healthy.
            detail: What the probe saw.
            now: The current time.

        Returns:
            Actions to apply.
        """
        return []

    def command(self, command: Command, now: float) -> list[Action]:
        """Take an operator command: ``abort``/``rollback`` roll back, ``promote`` finishes.

        Args:
            command: The command.
            now: The current time.

        Returns:
            Actions to apply.

        Raises:
            NoRollout: The plan already ended.
            InvalidArgument: The strategy does not take ``promote``.
        """
        if self.done:
            raise NoRollout(f"the {self.strategy} rollout of {self.new} already ended "
                            f"({self.outcome})")
        if command is Command.PROMOTE:
            return self.promote(now)
        return self.rollback(now, f"{command} requested by operator", Outcome.ABORTED)

    def promote(self, now: float) -> list[Action]:
        """Finish now with the new version taking all traffic (where the strategy allows)."""
        raise InvalidArgument(f"strategy {self.strategy} cannot be promoted; abort it or "
                              f"let it finish")

    def fail(self, reason: str, now: float) -> list[Action]:
        """End the plan as failed (executor error) and undo what it can."""
        return self.rollback(now, reason, Outcome.FAILED)

    # -- helpers for subclasses --------------------------------------------------------------

    @property
    def done(self) -> bool:
        """Whether the plan has ended."""
        return self.outcome is not Outcome.RUNNING

    def _enter(self, index: int, now: float) -> None:
        self.step_index = index
        self.step_started = now
        self.window_start = now
        _log.info("rollout.step", strategy=str(self.strategy), version=self.new,
                  step=self.step_names[index], index=index)

    def _finish(self, outcome: Outcome, reason: str) -> None:
        self.outcome = outcome
        self.reason = reason

    def rollback(self, now: float, reason: str, outcome: Outcome = Outcome.ROLLED_BACK
                 ) -> list[Action]:
        """Undo: the old version takes all traffic again, the new one retires.

        Args:
            now: The current time.
            reason: Recorded as the plan's reason.
            outcome: ``rolled-back`` (automatic), ``aborted`` (operator) or ``failed``.

        Returns:
            Actions to apply.
        """
        self._finish(outcome, reason)
        if self.old is None:
            return [Retire(self.new)]
        return [Undrain(self.old), SetWeights({self.old: 100, self.new: 0}),
                Retire(self.new, to=self.old)]

    def _complete(self, reason: str = "new version serves all traffic") -> list[Action]:
        self._finish(Outcome.SUCCEEDED, reason)
        if self.old is None:
            return []
        return [Drain(self.old, self.config.drain_timeout)]

    def status(self) -> PlanStatus:
        """Return the plan's progress."""
        return PlanStatus(
            self.strategy, self.old, self.new, self.step_names[self.step_index],
            self.step_index, self.step_names, self.outcome, self.reason,
            tuple(self.analyses), dict(self.variants),
        )


__all__ = ["Plan", "PlanStatus", "RolloutConfig"]
