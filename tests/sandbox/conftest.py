"""Fixtures for the sandbox tests: load modules and always close what a test opened."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from sandbox import HostCallbacks, ResourceLimits, Sandbox, SecurityPolicy
from sandbox.testing import read_example_module, read_testing_module

Loader = Callable[..., Sandbox]


@pytest.fixture
def load() -> Iterator[Loader]:
    """``load(module_or_name, limits=..., policy=..., host=...)``; closes every sandbox after.

    A ``str`` names a module: ``"echo"``/``"counter"`` from ``agents/``, anything else from
    ``agents/testing/``.
    """
    opened: list[Sandbox] = []

    def _load(
        module: bytes | str,
        limits: ResourceLimits | None = None,
        policy: SecurityPolicy | None = None,
        host: HostCallbacks | None = None,
    ) -> Sandbox:
        if isinstance(module, str):
            module = (
                read_example_module(f"{module}.wat")
                if module in ("echo", "counter")
                else read_testing_module(module)
            )
        box = Sandbox.load(module, limits, policy, host)
        opened.append(box)
        return box

    yield _load
    for box in opened:
        box.close()
