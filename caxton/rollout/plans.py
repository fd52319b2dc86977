"""One plan per strategy, and :func:`make_plan` to build them by name."""

from __future__ import annotations

from caxton.errors import InvalidArgument
from caxton.rollout.actions import (
    Action,
    Drain,
    HealthCheck,
    Retire,
    SetWeights,
    StartShadow,
    StopShadow,
    Switch,
)
from caxton.rollout.analysis import analyze
from caxton.rollout.plan import Plan, RolloutConfig
from caxton.rollout.strategy import Outcome, Strategy
from caxton.routing import MetricsSnapshot, RouterStatus, VersionState

_EMPTY = MetricsSnapshot()


def _metrics(status: RouterStatus, version: str | None) -> MetricsSnapshot:
    entry = None if version is None else status.version(version)
    return _EMPTY if entry is None else entry.metrics


def _gone(status: RouterStatus, version: str | None) -> bool:
    entry = None if version is None else status.version(version)
    return entry is None or entry.state is VersionState.STOPPED


class ImmediatePlan(Plan):
    """Swap at once: all traffic and conversations to the new version; the old drains."""

    strategy = Strategy.IMMEDIATE
    needs_old = False

    @property
    def step_names(self) -> tuple[str, ...]:
        """Steps: ``switch``."""
        return ("switch",)

    def start(self, now: float) -> list[Action]:
        """Switch and finish."""
        self._enter(0, now)
        return [Switch(self.new), *self._complete()]


class GradualPlan(Plan):
    """New conversations go to the new version; the old keeps its conversations until each
    ends or ``conversation_ttl`` passes, then retires."""

    strategy = Strategy.GRADUAL

    @property
    def step_names(self) -> tuple[str, ...]:
        """Steps: ``route-new-conversations``, ``retire-old``."""
        return ("route-new-conversations", "retire-old")

    def start(self, now: float) -> list[Action]:
        """Send new conversations to the new version and start draining the old."""
        assert self.old is not None
        self._enter(0, now)
        return [SetWeights({self.new: 100, self.old: 0}),
                Drain(self.old, self.config.conversation_ttl)]

    def tick(self, now: float, status: RouterStatus) -> list[Action]:
        """Succeed once the old version has retired."""
        if self.step_index == 0:
            self._enter(1, now)
        if _gone(status, self.old):
            self._finish(Outcome.SUCCEEDED, "old version retired after its conversations")
        return []


class ABTestPlan(Plan):
    """Both versions live at a fixed split with per-variant metrics until promote or abort."""

    strategy = Strategy.AB_TEST
    promotable = True

    @property
    def step_names(self) -> tuple[str, ...]:
        """Steps: ``testing``."""
        return ("testing",)

    def start(self, now: float) -> list[Action]:
        """Apply the split."""
        assert self.old is not None
        old_w, new_w = self.config.split
        if old_w < 0 or new_w < 0 or old_w + new_w == 0:
            raise InvalidArgument(f"A/B split {old_w}/{new_w} needs non-negative weights "
                                  f"with a positive sum, e.g. 80/20")
        self._enter(0, now)
        return [SetWeights({self.old: old_w, self.new: new_w})]

    def tick(self, now: float, status: RouterStatus) -> list[Action]:
        """Keep the per-variant metrics current."""
        self.variants = {v: _metrics(status, v) for v in (self.old, self.new) if v}
        return []

    def promote(self, now: float) -> list[Action]:
        """The new variant wins: it takes all new conversations, the old drains."""
        assert self.old is not None
        return [SetWeights({self.new: 100, self.old: 0}),
                *self._complete("variant promoted by operator")]

    def rollback(self, now: float, reason: str, outcome: Outcome = Outcome.ROLLED_BACK
                 ) -> list[Action]:
        """The old variant stays: it takes all new conversations; the new one's
        conversations finish on it, then it retires."""
        if self.old is None:
            return super().rollback(now, reason, outcome)
        self._finish(outcome, reason)
        return [SetWeights({self.old: 100, self.new: 0}),
                Drain(self.new, self.config.drain_timeout)]


class BlueGreenPlan(Plan):
    """Health-check green beside blue, switch everything at once, keep blue warm for
    instant rollback until ``scale_down_delay``, then drain blue."""

    strategy = Strategy.BLUE_GREEN

    @property
    def step_names(self) -> tuple[str, ...]:
        """Steps: ``health-check``, ``switched``."""
        return ("health-check", "switched")

    def start(self, now: float) -> list[Action]:
        """Probe green."""
        self._enter(0, now)
        return [HealthCheck(self.new)]

    def on_health(self, version: str, ok: bool, detail: str, now: float) -> list[Action]:
        """Switch to a healthy green; retire an unhealthy one."""
        if self.done or self.step_index != 0 or version != self.new:
            return []
        if not ok:
            self._finish(Outcome.FAILED, f"health check of {version} failed: {detail}")
            return [Retire(self.new, to=self.old)]
        self._enter(1, now)
        return [Switch(self.new)]

    def tick(self, now: float, status: RouterStatus) -> list[Action]:
        """Scale blue down after the delay."""
        if self.step_index == 1 and now - self.step_started >= self.config.scale_down_delay:
            return self._complete("blue scaled down after the warm period")
        return []

    def rollback(self, now: float, reason: str, outcome: Outcome = Outcome.ROLLED_BACK
                 ) -> list[Action]:
        """Instant: all traffic and conversations back to warm blue; green retires."""
        if self.old is None:
            return super().rollback(now, reason, outcome)
        self._finish(outcome, reason)
        return [Switch(self.old), Retire(self.new, to=self.old)]


class SteppedPlan(Plan):
    """Canary / traffic-splitting: raise the new version's weight step by step, analysing
    each step; a failing analysis rolls back at once (within the step)."""

    strategy = Strategy.CANARY
    promotable = True
    default_steps: tuple[int, ...] = (5, 25, 50, 100)

    def __init__(self, old: str | None, new: str, config: RolloutConfig | None = None) -> None:
        super().__init__(old, new, config)
        steps = self.config.steps or self.default_steps
        if not steps or any(not 0 < p <= 100 for p in steps) or list(steps) != sorted(steps):
            raise InvalidArgument(f"{self.strategy} steps must be increasing percentages in "
                                  f"(0, 100], got {steps}")
        self.percents = tuple(steps)
        self.baseline_p99_ms: float | None = None

    @property
    def step_names(self) -> tuple[str, ...]:
        """Steps: ``<percent>%`` each."""
        return tuple(f"{p}%" for p in self.percents)

    def _weights(self, index: int) -> SetWeights:
        assert self.old is not None
        percent = self.percents[index]
        return SetWeights({self.new: percent, self.old: 100 - percent})

    def start(self, now: float) -> list[Action]:
        """Enter the first step."""
        self._enter(0, now)
        return [self._weights(0)]

    def tick(self, now: float, status: RouterStatus) -> list[Action]:
        """Analyse the step so far; roll back on failure; advance at the step's end."""
        candidate, stable = _metrics(status, self.new), _metrics(status, self.old)
        self.variants = {self.new: candidate}
        if self.old is not None:
            self.variants[self.old] = stable
        if stable.p99_ms is not None and stable.requests >= self.config.thresholds.min_requests:
            self.baseline_p99_ms = stable.p99_ms
        step = self.step_names[self.step_index]
        result = analyze(candidate, stable, self.config.thresholds, step=step, at=now,
                         baseline_p99_ms=self.baseline_p99_ms)
        if result.failed:
            self.analyses.append(result)
            return self.rollback(now, f"analysis failed at step {step}: "
                                      + "; ".join(result.reasons))
        if now - self.step_started < self.config.step_duration:
            return []
        self.analyses.append(result)
        if self.step_index + 1 < len(self.percents):
            self._enter(self.step_index + 1, now)
            return [self._weights(self.step_index)]
        return self._complete("every step passed analysis")

    def promote(self, now: float) -> list[Action]:
        """Skip the remaining steps."""
        return [Switch(self.new), *self._complete("promoted by operator")]


class CanaryPlan(SteppedPlan):
    """Canary: small steps first (5/25/50/100 % by default)."""

    strategy = Strategy.CANARY
    default_steps = (5, 25, 50, 100)


class TrafficSplittingPlan(SteppedPlan):
    """Traffic splitting: evenly stepped weights with monitoring (10/25/50/75/100 %)."""

    strategy = Strategy.TRAFFIC_SPLITTING
    default_steps = (10, 25, 50, 75, 100)


class GracefulPlan(Plan):
    """Load the new version beside the old, validate it for ``validation_period``, then
    switch; executions already running on the old version complete."""

    strategy = Strategy.GRACEFUL

    @property
    def step_names(self) -> tuple[str, ...]:
        """Steps: ``load``, ``validate``, ``final-check``."""
        return ("load", "validate", "final-check")

    def start(self, now: float) -> list[Action]:
        """Probe the freshly loaded version."""
        self._enter(0, now)
        return [HealthCheck(self.new)]

    def on_health(self, version: str, ok: bool, detail: str, now: float) -> list[Action]:
        """Healthy: validate (first probe) or switch (final probe); unhealthy: retire it."""
        if self.done or version != self.new:
            return []
        if not ok:
            self._finish(Outcome.FAILED, f"validation of {version} failed: {detail}")
            return [Retire(self.new, to=self.old)]
        if self.step_index == 0:
            self._enter(1, now)
            return []
        if self.step_index == 2:
            return [Switch(self.new), *self._complete("validated and switched")]
        return []

    def tick(self, now: float, status: RouterStatus) -> list[Action]:
        """Re-probe at the end of the validation period."""
        if self.step_index == 1 and now - self.step_started >= self.config.validation_period:
            self._enter(2, now)
            return [HealthCheck(self.new)]
        return []


class ParallelPlan(Plan):
    """Both versions run every message (the old reply is returned); switch after
    ``required_agreements`` agreeing replies; more than ``max_disagreements`` aborts."""

    strategy = Strategy.PARALLEL

    @property
    def step_names(self) -> tuple[str, ...]:
        """Steps: ``compare``."""
        return ("compare",)

    def start(self, now: float) -> list[Action]:
        """Start the shadow run."""
        assert self.old is not None
        self._enter(0, now)
        return [StartShadow(self.old, self.new)]

    def tick(self, now: float, status: RouterStatus) -> list[Action]:
        """Switch or roll back on the comparison counts."""
        shadow = status.shadow
        self.variants = {v: _metrics(status, v) for v in (self.old, self.new) if v}
        if shadow is None or shadow.shadow != self.new:
            return []
        if shadow.disagreed > self.config.max_disagreements:
            return self.rollback(now, f"{shadow.disagreed} replies disagreed "
                                      f"(last: {shadow.last_disagreement})")
        if shadow.agreed >= self.config.required_agreements:
            return [StopShadow(), Switch(self.new),
                    *self._complete(f"{shadow.agreed} replies agreed")]
        return []

    def rollback(self, now: float, reason: str, outcome: Outcome = Outcome.ROLLED_BACK
                 ) -> list[Action]:
        """Stop comparing; the new version retires (it never served a caller)."""
        return [StopShadow(), *super().rollback(now, reason, outcome)]


_PLANS: dict[Strategy, type[Plan]] = {
    Strategy.IMMEDIATE: ImmediatePlan,
    Strategy.GRADUAL: GradualPlan,
    Strategy.AB_TEST: ABTestPlan,
    Strategy.BLUE_GREEN: BlueGreenPlan,
    Strategy.CANARY: CanaryPlan,
    Strategy.GRACEFUL: GracefulPlan,
    Strategy.TRAFFIC_SPLITTING: TrafficSplittingPlan,
    Strategy.PARALLEL: ParallelPlan,
}


def make_plan(strategy: Strategy | str, *, old: str | None, new: str,
              config: RolloutConfig | None = None) -> Plan:
    """Build the plan of a strategy.

    Args:
        strategy: A :class:`Strategy` or its name (``"canary"``, ``"blue-green"``, ...).
        old: The running version (``None`` on a first deploy: only ``immediate``).
        new: The version to roll out.
        config: Tunables.

    Returns:
        The plan.

    Raises:
        InvalidArgument: Unknown strategy, or its configuration/versions are invalid.
    """
    try:
        kind = Strategy(strategy)
    except ValueError:
        names = ", ".join(s.value for s in Strategy)
        raise InvalidArgument(f"unknown rollout strategy {strategy!r}; use one of: {names}"
                              ) from None
    return _PLANS[kind](old, new, config)


__all__ = ["ABTestPlan", "BlueGreenPlan", "CanaryPlan", "GracefulPlan", "GradualPlan",
           "ImmediatePlan", "ParallelPlan", "SteppedPlan", "TrafficSplittingPlan", "make_plan"]
