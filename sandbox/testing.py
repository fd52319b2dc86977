"""Helpers for tests (ours and other packages'): module files and module builders.

The example modules live in the repository's ``agents/`` folder (benign ones) and
``agents/testing/`` (hostile and test-only ones).
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "AGENTS_DIR",
    "TESTING_DIR",
    "abi_module",
    "oversized_module",
    "read_example_module",
    "read_testing_module",
]

AGENTS_DIR = Path(__file__).resolve().parents[1] / "agents"
"""The repository's ``agents/`` folder."""

TESTING_DIR = AGENTS_DIR / "testing"
"""Test-only modules: echo_v2, flaky, slow, spin, infinite_loop, memory_bomb, ..."""


def read_example_module(name: str) -> bytes:
    """Read a module from ``agents/``.

    Args:
        name: File name, e.g. ``"echo.wat"``.

    Returns:
        The file's bytes.

    Raises:
        FileNotFoundError: If there is no such module.
    """
    return (AGENTS_DIR / name).read_bytes()


def read_testing_module(name: str) -> bytes:
    """Read a module from ``agents/testing/``; ``.wat`` is assumed when no suffix is given.

    Args:
        name: ``"flaky"``, ``"bad_magic.wasm"``, ...

    Returns:
        The file's bytes.

    Raises:
        FileNotFoundError: If there is no such module.
    """
    path = TESTING_DIR / name
    if not path.suffix:
        path = path.with_suffix(".wat")
    return path.read_bytes()


def abi_module(
    handle_body: str, *, extra: str = "", imports: str = "", memory: str = "1 16"
) -> bytes:
    """Build a minimal ABI v1 module around a custom ``handle`` body (as WAT text bytes).

    The module has the echo agent's ``inbox`` (a buffer at address 1024) and a ``handle``
    whose body is ``handle_body`` (it receives ``$len`` and must leave an i64 on the stack).

    Args:
        handle_body: WAT instructions of ``handle``.
        extra: More module fields (functions, exports, globals).
        imports: Import declarations (placed first).
        memory: Memory limits in pages, e.g. ``"1 16"`` or ``"1"``.

    Returns:
        WAT text as bytes (``Sandbox.load`` and ``validate`` accept it).
    """
    return f"""(module
  {imports}
  (memory (export "memory") {memory})
  (func (export "inbox") (param $size i32) (result i32)
    (local $need i32)
    (local.set $need (i32.shr_u (i32.add (local.get $size) (i32.const 66559)) (i32.const 16)))
    (if (i32.gt_u (local.get $need) (memory.size))
      (then
        (if (i32.eq (memory.grow (i32.sub (local.get $need) (memory.size))) (i32.const -1))
          (then (return (i32.const 0))))))
    (i32.const 1024))
  (func (export "handle") (param $len i32) (result i64)
    {handle_body})
  {extra})""".encode()


def _uleb(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def oversized_module(size: int) -> bytes:
    """A valid echo module padded with a custom section to at least ``size`` bytes.

    Args:
        size: Minimum size of the result in bytes.

    Returns:
        A module binary that is otherwise the echo agent.
    """
    import wasmtime

    base = bytes(wasmtime.wat2wasm(read_example_module("echo.wat").decode()))
    name = b"padding"
    pad = max(0, size - len(base))
    payload = _uleb(len(name)) + name + b"\x00" * pad
    return base + b"\x00" + _uleb(len(payload)) + payload
