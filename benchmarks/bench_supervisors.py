"""Micro-benchmarks of the supervisors library, each beside a baseline from the same run.

Run: ``python3 -m benchmarks.bench_supervisors [--messages N] [--crashes N] [--children N]``

1. Message throughput to a supervised child vs a plain pykka actor (target ratio >= 0.9).
2. Restart latency, crash to the new instance answering, zero backoff: p50/p99
   (target p50 <= 2 ms), beside the latency of starting a plain actor and asking it.
3. Starting N children under one supervisor vs starting N plain actors (target <= 1.5).

Like an application would, it configures structlog to drop events below ERROR (a
crash storm is the point here); the library itself never configures logging. Absolute figures swing with the
machine; the ratios are what to compare.
"""

from __future__ import annotations

import argparse
import logging
import queue
import statistics
import time
from typing import Any

import pykka
import structlog

from supervisors import Backoff, ChildSpec, Supervised, Supervisor


class PlainCounter(pykka.ThreadingActor):
    """Baseline: a plain pykka actor."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def on_receive(self, message: Any) -> Any:
        if message == "crash":
            raise RuntimeError("crash")
        self.count += 1
        return self.count


class SupervisedCounter(Supervised, PlainCounter):
    """The same actor with the supervision mixin."""


def _throughput(ref: pykka.ActorRef[Any], messages: int) -> float:
    """Messages per second: ``messages`` tells, then one ask to drain the mailbox."""
    started = time.perf_counter()
    for _ in range(messages):
        ref.tell("m")
    ref.ask("m")
    return (messages + 1) / (time.perf_counter() - started)


def bench_throughput(messages: int, rounds: int) -> tuple[float, float]:
    sup = Supervisor.start([ChildSpec("c", SupervisedCounter.start)], breaker=None)
    supervised = sup.proxy().which_children().get()[0].ref
    plain = PlainCounter.start()
    s_rates, p_rates = [], []
    for _ in range(rounds):  # interleaved, so both see the same machine weather
        p_rates.append(_throughput(plain, messages))
        s_rates.append(_throughput(supervised, messages))
    plain.stop()
    sup.stop()
    return statistics.median(s_rates), statistics.median(p_rates)


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered), p99


def bench_restart(crashes: int) -> tuple[tuple[float, float], tuple[float, float]]:
    started: queue.Queue[pykka.ActorRef[Any]] = queue.Queue()

    def listener(event: str, data: dict[str, Any]) -> None:
        if event == "child_started":
            started.put(data["ref"])

    sup = Supervisor.start(
        [ChildSpec("c", SupervisedCounter.start)],
        backoff=Backoff.immediate(),
        breaker=None,
        max_restarts=crashes * 2,
        within=1.0,
        listeners=[listener],
    )
    ref = started.get(timeout=10)  # the first instance's child_started
    restart_ms = []
    for _ in range(crashes):
        t0 = time.perf_counter()
        ref.tell("crash")
        ref = started.get(timeout=10)
        ref.ask("ping")
        restart_ms.append((time.perf_counter() - t0) * 1000)
    sup.stop()

    baseline_ms = []
    for _ in range(crashes):
        t0 = time.perf_counter()
        plain = PlainCounter.start()
        plain.ask("ping")
        baseline_ms.append((time.perf_counter() - t0) * 1000)
        plain.stop(block=False)
    pykka.ActorRegistry.stop_all()
    return _percentiles(restart_ms), _percentiles(baseline_ms)


def bench_start(children: int, rounds: int) -> tuple[float, float]:
    specs = [ChildSpec(f"c{i}", SupervisedCounter.start) for i in range(children)]
    sup_times, plain_times = [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        refs = [PlainCounter.start() for _ in range(children)]
        plain_times.append(time.perf_counter() - t0)
        for r in refs:
            r.stop()

        t0 = time.perf_counter()
        sup = Supervisor.start(specs, breaker=None)
        sup_times.append(time.perf_counter() - t0)
        sup.stop()
    return statistics.median(sup_times), statistics.median(plain_times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--crashes", type=int, default=1_000)
    parser.add_argument("--children", type=int, default=1_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    logging.getLogger("pykka").setLevel(logging.CRITICAL)  # crashes are the point here

    s_rate, p_rate = bench_throughput(args.messages, args.rounds)
    print(
        f"throughput   supervised {s_rate:>11,.0f} msg/s   plain {p_rate:>11,.0f} msg/s   "
        f"ratio {s_rate / p_rate:.2f}  (target >= 0.9)"
    )
    (r50, r99), (b50, b99) = bench_restart(args.crashes)
    print(
        f"restart      crash->answer p50 {r50:.3f} ms p99 {r99:.3f} ms over {args.crashes} crashes   "
        f"plain start->answer p50 {b50:.3f} ms p99 {b99:.3f} ms   "
        f"ratio p50 {r50 / b50:.2f}  (target p50 <= 2 ms)"
    )
    s_start, p_start = bench_start(args.children, max(1, args.rounds // 2))
    print(
        f"start        {args.children} children under one supervisor {s_start * 1000:.1f} ms   "
        f"{args.children} plain actors {p_start * 1000:.1f} ms   "
        f"ratio {s_start / p_start:.2f}  (target <= 1.5)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
