"""The sandbox benchmark runs end to end with tiny sizes and prints every figure with a ratio."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_sandbox_quick_prints_four_figures_with_ratios() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_sandbox", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    lines = [line for line in out.stdout.splitlines() if "ratio" in line]
    assert len(lines) == 5, out.stdout  # header + four figures
    for needle in ("handle()", "Sandbox.load()", "RSS for 50", "spin loop"):
        assert any(needle in line for line in lines), out.stdout
