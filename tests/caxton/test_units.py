"""Durations and sizes: accepted forms, typed values, clear errors, exact round trips."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from caxton.errors import ErrorCode, InvalidArgument
from caxton.units import (
    ByteSize,
    Duration,
    UnitError,
    format_duration,
    format_size,
    parse_duration,
    parse_size,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30.0),
        ("500ms", 0.5),
        ("2m", 120.0),
        ("1h", 3600.0),
        ("1d", 86400.0),
        ("250us", 0.00025),
        ("1m30s", 90.0),
        ("1h 30m", 5400.0),
        ("1.5s", 1.5),
        (" 10 s ", 10.0),
        ("30", 30.0),
        ("0", 0.0),
        (30, 30.0),
        (0.25, 0.25),
    ],
)
def test_parse_duration_accepted_forms(text: object, seconds: float) -> None:
    d = parse_duration(text)
    assert isinstance(d, Duration)
    assert isinstance(d, float)
    assert d == seconds


@pytest.mark.parametrize(
    "bad", ["", "30x", "s", "-5s", "1.2.3s", "30 seconds", "ms500", "5m s", True, None, -1,
            float("nan"), float("inf"), [30]]
)
def test_parse_duration_rejects_with_clear_message(bad: object) -> None:
    with pytest.raises(UnitError) as info:
        parse_duration(bad)
    msg = str(info.value)
    assert repr(bad) in msg
    assert "500ms" in msg and "30s" in msg  # names the accepted forms
    assert isinstance(info.value, InvalidArgument) and isinstance(info.value, ValueError)
    assert info.value.code is ErrorCode.INVALID_ARGUMENT


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("50MB", 50_000_000),
        ("10MiB", 10 * 1024**2),
        ("512KB", 512_000),
        ("1GB", 10**9),
        ("1GiB", 1024**3),
        ("2TB", 2 * 10**12),
        ("1TiB", 1024**4),
        ("7B", 7),
        ("50mb", 50_000_000),
        ("1.5KiB", 1536),
        ("1.5 MB", 1_500_000),
        ("4096", 4096),
        (4096, 4096),
        (0, 0),
    ],
)
def test_parse_size_accepted_forms(text: object, size: int) -> None:
    s = parse_size(text)
    assert isinstance(s, ByteSize)
    assert isinstance(s, int)
    assert s == size


@pytest.mark.parametrize(
    "bad", ["", "50XB", "50M", "MB", "-1MB", "1.5B", "0.1KiB", 1.5, True, None, -1, "1 2 MB"]
)
def test_parse_size_rejects_with_clear_message(bad: object) -> None:
    with pytest.raises(UnitError) as info:
        parse_size(bad)
    msg = str(info.value)
    assert repr(bad) in msg
    assert "MiB" in msg and "MB" in msg


def test_typed_values_print_canonically() -> None:
    assert str(parse_duration("1m30s")) == "90s"
    assert str(parse_duration("120s")) == "2m"
    assert str(parse_duration("0.5")) == "500ms"
    assert repr(parse_duration("1h")) == "Duration('1h')"
    assert parse_duration("2s").seconds == 2.0
    assert str(parse_size("1048576")) == "1MiB"
    assert str(parse_size("50MB")) == "50MB"
    assert repr(parse_size(0)) == "ByteSize('0B')"
    # arithmetic gives plain numbers
    assert type(parse_duration("1s") + 1) is float
    assert type(parse_size("1KB") + 1) is int


def test_format_rejects_negative() -> None:
    with pytest.raises(UnitError):
        format_duration(-1)
    with pytest.raises(UnitError):
        format_duration(math.inf)
    with pytest.raises(UnitError):
        format_size(-1)


@given(st.floats(min_value=0, max_value=1e12, allow_nan=False, allow_infinity=False))
def test_duration_round_trip_is_exact(seconds: float) -> None:
    text = format_duration(seconds)
    assert parse_duration(text) == seconds
    assert format_duration(parse_duration(text)) == text


@given(
    st.integers(min_value=0, max_value=10**9),
    st.sampled_from(["us", "ms", "s", "m", "h", "d"]),
)
def test_duration_units_scale(n: int, unit: str) -> None:
    factor = {"us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600, "d": 86400}[unit]
    got = parse_duration(f"{n}{unit}")
    assert math.isclose(got, n * factor, rel_tol=1e-15, abs_tol=0)
    assert parse_duration(format_duration(got)) == got


@given(st.integers(min_value=0, max_value=2**62))
def test_size_round_trip_is_exact(n: int) -> None:
    text = format_size(n)
    assert parse_size(text) == n
    assert format_size(parse_size(text)) == text


@given(
    st.integers(min_value=0, max_value=10**6),
    st.sampled_from(["B", "KB", "MB", "GB", "TB", "KiB", "MiB", "GiB", "TiB"]),
)
def test_size_units_scale(n: int, unit: str) -> None:
    factor = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
              "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}[unit]
    assert parse_size(f"{n}{unit}") == n * factor
    assert parse_size(f"{n}{unit.lower()}") == n * factor
