"""The ``echo`` provider: offline, deterministic, no model.

It answers with the rendered user prompt verbatim, so the whole pipeline — template,
memory, reply — is visible without a model. What the agent recalled from memory comes back in
the reply's separate ``memory_context`` field (``shows_recall``), so the reply text does not
grow with memory (which holds earlier replies).

Exercising tools offline: put a marker in the request (and so in the rendered prompt)::

    [[tool:csv_parser {"text": "a,b\\n1,2"}]]

Each marker ``[[tool:NAME {json object}]]`` (the JSON may be omitted: ``[[tool:NAME]]``) becomes
one tool call, in order, on the first turn. On the next turn (tool results present) the echo
provider answers with the prompt followed by ``Tool results:`` and one ``- NAME: RESULT`` line
per result. Markers are honoured whether or not the tool is offered, so the engine's refusal
path (undeclared tool) can be exercised too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from caxton.llm.types import ChatMessage, LLMResponse, ToolCall, ToolSchema

_DECODER = json.JSONDecoder()
_MARKER = re.compile(r"\[\[tool:(?P<name>[A-Za-z0-9_\-]+)\s*")


def parse_tool_markers(text: str) -> list[ToolCall]:
    """Find ``[[tool:NAME {json}]]`` markers in ``text``.

    Args:
        text: The prompt.

    Returns:
        One :class:`ToolCall` per well-formed marker, ids ``echo_1``, ``echo_2`` …; a marker
        whose JSON is broken yields a call carrying ``error``.
    """
    calls: list[ToolCall] = []
    pos = 0
    decoder = _DECODER
    while (m := _MARKER.search(text, pos)) is not None:
        name, rest = m.group("name"), m.end()
        call_id = f"echo_{len(calls) + 1}"
        if text.startswith("]]", rest):
            calls.append(ToolCall(call_id, name, {}, "{}"))
            pos = rest + 2
            continue
        try:
            value, end = decoder.raw_decode(text, rest)
        except json.JSONDecodeError as exc:
            calls.append(ToolCall(call_id, name, {}, text[rest:rest + 200],
                                  f"arguments are not valid JSON: {exc}"))
            pos = rest
            continue
        end_marker = text.find("]]", end)
        pos = end if end_marker < 0 else end_marker + 2
        calls.append(ToolCall.parse(call_id, name, json.dumps(value)
                                    if isinstance(value, dict) else text[rest:end]))
    return calls


def _content(message: ChatMessage) -> str:
    value = message.get("content")
    return value if isinstance(value, str) else ("" if value is None else json.dumps(value))


class EchoProvider:
    """The offline default provider (see the module docstring)."""

    name = "echo"
    immediate = True
    """Answers at once, so a config agent runs it inline (no hop to the I/O loop)."""
    shows_recall = True
    """The reply carries the recalled memory in its own ``memory_context`` field (the reply
    text itself does not grow with memory)."""

    async def acomplete(self, messages: Sequence[ChatMessage], tools: Sequence[ToolSchema] = (),
                        timeout: float | None = None) -> LLMResponse:
        """The same as :meth:`complete`."""
        return self.complete(messages, tools, timeout)

    def complete(self, messages: Sequence[ChatMessage], tools: Sequence[ToolSchema] = (),
                 timeout: float | None = None) -> LLMResponse:
        """Echo the last user message, or request the tools its markers name.

        Args:
            messages: The conversation.
            tools: Ignored (markers decide).
            timeout: Ignored (the echo provider answers at once).

        Returns:
            The deterministic turn.
        """
        last_user = -1
        for i, m in enumerate(messages):
            if m.get("role") == "user":
                last_user = i
        prompt = _content(messages[last_user]) if last_user >= 0 else ""
        after = list(messages[last_user + 1:])
        results = [m for m in after if m.get("role") == "tool"]
        if results:
            names: dict[str, str] = {}
            for m in after:
                for c in m.get("tool_calls") or []:
                    names[str(c.get("id"))] = str(c.get("function", {}).get("name"))
            lines = [f"- {names.get(str(m.get('tool_call_id')), m.get('name', '?'))}: "
                     f"{_content(m)}" for m in results]
            return LLMResponse(prompt + "\n\nTool results:\n" + "\n".join(lines),
                               finish_reason="stop", model="echo")
        if not after:
            calls = parse_tool_markers(prompt)
            if calls:
                return LLMResponse("", tuple(calls), finish_reason="tool_calls", model="echo")
        return LLMResponse(prompt, finish_reason="stop", model="echo")

    def close(self) -> None:
        """Nothing to release."""




__all__ = ["EchoProvider", "parse_tool_markers"]
