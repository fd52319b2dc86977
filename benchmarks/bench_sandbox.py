"""Sandbox micro-benchmarks: each figure beside a baseline measured in the same run.

Run: ``python3 -m benchmarks.bench_sandbox`` (``--quick`` for a smoke run).

1. Per-message cost of ``Sandbox.handle`` (echo, small msgpack message) vs one raw wasmtime
   call of a trivial export (target ratio <= 2).
2. Loading a sandbox from the cached template vs a raw ``InstancePre.instantiate``
   (target <= 100 us median), and RSS of 1,000 live sandboxes (target <= 200 MiB).
3. Fuel-metering and epoch-interruption overhead on a compute loop vs an unmetered engine.

The baselines use wasmtime directly on purpose: they are what the sandbox is measured against.
"""

from __future__ import annotations

import argparse
import gc
import logging
import statistics
import struct
import time
from collections.abc import Callable

import msgpack
import psutil
import structlog
import wasmtime

from sandbox import ResourceLimits, Sandbox, SecurityPolicy
from sandbox.testing import read_example_module, read_testing_module


def _median_us(fn: Callable[[], object], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1e6


def _batch_us(fn: Callable[[], object], count: int, rounds: int = 5) -> float:
    """Median over ``rounds`` of the mean time per call of ``count`` back-to-back calls."""
    results = []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(count):
            fn()
        results.append((time.perf_counter() - started) / count)
    return statistics.median(results) * 1e6


def _line(
    label: str, value: str, baseline_label: str, baseline: str, ratio: float, target: str
) -> str:
    return f"{label:<44} {value:>12} | {baseline_label:<36} {baseline:>12} | ratio {ratio:6.2f} {target}"


def bench_per_message(messages: int) -> str:
    box = Sandbox.load(read_example_module("echo.wat"))
    message = msgpack.packb({"performative": "request", "content": {"x": 1, "text": "hello"}})
    assert box.handle(message) == message
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    trivial = wasmtime.Module(
        engine, '(module (func (export "f") (param i32) (result i64) (i64.const 0)))'
    )
    func = wasmtime.Instance(store, trivial, []).exports(store)["f"]
    assert isinstance(func, wasmtime.Func)
    ours = _batch_us(lambda: box.handle(message), messages)
    raw = _batch_us(lambda: func(store, 7), messages)
    box.close()
    return _line(
        f"handle() {len(message)}-byte msgpack (echo)",
        f"{ours:.1f} us",
        "raw wasmtime Func call",
        f"{raw:.1f} us",
        ours / raw,
        "(target <= 2)",
    )


def bench_instantiate(repeat: int) -> str:
    module = read_example_module("echo.wat")
    limits = ResourceLimits()
    Sandbox.load(module, limits).close()  # compile and validate once: the cache is warm
    boxes: list[Sandbox] = []
    ours = _median_us(lambda: boxes.append(Sandbox.load(module, limits)), repeat)
    for box in boxes:
        box.close()
    config = wasmtime.Config()
    config.consume_fuel = True
    config.epoch_interruption = True
    engine = wasmtime.Engine(config)
    pre = wasmtime.Linker(engine).instantiate_pre(wasmtime.Module(engine, module.decode()))

    def raw() -> None:
        store = wasmtime.Store(engine)
        store.set_fuel(1000)
        store.set_epoch_deadline(1)
        pre.instantiate(store)

    baseline = _median_us(raw, repeat)
    return _line(
        "Sandbox.load() from cached template",
        f"{ours:.1f} us",
        "raw Store + InstancePre.instantiate",
        f"{baseline:.1f} us",
        ours / baseline,
        f"(target <= 100 us: {'met' if ours <= 100 else 'MISSED'})",
    )


def bench_rss(instances: int) -> str:
    module = read_example_module("echo.wat")
    Sandbox.load(module).close()
    gc.collect()
    process = psutil.Process()
    before = process.memory_info().rss
    boxes = [Sandbox.load(module) for _ in range(instances)]
    for box in boxes:
        box.handle(b"touch")  # make every instance's memory resident
    after = process.memory_info()
    used = (after.rss - before) / 2**20
    per_instance = (after.rss - before) / instances / 1024
    for box in boxes:
        box.close()
    target = 200 * instances / 1000
    return (
        f"RSS for {instances} live echo sandboxes: {used:.1f} MiB ({per_instance:.1f} KiB each) | "
        f"process baseline before: {before / 2**20:.1f} MiB | ratio to target {used / target:.2f} "
        f"(target <= {target:.0f} MiB; address space {after.vms / 2**30:.1f} GiB)"
    )


def bench_metering(iterations: int) -> str:
    spin = read_testing_module("spin")
    message = struct.pack("<I", iterations)
    box = Sandbox.load(spin, ResourceLimits(fuel=10**15, timeout=60), SecurityPolicy.default())
    box.handle(message)
    metered = _median_us(lambda: box.handle(message), 7)
    box.close()
    engine = wasmtime.Engine()  # no fuel, no epochs
    store = wasmtime.Store(engine)
    instance = wasmtime.Instance(store, wasmtime.Module(engine, spin.decode()), [])
    exports = instance.exports(store)
    memory, inbox, handle = exports["memory"], exports["inbox"], exports["handle"]
    assert isinstance(memory, wasmtime.Memory)
    assert isinstance(inbox, wasmtime.Func) and isinstance(handle, wasmtime.Func)
    ptr = inbox(store, len(message))
    memory.write(store, message, ptr)
    unmetered = _median_us(lambda: handle(store, len(message)), 7)
    return _line(
        f"spin loop {iterations:,} iters, fuel + epochs",
        f"{metered / 1000:.2f} ms",
        "same loop, unmetered engine",
        f"{unmetered / 1000:.2f} ms",
        metered / unmetered,
        "(metering overhead)",
    )


def main(argv: list[str] | None = None) -> None:
    """Run every benchmark and print one line per figure.

    Args:
        argv: Command-line arguments (``--quick`` for tiny sizes).
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    args = parser.parse_args(argv)
    messages, repeat, instances, iterations = (
        (200, 50, 50, 100_000) if args.quick else (5_000, 1_000, 1_000, 5_000_000)
    )
    print("sandbox benchmarks (figure | baseline from the same run | ratio)")
    print(bench_per_message(messages))
    print(bench_instantiate(repeat))
    print(bench_rss(instances))
    print(bench_metering(iterations))


if __name__ == "__main__":
    # A program, not a library: keep the sandbox's debug events out of the figures.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    main()
