"""Child specifications: what a supervisor starts, and how it treats each child's exit."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import pykka

__all__ = ["AutoShutdown", "ChildSpec", "Restart", "Strategy"]


class Restart(StrEnum):
    """When a child is restarted after it exits (OTP's ``restart`` key)."""

    PERMANENT = "permanent"
    """Always restarted, whatever the exit reason."""
    TRANSIENT = "transient"
    """Restarted only after an abnormal exit (an exception or ``fail()``)."""
    TEMPORARY = "temporary"
    """Never restarted; its spec is dropped once it exits."""


class Strategy(StrEnum):
    """Which siblings are restarted with a failed child (OTP's restart strategies)."""

    ONE_FOR_ONE = "one_for_one"
    """Only the child that exited."""
    ONE_FOR_ALL = "one_for_all"
    """Every child: the others are stopped (reverse start order), then all start again."""
    REST_FOR_ONE = "rest_for_one"
    """The child that exited and every child started after it."""


class AutoShutdown(StrEnum):
    """When the exit of ``significant`` children shuts the supervisor down (OTP 24)."""

    NEVER = "never"
    ANY_SIGNIFICANT = "any_significant"
    ALL_SIGNIFICANT = "all_significant"


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """How to start one child and what to do when it exits.

    Args:
        id: Unique name of the child under its supervisor.
        start: Zero-argument callable that starts the child and returns its
            :class:`pykka.ActorRef`. The actor must mix in
            :class:`supervisors.Supervised` so that it reports its exit. It is
            called again, for a fresh instance, on every restart.
        restart: When to restart the child after it exits.
        shutdown: Seconds the child gets to finish its mailbox and stop when its
            supervisor stops it; after that it is abandoned (never a hang).
        significant: With ``auto_shutdown`` on the supervisor, whether this child's
            exit can shut the supervisor down. Only transient or temporary children
            may be significant.

    Raises:
        ValueError: if a field is out of range.
        TypeError: if ``start`` is not callable.
    """

    id: str
    start: Callable[[], pykka.ActorRef[Any]]
    restart: Restart = Restart.PERMANENT
    shutdown: float = 5.0
    significant: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise ValueError(f"ChildSpec.id must be a non-empty string, got {self.id!r}")
        if not callable(self.start):
            raise TypeError(
                f"ChildSpec {self.id!r}: start must be a zero-argument callable returning "
                f"an ActorRef, got {type(self.start).__name__}"
            )
        object.__setattr__(self, "restart", Restart(self.restart))
        if not (isinstance(self.shutdown, int | float) and math.isfinite(self.shutdown)) or (
            self.shutdown <= 0
        ):
            raise ValueError(
                f"ChildSpec {self.id!r}: shutdown must be a finite number of seconds > 0, "
                f"got {self.shutdown!r} (a child that ignores stop is abandoned after it)"
            )
        if self.significant and self.restart is Restart.PERMANENT:
            raise ValueError(
                f"ChildSpec {self.id!r}: a significant child must be transient or temporary, "
                "not permanent (a permanent child is always restarted, so its exit could "
                "never shut the supervisor down)"
            )
