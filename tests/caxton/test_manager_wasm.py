"""AgentLifecycleManager with WASM agents, end to end: real wasmtime sandboxes in pykka actors
under real supervisors (restart with backoff, circuit breaker, binary rollback). Short
supervision settings; every wait is bounded polling."""

from __future__ import annotations

import functools
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from caxton import (
    AgentLifecycleManager,
    DeploymentConfig,
    DeploymentFuelLimit,
    DeploymentMemoryLimit,
    HotReloadConfig,
    ResourceRequirements,
    errors,
)
from caxton.deployment import HotReloadStrategy, WasmSecurityPolicy
from caxton.manager import SupervisionSettings
from caxton.messages import Message
from caxton.routing import ReplyFuture
from supervisors import Backoff, CircuitBreaker

FAST = SupervisionSettings(backoff=Backoff(min=0.01, max=0.1),
                           breaker=CircuitBreaker(fail_max=3, reset_timeout=0.5),
                           healthy_after=0.2, shutdown=2.0)
ROOT = Path(__file__).resolve().parents[2]
AGENTS = ROOT / "agents"
ECHO = (AGENTS / "echo.wat").read_bytes()
COUNTER = (AGENTS / "counter.wat").read_bytes()
FLAKY = (AGENTS / "testing" / "flaky.wat").read_bytes()
SPIN = (AGENTS / "testing" / "spin.wat").read_bytes()
ECHO_V2 = (AGENTS / "testing" / "echo_v2.wat").read_bytes()
FORBIDDEN = (AGENTS / "testing" / "forbidden_import.wat").read_bytes()
CONFIG = DeploymentConfig(resource_requirements=ResourceRequirements(
    DeploymentMemoryLimit.from_mb(10), DeploymentFuelLimit(100_000)))
HUNGRY = b"\xff\xff\xff\x7f"  # spin.wat loops ~2**31 times on this: far past 100,000 fuel


@pytest.fixture
def manager() -> Iterator[AgentLifecycleManager]:
    m = AgentLifecycleManager(supervision=FAST)
    yield m
    m.shutdown(timeout=5)


def deploy(m: AgentLifecycleManager, name: str, module: bytes, version: str = "1",
           number: int = 1, config: DeploymentConfig = CONFIG) -> None:
    res = m.deploy_wasm_agent(None, name, version, number, config, module)
    assert res.state == "Running"


def wait_for(pred: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def send_when_up(m: AgentLifecycleManager, name: str, content: Any,
                 timeout: float = 10.0) -> Message:
    """Send until the agent answers (it may be restarting: AGENT_UNAVAILABLE/CIRCUIT_OPEN)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return m.send(name, content, timeout=5)
        except (errors.AgentUnavailable, errors.CircuitOpen):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


# ---------------------------------------------------------------------- value types


@pytest.mark.parametrize("build,fragment", [
    (lambda: DeploymentMemoryLimit.from_mb(0), "positive number of MiB"),
    (lambda: DeploymentMemoryLimit.from_mb(-5), "positive number of MiB"),
    (lambda: DeploymentMemoryLimit(0), "64 KiB"),
    (lambda: DeploymentMemoryLimit(1000), "64 KiB"),
    (lambda: DeploymentFuelLimit(-1), "positive int"),
    (lambda: DeploymentFuelLimit(0), "positive int"),
    (lambda: DeploymentFuelLimit(True), "positive int"),
    (lambda: DeploymentFuelLimit(1.5), "positive int"),  # type: ignore[arg-type]
    (lambda: ResourceRequirements(timeout=0), "positive number of seconds"),
])
def test_invalid_value_types_are_refused_at_construction(
        build: Callable[[], object], fragment: str) -> None:
    with pytest.raises(errors.InvalidArgument, match=fragment) as exc:
        build()
    assert exc.value.code == "INVALID_ARGUMENT"


def test_valid_value_types_round_trip() -> None:
    req = ResourceRequirements(DeploymentMemoryLimit.from_mb(10), DeploymentFuelLimit(100_000))
    assert req.memory.bytes == 10 * 1024 * 1024 and req.memory.mb == 10
    assert ResourceRequirements.from_dict(req.to_dict()) == req
    assert DeploymentConfig.immediate().strategy == "immediate"
    assert DeploymentConfig.canary().strategy == "canary"
    assert HotReloadConfig(HotReloadStrategy.GRACEFUL).strategy == "graceful"
    assert WasmSecurityPolicy.strict() != WasmSecurityPolicy.relaxed()


def test_a_module_failing_validation_is_refused_and_nothing_is_deployed(
        manager: AgentLifecycleManager) -> None:
    with pytest.raises(errors.ValidationFailed) as exc:
        manager.deploy_wasm_agent(None, "bad", "1", 1, DeploymentConfig(
            security_policy=WasmSecurityPolicy.strict()), FORBIDDEN)
    assert exc.value.details
    assert manager.agent_names() == []


# ---------------------------------------------------------------------- lifecycle


def test_every_legal_wasm_transition_through_the_api(manager: AgentLifecycleManager) -> None:
    deploy(manager, "w", ECHO)
    assert manager.send("w", {"a": 1}).content == {"a": 1}
    assert manager.stop_wasm_agent("w", timeout=5).state == "Stopped"
    with pytest.raises(errors.AgentUnavailable, match="Stopped"):
        manager.send("w", "while stopped")
    assert manager.recover("w").state == "Running"
    assert manager.send("w", "back").content == "back"
    manager.stop_wasm_agent("w", timeout=5)
    assert manager.resume("w").state == "Running"
    assert manager.send("w", "resumed").content == "resumed"
    assert manager.disable("w", timeout=5).state == "Stopped"
    hist = [(t["from"], t["to"]) for t in manager.get_agent_by_name("w").lifecycle]
    assert hist == [
        ("Unloaded", "Loaded"), ("Loaded", "Running"),
        ("Running", "Draining"), ("Draining", "Stopped"),
        ("Stopped", "Loaded"), ("Loaded", "Running"),
        ("Running", "Draining"), ("Draining", "Stopped"),
        ("Stopped", "Loaded"), ("Loaded", "Running"),
        ("Running", "Draining"), ("Draining", "Stopped"),
    ]
    manager.remove_wasm_agent("w")
    with pytest.raises(errors.AgentNotFound):
        manager.send("w", "gone")


def test_illegal_wasm_transitions_name_both_states(manager: AgentLifecycleManager) -> None:
    deploy(manager, "w", ECHO)
    with pytest.raises(errors.IllegalTransition) as exc:
        manager.resume("w")
    assert "from Running to Running" in exc.value.message
    manager.stop_wasm_agent("w", timeout=5)
    before = manager.get_agent_by_name("w").lifecycle
    with pytest.raises(errors.IllegalTransition) as exc:
        manager.stop_wasm_agent("w", timeout=5)
    assert "from Stopped to" in exc.value.message and "allowed" in exc.value.message
    assert manager.get_agent_by_name("w").lifecycle == before
    with pytest.raises(errors.InvalidArgument, match="WASM agent"):
        manager.suspend("w")


def test_stop_drains_queued_messages_before_stopping(manager: AgentLifecycleManager) -> None:
    slow = ResourceRequirements(DeploymentMemoryLimit.from_mb(10),
                                DeploymentFuelLimit(50_000_000))
    deploy(manager, "s", SPIN, config=DeploymentConfig(resource_requirements=slow))
    # packed as a4 00 10 00 'x': spin reads 0x001000a4 (about a million) loop rounds
    work = "\x00\x10\x00x"
    assert manager.send("s", work).content == work
    queued = [manager.route(Message(receiver="s", content=work)) for _ in range(20)]
    manager.stop_wasm_agent("s", timeout=10)
    assert all(f.done() for f in queued)
    assert all(f.error is None for f in queued), [f.error for f in queued if f.error]


# ---------------------------------------------------------------------- failures


def test_out_of_fuel_restarts_then_the_breaker_opens_while_others_answer(
        manager: AgentLifecycleManager) -> None:
    deploy(manager, "spin", SPIN)
    deploy(manager, "w", ECHO)
    manager.deploy_config_agent(AGENTS / "echo.md")
    assert manager.send("spin", "x").content == "x"
    with pytest.raises(errors.OutOfFuel) as exc:
        manager.send("spin", HUNGRY)
    assert exc.value.code == "OUT_OF_FUEL" and "'spin'" in exc.value.message
    # restarted: it answers again, and the status shows the restart and the error
    assert send_when_up(manager, "spin", 7).content == 7  # < 4 bytes packed: no spinning
    st = manager.get_agent_by_name("spin")
    assert st.restarts >= 1
    assert st.last_error is not None and "fuel" in st.last_error.lower()
    # repeated failures trip the breaker: CIRCUIT_OPEN, fast, while other agents answer
    codes: list[str] = []
    deadline = time.monotonic() + 10
    while "CIRCUIT_OPEN" not in codes and time.monotonic() < deadline:
        try:
            manager.send("spin", HUNGRY, timeout=5)
            codes.append("ok")
        except errors.CaxtonError as e:
            codes.append(str(e.code))
        assert manager.send("w", "other").content == "other"
        assert manager.send("echo", "other").content["reply"].startswith("other")
        time.sleep(0.01)
    assert "CIRCUIT_OPEN" in codes, codes
    assert set(codes) <= {"OUT_OF_FUEL", "AGENT_UNAVAILABLE", "CIRCUIT_OPEN"}, codes
    st = manager.get_agent_by_name("spin")
    assert st.health_status == "unhealthy"
    assert st.instances[0]["breaker"] == "open"
    assert manager.get_agent_by_name("w").health_status == "healthy"
    # after the reset timeout the half-open probe succeeds and the agent is back
    assert send_when_up(manager, "spin", 8).content == 8
    wait_for(lambda: manager.get_agent_by_name("spin").health_status == "healthy",
             what="spin healthy again")


def test_binary_rollback_when_the_new_versions_breaker_opens(
        manager: AgentLifecycleManager) -> None:
    events: list[tuple[str, str, dict[str, Any]]] = []
    manager._on_event = lambda a, e, d: events.append((a, e, d))
    deploy(manager, "b", ECHO, version="1")
    res = manager.hot_reload_wasm_agent("b", "b", "2", 2, HotReloadConfig(), FLAKY)
    assert res.version == "2"
    assert manager.get_agent_by_name("b").version == "2"
    assert manager.send("b", "fine").content == "fine"
    # v2 traps on "crash"; v1 (echo) does not: keep sending until v1 answers it
    seen: Counter[str] = Counter()

    def v1_answers_crash() -> bool:
        try:
            return bool(manager.send("b", "crash", timeout=5).content == "crash")
        except errors.CaxtonError as e:
            seen[str(e.code)] += 1
            return False

    wait_for(v1_answers_crash, timeout=15, what="automatic rollback to v1")
    assert seen["TRAP"] >= 1
    assert set(seen) <= {"TRAP", "AGENT_UNAVAILABLE", "CIRCUIT_OPEN"}, seen
    wait_for(lambda: manager.get_agent_by_name("b").version == "1", what="current version 1")
    assert any(e == "rollback.automatic" and d["to"] == "1" for _, e, d in events), events
    assert manager.send("b", "crash").content == "crash"


def test_no_rollback_without_an_earlier_version(manager: AgentLifecycleManager) -> None:
    deploy(manager, "f", FLAKY)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            manager.send("f", "crash", timeout=5)
        except errors.CircuitOpen:
            break
        except errors.CaxtonError:
            time.sleep(0.01)
    else:
        pytest.fail("breaker never opened")
    assert manager.get_agent_by_name("f").version == "1"
    assert send_when_up(manager, "f", "ok").content == "ok"


def test_hot_reload_of_counter_keeps_its_count(manager: AgentLifecycleManager) -> None:
    deploy(manager, "c", COUNTER)
    assert [manager.send("c", "tick").content for _ in range(3)] == [1, 2, 3]
    manager.hot_reload_wasm_agent("c", "c", "2", 2, HotReloadConfig(), COUNTER)
    assert manager.get_agent_by_name("c").version == "2"
    assert manager.send("c", "tick").content == 4
    # without state hand-over the new instance starts from zero
    manager.hot_reload_wasm_agent("c", "c", "3", 3, HotReloadConfig(preserve_state=False),
                                  COUNTER)
    assert manager.send("c", "tick").content == 1


def test_hot_reload_with_an_invalid_module_keeps_the_old_one(
        manager: AgentLifecycleManager) -> None:
    deploy(manager, "w", ECHO)
    with pytest.raises(errors.ValidationFailed):
        manager.hot_reload_wasm_agent("w", "w", "2", 2, HotReloadConfig(
            security_policy=WasmSecurityPolicy.strict()), FORBIDDEN)
    assert manager.get_agent_by_name("w").version == "1"
    assert manager.send("w", "still").content == "still"


# ---------------------------------------------------------------------- status


def test_wasm_status_fields(manager: AgentLifecycleManager) -> None:
    deploy(manager, "w", ECHO_V2)
    st0 = manager.get_wasm_agent_status("w")
    for i in range(5):
        manager.send("w", i)
    st = manager.get_agent_by_name("w").to_dict()
    assert st["type"] == "wasm" and st["state"] == "Running" and st["health"] == "healthy"
    assert st["memory_allocated"] >= 65536
    assert st["fuel_consumed"] > st0.fuel_consumed >= 0
    assert st["uptime"] > 0 and st["restarts"] == 0 and st["last_error"] is None
    assert st["details"]["requirements"]["fuel"] == 100_000
    assert st["details"]["stats"]["calls"] == 5
    assert manager.get_agent_type("w") == "wasm"
    assert [s.name for s in manager.list_wasm_agents()] == ["w"]


# ---------------------------------------------------------------------- exactly once


def test_every_send_ends_in_exactly_one_outcome_during_restarts(
        manager: AgentLifecycleManager) -> None:
    deploy(manager, "f", FLAKY)
    deploy(manager, "w", ECHO)
    manager.deploy_config_agent(AGENTS / "echo.md")
    outcomes: Counter[str] = Counter()
    per_target: dict[str, Counter[str]] = {t: Counter() for t in ("f", "w", "echo")}
    callbacks: Counter[int] = Counter()
    lock = threading.Lock()
    futures: list[tuple[int, ReplyFuture]] = []
    stop = threading.Event()
    seq = iter(range(1 << 30))

    def record(i: int, target: str, f: ReplyFuture) -> None:
        with lock:
            callbacks[i] += 1
            if f.error is not None:
                assert isinstance(f.error, errors.CaxtonError)
                key = str(f.error.code)
            else:
                assert f.value is not None
                key = "reply"
            outcomes[key] += 1
            per_target[target][key] += 1

    def sender(target: str, crash_every: int) -> None:
        while not stop.is_set():
            i = next(seq)
            content = "crash" if crash_every and i % crash_every == 0 else f"m{i}"
            f = manager.route(Message(receiver=target, content=content,
                                      conversation_id=f"c{i % 7}"))
            f.add_done_callback(functools.partial(record, i, target))
            with lock:
                futures.append((i, f))
            time.sleep(0.0005)

    threads = [threading.Thread(target=sender, args=a)
               for a in (("f", 15), ("f", 0), ("w", 0), ("echo", 0))]
    for t in threads:
        t.start()
    time.sleep(1.5)
    stop.set()
    for t in threads:
        t.join()
    for _, f in futures:
        try:
            f.get(timeout=10)
        except errors.CaxtonError:
            pass
    wait_for(lambda: sum(callbacks.values()) == len(futures), timeout=5,
             what="every callback")
    assert len(futures) > 200
    assert all(f.done() for _, f in futures)
    assert all(callbacks[i] == 1 for i, _ in futures), "a future completed twice or never"
    assert sum(outcomes.values()) == len(futures)
    assert outcomes["TRAP"] >= 1 and per_target["f"]["reply"] >= 1
    # the crashing agent never costs the others a message
    assert set(per_target["w"]) == {"reply"} and set(per_target["echo"]) == {"reply"}, \
        per_target
    assert set(outcomes) <= {"reply", "TRAP", "AGENT_UNAVAILABLE", "CIRCUIT_OPEN"}, outcomes
    assert manager.send("w", "still fine").content == "still fine"


def test_housekeeping_keeps_polling_an_agent_with_a_rollout_when_others_wait_their_turn(
        manager: AgentLifecycleManager, monkeypatch: pytest.MonkeyPatch) -> None:
    """With more agents than one pass polls, the idle ones wait for their slice, but an agent
    with a version to retire (two live instances) is polled every pass."""
    import caxton.manager as manager_module

    monkeypatch.setattr(manager_module, "_POLL_SLICE_MIN", 1)
    monkeypatch.setattr(manager_module, "_POLL_ROUND_TICKS", 100_000)
    for i in range(40):  # a round over the idle agents takes 41 passes (about 2 s)
        deploy(manager, f"idle{i}", ECHO)
    deploy(manager, "c", COUNTER)
    manager.hot_reload_wasm_agent("c", "c", "2", 2, HotReloadConfig(), COUNTER)
    # the old instance retires on a housekeeping pass: within a few passes, not a round
    wait_for(lambda: len(manager._agents["c"].handles) == 1, timeout=1.0,
             what="the old version of c retired")
    assert manager.send("c", "tick").content == 1
    wait_for(lambda: "c" not in manager._hot, timeout=1.0, what="c no longer hot")
