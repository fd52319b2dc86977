"""Tools agents can call: a registry with JSON-Schema-typed arguments and the built-ins.

The node builds one registry (:func:`builtin_registry`); each agent gets a view of it
(:meth:`ToolRegistry.view`) that refuses any tool the agent file does not declare.
"""

from caxton.tools.builtin import BUILTIN_TOOLS, builtin_registry
from caxton.tools.csv_parser import csv_parser_tool, parse_csv
from caxton.tools.http_client import HostAllowlist, HttpClientTool
from caxton.tools.json_validator import json_validator_tool, validate_json
from caxton.tools.registry import AgentToolView, ToolRegistry
from caxton.tools.schema import compile_schema, json_path, schema_errors
from caxton.tools.tool import Tool, ToolFunction

__all__ = [
    "BUILTIN_TOOLS",
    "AgentToolView",
    "HostAllowlist",
    "HttpClientTool",
    "Tool",
    "ToolFunction",
    "ToolRegistry",
    "builtin_registry",
    "compile_schema",
    "csv_parser_tool",
    "json_path",
    "json_validator_tool",
    "parse_csv",
    "schema_errors",
    "validate_json",
]
