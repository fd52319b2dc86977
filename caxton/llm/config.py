"""The ``llm`` section of a configuration agent (and the node's default provider settings)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class LLMConfig(BaseModel):
    """Which LLM provider an agent uses and how to reach it.

    Attributes:
        provider: ``echo`` (offline, deterministic; the default) or ``openai`` (any
            OpenAI-compatible chat-completions endpoint: OpenAI, Ollama, vLLM, llama.cpp).
        model: Model name sent to the endpoint.
        base_url: Endpoint base URL, e.g. ``http://127.0.0.1:11434/v1``.
        api_key_env: Name of the environment variable holding the API key (never the key).
        timeout: Seconds to wait for one completion request.
        max_retries: Retries after a timeout, connection error or 5xx/429 reply.
        temperature: Sampling temperature passed to the endpoint.
        max_tool_rounds: How many model → tool → model rounds one message may take.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: Literal["echo", "openai"] = "echo"
    model: str = "gpt-4o-mini"
    base_url: str = "http://127.0.0.1:11434/v1"
    api_key_env: str | None = None
    timeout: float = Field(default=30.0, gt=0)
    max_retries: int = Field(default=2, ge=0, le=10)
    temperature: float = Field(default=0.0, ge=0, le=2)
    max_tool_rounds: int = Field(default=4, ge=1, le=32)


__all__ = ["LLMConfig"]
