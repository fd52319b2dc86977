"""Names of rollout strategies, commands and outcomes."""

from __future__ import annotations

from enum import StrEnum


class Strategy(StrEnum):
    """Every rollout strategy (config agents: immediate, gradual, ab-test; WASM agents:
    immediate, blue-green, canary, graceful, traffic-splitting, parallel)."""

    IMMEDIATE = "immediate"
    GRADUAL = "gradual"
    AB_TEST = "ab-test"
    BLUE_GREEN = "blue-green"
    CANARY = "canary"
    GRACEFUL = "graceful"
    TRAFFIC_SPLITTING = "traffic-splitting"
    PARALLEL = "parallel"


class Command(StrEnum):
    """Operator commands to a running rollout."""

    PROMOTE = "promote"
    ABORT = "abort"
    ROLLBACK = "rollback"


class Outcome(StrEnum):
    """How a rollout ended (``running`` while it has not)."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    ROLLED_BACK = "rolled-back"
    ABORTED = "aborted"
    FAILED = "failed"

    @property
    def is_abort(self) -> bool:
        """Whether the new version did not take over (counted as an aborted rollout)."""
        return self in (Outcome.ROLLED_BACK, Outcome.ABORTED, Outcome.FAILED)


__all__ = ["Command", "Outcome", "Strategy"]
