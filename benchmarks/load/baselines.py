"""Same-run baselines: a raw pyzmq ROUTER echo server and a raw pykka actor chain.

* :func:`raw_zmq_server` — a ROUTER socket in its own process that decodes each msgpack
  request and replies ``{"v":1,"id":…,"ok":true,"result":{"content": args.content}}``: the
  wire, framing and codec cost with no runtime at all. The load clients drive it exactly as
  they drive the node (same window, same client count, same payload), so the node's figures
  can be quoted as a ratio to it.
* :func:`pykka_chain` — ``hops`` plain pykka actors in a chain, the last one answering; driven
  from one thread with the same total number of requests in flight. The node routes a message
  through one actor hop (socket thread → agent instance → socket thread), so ``hops=1``
  matches the node's path.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from typing import Any

import msgpack
import zmq

from benchmarks.load.node import free_port


def _serve_raw(endpoint: str, ready: Any, stop: Any) -> None:
    ctx = zmq.Context()
    sock = ctx.socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
    sock.setsockopt(zmq.SNDHWM, 100_000)
    sock.setsockopt(zmq.RCVHWM, 100_000)
    sock.bind(endpoint)
    ready.set()
    poller = zmq.Poller()
    poller.register(sock, zmq.POLLIN)
    while not stop.is_set():
        if not poller.poll(100):
            continue
        while True:
            try:
                ident, frame = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            except ValueError:
                continue
            req = msgpack.unpackb(frame, raw=False)
            args = req.get("args") or {}
            reply = msgpack.packb({"v": 1, "id": req.get("id"), "ok": True,
                                   "result": {"content": args.get("content")}},
                                  use_bin_type=True)
            try:
                sock.send_multipart([ident, reply])
            except zmq.ZMQError:
                pass
    sock.close(0)
    ctx.term()


class RawZmqServer:
    """The raw ROUTER echo server in a subprocess (context manager)."""

    def __init__(self) -> None:
        self.endpoint = f"tcp://127.0.0.1:{free_port()}"
        ctx = mp.get_context("spawn")
        self._ready = ctx.Event()
        self._stop = ctx.Event()
        self._proc = ctx.Process(target=_serve_raw, args=(self.endpoint, self._ready,
                                                          self._stop), daemon=True)

    def __enter__(self) -> RawZmqServer:
        self._proc.start()
        if not self._ready.wait(20):
            self.__exit__()
            raise RuntimeError("the raw zmq baseline server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._proc.join(timeout=5)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join(timeout=5)


def raw_zmq_server() -> RawZmqServer:
    """A new (not yet started) raw ROUTER echo server."""
    return RawZmqServer()


def _chain(hops: int, in_flight: int, duration: float, messages: int, out: Any) -> None:
    import pykka

    class Hop(pykka.ThreadingActor):
        def __init__(self, nxt: Any) -> None:
            super().__init__()
            self.nxt = nxt

        def on_receive(self, message: Any) -> Any:
            if self.nxt is None:
                message[1].set(message[0])
            else:
                self.nxt.tell(message)
            return None

    refs: list[Any] = []
    nxt = None
    for _ in range(hops):
        nxt = Hop.start(nxt)
        refs.append(nxt)
    head = refs[-1]
    lat: list[float] = []
    sent = done = 0
    import collections

    pending: collections.deque[tuple[int, Any]] = collections.deque()
    start = time.monotonic()
    end = start + duration if duration > 0 else start + 3600
    try:
        while True:
            now = time.monotonic()
            sending = now < end and (messages <= 0 or sent < messages)
            while sending and len(pending) < in_flight:
                fut = pykka.ThreadingFuture()  # type: ignore[var-annotated]
                t = time.perf_counter_ns()
                head.tell((sent, fut))
                pending.append((t, fut))
                sent += 1
                sending = messages <= 0 or sent < messages
            if not pending:
                break
            t, fut = pending.popleft()
            fut.get(timeout=10)
            lat.append((time.perf_counter_ns() - t) / 1000.0)
            done += 1
    finally:
        for ref in refs:
            ref.stop(block=False)
    elapsed = time.monotonic() - start
    lat.sort()
    n = len(lat)
    out.put({"hops": hops, "in_flight": in_flight, "sent": sent, "done": done,
             "elapsed_s": elapsed, "rate_per_s": done / elapsed if elapsed else 0.0,
             "latency_us": {"p50": lat[n // 2] if n else 0.0,
                            "p99": lat[min(n - 1, n * 99 // 100)] if n else 0.0}})


def pykka_chain(hops: int, in_flight: int, duration: float, messages: int = 0) -> dict[str, Any]:
    """Run the raw pykka chain in a subprocess and return its figures.

    Args:
        hops: Actors in the chain.
        in_flight: Requests in flight (clients x window).
        duration: Seconds of sending.
        messages: Bound on requests (``0``: only the duration bounds it).

    Returns:
        ``{"rate_per_s", "latency_us": {"p50", "p99"}, ...}``.
    """
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    proc = ctx.Process(target=_chain, args=(hops, in_flight, duration, messages, out),
                       daemon=True)
    proc.start()
    try:
        return dict(out.get(timeout=duration + 60))
    finally:
        proc.join(timeout=5)
        if proc.is_alive():
            proc.kill()
            proc.join(timeout=5)
