"""Host functions (``env.*``) and the per-call context they run in.

The host functions are defined once per engine in a store-independent ``Linker``. While a guest
call runs, a thread-local :class:`CallContext` tells them which sandbox (callbacks, policy,
counters) they serve; calls are synchronous, so the thread that entered the guest is the one the
host function runs on.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
import wasmtime

from sandbox.abi import HOST_FUNCTIONS, LOG_LEVELS
from sandbox.errors import AbiError, SandboxError, SecurityViolation
from sandbox.policy import SecurityPolicy

__all__ = ["CallContext", "HostCallbacks", "current_context", "define_host_functions"]

_log = structlog.get_logger("sandbox")

_VALTYPES = {"i32": wasmtime.ValType.i32, "i64": wasmtime.ValType.i64}


@dataclass(frozen=True)
class HostCallbacks:
    """What the host does when a guest calls a host function.

    Every callback runs on the thread that called into the guest, in the middle of the guest
    call. A callback may raise :class:`~sandbox.SecurityViolation` to stop the guest; the call
    then fails with that error and the instance is discarded. Any other exception it raises
    is re-raised from the sandbox call the same way.

    Attributes:
        send: ``send(message) -> accepted`` for ``env.send``. ``None`` refuses every send.
        log: ``log(level, text)`` for ``env.log`` (levels in :data:`sandbox.abi.LOG_LEVELS`).
            ``None`` emits a ``sandbox.guest_log`` structlog event.
        print: ``print(text)`` for ``env.print``. ``None`` emits ``sandbox.guest_print``.
        now: Clock for ``env.now``, nanoseconds since the Unix epoch.
    """

    send: Callable[[bytes], bool] | None = None
    log: Callable[[int, str], None] | None = None
    print: Callable[[str], None] | None = None
    now: Callable[[], int] = field(default=time.time_ns)


@dataclass
class CallContext:
    """State of one guest call, visible to host functions on the same thread.

    Attributes:
        host: The sandbox's callbacks.
        policy: The sandbox's policy (allowlist and host-call budget).
        module_hash: For log events and error messages.
        host_calls: Host-function calls made so far during this call.
        abort: The error a host function stopped the guest with, if any.
    """

    host: HostCallbacks
    policy: SecurityPolicy
    module_hash: str
    host_calls: int = 0
    abort: BaseException | None = None


_local = threading.local()


def current_context() -> CallContext | None:
    """The context of the guest call running on this thread.

    Returns:
        The context, or ``None`` outside a guest call.
    """
    ctx: CallContext | None = getattr(_local, "ctx", None)
    return ctx


def set_context(ctx: CallContext | None) -> CallContext | None:
    """Install ``ctx`` for this thread and return the previous one (calls may nest).

    Args:
        ctx: The context to install, or ``None`` to clear.

    Returns:
        The context that was installed before.
    """
    previous: CallContext | None = getattr(_local, "ctx", None)
    _local.ctx = ctx
    return previous


def _stop(ctx: CallContext | None, error: BaseException) -> BaseException:
    if ctx is not None and ctx.abort is None:
        ctx.abort = error
    return error


def _enter(name: str) -> CallContext:
    ctx = current_context()
    if ctx is None:
        raise AbiError(f"host function {name} was called outside a sandbox call")
    ctx.host_calls += 1
    limit = ctx.policy.max_host_calls_per_message
    if ctx.host_calls > limit:
        raise _stop(
            ctx,
            SecurityViolation(
                f"guest made more than {limit} host-function calls in one call (last: {name}); "
                "raise SecurityPolicy.max_host_calls_per_message or batch the work",
                subject="max_host_calls_per_message",
                module_hash=ctx.module_hash,
            ),
        )
    module, _, field_name = name.partition(".")
    if not ctx.policy.allows_import(module, field_name):
        raise _stop(
            ctx,
            SecurityViolation(
                f"guest called {name}, which its policy does not allow; add it to "
                "SecurityPolicy.allowed_imports or remove the import",
                subject=name,
                module_hash=ctx.module_hash,
            ),
        )
    return ctx


def _read(caller: wasmtime.Caller, ctx: CallContext, name: str, ptr: int, length: int) -> bytes:
    memory = caller.get("memory")
    if not isinstance(memory, wasmtime.Memory):
        raise _stop(
            ctx,
            AbiError(
                f"{name}: the guest exports no memory named 'memory'; export its linear memory",
                module_hash=ctx.module_hash,
            ),
        )
    ptr &= 0xFFFFFFFF
    length &= 0xFFFFFFFF
    size = memory.data_len(caller)
    if ptr + length > size:
        raise _stop(
            ctx,
            AbiError(
                f"{name} was given ptr={ptr} len={length}, outside the guest's {size}-byte "
                "memory; pass a region inside linear memory",
                module_hash=ctx.module_hash,
            ),
        )
    return bytes(memory.read(caller, ptr, ptr + length)) if length else b""


def _guarded(name: str, body: Callable[..., Any]) -> Callable[..., Any]:
    def host_function(caller: wasmtime.Caller, *args: int) -> Any:
        ctx = _enter(name)
        try:
            return body(caller, ctx, *args)
        except SandboxError as exc:
            raise _stop(ctx, exc) from None
        except BaseException as exc:  # a host callback bug: stop the guest, re-raise as is
            raise _stop(ctx, exc) from None

    host_function.__name__ = name.replace(".", "_")
    return host_function


def _log_impl(caller: wasmtime.Caller, ctx: CallContext, level: int, ptr: int, length: int) -> None:
    text = _read(caller, ctx, "env.log", ptr, length).decode("utf-8", "replace")
    if ctx.host.log is not None:
        ctx.host.log(level, text)
        return
    level_name = LOG_LEVELS.get(level, "error") if level >= 0 else "trace"
    method = "debug" if level_name == "trace" else level_name
    getattr(_log, method)(
        "sandbox.guest_log", guest_level=level_name, text=text, module_hash=ctx.module_hash
    )


def _print_impl(caller: wasmtime.Caller, ctx: CallContext, ptr: int, length: int) -> None:
    text = _read(caller, ctx, "env.print", ptr, length).decode("utf-8", "replace")
    if ctx.host.print is not None:
        ctx.host.print(text)
        return
    _log.info("sandbox.guest_print", text=text, module_hash=ctx.module_hash)


def _now_impl(caller: wasmtime.Caller, ctx: CallContext) -> int:
    return int(ctx.host.now())


def _send_impl(caller: wasmtime.Caller, ctx: CallContext, ptr: int, length: int) -> int:
    message = _read(caller, ctx, "env.send", ptr, length)
    if ctx.host.send is None:
        _log.info("sandbox.send_refused", size=len(message), module_hash=ctx.module_hash)
        return 1
    return 0 if ctx.host.send(message) else 1


_IMPLS: dict[str, Callable[..., Any]] = {
    "env.log": _log_impl,
    "env.print": _print_impl,
    "env.now": _now_impl,
    "env.send": _send_impl,
}


def define_host_functions(linker: wasmtime.Linker) -> None:
    """Define every host function of :data:`sandbox.abi.HOST_FUNCTIONS` in ``linker``.

    Args:
        linker: A linker of the engine the modules are compiled for.
    """
    for name, (params, results) in HOST_FUNCTIONS.items():
        module, _, field_name = name.partition(".")
        functype = wasmtime.FuncType(
            [_VALTYPES[p]() for p in params], [_VALTYPES[r]() for r in results]
        )
        linker.define_func(module, field_name, functype, _guarded(name, _IMPLS[name]), True)
