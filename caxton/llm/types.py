"""The provider interface: chat messages in, text and tool calls out.

Messages use the OpenAI chat format (``{"role": "system"|"user"|"assistant"|"tool", ...}``)
because every supported endpoint speaks it; the echo provider reads the same shape.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

ChatMessage = Mapping[str, Any]
"""One chat message in OpenAI format, e.g. ``{"role": "user", "content": "hi"}``."""


@runtime_checkable
class ToolSchema(Protocol):
    """What a provider needs to offer a tool to the model (:class:`caxton.tools.Tool` fits)."""

    @property
    def name(self) -> str:
        """Tool name."""
        ...

    @property
    def description(self) -> str:
        """What the tool does."""
        ...

    @property
    def parameters(self) -> Mapping[str, Any]:
        """JSON Schema of the argument object."""
        ...


def tool_definition(tool: ToolSchema) -> dict[str, Any]:
    """Return ``tool`` in the chat-completions ``tools`` format.

    Args:
        tool: Any object with ``name``, ``description`` and ``parameters``.

    Returns:
        ``{"type": "function", "function": {"name", "description", "parameters"}}``.
    """
    return {"type": "function", "function": {"name": tool.name,
                                             "description": tool.description,
                                             "parameters": dict(tool.parameters)}}


@dataclass(frozen=True)
class ToolCall:
    """A tool call the model asks for.

    Attributes:
        id: The call id (echoed back in the ``tool`` result message).
        name: Tool name.
        arguments: Parsed argument object (``{}`` when unparseable; see ``error``).
        raw_arguments: The arguments exactly as the model sent them (JSON text).
        error: Why the arguments could not be used, or ``None``.
    """

    id: str
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    raw_arguments: str = "{}"
    error: str | None = None

    @classmethod
    def parse(cls, id: str, name: str, raw: Any) -> ToolCall:
        """Build a call from the wire form, keeping unparseable arguments as an error.

        Args:
            id: Call id.
            name: Tool name.
            raw: JSON text (OpenAI) or an already-decoded object (some servers).

        Returns:
            The call.
        """
        if isinstance(raw, Mapping):
            return cls(id, name, dict(raw), json.dumps(raw))
        text = "" if raw is None else str(raw)
        try:
            value = json.loads(text) if text.strip() else {}
        except json.JSONDecodeError as exc:
            return cls(id, name, {}, text, f"arguments are not valid JSON: {exc}")
        if not isinstance(value, dict):
            return cls(id, name, {}, text, "arguments must be a JSON object")
        return cls(id, name, value, text)


@dataclass(frozen=True)
class LLMResponse:
    """One model turn.

    Attributes:
        content: The assistant text (``""`` when the turn only calls tools).
        tool_calls: Tool calls requested, in order.
        finish_reason: As reported by the endpoint (``stop``, ``tool_calls``, ``length`` ...).
        model: The model that answered.
        usage: Token counts when the endpoint reports them.
    """

    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: str | None = None
    model: str | None = None
    usage: Mapping[str, Any] = field(default_factory=dict)

    def assistant_message(self) -> dict[str, Any]:
        """Return this turn as the ``assistant`` message to append to the history."""
        msg: dict[str, Any] = {"role": "assistant", "content": self.content or None}
        if self.tool_calls:
            msg["tool_calls"] = [
                {"id": c.id, "type": "function",
                 "function": {"name": c.name, "arguments": c.raw_arguments}}
                for c in self.tool_calls
            ]
        return msg


class LLMProvider(Protocol):
    """The small interface every provider implements.

    Attributes:
        name: The provider name (``echo``, ``openai``).
        immediate: ``True`` when :meth:`complete` answers at once without I/O (it then runs
            inline on the agent's turn); ``False`` when it waits on the network, so config
            agents run :meth:`acomplete` on the node's I/O loop.
    """

    name: str
    immediate: bool

    async def acomplete(self, messages: Sequence[ChatMessage], tools: Sequence[ToolSchema] = (),
                        timeout: float | None = None) -> LLMResponse:
        """Ask the model for its next turn (the coroutine :meth:`complete` waits for)."""
        ...

    def complete(self, messages: Sequence[ChatMessage], tools: Sequence[ToolSchema] = (),
                 timeout: float | None = None) -> LLMResponse:
        """Ask the model for its next turn.

        Args:
            messages: The conversation so far (system, user, assistant, tool messages).
            tools: Tools the model may call.
            timeout: Seconds this call may take in total, retries included
                (``None``: the provider's own limit).

        Returns:
            The model's turn.

        Raises:
            caxton.errors.LLMError: The endpoint failed after retries or refused the request.
            caxton.errors.Timeout: ``timeout`` ran out.
        """
        ...

    def close(self) -> None:
        """Release connections."""
        ...


__all__ = ["ChatMessage", "LLMProvider", "LLMResponse", "ToolCall", "ToolSchema",
           "tool_definition"]
