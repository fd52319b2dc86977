"""Config agents at production shape, against real nodes (issue: concurrent conversations,
no thread per agent, tenant work that cannot stop the node).

Four figures, each beside a baseline from the same run, each repeated (min / median / max):

1. **model-bound**: 20 agents x 200 conversations in flight on a fake model answering in
   200 ms (its own process) — achieved rate vs the ideal ``in-flight / latency``.
2. **config echo vs WASM echo**: the same node, alternating short phases (WASM echo, config
   echo, WASM, config ...) — the ratio of each adjacent pair.
3. **hostile tenant**: 10 healthy config echo agents at a fixed pace; their p99 with nobody
   else (quiet) vs while other agents render nested template loops, run a catastrophic
   regex and time out on a large CSV (each attacker keeps one request in flight and, when
   refused, retries after 100 ms); ``node.status`` probed every 20 ms throughout. The
   report also gives the p99 with two plain ``SCHED_IDLE`` spinner processes instead of the
   attackers: the floor that any computing tenant costs on this machine.
4. **threads**: the node's thread count empty and with N config agents (``--agents``).

Run::

    python3 -m benchmarks.bench_config                 # all four, 3 repeats
    python3 -m benchmarks.bench_config --only threads --agents 10000

Every loop is bounded in count and time; the nodes are real ``python -m caxton`` processes
on loopback, stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.load.clients import run_clients
from benchmarks.load.config_model import ModelProcess, agent_text, node_cpu
from benchmarks.load.node import NodeProcess
from benchmarks.load.scenarios import (
    AGENTS_DIR,
    AgentKind,
    LoadConfig,
    control_probe,
    deploy_many,
    specs_for,
)

ECHO_MD = (AGENTS_DIR / "echo.md").read_text()
ECHO_WAT = (AGENTS_DIR / "echo.wat").read_bytes()


def _mmm(values: list[float]) -> dict[str, float]:
    return {"min": round(min(values), 3), "median": round(statistics.median(values), 3),
            "max": round(max(values), 3)}


def _threads(pid: int | None) -> int:
    assert pid is not None
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return -1


def model_bound(repeats: int, seconds: float) -> dict[str, Any]:
    """Figure 1."""
    cfg = LoadConfig(agents=20, clients=2, window=100, duration=seconds, timeout=60.0)
    runs: list[dict[str, Any]] = []
    with ModelProcess(0.2) as model, NodeProcess() as node:
        kind = AgentKind("config-model", ".md", agent_text(model.base_url), False)
        names = [f"m{i}" for i in range(cfg.agents)]
        dep = deploy_many(node.control, kind, names, 8)
        assert dep["ok"] == len(names), dep
        for _ in range(repeats):
            specs = specs_for(cfg, node.control, names, exact_echo=False,
                              conversations=cfg.window)
            cpu0, t0 = node_cpu(node.pid), time.monotonic()
            totals = run_clients(specs)
            cpu1, elapsed = node_cpu(node.pid), time.monotonic() - t0
            good = totals.replied / elapsed
            runs.append({"rate": round(good, 1), "ideal": 1000.0,
                         "ratio": round(good / 1000.0, 3),
                         "cpu_us_per_msg": round((cpu1 - cpu0) / max(1, totals.answered) * 1e6)
                         if cpu0 is not None and cpu1 is not None else None,
                         "errors": dict(totals.errors), "lost": totals.lost})
    return {"runs": runs, "ratio": _mmm([r["ratio"] for r in runs]), "target": ">= 0.8"}


def echo_ratio(pairs: int, seconds: float) -> dict[str, Any]:
    """Figure 2."""
    cfg = LoadConfig(agents=10, clients=2, window=16, duration=seconds)
    rows: list[dict[str, Any]] = []
    with NodeProcess() as node:
        wasm = AgentKind("wasm-echo", ".wat", ECHO_WAT, True)
        conf = AgentKind("config-echo", ".md", ECHO_MD, False)
        wn, cn = [f"w{i}" for i in range(10)], [f"c{i}" for i in range(10)]
        assert deploy_many(node.control, wasm, wn, 8)["ok"] == 10
        assert deploy_many(node.control, conf, cn, 8)["ok"] == 10
        for _ in range(pairs):
            w = run_clients(specs_for(cfg, node.control, wn, exact_echo=True))
            c = run_clients(specs_for(cfg, node.control, cn, exact_echo=False))
            rows.append({"wasm": round(w.rate, 1), "config": round(c.rate, 1),
                         "ratio": round(c.rate / w.rate, 3) if w.rate else 0.0,
                         "wrong": w.wrong + c.wrong, "errors": {**w.errors, **c.errors}})
    return {"pairs": rows, "ratio": _mmm([r["ratio"] for r in rows]), "target": ">= 0.25"}


HOSTILE_MD = {
    # loops over the message: validation cannot refuse them, only a killed worker stops them
    "loops": ("{% for a in request %}{% for b in request %}{% for c in request %}{% endfor %}"
              "{% endfor %}{% endfor %}", "[]", "  response_timeout: 1s\n"),
    "regex": ("{{ request }}", "[json_validator]", "  tool_call_timeout: 1s\n"),
    "csv": ("{{ request }}", "[csv_parser]", "  tool_call_timeout: 0.05s\n"),
}
EVIL = {
    "loops": "x" * 3000,
    "regex": {"tool": "json_validator", "arguments": {
        "schema": {"type": "string", "pattern": "^(a+)+$"}, "document": "a" * 64 + "!"}},
    "csv": {"tool": "csv_parser", "arguments": {
        "text": "\n".join(f"{i},{i * 2},name {i}" for i in range(120_000))}},
}


def _hostile_md(name: str, template: str, tools: str, limits: str) -> str:
    return (f"---\nname: {name}\ncapabilities: [echo]\ntools: {tools}\nresource_limits:\n"
            f"{limits}llm: {{provider: echo}}\nuser_prompt_template: {json.dumps(template)}\n"
            "---\nhostile\n")


def hostile(repeats: int, seconds: float) -> dict[str, Any]:
    """Figure 3."""
    from caxton.control.client import ControlClient

    cfg = LoadConfig(agents=10, clients=1, window=4, duration=seconds)
    runs: list[dict[str, Any]] = []
    with NodeProcess() as node:
        conf = AgentKind("config-echo", ".md", ECHO_MD, False)
        names = [f"h{i}" for i in range(10)]
        assert deploy_many(node.control, conf, names, 8)["ok"] == 10
        with ControlClient(node.control, timeout=30) as client:
            for key, (tpl, tools, limits) in HOSTILE_MD.items():
                client.call("agents.deploy", {"file_name": f"{key}.md",
                                              "text": _hostile_md(f"bad-{key}", tpl, tools,
                                                                  limits)})

        def phase(with_hostile: bool) -> tuple[dict[str, Any], list[float]]:
            stop = threading.Event()
            probe: list[float] = []
            hostile_codes: dict[str, int] = {}
            threads = [threading.Thread(target=control_probe,
                                        args=(node.control, stop, probe))]
            if with_hostile:
                def attack(key: str) -> None:
                    with ControlClient(node.control, timeout=30) as c:
                        while not stop.is_set():
                            try:
                                c.call("message.send", {"agent": f"bad-{key}",
                                                        "content": EVIL[key], "timeout": 20})
                                code = "ok"
                            except Exception as exc:
                                code = str(getattr(exc, "code", type(exc).__name__))
                            hostile_codes[code] = hostile_codes.get(code, 0) + 1
                            if code in ("CIRCUIT_OPEN", "AGENT_UNAVAILABLE"):
                                # a refused client retries after a pause; a tight loop of
                                # 2.5 MB frames would measure control-port flooding instead
                                stop.wait(0.1)
                threads += [threading.Thread(target=attack, args=(k,)) for k in HOSTILE_MD]
            for t in threads:
                t.start()
            totals = run_clients(specs_for(cfg, node.control, names, exact_echo=False,
                                           rate=400.0))
            stop.set()
            for t in threads:
                t.join(30)
            return {"p99_us": totals.percentile(99), "p50_us": totals.percentile(50),
                    "replied": totals.replied, "errors": dict(totals.errors),
                    "hostile": hostile_codes}, probe

        import subprocess
        import sys

        def spinners_phase() -> dict[str, Any]:
            procs = [subprocess.Popen(["chrt", "-i", "0", sys.executable, "-c",
                                       "while True: pass"]) for _ in range(2)]
            try:
                return phase(False)[0]
            finally:
                for proc in procs:
                    proc.kill()
                    proc.wait(5)

        for _ in range(repeats):
            quiet, qprobe = phase(False)
            floor = spinners_phase()
            loud, lprobe = phase(True)
            runs.append({"quiet": quiet, "hostile": loud, "idle_spinners": floor,
                         "p99_ratio": round(loud["p99_us"] / quiet["p99_us"], 3),
                         "spinner_floor_ratio": round(floor["p99_us"] / quiet["p99_us"], 3),
                         # the probe records microseconds
                         "node_status_max_ms": round(max(qprobe + lprobe) / 1000, 1),
                         "node_status_p99_ms": round(
                             statistics.quantiles(lprobe, n=100)[98] / 1000, 1)})
    return {"runs": runs, "p99_ratio": _mmm([r["p99_ratio"] for r in runs]),
            "spinner_floor_ratio": _mmm([r["spinner_floor_ratio"] for r in runs]),
            "node_status_max_ms": _mmm([r["node_status_max_ms"] for r in runs]),
            "target": "p99 ratio <= 2, node.status < 100 ms"}


def threads(agents: int) -> dict[str, Any]:
    """Figure 4."""
    with NodeProcess() as node:
        empty = _threads(node.pid)
        conf = AgentKind("config-echo", ".md", ECHO_MD, False)
        names = [f"t{i}" for i in range(agents)]
        t0 = time.monotonic()
        dep = deploy_many(node.control, conf, names, 8)
        elapsed = time.monotonic() - t0
        from caxton.control.client import ControlClient

        with ControlClient(node.control, timeout=30) as client:
            for n in names[:: max(1, agents // 50)]:
                client.call("message.send", {"agent": n, "content": "ping"})
        full = _threads(node.pid)
    return {"agents": agents, "deployed": dep["ok"], "deploy_rate": round(dep["ok"] / elapsed),
            "threads_empty": empty, "threads_full": full, "target": "<= 64"}


def main(argv: list[str] | None = None) -> int:
    """Run the figures and print them as JSON (also written to ``--out``)."""
    p = argparse.ArgumentParser(prog="python3 -m benchmarks.bench_config",
                                description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", choices=("model", "echo", "hostile", "threads"), action="append")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seconds", type=float, default=5.0, help="seconds per phase")
    p.add_argument("--agents", type=int, default=2000, help="threads: config agents")
    p.add_argument("--out", type=Path, default=Path("benchmarks/out/bench_config.json"))
    args = p.parse_args(argv)
    only = set(args.only or ("model", "echo", "hostile", "threads"))
    out: dict[str, Any] = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if "model" in only:
        out["model_bound"] = model_bound(args.repeats, args.seconds)
        print(json.dumps({"model_bound": out["model_bound"]["ratio"]}), flush=True)
    if "echo" in only:
        out["echo_ratio"] = echo_ratio(args.repeats, args.seconds)
        print(json.dumps({"config_vs_wasm_echo": out["echo_ratio"]["ratio"]}), flush=True)
    if "hostile" in only:
        out["hostile"] = hostile(args.repeats, args.seconds)
        print(json.dumps({"hostile_p99_ratio": out["hostile"]["p99_ratio"],
                          "spinner_floor_ratio": out["hostile"]["spinner_floor_ratio"],
                          "node_status_max_ms": out["hostile"]["node_status_max_ms"]}),
              flush=True)
    if "threads" in only:
        out["threads"] = threads(args.agents)
        print(json.dumps({"threads": out["threads"]}), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2))
    print(f"full report: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
