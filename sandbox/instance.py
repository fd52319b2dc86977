"""The Sandbox: one guest instance with budgets, counters and recreation after a trap."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
import wasmtime

from sandbox.engine import CompiledModule, ticker
from sandbox.errors import (
    AbiError,
    DeadlineExceeded,
    MemoryLimitExceeded,
    OutOfFuel,
    SandboxClosed,
    Trap,
    ValidationError,
)
from sandbox.fastcall import StoreOps, fast_call
from sandbox.host import CallContext, HostCallbacks, set_context
from sandbox.policy import WASM_PAGE_BYTES, ResourceLimits, SecurityPolicy
from sandbox.validate import CustomRule, ValidationReport, validate_and_compile

__all__ = ["Sandbox", "SandboxStats"]

_log = structlog.get_logger("sandbox")
_MIN_INBOX = 256
_MAX_FRAMES = 32


@dataclass(frozen=True)
class SandboxStats:
    """A snapshot of a sandbox's counters.

    Attributes:
        fuel_consumed: Fuel used by all calls so far (including ``init``).
        memory_allocated: Current size of the live instance's linear memory, in bytes.
        calls: ``handle`` calls made (successful or not).
        traps: Calls that ended with the instance discarded (any guest failure).
        instances_created: Fresh instances made (1 + recreations after traps).
        uptime: Seconds since the sandbox was loaded.
    """

    fuel_consumed: int
    memory_allocated: int
    calls: int
    traps: int
    instances_created: int
    uptime: float


class _Live:
    """One instance in its own store, plus cached export handles."""

    __slots__ = (
        "deadline_gen",
        "exports",
        "handle",
        "inbox",
        "inbox_capacity",
        "inbox_ptr",
        "instance",
        "memory",
        "ops",
        "store",
    )

    def __init__(self, store: wasmtime.Store, instance: wasmtime.Instance,
                 module_hash: str = "") -> None:
        self.store = store
        self.instance = instance
        self.exports = instance.exports(store)
        memory = self.exports.get("memory")
        handle = self.exports.get("handle")
        inbox = self.exports.get("inbox")
        if not isinstance(memory, wasmtime.Memory):
            raise AbiError("guest does not export its linear memory as 'memory'; export it")
        if not isinstance(handle, wasmtime.Func) or not isinstance(inbox, wasmtime.Func):
            raise AbiError("guest must export functions 'inbox' and 'handle' (see the guest ABI)")
        self.memory = memory
        self.ops = StoreOps(store, memory)
        # Called once or twice per message: read their types once (see sandbox.fastcall).
        self.handle: Callable[..., Any] = fast_call(
            store, handle, (module_hash, "handle") if module_hash else None)
        self.inbox: Callable[..., Any] = fast_call(
            store, inbox, (module_hash, "inbox") if module_hash else None)
        self.inbox_ptr = 0
        self.inbox_capacity = 0
        self.deadline_gen = -1  # the ticker generation its epoch deadline was set at

    def func(self, name: str) -> wasmtime.Func | None:
        item = self.exports.get(name)
        return item if isinstance(item, wasmtime.Func) else None


class Sandbox:
    """A validated module with one live instance, run under fuel, memory and time budgets.

    Use :meth:`load` to make one. A sandbox is used by one thread at a time (concurrent use
    raises ``RuntimeError``); different sandboxes run in parallel threads (guest code runs
    without the GIL). After any guest failure the instance is discarded and the next call
    gets a fresh one (state starts over from ``init``).
    """

    def __init__(
        self,
        compiled: CompiledModule,
        report: ValidationReport,
        limits: ResourceLimits,
        policy: SecurityPolicy,
        host: HostCallbacks,
    ) -> None:
        """Use :meth:`load` instead; this wires already-validated parts together."""
        self._compiled = compiled
        self._report = report
        self._limits = limits
        self._policy = policy
        self._host = host
        self._cap = limits.memory_cap(policy)
        self._memories = max(1, sum(1 for _ in (report.info.memories if report.info else ())))
        self._deadline_ticks = ticker.ticks_for(limits.timeout)
        self._hash = compiled.sha256
        # One call context, reset per call: a sandbox runs one call at a time (_busy).
        self._ctx = CallContext(host, policy, self._hash)
        # A module that imports no function can never reach a host function, so its calls
        # need no context installed (two thread-local writes and two resets per message).
        info = report.info
        self._needs_ctx = info is None or any(i.signature is not None for i in info.imports)
        self._live: _Live | None = None
        self._busy = threading.Lock()
        self._closed = False
        self._started = time.monotonic()
        self.fuel_consumed = 0
        """Fuel used by all calls so far (read-only; a plain attribute: read per message)."""
        self._calls = 0
        self._traps = 0
        self._instances = 0
        self._last_memory = 0
        ticker.acquire()

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def load(
        cls,
        module: bytes,
        limits: ResourceLimits | None = None,
        policy: SecurityPolicy | None = None,
        host: HostCallbacks | None = None,
        custom_rules: Sequence[CustomRule] = (),
    ) -> Sandbox:
        """Validate a module, then create its first instance (running ``init``).

        Compilation is cached by content hash, so loading the same module again (for another
        agent) costs an instantiation, not a compile.

        Args:
            module: A ``.wasm`` binary or ``.wat`` text as bytes.
            limits: Budgets per call (default :class:`ResourceLimits` defaults).
            policy: What the module may be (default :meth:`SecurityPolicy.default`).
            host: Host-function callbacks (default: log events, refuse sends).
            custom_rules: Extra stage-6 validation checks.

        Returns:
            A ready sandbox.

        Raises:
            ValidationError: If any validation stage failed (``.report`` says which).
            MemoryLimitExceeded: If the first instance needs more memory than the cap.
            OutOfFuel, DeadlineExceeded, Trap, SecurityViolation: If ``init`` failed.
        """
        limits = limits if limits is not None else ResourceLimits()
        policy = policy if policy is not None else SecurityPolicy.default()
        report, compiled = validate_and_compile(module, policy, custom_rules, limits=limits)
        if not report.ok or compiled is None:
            raise ValidationError(report)
        sandbox = cls(compiled, report, limits, policy, host or HostCallbacks())
        try:
            with sandbox._exclusive():
                sandbox._ensure_live()
        except BaseException:
            sandbox.close()
            raise
        _log.debug(
            "sandbox.loaded",
            module_hash=compiled.sha256,
            size=compiled.size,
            memory_cap=sandbox._cap,
            fuel=limits.fuel,
            timeout=limits.timeout,
        )
        return sandbox

    # -- properties ------------------------------------------------------------------------
    @property
    def module_hash(self) -> str:
        """SHA-256 hex digest of the module binary."""
        return self._hash

    @property
    def report(self) -> ValidationReport:
        """The validation report the module passed with (warnings included)."""
        return self._report

    @property
    def limits(self) -> ResourceLimits:
        """The per-call budgets."""
        return self._limits

    @property
    def policy(self) -> SecurityPolicy:
        """The security policy."""
        return self._policy

    @property
    def memory_cap(self) -> int:
        """The effective memory cap in bytes (limits capped by the policy)."""
        return self._cap

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    @property
    def supports_state_handover(self) -> bool:
        """Whether the guest exports both ``snapshot`` and ``restore``."""
        info = self._report.info
        return bool(info and info.export("snapshot") and info.export("restore"))

    @property
    def memory_allocated(self) -> int:
        """Current linear-memory size of the live instance in bytes (last known if none)."""
        live = self._live
        if live is not None and not self._busy.locked():
            try:
                self._last_memory = live.memory.data_len(live.store)
            except Exception:
                pass
        return self._last_memory

    @property
    def calls(self) -> int:
        """``handle`` calls made."""
        return self._calls

    @property
    def traps(self) -> int:
        """Calls that ended with the instance discarded."""
        return self._traps

    @property
    def instances_created(self) -> int:
        """Instances created (the first one plus one per recreation)."""
        return self._instances

    @property
    def uptime(self) -> float:
        """Seconds since the sandbox was loaded."""
        return time.monotonic() - self._started

    def stats(self) -> SandboxStats:
        """All counters at once.

        Returns:
            A :class:`SandboxStats`.
        """
        return SandboxStats(
            self.fuel_consumed,
            self.memory_allocated,
            self._calls,
            self._traps,
            self._instances,
            self.uptime,
        )

    # -- calls -----------------------------------------------------------------------------
    def handle(self, message: bytes) -> bytes:
        """Deliver one message to the guest and return its reply (one guest call).

        Args:
            message: The message bytes (Caxton passes msgpack).

        Returns:
            The reply bytes the guest pointed at.

        Raises:
            OutOfFuel: The call used more than ``limits.fuel``.
            DeadlineExceeded: The call ran longer than ``limits.timeout``.
            MemoryLimitExceeded: The message does not fit, or the guest failed at its cap.
            Trap: The guest trapped (``trap_code`` and ``backtrace`` say where).
            SecurityViolation: The guest broke a run-time policy rule.
            AbiError: The guest broke the calling convention.
            SandboxClosed: The sandbox was closed.
        """
        # ``with self._exclusive()`` inlined: the guard object and its two method calls cost
        # a measurable share of a small message
        busy = self._busy  # _acquire(), inlined for the common case
        if not busy.acquire(False):
            self._acquire()  # raises: another thread is in it (or it just left: proceed)
        elif self._closed:
            busy.release()
            self._acquire()  # raises SandboxClosed
        try:
            self._calls += 1
            live = self._live
            if live is None:
                live = self._ensure_live()
            size = len(message)
            if size:
                ptr = live.inbox_ptr if size <= live.inbox_capacity else \
                    self._reserve(live, size)
                # the inbox lies inside the view (bounds-checked when reserved; memory never
                # shrinks), and the view is current: _call refreshes it after every call
                live.ops.view[ptr:ptr + size] = message
            packed = self._call(live, live.handle, "handle", size) & 0xFFFFFFFFFFFFFFFF
            # _read_region(), inlined for a reply inside memory (the view is current)
            ptr, length = packed >> 32, packed & 0xFFFFFFFF
            view = live.ops.view
            if ptr + length <= len(view):
                return view[ptr:ptr + length].tobytes()
            return self._read_region(live, packed, "handle")  # raises AbiError
        finally:
            self._busy.release()

    def snapshot(self) -> bytes | None:
        """Ask the guest for its state, for hand-over to a new version on hot reload.

        Returns:
            The state bytes, or ``None`` if the guest exports no ``snapshot``.

        Raises:
            OutOfFuel, DeadlineExceeded, Trap, SecurityViolation, AbiError: As for
                :meth:`handle`.
            SandboxClosed: The sandbox was closed.
        """
        with self._exclusive():
            live = self._ensure_live()
            func = live.func("snapshot")
            if func is None:
                return None
            packed = self._call(live, func, "snapshot")
            return self._read_region(live, packed, "snapshot")

    def restore(self, state: bytes) -> None:
        """Hand state (from an older version's :meth:`snapshot`) to the guest.

        Args:
            state: The state bytes.

        Raises:
            AbiError: If the guest exports no ``restore`` or refused the state (non-zero).
            OutOfFuel, DeadlineExceeded, Trap, SecurityViolation, MemoryLimitExceeded: As
                for :meth:`handle`.
            SandboxClosed: The sandbox was closed.
        """
        with self._exclusive():
            live = self._ensure_live()
            func = live.func("restore")
            if func is None:
                raise AbiError(
                    f"module {self._hash[:12]} exports no 'restore'; state hand-over needs "
                    "'snapshot' and 'restore' exports (see the guest ABI)",
                    module_hash=self._hash,
                )
            ptr = self._reserve(live, len(state))
            if state:
                # inside the view: bounds-checked when reserved, and the view is current
                live.ops.view[ptr:ptr + len(state)] = state
            status = self._call(live, func, "restore", len(state))
            if status != 0:
                raise AbiError(
                    f"guest 'restore' refused {len(state)} bytes of state with status "
                    f"{status}; the state may come from an incompatible version",
                    module_hash=self._hash,
                )

    def reset(self) -> None:
        """Discard the live instance; the next call starts from a fresh one."""
        with self._exclusive():
            self._discard("reset")

    def close(self) -> None:
        """Release the instance and its store. Idempotent; later calls raise SandboxClosed."""
        if self._closed:
            return
        with self._busy:
            if self._closed:
                return
            self._closed = True
            self._discard("closed", count=False)
        ticker.release()
        _log.debug("sandbox.closed", module_hash=self._hash, calls=self._calls, traps=self._traps)

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            if not self._closed:
                self._closed = True
                ticker.release()
        except Exception:
            pass

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<Sandbox {self._hash[:12]} {state} calls={self._calls} traps={self._traps}>"

    # -- internals -------------------------------------------------------------------------
    def _exclusive(self) -> _Exclusive:
        return _Exclusive(self)

    def _acquire(self) -> None:
        # What entering ``_exclusive()`` does; the caller releases ``_busy``.
        if not self._busy.acquire(blocking=False):
            raise RuntimeError(
                f"sandbox {self._hash[:12]} is already in use by another call; one Sandbox "
                "serves one thread at a time - load one sandbox per thread"
            )
        if self._closed:
            self._busy.release()
            raise SandboxClosed(
                f"sandbox {self._hash[:12]} is closed; load a new one",
                module_hash=self._hash,
            )

    def _ensure_live(self) -> _Live:
        live = self._live
        if live is not None:
            return live
        store = wasmtime.Store(self._compiled.engine)
        store.set_limits(memory_size=self._cap // self._memories)
        store.set_fuel(self._limits.fuel)
        store.set_epoch_deadline(self._deadline_ticks)
        started = time.monotonic()
        try:
            instance = self._compiled.template.instantiate(store)
        except wasmtime.Trap as exc:
            store.close()
            self._traps += 1
            raise self._translate(exc, None, "instantiate", started, store=None) from None
        except wasmtime.WasmtimeError as exc:
            store.close()
            message = str(exc).splitlines()[0]
            if "limit" in message:
                raise MemoryLimitExceeded(
                    f"instantiating module {self._hash[:12]} failed: {message}; the memory cap "
                    f"is {self._cap} bytes - raise ResourceLimits.memory_bytes or lower the "
                    "module's initial memory",
                    limit_bytes=self._cap,
                    module_hash=self._hash,
                ) from None
            raise AbiError(
                f"instantiating module {self._hash[:12]} failed: {message}",
                module_hash=self._hash,
            ) from None
        self.fuel_consumed += self._limits.fuel - store.get_fuel()
        live = _Live(store, instance, self._hash)
        self._live = live
        self._instances += 1
        init = live.func("init")
        if init is not None:
            self._call(live, init, "init")
        if self._instances > 1:
            _log.info(
                "sandbox.instance_recreated", module_hash=self._hash, instances=self._instances
            )
        return live

    def _reserve(self, live: _Live, size: int) -> int:
        if size <= live.inbox_capacity:
            return live.inbox_ptr
        if size > self._cap:
            raise MemoryLimitExceeded(
                f"a {size}-byte message cannot fit in module {self._hash[:12]}'s "
                f"{self._cap}-byte memory cap; send smaller messages or raise "
                "ResourceLimits.memory_bytes",
                limit_bytes=self._cap,
                module_hash=self._hash,
            )
        request = max(_MIN_INBOX, 1 << (size - 1).bit_length()) if size else _MIN_INBOX
        for want in dict.fromkeys((request, size)):
            ptr = self._call(live, live.inbox, "inbox", want) & 0xFFFFFFFF
            if ptr and ptr + want <= live.ops.size():
                live.inbox_ptr, live.inbox_capacity = ptr, want
                return ptr
            if ptr:
                memory_size = live.memory.data_len(live.store)
                self._traps += 1
                self._discard("abi_error")
                raise AbiError(
                    f"guest 'inbox({want})' returned address {ptr}, but {want} bytes from there "
                    f"run past its {memory_size}-byte memory; return a buffer inside linear "
                    "memory",
                    module_hash=self._hash,
                )
        raise MemoryLimitExceeded(
            f"guest 'inbox({size})' returned 0: module {self._hash[:12]} cannot make room for a "
            f"{size}-byte message under its {self._cap}-byte memory cap; send smaller messages "
            "or raise ResourceLimits.memory_bytes",
            limit_bytes=self._cap,
            module_hash=self._hash,
        )

    def _read_region(self, live: _Live, packed: int, export: str) -> bytes:
        packed &= 0xFFFFFFFFFFFFFFFF  # sandbox.abi.unpack_region, inlined
        ptr, length = packed >> 32, packed & 0xFFFFFFFF
        view = live.ops.view  # refreshed by the call that returned ``packed``
        size = len(view)
        if ptr + length > size:
            self._traps += 1
            self._discard("abi_error")
            raise AbiError(
                f"guest '{export}' returned ptr={ptr} len={length}, outside its {size}-byte "
                "memory; return (ptr << 32) | len of bytes inside linear memory",
                module_hash=self._hash,
            )
        # One copy straight out of linear memory (Memory.read copies twice via a bytearray).
        return view[ptr:ptr + length].tobytes()

    def _call(self, live: _Live, func: Callable[..., Any], export: str, *args: int) -> Any:
        store = live.store
        ops = live.ops
        fuel = self._limits.fuel
        # The deadline is "now + ticks" in epochs: while no tick has happened since it was
        # last set, it still is, and setting it again would change nothing.
        generation = ticker.generation  # read before setting: a tick in between re-sets
        if generation != live.deadline_gen:
            ops.set_epoch_deadline(self._deadline_ticks)
            live.deadline_gen = generation
        ctx: CallContext | None = None
        previous: CallContext | None = None
        if self._needs_ctx:
            ctx = self._ctx
            ctx.host_calls = 0
            ctx.abort = None
            previous = set_context(ctx)
        started = time.monotonic()
        try:
            result = ops.call(func, store, args, fuel)  # also notes the fuel, refreshes views
        except BaseException as exc:
            if ctx is not None:
                set_context(previous)
            remaining = _fuel_left(store)
            self.fuel_consumed += fuel - remaining
            self._traps += 1
            error = self._translate(exc, ctx, export, started, store=store)
            self._discard(getattr(error, "exit_reason", type(error).__name__))
            if error is exc:
                raise
            raise error from None
        if ctx is not None:
            set_context(previous)
        self.fuel_consumed += ops.fuel_used
        return result

    def _translate(
        self,
        exc: BaseException,
        ctx: CallContext | None,
        export: str,
        started: float,
        store: wasmtime.Store | None,
    ) -> BaseException:
        if ctx is not None and ctx.abort is not None:
            return ctx.abort  # a host function stopped the guest: that is the reason
        if isinstance(exc, wasmtime.Trap):
            code = exc.trap_code
            exc_code = code.name.lower() if code is not None else None
        elif isinstance(exc, KeyboardInterrupt | SystemExit):
            return exc
        else:
            # A WasmtimeError, or another thread's host-function error that leaked through
            # wasmtime-py's global "last exception" slot: our own call failed for a reason we
            # reconstruct from the store below.
            exc_code = None
        elapsed = time.monotonic() - started
        who = f"module {self._hash[:12]} export '{export}'"
        if exc_code == "out_of_fuel" or (exc_code is None and store and _fuel_left(store) == 0):
            return OutOfFuel(
                f"{who} ran out of fuel after {self._limits.fuel} units; raise "
                "ResourceLimits.fuel or do less work per message",
                fuel_limit=self._limits.fuel,
                module_hash=self._hash,
            )
        if exc_code == "interrupt" or (exc_code is None and elapsed >= self._limits.timeout):
            return DeadlineExceeded(
                f"{who} was interrupted after {elapsed:.3f}s, past its {self._limits.timeout}s "
                "deadline; raise ResourceLimits.timeout or do less work per message",
                timeout=self._limits.timeout,
                elapsed=elapsed,
                module_hash=self._hash,
            )
        backtrace = _backtrace(exc) if isinstance(exc, wasmtime.Trap) else ()
        detail = _first_cause(exc)
        live = self._live
        if live is not None and store is not None:
            try:
                at_cap = live.memory.data_len(store) + WASM_PAGE_BYTES > self._cap // self._memories
            except Exception:
                at_cap = False
            if at_cap and exc_code not in ("stack_overflow",):
                return MemoryLimitExceeded(
                    f"{who} trapped ({exc_code or detail}) with its memory at the "
                    f"{self._cap}-byte cap (memory.grow was refused); raise "
                    "ResourceLimits.memory_bytes or use less memory",
                    limit_bytes=self._cap,
                    trap_code=exc_code,
                    module_hash=self._hash,
                )
        where = f" at {backtrace[0]}" if backtrace else ""
        return Trap(
            f"{who} trapped: {detail}{where}; the instance was discarded and the next call "
            "gets a fresh one",
            trap_code=exc_code,
            backtrace=backtrace,
            module_hash=self._hash,
        )

    def _discard(self, reason: str, count: bool = True) -> None:
        live = self._live
        if live is None:
            return
        self._live = None
        try:
            self._last_memory = live.memory.data_len(live.store)
        except Exception:
            pass
        live.store.close()
        if count:
            _log.info("sandbox.instance_discarded", module_hash=self._hash, reason=reason)


class _Exclusive:
    """Guard: one thread at a time per sandbox, and no use after close."""

    __slots__ = ("_sandbox",)

    def __init__(self, sandbox: Sandbox) -> None:
        self._sandbox = sandbox

    def __enter__(self) -> None:
        self._sandbox._acquire()

    def __exit__(self, *exc: object) -> None:
        self._sandbox._busy.release()


def _fuel_left(store: wasmtime.Store) -> int:
    try:
        return store.get_fuel()
    except Exception:
        return 0


def _first_cause(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("wasm trap:"):
            return line.removeprefix("wasm trap:").strip()
    return lines[0] if lines else type(exc).__name__


def _backtrace(trap: wasmtime.Trap, limit: int = _MAX_FRAMES) -> tuple[str, ...]:
    frames: list[str] = []
    try:
        all_frames = trap.frames
        for index, frame in enumerate(all_frames[:limit]):
            name = frame.func_name or f"<func {frame.func_index}>"
            offset = frame.module_offset
            where = f"@0x{offset:x}" if offset < 0xFFFFFFFF else "@?"
            frames.append(f"#{index} {name} (func {frame.func_index}) {where}")
        if len(all_frames) > limit:
            frames.append(f"... {len(all_frames) - limit} more frames")
    except Exception:
        pass
    return tuple(frames)
