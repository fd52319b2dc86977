"""Crash storm: one agent crashing on every message beside healthy agents, under load.

The issue asks for 30 s; the default suite runs the storm for 8 s (after a 4 s calm phase with
the same load and no crashing content) to stay inside its time budget — long enough for the
crashing agent's restarts to back off and its breaker to open and half-open several times.
``CAXTON_STORM_S`` lengthens it (e.g. 30).

Control latency: a probe times ``node.status`` round trips every 20 ms in both phases (~200
calm and ~400 storm samples). The reference is the *same load without crashes*, so the ratio
isolates what the crashes cost. p99 of a few hundred samples is two or three samples — one
hypervisor hiccup moves it by 10x on this 2-core machine — so the test asserts on the median
and p90 (each ≤ 2x the calm value plus a fixed 2 ms allowance for one scheduler time slice on
a loaded 2-core box) and records p99 in the failure message. The load is paced (400 msg/s) so
the node is not saturated and the probe measures responsiveness, not queueing behind the load.
"""

from __future__ import annotations

import os

from benchmarks.load.node import NodeProcess
from benchmarks.load.scenarios import (
    TESTING_DIR,
    AgentKind,
    LoadConfig,
    agent_kind,
    call,
    deploy_many,
    percentile,
    storm_phases,
)

STORM_S = float(os.environ.get("CAXTON_STORM_S", "8"))


def test_crash_storm_isolated(node: NodeProcess) -> None:
    healthy = [f"ok-{i}" for i in range(3)]
    flaky = ["storm-0"]
    assert deploy_many(node.control, agent_kind("wasm-echo"), healthy, 8)["ok"] == 3
    flaky_kind = AgentKind("flaky", ".wat", (TESTING_DIR / "flaky.wat").read_bytes(), True)
    assert deploy_many(node.control, flaky_kind, flaky, 8)["ok"] == 1
    cfg = LoadConfig(clients=2, window=8, timeout=5.0, crash_every=1)
    quiet, storm, calm, totals, _ = storm_phases(
        cfg, node.control, healthy, flaky, exact_echo=True, rate=400.0,
        durations=(4.0, STORM_S))
    # accounting: nothing lost or wrong in either phase
    for t in (calm, totals):
        assert t.lost == 0 and t.wrong == 0 and t.duplicated == 0 and t.stray == 0, t.summary()
        assert not t.client_failures
    # every healthy agent answered every message
    for name in healthy:
        sent, ok, bad = totals.per_agent[name]
        assert sent > 0 and ok == sent and bad == 0, (name, totals.per_agent[name])
    # the crashing agent answered each message with a typed error, and its breaker opened
    sent, ok, bad = totals.per_agent["storm-0"]
    assert ok == 0 and bad == sent
    assert "CIRCUIT_OPEN" in totals.errors, totals.errors
    assert set(totals.errors) <= {"TRAP", "CIRCUIT_OPEN", "AGENT_UNAVAILABLE", "AGENT_FAILED"}
    # the node stayed responsive on its control port
    figures = {q: (percentile(quiet, q), percentile(storm, q)) for q in (50, 90, 99)}
    assert len(quiet) > 50 and len(storm) > 100, (len(quiet), len(storm))
    for q in (50, 90):
        calm_us, storm_us = figures[q]
        assert storm_us <= 2 * calm_us + 2000, figures
    # and the healthy agents still answer after the storm
    reply = call(node.control, "message.send", {"agent": "ok-0", "content": "after"})
    assert reply["content"] == "after"
    assert node.alive()
