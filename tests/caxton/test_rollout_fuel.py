"""Fuel per message reaches rollout analysis: a WASM canary whose new version burns more than
1.5x the stable version's fuel per message is rolled back for that reason (the two modules
answer identically and equally fast, so fuel is the only signal that differs)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from caxton.deployment import DeploymentConfig, HotReloadConfig, HotReloadStrategy
from caxton.manager import AgentLifecycleManager
from caxton.rollout import AnalysisThresholds, Outcome, RolloutConfig, RolloutStatus
from sandbox.testing import abi_module

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]
ECHO = (ROOT / "agents/echo.wat").read_bytes()  # 8 fuel per message


def burner(iterations: int) -> bytes:
    """Echo after a busy loop of ``iterations`` (a few fuel each; nanoseconds in all)."""
    return abi_module(f"""(local $i i32)
    (local.set $i (i32.const {iterations}))
    (loop $spin
      (local.set $i (i32.sub (local.get $i) (i32.const 1)))
      (br_if $spin (local.get $i)))
    (i64.or (i64.const 0x40000000000) (i64.extend_i32_u (local.get $len)))""")


# Latency is not judged here (a loaded 2-core machine has p99 spikes of tens of ms that say
# nothing about a version): only the fuel check, at its default ratio (1.5), can fail.
LATENCY_BLIND = AnalysisThresholds(min_requests=5, p99_slack_ms=10_000.0, max_p99_ratio=1000.0)


@pytest.fixture
def manager() -> Iterator[AgentLifecycleManager]:
    m = AgentLifecycleManager(seed=3, router_pin_ttl=None)
    yield m
    m.shutdown(timeout=5)


def canary(m: AgentLifecycleManager, module: bytes, thresholds: AnalysisThresholds
           ) -> RolloutStatus:
    """Deploy echo as v1, canary ``module`` as v2 under a steady sender; the final status."""
    m.deploy_wasm_agent(None, "w", "1", 1, DeploymentConfig.immediate(), ECHO)
    stop = threading.Event()
    answered: list[str] = []

    def send() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            answered.append(m.send("w", f"m{n}", timeout=10).content)
            time.sleep(0.002)

    sender = threading.Thread(target=send)
    sender.start()
    try:
        time.sleep(0.2)
        cfg = RolloutConfig(steps=(20, 100), step_duration=0.6, drain_timeout=1.0,
                            thresholds=thresholds)
        m.hot_reload_wasm_agent("w", "w", "2", 2, HotReloadConfig(
            strategy=HotReloadStrategy.CANARY, rollout=cfg), module, wait=False)
        deadline = time.monotonic() + 20
        while str(m.reload_status("w").outcome) == "running":
            assert time.monotonic() < deadline, "the canary did not end"
            time.sleep(0.02)
        watcher = m._agent("w").watcher
        if watcher is not None:
            watcher.join(5)
    finally:
        stop.set()
        sender.join(15)
    assert answered and all(a.startswith("m") for a in answered)  # both versions echo
    return m.reload_status("w")


def test_canary_burning_more_fuel_per_message_is_rolled_back_for_it(
        manager: AgentLifecycleManager) -> None:
    status = canary(manager, burner(20), LATENCY_BLIND)  # ~100 fuel per message vs 8
    assert status.outcome is Outcome.ROLLED_BACK, (status.outcome, status.reason)
    assert status.step == "20%"  # within its first step
    last = status.analyses[-1]
    assert last.failed and len(last.reasons) == 1, last.reasons
    assert last.reasons[0].startswith("fuel/message"), last.reasons
    assert last.candidate.fuel_per_message is not None and last.stable.fuel_per_message
    assert last.candidate.fuel_per_message > 1.5 * last.stable.fuel_per_message
    assert manager.get_agent_by_name("w").version == "1"
    assert manager.send("w", "after").content == "after"


def test_same_canary_passes_when_fuel_is_not_judged(manager: AgentLifecycleManager) -> None:
    """The control: with the fuel check off, the very same canary completes."""
    blind = AnalysisThresholds(min_requests=5, p99_slack_ms=10_000.0, max_p99_ratio=1000.0,
                               max_fuel_ratio=None)
    status = canary(manager, burner(20), blind)
    assert status.outcome is Outcome.SUCCEEDED, status.reason
    assert all(a.candidate.fuel_per_message for a in status.analyses)  # fuel was reported
    assert manager.get_agent_by_name("w").version == "2"
