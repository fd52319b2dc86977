"""Read-only views of a router: version states and the status snapshot."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from caxton.routing.metrics import MetricsSnapshot


class VersionState(StrEnum):
    """Where a version instance is in its routed life."""

    ACTIVE = "Active"
    DRAINING = "Draining"
    STOPPED = "Stopped"


@dataclass(frozen=True, slots=True)
class VersionStatus:
    """One version as the router sees it.

    Attributes:
        version: The version label.
        state: Active, Draining or Stopped.
        weight: Share of new conversations (relative to the other weights).
        in_flight: Messages delivered and not yet completed (queued + running).
        pinned: Conversations pinned to this version.
        metrics: Metrics over the requested window.
        drain_deadline: When a drain times out (router clock), if draining with a timeout.
        stop_reason: Why it stopped (``drained``, ``drain_timeout``, ``removed``), if stopped.
    """

    version: str
    state: VersionState
    weight: int
    in_flight: int
    pinned: int
    metrics: MetricsSnapshot
    drain_deadline: float | None = None
    stop_reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the status as a plain map."""
        return {
            "version": self.version, "state": str(self.state), "weight": self.weight,
            "in_flight": self.in_flight, "pinned": self.pinned,
            "metrics": self.metrics.to_dict(), "drain_deadline": self.drain_deadline,
            "stop_reason": self.stop_reason,
        }


@dataclass(frozen=True, slots=True)
class ShadowStatus:
    """Progress of a parallel (shadow) comparison.

    Attributes:
        primary: The version whose replies are returned.
        shadow: The version that also runs every message.
        agreed: Messages whose replies matched.
        disagreed: Messages whose replies differed (or only one side failed).
        last_disagreement: A short description of the latest mismatch.
    """

    primary: str
    shadow: str
    agreed: int = 0
    disagreed: int = 0
    last_disagreement: str | None = None


@dataclass(frozen=True, slots=True)
class RouterStatus:
    """A consistent snapshot of one agent's router.

    Attributes:
        agent: The agent name.
        versions: Live versions, then recently stopped ones.
        conversations: Pinned conversations in total.
        shadow: The parallel comparison, if one runs.
        taken_at: Router clock time of the snapshot.
    """

    agent: str
    versions: tuple[VersionStatus, ...]
    conversations: int
    shadow: ShadowStatus | None = None
    taken_at: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def version(self, name: str) -> VersionStatus | None:
        """Return the newest status entry of version ``name``, or ``None``."""
        for status in self.versions:
            if status.version == name:
                return status
        return None

    def weights(self) -> dict[str, int]:
        """Return ``{version: weight}`` of the live (non-stopped) versions."""
        return {v.version: v.weight for v in self.versions if v.state is not VersionState.STOPPED}

    def to_dict(self) -> dict[str, Any]:
        """Return the status as a plain map."""
        return {
            "agent": self.agent,
            "versions": [v.to_dict() for v in self.versions],
            "conversations": self.conversations,
            "shadow": None if self.shadow is None else {
                "primary": self.shadow.primary, "shadow": self.shadow.shadow,
                "agreed": self.shadow.agreed, "disagreed": self.shadow.disagreed,
                "last_disagreement": self.shadow.last_disagreement,
            },
        }


__all__ = ["RouterStatus", "ShadowStatus", "VersionState", "VersionStatus"]
