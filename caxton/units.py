"""Durations and byte sizes as operators write them in agent files and on the command line.

Two small typed values:

* :class:`Duration` — a ``float`` of seconds that remembers it is a duration and prints in the
  canonical short form (``Duration(30.0)`` prints ``30s``). Parsed from ``"500ms"``, ``"30s"``,
  ``"2m"``, ``"1h"``, ``"1d"``, compounds such as ``"1m30s"``, bare numbers (seconds) and numeric
  strings (``"30"`` = 30 seconds).
* :class:`ByteSize` — an ``int`` of bytes that prints as ``50MB`` / ``10MiB``. Parsed from
  decimal units (``KB`` = 1000, ``MB`` = 1000², ``GB``, ``TB``), binary units (``KiB`` = 1024,
  ``MiB``, ``GiB``, ``TiB``), ``B``, bare integers and integer strings. Unit names are
  case-insensitive; a fractional quantity is accepted only when it is a whole number of bytes
  (``"1.5KiB"`` = 1536).

Both subclass the built-in number type, so runtime code uses them as plain seconds and bytes.
Arithmetic on them returns plain ``float``/``int``. Parsing goes through :class:`~decimal.Decimal`
so that ``format_*`` and ``parse_*`` round-trip exactly.

Bad input raises :class:`UnitError`, which is both a :class:`caxton.errors.InvalidArgument`
(stable code ``INVALID_ARGUMENT``) and a :class:`ValueError` (so pydantic validators report it as
a field error).
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation
from typing import Final

from caxton.errors import InvalidArgument

DURATION_FORMS: Final = (
    "a number of seconds (30, 1.5) or a number with a unit: 250us, 500ms, 30s, 2m, 1h, 1d; "
    "compounds like 1m30s also work"
)
SIZE_FORMS: Final = (
    "a whole number of bytes (1048576) or a number with a unit: 512B, 512KB, 50MB, 1GB, 1TB "
    "(powers of 1000) or 10KiB, 10MiB, 1GiB, 1TiB (powers of 1024)"
)

_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_DURATION_UNITS: Final[dict[str, Decimal]] = {
    "us": Decimal("0.000001"),
    "ms": Decimal("0.001"),
    "s": Decimal(1),
    "m": Decimal(60),
    "h": Decimal(3600),
    "d": Decimal(86400),
}
_DURATION_PART = re.compile(rf"({_NUMBER})\s*(us|ms|s|m|h|d)")
_DURATION_FULL = re.compile(rf"(?:{_NUMBER}\s*(?:us|ms|s|m|h|d)\s*)+")
_PLAIN_NUMBER = re.compile(_NUMBER)

_SIZE_UNITS: Final[dict[str, int]] = {
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
_SIZE_RE = re.compile(rf"({_NUMBER})\s*([A-Za-z]+)?")
# Largest unit first, so format_size picks the shortest exact spelling.
_SIZE_FORMAT_ORDER: Final = ("TiB", "TB", "GiB", "GB", "MiB", "MB", "KiB", "KB")


class UnitError(InvalidArgument, ValueError):
    """A duration or size could not be parsed; the message names the value and accepted forms."""


class Duration(float):
    """A non-negative, finite number of seconds that prints in canonical short form."""

    __slots__ = ()

    @classmethod
    def parse(cls, value: object) -> Duration:
        """Parse ``value`` into a :class:`Duration` (see :func:`parse_duration`).

        Args:
            value: A number of seconds, a numeric string, or a string with units.

        Returns:
            The duration.

        Raises:
            UnitError: ``value`` is not a valid duration.
        """
        return parse_duration(value)

    @property
    def seconds(self) -> float:
        """The duration as a plain float of seconds."""
        return float(self)

    def __str__(self) -> str:
        return format_duration(self)

    def __repr__(self) -> str:
        return f"Duration({format_duration(self)!r})"


class ByteSize(int):
    """A non-negative number of bytes that prints in canonical short form."""

    __slots__ = ()

    @classmethod
    def parse(cls, value: object) -> ByteSize:
        """Parse ``value`` into a :class:`ByteSize` (see :func:`parse_size`).

        Args:
            value: An integer number of bytes, an integer string, or a string with a unit.

        Returns:
            The size.

        Raises:
            UnitError: ``value`` is not a valid size.
        """
        return parse_size(value)

    def __str__(self) -> str:
        return format_size(self)

    def __repr__(self) -> str:
        return f"ByteSize({format_size(self)!r})"


def parse_duration(value: object) -> Duration:
    """Parse a duration into seconds.

    Args:
        value: ``int``/``float`` seconds, or a string: ``"30"``, ``"500ms"``, ``"30s"``,
            ``"2m"``, ``"1h"``, ``"1d"``, ``"250us"`` or a compound like ``"1h30m"``.
            Surrounding whitespace and spaces between number and unit are allowed.

    Returns:
        The duration (a ``float`` subclass of seconds).

    Raises:
        UnitError: ``value`` is a bool, negative, not finite, or not in an accepted form.
    """
    if isinstance(value, Duration):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise UnitError(f"invalid duration {value!r}: expected {DURATION_FORMS}")
    if isinstance(value, int | float):
        seconds = float(value)
        if not math.isfinite(seconds) or seconds < 0:
            raise UnitError(
                f"invalid duration {value!r}: must be finite and not negative; "
                f"expected {DURATION_FORMS}"
            )
        return Duration(seconds)
    text = value.strip()
    try:
        if _PLAIN_NUMBER.fullmatch(text):
            total = Decimal(text)
        elif _DURATION_FULL.fullmatch(text):
            total = sum(
                (Decimal(num) * _DURATION_UNITS[unit] for num, unit in _DURATION_PART.findall(text)),
                Decimal(0),
            )
        else:
            raise UnitError(f"invalid duration {value!r}: expected {DURATION_FORMS}")
        seconds = float(total)
    except (InvalidOperation, OverflowError) as exc:  # pragma: no cover - regex guards this
        raise UnitError(f"invalid duration {value!r}: expected {DURATION_FORMS}") from exc
    if not math.isfinite(seconds):
        raise UnitError(f"invalid duration {value!r}: too large; expected {DURATION_FORMS}")
    return Duration(seconds)


def format_duration(seconds: float) -> str:
    """Format seconds in the canonical short form that :func:`parse_duration` reads back exactly.

    Whole hours print as ``"2h"``, whole minutes as ``"5m"``, whole seconds as ``"30s"``, whole
    milliseconds as ``"500ms"``; anything else as the shortest exact float, e.g. ``"0.0001234s"``.

    Args:
        seconds: A finite, non-negative number of seconds.

    Returns:
        The formatted duration.

    Raises:
        UnitError: ``seconds`` is negative or not finite.
    """
    x = float(seconds)
    if not math.isfinite(x) or x < 0:
        raise UnitError(f"cannot format duration {seconds!r}: must be finite and not negative")
    if x.is_integer():
        n = int(x)
        if n and n % 3600 == 0:
            return f"{n // 3600}h"
        if n and n % 60 == 0:
            return f"{n // 60}m"
        return f"{n}s"
    millis = x * 1000
    if millis.is_integer() and float(Decimal(int(millis)) / 1000) == x:
        return f"{int(millis)}ms"
    return f"{x!r}s"


def parse_size(value: object) -> ByteSize:
    """Parse a size into a whole number of bytes.

    Args:
        value: An ``int`` number of bytes, an integer string, or a number with a unit:
            ``B``, ``KB``/``MB``/``GB``/``TB`` (powers of 1000), ``KiB``/``MiB``/``GiB``/``TiB``
            (powers of 1024); unit names are case-insensitive.

    Returns:
        The size (an ``int`` subclass of bytes).

    Raises:
        UnitError: ``value`` is a bool or float, negative, not a whole number of bytes, uses an
            unknown unit, or is not in an accepted form.
    """
    if isinstance(value, ByteSize):
        return value
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise UnitError(f"invalid size {value!r}: expected {SIZE_FORMS}")
    if isinstance(value, int):
        if value < 0:
            raise UnitError(f"invalid size {value!r}: must not be negative; expected {SIZE_FORMS}")
        return ByteSize(value)
    match = _SIZE_RE.fullmatch(value.strip())
    if match is None:
        raise UnitError(f"invalid size {value!r}: expected {SIZE_FORMS}")
    number, unit = match.groups()
    factor = 1
    if unit is not None:
        known = _SIZE_UNITS.get(unit.lower())
        if known is None:
            raise UnitError(f"invalid size {value!r}: unknown unit {unit!r}; expected {SIZE_FORMS}")
        factor = known
    try:
        total = Decimal(number) * factor
    except InvalidOperation as exc:  # pragma: no cover - regex guards this
        raise UnitError(f"invalid size {value!r}: expected {SIZE_FORMS}") from exc
    if total != total.to_integral_value():
        raise UnitError(
            f"invalid size {value!r}: {total} is not a whole number of bytes; expected {SIZE_FORMS}"
        )
    return ByteSize(int(total))


def format_size(size: int) -> str:
    """Format bytes in the largest unit that divides them exactly (``50MB``, ``10MiB``, ``7B``).

    Args:
        size: A non-negative whole number of bytes.

    Returns:
        The formatted size, which :func:`parse_size` reads back exactly.

    Raises:
        UnitError: ``size`` is negative.
    """
    n = int(size)
    if n < 0:
        raise UnitError(f"cannot format size {size!r}: must not be negative")
    if n:
        for unit in _SIZE_FORMAT_ORDER:
            factor = _SIZE_UNITS[unit.lower()]
            if n % factor == 0:
                return f"{n // factor}{unit}"
    return f"{n}B"


__all__ = [
    "DURATION_FORMS",
    "SIZE_FORMS",
    "ByteSize",
    "Duration",
    "UnitError",
    "format_duration",
    "format_size",
    "parse_duration",
    "parse_size",
]
