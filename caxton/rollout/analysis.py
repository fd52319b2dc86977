"""Judging a new version against the stable one from actor-level signals (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from caxton.routing.metrics import MetricsSnapshot


@dataclass(frozen=True, slots=True)
class AnalysisThresholds:
    """When a new version fails analysis (defaults follow the original system).

    Attributes:
        max_error_rate: Fail when the new version's error rate exceeds this (5 %).
        min_success_rate: Fail when its success rate is below this (50 %).
        max_p99_ratio: Fail when its p99 exceeds the stable p99 times this (worse by > 50 %)...
        p99_slack_ms: ...and by more than this many milliseconds (ignores sub-ms noise).
        max_restarts: Fail when its instance restarted more often than this in the window.
        max_breaker_trips: Fail when its breaker tripped more often than this.
        max_fuel_ratio: Fail when its fuel per message exceeds stable's times this
            (``None``: not judged).
        min_requests: Requests the new version needs in a window before rates and latency
            are judged (restarts and trips are judged at once).
    """

    max_error_rate: float = 0.05
    min_success_rate: float = 0.50
    max_p99_ratio: float = 1.5
    p99_slack_ms: float = 5.0
    max_restarts: int = 0
    max_breaker_trips: int = 0
    max_fuel_ratio: float | None = 1.5
    min_requests: int = 20


@dataclass(frozen=True, slots=True)
class AnalysisResult:
    """One analysis of one window.

    Attributes:
        step: The plan step it judged.
        verdict: ``pass``, ``fail`` or ``inconclusive`` (too few requests to judge).
        reasons: Why it failed (empty otherwise).
        candidate: The new version's metrics over the window.
        stable: The stable version's metrics over the window.
        baseline_p99_ms: The stable p99 the candidate was compared with.
        at: When it ran (rollout clock).
    """

    step: str
    verdict: str
    reasons: tuple[str, ...]
    candidate: MetricsSnapshot
    stable: MetricsSnapshot
    baseline_p99_ms: float | None
    at: float

    @property
    def failed(self) -> bool:
        """Whether the verdict is ``fail``."""
        return self.verdict == "fail"

    def to_dict(self) -> dict[str, Any]:
        """Return the result as a plain map."""
        return {
            "step": self.step, "verdict": self.verdict, "reasons": list(self.reasons),
            "candidate": self.candidate.to_dict(), "stable": self.stable.to_dict(),
            "baseline_p99_ms": self.baseline_p99_ms, "at": self.at,
        }


def analyze(
    candidate: MetricsSnapshot,
    stable: MetricsSnapshot,
    thresholds: AnalysisThresholds,
    *,
    step: str = "",
    at: float = 0.0,
    baseline_p99_ms: float | None = None,
) -> AnalysisResult:
    """Judge the candidate's window against the stable version's.

    Args:
        candidate: The new version's metrics over the window.
        stable: The stable version's metrics over the same window.
        thresholds: The limits.
        step: The step name to record.
        at: The time to record.
        baseline_p99_ms: Stable p99 to compare with when ``stable`` has no samples (e.g. at
            100 % canary); ``stable.p99_ms`` wins when present.

    Returns:
        The result; ``fail`` lists every exceeded threshold.
    """
    reasons: list[str] = []
    if candidate.restarts > thresholds.max_restarts:
        reasons.append(f"restarts {candidate.restarts} > {thresholds.max_restarts}")
    if candidate.breaker_trips > thresholds.max_breaker_trips:
        reasons.append(f"breaker trips {candidate.breaker_trips} > "
                       f"{thresholds.max_breaker_trips}")
    baseline = stable.p99_ms if stable.p99_ms is not None else baseline_p99_ms
    enough = candidate.requests >= thresholds.min_requests
    if enough:
        if candidate.error_rate > thresholds.max_error_rate:
            reasons.append(f"error rate {candidate.error_rate:.1%} > "
                           f"{thresholds.max_error_rate:.1%}")
        if candidate.success_rate < thresholds.min_success_rate:
            reasons.append(f"success rate {candidate.success_rate:.1%} < "
                           f"{thresholds.min_success_rate:.1%}")
        p99 = candidate.p99_ms
        if (p99 is not None and baseline is not None
                and p99 > baseline * thresholds.max_p99_ratio
                and p99 - baseline > thresholds.p99_slack_ms):
            reasons.append(f"p99 {p99:.2f} ms > {thresholds.max_p99_ratio:g} x stable "
                           f"{baseline:.2f} ms")
        if (thresholds.max_fuel_ratio is not None and candidate.fuel_per_message is not None
                and stable.fuel_per_message
                and candidate.fuel_per_message
                > stable.fuel_per_message * thresholds.max_fuel_ratio):
            reasons.append(f"fuel/message {candidate.fuel_per_message:.0f} > "
                           f"{thresholds.max_fuel_ratio:g} x stable "
                           f"{stable.fuel_per_message:.0f}")
    verdict = "fail" if reasons else ("pass" if enough else "inconclusive")
    return AnalysisResult(step, verdict, tuple(reasons), candidate, stable, baseline, at)


__all__ = ["AnalysisResult", "AnalysisThresholds", "analyze"]
