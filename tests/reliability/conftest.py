"""Fixtures of the reliability suite: a real ``python -m caxton`` subprocess per test (or per
module), on free loopback ports with a temporary data dir, always killed at the end."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from benchmarks.load.node import NodeProcess
from benchmarks.load.scenarios import agent_kind, call, deploy_many


@pytest.fixture
def node() -> Iterator[NodeProcess]:
    """A fresh node for one test."""
    proc = NodeProcess()
    try:
        proc.start()
        yield proc
    finally:
        proc.kill9()
        proc.cleanup()


@pytest.fixture(scope="module")
def shared_node() -> Iterator[NodeProcess]:
    """One node for a whole module (tests use distinct agent names)."""
    proc = NodeProcess()
    try:
        proc.start()
        yield proc
    finally:
        proc.kill9()
        proc.cleanup()


def deploy_echo(endpoint: str, names: list[str], kind: str = "wasm-echo") -> dict[str, Any]:
    """Deploy echo agents and insist they all deployed."""
    out = deploy_many(endpoint, agent_kind(kind), names, window=16)
    assert out["ok"] == len(names), out
    return out


def status_of(endpoint: str) -> Any:
    """``node.status``."""
    return call(endpoint, "node.status", timeout=10.0)
