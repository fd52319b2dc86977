"""The ``json_validator`` built-in tool: check a document against a JSON Schema."""

from __future__ import annotations

import json
from typing import Any

from caxton.errors import InvalidArgument, ToolError
from caxton.tools.schema import compile_schema, schema_errors
from caxton.tools.tool import Tool

PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "document": {"description": "the JSON value to check"},
        "document_json": {"type": "string", "description": "the document as JSON text"},
        "schema": {"type": "object", "description": "the JSON Schema"},
        "max_errors": {"type": "integer", "minimum": 1, "maximum": 500},
    },
    "required": ["schema"],
    "oneOf": [{"required": ["document"]}, {"required": ["document_json"]}],
    "additionalProperties": False,
}


def validate_json(args: dict[str, Any], timeout: float = 0.0) -> dict[str, Any]:
    """Validate a document against a schema and report every error with its JSONPath.

    Args:
        args: ``schema`` and either ``document`` or ``document_json``; optional
            ``max_errors`` (default 50).
        timeout: Unused.

    Returns:
        ``{"valid": bool, "error_count": n, "errors": [{"path", "message", "validator"}]}``.

    Raises:
        ToolError: The schema is invalid or ``document_json`` is not JSON.
    """
    if "document_json" in args:
        try:
            document = json.loads(args["document_json"])
        except json.JSONDecodeError as exc:
            raise ToolError(f"json_validator: document_json is not JSON: {exc}") from None
    else:
        document = args["document"]
    try:
        validator = compile_schema(args["schema"])
    except InvalidArgument as exc:
        raise ToolError(f"json_validator: {exc.message}") from None
    errors = schema_errors(validator, document, limit=10_000)
    limit = int(args.get("max_errors", 50))
    return {"valid": not errors, "error_count": len(errors), "errors": errors[:limit]}


def json_validator_tool() -> Tool:
    """Return the ``json_validator`` :class:`Tool`."""
    return Tool(
        name="json_validator",
        description=("Validate a JSON document against a JSON Schema; reports every error "
                     "with its JSONPath."),
        parameters=PARAMETERS,
        func=validate_json,
    )


__all__ = ["json_validator_tool", "validate_json"]
