"""Build the provider an ``llm`` configuration names."""

from __future__ import annotations

import os
from collections.abc import Mapping

from caxton.errors import LLMError
from caxton.llm.config import LLMConfig
from caxton.llm.echo import EchoProvider
from caxton.llm.openai_provider import OpenAIProvider
from caxton.llm.types import LLMProvider


def provider_for(config: LLMConfig | None, *, agent: str | None = None,
                 env: Mapping[str, str] | None = None) -> LLMProvider:
    """Return the provider for an agent's (or the node's) ``llm`` section.

    Args:
        config: The ``llm`` section; ``None`` means the offline ``echo`` default.
        agent: The agent name, used in error messages.
        env: Environment to read the API key from (default ``os.environ``).

    Returns:
        An :class:`EchoProvider` or an :class:`OpenAIProvider`.

    Raises:
        LLMError: ``api_key_env`` names a variable that is not set (or is empty).
    """
    if config is None or config.provider == "echo":
        return EchoProvider()
    api_key: str | None = None
    if config.api_key_env:
        source = os.environ if env is None else env
        api_key = source.get(config.api_key_env) or None
        if api_key is None:
            who = f"agent {agent!r}" if agent else "the node"
            raise LLMError(
                f"environment variable {config.api_key_env} (llm.api_key_env of {who}) is not "
                f"set; export {config.api_key_env}=<key> in the node's environment, or remove "
                f"api_key_env for endpoints that need no key (Ollama, llama.cpp)",
                details=[{"field": "llm.api_key_env", "variable": config.api_key_env}],
            )
    return OpenAIProvider(config, api_key=api_key)


__all__ = ["provider_for"]
