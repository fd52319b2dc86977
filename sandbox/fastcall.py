"""A cheaper way to call a guest export than ``wasmtime.Func.__call__``.

``Func.__call__`` re-reads the function's type on every call and converts each value through
``Val`` objects, which costs more than the guest call itself for a small message. The sandbox
only calls exports whose signatures validation stage 4 already checked (``i32``/``i64``
parameters, at most one ``i32``/``i64`` result), so :class:`FastCall` reads the type once and
calls through ``wasmtime_func_call_unchecked`` with a preallocated raw-value buffer.

Traps and errors are raised the way wasmtime-py's ``enter_wasm`` raises them (the same steps,
inlined: a context manager per message cost more than the guest call), so they surface exactly
as they do from ``Func.__call__`` (same exception types, same host-exception relay). If those internals are
missing (a wasmtime-py release that moved them), :func:`fast_call` returns the plain ``Func``.

The per-message store and memory accessors (fuel, epoch deadline, memory base and size) are
bound here a second time through :class:`ctypes.PyDLL`, which keeps the GIL across the call;
messages and replies are copied through a memoryview of linear memory (:attr:`StoreOps.view`). They take well under a microsecond; through the plain ``CDLL`` binding each one
drops and re-takes the GIL, and with other threads waiting every drop can hand the GIL away and
queue the agent's thread behind them (~8 such drops per message). The guest call itself still
releases the GIL (it can run for up to its deadline, and the epoch ticker needs the GIL).
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Hashable
from typing import Any, NoReturn

import wasmtime

try:  # wasmtime-py internals; guarded so an API move only costs speed, never correctness
    from wasmtime import _bindings as _raw_bindings
    from wasmtime import _ffi as _raw_ffi
    from wasmtime._func import Trap as _WasmTrap
    from wasmtime._func import maybe_raise_last_exn as _raise_last_exn

    # The ctypes function itself, not wasmtime-py's one-line Python wrapper around it
    _CALL_UNCHECKED = getattr(_raw_bindings, "_wasmtime_func_call_unchecked",
                              _raw_ffi.wasmtime_func_call_unchecked)
    _VAL_RAW = _raw_ffi.wasmtime_val_raw_t
    _AVAILABLE = True
except (ImportError, AttributeError):  # pragma: no cover - depends on the installed wasmtime
    _AVAILABLE = False


def _held(name: str) -> Any:
    """The C function ``name`` of wasmtime's library, bound so the call keeps the GIL."""
    src = getattr(_raw_bindings, "_" + name)  # the raw ctypes function (argtypes, restype)
    fn = getattr(_HELD_DLL, name)
    fn.restype, fn.argtypes = src.restype, src.argtypes
    return fn


try:
    _HELD_DLL = ctypes.PyDLL(_raw_ffi.dll._name, handle=_raw_ffi.dll._handle)
    _SET_FUEL = _held("wasmtime_context_set_fuel")
    _GET_FUEL = _held("wasmtime_context_get_fuel")
    _SET_EPOCH = _held("wasmtime_context_set_epoch_deadline")
    _MEM_DATA = _held("wasmtime_memory_data")
    # The address as a plain int: no POINTER object and ``addressof(.contents)`` per read.
    _MEM_DATA.restype = ctypes.c_void_p
    _MEM_SIZE = _held("wasmtime_memory_data_size")
    _HELD = True
except (NameError, AttributeError):  # pragma: no cover - depends on the installed wasmtime
    _HELD = False

#: wasmtime C functions that keep the GIL process-wide (see :func:`_hold_admin_calls`).
ADMIN_CALLS = (
    "wasmtime_store_new",
    "wasmtime_store_context",
    "wasmtime_store_limiter",
    "wasmtime_store_delete",
    "wasmtime_context_set_fuel",
    "wasmtime_context_get_fuel",
    "wasmtime_context_set_epoch_deadline",
    "wasmtime_instance_export_nth",
    "wasmtime_memory_data_size",
    "wasmtime_engine_increment_epoch",
)


def _hold_admin_calls() -> tuple[str, ...]:
    """Rebind the bookkeeping calls of a store's life so that they keep the GIL.

    Making a sandbox (a store, its limits, fuel and deadline, the instance's exports) and
    closing it took ten C calls besides instantiation, each through the ``CDLL`` binding,
    which drops and re-takes the GIL; with other threads waiting (a node deploying with
    eight requests in flight) each drop can hand the GIL to another thread and queue the
    agent's start behind it: two futex calls and often a cross-CPU wake per drop. These calls
    only allocate, set a field or read one (well under a microsecond, no guest code, no
    blocking), so wasmtime-py's own wrappers are pointed at ``PyDLL`` bindings of the same
    functions. Calls that run guest code (instantiation, which runs a start function, and
    every export call) or compile still release the GIL.

    Returns:
        The names rebound (empty when wasmtime-py's internals moved: then nothing changes).
    """
    if not _HELD:  # pragma: no cover - depends on the installed wasmtime
        return ()
    bound: list[str] = []
    for name in ADMIN_CALLS:
        src = getattr(_raw_bindings, "_" + name, None)
        if src is None or getattr(src, "_caxton_held", False):  # pragma: no cover
            continue
        fn = getattr(_HELD_DLL, name)
        fn.restype, fn.argtypes = src.restype, src.argtypes
        fn._caxton_held = True
        setattr(_raw_bindings, "_" + name, fn)
        bound.append(name)
    return tuple(bound)


HELD_ADMIN_CALLS = _hold_admin_calls()
"""The wasmtime C functions rebound by :func:`_hold_admin_calls` at import."""

__all__ = ["ADMIN_CALLS", "HELD_ADMIN_CALLS", "FastCall", "FastCall1", "StoreOps", "fast_call"]


class StoreOps:
    """Per-message accessors of one store and its memory that keep the GIL (see module doc).

    Each falls back to the public wasmtime-py method when the internals are missing.

    Args:
        store: The store.
        memory: The guest's exported linear memory.
    """

    __slots__ = ("_ctx", "_fuel", "_fuel_ref", "_memory", "_memref", "_store", "fuel_used",
                 "view")

    def __init__(self, store: wasmtime.Store, memory: wasmtime.Memory) -> None:
        self._store = store
        self._memory = memory
        self._ctx = store._context() if _HELD else None
        self._memref = ctypes.byref(memory._memory) if _HELD else None
        self._fuel = ctypes.c_uint64(0)
        self._fuel_ref = ctypes.byref(self._fuel)
        self.view = memoryview(b"")
        """Linear memory as a writable byte view, as of the last :meth:`refresh`."""
        self.fuel_used = 0
        """Fuel the last :meth:`call` used."""
        self.refresh()

    def call(self, func: Callable[..., Any], store: wasmtime.Store, args: tuple[int, ...],
             fuel: int) -> Any:
        """Give the store ``fuel``, call ``func(store, *args)``, then note the fuel it used
        (:attr:`fuel_used`) and :meth:`refresh` the memory view: a message's store calls in
        one Python call.

        Args:
            func: The export (a :class:`FastCall` or a ``wasmtime.Func``).
            store: Its store.
            args: Its integer arguments.
            fuel: The call's fuel budget.

        Returns:
            What the export returned.

        Raises:
            wasmtime.Trap, wasmtime.WasmtimeError: As the call raised them (then
                :attr:`fuel_used` and the view are stale).
        """
        if not _HELD:
            self.set_fuel(fuel)
            result = func(store, *args)
            self.fuel_used = fuel - self.get_fuel()
            self.refresh()
            return result
        ctx = self._ctx
        error = _SET_FUEL(ctx, fuel)
        if error:
            raise wasmtime.WasmtimeError._from_ptr(error)
        result = func(store, *args)
        error = _GET_FUEL(ctx, self._fuel_ref)
        if error:
            raise wasmtime.WasmtimeError._from_ptr(error)
        self.fuel_used = fuel - self._fuel.value
        if _MEM_SIZE(ctx, self._memref) != len(self.view):
            self.refresh()
        return result

    def refresh(self) -> memoryview:
        """Re-read the memory's size and rebuild :attr:`view` if it changed.

        Memory moves or grows only in a guest call (``memory.grow``), never on its own, so a
        view taken after the last call stays valid until the next one: call this after
        every guest call, before using :attr:`view`. Slicing past the view's end raises
        (a slice is clamped, so an assignment of the wrong length fails) rather than
        touching memory outside the guest's.

        Returns:
            The current view.
        """
        size = self.size()
        view = self.view
        if len(view) != size:
            base = self.base()
            view = memoryview((ctypes.c_char * size).from_address(base)).cast("B") \
                if size and base else memoryview(b"")
            self.view = view
        return view

    def set_fuel(self, fuel: int) -> None:
        """``store.set_fuel(fuel)``."""
        if not _HELD:
            self._store.set_fuel(fuel)
            return
        error = _SET_FUEL(self._ctx, fuel)
        if error:
            raise wasmtime.WasmtimeError._from_ptr(error)

    def get_fuel(self) -> int:
        """``store.get_fuel()``."""
        if not _HELD:
            return self._store.get_fuel()
        error = _GET_FUEL(self._ctx, self._fuel_ref)
        if error:
            raise wasmtime.WasmtimeError._from_ptr(error)
        return self._fuel.value

    def set_epoch_deadline(self, ticks: int) -> None:
        """``store.set_epoch_deadline(ticks)``."""
        if not _HELD:
            self._store.set_epoch_deadline(ticks)
            return
        _SET_EPOCH(self._ctx, ticks)

    def base(self) -> int:
        """Address of linear memory (re-read on every use: memory may move when it grows)."""
        if not _HELD:
            return ctypes.addressof(self._memory.data_ptr(self._store).contents)
        return _MEM_DATA(self._ctx, self._memref) or 0

    def size(self) -> int:
        """``memory.data_len(store)``."""
        if not _HELD:
            return self._memory.data_len(self._store)
        return int(_MEM_SIZE(self._ctx, self._memref))


_INT_KINDS = {"i32", "i64"}


def _kind(ty: wasmtime.ValType) -> str:
    return str(ty)


class FastCall:
    """Calls one export with integer parameters and at most one integer result.

    Args:
        func: The export.
        params: Kind of each parameter (``"i32"`` or ``"i64"``).
        result: Kind of the result, or ``None``.
    """

    __slots__ = ("_buf", "_func", "_func_ref", "_nparams", "_params", "_result", "_size",
                 "_trap", "_trap_ref")

    def __init__(self, func: wasmtime.Func, params: tuple[str, ...], result: str | None) -> None:
        self._func = func  # keeps the handle alive
        self._func_ref = ctypes.byref(func._func)
        self._params = params
        self._nparams = len(params)
        self._result = result
        self._size = max(len(params), 1 if result else 0, 1)
        self._buf = (_VAL_RAW * self._size)()
        self._new_trap_slot()

    def _new_trap_slot(self) -> None:
        # A NULL ``wasm_trap_t*`` the call fills on a trap; reused while no trap happens.
        self._trap = ctypes.POINTER(_raw_ffi.wasm_trap_t)()
        self._trap_ref = ctypes.byref(self._trap)

    def _raise_failure(self, error: Any) -> NoReturn:
        # What wasmtime-py's ``enter_wasm`` does after a failed call (inlined there as a
        # context manager, which cost more per message than the guest call itself).
        if error:
            exc = wasmtime.WasmtimeError._from_ptr(error)
            _raise_last_exn()  # a host function's exception takes precedence, as there
            raise exc
        trap = _WasmTrap._from_ptr(self._trap)  # takes ownership of the trap
        self._new_trap_slot()
        _raise_last_exn()
        raise trap

    def __call__(self, store: wasmtime.Store, *args: int) -> Any:
        """Call the export; same results and exceptions as ``Func.__call__``."""
        if len(args) != self._nparams:
            raise wasmtime.WasmtimeError(
                f"expected {self._nparams} parameters, got {len(args)}")
        buf = self._buf
        for i, (kind, value) in enumerate(zip(self._params, args, strict=True)):
            if kind == "i32":
                buf[i].i32 = value
            else:
                buf[i].i64 = value
        error = _CALL_UNCHECKED(store._context(), self._func_ref, buf, self._size,
                                self._trap_ref)
        if error or self._trap:
            self._raise_failure(error)
        if self._result is None:
            return None
        return buf[0].i32 if self._result == "i32" else buf[0].i64


class FastCall1(FastCall):
    """:class:`FastCall` for the common shape: one integer parameter, one integer result
    (``handle(len) -> i64``, ``inbox(size) -> i32``): no per-call loop over parameter kinds.
    """

    __slots__ = ("_ctx", "_i64_param", "_i64_result", "_param_field", "_result_field", "_store",
                 "_val")

    def __init__(self, store: wasmtime.Store, func: wasmtime.Func, params: tuple[str, ...],
                 result: str) -> None:
        super().__init__(func, params, result)
        self._param_field = params[0]  # "i32" or "i64": the raw value's union member
        self._result_field = result
        self._i64_param = params[0] == "i64"
        self._i64_result = result == "i64"
        # A store's context pointer lives as long as the store (StoreOps caches it too).
        self._store = store
        self._ctx = store._context()
        self._val = self._buf[0]  # a view of the buffer's one slot (no wrapper per call)

    def __call__(self, store: wasmtime.Store, *args: int) -> Any:
        """Call the export; same results and exceptions as ``Func.__call__``."""
        if len(args) != 1:
            raise wasmtime.WasmtimeError(f"expected 1 parameters, got {len(args)}")
        val = self._val
        if self._i64_param:  # the union member by attribute: no setattr()/getattr() call
            val.i64 = args[0]
        else:
            val.i32 = args[0]
        ctx = self._ctx if store is self._store else store._context()
        error = _CALL_UNCHECKED(ctx, self._func_ref, self._buf, 1, self._trap_ref)
        if error or self._trap:
            self._raise_failure(error)
        return val.i64 if self._i64_result else val.i32


#: ``(params, results)`` kinds by the caller's key (a module hash and an export name): every
#: instance of a module has the same export types, and reading them through the C API is
#: most of what wrapping an export costs (once per agent start).
_signatures: dict[Hashable, tuple[tuple[str, ...], tuple[str, ...]]] = {}
_SIGNATURES_MAX = 4096


def fast_call(store: wasmtime.Store, func: wasmtime.Func,
              key: Hashable | None = None) -> Callable[..., Any]:
    """Return the cheapest callable for ``func`` (``FastCall`` when its type allows).

    Args:
        store: The store the function lives in.
        func: The export.
        key: Identifies the function's type for reuse, e.g. ``(module_sha256, export_name)``;
            ``None`` reads it every time.

    Returns:
        A callable taking ``(store, *ints)``.
    """
    if not _AVAILABLE:
        return func
    sig = _signatures.get(key) if key is not None else None
    if sig is None:
        ty = func.type(store)
        sig = (tuple(_kind(p) for p in ty.params), tuple(_kind(r) for r in ty.results))
        if key is not None:
            if len(_signatures) >= _SIGNATURES_MAX:
                _signatures.clear()
            _signatures[key] = sig
    params, results = sig
    if not set(params) <= _INT_KINDS or len(results) > 1 or not set(results) <= _INT_KINDS:
        return func
    if len(params) == 1 and len(results) == 1:
        return FastCall1(store, func, params, results[0])
    return FastCall(func, params, results[0] if results else None)
