"""What a module may be (SecurityPolicy) and what one call may spend (ResourceLimits)."""

from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass

__all__ = ["WASM_PAGE_BYTES", "ResourceLimits", "SecurityPolicy"]

WASM_PAGE_BYTES = 65536
"""Size of one WebAssembly linear-memory page."""

_MIB = 1 << 20


@dataclass(frozen=True)
class SecurityPolicy:
    """Static rules a module must pass before it is loaded, plus run-time host-call limits.

    Attributes:
        max_module_bytes: Largest accepted module binary, in bytes.
        max_memory_pages: Largest accepted declared *initial* memory, in 64 KiB pages. It is
            also a ceiling on the run-time memory cap (see :meth:`ResourceLimits.memory_cap`).
        max_imports: Most imports a module may declare.
        allowed_imports: ``"module.name"`` patterns (``fnmatch`` syntax, e.g. ``"env.*"``)
            of imports the module may declare. Only host functions exist to import.
        deny_unsafe_features: Refuse SIMD, threads/shared memory, multi-memory and other
            non-MVP proposals.
        required_exports: Export names the module must provide. The guest ABI's names are
            also checked for their signatures.
        allow_start_function: Accept a start function (it runs during instantiation).
        max_table_elements: Largest accepted declared initial table size.
        max_host_calls_per_message: Host-function calls one guest call may make before it is
            stopped with :class:`~sandbox.SecurityViolation`.
    """

    max_module_bytes: int = 4 * _MIB
    max_memory_pages: int = 256
    max_imports: int = 16
    allowed_imports: tuple[str, ...] = ("env.*",)
    deny_unsafe_features: bool = True
    required_exports: tuple[str, ...] = ("memory", "inbox", "handle")
    allow_start_function: bool = False
    max_table_elements: int = 10_000
    max_host_calls_per_message: int = 1_000

    def __post_init__(self) -> None:
        for name in (
            "max_module_bytes",
            "max_memory_pages",
            "max_imports",
            "max_table_elements",
            "max_host_calls_per_message",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(
                    f"SecurityPolicy.{name} must be a non-negative int, got {value!r}"
                )
        if self.max_memory_pages > 65536:
            raise ValueError(
                f"SecurityPolicy.max_memory_pages={self.max_memory_pages} exceeds the 32-bit "
                "WebAssembly maximum of 65536 pages (4 GiB); use at most 65536"
            )
        # Accept lists from callers but keep the dataclass hashable.
        object.__setattr__(self, "allowed_imports", tuple(self.allowed_imports))
        object.__setattr__(self, "required_exports", tuple(self.required_exports))

    @classmethod
    def strict(cls) -> SecurityPolicy:
        """Policy for untrusted modules: 1 MiB module, 16 pages (1 MiB) memory, ≤10 imports.

        Returns:
            The strict policy: only ``env.*`` host functions, unsafe features and start
            functions refused, at most 100 host calls per message.
        """
        return cls(
            max_module_bytes=_MIB,
            max_memory_pages=16,
            max_imports=10,
            allowed_imports=("env.*",),
            deny_unsafe_features=True,
            allow_start_function=False,
            max_table_elements=1_000,
            max_host_calls_per_message=100,
        )

    @classmethod
    def default(cls) -> SecurityPolicy:
        """The policy used when none is given: 4 MiB module, 256 pages (16 MiB) memory.

        Returns:
            The default policy.
        """
        return cls()

    @classmethod
    def relaxed(cls) -> SecurityPolicy:
        """Policy for trusted modules: 64 MiB module, 4096 pages (256 MiB), unsafe features on.

        Returns:
            The relaxed policy (start functions allowed, 100,000 host calls per message).
        """
        return cls(
            max_module_bytes=64 * _MIB,
            max_memory_pages=4096,
            max_imports=64,
            allowed_imports=("env.*",),
            deny_unsafe_features=False,
            allow_start_function=True,
            max_table_elements=1_000_000,
            max_host_calls_per_message=100_000,
        )

    def allows_import(self, module: str, name: str) -> bool:
        """Tell whether an import is on the allowlist.

        Args:
            module: Import module name, e.g. ``"env"``.
            name: Import field name, e.g. ``"log"``.

        Returns:
            True if some ``allowed_imports`` pattern matches ``"module.name"``.
        """
        full = f"{module}.{name}"
        return any(fnmatch.fnmatchcase(full, pattern) for pattern in self.allowed_imports)


@dataclass(frozen=True)
class ResourceLimits:
    """What one guest call may spend.

    Attributes:
        memory_bytes: Cap on the instance's linear memory, across all its memories, in bytes.
        fuel: Fuel (roughly: WebAssembly instructions) each call may consume — per message
            for ``handle``, and likewise for ``init``, ``snapshot`` and ``restore``.
        timeout: Wall-clock deadline per call, in seconds (enforced by epoch interruption).
    """

    memory_bytes: int = 16 * _MIB
    fuel: int = 100_000_000
    timeout: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.memory_bytes, int) or self.memory_bytes < WASM_PAGE_BYTES:
            raise ValueError(
                f"ResourceLimits.memory_bytes={self.memory_bytes!r} is below one WebAssembly "
                f"page; use at least {WASM_PAGE_BYTES} bytes (e.g. ResourceLimits.from_mb(1))"
            )
        if not isinstance(self.fuel, int) or self.fuel < 1:
            raise ValueError(
                f"ResourceLimits.fuel={self.fuel!r} must be a positive int (fuel per call)"
            )
        if not (isinstance(self.timeout, int | float) and math.isfinite(self.timeout)) or (
            self.timeout <= 0
        ):
            raise ValueError(
                f"ResourceLimits.timeout={self.timeout!r} must be a positive, finite number "
                "of seconds"
            )

    @classmethod
    def from_mb(
        cls, memory_mb: float, fuel: int = 100_000_000, timeout: float = 1.0
    ) -> ResourceLimits:
        """Build limits with the memory cap given in MiB.

        Args:
            memory_mb: Memory cap in MiB.
            fuel: Fuel per call.
            timeout: Deadline per call in seconds.

        Returns:
            The limits.

        Raises:
            ValueError: If a value is out of range.
        """
        return cls(memory_bytes=int(memory_mb * _MIB), fuel=fuel, timeout=timeout)

    def memory_cap(self, policy: SecurityPolicy) -> int:
        """The effective memory cap under a policy, rounded down to whole pages.

        Args:
            policy: The policy whose ``max_memory_pages`` is a ceiling on the cap.

        Returns:
            ``min(memory_bytes, policy.max_memory_pages pages)`` in bytes, at least one page.
        """
        cap = min(self.memory_bytes, policy.max_memory_pages * WASM_PAGE_BYTES)
        return max(WASM_PAGE_BYTES, cap - cap % WASM_PAGE_BYTES)
