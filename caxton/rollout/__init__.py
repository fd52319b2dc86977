"""Rollouts as plans of steps over a router (issue 5).

Each strategy is a pure :class:`Plan` (injected time, observations in, router actions out);
a :class:`RolloutExecutor` drives one plan on one thread; :class:`RolloutCoordinator` keeps
one rollout per agent, its status for ``reload-status`` and the abort counter.
"""

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
from caxton.rollout.analysis import AnalysisResult, AnalysisThresholds, analyze
from caxton.rollout.coordinator import RolloutCoordinator
from caxton.rollout.executor import HealthProbe, RolloutExecutor, probe_health
from caxton.rollout.plan import Plan, PlanStatus, RolloutConfig
from caxton.rollout.plans import (
    ABTestPlan,
    BlueGreenPlan,
    CanaryPlan,
    GracefulPlan,
    GradualPlan,
    ImmediatePlan,
    ParallelPlan,
    SteppedPlan,
    TrafficSplittingPlan,
    make_plan,
)
from caxton.rollout.status import RolloutStatus
from caxton.rollout.strategy import Command, Outcome, Strategy

__all__ = [
    "ABTestPlan", "Action", "AnalysisResult", "AnalysisThresholds", "BlueGreenPlan",
    "CanaryPlan", "Command", "Drain", "GracefulPlan", "GradualPlan", "HealthCheck",
    "HealthProbe", "ImmediatePlan", "Outcome", "ParallelPlan", "Plan", "PlanStatus",
    "Retire", "RolloutConfig", "RolloutCoordinator", "RolloutExecutor", "RolloutStatus",
    "SetWeights", "StartShadow", "SteppedPlan", "StopShadow", "Strategy", "Switch",
    "TrafficSplittingPlan", "Undrain", "analyze", "make_plan", "probe_health",
]
