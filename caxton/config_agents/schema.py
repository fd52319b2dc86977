"""Pydantic models of a configuration agent's YAML frontmatter.

The shape is exactly the operations guide's::

    name: DataProcessor            # required
    version: "1.0.0"               # optional, default "1.0.0"
    capabilities: [data-processing] # required (may be empty)
    tools: [http_client]           # required (may be empty)
    parameters: {timeout: "30s"}   # optional, see caxton.config_agents.parameters
    resource_limits:               # optional, every key has a default
      memory_scope: workspace      # agent | workspace | global   (default agent)
      max_conversations: 100       # alias: conversation_limit     (default 100)
      max_memory_entities: 10000   #                               (default 10000)
      response_timeout: "30s"      #                               (default 30s)
      tool_call_timeout: "10s"     #                               (default 10s)
    system_prompt: |               # optional Jinja2 template, default ""
    user_prompt_template: |        # optional Jinja2 template, default "{{ request }}"
    llm: {provider: echo}          # optional LLMConfig; absent = the node's default

Unknown keys are errors. Models are frozen: a reload builds a new config.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any, Final

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    Strict,
    field_serializer,
    field_validator,
    model_validator,
)

from caxton.config_agents.parameters import typed_parameters
from caxton.llm.config import LLMConfig
from caxton.units import ByteSize, Duration, UnitError, parse_duration

NAME_PATTERN: Final = r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$"
VERSION_PATTERN: Final = r"^\d+(\.\d+){0,2}([-+][0-9A-Za-z.+-]+)?$"
DEFAULT_VERSION: Final = "1.0.0"
DEFAULT_USER_PROMPT: Final = "{{ request }}"


class MemoryScope(StrEnum):
    """Which part of the embedded memory an agent may read and write."""

    AGENT = "agent"
    WORKSPACE = "workspace"
    GLOBAL = "global"


def _positive_duration(value: Any) -> Duration:
    d = parse_duration(value)
    if d <= 0:
        raise UnitError(f"invalid duration {value!r}: must be greater than zero")
    return d


PositiveDuration = Annotated[
    Duration,
    PlainValidator(_positive_duration),
    PlainSerializer(str, return_type=str),
]
"""A duration > 0, parsed from ``"30s"`` etc., serialised back in canonical form."""

StrictPositiveInt = Annotated[int, Strict(), Field(ge=1)]


class ResourceLimits(BaseModel):
    """A configuration agent's ``resource_limits`` section.

    Attributes:
        memory_scope: Memory boundary (``agent``, ``workspace`` or ``global``).
        max_conversations: Concurrent conversations allowed (file alias ``conversation_limit``).
        max_memory_entities: Entities the agent may hold in memory.
        response_timeout: Deadline for one reply: render, model rounds and tools together.
        tool_call_timeout: Deadline for one tool call.
        max_concurrent_requests: Messages *without* a ``conversation_id`` processed at once
            (they open no conversation); past it a message is refused with ``BUSY``.
        conversation_idle_timeout: Idle time after which an open conversation is closed.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    memory_scope: MemoryScope = MemoryScope.AGENT
    max_conversations: StrictPositiveInt = Field(
        default=100, validation_alias=AliasChoices("max_conversations", "conversation_limit")
    )
    max_memory_entities: StrictPositiveInt = 10_000
    response_timeout: PositiveDuration = Duration(30.0)
    tool_call_timeout: PositiveDuration = Duration(10.0)
    max_concurrent_requests: StrictPositiveInt = 256
    conversation_idle_timeout: PositiveDuration = Duration(1800.0)

    @model_validator(mode="before")
    @classmethod
    def _one_conversation_key(cls, data: Any) -> Any:
        if isinstance(data, dict) and "max_conversations" in data and "conversation_limit" in data:
            raise ValueError(
                "both max_conversations and conversation_limit are set; they are the same "
                "setting, keep only one"
            )
        return data


class AgentConfig(BaseModel):
    """The validated frontmatter of a configuration agent.

    Attributes:
        name: Agent name (letter first, then letters, digits, ``_ . -``; ≤ 64 chars).
        version: Version string such as ``"1.0.0"``.
        capabilities: Capabilities the agent offers (names from the node's registry).
        tools: Tools the agent may call (names of tools the node provides).
        parameters: Free-form settings; unit-named ones typed (see ``parameters`` module).
        resource_limits: Memory scope, conversation and entity limits, timeouts.
        system_prompt: Jinja2 template of the system prompt.
        user_prompt_template: Jinja2 template rendered for each message.
        llm: Provider settings; ``None`` means the node's default provider.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Strict(), Field(pattern=NAME_PATTERN)]
    version: Annotated[str, Strict(), Field(pattern=VERSION_PATTERN)] = DEFAULT_VERSION
    capabilities: tuple[Annotated[str, Strict(), Field(min_length=1)], ...]
    tools: tuple[Annotated[str, Strict(), Field(min_length=1)], ...]
    parameters: dict[str, Any] = Field(default_factory=dict)
    resource_limits: ResourceLimits = Field(default_factory=ResourceLimits)
    system_prompt: Annotated[str, Strict()] = ""
    user_prompt_template: Annotated[str, Strict()] = DEFAULT_USER_PROMPT
    llm: LLMConfig | None = None

    @field_validator("parameters", mode="before")
    @classmethod
    def _typed_parameters(cls, value: Any) -> dict[str, Any]:
        return typed_parameters(value)

    @field_serializer("parameters")
    def _parameters_as_written(self, value: dict[str, Any]) -> dict[str, Any]:
        # Durations and sizes serialise in their canonical text form so a dump re-validates.
        return {k: str(v) if isinstance(v, Duration | ByteSize) else v for k, v in value.items()}

    @field_validator("capabilities", "tools", mode="before")
    @classmethod
    def _list_not_scalar(cls, value: Any) -> Any:
        if isinstance(value, str):
            raise ValueError("must be a list, e.g. [a, b] or one '- item' per line")
        if value is None:
            raise ValueError("is empty; list the names, or write [] for none")
        return value

    @field_validator("resource_limits", mode="before")
    @classmethod
    def _empty_section(cls, value: Any) -> Any:
        return {} if value is None else value

    @property
    def key(self) -> str:
        """The name in its canonical CLI form (see :func:`name_key`)."""
        return name_key(self.name)


_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def name_key(name: str) -> str:
    """Return the canonical lookup key of an agent name: kebab-case, lower case.

    The operations guide deploys ``name: DataProcessor`` and then addresses it as
    ``data-processor``; both spellings (and ``data_processor``) map to the same key.

    Args:
        name: An agent name.

    Returns:
        The key, e.g. ``"data-processor"``.
    """
    return re.sub(r"[-_.\s]+", "-", _CAMEL.sub("-", name.strip())).strip("-").lower()


__all__ = [
    "DEFAULT_USER_PROMPT",
    "DEFAULT_VERSION",
    "NAME_PATTERN",
    "VERSION_PATTERN",
    "AgentConfig",
    "MemoryScope",
    "PositiveDuration",
    "ResourceLimits",
    "name_key",
]
