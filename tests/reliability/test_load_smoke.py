"""A seconds-long smoke run of each load scenario against a real node subprocess, plus the
harness's command line end to end (tables, JSON report, plots, exit code).

Sizes are tiny on purpose (2 clients, a few agents, ~1.5 s phases); the full runs are made on
purpose with ``python -m benchmarks.load`` and reported, not run in the suite.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.load import scenarios as sc
from benchmarks.load.node import REPO_ROOT, NodeProcess

SMALL = {"agents": 3, "clients": 2, "window": 8, "duration": 1.5, "timeout": 5.0,
         "baselines": False, "pairs": 1, "pair_seconds": 0.5}


@pytest.mark.parametrize("scenario", ["steady", "reload", "canary-rollback", "crash-storm",
                                      "scale"])
def test_scenario_smoke(shared_node: NodeProcess, scenario: str) -> None:
    cfg = sc.LoadConfig(scenario=scenario, node_pid=shared_node.pid, **SMALL)  # type: ignore[arg-type]
    if scenario == "reload":
        cfg.duration = 3.0
        cfg.strategies = ("immediate", "canary", "blue-green")
    if scenario == "canary-rollback":
        cfg.duration = 3.0
    if scenario == "scale":
        cfg.agents = 40
        cfg.duration = 1.0
    result = sc.RUNNERS[scenario](cfg, shared_node.control, None)
    assert result.load is not None
    summary = result.load.summary()
    # the accounting: nothing lost, duplicated, stray or wrong, every request answered
    assert summary["lost"] == 0, summary
    assert summary["duplicated"] == 0, summary
    assert summary["stray"] == 0, summary
    assert summary["wrong"] == 0, summary
    assert summary["sent"] > 0
    assert result.ok, (result.checks, result.figures, result.notes)
    assert shared_node.alive()


def test_harness_command_line(tmp_path: Path) -> None:
    """``python -m benchmarks.load`` starts its own node, runs baselines, writes the report."""
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.load", "--scenario", "steady", "--agents", "2",
         "--clients", "2", "--window", "4", "--duration", "1", "--quiet", "--out", str(out),
         "--pairs", "2", "--pair-seconds", "0.5"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "figures beside their same-run baselines" in proc.stdout
    report = json.loads((out / "steady.json").read_text())
    assert report["ok"] is True
    assert report["figures"]["load"]["lost"] == 0
    assert report["baselines"]["raw_zmq"]["lost"] == 0
    assert report["baselines"]["raw_zmq"]["rate_per_s"] > 0
    assert report["baselines"]["raw_pykka"]["rate_per_s"] > 0
    names = {row["figure"] for row in report["comparisons"]}
    assert "throughput (msg/s)" in names
    paired = report["figures"]["paired"]  # alternating raw/node phases, ratio per pair
    assert len(paired["pairs"]) == 2
    assert paired["ratio_min"] <= paired["ratio_median"] <= paired["ratio_max"]
    assert all(p["ratio"] > 0 for p in paired["pairs"])
    assert "paired throughput ratio (min/median/max)" in names
    assert (out / "steady-latency-time.png").stat().st_size > 0
    assert (out / "steady-latency-hist.png").stat().st_size > 0


def test_bounded_by_message_count(shared_node: NodeProcess) -> None:
    cfg = sc.LoadConfig(agents=2, clients=2, window=4, duration=0, messages=300,
                        half_peak=False, baselines=False, prefix="count-", pairs=0)
    result = sc.steady(cfg, shared_node.control)
    assert result.load is not None
    assert result.ok, result.checks
    assert result.load.sent == 300
    assert result.load.replied == 300


def _policy_after(polite: bool) -> int:
    # in a fresh process, as each client runs
    code = ("import os; from benchmarks.load.clients import _be_polite; "
            f"_be_polite() if {polite} else None; print(os.sched_getscheduler(0))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True,
                         text=True, timeout=60, check=True)
    return int(out.stdout)


@pytest.mark.skipif(not hasattr(os, "SCHED_BATCH"), reason="Linux only")
def test_clients_run_under_sched_batch_unless_told_otherwise() -> None:
    assert _policy_after(True) == os.SCHED_BATCH
    assert _policy_after(False) == os.sched_getscheduler(0)  # inherited, unchanged
    cfg = sc.LoadConfig(agents=1, clients=2)
    assert all(s.polite for s in sc.specs_for(cfg, "tcp://127.0.0.1:1", ["a"],
                                              exact_echo=True))
    cfg = sc.LoadConfig(agents=1, clients=2, polite_clients=False)
    assert not any(s.polite for s in sc.specs_for(cfg, "tcp://127.0.0.1:1", ["a"],
                                                  exact_echo=True))


@pytest.mark.parametrize("polite", [True, False])
def test_a_client_process_applies_its_policy_before_it_sends(
        monkeypatch: pytest.MonkeyPatch, polite: bool) -> None:
    from benchmarks.load import clients

    calls: list[bool] = []
    monkeypatch.setattr(clients, "_be_polite", lambda: calls.append(True))
    spec = clients.ClientSpec(endpoint="tcp://127.0.0.1:9", index=0, agents=["a"],
                              duration=0.05, timeout=0.1, drain_grace=0.1, hard_cap_s=5.0,
                              polite=polite)
    out = clients.run_client(spec, 0.0)  # nobody listens there: it gives up quickly
    assert out["replied"] == 0
    assert calls == ([True] if polite else [])


def test_config_echo_replies_are_checked_exactly(shared_node: NodeProcess) -> None:
    """``--kind config-echo``: a config agent's reply map counts as right, none as wrong."""
    cfg = sc.LoadConfig(kind="config-echo", prefix="cfg-", half_peak=False,
                        **{**SMALL, "pairs": 0})  # type: ignore[arg-type]
    result = sc.steady(cfg, shared_node.control)
    assert result.load is not None
    assert result.load.wrong == 0 and result.load.replied > 0, result.load.summary()
    assert result.ok, result.checks


def test_config_model_scenario_reports_rate_beside_the_ideal(shared_node: NodeProcess) -> None:
    cfg = sc.LoadConfig(scenario="config-model", agents=4, clients=2, window=20, duration=2.0,
                        timeout=20.0, baselines=False, model_latency=0.1, prefix="cm-",
                        node_pid=shared_node.pid)
    result = sc.RUNNERS["config-model"](cfg, shared_node.control, None)
    assert result.load is not None and result.load.replied > 0
    assert result.load.wrong == 0 and result.load.lost == 0 and not result.load.errors
    model = result.figures["model"]
    assert model["ideal_rate_per_s"] == 400.0 and model["in_flight"] == 40
    assert model["server"]["max_in_flight"] > 1  # conversations waited on the model at once
    assert result.figures["node_cpu_us_per_msg"] > 0
