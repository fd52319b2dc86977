"""LLM providers behind one small interface.

``provider_for(LLMConfig)`` returns an :class:`EchoProvider` (offline default) or an
:class:`OpenAIProvider`; both implement :class:`LLMProvider.complete`. Test servers live in
``caxton.llm.testing``.
"""

from caxton.llm.config import LLMConfig
from caxton.llm.echo import EchoProvider, parse_tool_markers
from caxton.llm.factory import provider_for
from caxton.llm.openai_provider import OpenAIProvider
from caxton.llm.types import (
    ChatMessage,
    LLMProvider,
    LLMResponse,
    ToolCall,
    ToolSchema,
    tool_definition,
)

__all__ = [
    "ChatMessage",
    "EchoProvider",
    "LLMConfig",
    "LLMProvider",
    "LLMResponse",
    "OpenAIProvider",
    "ToolCall",
    "ToolSchema",
    "parse_tool_markers",
    "provider_for",
    "tool_definition",
]
