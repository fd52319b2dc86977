"""The ``config-model`` scenario: config agents talking to a model with a set latency.

N config agents, each a conversation-holding agent whose ``llm`` is a fake OpenAI-compatible
server (:mod:`caxton.llm.fake_server`, one asyncio loop, in its own process so it never shares
the node's GIL) answering after ``--model-latency`` seconds. C clients x W window keep
``C·W`` requests in flight, each on its own conversation slot. The ideal rate is
``in-flight ÷ latency``; the report gives the achieved rate beside it, and the node's CPU
time per message (from ``/proc`` of the node process).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from typing import Any

import psutil

from benchmarks.load.scenarios import (
    AgentKind,
    LoadConfig,
    ScenarioResult,
    accounting_checks,
    deploy_many,
    load_phase,
    specs_for,
)


def agent_text(base_url: str) -> str:
    """A config agent on the fake model, with room for every conversation the run opens."""
    return ("---\nname: placeholder\nversion: \"1.0.0\"\ncapabilities: [conversation]\n"
            "tools: []\nresource_limits:\n  memory_scope: agent\n  max_conversations: 10000\n"
            "  max_concurrent_requests: 10000\n  response_timeout: 60s\n"
            f"llm: {{provider: openai, base_url: '{base_url}', model: fake, max_retries: 0,"
            " timeout: 60}\nuser_prompt_template: \"{{ request }}\"\n---\n\nLoad agent.\n")


class ModelProcess:
    """The fake model server in a child process (bound to 127.0.0.1)."""

    def __init__(self, latency: float) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "caxton.llm.fake_server", "--latency", str(latency)],
            stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("PORT "):
            self.proc.kill()
            raise RuntimeError(f"the fake model did not start: {line!r}")
        self.port = int(line.split()[1])
        self.base_url = f"http://127.0.0.1:{self.port}/v1"

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/stats", timeout=5) as r:
            data: dict[str, Any] = json.loads(r.read())
            return data

    def __enter__(self) -> ModelProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def node_cpu(pid: int | None) -> float | None:
    """CPU seconds the node process has used (user + system), or None."""
    if pid is None:
        return None
    try:
        t = psutil.Process(pid).cpu_times()
        return float(t.user + t.system)
    except psutil.Error:
        return None


def run(cfg: LoadConfig, endpoint: str, progress: Any = None) -> ScenarioResult:
    """Run the scenario (see the module docstring)."""
    res = ScenarioResult("config-model")
    model = ModelProcess(cfg.model_latency)
    try:
        kind = AgentKind("config-model", ".md", agent_text(model.base_url), False)
        names = [f"{cfg.prefix}model{i}" for i in range(cfg.agents)]
        dep = deploy_many(endpoint, kind, names, cfg.deploy_window)
        res.figures["deploy"] = dep
        res.checks["all agents deployed"] = dep["ok"] == len(names)
        in_flight = cfg.clients * cfg.window
        specs = specs_for(cfg, endpoint, names, exact_echo=False, conversations=cfg.window)
        cpu0, t0 = node_cpu(cfg.node_pid), time.monotonic()
        totals, act = load_phase(cfg, specs, progress)
        cpu1, elapsed = node_cpu(cfg.node_pid), time.monotonic() - t0
        res.load = totals
        res.figures["load"] = totals.summary()
        ideal = in_flight / cfg.model_latency
        res.figures["model"] = {"latency_s": cfg.model_latency, "in_flight": in_flight,
                                "ideal_rate_per_s": round(ideal, 1),
                                "achieved_over_ideal": round(totals.replied / elapsed / ideal, 3)
                                if elapsed > 0 else 0.0,
                                "server": model.stats()}
        if cpu0 is not None and cpu1 is not None and totals.answered:
            res.figures["node_cpu_us_per_msg"] = round((cpu1 - cpu0) / totals.answered * 1e6, 1)
            res.figures["node_cpu_share"] = round((cpu1 - cpu0) / elapsed, 3)
        res.checks.update(accounting_checks(totals))
        res.checks["no error replies"] = not totals.errors
        good_rate = totals.replied / elapsed if elapsed > 0 else 0.0
        res.figures["model"]["good_rate_per_s"] = round(good_rate, 1)
        res.checks[">= 0.8 x ideal rate (good replies)"] = good_rate >= 0.8 * ideal
        res.timeline = act.timeline
    finally:
        model.stop()
    return res


__all__ = ["ModelProcess", "agent_text", "run"]
