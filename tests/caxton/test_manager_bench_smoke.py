"""The manager benchmark runs end to end with tiny sizes and prints each figure with its
same-run baseline."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_manager_quick_prints_ratios_and_deploy_percentiles() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_manager", "--quick"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=True,
    ).stdout
    for needle in ("raw pykka two-hop chain (baseline)", "manager -> echo config agent",
                   "manager -> echo WASM agent", "guest call alone",
                   "WASM echo excluding the guest call", "config deploy (parse+validate+start)",
                   "baseline: parse_agent alone", "baseline: bare pykka actor start"):
        assert needle in out, out
    ratios = [float(x) for x in re.findall(r"ratio\s+([0-9.]+|inf)", out)]
    assert len(ratios) == 3 and all(r > 0 for r in ratios), out
    deploy = re.search(r"config deploy .*p50\s+([0-9.]+) ms\s+p99\s+([0-9.]+) ms.*n=10", out)
    assert deploy is not None and 0 < float(deploy[1]) <= float(deploy[2]), out
