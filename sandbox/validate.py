"""The six-stage validation pipeline and its report.

Stages (as in the operations guide): 1 structure, 2 security, 3 resources, 4 functions,
5 sandbox compatibility, 6 custom rules. Each stage is reported separately with findings that
name the import, export or limit at fault and say how to fix it. Malformed input never raises:
it produces a report whose first stage failed.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Any

import structlog
import wasmtime

from sandbox.abi import EXPORT_SIGNATURES, HOST_FUNCTIONS, Signature
from sandbox.binary import BinaryFormatError, Limits, ModuleLayout, read_layout
from sandbox.engine import (
    CompiledModule,
    analysis_engine,
    compile_module,
    engine_key_for,
    looks_like_wat,
    safe_features_engine,
    ticker,
    to_wasm,
)
from sandbox.policy import WASM_PAGE_BYTES, ResourceLimits, SecurityPolicy

__all__ = [
    "CustomRule",
    "ExportInfo",
    "Finding",
    "ImportInfo",
    "ModuleInfo",
    "Severity",
    "Stage",
    "StageResult",
    "StageStatus",
    "ValidationReport",
    "validate",
]

_log = structlog.get_logger("sandbox")


class Stage(IntEnum):
    """The validation stages, in order."""

    STRUCTURE = 1
    SECURITY = 2
    RESOURCES = 3
    FUNCTIONS = 4
    SANDBOX = 5
    CUSTOM = 6

    @property
    def label(self) -> str:
        """Human name of the stage, e.g. ``"sandbox compatibility"``."""
        return _STAGE_LABELS[self]


_STAGE_LABELS = {
    Stage.STRUCTURE: "structure",
    Stage.SECURITY: "security",
    Stage.RESOURCES: "resources",
    Stage.FUNCTIONS: "functions",
    Stage.SANDBOX: "sandbox compatibility",
    Stage.CUSTOM: "custom rules",
}


class Severity(StrEnum):
    """Errors fail their stage; warnings are reported but do not."""

    ERROR = "error"
    WARNING = "warning"


class StageStatus(StrEnum):
    """Outcome of one stage."""

    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Finding:
    """One problem found in a module.

    Attributes:
        stage: The stage that found it.
        code: Stable machine-readable code, e.g. ``"import_not_allowed"``.
        message: What is wrong, naming the import/export/limit.
        subject: The import/export/limit concerned, e.g. ``"wasi_snapshot_preview1.fd_write"``.
        fix: How to fix it.
        severity: Error (fails the stage) or warning.
    """

    stage: Stage
    code: str
    message: str
    subject: str = ""
    fix: str = ""
    severity: Severity = Severity.ERROR

    def __str__(self) -> str:
        fix = f" Fix: {self.fix}" if self.fix else ""
        return f"[stage {int(self.stage)} {self.stage.label}] {self.message}.{fix}"

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (for JSON/msgpack replies).

        Returns:
            A dict of the fields, with the stage as an int.
        """
        return {
            "stage": int(self.stage),
            "stage_name": self.stage.label,
            "code": self.code,
            "message": self.message,
            "subject": self.subject,
            "fix": self.fix,
            "severity": str(self.severity),
        }


@dataclass(frozen=True)
class StageResult:
    """The outcome of one stage and its findings."""

    stage: Stage
    status: StageStatus
    findings: tuple[Finding, ...] = ()

    @property
    def passed(self) -> bool:
        """True if the stage ran and found no errors."""
        return self.status is StageStatus.PASSED


@dataclass(frozen=True)
class ImportInfo:
    """One import of a module; ``signature`` is set for functions."""

    module: str
    name: str
    kind: str
    signature: Signature | None = None

    @property
    def full_name(self) -> str:
        """``"module.name"``."""
        return f"{self.module}.{self.name}"


@dataclass(frozen=True)
class ExportInfo:
    """One export of a module; ``signature`` is set for functions."""

    name: str
    kind: str
    signature: Signature | None = None


@dataclass(frozen=True)
class ModuleInfo:
    """What validation learned about a module (given to custom rules).

    Attributes:
        sha256: Hex digest of the module binary.
        size: Binary size in bytes.
        imports: Declared imports.
        exports: Declared exports.
        memories: Memories (imported and defined), limits in pages.
        tables: Defined tables, limits in elements.
        start_function: Index of the start function, or ``None``.
        wasm: The module binary.
    """

    sha256: str
    size: int
    imports: tuple[ImportInfo, ...]
    exports: tuple[ExportInfo, ...]
    memories: tuple[Limits, ...]
    tables: tuple[Limits, ...]
    start_function: int | None
    wasm: bytes = field(repr=False)

    def export(self, name: str) -> ExportInfo | None:
        """Look up an export by name.

        Args:
            name: Export name.

        Returns:
            The export, or ``None``.
        """
        return next((e for e in self.exports if e.name == name), None)


CustomRule = Callable[[ModuleInfo], "Iterable[Finding | str] | None"]
"""A user check: returns findings (or plain messages) for problems, nothing when satisfied."""


@dataclass(frozen=True)
class ValidationReport:
    """The result of :func:`validate`: every stage with its findings.

    Attributes:
        module_hash: SHA-256 of the module binary (of the input when it did not parse).
        size: Size of the module binary in bytes.
        stages: One result per stage, in order.
        info: What was learned about the module, when it parsed.
    """

    module_hash: str
    size: int
    stages: tuple[StageResult, ...]
    info: ModuleInfo | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        """True if no stage failed."""
        return all(s.status is not StageStatus.FAILED for s in self.stages)

    @property
    def failed_stage(self) -> StageResult | None:
        """The first failed stage, or ``None``."""
        return next((s for s in self.stages if s.status is StageStatus.FAILED), None)

    @property
    def findings(self) -> tuple[Finding, ...]:
        """Every finding of every stage."""
        return tuple(f for s in self.stages for f in s.findings)

    @property
    def errors(self) -> tuple[Finding, ...]:
        """Findings that failed their stage."""
        return tuple(f for f in self.findings if f.severity is Severity.ERROR)

    @property
    def warnings(self) -> tuple[Finding, ...]:
        """Findings that did not fail their stage."""
        return tuple(f for f in self.findings if f.severity is Severity.WARNING)

    def stage(self, stage: Stage | int) -> StageResult:
        """The result of one stage.

        Args:
            stage: The stage or its number (1-6).

        Returns:
            Its result.
        """
        return self.stages[int(stage) - 1]

    def summary(self) -> str:
        """A readable account: verdict, then every error finding on its own line.

        Returns:
            The summary text.
        """
        failed = self.failed_stage
        short = self.module_hash[:12]
        if failed is None:
            head = f"module {short} passed validation"
            if self.warnings:
                head += f" with {len(self.warnings)} warning(s)"
            return "\n".join([head, *(f"  {w}" for w in self.warnings)])
        head = (
            f"module {short} failed validation at stage {int(failed.stage)} ({failed.stage.label})"
        )
        return "\n".join([head, *(f"  {e}" for e in self.errors)])

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (for JSON/msgpack replies).

        Returns:
            ``{"ok", "module_hash", "size", "failed_stage", "stages": [...]}``.
        """
        failed = self.failed_stage
        return {
            "ok": self.ok,
            "module_hash": self.module_hash,
            "size": self.size,
            "failed_stage": int(failed.stage) if failed else None,
            "stages": [
                {
                    "stage": int(s.stage),
                    "name": s.stage.label,
                    "status": str(s.status),
                    "findings": [f.to_dict() for f in s.findings],
                }
                for s in self.stages
            ],
        }


def validate(
    module: bytes,
    policy: SecurityPolicy | None = None,
    custom_rules: Sequence[CustomRule] = (),
    *,
    limits: ResourceLimits | None = None,
) -> ValidationReport:
    """Run the six validation stages over a module.

    Args:
        module: A ``.wasm`` binary or ``.wat`` text (as bytes).
        policy: The policy to check against (default: :meth:`SecurityPolicy.default`).
        custom_rules: Extra checks run in stage 6, in order.
        limits: Resource limits the module will run under; stage 3 checks the declared
            memory against them and stage 5 instantiates under them (default:
            :class:`ResourceLimits` defaults).

    Returns:
        The report. Malformed input gives a report whose stage 1 failed; this never raises
        for bad module bytes.

    Raises:
        TypeError: If ``module`` is not bytes-like.
    """
    report, _ = validate_and_compile(module, policy, custom_rules, limits=limits)
    return report


_cache_lock = threading.Lock()
_cache: OrderedDict[
    tuple[str, SecurityPolicy, ResourceLimits], tuple[ValidationReport, CompiledModule | None]
] = OrderedDict()
_CACHE_SIZE = 256


def validate_and_compile(
    module: bytes,
    policy: SecurityPolicy | None = None,
    custom_rules: Sequence[CustomRule] = (),
    *,
    limits: ResourceLimits | None = None,
) -> tuple[ValidationReport, CompiledModule | None]:
    """:func:`validate`, also returning the compilation for the engine ``limits`` select.

    Results without custom rules are cached by (input hash, policy, limits).

    Args:
        module: A ``.wasm`` binary or ``.wat`` text.
        policy: The policy (default: :meth:`SecurityPolicy.default`).
        custom_rules: Stage 6 checks.
        limits: The resource limits (default: :class:`ResourceLimits` defaults).

    Returns:
        ``(report, compiled)``; ``compiled`` is ``None`` unless stage 5 ran and passed.

    Raises:
        TypeError: If ``module`` is not bytes-like.
    """
    if not isinstance(module, bytes | bytearray | memoryview):
        raise TypeError(f"module must be bytes (.wasm or .wat text), got {type(module).__name__}")
    data = bytes(module)
    policy = policy if policy is not None else SecurityPolicy.default()
    limits = limits if limits is not None else ResourceLimits()
    key = (hashlib.sha256(data).hexdigest(), policy, limits)
    if not custom_rules:
        with _cache_lock:
            hit = _cache.get(key)
            if hit is not None:
                _cache.move_to_end(key)
                return hit
    result = _Pipeline(data, policy, limits, tuple(custom_rules)).run()
    report = result[0]
    if not report.ok:
        failed = report.failed_stage
        _log.info(
            "sandbox.validation_failed",
            module_hash=report.module_hash,
            stage=int(failed.stage) if failed else None,
            codes=[f.code for f in report.errors],
        )
    if not custom_rules:
        with _cache_lock:
            _cache[key] = result
            while len(_cache) > _CACHE_SIZE:
                _cache.popitem(last=False)
    return result


def _reason(exc: BaseException) -> str:
    """Condense a multi-line wasmtime error into one line."""
    parts: list[str] = []
    for raw in str(exc).splitlines():
        line = re.sub(r"^\d+:\s*", "", raw.strip())
        if line and line != "Caused by:" and line not in parts:
            parts.append(line)
    return ": ".join(parts) or type(exc).__name__


def _signature(functype: wasmtime.FuncType) -> Signature:
    return (tuple(str(p) for p in functype.params), tuple(str(r) for r in functype.results))


def _format_signature(sig: Signature) -> str:
    params, results = sig
    return f"({', '.join(params)}) -> ({', '.join(results)})"


def _kind(item: object) -> str:
    if isinstance(item, wasmtime.FuncType):
        return "func"
    if isinstance(item, wasmtime.MemoryType):
        return "memory"
    if isinstance(item, wasmtime.TableType):
        return "table"
    if isinstance(item, wasmtime.GlobalType):
        return "global"
    return "other"


class _Pipeline:
    def __init__(
        self,
        data: bytes,
        policy: SecurityPolicy,
        limits: ResourceLimits,
        rules: tuple[CustomRule, ...],
    ) -> None:
        self.data = data
        self.policy = policy
        self.limits = limits
        self.rules = rules
        self.cap = limits.memory_cap(policy)
        self.key = engine_key_for(self.cap, not policy.deny_unsafe_features)
        self.wasm = b""
        self.digest = hashlib.sha256(data).hexdigest()
        self.layout: ModuleLayout | None = None
        self.info: ModuleInfo | None = None
        self.compiled: CompiledModule | None = None
        self.compile_error: BaseException | None = None
        self.oversize = False

    def run(self) -> tuple[ValidationReport, CompiledModule | None]:
        results: list[StageResult] = []
        structure = self._finish(Stage.STRUCTURE, self._structure())
        results.append(structure)
        if not structure.passed or self.info is None:
            results += [StageResult(Stage(n), StageStatus.SKIPPED) for n in range(2, 7)]
            return self._report(results), None
        if self.oversize:  # imports/exports unknown: only the resource stage can judge it
            results.append(StageResult(Stage.SECURITY, StageStatus.SKIPPED))
            results.append(self._finish(Stage.RESOURCES, self._resources(self.info)))
            results.append(StageResult(Stage.FUNCTIONS, StageStatus.SKIPPED))
            results += [
                StageResult(Stage.SANDBOX, StageStatus.SKIPPED),
                StageResult(Stage.CUSTOM, StageStatus.SKIPPED),
            ]
            return self._report(results), None
        results.append(self._finish(Stage.SECURITY, self._security(self.info)))
        results.append(self._finish(Stage.RESOURCES, self._resources(self.info)))
        results.append(self._finish(Stage.FUNCTIONS, self._functions(self.info)))
        if all(r.passed for r in results):
            results.append(self._finish(Stage.SANDBOX, self._sandbox()))
        else:
            results.append(StageResult(Stage.SANDBOX, StageStatus.SKIPPED))
        results.append(self._finish(Stage.CUSTOM, self._custom(self.info)))
        report = self._report(results)
        return report, (self.compiled if report.ok else None)

    def _report(self, results: list[StageResult]) -> ValidationReport:
        return ValidationReport(self.digest, len(self.wasm or self.data), tuple(results), self.info)

    @staticmethod
    def _finish(stage: Stage, findings: list[Finding]) -> StageResult:
        failed = any(f.severity is Severity.ERROR for f in findings)
        status = StageStatus.FAILED if failed else StageStatus.PASSED
        return StageResult(stage, status, tuple(findings))

    # -- stage 1 ---------------------------------------------------------------------------
    def _structure(self) -> list[Finding]:
        s = Stage.STRUCTURE
        if not self.data:
            return [
                Finding(
                    s,
                    "empty",
                    "module is empty (0 bytes)",
                    "module",
                    "pass the .wasm binary or .wat text of the module",
                )
            ]
        if looks_like_wat(self.data):
            try:
                self.wasm = to_wasm(self.data)
            except Exception as exc:
                return [
                    Finding(
                        s,
                        "bad_wat",
                        f"module is not valid WebAssembly text: {_reason(exc)}",
                        "module",
                        "fix the .wat source at the position given",
                    )
                ]
        else:
            self.wasm = self.data
        self.digest = hashlib.sha256(self.wasm).hexdigest()
        try:
            self.layout = read_layout(self.wasm)
        except BinaryFormatError as exc:
            return [
                Finding(
                    s,
                    exc.code,
                    str(exc),
                    "module header" if exc.offset < 8 else "module",
                    "pass a WebAssembly binary (or .wat text); rebuild the module if it "
                    "was truncated or corrupted",
                )
            ]
        try:
            wasmtime.Module.validate(analysis_engine(), self.wasm)
        except Exception as exc:
            return [
                Finding(
                    s,
                    "invalid_module",
                    f"module does not parse: {_reason(exc)}",
                    "module",
                    "rebuild the module with a standard WebAssembly toolchain",
                )
            ]
        if len(self.wasm) > self.policy.max_module_bytes:
            # Do not spend compile time on a module stage 3 will refuse: inspect the layout only.
            self.oversize = True
            self.info = ModuleInfo(
                self.digest,
                len(self.wasm),
                (),
                (),
                self.layout.memories,
                self.layout.tables,
                self.layout.start_function,
                self.wasm,
            )
            return []
        try:
            self.compiled = compile_module(self.wasm, self.key)
            module = self.compiled.module
        except Exception as exc:
            self.compile_error = exc
            try:
                module = wasmtime.Module(analysis_engine(), self.wasm)
            except Exception as exc2:
                return [
                    Finding(
                        s,
                        "invalid_module",
                        f"module does not compile: {_reason(exc2)}",
                        "module",
                        "rebuild the module with a standard toolchain",
                    )
                ]
        self.info = self._inspect(module, self.layout)
        return []

    def _inspect(self, module: wasmtime.Module, layout: ModuleLayout) -> ModuleInfo:
        imports: list[ImportInfo] = []
        memories: list[Limits] = []
        for imp in module.imports:
            ty = imp.type
            sig = _signature(ty) if isinstance(ty, wasmtime.FuncType) else None
            imports.append(ImportInfo(imp.module, imp.name or "", _kind(ty), sig))
            if isinstance(ty, wasmtime.MemoryType):
                memories.append(Limits(ty.limits.min, ty.limits.max, ty.is_shared, ty.is_64))
        exports = []
        for exp in module.exports:
            ty = exp.type
            sig = _signature(ty) if isinstance(ty, wasmtime.FuncType) else None
            exports.append(ExportInfo(exp.name, _kind(ty), sig))
        memories.extend(layout.memories)
        return ModuleInfo(
            self.digest,
            len(self.wasm),
            tuple(imports),
            tuple(exports),
            tuple(memories),
            layout.tables,
            layout.start_function,
            self.wasm,
        )

    # -- stage 2 ---------------------------------------------------------------------------
    def _security(self, info: ModuleInfo) -> list[Finding]:
        s = Stage.SECURITY
        out: list[Finding] = []
        available = ", ".join(sorted(HOST_FUNCTIONS))
        for imp in info.imports:
            name = imp.full_name
            if not self.policy.allows_import(imp.module, imp.name):
                out.append(
                    Finding(
                        s,
                        "import_not_allowed",
                        f"import {name} ({imp.kind}) is not on the policy's allowlist "
                        f"{list(self.policy.allowed_imports)}",
                        name,
                        f"remove the import; the host offers only {available}",
                    )
                )
            elif imp.kind != "func":
                out.append(
                    Finding(
                        s,
                        "import_kind_not_supported",
                        f"import {name} is a {imp.kind}; the host provides only functions",
                        name,
                        f"define and export the {imp.kind} in the module instead of importing it",
                    )
                )
            elif name not in HOST_FUNCTIONS:
                out.append(
                    Finding(
                        s,
                        "unknown_host_function",
                        f"import {name} is allowed by the policy but the host has no such function",
                        name,
                        f"use one of {available}",
                    )
                )
            elif imp.signature != HOST_FUNCTIONS[name]:
                assert imp.signature is not None
                out.append(
                    Finding(
                        s,
                        "import_signature_mismatch",
                        f"import {name} has signature {_format_signature(imp.signature)}"
                        f"; the host defines {_format_signature(HOST_FUNCTIONS[name])}",
                        name,
                        "declare the import with the host's signature",
                    )
                )
        if self.policy.deny_unsafe_features:
            try:
                wasmtime.Module.validate(safe_features_engine(), self.wasm)
            except Exception as exc:
                out.append(
                    Finding(
                        s,
                        "unsafe_feature",
                        f"module uses a feature the policy refuses: {_reason(exc)}",
                        "deny_unsafe_features",
                        "rebuild without SIMD/threads/multi-memory/other post-MVP "
                        "proposals, or use a policy with deny_unsafe_features=False",
                    )
                )
        if info.start_function is not None and not self.policy.allow_start_function:
            out.append(
                Finding(
                    s,
                    "start_function",
                    f"module declares a start function (func {info.start_function}) "
                    "that would run during instantiation",
                    "start",
                    "remove the start function and do the work in an exported `init` function",
                )
            )
        return out

    # -- stage 3 ---------------------------------------------------------------------------
    def _resources(self, info: ModuleInfo) -> list[Finding]:
        s = Stage.RESOURCES
        p = self.policy
        out: list[Finding] = []
        if info.size > p.max_module_bytes:
            out.append(
                Finding(
                    s,
                    "module_too_large",
                    f"module is {info.size} bytes; policy max_module_bytes is {p.max_module_bytes}",
                    "max_module_bytes",
                    "strip debug/custom sections, optimise for size (wasm-opt -Oz), "
                    "or use a policy with a larger max_module_bytes",
                )
            )
        if len(info.imports) > p.max_imports:
            out.append(
                Finding(
                    s,
                    "too_many_imports",
                    f"module declares {len(info.imports)} imports; policy max_imports "
                    f"is {p.max_imports}",
                    "max_imports",
                    "remove unused imports",
                )
            )
        cap_pages = self.cap // WASM_PAGE_BYTES
        for index, mem in enumerate(info.memories):
            subject = f"memory {index}"
            if mem.min > p.max_memory_pages:
                out.append(
                    Finding(
                        s,
                        "memory_too_large",
                        f"{subject} declares {mem.min} initial pages; policy "
                        f"max_memory_pages is {p.max_memory_pages}",
                        "max_memory_pages",
                        "lower the initial memory (e.g. link with a smaller --initial-memory)",
                    )
                )
            elif mem.min > cap_pages:
                out.append(
                    Finding(
                        s,
                        "memory_exceeds_limit",
                        f"{subject} declares {mem.min} initial pages "
                        f"({mem.min * WASM_PAGE_BYTES} bytes) but the memory cap is "
                        f"{self.cap} bytes",
                        "memory_bytes",
                        "lower the initial memory or raise ResourceLimits.memory_bytes",
                    )
                )
            if mem.max is None or mem.max > p.max_memory_pages:
                declared = "no maximum" if mem.max is None else f"maximum {mem.max} pages"
                out.append(
                    Finding(
                        s,
                        "memory_max_above_policy",
                        f"{subject} declares {declared}; growth will be refused past "
                        f"{cap_pages} pages (memory.grow returns -1)",
                        subject,
                        f"declare a maximum of at most {p.max_memory_pages} pages",
                        Severity.WARNING,
                    )
                )
        for index, table in enumerate(info.tables):
            if table.min > p.max_table_elements:
                out.append(
                    Finding(
                        s,
                        "table_too_large",
                        f"table {index} declares {table.min} initial elements; policy "
                        f"max_table_elements is {p.max_table_elements}",
                        "max_table_elements",
                        "shrink the table",
                    )
                )
        return out

    # -- stage 4 ---------------------------------------------------------------------------
    def _functions(self, info: ModuleInfo) -> list[Finding]:
        s = Stage.FUNCTIONS
        out: list[Finding] = []
        for name in self.policy.required_exports:
            if info.export(name) is None:
                expected = EXPORT_SIGNATURES.get(name)
                shape = (
                    "a memory"
                    if name == "memory"
                    else (f"a function {_format_signature(expected)}" if expected else "it")
                )
                out.append(
                    Finding(
                        s,
                        "missing_export",
                        f"module does not export {name!r}, which the policy requires",
                        name,
                        f"export {shape} named {name!r} (see the guest ABI)",
                    )
                )
        for name, expected in EXPORT_SIGNATURES.items():
            export = info.export(name)
            if export is None:
                continue
            if expected is None:
                if export.kind != "memory":
                    out.append(
                        Finding(
                            s,
                            "export_kind_mismatch",
                            f"export {name!r} is a {export.kind}; the ABI needs a memory",
                            name,
                            f"export the linear memory as {name!r}",
                        )
                    )
            elif export.kind != "func":
                out.append(
                    Finding(
                        s,
                        "export_kind_mismatch",
                        f"export {name!r} is a {export.kind}; the ABI needs a function "
                        f"{_format_signature(expected)}",
                        name,
                        f"export a function named {name!r}",
                    )
                )
            elif export.signature != expected:
                assert export.signature is not None
                out.append(
                    Finding(
                        s,
                        "export_signature_mismatch",
                        f"export {name!r} has signature "
                        f"{_format_signature(export.signature)}; the ABI needs "
                        f"{_format_signature(expected)}",
                        name,
                        f"change {name!r} to {_format_signature(expected)}",
                    )
                )
        has_snapshot = info.export("snapshot") is not None
        has_restore = info.export("restore") is not None
        if has_snapshot != has_restore:
            present, missing = ("snapshot", "restore") if has_snapshot else ("restore", "snapshot")
            out.append(
                Finding(
                    s,
                    "half_state_handover",
                    f"module exports {present!r} but not {missing!r}; state hand-over "
                    "on hot reload needs both",
                    missing,
                    f"export {missing!r} too, or neither",
                    Severity.WARNING,
                )
            )
        return out

    # -- stage 5 ---------------------------------------------------------------------------
    def _sandbox(self) -> list[Finding]:
        s = Stage.SANDBOX
        if self.compiled is None:
            reason = _reason(self.compile_error) if self.compile_error else "unknown error"
            return [
                Finding(
                    s,
                    "compile_failed",
                    f"module does not compile or link for the sandbox engine: {reason}",
                    "module",
                    "check imports against the host functions and the enabled features",
                )
            ]
        store = wasmtime.Store(self.compiled.engine)
        assert self.info is not None
        store.set_limits(memory_size=self.cap // max(1, len(self.info.memories)))
        store.set_fuel(self.limits.fuel)
        ticker.acquire()
        try:
            store.set_epoch_deadline(ticker.ticks_for(self.limits.timeout))
            self.compiled.template.instantiate(store)
        except wasmtime.Trap as exc:
            return [
                Finding(
                    s,
                    "start_trapped",
                    f"instantiation trapped in the start function: {_reason(exc)}",
                    "start",
                    "fix the start function or move its work into `init`",
                )
            ]
        except Exception as exc:
            return [
                Finding(
                    s,
                    "instantiate_failed",
                    f"instantiation failed under a {self.cap}-byte memory cap: {_reason(exc)}",
                    "memory_bytes",
                    "lower the module's initial memory/tables or raise the limits",
                )
            ]
        finally:
            ticker.release()
            store.close()
        return []

    # -- stage 6 ---------------------------------------------------------------------------
    def _custom(self, info: ModuleInfo) -> list[Finding]:
        s = Stage.CUSTOM
        out: list[Finding] = []
        for rule in self.rules:
            rule_name = getattr(rule, "__name__", repr(rule))
            try:
                produced = rule(info) or ()
                for item in produced:
                    if isinstance(item, Finding):
                        out.append(
                            item
                            if item.stage is s
                            else Finding(
                                s, item.code, item.message, item.subject, item.fix, item.severity
                            )
                        )
                    else:
                        out.append(Finding(s, "custom_rule", f"{rule_name}: {item}", rule_name))
            except Exception as exc:
                out.append(
                    Finding(
                        s,
                        "custom_rule_error",
                        f"custom rule {rule_name} raised {type(exc).__name__}: {exc}",
                        rule_name,
                        "fix the rule; it must return findings, not raise",
                    )
                )
        return out
