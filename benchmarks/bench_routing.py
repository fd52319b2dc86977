"""Routing benchmark (issue 5): routed throughput and latency against same-run baselines, and
rollback time.

Run: ``python3 -m benchmarks.bench_routing [--messages N] [--trials T] [--pin]``

Figures:
- throughput of a direct pykka ask to one echo actor (baseline), routed to one version, and
  routed to two versions at 50/50 (new conversation every 3 messages, so pins are exercised);
  the ratios two/one (target >= 0.9) and routed/direct;
- latency of the ``route()`` call itself (decision + enqueue) and round trip, p50/p99;
- time from a blue-green ``rollback`` command to the moment every new message is served by
  the old version, p50/p99 (aim < 50 ms).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import pykka

from benchmarks._logs import quiet_logs
from caxton.messages import Message
from caxton.rollout import RolloutConfig, RolloutCoordinator, Strategy
from caxton.routing import Router, VersionHandle, percentile
from caxton.routing.testing import EchoAgent, served_by, start_echo

WINDOW = 64


def _pipelined(n: int, send: Callable[[int], pykka.Future]) -> tuple[float, float]:
    """Send ``n`` messages keeping ``WINDOW`` outstanding.

    Returns:
        Messages per wall-clock second, and per CPU second of this process (all threads):
        the CPU figure is what the router costs, whatever else the machine runs.
    """
    pending: list[pykka.Future] = []
    start = time.perf_counter()
    cpu = time.process_time()
    for i in range(n):
        pending.append(send(i))
        if len(pending) >= WINDOW:
            for f in pending:
                f.get(timeout=30)
            pending.clear()
    for f in pending:
        f.get(timeout=30)
    return n / (time.perf_counter() - start), n / max(1e-9, time.process_time() - cpu)


def bench_throughput(n: int, trials: int) -> dict[str, float]:
    """Best-of-``trials`` throughput of direct, one-version and two-version routing."""
    ref = EchoAgent.start("direct")
    ref2 = EchoAgent.start("direct2")
    one = Router("bench1", housekeeping_interval=None, pin_ttl=None)
    one.add_version(start_echo("1", agent="bench1"), 100)
    two = Router("bench2", housekeeping_interval=None, pin_ttl=None)
    two.add_version(start_echo("a", agent="bench2"), 50)
    two.add_version(start_echo("b", agent="bench2"), 50)

    def direct(i: int) -> pykka.Future:
        return ref.ask(Message("direct", i, conversation_id=f"c{i // 3}"), block=False)

    def direct_two(i: int) -> pykka.Future:
        target = ref if (i // 3) % 2 else ref2
        return target.ask(Message("direct", i, conversation_id=f"c{i // 3}"), block=False)

    def routed(router: Router, tag: str) -> Callable[[int], pykka.Future]:
        def send(i: int) -> pykka.Future:
            return router.route(Message(router.agent, i, conversation_id=f"{tag}{i // 3}"))
        return send

    results: dict[str, list[float]] = {"direct": [], "direct_two": [], "one": [], "two": []}
    cpu: dict[str, list[float]] = {k: [] for k in results}
    pair_ratios: list[float] = []
    for t in range(trials):  # interleaved so drift hits every variant alike
        for name, send in (("direct", direct), ("direct_two", direct_two),
                           ("one", routed(one, f"o{t}-")), ("two", routed(two, f"t{t}-"))):
            wall, per_cpu = _pipelined(n, send)
            results[name].append(wall)
            cpu[name].append(per_cpu)
        pair_ratios.append(results["two"][-1] / results["one"][-1])
    share_a = two.metrics("a").total_requests / max(1, two.metrics("a").total_requests
                                                     + two.metrics("b").total_requests)
    one.close(5)
    two.close(5)
    ref.stop()
    ref2.stop()
    out = {k: max(v) for k, v in results.items()}
    out.update({f"cpu_{k}": statistics.median(v) for k, v in cpu.items()})
    out["pair_ratio_median"] = statistics.median(pair_ratios)
    out["share_a"] = share_a
    return out


def bench_latency(n: int) -> dict[str, float]:
    """p50/p99 of the route() call alone and of routed vs direct round trips (µs)."""
    ref = EchoAgent.start("direct")
    router = Router("lat", housekeeping_interval=None, pin_ttl=None)
    router.add_version(start_echo("a", agent="lat"), 50)
    router.add_version(start_echo("b", agent="lat"), 50)
    call: list[float] = []
    routed_rt: list[float] = []
    direct_rt: list[float] = []
    for i in range(n):
        m = Message("lat", i, conversation_id=f"c{i // 3}")
        t0 = time.perf_counter()
        f = router.route(m)
        t1 = time.perf_counter()
        f.get(timeout=10)
        t2 = time.perf_counter()
        call.append(t1 - t0)
        routed_rt.append(t2 - t0)
        t3 = time.perf_counter()
        ref.ask(m, block=False).get(timeout=10)
        direct_rt.append(time.perf_counter() - t3)
    router.close(5)
    ref.stop()
    out: dict[str, float] = {}
    for name, values in (("route_call", call), ("routed_rt", routed_rt),
                         ("direct_rt", direct_rt)):
        values.sort()
        out[f"{name}_p50"] = (percentile(values, 0.5) or 0.0) * 1e6
        out[f"{name}_p99"] = (percentile(values, 0.99) or 0.0) * 1e6
    return out


def _starter(version: str) -> Callable[[], VersionHandle]:
    return lambda: start_echo(version, agent="rb")


def bench_rollback(trials: int) -> tuple[list[float], int]:
    """Blue-green: switch to green, then time rollback until blue serves every new message.

    Returns:
        Rollback times in ms, and messages that ended in an error (should be 0).
    """
    router = Router("rb", housekeeping_interval=0.01)
    router.add_version(start_echo("blue", agent="rb"), 100)
    coordinator = RolloutCoordinator(tick_interval=0.01)
    config = RolloutConfig(scale_down_delay=60.0, drain_timeout=1.0)
    times: list[float] = []
    errors = 0
    blue = "blue"
    for t in range(trials):
        green = f"green{t}"
        ex = coordinator.start(router, Strategy.BLUE_GREEN, new_version=green, old_version=blue,
                               config=config, start_new=_starter(green))
        while router.weights().get(green) != 100:
            time.sleep(0.001)
        t0 = time.perf_counter()
        ex.rollback()
        while True:
            f = router.route(Message("rb", t))
            try:
                f.get(timeout=5)
            except Exception:
                errors += 1
                continue
            if served_by(f) == blue:
                times.append((time.perf_counter() - t0) * 1000.0)
                break
        for _ in range(20):  # every later message is served by blue
            f = router.route(Message("rb", t))
            f.get(timeout=5)
            assert served_by(f) == blue
        ex.wait(5)
        router.wait_stopped(green, timeout=5)
    coordinator.shutdown()
    router.close(5)
    return times, errors


def main() -> None:
    """Run every figure and print them beside their baselines."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--rollbacks", type=int, default=40)
    parser.add_argument("--pin", action="store_true", help="pin the process to one core")
    args = parser.parse_args()
    quiet_logs()
    if args.pin and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"bench_routing: {args.messages} messages x {args.trials} trials, window {WINDOW}, "
          f"cores {cores}")

    tp = bench_throughput(args.messages, args.trials)
    print(f"throughput direct pykka ask (baseline) : {tp['direct']:>10.0f} msg/s")
    print(f"throughput direct ask, two actors alt.  : {tp['direct_two']:>10.0f} msg/s "
          f"(no router; two-actor baseline)")
    print(f"throughput routed, one version          : {tp['one']:>10.0f} msg/s")
    print(f"throughput routed, two versions 50/50   : {tp['two']:>10.0f} msg/s "
          f"(share of a {tp['share_a']:.3f})")
    print(f"ratio two versions / one version        : {tp['two'] / tp['one']:>10.2f} "
          f"(target >= 0.9)")
    print(f"ratio direct two actors / one actor     : {tp['direct_two'] / tp['direct']:>10.2f} "
          f"(the cost of a second actor thread without any router)")
    print(f"ratio routed one version / direct ask   : {tp['one'] / tp['direct']:>10.2f}")
    print(f"ratio routed two versions / direct two  : {tp['two'] / tp['direct_two']:>10.2f}")
    print(f"ratio two / one, median of paired trials: {tp['pair_ratio_median']:>10.2f} "
          f"(each pair run back to back)")
    print(f"messages per CPU-second (median)        : direct {tp['cpu_direct']:.0f}, "
          f"direct two {tp['cpu_direct_two']:.0f}, one {tp['cpu_one']:.0f}, "
          f"two {tp['cpu_two']:.0f}")
    print(f"ratio two / one per CPU-second          : {tp['cpu_two'] / tp['cpu_one']:>10.2f} "
          f"(insensitive to other load on the machine)")

    lat = bench_latency(min(args.messages, 5000))
    print(f"route() call (decision + enqueue)        : p50 {lat['route_call_p50']:7.1f} us  "
          f"p99 {lat['route_call_p99']:7.1f} us (target p50 <= 100 us)")
    print(f"round trip routed (two versions)         : p50 {lat['routed_rt_p50']:7.1f} us  "
          f"p99 {lat['routed_rt_p99']:7.1f} us")
    print(f"round trip direct ask (baseline)         : p50 {lat['direct_rt_p50']:7.1f} us  "
          f"p99 {lat['direct_rt_p99']:7.1f} us")

    times, errors = bench_rollback(args.rollbacks)
    times.sort()
    print(f"blue-green rollback -> all new messages on blue ({len(times)} runs): "
          f"p50 {percentile(times, 0.5):.2f} ms  p99 {percentile(times, 0.99):.2f} ms  "
          f"max {max(times):.2f} ms  mean {statistics.fmean(times):.2f} ms (aim < 50 ms); "
          f"message errors {errors}")


if __name__ == "__main__":
    main()
