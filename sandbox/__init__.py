"""Validated, fuel-metered, memory-capped WebAssembly sandboxes on wasmtime.

This package is a library of its own: it never imports :mod:`caxton`, and nothing outside it
needs to import wasmtime.

Typical use::

    from sandbox import ResourceLimits, Sandbox, SecurityPolicy

    box = Sandbox.load(wat_or_wasm_bytes, ResourceLimits.from_mb(10, fuel=100_000),
                       SecurityPolicy.strict())
    reply = box.handle(msgpack.packb({"hello": "world"}))

See the README section "WASM sandbox and guest ABI" for the guest calling convention.
"""

from sandbox.abi import ABI_VERSION, HOST_FUNCTIONS, LOG_LEVELS
from sandbox.engine import cache_info, clear_module_cache
from sandbox.errors import (
    AbiError,
    DeadlineExceeded,
    MemoryLimitExceeded,
    OutOfFuel,
    SandboxClosed,
    SandboxError,
    SecurityViolation,
    Trap,
    ValidationError,
)
from sandbox.host import HostCallbacks
from sandbox.instance import Sandbox, SandboxStats
from sandbox.policy import WASM_PAGE_BYTES, ResourceLimits, SecurityPolicy
from sandbox.validate import (
    CustomRule,
    ExportInfo,
    Finding,
    ImportInfo,
    ModuleInfo,
    Severity,
    Stage,
    StageResult,
    StageStatus,
    ValidationReport,
    validate,
)

__all__ = [
    "ABI_VERSION",
    "HOST_FUNCTIONS",
    "LOG_LEVELS",
    "WASM_PAGE_BYTES",
    "AbiError",
    "CustomRule",
    "DeadlineExceeded",
    "ExportInfo",
    "Finding",
    "HostCallbacks",
    "ImportInfo",
    "MemoryLimitExceeded",
    "ModuleInfo",
    "OutOfFuel",
    "ResourceLimits",
    "Sandbox",
    "SandboxClosed",
    "SandboxError",
    "SandboxStats",
    "SecurityPolicy",
    "SecurityViolation",
    "Severity",
    "Stage",
    "StageResult",
    "StageStatus",
    "Trap",
    "ValidationError",
    "ValidationReport",
    "cache_info",
    "clear_module_cache",
    "validate",
]
