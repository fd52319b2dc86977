"""Malformed bytes never crash: random and mutated modules always give a report or a typed error."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandbox import ResourceLimits, Sandbox, SandboxError, SecurityPolicy, ValidationError, validate
from sandbox.testing import read_example_module

_ECHO = bytes(__import__("wasmtime").wat2wasm(read_example_module("echo.wat").decode()))
_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_LIMITS = ResourceLimits(memory_bytes=1 << 20, fuel=100_000, timeout=0.5)


def _check(data: bytes) -> None:
    report = validate(data, SecurityPolicy.strict(), limits=_LIMITS)
    assert len(report.stages) == 6
    if not report.ok:
        assert report.failed_stage is not None and report.errors
        try:
            Sandbox.load(data, _LIMITS, SecurityPolicy.strict())
        except ValidationError as exc:
            assert exc.report.failed_stage == report.failed_stage
        else:  # pragma: no cover - would be a bug
            raise AssertionError("load accepted a module validate() refused")
        return
    try:
        with Sandbox.load(data, _LIMITS, SecurityPolicy.strict()) as box:
            box.handle(b"fuzz")
    except SandboxError:
        pass  # a valid-but-hostile mutation may trap or break the ABI: typed, not a crash


@_SETTINGS
@given(st.binary(max_size=300))
def test_random_bytes_never_crash(data: bytes) -> None:
    _check(data)


@_SETTINGS
@given(st.binary(max_size=200).map(lambda b: b"\x00asm\x01\x00\x00\x00" + b))
def test_random_bodies_after_a_valid_header_never_crash(data: bytes) -> None:
    _check(data)


@_SETTINGS
@given(
    st.lists(
        st.tuples(st.integers(0, len(_ECHO) - 1), st.integers(0, 255)), min_size=1, max_size=4
    ),
    st.integers(8, len(_ECHO)),
)
def test_mutated_echo_never_crashes(edits: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(_ECHO)
    for index, value in edits:
        data[index] = value
    _check(bytes(data[:cut]))
