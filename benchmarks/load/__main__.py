"""``python -m benchmarks.load``: drive a real Caxton node with load and account for every message.

Examples::

    python -m benchmarks.load --scenario steady --agents 10 --clients 2 --window 16 --duration 20
    python -m benchmarks.load --scenario reload --kind config-echo --duration 30
    python -m benchmarks.load --scenario canary-rollback --duration 20
    python -m benchmarks.load --scenario crash-storm --agents 20 --crash-fraction 0.1
    python -m benchmarks.load --scenario scale --agents 10000 --duration 10
    python -m benchmarks.load --connect tcp://127.0.0.1:7460 --scenario steady

Without ``--connect`` it starts ``python -m caxton`` on free loopback ports with a temporary
``--data-dir`` and stops it at the end. It writes ``<out>/<scenario>.json`` and two PNG plots,
prints the tables, and exits 0 when every check passed (nothing lost, duplicated or wrong, plus
the scenario's own checks), 1 otherwise.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.load import report as rpt
from benchmarks.load.node import NodeProcess
from benchmarks.load.scenarios import (
    ALL_RELOAD_STRATEGIES,
    RUNNERS,
    SCENARIOS,
    LoadConfig,
    call,
    run_baselines,
)


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.load", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenario", choices=SCENARIOS, default="steady")
    p.add_argument("--kind", default="wasm-echo",
                   help="wasm-echo | config-echo | a .md/.wat/.wasm file (default wasm-echo)")
    p.add_argument("--agents", type=int, default=10, help="agents to deploy (N)")
    p.add_argument("--clients", type=int, default=2, help="client processes (C)")
    p.add_argument("--window", type=int, default=16, help="requests in flight per client (W)")
    p.add_argument("--duration", type=float, default=10.0,
                   help="seconds of load per phase (0 = bounded by --messages only)")
    p.add_argument("--messages", type=int, default=0,
                   help="requests per phase over all clients (0 = bounded by --duration)")
    p.add_argument("--payload", type=int, default=32, help="payload bytes")
    p.add_argument("--timeout", type=float, default=10.0, help="message.send timeout (s)")
    p.add_argument("--strategies", default=",".join(LoadConfig.strategies),
                   help=f"reload scenario: comma-separated of {', '.join(ALL_RELOAD_STRATEGIES)}")
    p.add_argument("--crash-fraction", type=float, default=0.1,
                   help="crash-storm: fraction of agents that crash (flaky.wat)")
    p.add_argument("--crash-every", type=int, default=2,
                   help="crash-storm: every k-th message to a crashing agent says 'crash'")
    p.add_argument("--deploy-window", type=int, default=8,
                   help="deploy requests in flight (default 8)")
    p.add_argument("--hops", type=int, default=1, help="raw pykka chain baseline: actor hops")
    p.add_argument("--no-baselines", action="store_true", help="skip the same-run baselines")
    p.add_argument("--pairs", type=int, default=3,
                   help="steady: alternating (raw echo, node) phase pairs whose adjacent "
                        "ratios are reported as min/median/max (0 = none; default 3)")
    p.add_argument("--pair-seconds", type=float, default=3.0,
                   help="steady: seconds of each alternating phase (default 3)")
    p.add_argument("--model-latency", type=float, default=0.2,
                   help="config-model: seconds the fake model takes per completion")
    p.add_argument("--no-half-peak", action="store_true",
                   help="steady: skip the paced phase at 50 %% of the peak rate")
    p.add_argument("--normal-priority-clients", action="store_true",
                   help="run the client processes as normal processes; by default they run "
                        "under SCHED_BATCH so that their wake-ups do not preempt the server "
                        "they measure (the node or the raw echo baseline alike)")
    p.add_argument("--connect", metavar="ENDPOINT", help="use a running node instead")
    p.add_argument("--node-cmd", help="command that starts a node (default: python -m caxton)")
    p.add_argument("--pin-node", metavar="CPUS",
                   help="run the node under `taskset -c CPUS` (e.g. 0)")
    p.add_argument("--node-arg", action="append", default=[],
                   help="extra flag for the node (repeatable)")
    p.add_argument("--out", type=Path, default=Path("load-results"), help="report directory")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def config_from(args: argparse.Namespace) -> LoadConfig:
    """The :class:`LoadConfig` of parsed arguments."""
    if args.duration <= 0 and args.messages <= 0:
        raise SystemExit("give --duration or --messages (every load loop is bounded)")
    strategies = tuple(s.strip() for s in args.strategies.split(",") if s.strip())
    bad = [s for s in strategies if s not in ALL_RELOAD_STRATEGIES]
    if bad:
        raise SystemExit(f"unknown strategies {bad}; use {', '.join(ALL_RELOAD_STRATEGIES)}")
    return LoadConfig(
        scenario=args.scenario, kind=args.kind, agents=args.agents, clients=args.clients,
        window=args.window, duration=args.duration, messages=args.messages,
        payload=args.payload, timeout=args.timeout, crash_fraction=args.crash_fraction,
        crash_every=max(1, args.crash_every), strategies=strategies,
        deploy_window=args.deploy_window, hops=args.hops, baselines=not args.no_baselines,
        half_peak=not args.no_half_peak, quiet=args.quiet, pairs=max(0, args.pairs),
        pair_seconds=args.pair_seconds, model_latency=args.model_latency,
        polite_clients=not args.normal_priority_clients)


def run(args: argparse.Namespace) -> int:
    """Run one scenario and report it."""
    from rich.console import Console

    console = Console(width=None if sys.stdout.isatty() else 140)
    cfg = config_from(args)
    node: NodeProcess | None = None
    node_info: dict[str, Any] = {}
    try:
        if args.connect:
            endpoint = args.connect
            node_info["connected"] = endpoint
        else:
            cmd = shlex.split(args.node_cmd) if args.node_cmd else None
            if args.pin_node:
                cmd = ["taskset", "-c", args.pin_node, *(cmd or [sys.executable, "-m",
                                                                  "caxton"])]
            node = NodeProcess(node_cmd=cmd, extra_args=args.node_arg)
            t = time.monotonic()
            node.start()
            endpoint = node.control
            cfg.node_pid = node.pid
            node_info.update({"command": node.command(), "pid": node.pid,
                              "start_s": round(time.monotonic() - t, 3)})
        try:
            node_info["status"] = call(endpoint, "node.status", timeout=10.0)
        except Exception as exc:
            node_info["status_error"] = repr(exc)
        console.print(f"[bold]{cfg.scenario}[/] on {endpoint}: {cfg.agents} x {cfg.kind}, "
                      f"{cfg.clients} clients x window {cfg.window}, "
                      + (f"{cfg.duration:g} s" if cfg.duration > 0 else
                         f"{cfg.messages:,} messages"))
        with rpt.ProgressSink(console, cfg.duration, enabled=not cfg.quiet) as progress:
            baselines = run_baselines(cfg, progress) if cfg.baselines else None
            result = RUNNERS[cfg.scenario](cfg, endpoint, progress)
        if node is not None:
            node_info["alive_at_end"] = node.alive()
            result.checks["node alive at the end"] = node.alive()
    finally:
        if node is not None:
            node_info["exit_code"] = node.stop()
            node.cleanup()
    report = rpt.build(cfg, result, baselines, node_info)
    rpt.print_console(console, report)
    path = rpt.write_json(report, args.out / f"{cfg.scenario}.json")
    console.print(f"JSON report: {path}")
    if not args.no_plots:
        files, msg = rpt.plot(result.load, result.timeline, cfg.scenario, args.out)
        for f in files:
            console.print(f"plot: {f}")
        if msg:
            console.print(f"[yellow]{msg}[/]")
    return 0 if result.ok else 1


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
