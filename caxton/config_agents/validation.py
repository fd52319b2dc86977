"""The seven-stage validation pipeline of the operations guide.

1. **YAML syntax** — the file opens and closes its frontmatter with ``---``, the YAML parses
   (errors carry line and column), the top level is a map, no key is repeated.
2. **Required fields** — ``name``, ``capabilities`` and ``tools`` are present and well-formed
   (``version`` too, when given); no unknown top-level keys.
3. **Capability registry** — every capability is one the node registers.
4. **Tool availability** — every tool is one the node provides.
5. **Parameter validation** — ``parameters`` are JSON-like and unit-named ones parse
   (``"30s"``, ``"50MB"``); ``resource_limits`` counts and timeouts; the ``llm`` section.
6. **Memory scope** — ``memory_scope`` is ``agent``/``workspace``/``global`` and permitted by
   the node.
7. **Template syntax** — ``system_prompt`` and ``user_prompt_template`` compile in the Jinja2
   sandbox and use only the allowed variables.

Stages 1 and 2 are *hard*: if either fails, the file is not an agent definition at all and the
later stages are reported as skipped. Stages 3-7 are independent checks and always all run, so
one ``validate`` shows every problem. Each finding names the file, line, field and a fix.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any, Final

import structlog
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from caxton.config_agents import frontmatter
from caxton.config_agents.frontmatter import Path, SourceMap
from caxton.config_agents.hints import did_you_mean
from caxton.config_agents.parameters import check_parameters
from caxton.config_agents.registry import DEFAULT_CAPABILITIES, DEFAULT_TOOLS
from caxton.config_agents.report import (
    STAGES,
    Finding,
    Severity,
    StageResult,
    StageStatus,
    ValidationReport,
)
from caxton.config_agents.schema import AgentConfig, MemoryScope, ResourceLimits
from caxton.config_agents.templates import check_template
from caxton.llm.config import LLMConfig

_log = structlog.get_logger("caxton.config_agents")

ALL_MEMORY_SCOPES: Final[tuple[str, ...]] = tuple(s.value for s in MemoryScope)
TEMPLATE_FIELDS: Final = ("system_prompt", "user_prompt_template")
_HARD_STAGES: Final = (1, 2)
_STAGE2_FIELDS: Final = frozenset({"name", "version", "capabilities", "tools"})

_FIELD_FIX: Final[dict[str, str]] = {
    "name": "write name: DataProcessor — a letter, then letters, digits, '-', '_' or '.' "
    "(at most 64 characters)",
    "version": 'write version: "1.0.0" (quoted, so YAML keeps it a string)',
    "capabilities": "write capabilities: [data-processing] — a list of capability names",
    "tools": "write tools: [http_client] — a list of tool names, or tools: [] for none",
    "parameters": "write parameters as 'key: value' lines indented under 'parameters:'",
    "resource_limits": "write resource_limits as a map of memory_scope, max_conversations, "
    "max_memory_entities, response_timeout, tool_call_timeout",
    "resource_limits.memory_scope": "write memory_scope: agent — one of agent, workspace, global",
    "resource_limits.max_conversations": "write max_conversations: 100 — a whole number >= 1",
    "resource_limits.conversation_limit": "write conversation_limit: 100 — a whole number >= 1",
    "resource_limits.max_memory_entities": "write max_memory_entities: 10000 — a whole number >= 1",
    "resource_limits.response_timeout": 'write response_timeout: "30s" — a duration > 0 '
    "(500ms, 30s, 2m, 1h)",
    "resource_limits.tool_call_timeout": 'write tool_call_timeout: "10s" — a duration > 0 '
    "(500ms, 10s, 1m)",
    "system_prompt": "write system_prompt: | and the prompt text indented on the next lines",
    "user_prompt_template": "write user_prompt_template: | and the template indented on the "
    "next lines, e.g. {{ request }}",
    "llm": "write llm as a map, e.g. llm: {provider: openai, model: llama3, "
    "base_url: 'http://127.0.0.1:11434/v1'}",
    "llm.provider": "write provider: echo or provider: openai",
}
_REQUIRED_EXAMPLE: Final[dict[str, str]] = {
    "name": "add 'name: MyAgent' to the frontmatter",
    "capabilities": "add 'capabilities: [echo]' (the capabilities the agent offers)",
    "tools": "add 'tools: []' (or the list of tools the agent uses)",
}


def _dotted(path: Iterable[str | int]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _known_keys(parent: Path) -> list[str]:
    models: dict[Path, type[BaseModel]] = {
        (): AgentConfig, ("resource_limits",): ResourceLimits, ("llm",): LLMConfig}
    model = models.get(parent)
    if model is None:
        return []
    keys = list(model.model_fields)
    if model is ResourceLimits:
        keys.append("conversation_limit")
    return keys


def _stage_of(loc: Path) -> int:
    head = loc[0] if loc else ""
    top_level_unknown = len(loc) == 1 and head not in (
        "parameters", "resource_limits", "llm", *TEMPLATE_FIELDS)
    if head in _STAGE2_FIELDS or top_level_unknown:
        return 2  # identity fields, and unknown top-level keys
    if head == "resource_limits" and len(loc) > 1 and loc[1] == "memory_scope":
        return 6
    if head in TEMPLATE_FIELDS:
        return 7
    return 5


class _Run:
    """Collects findings per stage for one file."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.smap: SourceMap | None = None
        self.by_stage: dict[int, list[Finding]] = {n: [] for n, _ in STAGES}

    def add(
        self,
        stage: int,
        code: str,
        message: str,
        fix: str,
        *,
        path: Path | None = None,
        line: int | None = None,
        column: int | None = None,
        severity: Severity = Severity.ERROR,
    ) -> None:
        if path is not None and line is None and self.smap is not None:
            pos = self.smap.position(path)
            line, column = pos.line, pos.column
        self.by_stage[stage].append(Finding(
            stage=stage, code=code, message=message, fix=fix, file=self.source, line=line,
            column=column, field=_dotted(path) if path else None, severity=severity))

    def failed(self, stage: int) -> bool:
        return any(f.severity is Severity.ERROR for f in self.by_stage[stage])

    def report(self, agent_name: str | None) -> ValidationReport:
        results: list[StageResult] = []
        hard_failed = False
        for number, _name in STAGES:
            if hard_failed:  # what a skipped stage found is not reported: the file is not usable
                results.append(StageResult(number, StageStatus.SKIPPED))
                continue
            findings = tuple(sorted(self.by_stage[number], key=lambda f: f.line or 0))
            failed = self.failed(number)
            results.append(StageResult(
                number, StageStatus.FAILED if failed else StageStatus.PASSED, findings))
            hard_failed = failed and number in _HARD_STAGES
        return ValidationReport(self.source, tuple(results), agent_name)


def _pydantic_finding(run: _Run, err: ErrorDetails) -> None:
    loc: Path = tuple(err["loc"])
    kind = err["type"]
    stage = _stage_of(loc)
    field = _dotted(loc)
    fix = _FIELD_FIX.get(field) or _FIELD_FIX.get(_dotted(loc[:1]), "see the agent file format")
    raw_msg = err["msg"].removeprefix("Value error, ")
    value = err.get("input")
    if kind == "missing":
        run.add(stage, "missing_field", f"required field '{field}' is missing",
                _REQUIRED_EXAMPLE.get(field, fix), path=loc)
    elif kind == "invalid_key":
        key = loc[-1]
        run.add(stage, "invalid_key", f"key {key!r} is not text",
                f'remove it, or quote it ("{key}":) if it is a misplaced setting',
                path=(*loc[:-1], str(key)))
    elif kind == "extra_forbidden":
        parent, key = loc[:-1], str(loc[-1])
        known = _known_keys(parent)
        hint = did_you_mean(key, known)
        where = f" in {_dotted(parent)}" if parent else ""
        run.add(stage, "unknown_key", f"unknown key '{key}'{where}",
                (hint + " " if hint else "remove it; ") + "known keys: " + ", ".join(known),
                path=loc)
    elif kind == "enum" and loc == ("resource_limits", "memory_scope"):
        hint = did_you_mean(str(value), ALL_MEMORY_SCOPES)
        run.add(6, "invalid_memory_scope", f"{value!r} is not a memory scope",
                (hint + " " if hint else "") + "use one of: " + ", ".join(ALL_MEMORY_SCOPES),
                path=loc)
    elif loc == ("resource_limits",) and "conversation_limit" in raw_msg:
        run.add(5, "duplicate_setting", raw_msg, "keep only max_conversations",
                path=("resource_limits", "conversation_limit"))
    elif kind == "string_pattern_mismatch" and loc in (("name",), ("version",)):
        what = "an agent name" if loc == ("name",) else "a version such as 1.0.0 or 2.1.0-rc.1"
        run.add(stage, "invalid_value", f"{value!r} is not {what}", fix, path=loc)
    elif kind == "string_type" and loc[:1] == ("version",) and isinstance(value, int | float):
        run.add(stage, "invalid_type", f"version {value!r} is a number, not a string",
                f'quote it: version: "{value}"', path=loc)
    else:
        shown = "" if isinstance(value, dict | list) or repr(value) in raw_msg else f" (got {value!r})"
        run.add(stage, kind if kind != "value_error" else "invalid_value",
                f"{raw_msg}{shown}", fix, path=loc)


def _check_names(
    run: _Run, stage: int, field: str, names: Any, registry: Collection[str], what: str,
) -> None:
    if not isinstance(names, list | tuple):
        return
    known = sorted(registry)
    seen: set[str] = set()
    for i, name in enumerate(names):
        if not isinstance(name, str):
            continue
        if name in seen:
            run.add(stage, f"duplicate_{what}", f"{what} '{name}' is listed twice",
                    "remove the repeated entry", path=(field, i), severity=Severity.WARNING)
            continue
        seen.add(name)
        if name not in registry:
            hint = did_you_mean(name, known)
            listing = ", ".join(known[:20]) + (", …" if len(known) > 20 else "")
            run.add(stage, f"unknown_{what}",
                    f"unknown {what} '{name}'" + (
                        " (this node provides no such tool)" if what == "tool" else
                        " (not in this node's capability registry)"),
                    (hint + " " if hint else "") + f"available: {listing or 'none'}",
                    path=(field, i))


@dataclass(frozen=True, slots=True)
class PipelineResult:
    """Everything one pipeline run produced.

    Attributes:
        report: The seven-stage report.
        config: The typed config, or ``None`` unless the report is ok.
        body: The markdown body (documentation), ``""`` if the file could not be split.
    """

    report: ValidationReport
    config: AgentConfig | None
    body: str


def run_pipeline(
    text: str,
    *,
    source: str = "<string>",
    capabilities: Collection[str] = DEFAULT_CAPABILITIES,
    available_tools: Collection[str] = DEFAULT_TOOLS,
    memory_scopes: Collection[str] = ALL_MEMORY_SCOPES,
) -> PipelineResult:
    """Run all seven stages on an agent file's text.

    Args:
        text: The whole file.
        source: File path or label used in every finding.
        capabilities: The node's capability registry (stage 3).
        available_tools: The tools the node provides (stage 4).
        memory_scopes: Memory scopes the node permits (stage 6).

    Returns:
        The report, the typed config (when valid) and the body.
    """
    started = time.perf_counter()
    run = _Run(source)
    body = ""
    config: AgentConfig | None = None
    agent_name: str | None = None
    data: dict[str, Any] | None = None

    # Stage 1: YAML syntax.
    try:
        front = frontmatter.split(text)
        body = front.body
        data, run.smap = frontmatter.load(front)
    except frontmatter.FrontmatterError as exc:
        run.add(1, "yaml_syntax", exc.message, exc.fix, line=exc.line, column=exc.column)
    if run.smap is not None:
        for path, pos in run.smap.duplicates:
            run.add(1, "duplicate_key", f"key '{_dotted(path)}' appears more than once",
                    "keep one of them; YAML silently uses the last", path=path,
                    line=pos.line, column=pos.column)

    if data is not None and not run.failed(1):
        if isinstance(data.get("name"), str):
            agent_name = data["name"]
        # Stage 2 (and the typed parts of 5, 6, 7): one pydantic pass, errors sorted by stage.
        try:
            config = AgentConfig.model_validate(data)
        except ValidationError as exc:
            for err in exc.errors(include_url=False):
                if err["loc"][:1] == ("parameters",):
                    continue  # stage 5 reports these per key, with lines, below
                _pydantic_finding(run, err)
        # Stage 3 and 4: registry membership.
        _check_names(run, 3, "capabilities", data.get("capabilities"), capabilities, "capability")
        caps = data.get("capabilities")
        if isinstance(caps, list) and not caps:
            run.add(3, "no_capabilities", "the agent declares no capabilities",
                    "list what it offers so it can be found by capability",
                    path=("capabilities",), severity=Severity.WARNING)
        _check_names(run, 4, "tools", data.get("tools"), available_tools, "tool")
        # Stage 5: parameters, key by key.
        _typed, problems = check_parameters(data.get("parameters"))
        for p in problems:
            run.add(5, "invalid_parameter", p.message, p.fix, path=p.path)
        # Stage 6: permitted scopes.
        if config is not None and config.resource_limits.memory_scope.value not in memory_scopes:
            scope = config.resource_limits.memory_scope.value
            run.add(6, "memory_scope_not_permitted",
                    f"memory scope '{scope}' is not permitted on this node",
                    "use one of: " + ", ".join(s for s in ALL_MEMORY_SCOPES if s in memory_scopes),
                    path=("resource_limits", "memory_scope"))
        # Stage 7: templates.
        for field in TEMPLATE_FIELDS:
            src = data.get(field)
            if not isinstance(src, str):
                continue
            info = run.smap.nodes.get((field,)) if run.smap else None
            for tp in check_template(src):
                line = info.content_line + tp.line - 1 if info else None
                run.add(7, f"template_{tp.kind}", tp.message, tp.fix, path=(field,), line=line)

    report = run.report(agent_name)
    if not report.ok:
        config = None
    _log.debug(
        "config_agent.validated",
        source=source,
        agent=agent_name,
        ok=report.ok,
        errors=len(report.errors),
        failed_stage=report.failed_stage,
        duration_ms=round((time.perf_counter() - started) * 1000, 3),
    )
    return PipelineResult(report, config, body)


def validate(
    text: str,
    *,
    source: str = "<string>",
    capabilities: Collection[str] = DEFAULT_CAPABILITIES,
    available_tools: Collection[str] = DEFAULT_TOOLS,
    memory_scopes: Collection[str] = ALL_MEMORY_SCOPES,
) -> ValidationReport:
    """Validate an agent file's text and return the seven-stage report (never raises for bad input).

    Args:
        text: The whole file.
        source: File path or label used in every finding.
        capabilities: The node's capability registry (stage 3).
        available_tools: The tools the node provides (stage 4).
        memory_scopes: Memory scopes the node permits (stage 6).

    Returns:
        The report; ``report.ok`` says whether the file is valid.
    """
    return run_pipeline(text, source=source, capabilities=capabilities,
                        available_tools=available_tools, memory_scopes=memory_scopes).report


def validate_or_raise(
    text: str,
    *,
    source: str = "<string>",
    capabilities: Collection[str] = DEFAULT_CAPABILITIES,
    available_tools: Collection[str] = DEFAULT_TOOLS,
    memory_scopes: Collection[str] = ALL_MEMORY_SCOPES,
) -> AgentConfig:
    """Validate an agent file's text and return its typed config.

    Args:
        text: The whole file.
        source: File path or label used in every finding.
        capabilities: The node's capability registry (stage 3).
        available_tools: The tools the node provides (stage 4).
        memory_scopes: Memory scopes the node permits (stage 6).

    Returns:
        The validated config.

    Raises:
        ValidationFailed: The file is invalid; ``details`` holds every error finding.
    """
    result = run_pipeline(text, source=source, capabilities=capabilities,
                          available_tools=available_tools, memory_scopes=memory_scopes)
    result.report.raise_for_errors()
    assert result.config is not None
    return result.config


__all__ = [
    "ALL_MEMORY_SCOPES",
    "TEMPLATE_FIELDS",
    "PipelineResult",
    "run_pipeline",
    "validate",
    "validate_or_raise",
]
