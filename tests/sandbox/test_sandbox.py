"""Running guests: the ABI round trip, budgets, typed errors, recreation, host functions."""

from __future__ import annotations

import struct
import threading
import time

import msgpack
import pytest

from sandbox import (
    AbiError,
    DeadlineExceeded,
    HostCallbacks,
    MemoryLimitExceeded,
    OutOfFuel,
    ResourceLimits,
    Sandbox,
    SandboxClosed,
    SandboxError,
    SecurityPolicy,
    SecurityViolation,
    Trap,
    ValidationError,
    cache_info,
)
from sandbox.testing import abi_module, read_testing_module


def test_echo_returns_msgpack_content_unchanged(load) -> None:
    box = load("echo")
    for content in [{"hello": "world"}, [1, 2.5, None, True], "x" * 5000, b"\x00\xff" * 70_000]:
        packed = msgpack.packb(content)
        assert msgpack.unpackb(box.handle(packed)) == content
    assert box.handle(b"") == b""
    assert box.calls == 5 and box.traps == 0


def test_counter_counts_and_hands_its_state_to_a_new_version(load) -> None:
    old = load("counter")
    assert [msgpack.unpackb(old.handle(b"m")) for _ in range(3)] == [1, 2, 3]
    state = old.snapshot()
    assert state == struct.pack("<q", 3)
    new = load("counter")
    assert new.supports_state_handover
    new.restore(state)
    assert msgpack.unpackb(new.handle(b"m")) == 4


def test_counter_encodes_large_counts_as_msgpack(load) -> None:
    box = load("counter")
    for count in (127, 255, 65_535, 2**32 - 1, 2**40):
        box.restore(struct.pack("<q", count - 1))
        assert msgpack.unpackb(box.handle(b"")) == count


def test_echo_has_no_state_to_hand_over(load) -> None:
    box = load("echo")
    assert box.snapshot() is None and not box.supports_state_handover
    with pytest.raises(AbiError, match="exports no 'restore'"):
        box.restore(b"state")


def test_restore_refusal_is_an_abi_error(load) -> None:
    with pytest.raises(AbiError, match="refused 3 bytes"):
        load("counter").restore(b"bad")


def _min_fuel(message: bytes) -> int:
    """Smallest budget with which spin.wat handles ``message`` (bisection over real runs)."""
    module = read_testing_module("spin")
    low, high = 1, 10**7
    while low < high:
        mid = (low + high) // 2
        box = Sandbox.load(module, ResourceLimits(fuel=mid))
        try:
            box.handle(message)
            high = mid
        except OutOfFuel:
            low = mid + 1
        finally:
            box.close()
    return low


def test_fuel_is_exact(load) -> None:
    # wasmtime checks fuel at function entries and loop back-edges, so "needs N" means: the
    # smallest budget that passes. It must pass with N, fail with N-1, and grow exactly
    # linearly with the loop count.
    small, large = struct.pack("<I", 1000), struct.pack("<I", 3000)
    needed_small, needed_large = _min_fuel(small), _min_fuel(large)
    assert needed_large - needed_small == 2000 * 8  # 8 fuel per loop iteration, exactly
    assert load("spin", ResourceLimits(fuel=needed_large)).handle(large) == large
    short = load("spin", ResourceLimits(fuel=needed_large - 1))
    with pytest.raises(OutOfFuel) as caught:
        short.handle(large)
    assert caught.value.fuel_limit == needed_large - 1
    assert "ResourceLimits.fuel" in str(caught.value)
    # The counter reports what the guest really used: the budget plus at most the short
    # straight-line tail after the last check.
    probe = load("spin", ResourceLimits(fuel=10**9))
    probe.handle(large)  # the first message also calls the guest's inbox
    before = probe.fuel_consumed
    probe.handle(large)
    assert 0 <= (probe.fuel_consumed - before) - needed_large <= 16


def test_fuel_is_per_message_not_cumulative(load) -> None:
    message = struct.pack("<I", 1000)
    probe = load("spin", ResourceLimits(fuel=10**9))
    probe.handle(message)
    before = probe.fuel_consumed
    probe.handle(message)
    box = load("spin", ResourceLimits(fuel=(probe.fuel_consumed - before) + 100))
    for _ in range(20):
        assert box.handle(message) == message


def test_infinite_loop_runs_out_of_fuel_and_the_next_call_gets_a_fresh_instance(load) -> None:
    box = load("infinite_loop", ResourceLimits(fuel=1_000_000))
    with pytest.raises(OutOfFuel):
        box.handle(b"x")
    with pytest.raises(OutOfFuel):
        box.handle(b"x")
    assert box.traps == 2 and box.instances_created == 2  # fresh instances are made lazily
    assert box.fuel_consumed >= 2_000_000


def test_the_deadline_holds_for_a_slow_call_after_many_quick_ones(load) -> None:
    # The deadline is set again only after the epoch ticked; a quick call must not leave a
    # stale deadline (one already partly spent) for the next call. An empty message loops
    # forever, any other is echoed.
    loop_on_empty = abi_module(
        "(if (i32.eqz (local.get $len)) (then (loop $spin (br $spin))))"
        "(i64.or (i64.shl (i64.const 1024) (i64.const 32)) (i64.extend_i32_u (local.get $len)))"
    )
    timeout = 0.1
    box = load(loop_on_empty, ResourceLimits(fuel=10**15, timeout=timeout))
    for pause in (0.0, 0.3):
        end = time.monotonic() + 0.3
        while time.monotonic() < end:  # many quick calls over many epoch ticks
            assert box.handle(b"quick") == b"quick"
        time.sleep(pause)
        started = time.monotonic()
        with pytest.raises(DeadlineExceeded):
            box.handle(b"")
        assert time.monotonic() - started >= timeout  # the whole deadline, not what is left


def test_deadline_interrupts_an_infinite_loop_within_50ms(load) -> None:
    # The loop has fuel for hours; only the epoch deadline can stop it. The bound is the
    # issue's "deadline + 50 ms". Under heavy load from other processes (this machine has 2
    # cores and a shared test run) a single run can be descheduled, so the 50 ms bound must
    # hold for the best of up to five runs, and every run must stop within a generous 1 s.
    timeout = 0.2
    box = load("infinite_loop", ResourceLimits(fuel=10**15, timeout=timeout))
    overshoots = []
    for _ in range(5):
        started = time.monotonic()
        with pytest.raises(DeadlineExceeded) as caught:
            box.handle(b"x")
        wall = time.monotonic() - started
        assert wall >= timeout
        assert wall < timeout + 1.0
        assert caught.value.timeout == timeout and caught.value.elapsed >= timeout
        overshoots.append(wall - timeout)
        if overshoots[-1] <= 0.05:
            break
    assert min(overshoots) <= 0.05, overshoots


def test_memory_grow_past_the_cap_returns_minus_one_inside_the_guest(load) -> None:
    grow = abi_module(
        "(i32.store (i32.const 0) (memory.grow (i32.load (i32.const 1024)))) (i64.const 4)",
        memory="1",
    )
    box = load(grow, ResourceLimits(memory_bytes=4 * 65536))

    def grow_by(pages: int) -> int:
        return struct.unpack("<i", box.handle(struct.pack("<i", pages)))[0]

    assert grow_by(2) == 1  # old size in pages
    assert grow_by(2) == -1  # 5 pages > 4-page cap: refused, no trap
    assert grow_by(1) == 3
    assert grow_by(1) == -1
    assert box.traps == 0 and box.memory_allocated == 4 * 65536


def test_replies_in_memory_grown_during_the_call_are_read_from_the_new_memory(load) -> None:
    # Each call grows memory by a page and puts its reply in the new page; the host's view
    # of linear memory must follow (a stale one would read the wrong bytes or fault).
    mover = abi_module(
        "(local $dst i32)"
        "(local.set $dst (i32.mul (memory.grow (i32.const 1)) (i32.const 65536)))"
        "(memory.copy (local.get $dst) (i32.const 1024) (local.get $len))"
        "(i64.or (i64.shl (i64.extend_i32_u (local.get $dst)) (i64.const 32))"
        " (i64.extend_i32_u (local.get $len)))",
        memory="1 64",
    )
    box = load(mover, ResourceLimits(memory_bytes=64 * 65536))
    for i in range(40):
        message = msgpack.packb({"n": i, "pad": "y" * (i * 37)})
        assert box.handle(message) == message
    assert box.memory_allocated == 41 * 65536 and box.traps == 0


def test_memory_bomb_is_a_memory_limit_exceeded(load) -> None:
    box = load("memory_bomb", ResourceLimits(memory_bytes=2 << 20))
    with pytest.raises(MemoryLimitExceeded) as caught:
        box.handle(b"x")
    assert caught.value.limit_bytes == 2 << 20
    assert caught.value.trap_code == "unreachable"
    assert box.memory_allocated == 2 << 20


def test_message_larger_than_the_guest_can_take_is_a_memory_limit_exceeded(load) -> None:
    box = load("echo", ResourceLimits(memory_bytes=4 << 20))  # echo declares max 16 pages
    with pytest.raises(MemoryLimitExceeded, match="cannot make room"):
        box.handle(b"x" * (2 << 20))
    with pytest.raises(MemoryLimitExceeded, match="cannot fit"):
        box.handle(b"x" * (5 << 20))
    assert box.handle(b"still fine") == b"still fine"


def test_deep_recursion_is_a_stack_overflow_trap(load) -> None:
    with pytest.raises(Trap) as caught:
        load("deep_recursion").handle(b"x")
    assert caught.value.trap_code == "stack_overflow"
    assert "down" in caught.value.backtrace[1]
    assert len(caught.value.backtrace) <= 33


def test_trap_carries_code_and_guest_backtrace(load) -> None:
    with pytest.raises(Trap) as caught:
        load("trap").handle(b"x")
    error = caught.value
    assert error.trap_code == "unreachable" and error.exit_reason == "trap"
    assert [frame.split()[1] for frame in error.backtrace[:2]] == ["fail", "check_input"]
    assert "fail" in str(error)


def test_flaky_traps_on_crash_and_recovers_with_a_fresh_instance(load) -> None:
    box = load("flaky")
    assert box.handle(b"hello") == b"hello"
    with pytest.raises(Trap):
        box.handle(msgpack.packb({"text": "please crash now"}))
    assert box.handle(b"cras h") == b"cras h"
    assert (box.calls, box.traps, box.instances_created) == (3, 1, 2)


def test_echo_v2_behaves_like_echo_but_is_a_different_module(load) -> None:
    v1, v2 = load("echo"), load("echo_v2")
    assert v1.module_hash != v2.module_hash
    assert v2.handle(b"same") == v1.handle(b"same") == b"same"


def test_slow_burns_a_fixed_amount_of_fuel(load) -> None:
    box = load("slow")
    assert box.handle(b"late") == b"late"
    assert box.fuel_consumed > 10_000_000
    with pytest.raises(OutOfFuel):
        load("slow", ResourceLimits(fuel=100_000)).handle(b"late")


def test_bad_reply_pointer_is_an_abi_error(load) -> None:
    box = load(abi_module("(i64.const 0x7fff000000000010)"))
    with pytest.raises(AbiError, match="outside its 65536-byte memory"):
        box.handle(b"x")
    assert box.traps == 1


def test_bad_inbox_pointer_is_an_abi_error(load) -> None:
    module = b"""(module (memory (export "memory") 1)
      (func (export "inbox") (param i32) (result i32) (i32.const 65530))
      (func (export "handle") (param i32) (result i64) (i64.const 0)))"""
    with pytest.raises(AbiError, match="inbox"):
        load(module).handle(b"0123456789")


def test_host_functions_reach_the_callbacks(load) -> None:
    sent: list[bytes] = []
    logs: list[tuple[int, str]] = []
    printed: list[str] = []
    host = HostCallbacks(
        send=lambda m: sent.append(m) or True,
        log=lambda level, text: logs.append((level, text)),
        print=printed.append,
        now=lambda: 1_700_000_000_000_000_123,
    )
    reply = load("host_calls", host=host).handle("héllo".encode())
    status, now = struct.unpack("<iq", reply)
    assert (status, now) == (0, 1_700_000_000_000_000_123)
    assert sent == ["héllo".encode()] and logs == [(2, "héllo")] and printed == ["héllo"]


def test_send_is_refused_without_a_host_callback(load) -> None:
    status, now = struct.unpack("<iq", load("host_calls").handle(b"hi"))
    assert status == 1
    assert abs(now - time.time_ns()) < 60 * 10**9


def test_host_call_budget_is_a_security_violation(load) -> None:
    policy = SecurityPolicy(max_host_calls_per_message=3)
    box = load("host_calls", policy=policy)
    with pytest.raises(SecurityViolation) as caught:
        box.handle(b"x")
    assert caught.value.subject == "max_host_calls_per_message"
    assert box.traps == 1


def test_host_callback_can_refuse_with_a_security_violation(load) -> None:
    def send(message: bytes) -> bool:
        raise SecurityViolation("agent may not message the admin", subject="env.send")

    box = load("host_calls", host=HostCallbacks(send=send))
    with pytest.raises(SecurityViolation, match="admin"):
        box.handle(b"x")


def test_host_callback_bug_is_reraised_and_the_instance_discarded(load) -> None:
    def send(message: bytes) -> bool:
        raise ZeroDivisionError("host bug")

    box = load("host_calls", host=HostCallbacks(send=send))
    with pytest.raises(ZeroDivisionError):
        box.handle(b"x")
    assert box.instances_created == 1
    with pytest.raises(ZeroDivisionError):
        box.handle(b"x")
    assert box.instances_created == 2


def test_every_error_has_a_distinct_class_and_exit_reason() -> None:
    classes = [
        ValidationError,
        OutOfFuel,
        MemoryLimitExceeded,
        DeadlineExceeded,
        Trap,
        SecurityViolation,
        AbiError,
    ]
    assert all(issubclass(c, SandboxError) for c in classes)
    assert len({c.exit_reason for c in classes}) == len(classes)


def test_two_sandboxes_run_in_parallel_threads_without_sharing_memory(load) -> None:
    boxes = [load("counter"), load("counter")]
    results: list[list[int]] = [[], []]
    spinners = [load("spin", ResourceLimits(fuel=10**9)) for _ in range(2)]
    barrier = threading.Barrier(2)

    def work(index: int) -> None:
        barrier.wait(timeout=10)
        for _ in range(200):
            results[index].append(msgpack.unpackb(boxes[index].handle(b"x")))
            spinners[index].handle(struct.pack("<I", 10_000) + bytes([index]))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert results == [list(range(1, 201))] * 2


def test_one_sandbox_refuses_concurrent_use(load) -> None:
    box = load("infinite_loop", ResourceLimits(fuel=10**15, timeout=0.3))
    errors: list[BaseException] = []

    def run() -> None:
        try:
            box.handle(b"x")
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 5
    while not box._busy.locked() and time.monotonic() < deadline:
        time.sleep(0.001)
    with pytest.raises(RuntimeError, match="one Sandbox serves one thread"):
        box.handle(b"y")
    thread.join(timeout=5)
    assert isinstance(errors[0], DeadlineExceeded)


def test_closed_sandbox_refuses_calls(load) -> None:
    box = load("echo")
    box.close()
    box.close()
    with pytest.raises(SandboxClosed):
        box.handle(b"x")


def test_same_module_compiles_once_for_many_sandboxes() -> None:
    module = abi_module(
        "(i64.const 0)", extra=f'(global (export "marker") i64 (i64.const {time.time_ns()}))'
    )
    before = cache_info()
    boxes = [Sandbox.load(module) for _ in range(50)]
    after = cache_info()
    try:
        assert after["misses"] - before["misses"] == 1
        assert all(b.module_hash == boxes[0].module_hash for b in boxes)
        assert all(b.handle(b"x") == b"" for b in boxes)
    finally:
        for box in boxes:
            box.close()


def test_counters(load) -> None:
    box = load("echo")
    assert box.uptime >= 0 and box.calls == 0
    box.handle(b"abc")
    stats = box.stats()
    assert stats.calls == 1 and stats.traps == 0 and stats.fuel_consumed > 0
    assert stats.memory_allocated == 65536 and stats.instances_created == 1
    time.sleep(0.01)
    assert box.uptime >= 0.01


def test_init_runs_once_per_fresh_instance(load) -> None:
    module = abi_module(
        "(i32.store (i32.const 0) (global.get $g)) (i64.const 4)",
        extra="(global $g (mut i32) (i32.const 0)) "
        '(func (export "init") (global.set $g (i32.add (global.get $g) (i32.const 7))))',
    )
    box = load(module)
    assert box.handle(b"") == struct.pack("<i", 7)


def test_resource_limits_reject_nonsense() -> None:
    with pytest.raises(ValueError, match="memory_bytes"):
        ResourceLimits(memory_bytes=10)
    with pytest.raises(ValueError, match="fuel"):
        ResourceLimits(fuel=0)
    with pytest.raises(ValueError, match="timeout"):
        ResourceLimits(timeout=float("inf"))
