"""Ratios that survive a noisy machine: alternate short baseline and node phases.

On a shared 2-core machine the raw echo baseline alone swung from 4k to 25k msg/s within
minutes, so one baseline phase and one node phase minutes apart can give any ratio. Instead
run ``baseline, node, baseline, node, ...`` in short phases and take the ratio of each
*adjacent* pair; report the min, median and max of those ratios.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any


def paired_ratios(baseline: Callable[[], float], measured: Callable[[], float],
                  pairs: int) -> dict[str, Any]:
    """Alternate ``baseline()`` and ``measured()`` ``pairs`` times (each returns a rate).

    Args:
        baseline: Runs one baseline phase and returns its rate.
        measured: Runs one phase of the system under test and returns its rate.
        pairs: How many (baseline, measured) pairs.

    Returns:
        ``{"pairs": [{"baseline", "measured", "ratio"}...], "ratio_min", "ratio_median",
        "ratio_max"}`` (ratios are measured / baseline).
    """
    rows: list[dict[str, float]] = []
    for _ in range(max(1, pairs)):
        base = baseline()
        got = measured()
        rows.append({"baseline": round(base, 1), "measured": round(got, 1),
                     "ratio": round(got / base, 4) if base > 0 else 0.0})
    ratios = [r["ratio"] for r in rows]
    return {"pairs": rows, "ratio_min": min(ratios), "ratio_median": statistics.median(ratios),
            "ratio_max": max(ratios)}


def describe(paired: dict[str, Any]) -> str:
    """``min / median / max`` of the pair ratios, for a report line."""
    return (f"{paired['ratio_min']:.3f} / {paired['ratio_median']:.3f} / "
            f"{paired['ratio_max']:.3f} over {len(paired['pairs'])} pairs")


__all__ = ["describe", "paired_ratios"]
