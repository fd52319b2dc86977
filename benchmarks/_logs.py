"""Benchmarks are applications: they configure logging (libraries only emit events)."""

from __future__ import annotations

import logging

import structlog


def quiet_logs(level: int = logging.WARNING) -> None:
    """Drop structlog events below ``level`` so per-message events don't swamp the figures.

    Args:
        level: The lowest level printed.
    """
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(level))
