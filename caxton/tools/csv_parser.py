"""The ``csv_parser`` built-in tool: CSV text to columns, rows and per-column summaries."""

from __future__ import annotations

import csv
import io
from typing import Any

from caxton.errors import ToolError
from caxton.tools.tool import Tool

PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "text": {"type": "string", "maxLength": 5_000_000, "description": "the CSV text"},
        "delimiter": {"type": "string", "minLength": 1, "maxLength": 1,
                      "description": "field separator; sniffed when omitted"},
        "has_header": {"type": "boolean", "description": "first row names the columns"},
        "max_rows": {"type": "integer", "minimum": 0, "maximum": 10_000,
                     "description": "how many rows to return (all are summarised)"},
    },
    "required": ["text"],
    "additionalProperties": False,
}


def _number(value: str) -> float | None:
    try:
        return float(value.replace(",", "")) if value.strip() else None
    except ValueError:
        return None


def parse_csv(args: dict[str, Any], timeout: float = 0.0) -> dict[str, Any]:
    """Parse CSV text and summarise each column.

    Args:
        args: ``text``; optional ``delimiter``, ``has_header`` (default true), ``max_rows``
            (default 100).
        timeout: Unused (parsing is CPU-bound and bounded by the input size cap).

    Returns:
        ``{"columns": [...], "row_count": n, "rows": [{column: value}...],
        "summary": {column: {"non_empty", "numeric", "min", "max", "mean"}}}``.

    Raises:
        ToolError: The text is not parseable CSV.
    """
    text: str = args["text"]
    max_rows = int(args.get("max_rows", 100))
    delimiter = args.get("delimiter")
    if delimiter is None:
        try:
            delimiter = csv.Sniffer().sniff(text[:4096], delimiters=",;\t|").delimiter
        except csv.Error:
            delimiter = ","
    try:
        rows = list(csv.reader(io.StringIO(text), delimiter=delimiter, strict=True))
    except csv.Error as exc:
        raise ToolError(f"csv_parser: malformed CSV: {exc}") from None
    rows = [r for r in rows if r]
    if args.get("has_header", True) and rows:
        columns, data = rows[0], rows[1:]
    else:
        width = max((len(r) for r in rows), default=0)
        columns, data = [f"column_{i + 1}" for i in range(width)], rows
    summary: dict[str, dict[str, Any]] = {}
    for i, col in enumerate(columns):
        values = [r[i] for r in data if i < len(r) and r[i].strip()]
        nums = [n for n in (_number(v) for v in values) if n is not None]
        info: dict[str, Any] = {"non_empty": len(values),
                                "numeric": bool(values) and len(nums) == len(values)}
        if info["numeric"]:
            info.update(min=min(nums), max=max(nums), mean=sum(nums) / len(nums))
        summary[col] = info
    ragged = sum(1 for r in data if len(r) != len(columns))
    return {
        "columns": columns,
        "row_count": len(data),
        "rows": [dict(zip(columns, r, strict=False)) for r in data[:max_rows]],
        "summary": summary,
        "delimiter": delimiter,
        "ragged_rows": ragged,
    }


def csv_parser_tool() -> Tool:
    """Return the ``csv_parser`` :class:`Tool`."""
    return Tool(
        name="csv_parser",
        description=("Parse CSV text into columns and rows, with a per-column summary "
                     "(count, numeric min/max/mean)."),
        parameters=PARAMETERS,
        func=parse_csv,
    )


__all__ = ["csv_parser_tool", "parse_csv"]
