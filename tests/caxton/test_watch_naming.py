"""The agent-file naming rule shared by the node and the CLI, and the watchers' defaults,
debounce and polling cost."""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from caxton.cli import agent_name_of, build_parser, read_agent_file, scan_agent_files
from caxton.config import NodeConfig
from caxton.naming import (
    AGENT_SUFFIXES,
    agent_name_for_file,
    config_names_in,
    frontmatter_name,
    wasm_agent_name,
)
from caxton.watch import DEFAULT_DEBOUNCE, DEFAULT_INTERVAL, AgentsDirWatcher, quiet_for, scan

REPO = Path(__file__).resolve().parents[2]


def md(name: str) -> str:
    return f"---\nname: {name}\ncapabilities: [echo]\n---\nbody\n"


# ------------------------------------------------------------------ naming


@pytest.mark.parametrize(("text", "name"), [
    (md("echo"), "echo"),
    ("---\nname: 'quoted one'\n---\n", "quoted one"),
    ("\ufeff---\nname: bom\n...\nbody", "bom"),           # BOM and '...' closer, as the parser
    ("---\nversion: 1\n---\n", None),                    # no name
    ("---\nname: [a, b]\n---\n", None),                  # not a scalar
    ("---\nname: x: y: z\n---\n", None),                 # not YAML
    ("---\nname: open\n", None),                         # never closed
    ("name: x\n", None),                                 # no frontmatter
])
def test_frontmatter_name(text: str, name: str | None) -> None:
    assert frontmatter_name(text) == name


def test_module_beside_a_same_named_config_agent_gets_the_wasm_suffix(tmp_path: Path) -> None:
    (tmp_path / "echo.md").write_text(md("echo"))
    (tmp_path / "other.md").write_text(md("Renamed"))  # named by frontmatter, not stem
    (tmp_path / "broken.md").write_text("not an agent")
    for stem in ("echo", "other", "Renamed", "counter"):
        (tmp_path / f"{stem}.wat").write_text("(module)")
    assert config_names_in(tmp_path) == {"echo", "Renamed"}
    assert wasm_agent_name(tmp_path / "echo.wat") == "echo-wasm"
    assert wasm_agent_name(tmp_path / "Renamed.wat") == "Renamed-wasm"
    assert wasm_agent_name(tmp_path / "other.wat") == "other"
    assert wasm_agent_name(tmp_path / "counter.wat") == "counter"
    assert wasm_agent_name(tmp_path / "counter.wat", config_names={"counter"}) == "counter-wasm"
    assert agent_name_for_file(tmp_path / "other.md") == "Renamed"
    assert agent_name_for_file(tmp_path / "broken.md") == "broken"


def test_cli_names_files_like_the_node() -> None:
    """The example agents: the node lists echo (config), echo-wasm, counter, DataProcessor
    (tests/e2e/test_node_cli.py); the CLI's watcher must use the same names."""
    names = {p.name: agent_name_of(p, read_agent_file(p))
             for p in sorted((REPO / "agents").iterdir()) if p.suffix in AGENT_SUFFIXES}
    assert names == {"echo.md": "echo", "echo.wat": "echo-wasm", "counter.wat": "counter",
                     "data-processor.md": "DataProcessor"}


# ------------------------------------------------------------------ watch defaults and debounce


def test_watch_defaults_are_fast() -> None:
    assert (DEFAULT_INTERVAL, DEFAULT_DEBOUNCE) == (0.05, 0.1)
    watcher = AgentsDirWatcher(SimpleNamespace(), REPO / "agents")  # type: ignore[arg-type]
    assert (watcher.interval, watcher.debounce) == (0.05, 0.1)
    assert float(NodeConfig().watch.debounce) == pytest.approx(0.1)  # what the node passes
    ns = build_parser().parse_args(["agents", "watch", "d"])
    assert (ns.interval, ns.debounce) == (0.05, 0.1)


class Recording(AgentsDirWatcher):
    """A watcher that records what it would apply (no node needed)."""

    applied_paths: list[Path]

    def apply(self, path: Path) -> bool:
        self.applied_paths.append(path)
        return True


def test_debounce_counts_from_the_files_last_write(tmp_path: Path) -> None:
    watcher = Recording(SimpleNamespace(), tmp_path)  # type: ignore[arg-type]
    watcher.applied_paths = []
    f = tmp_path / "a.md"
    f.write_text(md("a"))
    mtime = f.stat().st_mtime_ns / 1e9
    # seen 60 ms after it was written: 40 ms of quiet still owed, and the thread wakes then
    watcher.poll(100.0, wall=mtime + 0.06)
    assert watcher.applied_paths == []
    assert watcher.next_wait(100.0) == pytest.approx(0.04, abs=1e-5)
    watcher.poll(100.039, wall=mtime + 0.099)
    assert watcher.applied_paths == []
    watcher.poll(100.041, wall=mtime + 0.101)
    assert watcher.applied_paths == [f]
    assert watcher.next_wait(100.041) == pytest.approx(DEFAULT_INTERVAL)  # nothing pending
    # an old mtime (cp -p) or a skewed clock counts as one debounce of quiet at most
    assert quiet_for((0, 1), wall=1e9, debounce=0.1) == 0.1
    assert quiet_for((int(2e18), 1), wall=1e9, debounce=0.1) == 0.0


def _cpu_ms_per_scan(fn: Any, rounds: int = 60) -> float:
    samples = []
    for _ in range(rounds):
        t0 = time.thread_time()
        fn()
        samples.append((time.thread_time() - t0) * 1000.0)
    return statistics.median(samples)


def test_polling_a_100_file_dir_costs_well_under_a_millisecond(tmp_path: Path) -> None:
    """At 20 polls a second, 1 ms of CPU per poll would be 2 % of a core; the scans stay far
    below (~0.2-0.3 ms for 100 files on this machine)."""
    for i in range(100):
        (tmp_path / f"agent{i}.md").write_text(md(f"agent{i}"))
    (tmp_path / "notes.txt").write_text("ignored")
    os.mkdir(tmp_path / "sub")
    (tmp_path / "sub" / "deep.wat").write_text("(module)")
    paths: dict[str, Path] = {}
    assert len(scan(tmp_path, AGENT_SUFFIXES, paths)) == 100   # the node: top level only
    cli_paths: dict[str, Path] = {}
    assert len(scan_agent_files(tmp_path, cli_paths)) == 101   # the CLI: recursive
    node_ms = _cpu_ms_per_scan(lambda: scan(tmp_path, AGENT_SUFFIXES, paths))
    cli_ms = _cpu_ms_per_scan(lambda: scan_agent_files(tmp_path, cli_paths))
    print(f"\nCPU per poll of 100 files: node {node_ms:.3f} ms, CLI {cli_ms:.3f} ms")
    assert node_ms < 1.0 and cli_ms < 1.0, (node_ms, cli_ms)
