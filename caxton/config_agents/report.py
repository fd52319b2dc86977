"""The validation report: seven stages, each with its findings, printable and serialisable."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from caxton.errors import ValidationFailed

STAGES: Final[tuple[tuple[int, str], ...]] = (
    (1, "YAML syntax"),
    (2, "required fields"),
    (3, "capability registry"),
    (4, "tool availability"),
    (5, "parameter validation"),
    (6, "memory scope"),
    (7, "template syntax"),
)
"""The operations guide's configuration validation pipeline, in order."""

STAGE_NAMES: Final[dict[int, str]] = dict(STAGES)


class Severity(StrEnum):
    """How serious a finding is: errors fail their stage, warnings do not."""

    ERROR = "error"
    WARNING = "warning"


class StageStatus(StrEnum):
    """Outcome of one stage."""

    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem found in an agent file.

    Attributes:
        stage: Stage number (1-7).
        code: Stable short identifier, e.g. ``unknown_capability``.
        message: What is wrong.
        fix: How to fix it.
        file: The file (or the ``source`` label given for text).
        line: 1-based file line, when known.
        column: 1-based column, when known.
        field: Dotted field path (``resource_limits.memory_scope``, ``tools[1]``), if any.
        severity: Error or warning.
    """

    stage: int
    code: str
    message: str
    fix: str
    file: str
    line: int | None = None
    column: int | None = None
    field: str | None = None
    severity: Severity = Severity.ERROR

    @property
    def stage_name(self) -> str:
        """The stage's name, e.g. ``"tool availability"``."""
        return STAGE_NAMES[self.stage]

    def location(self) -> str:
        """Return ``file:line:column`` (as much as is known)."""
        out = self.file
        if self.line is not None:
            out += f":{self.line}"
            if self.column is not None:
                out += f":{self.column}"
        return out

    def format(self) -> str:
        """Return the finding as one compiler-style line plus an indented fix line."""
        where = f" {self.field}:" if self.field else ""
        return (f"{self.location()}: {self.severity.value} [stage {self.stage} {self.stage_name}]"
                f"{where} {self.message}\n    fix: {self.fix}")

    def to_dict(self) -> dict[str, Any]:
        """Return the finding as plain data (control-protocol ``details`` entry)."""
        return {
            "stage": self.stage,
            "stage_name": self.stage_name,
            "severity": self.severity.value,
            "code": self.code,
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "field": self.field,
            "message": self.message,
            "fix": self.fix,
        }


@dataclass(frozen=True, slots=True)
class StageResult:
    """The outcome of one stage.

    Attributes:
        number: Stage number (1-7).
        status: Passed, failed or skipped.
        findings: Everything the stage found (errors and warnings).
    """

    number: int
    status: StageStatus
    findings: tuple[Finding, ...] = ()

    @property
    def name(self) -> str:
        """The stage's name."""
        return STAGE_NAMES[self.number]

    def to_dict(self) -> dict[str, Any]:
        """Return the stage as plain data."""
        return {"stage": self.number, "name": self.name, "status": self.status.value,
                "findings": [f.to_dict() for f in self.findings]}


@dataclass(frozen=True, slots=True)
class ValidationReport:
    """The result of validating one agent file.

    Attributes:
        source: The file path or source label.
        stages: All seven stages, in order.
        agent_name: The ``name`` field when it could be read, for messages.
    """

    source: str
    stages: tuple[StageResult, ...]
    agent_name: str | None = None

    @property
    def ok(self) -> bool:
        """True when no stage failed."""
        return all(s.status is not StageStatus.FAILED for s in self.stages)

    @property
    def findings(self) -> list[Finding]:
        """Every finding of every stage, in stage order."""
        return [f for s in self.stages for f in s.findings]

    @property
    def errors(self) -> list[Finding]:
        """Error findings, in stage order."""
        return [f for f in self.findings if f.severity is Severity.ERROR]

    @property
    def warnings(self) -> list[Finding]:
        """Warning findings, in stage order."""
        return [f for f in self.findings if f.severity is Severity.WARNING]

    def stage(self, number: int) -> StageResult:
        """Return the result of stage ``number`` (1-7).

        Args:
            number: Stage number.

        Returns:
            The stage result.
        """
        return self.stages[number - 1]

    @property
    def failed_stage(self) -> int | None:
        """The first failed stage's number, or ``None`` when valid."""
        return next((s.number for s in self.stages if s.status is StageStatus.FAILED), None)

    def summary(self) -> str:
        """Return one line: valid, or how many errors and where it first failed."""
        passed = sum(s.status is StageStatus.PASSED for s in self.stages)
        if self.ok:
            extra = f", {len(self.warnings)} warning(s)" if self.warnings else ""
            return f"{self.source}: valid ({passed}/{len(self.stages)} stages passed{extra})"
        n = len(self.errors)
        first = self.failed_stage or 0
        return (f"{self.source}: invalid, {n} error{'s' if n != 1 else ''} "
                f"(first failure at stage {first}, {STAGE_NAMES.get(first, '?')})")

    def format(self, detailed: bool = False) -> str:
        """Render the report for people (``caxton agents validate [--detailed]``).

        Args:
            detailed: List every stage with its status, not only the findings.

        Returns:
            Multi-line text.
        """
        lines = [self.summary()]
        if detailed:
            for s in self.stages:
                dots = "." * max(2, 24 - len(s.name))
                lines.append(f"  [{s.number}] {s.name} {dots} {s.status.value}")
                lines.extend("      " + f.format().replace("\n", "\n      ") for f in s.findings)
        else:
            lines.extend("  " + f.format().replace("\n", "\n  ") for f in self.findings)
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """Return the report as plain data (what travels over the control protocol)."""
        return {
            "source": self.source,
            "agent": self.agent_name,
            "ok": self.ok,
            "stages": [s.to_dict() for s in self.stages],
            "errors": [f.to_dict() for f in self.errors],
            "warnings": [f.to_dict() for f in self.warnings],
        }

    def to_error(self) -> ValidationFailed:
        """Return a :class:`ValidationFailed` whose ``details`` are the error findings."""
        first = self.errors[0] if self.errors else None
        head = f"{self.summary()}"
        if first is not None:
            head += f"; {first.location()}: {first.message} (fix: {first.fix})"
        return ValidationFailed(head, details=[f.to_dict() for f in self.errors])

    def raise_for_errors(self) -> None:
        """Raise :class:`ValidationFailed` unless the report is ok.

        Raises:
            ValidationFailed: The file failed validation; ``details`` lists every error.
        """
        if not self.ok:
            raise self.to_error()


__all__ = [
    "STAGES",
    "STAGE_NAMES",
    "Finding",
    "Severity",
    "StageResult",
    "StageStatus",
    "ValidationReport",
]
