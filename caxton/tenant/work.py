"""What runs inside a tenant worker process: template renders and CPU-bound tool calls.

Every function here is called by :class:`caxton.tenant.TenantPool` in a worker process and
returns an :data:`Outcome` — ``("ok", value)`` or ``("error", code, message, details)`` — so
a typed error crosses the process boundary as plain data (exception objects are not
pickled; a worker that dies mid-call is reported by the pool instead).

This module is preloaded by the pool's fork server, so a worker that replaces a killed one
starts with Jinja2 and jsonschema already imported.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Callable, Mapping
from typing import Any

from caxton.errors import CaxtonError, ResourceExhausted, ToolError

Outcome = tuple[Any, ...]
"""``("ok", value)`` or ``("error", code, message, details)``."""


WORKER_NICE = 10
"""Nice value of the workers: the node's threads win most of a contended CPU. Not
``SCHED_IDLE``: on a host busy with other processes idle-class workers got no CPU at all and
every tool call timed out; and idle class bought the node little (two idle-class spinners
alone still raised its p99 2-2.5x on the 2-core VM, see docs/performance.md)."""


def init_worker(memory_limit: int, cpus: tuple[int, ...] = ()) -> None:
    """Pool initializer: cap the worker's address space, lower its priority, set its CPUs.

    Args:
        memory_limit: Bytes of address space (``RLIMIT_AS``); 0 = no cap.
        cpus: CPUs to run on (the node passes every CPU but the one its Python threads
            share, which a worker would otherwise inherit); empty = as inherited.
    """
    if cpus:
        try:
            os.sched_setaffinity(0, cpus)
        except (AttributeError, OSError):
            pass
    if memory_limit > 0:
        resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))
    try:
        os.nice(WORKER_NICE)
    except OSError:
        pass


def _guard(func: Callable[[], Any], what: str) -> Outcome:
    try:
        return ("ok", func())
    except CaxtonError as exc:
        return ("error", str(exc.code), exc.message, exc.details)
    except MemoryError:
        err = ResourceExhausted(
            f"{what} ran out of memory in its tenant worker (the worker's memory limit is "
            "tenant.memory_limit in caxton.yaml); make the input or the template smaller")
        return ("error", str(err.code), err.message, [{"reason": "memory"}])
    except RecursionError:
        err = ResourceExhausted(f"{what} recursed too deeply; simplify it")
        return ("error", str(err.code), err.message, [{"reason": "recursion"}])
    except Exception as exc:  # a bug in a tool is an error result, never a dead worker
        failed = ToolError(f"{what} failed: {type(exc).__name__}: {exc}")
        return ("error", str(failed.code), failed.message, [])


def render_prompts(system: tuple[str, str], user: tuple[str, str],
                   variables: Mapping[str, Any]) -> Outcome:
    """Render an agent's two prompt templates.

    Args:
        system: ``(source, field)`` of the system prompt template.
        user: ``(source, field)`` of the user prompt template.
        variables: The template variables.

    Returns:
        ``("ok", (system_prompt, user_prompt))`` or an error outcome.
    """
    from caxton.config_agents.templates import PromptTemplate

    def run() -> tuple[str, str]:
        s = PromptTemplate(system[0], field=system[1]).render(variables)
        u = PromptTemplate(user[0], field=user[1]).render(variables)
        return s, u

    return _guard(run, "rendering the prompt templates")


def call_tool(func: Callable[[dict[str, Any], float], Any], name: str,
              arguments: dict[str, Any], timeout: float) -> Outcome:
    """Run one tool function (already validated arguments).

    Args:
        func: The tool's module-level function.
        name: The tool name (in errors).
        arguments: Its arguments.
        timeout: Seconds it has (also enforced by the pool, which kills the worker).

    Returns:
        ``("ok", result)`` or an error outcome.
    """
    return _guard(lambda: func(arguments, timeout), f"tool {name!r}")


__all__ = ["Outcome", "call_tool", "init_worker", "render_prompts"]
