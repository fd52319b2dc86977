"""Validated, fuel-metered, memory-capped WebAssembly sandboxes on wasmtime.

This package is a library of its own: it never imports :mod:`caxton`.
"""

__all__: list[str] = []
