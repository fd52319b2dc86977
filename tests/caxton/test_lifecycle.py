"""Lifecycle state machines: every legal and every illegal transition of both machines."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from caxton.errors import ErrorCode, IllegalTransition, InvalidArgument
from caxton.lifecycle import (
    CONFIG_AGENT_MACHINE,
    WASM_AGENT_MACHINE,
    ConfigAgentState,
    Lifecycle,
    StateMachine,
    TransitionRecord,
    WasmAgentState,
    config_agent_lifecycle,
    wasm_agent_lifecycle,
)

C = ConfigAgentState
W = WasmAgentState

# The expected tables, written out edge by edge independently of the implementation.
CONFIG_EDGES = {
    (C.UNVALIDATED, C.VALIDATED),
    (C.VALIDATED, C.REGISTERED),
    (C.REGISTERED, C.ACTIVE),
    (C.REGISTERED, C.INACTIVE),
    (C.ACTIVE, C.SUSPENDED),
    (C.SUSPENDED, C.ACTIVE),
    (C.ACTIVE, C.INACTIVE),
    (C.SUSPENDED, C.INACTIVE),
    (C.INACTIVE, C.ACTIVE),
    (C.INACTIVE, C.VALIDATED),
    (C.FAILED, C.VALIDATED),
    (C.FAILED, C.REGISTERED),
    (C.FAILED, C.INACTIVE),
    *((s, C.FAILED) for s in C if s is not C.FAILED),
}
WASM_EDGES = {
    (W.UNLOADED, W.LOADED),
    (W.LOADED, W.RUNNING),
    (W.LOADED, W.UNLOADED),
    (W.RUNNING, W.DRAINING),
    (W.DRAINING, W.RUNNING),
    (W.DRAINING, W.STOPPED),
    (W.STOPPED, W.LOADED),
    (W.STOPPED, W.UNLOADED),
    (W.FAILED, W.LOADED),
    (W.FAILED, W.UNLOADED),
    *((s, W.FAILED) for s in W if s is not W.FAILED),
}

CASES: list[Any] = [
    pytest.param(CONFIG_AGENT_MACHINE, a, b, (a, b) in CONFIG_EDGES, id=f"config-{a}-{b}")
    for a, b in itertools.product(C, C)
] + [
    pytest.param(WASM_AGENT_MACHINE, a, b, (a, b) in WASM_EDGES, id=f"wasm-{a}-{b}")
    for a, b in itertools.product(W, W)
]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        self.now += 1.5
        return self.now


@pytest.mark.parametrize(("machine", "src", "dst", "legal"), CASES)
def test_every_transition(machine: StateMachine[Any], src: Any, dst: Any, legal: bool) -> None:
    clock = FakeClock()
    lc: Lifecycle[Any] = Lifecycle(machine, subject="agent-x", initial=src, clock=clock)
    assert lc.can(dst) is legal
    if legal:
        rec = lc.transition(dst, reason="test")
        assert lc.state is dst
        assert rec == TransitionRecord(src, dst, clock.now, "test")
        assert lc.history == [rec]
        assert lc.entered_at == clock.now
    else:
        with pytest.raises(IllegalTransition) as info:
            lc.transition(dst)
        err = info.value
        assert err.code is ErrorCode.ILLEGAL_TRANSITION
        assert src.value in err.message and dst.value in err.message
        assert "agent-x" in err.message
        allowed = sorted(s.value for s in machine.allowed(src))
        for name in allowed:
            assert name in err.message.split("allowed from", 1)[1]
        assert err.details[0]["allowed"] == allowed
        assert err.details[0]["from"] == src.value and err.details[0]["to"] == dst.value
        assert lc.state is src and lc.history == []


def test_tables_match_expected_exactly() -> None:
    got = {(a, b) for a in C for b in CONFIG_AGENT_MACHINE.allowed(a)}
    assert got == CONFIG_EDGES
    got_w = {(a, b) for a in W for b in WASM_AGENT_MACHINE.allowed(a)}
    assert got_w == WASM_EDGES


def test_self_loop_is_illegal_and_says_so() -> None:
    lc = config_agent_lifecycle("p", initial=C.ACTIVE)
    with pytest.raises(IllegalTransition, match="already in that state"):
        lc.transition(C.ACTIVE)


def test_guide_happy_paths_with_history_and_clock() -> None:
    clock = FakeClock()
    lc = config_agent_lifecycle("DataProcessor", clock=clock)
    assert lc.state is C.UNVALIDATED
    for s in ["Validated", "registered", "ACTIVE", C.SUSPENDED, C.ACTIVE, C.INACTIVE]:
        lc.transition(s, reason=f"to {s}")
    assert lc.state is C.INACTIVE
    hist = lc.history
    assert [r.to_state for r in hist] == [C.VALIDATED, C.REGISTERED, C.ACTIVE, C.SUSPENDED,
                                          C.ACTIVE, C.INACTIVE]
    assert [r.at for r in hist] == [1003.0, 1004.5, 1006.0, 1007.5, 1009.0, 1010.5]
    assert all(a.to_state is b.from_state for a, b in itertools.pairwise(hist))
    d = lc.to_dict()
    assert d["state"] == "Inactive" and d["allowed"] == ["Active", "Failed", "Validated"]
    assert d["history"][0] == {"from": "Unvalidated", "to": "Validated", "at": 1003.0,
                               "reason": "to Validated"}

    w = wasm_agent_lifecycle("w1", clock=clock)
    for ws in [W.LOADED, W.RUNNING, W.DRAINING, W.STOPPED]:
        w.transition(ws)
    assert w.state is W.STOPPED


def test_unknown_state_name_is_invalid_argument() -> None:
    lc = wasm_agent_lifecycle()
    with pytest.raises(InvalidArgument, match="Unloaded, Loaded"):
        lc.transition("Exploded")
    with pytest.raises(InvalidArgument):
        lc.can("Active")  # a config-agent state, not a wasm one
    with pytest.raises(InvalidArgument):
        config_agent_lifecycle(initial="nope")


def test_listeners_notified_in_order_and_failures_isolated() -> None:
    lc = wasm_agent_lifecycle("w")
    seen: list[tuple[str, str]] = []

    def bad(_lc: Lifecycle[Any], _r: TransitionRecord[Any]) -> None:
        raise RuntimeError("listener bug")

    def good(l2: Lifecycle[Any], r: TransitionRecord[Any]) -> None:
        assert l2.state is r.to_state  # notified after the change
        seen.append((r.from_state.value, r.to_state.value))

    lc.add_listener(bad)
    remove = lc.add_listener(good)
    lc.transition(W.LOADED)
    lc.transition(W.RUNNING)
    remove()
    remove()  # idempotent
    lc.transition(W.DRAINING)
    assert seen == [("Unloaded", "Loaded"), ("Loaded", "Running")]
    assert lc.state is W.DRAINING


def test_illegal_transition_notifies_nobody() -> None:
    lc = wasm_agent_lifecycle()
    calls: list[object] = []
    lc.add_listener(lambda *a: calls.append(a))
    with pytest.raises(IllegalTransition):
        lc.transition(W.RUNNING)
    assert calls == []


def test_fail_from_anywhere_and_idempotent() -> None:
    for s in C:
        lc = config_agent_lifecycle(initial=s)
        rec = lc.fail("boom")
        if s is C.FAILED:
            assert rec is None
        else:
            assert rec is not None and rec.reason == "boom" and lc.state is C.FAILED
        assert lc.fail("again") is None


def test_history_is_bounded() -> None:
    lc = config_agent_lifecycle(initial=C.ACTIVE, history_limit=3)
    for _ in range(5):
        lc.transition(C.SUSPENDED)
        lc.transition(C.ACTIVE)
    assert len(lc.history) == 3
    assert lc.history[-1].to_state is C.ACTIVE
    with pytest.raises(InvalidArgument):
        config_agent_lifecycle(history_limit=0)


def test_machine_rejects_bad_tables() -> None:
    with pytest.raises(ValueError, match="self-loop"):
        StateMachine("x", W, W.UNLOADED, {s: frozenset({s}) for s in W})
    with pytest.raises(ValueError, match="lacks"):
        StateMachine("x", W, W.UNLOADED, {W.UNLOADED: frozenset()})
