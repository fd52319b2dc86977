"""Hostile WASM under load: a fuel bomb, a memory bomb and a deep recursion deployed beside
healthy echo agents must not cost the healthy agents more than 20 % of their throughput.

Fair reference: the same three extra agents as plain echo modules, driven by the same paced
extra client (30 msg/s each). So both runs carry the same extra traffic and process count; the
only difference is that in one the extra agents are hostile. Rounds alternate (echo, hostile,
echo, hostile, ...) and the medians are compared, which absorbs this machine's run-to-run swing.
"""

from __future__ import annotations

import statistics

from benchmarks.load.clients import ClientSpec, run_clients
from benchmarks.load.node import NodeProcess
from benchmarks.load.scenarios import TESTING_DIR, AgentKind, agent_kind, call, windowed_calls

ROUND_S = 2.5
ROUNDS = 3

HOSTILE = {
    "infinite_loop": {"fuel": 2_000_000},
    "memory_bomb": {"memory_bytes": 2 * 1024 * 1024},
    "deep_recursion": {},
}


def _round(endpoint: str, healthy: list[str], extra: list[str]) -> tuple[float, dict[str, int]]:
    specs = [ClientSpec(endpoint=endpoint, index=i, agents=healthy, window=8, duration=ROUND_S,
                        timeout=5.0, hard_cap_s=60) for i in range(2)]
    specs.append(ClientSpec(endpoint=endpoint, index=2, agents=extra, window=4,
                            duration=ROUND_S, rate=30.0 * len(extra), timeout=5.0,
                            hard_cap_s=60))
    totals = run_clients(specs)
    assert totals.lost == 0 and totals.wrong == 0 and totals.duplicated == 0, totals.summary()
    assert totals.stray == 0 and not totals.client_failures
    ok = 0
    for name in healthy:
        sent, good, bad = totals.per_agent[name]
        assert good == sent and bad == 0, (name, totals.per_agent[name], totals.errors)
        ok += good
    extra_errors = {k: v for k, v in totals.errors.items()}
    return ok / totals.elapsed_s, extra_errors


def test_hostile_modules_do_not_slow_healthy_agents(node: NodeProcess) -> None:
    echo = agent_kind("wasm-echo")
    healthy = ["good-0", "good-1"]
    calm_extra = [f"calm-{m}" for m in HOSTILE]
    bad_extra = [f"bad-{m}" for m in HOSTILE]
    reqs = [("agents.deploy", echo.deploy_args(n)) for n in healthy + calm_extra]
    for module, limits in HOSTILE.items():
        kind = AgentKind(module, ".wat", (TESTING_DIR / f"{module}.wat").read_bytes(), True)
        reqs.append(("agents.deploy", kind.deploy_args(f"bad-{module}", **limits)))
    out = windowed_calls(node.control, reqs, 8)
    assert out["ok"] == len(reqs), out
    calm_rates: list[float] = []
    bad_rates: list[float] = []
    seen: dict[str, int] = {}
    for _ in range(ROUNDS):
        calm_rates.append(_round(node.control, healthy, calm_extra)[0])
        rate, errors = _round(node.control, healthy, bad_extra)
        bad_rates.append(rate)
        for k, v in errors.items():
            seen[k] = seen.get(k, 0) + v
    # the hostile modules were stopped by their budgets, each with a typed error
    assert seen, "the hostile agents never failed"
    assert set(seen) <= {"OUT_OF_FUEL", "MEMORY_LIMIT", "TRAP", "DEADLINE_EXCEEDED",
                         "CIRCUIT_OPEN", "AGENT_UNAVAILABLE", "AGENT_FAILED"}, seen
    calm, bad = statistics.median(calm_rates), statistics.median(bad_rates)
    assert bad >= 0.8 * calm, {"calm": calm_rates, "hostile": bad_rates, "errors": seen}
    assert call(node.control, "message.send", {"agent": "good-0", "content": "x"})["content"] \
        == "x"
    assert node.alive()
