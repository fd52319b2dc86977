"""Control round trip over the Caxton control port vs raw pyzmq REQ/REP with msgpack.

Run: ``python3 benchmarks/bench_control.py [--n 5000] [--rounds 4]``

Each server runs in its own subprocess (as a node would), on a free loopback TCP port:

* ``raw``     — a REP socket: recv, msgpack-decode, msgpack-encode a fixed status map, send.
* ``control`` — :class:`caxton.control.server.ControlServer` with a trivial ``node.status``
  handler (inline), i.e. envelope checks, pydantic args validation, dispatch, reply encoding,
  ROUTER_MANDATORY send and latency recording.

Both are driven by the same REQ client sending the same request map, in interleaved rounds
(absolute timings swing on this kind of machine; the ratio from the same run is the figure).
A third series drives the control server with :class:`ControlClient.call` (the CLI's client).
Target: control/raw p50 ratio <= 1.5.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
from typing import Any

import msgpack
import zmq

STATUS = {"version": "0.1.0", "pid": 1, "uptime_s": 1.0,
          "control_endpoint": "tcp://127.0.0.1:7460", "agents": 0}
REQUEST = {"v": 1, "id": 1, "op": "node.status", "args": {}}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_raw(endpoint: str) -> None:
    ctx = zmq.Context()
    sock = ctx.socket(zmq.REP)
    sock.bind(endpoint)
    print("ready", flush=True)
    while True:
        msg = msgpack.unpackb(sock.recv(), raw=False)
        if msg.get("op") == "stop":
            sock.send(b"")
            break
        sock.send(msgpack.packb({"v": 1, "id": msg["id"], "ok": True, "result": STATUS}))


def serve_control(endpoint: str) -> None:
    from caxton.control.server import ControlServer

    server = ControlServer(endpoint)
    server.register("node.status", lambda _a: STATUS, blocking=False)
    def shutdown(_args: Any) -> dict[str, bool]:
        server.stop(0.5)
        return {"stopping": True}

    server.register("node.shutdown", shutdown, blocking=False)
    server.start()
    print("ready", flush=True)
    server.wait_stopped()


def _spawn(kind: str, endpoint: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
         os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--serve", kind,
                             "--endpoint", endpoint], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env=env)
    assert proc.stdout is not None
    for _ in range(50):  # skip the server's own log lines
        line = proc.stdout.readline()
        if line.strip() == "ready":
            return proc
        if not line:
            break
    proc.kill()
    raise RuntimeError(f"{kind} server did not start")


def _req_round(endpoint: str, n: int, warmup: int = 200) -> list[float]:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
    sock = ctx.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    out = []
    try:
        for i in range(n + warmup):
            t0 = time.perf_counter_ns()
            sock.send(msgpack.packb({**REQUEST, "id": i}))
            reply = msgpack.unpackb(sock.recv(), raw=False)
            t1 = time.perf_counter_ns()
            assert reply["ok"], reply
            if i >= warmup:
                out.append((t1 - t0) / 1000)
    finally:
        sock.close(0)
    return out


def _client_round(endpoint: str, n: int, warmup: int = 200) -> list[float]:
    from caxton.control.client import ControlClient

    out = []
    with ControlClient(endpoint, timeout=10) as client:
        for i in range(n + warmup):
            t0 = time.perf_counter_ns()
            client.call("node.status")
            t1 = time.perf_counter_ns()
            if i >= warmup:
                out.append((t1 - t0) / 1000)
    return out


def _pct(data: list[float], q: float) -> float:
    s = sorted(data)
    return s[min(len(s) - 1, int(len(s) * q))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="round trips per round")
    parser.add_argument("--rounds", type=int, default=4, help="interleaved rounds")
    parser.add_argument("--serve", choices=["raw", "control"], help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    ns = parser.parse_args(argv)
    if ns.serve:
        (serve_raw if ns.serve == "raw" else serve_control)(ns.endpoint)
        return 0

    raw_ep = f"tcp://127.0.0.1:{_free_port()}"
    ctl_ep = f"tcp://127.0.0.1:{_free_port()}"
    raw_proc = _spawn("raw", raw_ep)
    try:
        ctl_proc = _spawn("control", ctl_ep)
    except BaseException:
        raw_proc.kill()
        raise
    series: dict[str, list[float]] = {"raw REQ/REP": [], "control (REQ client)": [],
                                      "control (ControlClient)": []}
    try:
        for _ in range(ns.rounds):
            series["raw REQ/REP"] += _req_round(raw_ep, ns.n)
            series["control (REQ client)"] += _req_round(ctl_ep, ns.n)
            series["control (ControlClient)"] += _client_round(ctl_ep, ns.n)
    finally:
        _stop(raw_ep, ctl_ep)
        for proc in (raw_proc, ctl_proc):
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()

    print(f"control round trip (node.status), {ns.rounds} interleaved rounds x {ns.n}, "
          f"servers in subprocesses, loopback TCP")
    print(f"{'series':<26}{'p50 us':>10}{'p99 us':>10}{'mean us':>10}")
    for name, data in series.items():
        print(f"{name:<26}{_pct(data, 0.5):>10.1f}{_pct(data, 0.99):>10.1f}"
              f"{statistics.fmean(data):>10.1f}")
    base = series["raw REQ/REP"]
    for name in ("control (REQ client)", "control (ControlClient)"):
        data = series[name]
        ratio50 = _pct(data, 0.5) / _pct(base, 0.5)
        ratio99 = _pct(data, 0.99) / _pct(base, 0.99)
        verdict = "meets" if ratio50 <= 1.5 else "MISSES"
        print(f"ratio {name} / raw: p50 {ratio50:.2f} ({verdict} target <= 1.5), "
              f"p99 {ratio99:.2f}")
    return 0


def _stop(raw_ep: str, ctl_ep: str) -> None:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
    for ep, frame in ((raw_ep, {"op": "stop"}),
                      (ctl_ep, {"v": 1, "id": 0, "op": "node.shutdown", "args": {}})):
        sock = ctx.socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(ep)
        sock.send(msgpack.packb(frame))
        sock.poll(2000)
        sock.close(0)




if __name__ == "__main__":
    raise SystemExit(main())
