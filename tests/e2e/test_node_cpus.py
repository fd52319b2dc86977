"""`--cpus` pins the node (every thread) to the given CPUs; a CPU the machine lacks exits 2.
`--gil-cpu` (default auto) puts the node's Python threads on one CPU and leaves ZeroMQ's I/O
threads on every CPU the node may use."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest


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


def _threads(pid: int) -> dict[int, tuple[str, set[int]]]:
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        name = Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
        out[int(tid)] = (name, _allowed(int(tid)))
    return out


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs")
def test_python_threads_share_one_cpu_and_zeromq_threads_keep_all(node_factory: Any) -> None:
    every = _allowed(os.getpid())
    node = node_factory()  # gil_cpu defaults to auto
    node.start()
    pid = node.proc.pid
    threads = _threads(pid)
    zmq_threads = [cpus for name, cpus in threads.values() if name.startswith("ZMQbg")]
    python_threads = [cpus for name, cpus in threads.values() if not name.startswith("ZMQbg")]
    assert zmq_threads and all(cpus == every for cpus in zmq_threads)
    # the main thread, the control port, the manager, the store... share one CPU; the actor
    # pool's workers (slow actors' guest calls) keep every CPU (see supervisors' own test)
    assert threads[pid][1] == {min(every)}
    assert sum(cpus == {min(every)} for cpus in python_threads) > 3
    assert all(cpus in ({min(every)}, every) for cpus in python_threads)
    # threads started later (a deploy, a message) inherit it
    assert node.cli("message", "send", "counter", "x").returncode == 0
    later = _threads(pid)
    assert all(cpus in ({min(every)}, every) for _, cpus in later.values())
    assert "node.python_threads_pinned" in node.stderr() + node.stdout()


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs")
def test_gil_cpu_off_leaves_every_thread_free(node_factory: Any) -> None:
    every = _allowed(os.getpid())
    node = node_factory("--gil-cpu", "off")
    node.start()
    assert all(cpus == every for _, cpus in _threads(node.proc.pid).values())


def test_gil_cpu_the_node_may_not_use_is_a_config_error(tmp_path: Path) -> None:
    missing = str(max(os.sched_getaffinity(0)) + 64)
    out = subprocess.run(
        [sys.executable, "-m", "caxton", "--gil-cpu", missing, "--data-dir",
         str(tmp_path / "d"), "--control", "ipc://" + str(tmp_path / "c"),
         "--events", "ipc://" + str(tmp_path / "e")],
        capture_output=True, text=True, timeout=60, check=False, cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert f"gil_cpu={int(missing)}" in out.stderr and "--gil-cpu off" in out.stderr
