"""The configuration agent actor: one pykka actor per running config-agent version.

Per message: a direct tool call (``{"tool": name, "arguments": {...}}``) runs the tool at
once; anything else renders the prompt templates with the agent's memory context and the
conversation so far, and goes through :func:`caxton.conversation.process_message` (model, tool
calls under ``tool_call_timeout``, memory), bounded by ``response_timeout``. Errors are typed and
go back to the caller; they never crash the agent, because a bad request is not a bad agent.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import pykka
import structlog

from caxton import errors
from caxton.config_agents import AgentConfig, AgentPrompts
from caxton.conversation import (
    ConversationLimits,
    ConversationTracker,
    parse_direct_tool_call,
    process_message,
)
from caxton.llm import LLMProvider
from caxton.memory import MemoryHandle
from caxton.messages import Message
from caxton.tools import AgentToolView
from supervisors import Supervised

_log = structlog.get_logger("caxton.config_agent")


@dataclass(frozen=True)
class ConfigInstanceSpec:
    """Everything one config-agent version instance runs with.

    The tracker and memory handle are shared across versions and restarts of the same agent,
    so a hot reload keeps conversations and memory.

    Attributes:
        agent: Agent name.
        version: Version label.
        config: The validated agent file.
        prompts: Its compiled prompt templates.
        provider: Its LLM provider.
        tools: Its declared-tool view.
        memory: Its memory handle (``None``: no memory).
        tracker: Its open conversations.
    """

    agent: str
    version: str
    config: AgentConfig
    prompts: AgentPrompts
    provider: LLMProvider
    tools: AgentToolView
    memory: MemoryHandle | None
    tracker: ConversationTracker

    @property
    def limits(self) -> ConversationLimits:
        """The per-message limits from the file's ``resource_limits`` and ``llm``."""
        rl = self.config.resource_limits
        rounds = self.config.llm.max_tool_rounds if self.config.llm else 4
        return ConversationLimits(float(rl.response_timeout), float(rl.tool_call_timeout), rounds)


class ConfigAgentActor(Supervised, pykka.ThreadingActor):
    """A running configuration-agent version instance.

    Args:
        spec: What to run.
    """

    def __init__(self, spec: ConfigInstanceSpec) -> None:
        super().__init__()
        self.spec = spec
        self._limits = spec.limits
        self._started = time.monotonic()
        self._handled = 0
        self._errors = 0

    def on_receive(self, message: Any) -> Any:
        """Handle one agent message.

        Args:
            message: A :class:`Message`.

        Returns:
            The reply message: content ``{"reply": text, "tool_calls": [...], ...}``.

        Raises:
            CaxtonError: Typed errors (conversation limit, timeout, tool, LLM).
        """
        if not isinstance(message, Message):
            raise errors.InvalidArgument(
                f"config agent {self.spec.agent!r} got a {type(message).__name__}, not a Message"
            )
        spec = self.spec
        try:
            with spec.tracker.begin(message.conversation_id) as slot:
                if parse_direct_tool_call(message.content) is not None:
                    user_prompt = system_prompt = ""
                else:
                    query = message.content if isinstance(message.content, str) else str(
                        message.content)
                    context = spec.memory.memory_context(query) if spec.memory else ""
                    history = tuple(slot.history)
                    user_prompt = spec.prompts.render_user(
                        message.content, memory_context=context, conversation=history)
                    system_prompt = spec.prompts.render_system(
                        message.content, memory_context=context, conversation=history)
                reply = process_message(
                    agent=spec.agent,
                    user_prompt=user_prompt,
                    request=message.content,
                    provider=spec.provider,
                    tools=spec.tools,
                    memory=spec.memory,
                    limits=self._limits,
                    system_prompt=system_prompt,
                    history=slot.history,
                    conversation_id=message.conversation_id,
                )
                slot.append(reply.new_messages)
        except errors.CaxtonError:
            self._errors += 1
            raise
        self._handled += 1
        return message.reply(reply.to_content(), sender=spec.agent)

    def stats(self) -> dict[str, Any]:
        """Return the instance's counters (handled, errors, open conversations, uptime)."""
        return {
            "handled": self._handled,
            "errors": self._errors,
            "open_conversations": self.spec.tracker.open_count(),
            "uptime": time.monotonic() - self._started,
        }
