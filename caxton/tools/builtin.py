"""The built-in tools and the registry a node starts with."""

from __future__ import annotations

from collections.abc import Iterable

from caxton.tools.csv_parser import csv_parser_tool
from caxton.tools.http_client import HttpClientTool
from caxton.tools.json_validator import json_validator_tool
from caxton.tools.registry import ToolRegistry

BUILTIN_TOOLS: tuple[str, ...] = ("http_client", "csv_parser", "json_validator")
"""Names of the built-in tools (what config-agent validation checks ``tools`` against)."""


def builtin_registry(
    *,
    http_allowed_hosts: Iterable[str] = (),
    http_max_response_bytes: int = 1024 * 1024,
    http_timeout: float = 10.0,
) -> ToolRegistry:
    """Return a registry holding the built-in tools, configured for one node.

    Args:
        http_allowed_hosts: Hosts ``http_client`` may reach (node configuration
            ``http_client.allowed_hosts`` in caxton.yaml); empty refuses every host.
        http_max_response_bytes: ``http_client`` response size cap.
        http_timeout: ``http_client`` per-request timeout ceiling in seconds.

    Returns:
        A :class:`ToolRegistry` with ``http_client``, ``csv_parser`` and ``json_validator``.
    """
    http = HttpClientTool(http_allowed_hosts, max_response_bytes=http_max_response_bytes,
                          default_timeout=http_timeout)
    return ToolRegistry([http.tool(), csv_parser_tool(), json_validator_tool()])


__all__ = ["BUILTIN_TOOLS", "builtin_registry"]
