"""Memory scopes: which partition of the store a handle may see.

A scope names a partition of the shared store:

* ``agent`` — private to one agent (partition owner: the agent name);
* ``workspace`` — shared by every agent of one workspace (owner: the workspace name);
* ``global`` — shared by every agent on the node (owner: the empty string).

A :class:`MemoryHandle <caxton.memory.handle.MemoryHandle>` is bound to exactly one partition;
asking it for another one raises :class:`~caxton.errors.MemoryScopeViolation`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from caxton.errors import InvalidArgument


class MemoryScope(StrEnum):
    """The three memory scopes of a configuration agent (``resource_limits.memory_scope``)."""

    AGENT = "agent"
    WORKSPACE = "workspace"
    GLOBAL = "global"


@dataclass(frozen=True, slots=True)
class ScopeKey:
    """The partition a handle is bound to: a scope and its owner.

    Attributes:
        scope: The memory scope.
        owner: The agent name (``agent``), the workspace name (``workspace``) or ``""``
            (``global``).
    """

    scope: MemoryScope
    owner: str

    @classmethod
    def for_agent(cls, scope: MemoryScope | str, agent: str, workspace: str) -> ScopeKey:
        """Return the partition an agent with ``scope`` uses.

        Args:
            scope: The agent's memory scope (``agent``, ``workspace`` or ``global``).
            agent: The agent name.
            workspace: The agent's workspace name.

        Returns:
            The partition key.

        Raises:
            InvalidArgument: ``scope`` is not a known scope, or the name it needs is empty.
        """
        try:
            s = MemoryScope(scope)
        except ValueError:
            raise InvalidArgument(
                f"unknown memory scope {scope!r}; use one of agent, workspace, global"
            ) from None
        if s is MemoryScope.AGENT:
            if not agent:
                raise InvalidArgument("an agent-scoped memory handle needs an agent name")
            return cls(s, agent)
        if s is MemoryScope.WORKSPACE:
            if not workspace:
                raise InvalidArgument("a workspace-scoped memory handle needs a workspace name")
            return cls(s, workspace)
        return cls(s, "")

    def describe(self) -> str:
        """Return a short human label, e.g. ``workspace 'analytics'`` or ``global``."""
        return "global" if self.scope is MemoryScope.GLOBAL else f"{self.scope} {self.owner!r}"


__all__ = ["MemoryScope", "ScopeKey"]
