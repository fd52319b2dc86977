"""The tool registry of a node and the per-agent view that enforces declared tools."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

import structlog
from jsonschema.protocols import Validator

from caxton.errors import CaxtonError, InvalidArgument, ToolError, ToolNotDeclared
from caxton.tools.schema import compile_schema, schema_errors
from caxton.tools.tool import Tool

_log = structlog.get_logger("caxton.tools")


class ToolRegistry:
    """The tools available on a node, by name. Thread-safe; shared by every agent.

    Args:
        tools: Tools to register at once.
    """

    def __init__(self, tools: Iterable[Tool] = ()) -> None:
        self._lock = threading.Lock()
        self._tools: dict[str, tuple[Tool, Validator]] = {}
        for t in tools:
            self.register(t)

    def register(self, tool: Tool, *, replace: bool = False) -> None:
        """Add a tool.

        Args:
            tool: The tool; its ``parameters`` must be a valid ``object`` JSON Schema.
            replace: Allow replacing a tool of the same name.

        Raises:
            InvalidArgument: Duplicate name (without ``replace``) or invalid schema.
        """
        if not tool.name or not tool.name.replace("_", "").replace("-", "").isalnum():
            raise InvalidArgument(
                f"tool name {tool.name!r} must be letters, digits, '_' or '-'"
            )
        if tool.parameters.get("type") != "object":
            raise InvalidArgument(f"tool {tool.name!r}: parameters must be an 'object' schema")
        validator = compile_schema(tool.parameters, what=f"tool {tool.name!r} parameters")
        with self._lock:
            if tool.name in self._tools and not replace:
                raise InvalidArgument(f"tool {tool.name!r} is already registered")
            self._tools[tool.name] = (tool, validator)

    def names(self) -> list[str]:
        """Return the registered tool names, sorted."""
        with self._lock:
            return sorted(self._tools)

    def __contains__(self, name: object) -> bool:
        with self._lock:
            return name in self._tools

    def get(self, name: str) -> Tool:
        """Return the tool called ``name``.

        Args:
            name: Tool name.

        Returns:
            The tool.

        Raises:
            ToolError: No such tool is registered.
        """
        return self._entry(name)[0]

    def _entry(self, name: str) -> tuple[Tool, Validator]:
        with self._lock:
            entry = self._tools.get(name)
            if entry is None:
                raise ToolError(
                    f"no tool named {name!r} is registered on this node; registered tools: "
                    f"{', '.join(sorted(self._tools)) or '(none)'}"
                )
            return entry

    def validate_arguments(self, name: str, arguments: Any) -> dict[str, Any]:
        """Check ``arguments`` against the tool's schema.

        Args:
            name: Tool name.
            arguments: The argument object.

        Returns:
            ``arguments`` (as a dict) when valid.

        Raises:
            ToolError: Unknown tool, or the arguments do not match; ``details`` lists each
                problem with its JSONPath.
        """
        _, validator = self._entry(name)
        if not isinstance(arguments, Mapping):
            raise ToolError(
                f"tool {name!r} takes an object of arguments, got {type(arguments).__name__}",
                details=[{"path": "$", "message": "arguments must be an object"}],
            )
        args = dict(arguments)
        errors = schema_errors(validator, args)
        if errors:
            summary = "; ".join(f"{e['path']}: {e['message']}" for e in errors[:3])
            raise ToolError(f"invalid arguments for tool {name!r}: {summary}", details=errors)
        return args

    def call(self, name: str, arguments: Any, timeout: float, *, agent: str = "") -> Any:
        """Validate the arguments and run the tool, waiting at most ``timeout`` seconds.

        The tool runs on its own daemon thread, so a hung tool cannot block the caller past
        ``timeout`` (the thread is abandoned; tools doing I/O receive ``timeout`` and stop).

        Args:
            name: Tool name.
            arguments: The argument object.
            timeout: Seconds to wait (the agent's ``tool_call_timeout``).
            agent: The calling agent, for logs.

        Returns:
            The tool's JSON-serialisable result.

        Raises:
            ToolError: Unknown tool, invalid arguments, the tool failed, or it timed out
                (``details[0]["reason"] == "timeout"``).
        """
        if timeout <= 0:
            raise ToolError(f"tool {name!r} was called with no time left (timeout={timeout})",
                            details=[{"tool": name, "reason": "timeout"}])
        tool, _ = self._entry(name)
        args = self.validate_arguments(name, arguments)
        done = threading.Event()
        box: dict[str, Any] = {}

        def run() -> None:
            try:
                box["result"] = tool.func(args, timeout)
            except BaseException as exc:  # reported to the caller, never lost
                box["error"] = exc
            finally:
                done.set()

        started = time.perf_counter()
        threading.Thread(target=run, name=f"tool-{name}", daemon=True).start()
        finished = done.wait(timeout)
        elapsed_ms = round((time.perf_counter() - started) * 1000, 2)
        if not finished:
            _log.warning("tool.call", tool=name, agent=agent, ok=False, reason="timeout",
                         duration_ms=elapsed_ms)
            raise ToolError(
                f"tool {name!r} did not finish within {timeout:g}s; raise the agent's "
                f"resource_limits.tool_call_timeout if it legitimately needs longer",
                details=[{"tool": name, "reason": "timeout", "timeout": timeout}],
            )
        if "error" in box:
            exc = box["error"]
            _log.info("tool.call", tool=name, agent=agent, ok=False, reason="error",
                      duration_ms=elapsed_ms, error=str(exc))
            if isinstance(exc, ToolError):
                raise exc
            message = exc.message if isinstance(exc, CaxtonError) else f"{type(exc).__name__}: {exc}"
            raise ToolError(f"tool {name!r} failed: {message}",
                            details=[{"tool": name, "reason": "error"}]) from exc
        _log.debug("tool.call", tool=name, agent=agent, ok=True, duration_ms=elapsed_ms)
        return box.get("result")

    def view(self, agent: str, declared: Iterable[str]) -> AgentToolView:
        """Return the view an agent uses: only the tools it declares.

        Args:
            agent: The agent name (named in refusals).
            declared: The agent file's ``tools`` list.

        Returns:
            An :class:`AgentToolView`.
        """
        return AgentToolView(self, agent, declared)


class AgentToolView:
    """The tools one agent may use: its declared tools, nothing else.

    Args:
        registry: The node's registry.
        agent: The agent name.
        declared: The tools the agent file declares.
    """

    def __init__(self, registry: ToolRegistry, agent: str, declared: Iterable[str]) -> None:
        self.registry = registry
        self.agent = agent
        self.declared: tuple[str, ...] = tuple(dict.fromkeys(declared))

    def __repr__(self) -> str:
        return f"AgentToolView(agent={self.agent!r}, declared={list(self.declared)!r})"

    def names(self) -> list[str]:
        """Return the declared tools that are registered on the node, in declared order."""
        return [n for n in self.declared if n in self.registry]

    def tools(self) -> list[Tool]:
        """Return the declared, registered tools (what the model is offered)."""
        return [self.registry.get(n) for n in self.names()]

    def check(self, name: str) -> None:
        """Refuse a tool the agent does not declare.

        Args:
            name: Tool name.

        Raises:
            ToolNotDeclared: ``name`` is not in the agent's ``tools`` list.
        """
        if name not in self.declared:
            raise ToolNotDeclared(
                f"agent {self.agent!r} does not declare tool {name!r}; it declares: "
                f"{', '.join(self.declared) or '(no tools)'}. Add {name!r} to the agent "
                f"file's tools list to allow it",
                details=[{"agent": self.agent, "tool": name, "declared": list(self.declared)}],
            )

    def call(self, name: str, arguments: Any, timeout: float) -> Any:
        """Run a declared tool (see :meth:`ToolRegistry.call`).

        Args:
            name: Tool name.
            arguments: The argument object.
            timeout: Seconds to wait.

        Returns:
            The tool's result.

        Raises:
            ToolNotDeclared: The agent does not declare ``name``.
            ToolError: The tool is missing, its arguments are invalid, it failed or timed out.
        """
        self.check(name)
        return self.registry.call(name, arguments, timeout, agent=self.agent)


__all__ = ["AgentToolView", "ToolRegistry"]
