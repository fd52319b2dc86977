"""Shared fixtures for the whole suite."""

from __future__ import annotations

from collections.abc import Iterator

import pykka
import pytest


@pytest.fixture(autouse=True)
def _stop_all_actors() -> Iterator[None]:
    """Stop every pykka actor a test left running, so tests never leak threads."""
    yield
    pykka.ActorRegistry.stop_all(block=True, timeout=10)
