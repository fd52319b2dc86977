"""Caxton: an actor runtime that deploys, supervises, hot-reloads and sandboxes agents.

The Python API is :class:`AgentLifecycleManager` with the operations guide's value types::

    from caxton import AgentLifecycleManager, DeploymentConfig

    with AgentLifecycleManager() as manager:
        manager.deploy_config_agent("agents/echo.md")
        reply = manager.send("echo", "hello")

Names are loaded lazily (PEP 562), so ``import caxton.cli`` does not load the runtime.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY: dict[str, str] = {
    "AgentLifecycleManager": "caxton.manager",
    "SupervisionSettings": "caxton.manager",
    "CaxtonError": "caxton.errors",
    "ErrorCode": "caxton.errors",
    "Message": "caxton.messages",
    "Performative": "caxton.messages",
    "RolloutConfig": "caxton.rollout",
    **{name: "caxton.deployment" for name in (
        "AgentStatus", "AgentType", "AgentVersion", "DeploymentConfig", "DeploymentFuelLimit",
        "DeploymentMemoryLimit", "DeploymentResult", "DeploymentStrategy", "HotReloadConfig",
        "HotReloadResult", "HotReloadStrategy", "OperationResult", "ResourceRequirements",
        "WasmAgentStatus", "WasmSecurityPolicy")},
}

if TYPE_CHECKING:
    from caxton.deployment import (
        AgentStatus,
        AgentType,
        AgentVersion,
        DeploymentConfig,
        DeploymentFuelLimit,
        DeploymentMemoryLimit,
        DeploymentResult,
        DeploymentStrategy,
        HotReloadConfig,
        HotReloadResult,
        HotReloadStrategy,
        OperationResult,
        ResourceRequirements,
        WasmAgentStatus,
        WasmSecurityPolicy,
    )
    from caxton.errors import CaxtonError, ErrorCode
    from caxton.manager import AgentLifecycleManager, SupervisionSettings
    from caxton.messages import Message, Performative
    from caxton.rollout import RolloutConfig


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'caxton' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "AgentLifecycleManager",
    "AgentStatus",
    "AgentType",
    "AgentVersion",
    "CaxtonError",
    "DeploymentConfig",
    "DeploymentFuelLimit",
    "DeploymentMemoryLimit",
    "DeploymentResult",
    "DeploymentStrategy",
    "ErrorCode",
    "HotReloadConfig",
    "HotReloadResult",
    "HotReloadStrategy",
    "Message",
    "OperationResult",
    "Performative",
    "ResourceRequirements",
    "RolloutConfig",
    "SupervisionSettings",
    "WasmAgentStatus",
    "WasmSecurityPolicy",
    "__version__",
]
