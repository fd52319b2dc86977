"""What a plan asks the executor to do to the router: small immutable commands."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class SetWeights:
    """Set the weights of the named versions (``Router.set_weights``)."""

    weights: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Switch:
    """Send all traffic, pinned conversations included, to ``version`` (``Router.switch``)."""

    version: str


@dataclass(frozen=True, slots=True)
class Drain:
    """Drain ``version``: no new conversations; stop when idle or after ``timeout``."""

    version: str
    timeout: float | None = None


@dataclass(frozen=True, slots=True)
class Undrain:
    """Cancel a drain of ``version``."""

    version: str


@dataclass(frozen=True, slots=True)
class Retire:
    """Take ``version`` out now: conversations move to ``to``, in-flight messages finish."""

    version: str
    to: str | None = None


@dataclass(frozen=True, slots=True)
class HealthCheck:
    """Probe ``version``; the executor reports the result to ``Plan.on_health``."""

    version: str


@dataclass(frozen=True, slots=True)
class StartShadow:
    """Run every message of ``primary`` on ``shadow`` too and compare the replies."""

    primary: str
    shadow: str


@dataclass(frozen=True, slots=True)
class StopShadow:
    """Stop the parallel run."""


Action = SetWeights | Switch | Drain | Undrain | Retire | HealthCheck | StartShadow | StopShadow

__all__ = ["Action", "Drain", "HealthCheck", "Retire", "SetWeights", "StartShadow",
           "StopShadow", "Switch", "Undrain"]
