"""The benchmark runs end to end with tiny sizes and prints its three ratios."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_benchmark_runs_with_tiny_sizes() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_supervisors",
         "--messages", "300", "--crashes", "20", "--children", "20", "--rounds", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=True,
    )
    lines = out.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["throughput", "restart", "start"]
    assert all("ratio" in line for line in lines)
