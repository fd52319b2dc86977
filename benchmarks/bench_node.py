"""The node as a process: start-to-ready time, idle RSS, and the control round trip.

Run: ``python -m benchmarks.bench_node [--n 3000] [--rounds 3] [--starts 3]``

Everything is a real subprocess on free loopback ports, in a temporary directory:

* start-to-ready — from ``Popen`` of ``python -m caxton`` to its first ``node.status`` reply,
  with an empty agents dir and with the four example agents; the baseline is a bare
  ``python`` REP server (pyzmq + msgpack) from ``Popen`` to its first reply. Target <= 1 s.
* idle RSS — the node's RSS once ready (empty and with the examples; read from
  ``/proc/PID/status``); the baseline is the bare REP server's RSS. Target <= 100 MB.
* control round trip — ``node.status`` on the real node vs the bare REP server answering a
  status map, both driven by the same REQ client with msgpack, in interleaved rounds. Target:
  p50 ratio <= 1.5.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import msgpack
import zmq

from benchmarks.bench_control import _free_port, _pct, _req_round

REPO = Path(__file__).resolve().parents[1]
RAW_SERVER = """
import sys, msgpack, zmq
STATUS = {"version": "0.1.0", "pid": 1, "uptime_s": 1.0, "control_endpoint": sys.argv[1],
          "agents": 0}
ctx = zmq.Context(); sock = ctx.socket(zmq.REP); sock.bind(sys.argv[1])
while True:
    msg = msgpack.unpackb(sock.recv(), raw=False)
    if msg.get("op") == "stop":
        sock.send(b""); break
    sock.send(msgpack.packb({"v": 1, "id": msg["id"], "ok": True, "result": STATUS}))
"""


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO),
                                                        os.environ.get("PYTHONPATH", "")]))


def _rss(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def _wait_reply(endpoint: str, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> float:
    """Poll with a REQ socket until the server answers; return the monotonic time of it."""
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        sock = ctx.socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(endpoint)
        sock.send(msgpack.packb({"v": 1, "id": 1, "op": "node.status", "args": {}}))
        ok = sock.poll(50)
        if ok:
            sock.recv()
        sock.close(0)
        if ok:
            return time.monotonic()
    raise RuntimeError("server not ready in time")


def _start_node(root: Path, with_agents: bool) -> tuple[subprocess.Popen[bytes], str, float]:
    agents = root / "agents"
    shutil.rmtree(root, ignore_errors=True)
    agents.mkdir(parents=True)
    if with_agents:
        for f in (REPO / "agents").iterdir():
            if f.is_file():
                shutil.copy(f, agents / f.name)
    control = f"tcp://127.0.0.1:{_free_port()}"
    events = f"tcp://127.0.0.1:{_free_port()}"
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "caxton", "--control", control, "--events", events,
         "--data-dir", str(root / "data"), "--agents-dir", str(agents), "--log-level",
         "warning"], cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env=_env())
    ready = _wait_reply(control, proc)
    return proc, control, ready - t0


def _start_raw() -> tuple[subprocess.Popen[bytes], str, float]:
    endpoint = f"tcp://127.0.0.1:{_free_port()}"
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-c", RAW_SERVER, endpoint],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env())
    ready = _wait_reply(endpoint, proc)
    return proc, endpoint, ready - t0


def _stop(proc: subprocess.Popen[bytes], endpoint: str, node: bool) -> None:
    if node:
        proc.terminate()
    else:
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
        sock = ctx.socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(endpoint)
        sock.send(msgpack.packb({"op": "stop"}))
        sock.poll(2000)
        sock.close(0)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print figures beside same-run baselines.

    Args:
        argv: Arguments.

    Returns:
        0.
    """
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, default=3000, help="round trips per round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--starts", type=int, default=3, help="starts per kind (median kept)")
    ns = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="caxton-bench-node-"))
    try:
        starts: dict[str, list[float]] = {"raw REP server": [], "node (no agents)": [],
                                          "node (4 example agents)": []}
        rss: dict[str, list[int]] = {k: [] for k in starts}
        for _ in range(ns.starts):
            proc, ep, dt = _start_raw()
            starts["raw REP server"].append(dt)
            rss["raw REP server"].append(_rss(proc.pid))
            _stop(proc, ep, node=False)
            for label, with_agents in (("node (no agents)", False),
                                       ("node (4 example agents)", True)):
                proc, ep, dt = _start_node(tmp / "node", with_agents)
                starts[label].append(dt)
                time.sleep(0.5)  # idle
                rss[label].append(_rss(proc.pid))
                _stop(proc, ep, node=True)

        print(f"start-to-ready and idle RSS, median of {ns.starts} starts (real subprocesses)")
        print(f"{'process':<26}{'ready s':>10}{'RSS MB':>10}")
        for label in starts:
            print(f"{label:<26}{statistics.median(starts[label]):>10.3f}"
                  f"{statistics.median(rss[label]) / 2**20:>10.1f}")
        node_ready = statistics.median(starts["node (4 example agents)"])
        node_rss = statistics.median(rss["node (4 example agents)"]) / 2**20
        print(f"node with examples: ready {node_ready:.3f} s "
              f"({'meets' if node_ready <= 1.0 else 'MISSES'} target <= 1 s), "
              f"RSS {node_rss:.1f} MB ({'meets' if node_rss <= 100 else 'MISSES'} "
              "target <= 100 MB)")

        raw_proc, raw_ep, _ = _start_raw()
        node_proc, node_ep, _ = _start_node(tmp / "rtt", True)
        series: dict[str, list[float]] = {"raw REQ/REP": [], "node node.status": []}
        try:
            for _ in range(ns.rounds):
                series["raw REQ/REP"] += _req_round(raw_ep, ns.n)
                series["node node.status"] += _req_round(node_ep, ns.n)
        finally:
            _stop(raw_proc, raw_ep, node=False)
            _stop(node_proc, node_ep, node=True)
        print(f"\ncontrol round trip, {ns.rounds} interleaved rounds x {ns.n}, REQ client, "
              "loopback TCP")
        print(f"{'series':<26}{'p50 us':>10}{'p99 us':>10}{'mean us':>10}")
        for name, data in series.items():
            print(f"{name:<26}{_pct(data, 0.5):>10.1f}{_pct(data, 0.99):>10.1f}"
                  f"{statistics.fmean(data):>10.1f}")
        base, node = series["raw REQ/REP"], series["node node.status"]
        ratio = _pct(node, 0.5) / _pct(base, 0.5)
        print(f"ratio node / raw: p50 {ratio:.2f} "
              f"({'meets' if ratio <= 1.5 else 'MISSES'} target <= 1.5), "
              f"p99 {_pct(node, 0.99) / _pct(base, 0.99):.2f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
