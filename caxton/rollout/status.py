"""The rollout status shown by ``reload-status``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from caxton.rollout.analysis import AnalysisResult
from caxton.rollout.strategy import Outcome, Strategy
from caxton.routing import MetricsSnapshot, ShadowStatus


@dataclass(frozen=True, slots=True)
class RolloutStatus:
    """One rollout's progress and result.

    Attributes:
        agent: The agent name.
        strategy: The strategy.
        old_version: The version being replaced.
        new_version: The version rolled out.
        step: The current (or last) step.
        step_index: Its index from 0.
        steps: Every step, in order.
        weights: The router's live weights now.
        analyses: Analyses so far, oldest first.
        variants: Latest per-version metrics (A/B, canary, traffic-splitting, parallel).
        shadow: Parallel-run comparison counts, if one runs.
        outcome: ``running`` until it ends.
        reason: Why it ended so.
        started_at: Wall-clock start (seconds since the epoch).
        finished_at: Wall-clock end.
    """

    agent: str
    strategy: Strategy
    old_version: str | None
    new_version: str
    step: str
    step_index: int
    steps: tuple[str, ...]
    weights: dict[str, int]
    analyses: tuple[AnalysisResult, ...]
    variants: dict[str, MetricsSnapshot]
    shadow: ShadowStatus | None
    outcome: Outcome
    reason: str | None
    started_at: float
    finished_at: float | None

    def to_dict(self) -> dict[str, Any]:
        """Return the status as a plain (msgpack/JSON-ready) map."""
        return {
            "agent": self.agent, "strategy": str(self.strategy),
            "old_version": self.old_version, "new_version": self.new_version,
            "step": self.step, "step_index": self.step_index, "steps": list(self.steps),
            "weights": dict(self.weights),
            "analyses": [a.to_dict() for a in self.analyses],
            "variants": {k: v.to_dict() for k, v in self.variants.items()},
            "shadow": None if self.shadow is None else {
                "agreed": self.shadow.agreed, "disagreed": self.shadow.disagreed,
                "last_disagreement": self.shadow.last_disagreement,
            },
            "outcome": str(self.outcome), "reason": self.reason,
            "started_at": self.started_at, "finished_at": self.finished_at,
        }


__all__ = ["RolloutStatus"]
