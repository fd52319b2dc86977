"""A tool: a named function with a JSON-Schema-typed argument object."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

ToolFunction = Callable[[dict[str, Any], float], Any]
"""A tool's implementation: ``func(arguments, timeout_seconds) -> JSON-serialisable result``.

``arguments`` has already been validated against the tool's schema; ``timeout_seconds`` is the
time the caller will wait, which a tool doing I/O should pass on to its own timeouts.
"""


@dataclass(frozen=True)
class Tool:
    """A tool an agent (or its model) can call.

    Attributes:
        name: Unique tool name, as agent files list it under ``tools``.
        description: One or two sentences the model reads to decide when to call it.
        parameters: JSON Schema of the argument object (an ``object`` schema).
        func: The implementation.
    """

    name: str
    description: str
    parameters: Mapping[str, Any]
    func: ToolFunction = field(repr=False, compare=False)

    def definition(self) -> dict[str, Any]:
        """Return the tool in the OpenAI ``tools`` format (``{"type": "function", ...}``)."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": dict(self.parameters),
            },
        }


__all__ = ["Tool", "ToolFunction"]
