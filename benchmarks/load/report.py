"""The run's report: a console table (rich), a JSON file and PNG plots (matplotlib)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from benchmarks.load.clients import Totals
from benchmarks.load.scenarios import ScenarioResult


class ProgressSink:
    """A rich progress bar fed by the clients' shared counters.

    A new load phase is noticed when the ``done`` count drops (each phase counts from 0).
    """

    def __init__(self, console: Any, duration: float, enabled: bool = True) -> None:
        self.enabled = enabled
        self._duration = duration if duration > 0 else 0.0
        self._last_done = -1
        self._start = time.monotonic()
        self._progress: Any = None
        self._task: Any = None
        if enabled:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                                      TextColumn("{task.fields[stats]}"), TimeElapsedColumn(),
                                      console=console, transient=True)

    def __enter__(self) -> ProgressSink:
        if self._progress is not None:
            self._progress.start()
            self._task = self._progress.add_task("load", total=self._duration or None,
                                                 stats="")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def __call__(self, sent: int, done: int, errors: int) -> None:
        if self._progress is None:
            return
        if done < self._last_done:
            self._start = time.monotonic()
        self._last_done = done
        elapsed = time.monotonic() - self._start
        rate = done / elapsed if elapsed > 0 else 0.0
        self._progress.update(self._task, completed=min(elapsed, self._duration or elapsed),
                              stats=f"sent {sent:,}  answered {done:,}  errors {errors:,}  "
                                    f"{rate:,.0f}/s")


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or not b:
        return None
    return round(a / b, 3)


def comparisons(result: ScenarioResult, baselines: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Each headline figure beside its baseline, with the ratio and the target."""
    rows: list[dict[str, Any]] = []
    load = result.figures.get("load") or {}
    raw = (baselines or {}).get("raw_zmq") or {}
    chain = (baselines or {}).get("raw_pykka") or {}
    if load:
        rows.append({"figure": "throughput (msg/s)", "value": load.get("rate_per_s"),
                     "baseline": raw.get("rate_per_s"), "baseline_name": "raw pyzmq echo",
                     "ratio": _ratio(load.get("rate_per_s"), raw.get("rate_per_s")),
                     "target": ">= 0.5x raw (WASM echo)"})
        rows.append({"figure": "throughput (msg/s)", "value": load.get("rate_per_s"),
                     "baseline": _r(chain.get("rate_per_s")), "baseline_name": "raw pykka chain",
                     "ratio": _ratio(load.get("rate_per_s"), chain.get("rate_per_s")),
                     "target": ""})
        lat = load.get("latency_us", {})
        rlat = raw.get("latency_us", {})
        for q in ("p50", "p99"):
            rows.append({"figure": f"end-to-end latency {q} (µs)", "value": lat.get(q),
                         "baseline": rlat.get(q), "baseline_name": "raw pyzmq echo",
                         "ratio": _ratio(lat.get(q), rlat.get(q)), "target": ""})
    paired = result.figures.get("paired")
    if paired:
        rows.append({"figure": "paired throughput ratio (min/median/max)",
                     "value": paired["ratio_median"], "baseline": None,
                     "baseline_name": f"{paired['baseline_name']}, alternating",
                     "ratio": f"{paired['ratio_min']:.3f}-{paired['ratio_max']:.3f}",
                     "target": f"{len(paired['pairs'])} adjacent pairs"})
    model = result.figures.get("model")
    if model:
        rows.append({"figure": "config-model rate (msg/s)", "value": load.get("rate_per_s"),
                     "baseline": model["ideal_rate_per_s"],
                     "baseline_name": "ideal (in-flight / latency)",
                     "ratio": model["achieved_over_ideal"], "target": ">= 0.8x ideal"})
        if "node_cpu_us_per_msg" in result.figures:
            rows.append({"figure": "node CPU per message (µs)",
                         "value": result.figures["node_cpu_us_per_msg"], "baseline": None,
                         "baseline_name": "", "ratio": None, "target": ""})
    half = result.figures.get("half_peak")
    if half:
        rows.append({"figure": "rate at 50 % of peak (msg/s)", "value": half.get("rate_per_s"),
                     "baseline": half.get("target_rate"), "baseline_name": "target pace",
                     "ratio": _ratio(half.get("rate_per_s"), half.get("target_rate")),
                     "target": ""})
    node_lat = result.figures.get("node_latency_half_peak")
    if node_lat:
        clat = chain.get("latency_us", {})
        for q, target in (("p50", "<= 100 µs"), ("p99", "<= 1000 µs")):
            value = node_lat.get(f"{q}_us")
            rows.append({"figure": f"node routing latency {q} at 50 % peak (µs)",
                         "value": _r(value), "baseline": _r(clat.get(q)),
                         "baseline_name": "raw pykka chain (full window)",
                         "ratio": _ratio(value, clat.get(q)), "target": target})
    dep = result.figures.get("deploy")
    if isinstance(dep, dict) and "rate_per_s" in dep:
        rows.append({"figure": "deploy rate (agents/s)", "value": _r(dep["rate_per_s"]),
                     "baseline": None, "baseline_name": "", "ratio": None,
                     "target": ">= 500/s (scale)" if result.name == "scale" else ""})
    if "rss_after_mb" in result.figures:
        rows.append({"figure": "node RSS after deploy (MiB)",
                     "value": result.figures["rss_after_mb"],
                     "baseline": result.figures.get("rss_before_mb"),
                     "baseline_name": "RSS before deploy",
                     "ratio": _ratio(result.figures["rss_after_mb"],
                                     result.figures.get("rss_before_mb")),
                     "target": "<= 1024 MiB at 10,000"})
        rows.append({"figure": "RSS per agent (KiB)", "value": result.figures["rss_per_agent_kb"],
                     "baseline": None, "baseline_name": "", "ratio": None, "target": ""})
    ctl = result.figures.get("control_latency_us")
    if ctl:
        for q in ("p50", "p90", "p99"):
            rows.append({"figure": f"control latency {q} during storm (µs)",
                         "value": ctl["storm"][q], "baseline": ctl["quiet"][q],
                         "baseline_name": "same load, no crashes",
                         "ratio": ctl[f"{q}_ratio"], "target": "<= 2x quiet"})
    return rows


def _r(value: Any) -> Any:
    return round(value, 1) if isinstance(value, float) else value


def build(cfg: Any, result: ScenarioResult, baselines: dict[str, Any] | None,
          node: dict[str, Any]) -> dict[str, Any]:
    """The JSON report."""
    return {
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(cfg).items()},
        "node": node,
        "scenario": result.name,
        "ok": result.ok,
        "checks": result.checks,
        "figures": result.figures,
        "baselines": baselines,
        "comparisons": comparisons(result, baselines),
        "timeline": result.timeline,
        "notes": result.notes,
    }


def print_console(console: Any, report: dict[str, Any]) -> None:
    """The console table: accounting, comparisons with ratios, checks and notes."""
    from rich.table import Table

    load = report["figures"].get("load") or report["figures"].get("each_answers") or {}
    acc = Table(title=f"{report['scenario']}: accounting", show_lines=False)
    for col in ("sent", "replied", "errors by code", "lost", "duplicated", "stray", "wrong"):
        acc.add_column(col, justify="right")
    errs = ", ".join(f"{k} {v}" for k, v in sorted((load.get("errors") or {}).items())) or "0"
    acc.add_row(*(str(load.get(k, "")) for k in ("sent", "replied")), errs,
                *(str(load.get(k, "")) for k in ("lost", "duplicated", "stray", "wrong")))
    console.print(acc)
    cmp = Table(title="figures beside their same-run baselines")
    for col in ("figure", "value", "baseline", "vs", "ratio", "target"):
        cmp.add_column(col, justify="right" if col in ("value", "baseline", "ratio") else "left")
    for row in report["comparisons"]:
        cmp.add_row(row["figure"], _fmt(row["value"]), _fmt(row["baseline"]),
                    row["baseline_name"], _fmt(row["ratio"]), row["target"])
    console.print(cmp)
    checks = Table(title="checks")
    checks.add_column("check")
    checks.add_column("result")
    for name, ok in report["checks"].items():
        checks.add_row(name, "[green]pass[/]" if ok else "[red]FAIL[/]")
    console.print(checks)
    for note in report["notes"]:
        console.print(f"[yellow]note:[/] {note}")


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def write_json(report: dict[str, Any], path: Path) -> Path:
    """Write the JSON report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=str))
    return path


def plot(totals: Totals | None, timeline: list[tuple[float, str]], title: str,
         out_dir: Path) -> tuple[list[Path], str | None]:
    """Latency over time and a latency histogram as PNGs.

    Returns:
        The files written and, when matplotlib is missing, a message saying so.
    """
    if totals is None or not totals.series:
        return [], "no latency samples to plot"
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return [], ("matplotlib is not installed: no plots (install the bench extra: "
                    "pip install -e '.[bench]')")
    out_dir.mkdir(parents=True, exist_ok=True)
    files = []
    ts = [t for t, _ in totals.series]
    ls = [lat / 1000 for _, lat in totals.series]
    fig, ax = plt.subplots(figsize=(10, 4.5))
    ax.scatter(ts, ls, s=1, alpha=0.4)
    ax.set_yscale("log")
    ax.set_xlabel("seconds since the load started")
    ax.set_ylabel("round-trip latency (ms)")
    ax.set_title(f"{title}: latency over time")
    for t, label in timeline:
        ax.axvline(t, color="red", lw=0.8, ls="--")
        ax.text(t, ax.get_ylim()[1], label, rotation=90, va="top", fontsize=7, color="red")
    path = out_dir / f"{title}-latency-time.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    files.append(path)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    data = [v / 1000 for v in totals.lat_us if v > 0]
    lo, hi = max(min(data), 1e-3), max(data)
    bins = [lo * (hi / lo) ** (i / 60) for i in range(61)] if hi > lo else 60
    ax.hist(data, bins=bins)
    ax.set_xscale("log")
    ax.set_xlabel("round-trip latency (ms)")
    ax.set_ylabel("messages")
    ax.set_title(f"{title}: latency histogram (n={len(data):,}, "
                 f"p50 {totals.percentile(50) / 1000:.2f} ms, "
                 f"p99 {totals.percentile(99) / 1000:.2f} ms)")
    path = out_dir / f"{title}-latency-hist.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    files.append(path)
    return files, None
