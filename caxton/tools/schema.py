"""JSON Schema helpers shared by tool argument checks and the ``json_validator`` tool."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import jsonschema
from jsonschema.exceptions import SchemaError
from jsonschema.protocols import Validator

from caxton.errors import InvalidArgument


def json_path(parts: Iterable[Any]) -> str:
    """Render a jsonschema error path as JSONPath, e.g. ``$.rows[2].name``.

    Args:
        parts: Path elements (keys and indexes).

    Returns:
        The JSONPath text; ``$`` is the document root.
    """
    out = "$"
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else f".{p}"
    return out


def compile_schema(schema: Mapping[str, Any], *, what: str = "schema") -> Validator:
    """Check a JSON Schema and return a validator for it (draft picked from ``$schema``).

    Args:
        schema: The schema (draft 2020-12 unless ``$schema`` says otherwise).
        what: How to name the schema in errors.

    Returns:
        A validator instance.

    Raises:
        InvalidArgument: The schema itself is invalid.
    """
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        cls.check_schema(dict(schema))
    except SchemaError as exc:
        raise InvalidArgument(
            f"{what} is not a valid JSON Schema at {json_path(exc.absolute_path)}: "
            f"{exc.message}"
        ) from None
    validator: Validator = cls(schema)
    return validator


def schema_errors(validator: Validator, instance: Any, *, limit: int = 50) -> list[dict[str, Any]]:
    """Return the validation errors of ``instance``, sorted by path.

    Args:
        validator: A compiled validator.
        instance: The document to check.
        limit: At most this many errors are returned.

    Returns:
        ``[{"path": "$.a[0]", "message": "...", "validator": "type"}, ...]``; empty if valid.
    """
    errors = sorted(validator.iter_errors(instance),
                    key=lambda e: [str(p) for p in e.absolute_path])
    return [
        {"path": json_path(e.absolute_path), "message": e.message, "validator": str(e.validator)}
        for e in errors[:limit]
    ]


__all__ = ["compile_schema", "json_path", "schema_errors"]
