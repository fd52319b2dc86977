"""A tool: a named function with a JSON-Schema-typed argument object."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

ToolFunction = Callable[[dict[str, Any], float], Any] | Callable[
    [dict[str, Any], float], Awaitable[Any]]
"""A tool's implementation: ``func(arguments, timeout_seconds) -> JSON-serialisable result``.

``arguments`` has already been validated against the tool's schema; ``timeout_seconds`` is the
time the caller will wait. Where it runs depends on its kind:

* a plain function **computes**: it runs in a tenant worker process
  (:mod:`caxton.tenant.pool`), so it must be a module-level function (it is pickled by
  reference); past its timeout its worker is killed, so it really stops;
* a coroutine function **waits** (network I/O): it runs on the node's I/O loop and must not
  compute anything heavy; past its timeout it is cancelled.
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

    @property
    def is_async(self) -> bool:
        """Whether it is an I/O tool (a coroutine function run on the I/O loop)."""
        return inspect.iscoroutinefunction(self.func)

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
