"""Tools for tests and benchmarks: slow, spinning, crashing and memory-hungry ones.

They are module-level functions, so they run in tenant worker processes like any computing
tool (:mod:`caxton.tenant.pool`), which is exactly what tests of the isolation need. Register
them with :func:`registry_with_testing_tools`, or one by one with :data:`OBJECT`.
"""

from __future__ import annotations

import os
import time
from typing import Any

from caxton.tools.builtin import builtin_registry
from caxton.tools.registry import ToolRegistry
from caxton.tools.tool import Tool

OBJECT: dict[str, Any] = {"type": "object"}
"""The schema of a tool that takes any argument object."""


def sleep_tool(args: dict[str, Any], timeout: float) -> str:
    """Sleep ``args["seconds"]`` (default 20) and return ``"done"``."""
    time.sleep(float(args.get("seconds", 20)))
    return "done"


def spin_tool(args: dict[str, Any], timeout: float) -> int:
    """Burn CPU for ``args["seconds"]`` (default 60) and return the loop count."""
    end = time.monotonic() + float(args.get("seconds", 60))
    n = 0
    while time.monotonic() < end:
        n += 1
    return n


def hog_tool(args: dict[str, Any], timeout: float) -> int:
    """Allocate ``args["bytes"]`` (default 4 GiB) and return its length."""
    block = bytearray(int(args.get("bytes", 4 << 30)))
    return len(block)


def exit_tool(args: dict[str, Any], timeout: float) -> None:
    """Kill its own worker process (``os._exit``), as a crashing native library would."""
    os._exit(int(args.get("code", 3)))


def broken_tool(args: dict[str, Any], timeout: float) -> None:
    """Raise ``RuntimeError("disk on fire")``."""
    raise RuntimeError("disk on fire")


def add_tool(args: dict[str, Any], timeout: float) -> int:
    """Return ``args["a"] + args["b"]``."""
    return int(args["a"]) + int(args["b"])


TESTING_TOOLS: tuple[Tool, ...] = (
    Tool("sleep", "sleeps for `seconds`", OBJECT, sleep_tool),
    Tool("spin", "burns CPU for `seconds`", OBJECT, spin_tool),
    Tool("hog", "allocates `bytes`", OBJECT, hog_tool),
    Tool("exit", "kills its worker", OBJECT, exit_tool),
    Tool("broken", "raises", OBJECT, broken_tool),
)


def registry_with_testing_tools(**kwargs: Any) -> ToolRegistry:
    """The built-in tools plus :data:`TESTING_TOOLS` (``kwargs`` go to ``builtin_registry``)."""
    reg = builtin_registry(**kwargs)
    for tool in TESTING_TOOLS:
        reg.register(tool)
    return reg


__all__ = [
    "OBJECT",
    "TESTING_TOOLS",
    "add_tool",
    "broken_tool",
    "exit_tool",
    "hog_tool",
    "registry_with_testing_tools",
    "sleep_tool",
    "spin_tool",
]
