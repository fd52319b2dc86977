"""Entry points that turn an agent file (path or text) into a typed, checked agent definition."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from caxton.config_agents.registry import DEFAULT_CAPABILITIES, DEFAULT_TOOLS
from caxton.config_agents.report import Finding, StageResult, StageStatus, ValidationReport
from caxton.config_agents.schema import AgentConfig
from caxton.config_agents.templates import AgentPrompts
from caxton.config_agents.validation import ALL_MEMORY_SCOPES, run_pipeline


@dataclass(frozen=True, slots=True)
class ParsedAgent:
    """An agent file after the validation pipeline.

    Attributes:
        source: File path or label used in findings.
        text: The file's full text.
        digest: SHA-256 of ``text`` (hex) — cheap change detection for reload and watch.
        report: The seven-stage report.
        config: The typed config, ``None`` unless ``report.ok``.
        body: The markdown after the frontmatter: the agent's documentation.
        prompts: Compiled prompt templates with ``agent`` and ``parameters`` bound, ``None``
            unless ``report.ok``.
    """

    source: str
    text: str
    digest: str
    report: ValidationReport
    config: AgentConfig | None
    body: str
    prompts: AgentPrompts | None

    @property
    def ok(self) -> bool:
        """True when the file passed validation."""
        return self.report.ok

    @property
    def documentation(self) -> str:
        """The markdown body (alias of ``body``)."""
        return self.body

    def unwrap(self) -> AgentConfig:
        """Return the config, or raise the validation failure.

        Returns:
            The typed config.

        Raises:
            ValidationFailed: The file is invalid; ``details`` lists every error finding.
        """
        self.report.raise_for_errors()
        assert self.config is not None
        return self.config


def agent_variable(config: AgentConfig) -> dict[str, object]:
    """Return the ``agent`` template variable for a config.

    Args:
        config: A validated config.

    Returns:
        ``{"name", "version", "capabilities", "tools", "memory_scope"}``.
    """
    return {
        "name": config.name,
        "version": config.version,
        "capabilities": list(config.capabilities),
        "tools": list(config.tools),
        "memory_scope": config.resource_limits.memory_scope.value,
    }


def build_prompts(config: AgentConfig) -> AgentPrompts:
    """Compile a validated config's templates with its static variables bound.

    Args:
        config: A validated config.

    Returns:
        The compiled prompts.

    Raises:
        ValidationFailed: A template is invalid (cannot happen for a config that passed
            validation).
    """
    return AgentPrompts(config.system_prompt, config.user_prompt_template,
                        agent=agent_variable(config), parameters=config.parameters)


def parse_agent(
    text: str,
    *,
    source: str = "<string>",
    capabilities: Collection[str] = DEFAULT_CAPABILITIES,
    available_tools: Collection[str] = DEFAULT_TOOLS,
    memory_scopes: Collection[str] = ALL_MEMORY_SCOPES,
) -> ParsedAgent:
    """Parse and validate an agent file's text. Never raises for bad input: see ``report``.

    Args:
        text: The whole file.
        source: File path or label used in every finding.
        capabilities: The node's capability registry (stage 3).
        available_tools: The tools the node provides (stage 4).
        memory_scopes: Memory scopes the node permits (stage 6).

    Returns:
        The parsed agent; call ``.unwrap()`` for the config or an exception.
    """
    result = run_pipeline(text, source=source, capabilities=capabilities,
                          available_tools=available_tools, memory_scopes=memory_scopes)
    prompts = build_prompts(result.config) if result.config is not None else None
    return ParsedAgent(
        source=source,
        text=text,
        digest=hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest(),
        report=result.report,
        config=result.config,
        body=result.body,
        prompts=prompts,
    )


def load_agent(
    path: str | os.PathLike[str],
    *,
    capabilities: Collection[str] = DEFAULT_CAPABILITIES,
    available_tools: Collection[str] = DEFAULT_TOOLS,
    memory_scopes: Collection[str] = ALL_MEMORY_SCOPES,
) -> ParsedAgent:
    """Read, parse and validate an agent file. An unreadable file is a stage-1 finding.

    Args:
        path: The ``.md`` file.
        capabilities: The node's capability registry (stage 3).
        available_tools: The tools the node provides (stage 4).
        memory_scopes: Memory scopes the node permits (stage 6).

    Returns:
        The parsed agent (``source`` is ``str(path)``).
    """
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        finding = Finding(stage=1, code="unreadable", message=f"cannot read the file: {reason}",
                          fix="check the path exists, is a file, is readable and is UTF-8 text",
                          file=source)
        stages = (StageResult(1, StageStatus.FAILED, (finding,)),
                  *(StageResult(n, StageStatus.SKIPPED) for n in range(2, 8)))
        return ParsedAgent(source, "", "", ValidationReport(source, stages), None, "", None)
    return parse_agent(text, source=source, capabilities=capabilities,
                       available_tools=available_tools, memory_scopes=memory_scopes)


__all__ = ["ParsedAgent", "agent_variable", "build_prompts", "load_agent", "parse_agent"]
