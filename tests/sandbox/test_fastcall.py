"""The per-message guest calls take the fast path, with Func.__call__'s results and errors."""

from __future__ import annotations

import msgpack
import pytest
import wasmtime

from sandbox import OutOfFuel, ResourceLimits, Sandbox, Trap
from sandbox.fastcall import FastCall, fast_call
from sandbox.testing import read_example_module, read_testing_module


def test_handle_and_inbox_use_the_fast_path() -> None:
    with Sandbox.load(read_example_module("echo.wat")) as box:
        assert box.handle(msgpack.packb({"a": 1})) == msgpack.packb({"a": 1})
        live = box._live
        assert live is not None
        assert isinstance(live.handle, FastCall)
        assert isinstance(live.inbox, FastCall)


def test_fast_call_matches_func_call_including_i64_and_negative_values() -> None:
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    module = wasmtime.Module(engine, """
        (module
          (func (export "mix") (param i32 i64) (result i64)
            local.get 1 local.get 0 i64.extend_i32_s i64.add)
          (func (export "neg") (result i32) i32.const -7))
    """)
    inst = wasmtime.Instance(store, module, [])
    mix = inst.exports(store)["mix"]
    neg = inst.exports(store)["neg"]
    assert isinstance(mix, wasmtime.Func) and isinstance(neg, wasmtime.Func)
    fast_mix, fast_neg = fast_call(store, mix), fast_call(store, neg)
    for a, b in [(1, 2), (-5, 1 << 40), (2**31 - 1, -(2**62))]:
        assert fast_mix(store, a, b) == mix(store, a, b)
    assert fast_neg(store) == neg(store) == -7


def test_traps_and_fuel_exhaustion_surface_the_same_way() -> None:
    with Sandbox.load(read_testing_module("trap.wat")) as box, pytest.raises(Trap):
        box.handle(b"\x01")
    limits = ResourceLimits(fuel=1_000)
    with Sandbox.load(read_testing_module("slow.wat"), limits) as box, pytest.raises(OutOfFuel):
        box.handle(b"\x01")


def test_gil_keeping_accessors_are_bound_with_the_installed_wasmtime() -> None:
    # They silently fall back to the GIL-dropping public API when wasmtime-py's internals
    # move; this test makes such a move visible (it once hid a 2x slowdown per message).
    from sandbox import fastcall

    assert fastcall._AVAILABLE
    assert fastcall._HELD


def test_the_one_param_one_result_shape_gets_the_specialised_call() -> None:
    from sandbox.fastcall import FastCall1

    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    module = wasmtime.Module(engine, """
        (module
          (func (export "wide") (param i64) (result i64) local.get 0 i64.const 3 i64.mul)
          (func (export "narrow") (param i32) (result i32) local.get 0 i32.const -1 i32.add)
          (func (export "to_wide") (param i32) (result i64) local.get 0 i64.extend_i32_s))
    """)
    inst = wasmtime.Instance(store, module, [])
    for name, values in [("wide", [0, -5, 1 << 40, -(2**61)]),
                         ("narrow", [0, 1, -(2**31), 2**31 - 1]),
                         ("to_wide", [7, -7])]:
        func = inst.exports(store)[name]
        assert isinstance(func, wasmtime.Func)
        fast = fast_call(store, func)
        assert isinstance(fast, FastCall1)
        for v in values:
            assert fast(store, v) == func(store, v), (name, v)
        with pytest.raises(wasmtime.WasmtimeError, match="expected 1 parameters, got 2"):
            fast(store, 1, 2)


def test_store_bookkeeping_keeps_the_gil_and_guest_code_still_releases_it() -> None:
    # Creating and closing a sandbox made ten GIL-dropping C calls besides instantiation;
    # they are rebound to keep the GIL. Calls that run guest code or compile must not be.
    import ctypes

    from wasmtime import _bindings

    from sandbox import fastcall

    assert set(fastcall.HELD_ADMIN_CALLS) == set(fastcall.ADMIN_CALLS)
    keeps = ctypes._FUNCFLAG_PYTHONAPI  # type: ignore[attr-defined]
    for name in fastcall.ADMIN_CALLS:
        assert getattr(_bindings, "_" + name)._flags_ & keeps, name
    for name in ("wasmtime_instance_pre_instantiate", "wasmtime_func_call",
                 "wasmtime_func_call_unchecked", "wasmtime_module_new", "wasmtime_instance_new"):
        assert not getattr(_bindings, "_" + name)._flags_ & keeps, name
    # A whole life through the rebound calls: load (store, limits, fuel, deadline, exports),
    # calls, a trap and its fresh instance, close (store deleted, its finaliser run).
    box = Sandbox.load(read_example_module("echo.wat"))
    assert box.handle(b"\x01") == b"\x01"
    box.reset()
    assert box.handle(b"\x02") == b"\x02" and box.instances_created == 2
    assert box.memory_allocated > 0 and box.fuel_consumed > 0
    box.close()
    assert box.closed
