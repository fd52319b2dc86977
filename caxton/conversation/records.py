"""The values of one config-agent message: limits, tool-call records, the reply."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from caxton.errors import InvalidArgument

MAX_TOOL_RESULT_CHARS = 16_000
"""Tool results fed back to the model are cut to this many characters."""

@dataclass(frozen=True)
class ConversationLimits:
    """The per-message limits of a configuration agent.

    Attributes:
        response_timeout: Seconds one message may take in total (``resource_limits``).
        tool_call_timeout: Seconds one tool call may take (``resource_limits``).
        max_tool_rounds: Rounds of model → tools → model (``llm.max_tool_rounds``).
    """

    response_timeout: float = 30.0
    tool_call_timeout: float = 10.0
    max_tool_rounds: int = 4

    def __post_init__(self) -> None:
        if self.response_timeout <= 0 or self.tool_call_timeout <= 0:
            raise InvalidArgument("response_timeout and tool_call_timeout must be positive")
        if self.max_tool_rounds < 0:
            raise InvalidArgument("max_tool_rounds must be 0 or more")


@dataclass(frozen=True)
class ToolCallRecord:
    """One tool call made while processing a message.

    Attributes:
        id: The call id (the model's, ``direct`` for structured requests).
        name: Tool name.
        arguments: Arguments passed.
        ok: Whether the tool returned a result.
        result: The result (when ``ok``).
        error: The error message (when not ``ok``).
        error_code: The typed error code (``TOOL_ERROR``, ``TOOL_NOT_DECLARED`` ...).
        duration_ms: Wall time of the call.
        round: Which model round asked for it (0 for a direct call).
    """

    id: str
    name: str
    arguments: Mapping[str, Any]
    ok: bool
    result: Any = None
    error: str | None = None
    error_code: str | None = None
    duration_ms: float = 0.0
    round: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Return the record as a plain map (for reply content and logs)."""
        out: dict[str, Any] = {"id": self.id, "name": self.name,
                               "arguments": dict(self.arguments), "ok": self.ok,
                               "duration_ms": self.duration_ms, "round": self.round}
        if self.ok:
            out["result"] = self.result
        else:
            out["error"] = self.error
            out["error_code"] = self.error_code
        return out


@dataclass(frozen=True)
class ConversationReply:
    """The outcome of one message.

    Attributes:
        content: The reply text (for a direct tool call: the result as JSON text).
        tool_calls: Every tool call made, in order.
        rounds: How many times the model was called (0 for a direct tool call).
        direct: Whether the request was a structured tool call run without the model.
        tool_result: The tool's result, for a direct tool call.
        new_messages: Messages to append to the conversation history (user turn, assistant
            turns, tool results).
        memory_error: Why storing to memory failed (the reply is still valid), or ``None``.
        duration_ms: Wall time of the whole message.
        memory_context: What was recalled from memory, when the provider shows it (``echo``).
    """

    content: str
    tool_calls: tuple[ToolCallRecord, ...] = ()
    rounds: int = 0
    direct: bool = False
    tool_result: Any = None
    new_messages: tuple[Mapping[str, Any], ...] = ()
    memory_error: str | None = None
    duration_ms: float = 0.0
    memory_context: str | None = None

    def to_content(self) -> dict[str, Any]:
        """Return the reply as message content (msgpack/JSON-serialisable)."""
        out: dict[str, Any] = {"reply": self.content,
                               "tool_calls": [c.to_dict() for c in self.tool_calls],
                               "rounds": self.rounds}
        if self.direct:
            out["tool_result"] = self.tool_result
        if self.memory_error:
            out["memory_error"] = self.memory_error
        if self.memory_context is not None:
            out["memory_context"] = self.memory_context
        return out


@dataclass(frozen=True)
class DirectToolCall:
    """A request that names a tool to run directly.

    Attributes:
        tool: Tool name.
        arguments: Argument object.
    """

    tool: str
    arguments: dict[str, Any] = field(default_factory=dict)


def parse_direct_tool_call(content: Any) -> DirectToolCall | None:
    """Recognise ``{"tool": name, "arguments": {...}}`` (a map, or JSON text of one).

    Args:
        content: The request content.

    Returns:
        The call, or ``None`` when the content is not exactly that shape (only the keys
        ``tool`` and, optionally, ``arguments`` with an object value).
    """
    if isinstance(content, str):
        text = content.strip()
        if not (text.startswith("{") and '"tool"' in text):
            return None
        try:
            content = json.loads(text)
        except json.JSONDecodeError:
            return None
    if not isinstance(content, Mapping) or not isinstance(content.get("tool"), str):
        return None
    if set(content) - {"tool", "arguments"}:
        return None
    args = content.get("arguments", {})
    if not isinstance(args, Mapping):
        return None
    return DirectToolCall(content["tool"], dict(args))


def text_of(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return repr(value)


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"



__all__ = ["MAX_TOOL_RESULT_CHARS", "ConversationLimits", "ConversationReply", "DirectToolCall",
           "ToolCallRecord", "clip", "parse_direct_tool_call", "text_of"]
