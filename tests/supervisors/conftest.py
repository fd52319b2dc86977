"""Fixtures for the supervisors tests (helpers themselves live in supervisors.testing)."""

from __future__ import annotations

import pytest

from supervisors.testing import EventRecorder


@pytest.fixture
def recorder() -> EventRecorder:
    """A listener that keeps every supervisor event."""
    return EventRecorder()
