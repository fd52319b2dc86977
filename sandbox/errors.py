"""Typed errors: every way a sandboxed call can end badly is its own class.

Each class carries a stable :attr:`SandboxError.exit_reason` string so a runtime can map it to its
own error codes without string matching on messages.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sandbox.validate import ValidationReport

__all__ = [
    "AbiError",
    "DeadlineExceeded",
    "MemoryLimitExceeded",
    "OutOfFuel",
    "SandboxClosed",
    "SandboxError",
    "SecurityViolation",
    "Trap",
    "ValidationError",
]


class SandboxError(Exception):
    """Base class of every error the sandbox raises on purpose.

    Attributes:
        exit_reason: Stable snake_case name of the failure kind (for metrics and error codes).
        module_hash: SHA-256 hex digest of the module involved, or ``""`` when unknown.
    """

    exit_reason: str = "sandbox_error"

    def __init__(self, message: str, *, module_hash: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.module_hash = module_hash


class ValidationError(SandboxError):
    """The module failed validation; nothing was instantiated.

    Attributes:
        report: The full :class:`~sandbox.validate.ValidationReport`, stage by stage.
    """

    exit_reason = "validation_failed"

    def __init__(self, report: ValidationReport) -> None:
        super().__init__(report.summary(), module_hash=report.module_hash)
        self.report = report


class OutOfFuel(SandboxError):
    """The guest used up the call's fuel (CPU) budget.

    Attributes:
        fuel_limit: The budget the call was given.
    """

    exit_reason = "out_of_fuel"

    def __init__(self, message: str, *, fuel_limit: int, module_hash: str = "") -> None:
        super().__init__(message, module_hash=module_hash)
        self.fuel_limit = fuel_limit


class MemoryLimitExceeded(SandboxError):
    """The guest needed more linear memory than its cap allows.

    Raised when instantiation needs more than the cap, when a message does not fit in the
    guest's memory, or when a call traps while the guest's memory is at its cap (a refused
    ``memory.grow`` returns -1 inside the guest and the guest then gave up).

    Attributes:
        limit_bytes: The memory cap.
        trap_code: The underlying trap code, if the guest trapped.
    """

    exit_reason = "memory_limit_exceeded"

    def __init__(
        self,
        message: str,
        *,
        limit_bytes: int,
        trap_code: str | None = None,
        module_hash: str = "",
    ) -> None:
        super().__init__(message, module_hash=module_hash)
        self.limit_bytes = limit_bytes
        self.trap_code = trap_code


class DeadlineExceeded(SandboxError):
    """The call ran past its wall-clock deadline and was interrupted (epoch interruption).

    Attributes:
        timeout: The deadline in seconds.
        elapsed: How long the call actually ran, in seconds.
    """

    exit_reason = "deadline_exceeded"

    def __init__(
        self, message: str, *, timeout: float, elapsed: float, module_hash: str = ""
    ) -> None:
        super().__init__(message, module_hash=module_hash)
        self.timeout = timeout
        self.elapsed = elapsed


class Trap(SandboxError):
    """The guest trapped (``unreachable``, out-of-bounds access, stack overflow, ...).

    Attributes:
        trap_code: wasmtime's trap code in lower case (e.g. ``"unreachable"``,
            ``"stack_overflow"``), or ``None`` when the engine gave none.
        backtrace: Guest frames, innermost first, e.g. ``("#0 inner (func 1) @0x50", ...)``.
    """

    exit_reason = "trap"

    def __init__(
        self,
        message: str,
        *,
        trap_code: str | None,
        backtrace: tuple[str, ...] = (),
        module_hash: str = "",
    ) -> None:
        super().__init__(message, module_hash=module_hash)
        self.trap_code = trap_code
        self.backtrace = backtrace


class SecurityViolation(SandboxError):
    """The guest did something its policy forbids at run time.

    Raised when a guest exceeds ``SecurityPolicy.max_host_calls_per_message``, calls a host
    function its policy does not allow, or when a host callback raises it to refuse a request.

    Attributes:
        subject: What was violated (e.g. ``"env.send"`` or ``"max_host_calls_per_message"``).
    """

    exit_reason = "security_violation"

    def __init__(self, message: str, *, subject: str = "", module_hash: str = "") -> None:
        super().__init__(message, module_hash=module_hash)
        self.subject = subject


class AbiError(SandboxError):
    """The guest broke the calling convention (bad pointer or length, missing export, refusal)."""

    exit_reason = "abi_error"


class SandboxClosed(SandboxError):
    """The sandbox was used after :meth:`~sandbox.Sandbox.close`."""

    exit_reason = "sandbox_closed"
