"""The control port: protocol schema, ZeroMQ server and client, event stream, CURVE keys.

The public names below are loaded lazily (importing :mod:`caxton.control` is cheap, and
``python3 -m caxton.control.protocol`` runs without a double import).

* :mod:`caxton.control.protocol` — the single schema module (envelope, per-op args/results).
* :mod:`caxton.control.server` — :class:`ControlServer`, the ROUTER socket the node serves.
* :mod:`caxton.control.client` — :class:`ControlClient`, used by the CLI and the harness.
* :mod:`caxton.control.events` — :class:`EventPublisher` / :class:`EventSubscriber`.
* :mod:`caxton.control.keys` — CURVE key generation and the bind policy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from caxton.control.client import (
        ControlClient,
        NodeUnreachable,
        ReplyFrame,
        WindowFull,
        default_endpoint,
    )
    from caxton.control.events import EventPublisher, EventSubscriber, agent_topic
    from caxton.control.keys import (
        CurveClientConfig,
        CurveServerConfig,
        InsecureBind,
        KeyFileError,
        KeyPair,
        generate_keys,
        is_loopback_endpoint,
    )
    from caxton.control.protocol import (
        DEFAULT_CONTROL_ENDPOINT,
        DEFAULT_EVENTS_ENDPOINT,
        OPS,
        PROTOCOL_VERSION,
        Event,
        OpSpec,
        render_markdown,
        validate_args,
    )
    from caxton.control.server import ControlServer, Handler, LatencyRecorder

_LAZY: dict[str, str] = {
    "ControlClient": "client",
    "NodeUnreachable": "client",
    "ReplyFrame": "client",
    "WindowFull": "client",
    "default_endpoint": "client",
    "EventPublisher": "events",
    "EventSubscriber": "events",
    "agent_topic": "events",
    "CurveClientConfig": "keys",
    "CurveServerConfig": "keys",
    "InsecureBind": "keys",
    "KeyFileError": "keys",
    "KeyPair": "keys",
    "generate_keys": "keys",
    "is_loopback_endpoint": "keys",
    "DEFAULT_CONTROL_ENDPOINT": "protocol",
    "DEFAULT_EVENTS_ENDPOINT": "protocol",
    "OPS": "protocol",
    "PROTOCOL_VERSION": "protocol",
    "Event": "protocol",
    "OpSpec": "protocol",
    "render_markdown": "protocol",
    "validate_args": "protocol",
    "ControlServer": "server",
    "Handler": "server",
    "LatencyRecorder": "server",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'caxton.control' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"caxton.control.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "DEFAULT_CONTROL_ENDPOINT",
    "DEFAULT_EVENTS_ENDPOINT",
    "OPS",
    "PROTOCOL_VERSION",
    "ControlClient",
    "ControlServer",
    "CurveClientConfig",
    "CurveServerConfig",
    "Event",
    "EventPublisher",
    "EventSubscriber",
    "Handler",
    "InsecureBind",
    "KeyFileError",
    "KeyPair",
    "LatencyRecorder",
    "NodeUnreachable",
    "OpSpec",
    "ReplyFrame",
    "WindowFull",
    "agent_topic",
    "default_endpoint",
    "generate_keys",
    "is_loopback_endpoint",
    "render_markdown",
    "validate_args",
]
