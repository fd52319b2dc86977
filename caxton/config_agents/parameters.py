"""Type checking of an agent's free-form ``parameters`` map (validation stage 5).

Parameters are JSON-like values (strings, numbers, booleans, null, lists and maps with string
keys) so they travel over the control protocol and into templates unchanged. Two naming
conventions give them units:

* a key named ``timeout``/``interval``/``delay``/``ttl``/``duration``/``period`` or ending in
  ``_timeout``, ``_interval``, … holds a duration (``"30s"``) and becomes a
  :class:`~caxton.units.Duration`;
* a key named ``size``/``bytes`` or ending in ``_size``/``_bytes`` holds a size (``"50MB"``) and
  becomes a :class:`~caxton.units.ByteSize`.

Anything else is kept as written. Values YAML turns into other types (unquoted dates, binary,
sets) are refused with a fix, because they could not be sent over the control protocol.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from caxton.units import DURATION_FORMS, SIZE_FORMS, UnitError, parse_duration, parse_size

DURATION_KEYS: Final = ("timeout", "interval", "delay", "ttl", "duration", "period")
SIZE_KEYS: Final = ("size", "bytes")

Path = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class ParameterProblem:
    """One problem found in ``parameters``.

    Attributes:
        path: Location below the file root, e.g. ``("parameters", "timeout")``.
        message: What is wrong.
        fix: How to fix it.
    """

    path: Path
    message: str
    fix: str


class ParameterError(ValueError):
    """``parameters`` failed type checking; ``problems`` lists every finding."""

    def __init__(self, problems: list[ParameterProblem]) -> None:
        super().__init__("; ".join(f"{_dotted(p.path)}: {p.message}" for p in problems))
        self.problems = problems


def _matches(key: str, words: tuple[str, ...]) -> bool:
    k = key.lower()
    return any(k == w or k.endswith("_" + w) for w in words)


def unit_kind(key: str) -> str | None:
    """Return ``"duration"``, ``"size"`` or ``None`` for a parameter name.

    Args:
        key: The parameter name.

    Returns:
        The unit the naming convention assigns to it, if any.
    """
    if _matches(key, DURATION_KEYS):
        return "duration"
    if _matches(key, SIZE_KEYS):
        return "size"
    return None


def _dotted(path: Path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def _check_value(value: Any, path: Path, problems: list[ParameterProblem]) -> Any:
    if value is None or isinstance(value, bool | str | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            problems.append(ParameterProblem(path, f"{value!r} is not a finite number",
                                             "use a finite number or a quoted string"))
        return value
    if isinstance(value, list):
        return [_check_value(v, (*path, i), problems) for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if not isinstance(k, str):
                problems.append(ParameterProblem(
                    (*path, str(k)), f"key {k!r} is a {type(k).__name__}, keys must be strings",
                    f'quote the key: "{k}":'))
                continue
            out[k] = _check_value(v, (*path, k), problems)
        return out
    problems.append(ParameterProblem(
        path,
        f"{value!r} is a {type(value).__name__}, which parameters cannot hold "
        "(only strings, numbers, booleans, null, lists and maps)",
        f'quote the value: "{value}"',
    ))
    return value


def check_parameters(raw: Any) -> tuple[dict[str, Any], list[ParameterProblem]]:
    """Type-check ``parameters`` and convert unit-named values, collecting every problem.

    Args:
        raw: The ``parameters`` value as YAML produced it (``None`` means empty).

    Returns:
        The typed parameters and the problems found (empty when valid).
    """
    problems: list[ParameterProblem] = []
    if raw is None:
        return {}, problems
    if not isinstance(raw, Mapping):
        problems.append(ParameterProblem(
            ("parameters",), f"parameters must be a map, got {type(raw).__name__}",
            "write parameters as `key: value` lines indented under `parameters:`"))
        return {}, problems
    typed: dict[str, Any] = {}
    for key, value in raw.items():
        if not isinstance(key, str):
            problems.append(ParameterProblem(
                ("parameters", str(key)),
                f"parameter name {key!r} is a {type(key).__name__}, names must be strings",
                f'quote the name: "{key}":'))
            continue
        path: Path = ("parameters", key)
        kind = unit_kind(key)
        try:
            if kind == "duration":
                typed[key] = parse_duration(value)
                continue
            if kind == "size":
                typed[key] = parse_size(value)
                continue
        except UnitError as exc:
            forms = DURATION_FORMS if kind == "duration" else SIZE_FORMS
            example = '"30s"' if kind == "duration" else '"50MB"'
            problems.append(ParameterProblem(
                path, f"'{key}' is a {kind} parameter (by its name) but {value!r} is not a "
                f"{kind}: {exc.message.split(':', 1)[0]}",
                f"write {key}: {example} — {forms}"))
            continue
        typed[key] = _check_value(value, path, problems)
    return typed, problems


def typed_parameters(raw: Any) -> dict[str, Any]:
    """Type-check ``parameters`` and convert unit-named values.

    Args:
        raw: The ``parameters`` value as YAML produced it.

    Returns:
        The typed parameters.

    Raises:
        ParameterError: One or more problems (all listed).
    """
    typed, problems = check_parameters(raw)
    if problems:
        raise ParameterError(problems)
    return typed


__all__ = [
    "DURATION_KEYS",
    "SIZE_KEYS",
    "ParameterError",
    "ParameterProblem",
    "check_parameters",
    "typed_parameters",
    "unit_kind",
]
