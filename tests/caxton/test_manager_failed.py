"""The Failed state: an agent whose current version crash-loops until its circuit breaker
opens is Failed; it heals by itself when the breaker's trial restart stays up, and
``recover`` brings it back at once. Real sandboxes, actors and supervisors."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from caxton import (
    AgentLifecycleManager,
    DeploymentConfig,
    DeploymentFuelLimit,
    DeploymentMemoryLimit,
    ResourceRequirements,
    errors,
)
from caxton.manager import SupervisionSettings
from supervisors import Backoff, CircuitBreaker

AGENTS = Path(__file__).resolve().parents[2] / "agents"
ECHO = (AGENTS / "echo.wat").read_bytes()
SPIN = (AGENTS / "testing" / "spin.wat").read_bytes()
HUNGRY = b"\xff\xff\xff\x7f"  # spin.wat loops ~2**31 times on this: far past its fuel
CONFIG = DeploymentConfig(resource_requirements=ResourceRequirements(
    DeploymentMemoryLimit.from_mb(10), DeploymentFuelLimit(100_000)))


def _settings(reset_timeout: float) -> SupervisionSettings:
    return SupervisionSettings(backoff=Backoff(min=0.01, max=0.05),
                               breaker=CircuitBreaker(fail_max=3, reset_timeout=reset_timeout),
                               healthy_after=0.2, shutdown=2.0)


@pytest.fixture
def stuck() -> Iterator[AgentLifecycleManager]:
    """A manager whose breakers stay open for a minute (no self-healing during a test)."""
    m = AgentLifecycleManager(supervision=_settings(reset_timeout=60.0))
    yield m
    m.shutdown(timeout=5)


def _wait(pred: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)


def _crash_loop_wasm(m: AgentLifecycleManager, name: str) -> list[str]:
    codes: list[str] = []
    deadline = time.monotonic() + 10
    while m.get_agent_by_name(name).state != "Failed" and time.monotonic() < deadline:
        try:
            m.send(name, HUNGRY, timeout=5)
            codes.append("ok")
        except errors.CaxtonError as exc:
            codes.append(str(exc.code))
        time.sleep(0.01)
    return codes


def test_a_crash_looping_wasm_agent_without_an_older_version_is_failed(
        stuck: AgentLifecycleManager) -> None:
    stuck.deploy_wasm_agent(None, "spin", "1", 1, CONFIG, SPIN)
    stuck.deploy_wasm_agent(None, "ok", "1", 1, CONFIG, ECHO)
    codes = _crash_loop_wasm(stuck, "spin")
    st = stuck.get_agent_by_name("spin")
    assert st.state == "Failed", codes
    assert st.health_status == "unhealthy"
    assert st.last_error is not None and "fuel" in st.last_error.lower()
    # the lifecycle history says why
    assert any(t["to"] == "Failed" and "circuit breaker opened" in (t["reason"] or "")
               for t in st.to_dict()["lifecycle"]), st.to_dict()["lifecycle"]
    # messages are refused fast with the breaker's typed error; others are untouched
    with pytest.raises(errors.CircuitOpen):
        stuck.send("spin", 1, timeout=5)
    assert stuck.send("ok", "still here").content == "still here"
    assert stuck.get_agent_by_name("ok").state == "Running"


def test_recover_brings_a_failed_wasm_agent_back_at_once(stuck: AgentLifecycleManager) -> None:
    stuck.deploy_wasm_agent(None, "spin", "1", 1, CONFIG, SPIN)
    _crash_loop_wasm(stuck, "spin")
    assert stuck.get_agent_by_name("spin").state == "Failed"
    result = stuck.recover("spin")
    assert result.state == "Running"
    # the breaker (open for a minute) was overridden by the operator's recover
    _wait(lambda: _answers(stuck, "spin", 7), "spin answering after recover")
    assert stuck.get_agent_by_name("spin").state == "Running"


def _answers(m: AgentLifecycleManager, name: str, content: Any) -> bool:
    try:
        return bool(m.send(name, content, timeout=5).content == content)
    except (errors.AgentUnavailable, errors.CircuitOpen):
        return False


def test_a_failed_agent_heals_when_the_breakers_trial_restart_stays_up() -> None:
    m = AgentLifecycleManager(supervision=_settings(reset_timeout=0.3))
    try:
        m.deploy_wasm_agent(None, "spin", "1", 1, CONFIG, SPIN)
        _crash_loop_wasm(m, "spin")
        assert m.get_agent_by_name("spin").state == "Failed"
        # no more poison: the half-open trial instance runs healthy_after and closes it
        _wait(lambda: m.get_agent_by_name("spin").state == "Running", "self-healing")
        assert m.send("spin", 5, timeout=5).content == 5
        assert m.get_agent_by_name("spin").health_status == "healthy"
    finally:
        m.shutdown(timeout=5)


def test_a_crash_looping_config_agent_is_failed_and_recovers(
        stuck: AgentLifecycleManager) -> None:
    stuck.deploy_config_agent(AGENTS / "echo.md")
    assert stuck.send("echo", "hi").content["reply"].startswith("hi")
    agent = stuck._agents["echo"]

    def crash_current() -> None:
        handle = agent.handles.get(agent.current_label)
        ref = handle.ref if handle is not None else None
        if ref is not None and ref.is_alive():
            # a tell of something that is not a Message raises in the actor: it crashes
            # (an ask would only return the error to its caller)
            ref.tell("not a message")

    deadline = time.monotonic() + 10
    while stuck.get_agent_by_name("echo").state != "Failed" and time.monotonic() < deadline:
        crash_current()
        time.sleep(0.02)
    st = stuck.get_agent_by_name("echo")
    assert st.state == "Failed" and st.health_status == "unhealthy"
    with pytest.raises(errors.CircuitOpen):
        stuck.send("echo", "hi", timeout=5)
    assert stuck.recover("echo").state == "Active"
    _wait(lambda: _config_answers(stuck), "echo answering after recover")


def _config_answers(m: AgentLifecycleManager) -> bool:
    try:
        return bool(m.send("echo", "back", timeout=5).content["reply"].startswith("back"))
    except (errors.AgentUnavailable, errors.CircuitOpen):
        return False
