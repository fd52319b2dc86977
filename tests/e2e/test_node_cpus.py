"""`--cpus` pins the node (every thread) to the given CPUs; a CPU the machine lacks exits 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any


def _allowed(pid: int) -> set[int]:
    return set(os.sched_getaffinity(pid))


def test_cpus_pins_every_thread_of_the_node(node_factory: Any) -> None:
    node = node_factory("--cpus", "0")
    node.start()
    tasks = Path(f"/proc/{node.proc.pid}/task")
    threads = [int(t) for t in os.listdir(tasks)]
    assert len(threads) > 3  # control port, event stream, supervisors, agents ...
    assert all(_allowed(tid) == {0} for tid in threads)
    assert node.cli("message", "send", "counter", "x").returncode == 0


def test_cpus_outside_the_machine_is_a_config_error(tmp_path: Path) -> None:
    missing = str(max(os.sched_getaffinity(0)) + 64)
    out = subprocess.run(
        [sys.executable, "-m", "caxton", "--cpus", missing, "--data-dir", str(tmp_path / "d"),
         "--control", "ipc://" + str(tmp_path / "c"), "--events", "ipc://" + str(tmp_path / "e")],
        capture_output=True, text=True, timeout=60, check=False, cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert "cannot pin the node to CPUs" in out.stderr and "--cpus" in out.stderr
