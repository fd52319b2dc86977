"""Value types of the Python API (the operations guide's names).

``DeploymentConfig.immediate()``, ``.canary()``, ``DeploymentConfig(strategy=
DeploymentStrategy.BLUE_GREEN)``, ``HotReloadConfig(HotReloadStrategy.GRACEFUL)``,
``ResourceRequirements(DeploymentMemoryLimit.from_mb(10), DeploymentFuelLimit(100_000))``,
``WasmSecurityPolicy.strict()``. Invalid values are refused at construction with a message
that names the value and the fix.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from caxton.errors import InvalidArgument
from caxton.rollout import RolloutConfig
from sandbox import ResourceLimits, SecurityPolicy

WasmSecurityPolicy = SecurityPolicy
"""The security policy a WASM module is validated against (``.strict()``, ``.default()``,
``.relaxed()``); the sandbox's :class:`sandbox.SecurityPolicy` under the guide's name."""

_MIB = 1024 * 1024


class AgentType(StrEnum):
    """The two kinds of agent."""

    CONFIG = "config"
    WASM = "wasm"


class DeploymentStrategy(StrEnum):
    """How a WASM deploy replaces what runs (the guide's deployment strategies)."""

    IMMEDIATE = "immediate"
    BLUE_GREEN = "blue-green"
    CANARY = "canary"


class HotReloadStrategy(StrEnum):
    """How a hot reload moves traffic to the new version."""

    IMMEDIATE = "immediate"
    GRACEFUL = "graceful"
    TRAFFIC_SPLITTING = "traffic-splitting"
    PARALLEL = "parallel"
    BLUE_GREEN = "blue-green"
    CANARY = "canary"
    GRADUAL = "gradual"


class AgentVersion(str):
    """A version label (``"1.2.0"`` or a generated unique one)."""

    __slots__ = ()

    @classmethod
    def generate(cls) -> AgentVersion:
        """Return a new unique version label."""
        return cls(uuid.uuid4().hex[:12])


@dataclass(frozen=True, slots=True)
class DeploymentMemoryLimit:
    """A WASM agent's memory cap in bytes (at least one 64 KiB page).

    Raises:
        InvalidArgument: The value is not a positive int of at least 65,536 bytes.
    """

    bytes: int

    def __post_init__(self) -> None:
        if not isinstance(self.bytes, int) or isinstance(self.bytes, bool) or self.bytes < 65536:
            raise InvalidArgument(
                f"DeploymentMemoryLimit({self.bytes!r}) is too small: a WASM memory needs at "
                "least one 64 KiB page; use e.g. DeploymentMemoryLimit.from_mb(10)"
            )

    @classmethod
    def from_mb(cls, mb: float) -> DeploymentMemoryLimit:
        """Build the limit from MiB (``from_mb(10)`` is 10 MiB).

        Raises:
            InvalidArgument: ``mb`` is not positive.
        """
        if not isinstance(mb, int | float) or mb <= 0:
            raise InvalidArgument(
                f"DeploymentMemoryLimit.from_mb({mb!r}): the memory limit must be a positive "
                "number of MiB, e.g. from_mb(10)"
            )
        return cls(int(mb * _MIB))

    @property
    def mb(self) -> float:
        """The limit in MiB."""
        return self.bytes / _MIB


@dataclass(frozen=True, slots=True)
class DeploymentFuelLimit:
    """Fuel (roughly, WebAssembly instructions) a WASM agent may spend per message.

    Raises:
        InvalidArgument: The value is not a positive int.
    """

    fuel: int

    def __post_init__(self) -> None:
        if not isinstance(self.fuel, int) or isinstance(self.fuel, bool) or self.fuel < 1:
            raise InvalidArgument(
                f"DeploymentFuelLimit({self.fuel!r}): fuel must be a positive int of "
                "instructions per message, e.g. DeploymentFuelLimit(100_000)"
            )

    @classmethod
    def try_new(cls, fuel: int) -> DeploymentFuelLimit:
        """The guide's spelling of the constructor."""
        return cls(fuel)


@dataclass(frozen=True, slots=True)
class ResourceRequirements:
    """Memory, fuel and wall-clock budget of a WASM agent.

    Attributes:
        memory: Memory cap.
        fuel: Fuel per message.
        timeout: Wall-clock deadline per message, seconds.
    """

    memory: DeploymentMemoryLimit = field(default_factory=lambda: DeploymentMemoryLimit.from_mb(16))
    fuel: DeploymentFuelLimit = field(default_factory=lambda: DeploymentFuelLimit(100_000_000))
    timeout: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.timeout, int | float) or self.timeout <= 0:
            raise InvalidArgument(
                f"ResourceRequirements timeout={self.timeout!r} must be a positive number of "
                "seconds per message"
            )

    def to_limits(self) -> ResourceLimits:
        """The sandbox's budgets for these requirements."""
        return ResourceLimits(memory_bytes=self.memory.bytes, fuel=self.fuel.fuel,
                              timeout=float(self.timeout))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe form (persisted with each version)."""
        return {"memory_bytes": self.memory.bytes, "fuel": self.fuel.fuel,
                "timeout": self.timeout}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ResourceRequirements:
        """Inverse of :meth:`to_dict`."""
        return cls(DeploymentMemoryLimit(int(data["memory_bytes"])),
                   DeploymentFuelLimit(int(data["fuel"])), float(data.get("timeout", 1.0)))


@dataclass(frozen=True, slots=True)
class DeploymentConfig:
    """How to deploy a WASM agent.

    Attributes:
        strategy: Deployment strategy (for a new version replacing a running one).
        resource_requirements: Budgets.
        security_policy: Policy the module is validated against.
        rollout: Strategy tunables (steps, durations, thresholds).
    """

    strategy: DeploymentStrategy = DeploymentStrategy.IMMEDIATE
    resource_requirements: ResourceRequirements = field(default_factory=ResourceRequirements)
    security_policy: SecurityPolicy = field(default_factory=SecurityPolicy.default)
    rollout: RolloutConfig | None = None

    @classmethod
    def immediate(cls) -> DeploymentConfig:
        """Replace at once."""
        return cls(DeploymentStrategy.IMMEDIATE)

    @classmethod
    def canary(cls, rollout: RolloutConfig | None = None) -> DeploymentConfig:
        """Canary steps with analysis and automatic rollback."""
        return cls(DeploymentStrategy.CANARY, rollout=rollout)

    @classmethod
    def blue_green(cls, rollout: RolloutConfig | None = None) -> DeploymentConfig:
        """Green beside blue, switch at once, blue kept warm for rollback."""
        return cls(DeploymentStrategy.BLUE_GREEN, rollout=rollout)

    @classmethod
    def new(cls, strategy: DeploymentStrategy) -> DeploymentConfig:
        """The guide's ``DeploymentConfig::new(strategy)``."""
        return cls(DeploymentStrategy(strategy))


@dataclass(frozen=True, slots=True)
class HotReloadConfig:
    """How to hot-reload a running agent.

    Attributes:
        strategy: The reload strategy.
        rollout: Strategy tunables.
        preserve_state: Hand the old instance's state to the new one (WASM ``snapshot``/
            ``restore``; config agents always keep memory and conversations).
        resource_requirements: New budgets (``None``: keep the current ones).
        security_policy: New policy (``None``: keep the current one).
    """

    strategy: HotReloadStrategy = HotReloadStrategy.IMMEDIATE
    rollout: RolloutConfig | None = None
    preserve_state: bool = True
    resource_requirements: ResourceRequirements | None = None
    security_policy: SecurityPolicy | None = None

    @classmethod
    def new(cls, strategy: HotReloadStrategy) -> HotReloadConfig:
        """The guide's ``HotReloadConfig::new(strategy)``."""
        return cls(HotReloadStrategy(strategy))


@dataclass(frozen=True, slots=True)
class OperationResult:
    """Outcome of a lifecycle operation.

    Attributes:
        agent: Agent name.
        agent_id: Agent id.
        operation: What was done (``deploy``, ``reload``, ``suspend`` ...).
        state: The lifecycle state afterwards.
        version: The version concerned.
        operation_id: Id of a long operation still running (rollouts), else ``None``.
        details: Anything more (rollout status, validation report ...).
    """

    agent: str
    agent_id: str
    operation: str
    state: str
    version: str | None = None
    operation_id: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {"agent": self.agent, "agent_id": self.agent_id, "operation": self.operation,
                "state": self.state, "version": self.version,
                "operation_id": self.operation_id, "details": self.details}


DeploymentResult = OperationResult
HotReloadResult = OperationResult


@dataclass(frozen=True, slots=True)
class AgentStatus:
    """What ``status`` shows for one agent of either kind.

    Attributes:
        name: Agent name.
        agent_id: Agent id.
        type: ``config`` or ``wasm``.
        state: Lifecycle state.
        version: Current version.
        versions: Versions kept for rollback, newest last.
        health_status: ``healthy``, ``degraded`` (restarting / some errors), ``unhealthy``
            (circuit open, failed) or ``stopped``.
        restarts: Restarts of the current version.
        last_error: Last exit reason or error.
        uptime: Seconds since the agent was deployed.
        instances: Router view of live versions (weights, in-flight, state, metrics).
        lifecycle: Transition history.
        memory_allocated: WASM linear memory in bytes (0 for config agents).
        fuel_consumed: WASM fuel used in total (0 for config agents).
        details: Kind-specific extras.
    """

    name: str
    agent_id: str
    type: AgentType
    state: str
    version: str
    versions: list[str]
    health_status: str
    restarts: int
    last_error: str | None
    uptime: float
    instances: list[dict[str, Any]]
    lifecycle: list[dict[str, Any]]
    memory_allocated: int = 0
    fuel_consumed: int = 0
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (what the control port returns)."""
        return {
            "name": self.name, "agent_id": self.agent_id, "type": str(self.type),
            "state": self.state, "version": self.version, "versions": list(self.versions),
            "health": self.health_status, "restarts": self.restarts,
            "last_error": self.last_error, "uptime": round(self.uptime, 3),
            "instances": self.instances, "lifecycle": self.lifecycle,
            "memory_allocated": self.memory_allocated, "fuel_consumed": self.fuel_consumed,
            "details": self.details,
        }


WasmAgentStatus = AgentStatus

__all__ = [
    "AgentStatus", "AgentType", "AgentVersion", "DeploymentConfig", "DeploymentFuelLimit",
    "DeploymentMemoryLimit", "DeploymentResult", "DeploymentStrategy", "HotReloadConfig",
    "HotReloadResult", "HotReloadStrategy", "OperationResult", "ResourceRequirements",
    "WasmAgentStatus", "WasmSecurityPolicy",
]
