"""The load scenarios: steady, reload, canary-rollback, crash-storm and scale.

Each scenario deploys its agents through the control port, runs a load phase from client
processes (:mod:`benchmarks.load.clients`) while a driver thread performs the scenario's
actions (reloads, a bad canary, ...), then collects the node's own figures. The result is a
plain dict (the JSON report's ``scenario`` part) plus the merged :class:`Totals` for plots.
"""

from __future__ import annotations

import contextlib
import math
import re
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.load.clients import ClientSpec, Totals, percentile, run_clients
from benchmarks.load.paired import paired_ratios
from caxton.control.client import ControlClient, NodeUnreachable
from caxton.errors import CaxtonError

AGENTS_DIR = Path(__file__).resolve().parents[2] / "agents"
TESTING_DIR = AGENTS_DIR / "testing"
SCENARIOS = ("steady", "reload", "canary-rollback", "crash-storm", "scale", "config-model")
ALL_RELOAD_STRATEGIES = ("immediate", "blue-green", "canary", "gradual", "traffic-splitting",
                         "graceful", "parallel")


@dataclass
class LoadConfig:
    """Everything a run needs (filled from the command line)."""

    scenario: str = "steady"
    kind: str = "wasm-echo"
    agents: int = 10
    clients: int = 2
    window: int = 16
    duration: float = 10.0
    messages: int = 0
    payload: int = 32
    timeout: float = 10.0
    crash_fraction: float = 0.1
    crash_every: int = 2
    # blue-green last: its rollout stays "running" for the blue's scale-down delay (300 s,
    # not settable over the control port) and refuses another reload until then
    strategies: tuple[str, ...] = ("immediate", "canary", "gradual", "traffic-splitting",
                                   "blue-green")
    # Deploys in flight. The node's deploy path is CPU-bound under one GIL: beyond a few in
    # flight they only queue (deploy p50 90 ms at 32) and contend (about 10 % fewer agents/s
    # at 16-32 than at 4-8 on 2 cores, paired runs of 3,000 agents).
    deploy_window: int = 8
    hops: int = 1
    baselines: bool = True
    half_peak: bool = True
    # clients under SCHED_BATCH: their wake-ups do not preempt the server they measure
    polite_clients: bool = True
    quiet: bool = False
    node_pid: int | None = None
    prefix: str = ""
    hard_cap_s: float = 1800.0
    # steady: alternating (raw echo, node) phases of pair_seconds each; the ratio of each
    # adjacent pair is reported (min/median/max), robust to a machine whose speed drifts
    pairs: int = 3
    pair_seconds: float = 3.0
    # config-model: the fake model's latency per completion, in seconds
    model_latency: float = 0.2


@dataclass
class ScenarioResult:
    """What a scenario measured."""

    name: str
    figures: dict[str, Any] = field(default_factory=dict)
    checks: dict[str, bool] = field(default_factory=dict)
    load: Totals | None = None
    timeline: list[tuple[float, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Every check passed."""
        return all(self.checks.values())


# ------------------------------------------------------------------------------ agent kinds


@dataclass(frozen=True)
class AgentKind:
    """How to deploy (and reload) one agent of a kind under a given name."""

    label: str
    suffix: str
    content: str | bytes
    exact_echo: bool

    @property
    def is_wasm(self) -> bool:
        """A WASM module (``.wat``/``.wasm``), not a config agent."""
        return self.suffix in (".wat", ".wasm")

    def deploy_args(self, name: str, content: str | bytes | None = None,
                    **extra: Any) -> dict[str, Any]:
        """``agents.deploy`` args for ``name`` (optionally with other content)."""
        body = self.content if content is None else content
        if self.is_wasm:
            data = body if isinstance(body, bytes) else body.encode()
            return {"file_name": f"{name}{self.suffix}", "data": data, "name": name, **extra}
        return {"file_name": f"{name}.md", "text": rename_config(str(body), name), **extra}

    def reload_args(self, name: str, content: str | bytes, strategy: str,
                    **extra: Any) -> dict[str, Any]:
        """``agents.reload`` args sending new content with a strategy."""
        if self.is_wasm:
            data = content if isinstance(content, bytes) else content.encode()
            return {"name": name, "file_name": f"{name}{self.suffix}", "data": data,
                    "strategy": strategy, **extra}
        return {"name": name, "file_name": f"{name}.md",
                "text": rename_config(str(content), name), "strategy": strategy, **extra}


def rename_config(text: str, name: str, version: str | None = None) -> str:
    """Set the frontmatter ``name`` (and optionally ``version``) of a config agent's text."""
    text = re.sub(r"(?m)^name:.*$", f"name: {name}", text, count=1)
    if version is not None:
        if re.search(r"(?m)^version:", text):
            text = re.sub(r"(?m)^version:.*$", f'version: "{version}"', text, count=1)
        else:
            text = text.replace(f"name: {name}", f'name: {name}\nversion: "{version}"', 1)
    return text


def agent_kind(kind: str) -> AgentKind:
    """Resolve ``wasm-echo``, ``config-echo`` or a file path."""
    if kind == "wasm-echo":
        return AgentKind("wasm-echo", ".wat", (AGENTS_DIR / "echo.wat").read_bytes(), True)
    if kind == "config-echo":
        return AgentKind("config-echo", ".md", (AGENTS_DIR / "echo.md").read_text(), False)
    path = Path(kind)
    if not path.is_file():
        raise SystemExit(f"--kind {kind!r}: not wasm-echo, config-echo or an existing file")
    if path.suffix == ".md":
        return AgentKind(str(path), ".md", path.read_text(), False)
    if path.suffix in (".wat", ".wasm"):
        return AgentKind(str(path), path.suffix, path.read_bytes(), True)
    raise SystemExit(f"--kind {kind!r}: the file must be .md, .wat or .wasm")


def reload_content(kind: AgentKind, generation: int) -> str | bytes:
    """A different-but-equivalent version of the agent for reload number ``generation``."""
    if kind.is_wasm:
        if kind.label == "wasm-echo":
            return (TESTING_DIR / "echo_v2.wat").read_bytes() if generation % 2 else \
                kind.content
        data = kind.content if isinstance(kind.content, bytes) else kind.content.encode()
        return data
    return rename_config(str(kind.content), "placeholder", f"1.0.{generation}")


# ------------------------------------------------------------------------------ helpers


def call(endpoint: str, op: str, args: dict[str, Any] | None = None,
         timeout: float = 30.0) -> Any:
    """One control call on a fresh client."""
    with ControlClient(endpoint, timeout=timeout) as client:
        return client.call(op, args or {}, timeout=timeout)


def windowed_calls(endpoint: str, requests: list[tuple[str, dict[str, Any]]], window: int,
                   timeout: float = 60.0,
                   on_done: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Send control requests with at most ``window`` in flight; time each one.

    Returns:
        ``{"ok", "errors": {code: n}, "lost", "elapsed_s", "latency_ms": [...], "codes"}``
        (``codes[i]``: ``None`` when request ``i`` succeeded, else its error code).
    """
    ok = 0
    errs: dict[str, int] = {}
    lat: list[float] = []
    sent_at: dict[int, float] = {}
    index_of: dict[int, int] = {}
    codes: list[str | None] = ["LOST"] * len(requests)
    start = time.monotonic()
    with ControlClient(endpoint, timeout=timeout, max_in_flight=window) as client:
        it = iter(enumerate(requests))
        exhausted = False
        while True:
            while not exhausted and client.in_flight < window:
                try:
                    i, (op, args) = next(it)
                except StopIteration:
                    exhausted = True
                    break
                rid = client.send_nowait(op, args)
                sent_at[rid] = time.perf_counter()
                index_of[rid] = i
            if client.in_flight == 0 and exhausted:
                break
            try:
                reply = client.recv(timeout=timeout)
            except NodeUnreachable:
                break
            lat.append((time.perf_counter() - sent_at.pop(int(reply.id))) * 1000)
            if reply.ok:
                ok += 1
                codes[index_of[int(reply.id)]] = None
            else:
                code = str(reply.error.code) if reply.error is not None else "?"
                errs[code] = errs.get(code, 0) + 1
                codes[index_of[int(reply.id)]] = code
            if on_done is not None:
                on_done(ok + sum(errs.values()))
        lost = client.in_flight
    return {"ok": ok, "errors": errs, "lost": lost, "elapsed_s": time.monotonic() - start,
            "latency_ms": lat, "codes": codes}


def deploy_many(endpoint: str, kind: AgentKind, names: list[str], window: int,
                on_done: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Deploy every name with a bounded window of deploy requests in flight."""
    reqs = [("agents.deploy", kind.deploy_args(n)) for n in names]
    out = windowed_calls(endpoint, reqs, window, timeout=120.0, on_done=on_done)
    lat = out.pop("latency_ms")
    out.pop("codes")
    out["rate_per_s"] = out["ok"] / out["elapsed_s"] if out["elapsed_s"] else 0.0
    out["latency_ms"] = {"p50": percentile(lat, 50), "p99": percentile(lat, 99)}
    return out


def node_latency(status: Any) -> dict[str, Any] | None:
    """Find the node's receipt-to-reply latency snapshot for ``message.send`` in a result.

    Looks for a ``{"message.send": {"p50_us", "p99_us", ...}}`` map anywhere in the result
    (the control server's :class:`LatencyRecorder` snapshot, wherever the node puts it).
    """
    if isinstance(status, dict):
        snap = status.get("message.send")
        if isinstance(snap, dict) and "p50_us" in snap:
            return dict(snap)
        for value in status.values():
            found = node_latency(value)
            if found is not None:
                return found
    elif isinstance(status, list):
        for value in status:
            found = node_latency(value)
            if found is not None:
                return found
    return None


def agent_versions(endpoint: str) -> dict[str, str]:
    """``{name: version}`` of every deployed agent (from ``agents.status``)."""
    result = call(endpoint, "agents.status", {}, timeout=60.0)
    agents = result.get("agents", []) if isinstance(result, dict) else result
    out: dict[str, str] = {}
    for a in agents or []:
        if isinstance(a, dict):
            out[str(a.get("name"))] = str(a.get("version"))
    return out


def control_probe(endpoint: str, stop: threading.Event, samples: list[float],
                  period: float = 0.02, max_samples: int = 100_000) -> None:
    """Time ``node.status`` round trips until ``stop`` (the node's control responsiveness)."""
    with ControlClient(endpoint, timeout=5.0) as client:
        while not stop.is_set() and len(samples) < max_samples:
            t = time.perf_counter()
            try:
                client.call("node.status", {}, timeout=5.0)
                samples.append((time.perf_counter() - t) * 1e6)
            except (NodeUnreachable, CaxtonError):
                samples.append(5e6)
            stop.wait(period)


def specs_for(cfg: LoadConfig, endpoint: str, agents: list[str], *, exact_echo: bool,
              crash_agents: list[str] | None = None, rate: float = 0.0,
              duration: float | None = None, messages: int | None = None,
              conversation: bool = False, split_agents: bool = False,
              conversations: int = 0) -> list[ClientSpec]:
    """One :class:`ClientSpec` per client for a load phase."""
    specs = []
    per_client = (cfg.messages if messages is None else messages)
    for i in range(cfg.clients):
        mine = agents[i::cfg.clients] if split_agents else agents
        if not mine:
            continue
        n = per_client // cfg.clients + (1 if i < per_client % cfg.clients else 0) \
            if per_client > 0 else 0
        if split_agents and messages is not None:
            n = len(mine)
        specs.append(ClientSpec(
            endpoint=endpoint, index=i, agents=list(mine), window=cfg.window,
            duration=cfg.duration if duration is None else duration, messages=n,
            timeout=cfg.timeout, payload=cfg.payload, crash_agents=list(crash_agents or []),
            crash_every=cfg.crash_every, rate=rate / cfg.clients if rate else 0.0,
            conversation=conversation, conversations=conversations, exact_echo=exact_echo,
            hard_cap_s=cfg.hard_cap_s,
            polite=cfg.polite_clients))
    return specs


def accounting_checks(totals: Totals) -> dict[str, bool]:
    """The checks every scenario makes: nothing lost, duplicated, stray or wrong."""
    return {"lost == 0": totals.lost == 0, "duplicated == 0": totals.duplicated == 0,
            "stray == 0": totals.stray == 0, "wrong == 0": totals.wrong == 0,
            "clients all reported": not totals.client_failures,
            "clients could send (node reachable)": not totals.send_gave_up,
            "every request answered": totals.answered == totals.sent}


class Actions:
    """Runs a scenario's actions in a thread beside the load and records a timeline."""

    def __init__(self, t0: float) -> None:
        self.t0 = t0
        self.timeline: list[tuple[float, str]] = []
        self.error: BaseException | None = None
        self.results: dict[str, Any] = {}
        self._thread: threading.Thread | None = None

    def mark(self, label: str) -> None:
        """Record an event on the timeline (seconds since the load started)."""
        self.timeline.append((round(time.time() - self.t0, 3), label))

    def start(self, fn: Callable[[Actions], None]) -> None:
        """Run ``fn(self)`` in a daemon thread."""
        def run() -> None:
            try:
                fn(self)
            except BaseException as exc:
                self.error = exc
                self.mark(f"actions failed: {exc!r}")

        self._thread = threading.Thread(target=run, name="load-actions", daemon=True)
        self._thread.start()

    def join(self, timeout: float) -> None:
        """Wait for the actions (bounded)."""
        if self._thread is not None:
            self._thread.join(timeout)


def load_phase(cfg: LoadConfig, specs: list[ClientSpec], progress: Any = None,
               actions: Callable[[Actions], None] | None = None
               ) -> tuple[Totals, Actions]:
    """Run the clients (and, beside them, the scenario's actions)."""
    act = Actions(time.time())
    if actions is not None:
        act.start(actions)
    totals = run_clients(specs, on_progress=progress)
    act.join(timeout=120)
    return totals, act


# ------------------------------------------------------------------------------ scenarios


def _names(prefix: str, n: int) -> list[str]:
    width = max(4, len(str(n)))
    return [f"{prefix}-{i:0{width}d}" for i in range(n)]


def run_baselines(cfg: LoadConfig, progress: Any = None) -> dict[str, Any]:
    """The raw pyzmq echo (same clients, window, payload) and the raw pykka chain."""
    from benchmarks.load.baselines import pykka_chain, raw_zmq_server

    out: dict[str, Any] = {}
    dur = cfg.duration if cfg.messages <= 0 else 0.0
    with raw_zmq_server() as srv:
        specs = specs_for(cfg, srv.endpoint, ["raw"], exact_echo=True, duration=dur)
        totals = run_clients(specs, on_progress=progress)
    out["raw_zmq"] = totals.summary()
    out["raw_zmq"]["clients"] = cfg.clients
    out["raw_zmq"]["window"] = cfg.window
    out["raw_pykka"] = pykka_chain(cfg.hops, cfg.clients * cfg.window,
                                   duration=min(cfg.duration, 10.0) if dur else 10.0,
                                   messages=cfg.messages)
    return out


def steady(cfg: LoadConfig, endpoint: str, progress: Any = None) -> ScenarioResult:
    """N agents, C clients at full window; then a paced phase at 50 % of the peak rate."""
    res = ScenarioResult("steady")
    kind = agent_kind(cfg.kind)
    names = _names(cfg.prefix + "load", cfg.agents)
    dep = deploy_many(endpoint, kind, names, cfg.deploy_window)
    res.figures["deploy"] = dep
    res.checks["all agents deployed"] = dep["ok"] == len(names)
    specs = specs_for(cfg, endpoint, names, exact_echo=kind.exact_echo)
    totals, act = load_phase(cfg, specs, progress)
    res.load = totals
    res.figures["load"] = totals.summary()
    res.checks.update(accounting_checks(totals))
    res.checks["no error replies"] = not totals.errors
    with contextlib.suppress(CaxtonError, NodeUnreachable):
        res.figures["node_latency_full_rate"] = node_latency(call(endpoint, "node.status"))
    if cfg.half_peak and totals.rate > 0:
        half = totals.rate / 2
        dur = max(1.0, (cfg.duration if cfg.duration > 0 else 10.0) / 2)
        specs = specs_for(cfg, endpoint, names, exact_echo=kind.exact_echo, rate=half,
                          duration=dur, messages=int(half * dur))
        paced, _ = load_phase(cfg, specs, progress)
        res.figures["half_peak"] = {"target_rate": round(half, 1), **paced.summary()}
        res.checks.update({f"half-peak {k}": v for k, v in accounting_checks(paced).items()})
        try:
            snap = node_latency(call(endpoint, "node.status"))
        except (CaxtonError, NodeUnreachable):
            snap = None
        res.figures["node_latency_half_peak"] = snap
        if snap is None:
            res.notes.append("the node does not expose its receipt-to-reply latency for "
                             "message.send (needed: the control server's "
                             "LatencyRecorder.snapshot() in node.status, e.g. "
                             "result['latency']); node-side routing latency not reported")
    if cfg.pairs > 0:
        res.figures["paired"] = paired_phases(cfg, endpoint, names, kind, progress)
        res.checks.update({f"paired {k}": v for k, v in
                           res.figures["paired"].pop("checks").items()})
    res.timeline = act.timeline
    return res


def paired_phases(cfg: LoadConfig, endpoint: str, names: list[str], kind: AgentKind,
                  progress: Any = None) -> dict[str, Any]:
    """Alternate raw-echo and node phases of ``cfg.pair_seconds`` (see ``paired``)."""
    from benchmarks.load.baselines import raw_zmq_server

    checks: dict[str, bool] = {}

    def phase(target: str, agents: list[str], exact: bool) -> float:
        specs = specs_for(cfg, target, agents, exact_echo=exact, duration=cfg.pair_seconds,
                          messages=0)
        totals = run_clients(specs, on_progress=progress)
        for k, v in accounting_checks(totals).items():
            checks[k] = checks.get(k, True) and v
        return totals.rate

    with raw_zmq_server() as srv:
        out = paired_ratios(lambda: phase(srv.endpoint, ["raw"], True),
                            lambda: phase(endpoint, names, kind.exact_echo), cfg.pairs)
    out["baseline_name"] = "raw pyzmq echo"
    out["checks"] = checks
    return out


def reload(cfg: LoadConfig, endpoint: str, progress: Any = None) -> ScenarioResult:
    """Hot-reload every agent with each strategy in turn while the load runs."""
    res = ScenarioResult("reload")
    kind = agent_kind(cfg.kind)
    names = _names(cfg.prefix + "reload", cfg.agents)
    dep = deploy_many(endpoint, kind, names, cfg.deploy_window)
    res.figures["deploy"] = dep
    res.checks["all agents deployed"] = dep["ok"] == len(names)
    strategies = list(cfg.strategies)
    slot = cfg.duration / (len(strategies) + 1) if cfg.duration > 0 else 2.0
    per_strategy: dict[str, Any] = {}
    retries: dict[str, int] = {}

    def actions(act: Actions) -> None:
        time.sleep(min(slot / 2, 2.0))
        for gen, strategy in enumerate(strategies, start=1):
            content = reload_content(kind, gen)
            act.mark(f"reload {strategy}")
            t = time.monotonic()
            deadline = t + max(slot, 5.0)
            ok = 0
            errs: dict[str, int] = {}
            todo = list(names)
            while todo and time.monotonic() < deadline:
                reqs = [("agents.reload", kind.reload_args(
                    n, content, strategy, steps=[50, 100], step_interval_s=0.3)
                    if strategy in ("canary", "traffic-splitting", "gradual")
                    else kind.reload_args(n, content, strategy)) for n in todo]
                out = windowed_calls(endpoint, reqs, cfg.deploy_window, timeout=60.0)
                ok += out["ok"]
                busy = out["errors"].pop("ROLLOUT_IN_PROGRESS", 0)
                for code, n in out["errors"].items():
                    errs[code] = errs.get(code, 0) + n
                if not busy:
                    break
                # the previous rollout still runs (blue-green keeps blue warm, stepped plans
                # take their steps): promote it, then retry only those agents
                todo = [n for n, c in zip(todo, out["codes"], strict=True)
                        if c == "ROLLOUT_IN_PROGRESS"]
                retries[strategy] = retries.get(strategy, 0) + len(todo)
                windowed_calls(endpoint, [("agents.promote", {"name": n}) for n in todo],
                               cfg.deploy_window, timeout=60.0)
                time.sleep(0.2)
            per_strategy[strategy] = {"ok": ok, "errors": errs,
                                      "busy_retries": retries.get(strategy, 0),
                                      "seconds": round(time.monotonic() - t, 3)}
            rest = deadline - time.monotonic()
            if rest > 0:
                time.sleep(min(rest, slot))

    specs = specs_for(cfg, endpoint, names, exact_echo=kind.exact_echo, conversation=False)
    totals, act = load_phase(cfg, specs, progress, actions)
    res.load = totals
    res.timeline = act.timeline
    res.figures["load"] = totals.summary()
    res.figures["reloads"] = per_strategy
    res.checks.update(accounting_checks(totals))
    res.checks["every strategy reloaded every agent"] = all(
        v["ok"] >= len(names) for v in per_strategy.values()) and \
        len(per_strategy) == len(strategies)
    if act.error is not None:
        res.notes.append(f"actions failed: {act.error!r}")
        res.checks["actions completed"] = False
    return res


def canary_rollback(cfg: LoadConfig, endpoint: str, progress: Any = None) -> ScenarioResult:
    """A bad version (traps on every message) goes out as a canary mid-run and must roll back.

    The canary's analysis should roll it back on its own; if it is still running at two
    thirds of the run the harness aborts it (``agents.abort``) and says so.
    """
    res = ScenarioResult("canary-rollback")
    kind = agent_kind(cfg.kind)
    if not kind.is_wasm:
        raise SystemExit("canary-rollback needs a WASM kind (the bad version is a module)")
    names = _names(cfg.prefix + "canary", cfg.agents)
    dep = deploy_many(endpoint, kind, names, cfg.deploy_window)
    res.figures["deploy"] = dep
    res.checks["all agents deployed"] = dep["ok"] == len(names)
    before = agent_versions(endpoint)
    bad = (TESTING_DIR / "trap.wat").read_bytes()
    duration = cfg.duration if cfg.duration > 0 else 10.0
    step = max(0.5, duration / 6)
    outcome: dict[str, Any] = {}

    def actions(act: Actions) -> None:
        time.sleep(duration / 4)
        act.mark("bad canary")
        reqs = [("agents.reload", kind.reload_args(n, bad, "canary", steps=[20, 50, 100],
                                                   step_interval_s=step)) for n in names]
        outcome["reload"] = _strip(windowed_calls(endpoint, reqs, cfg.deploy_window))
        t_abort = time.monotonic() + duration * 5 / 12
        while time.monotonic() < t_abort:
            if agent_versions(endpoint) == before:
                act.mark("rolled back by analysis")
                outcome["auto_rolled_back"] = True
                return
            time.sleep(0.2)
        outcome["auto_rolled_back"] = False
        act.mark("abort")
        reqs = [("agents.abort", {"name": n}) for n in names]
        outcome["abort"] = _strip(windowed_calls(endpoint, reqs, cfg.deploy_window))

    specs = specs_for(cfg, endpoint, names, exact_echo=True)
    totals, act = load_phase(cfg, specs, progress, actions)
    res.load = totals
    res.timeline = act.timeline
    after = agent_versions(endpoint)
    res.figures["load"] = totals.summary()
    res.figures["canary"] = outcome
    res.figures["versions_before"] = _count_versions(before, names)
    res.figures["versions_after"] = _count_versions(after, names)
    res.checks.update(accounting_checks(totals))
    res.checks["every agent back at its old version"] = all(
        after.get(n) == before.get(n) for n in names)
    res.checks["only typed trap/breaker errors"] = set(totals.errors) <= {
        "TRAP", "CIRCUIT_OPEN", "AGENT_FAILED", "AGENT_UNAVAILABLE"}
    if not outcome.get("auto_rolled_back"):
        res.notes.append("the canary analysis did not roll the bad version back by itself "
                         "within the run; the harness aborted it")
    return res


def _strip(out: dict[str, Any]) -> dict[str, Any]:
    out.pop("codes", None)
    lat = out.pop("latency_ms", [])
    out["latency_ms"] = {"p50": percentile(lat, 50), "p99": percentile(lat, 99)}
    return out


def _count_versions(versions: dict[str, str], names: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for n in names:
        v = versions.get(n, "<missing>")
        out[v] = out.get(v, 0) + 1
    return out


def crash_storm(cfg: LoadConfig, endpoint: str, progress: Any = None) -> ScenarioResult:
    """A fraction of the agents (flaky.wat) crash on some messages; the rest must not notice.

    Runs the same load twice (no crashing content, then crashing content) and measures the
    node's control latency (``node.status`` round trips from a probe) in both, each healthy
    agent's success rate, and the typed errors the crashing agents answer with (the breaker
    opening shows as ``CIRCUIT_OPEN``).
    """
    res = ScenarioResult("crash-storm")
    kind = agent_kind(cfg.kind)
    n_flaky = max(1, math.ceil(cfg.agents * cfg.crash_fraction))
    healthy = _names(cfg.prefix + "healthy", max(1, cfg.agents - n_flaky))
    flaky = _names(cfg.prefix + "flaky", n_flaky)
    flaky_kind = AgentKind("flaky", ".wat", (TESTING_DIR / "flaky.wat").read_bytes(), True)
    dep = deploy_many(endpoint, kind, healthy, cfg.deploy_window)
    dep_f = deploy_many(endpoint, flaky_kind, flaky, cfg.deploy_window)
    res.figures["deploy"] = {"healthy": dep, "flaky": dep_f}
    res.checks["all agents deployed"] = dep["ok"] + dep_f["ok"] == len(healthy) + len(flaky)
    quiet, storm, calm, totals, timeline = storm_phases(cfg, endpoint, healthy, flaky,
                                                         kind.exact_echo, progress)
    res.figures["load_without_crashes"] = calm.summary()
    res.load = totals
    res.timeline = timeline
    res.figures["load"] = totals.summary()
    healthy_rates = {a: (c[1] / c[0] if c[0] else 1.0) for a, c in totals.per_agent.items()
                     if a in healthy}
    flaky_counts = {a: c for a, c in totals.per_agent.items() if a in flaky}
    res.figures["healthy_success_rate_min"] = min(healthy_rates.values(), default=1.0)
    res.figures["flaky_counts"] = flaky_counts
    res.figures["control_latency_us"] = {
        "quiet": _dist(quiet), "storm": _dist(storm),
        "p50_ratio": _ratio(_pct(storm, 50), _pct(quiet, 50)),
        "p90_ratio": _ratio(_pct(storm, 90), _pct(quiet, 90)),
        "p99_ratio": _ratio(_pct(storm, 99), _pct(quiet, 99)),
    }
    res.checks.update(accounting_checks(totals))
    res.checks["breaker opened (CIRCUIT_OPEN seen)"] = "CIRCUIT_OPEN" in totals.errors
    res.checks["healthy agents 100 % success"] = all(r == 1.0 for r in healthy_rates.values())
    res.checks["crashes answered with typed errors"] = bool(totals.errors) and set(
        totals.errors) <= {"TRAP", "CIRCUIT_OPEN", "AGENT_FAILED", "AGENT_UNAVAILABLE",
                           "TIMEOUT"}
    return res


def storm_phases(cfg: LoadConfig, endpoint: str, healthy: list[str], flaky: list[str],
                 exact_echo: bool, progress: Any = None, probe_period: float = 0.02,
                 rate: float = 0.0, durations: tuple[float, float] | None = None
                 ) -> tuple[list[float], list[float], Totals, Totals, list[tuple[float, str]]]:
    """The same load twice, first without and then with crashing content, while a probe
    times ``node.status`` round trips (the node's control latency).

    The "quiet" reference is the node under the same load with no crashes, so the ratio
    isolates what the crashes cost (not what the load costs).

    Returns:
        ``(quiet probe µs, storm probe µs, calm totals, storm totals, storm timeline)``.
    """
    out: list[list[float]] = []
    results: list[Totals] = []
    timeline: list[tuple[float, str]] = []
    for crashing in (False, True):
        samples: list[float] = []
        stop = threading.Event()

        def probe(act: Actions, samples: list[float] = samples,
                  stop: threading.Event = stop, crashing: bool = crashing) -> None:
            act.mark("storm" if crashing else "calm")
            control_probe(endpoint, stop, samples, probe_period)

        specs = specs_for(cfg, endpoint, healthy + flaky, exact_echo=exact_echo,
                          crash_agents=flaky if crashing else [], rate=rate,
                          duration=durations[int(crashing)] if durations else None)
        act = Actions(time.time())
        act.start(probe)
        try:
            totals = run_clients(specs, on_progress=progress)
        finally:
            stop.set()
            act.join(30)
        out.append(samples)
        results.append(totals)
        timeline = act.timeline
    return out[0], out[1], results[0], results[1], timeline


def _pct(values: list[float], q: float) -> float:
    return percentile(values, q)


def _dist(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "p50": round(_pct(values, 50), 1),
            "p90": round(_pct(values, 90), 1), "p99": round(_pct(values, 99), 1),
            "mean": round(statistics.fmean(values), 1) if values else 0.0}


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if b else None


def scale(cfg: LoadConfig, endpoint: str, progress: Any = None) -> ScenarioResult:
    """Deploy up to N agents: deploy rate, RSS per agent, each answers, message rate."""
    import psutil

    res = ScenarioResult("scale")
    kind = agent_kind(cfg.kind)
    names = _names(cfg.prefix + "scale", cfg.agents)
    proc = psutil.Process(cfg.node_pid) if cfg.node_pid else None
    rss0 = proc.memory_info().rss if proc else None
    dep = deploy_many(endpoint, kind, names, cfg.deploy_window,
                      on_done=(lambda n: progress(n, n, 0)) if progress else None)
    rss1 = proc.memory_info().rss if proc else None
    res.figures["deploy"] = dep
    res.figures["agents"] = len(names)
    res.checks["all agents deployed"] = dep["ok"] == len(names)
    if proc is not None and rss0 is not None and rss1 is not None:
        res.figures["rss_before_mb"] = round(rss0 / 2**20, 1)
        res.figures["rss_after_mb"] = round(rss1 / 2**20, 1)
        res.figures["rss_per_agent_kb"] = round((rss1 - rss0) / max(1, len(names)) / 1024, 1)
        res.figures["threads"] = proc.num_threads()
        res.figures["open_fds"] = proc.num_fds()
    else:
        res.notes.append("connected to a node this run did not start: RSS not measured")
    # every agent answers once
    specs = specs_for(cfg, endpoint, names, exact_echo=kind.exact_echo, duration=0.0,
                      messages=len(names), split_agents=True)
    each, _ = load_phase(cfg, specs, progress)
    res.figures["each_answers"] = each.summary()
    res.checks["every agent answered"] = each.replied == len(names)
    res.checks.update({f"each-answers {k}": v for k, v in accounting_checks(each).items()})
    specs = specs_for(cfg, endpoint, names, exact_echo=kind.exact_echo)
    totals, act = load_phase(cfg, specs, progress)
    res.load = totals
    res.timeline = act.timeline
    res.figures["load"] = totals.summary()
    res.checks.update(accounting_checks(totals))
    if proc is not None:
        res.figures["rss_end_mb"] = round(proc.memory_info().rss / 2**20, 1)
    return res


def config_model(cfg: LoadConfig, endpoint: str, progress: Any = None) -> ScenarioResult:
    """N config agents x C conversations on a fake model of a set latency (``config_model``)."""
    from benchmarks.load.config_model import run

    return run(cfg, endpoint, progress)


RUNNERS: dict[str, Callable[[LoadConfig, str, Any], ScenarioResult]] = {
    "steady": steady,
    "reload": reload,
    "canary-rollback": canary_rollback,
    "crash-storm": crash_storm,
    "scale": scale,
    "config-model": config_model,
}
