"""Configuration agents: the file format, the seven-stage validation pipeline, prompt templates.

Typical use::

    parsed = load_agent("agents/data-processor.md", available_tools=node_tools)
    if not parsed.ok:
        print(parsed.report.format(detailed=True))
    config = parsed.unwrap()             # raises ValidationFailed when invalid
    prompt = parsed.prompts.render_user(request, memory_context)
"""

from caxton.config_agents.hints import close_matches, did_you_mean
from caxton.config_agents.loader import (
    ParsedAgent,
    agent_variable,
    build_prompts,
    load_agent,
    parse_agent,
)
from caxton.config_agents.parameters import (
    ParameterError,
    ParameterProblem,
    check_parameters,
    typed_parameters,
    unit_kind,
)
from caxton.config_agents.registry import DEFAULT_CAPABILITIES, DEFAULT_TOOLS
from caxton.config_agents.report import (
    STAGES,
    Finding,
    Severity,
    StageResult,
    StageStatus,
    ValidationReport,
)
from caxton.config_agents.schema import (
    DEFAULT_USER_PROMPT,
    DEFAULT_VERSION,
    AgentConfig,
    MemoryScope,
    ResourceLimits,
    name_key,
)
from caxton.config_agents.templates import (
    TEMPLATE_VARIABLES,
    AgentPrompts,
    PromptTemplate,
    TemplateProblem,
    TemplateRenderError,
    check_template,
)
from caxton.config_agents.validation import (
    ALL_MEMORY_SCOPES,
    PipelineResult,
    run_pipeline,
    validate,
    validate_or_raise,
)

__all__ = [
    "ALL_MEMORY_SCOPES",
    "DEFAULT_CAPABILITIES",
    "DEFAULT_TOOLS",
    "DEFAULT_USER_PROMPT",
    "DEFAULT_VERSION",
    "STAGES",
    "TEMPLATE_VARIABLES",
    "AgentConfig",
    "AgentPrompts",
    "Finding",
    "MemoryScope",
    "ParameterError",
    "ParameterProblem",
    "ParsedAgent",
    "PipelineResult",
    "PromptTemplate",
    "ResourceLimits",
    "Severity",
    "StageResult",
    "StageStatus",
    "TemplateProblem",
    "TemplateRenderError",
    "ValidationReport",
    "agent_variable",
    "build_prompts",
    "check_parameters",
    "check_template",
    "close_matches",
    "did_you_mean",
    "load_agent",
    "name_key",
    "parse_agent",
    "run_pipeline",
    "typed_parameters",
    "unit_kind",
    "validate",
    "validate_or_raise",
]
