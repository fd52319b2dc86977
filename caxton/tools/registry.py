"""The tool registry of a node and the per-agent view that enforces declared tools."""

from __future__ import annotations

import asyncio
import pickle
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import structlog
from jsonschema.protocols import Validator

from caxton.errors import CaxtonError, InvalidArgument, ToolError, ToolNotDeclared, ToolTimeout
from caxton.tenant import work
from caxton.tenant.ioloop import IOLoop, default_ioloop
from caxton.tenant.pool import TenantPool, WorkTimedOut, default_pool, wait_done
from caxton.tools.schema import compile_schema, schema_errors
from caxton.tools.tool import Tool

Done = Callable[[Any, BaseException | None], None]
Cancel = Callable[[], Any]


def _tool_error(name: str, error: BaseException, timeout: float) -> CaxtonError:
    """The typed error a failed tool call reports."""
    if isinstance(error, (WorkTimedOut, TimeoutError, asyncio.TimeoutError,
                          asyncio.CancelledError)):
        return ToolTimeout(
            f"tool {name!r} did not finish within {timeout:g}s and was stopped; raise the "
            f"agent's resource_limits.tool_call_timeout if it legitimately needs longer",
            details=[{"tool": name, "reason": "timeout", "timeout": timeout}])
    if isinstance(error, CaxtonError):
        return error
    return ToolError(f"tool {name!r} failed: {type(error).__name__}: {error}",
                     details=[{"tool": name, "reason": "error"}])

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
        if not tool.is_async:
            try:
                pickle.dumps(tool.func)
            except Exception as exc:
                raise InvalidArgument(
                    f"tool {tool.name!r} computes, so it runs in a tenant worker process and its "
                    f"function must be importable by name (a module-level function), not "
                    f"{tool.func!r} ({type(exc).__name__}); or make it a coroutine function "
                    "if it only waits on I/O") from None
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

    def start(self, name: str, arguments: Any, timeout: float, done: Done, *,
              agent: str = "", pool: TenantPool | None = None,
              ioloop: IOLoop | None = None) -> Cancel:
        """Validate the arguments and start the tool where its kind runs; never blocks.

        A computing tool runs in a tenant worker process: past ``timeout`` its worker is
        killed. An I/O tool runs on the I/O loop: past ``timeout`` it is cancelled. Either
        way ``done`` is called exactly once, with ``(result, None)`` or ``(None, error)``
        where ``error`` is a :class:`ToolError` (:class:`ToolTimeout` for a timeout) or
        another typed :class:`CaxtonError`.

        Args:
            name: Tool name.
            arguments: The argument object.
            timeout: Seconds the call may take (the agent's ``tool_call_timeout``, or less).
            done: Completion callback (on a pool or loop thread; quick, never raising).
            agent: The calling agent, for logs.
            pool: The worker pool (default: the process's shared one).
            ioloop: The I/O loop (default: the process's shared one).

        Returns:
            A function that cancels the call (a running worker call kills its worker).

        Raises:
            ToolError: Unknown tool or invalid arguments (raised at once, nothing started).
        """
        if timeout <= 0:
            raise ToolTimeout(f"tool {name!r} was called with no time left (timeout={timeout})",
                              details=[{"tool": name, "reason": "timeout"}])
        tool, _ = self._entry(name)
        args = self.validate_arguments(name, arguments)
        started = time.perf_counter()

        def finish(value: Any, error: BaseException | None) -> None:
            elapsed_ms = round((time.perf_counter() - started) * 1000, 2)
            if error is None:
                _log.debug("tool.call", tool=name, agent=agent, ok=True, duration_ms=elapsed_ms)
                done(value, None)
                return
            err = _tool_error(name, error, timeout)
            _log.info("tool.call", tool=name, agent=agent, ok=False, code=str(err.code),
                      duration_ms=elapsed_ms, error=err.message)
            done(None, err)

        if tool.is_async:
            loop = ioloop or default_ioloop()

            async def run() -> Any:
                return await asyncio.wait_for(tool.func(args, timeout), timeout)

            fut = loop.submit(run(), finish)
            return lambda: loop.loop.call_soon_threadsafe(fut.cancel)
        wfut = (pool or default_pool()).submit(
            work.call_tool, (tool.func, name, args, timeout), timeout, finish,
            what=f"tool {name!r}")
        return lambda: wfut.cancel()

    def call(self, name: str, arguments: Any, timeout: float, *, agent: str = "") -> Any:
        """Run a tool and wait for it, at most ``timeout`` seconds (see :meth:`start`).

        Args:
            name: Tool name.
            arguments: The argument object.
            timeout: Seconds to wait (the agent's ``tool_call_timeout``).
            agent: The calling agent, for logs.

        Returns:
            The tool's JSON-serialisable result.

        Raises:
            ToolError: Unknown tool, invalid arguments, or the tool failed.
            ToolTimeout: It ran past ``timeout`` (and was stopped).
        """
        return wait_done(lambda done: self.start(name, arguments, timeout, done, agent=agent))

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
