"""The default capability registry and tool set a node validates agent files against.

Both are only defaults: the validator takes the node's actual registry and tool list as
arguments, so a node with extra tools (or a restricted set) validates against what it really has.
"""

from __future__ import annotations

from typing import Final

DEFAULT_TOOLS: Final[tuple[str, ...]] = ("http_client", "csv_parser", "json_validator")
"""The built-in tools every node provides."""

DEFAULT_CAPABILITIES: Final[tuple[str, ...]] = (
    "classification",
    "code-analysis",
    "conversation",
    "data-processing",
    "echo",
    "extraction",
    "file-analysis",
    "memory",
    "monitoring",
    "planning",
    "question-answering",
    "reporting",
    "scheduling",
    "summarization",
    "text-generation",
    "tool-use",
    "translation",
    "web-search",
)
"""Capabilities a node accepts unless configured otherwise (includes all the guide uses)."""

__all__ = ["DEFAULT_CAPABILITIES", "DEFAULT_TOOLS"]
