"""Message routing for one agent across its version instances (issue 5).

A :class:`Router` per agent name holds the live versions (each reached through a
:class:`VersionHandle`), their weights, and the conversation → version pins; it routes without
an extra actor hop, counts in-flight messages per version, drains versions and keeps the
per-version metrics rollouts are judged by.
"""

from caxton.routing.assignment import WeightedAssigner
from caxton.routing.futures import ReplyFuture, as_caxton_error
from caxton.routing.handle import ActorVersionHandle, VersionHandle, ask
from caxton.routing.metrics import MetricsSnapshot, VersionMetrics, percentile
from caxton.routing.pins import PinTable
from caxton.routing.router import Comparator, Router, replies_agree
from caxton.routing.status import RouterStatus, ShadowStatus, VersionState, VersionStatus
from caxton.routing.table import DrainTimeout, PollResult, Retirement, RoutingTable

__all__ = [
    "ActorVersionHandle",
    "Comparator",
    "DrainTimeout",
    "MetricsSnapshot",
    "PinTable",
    "PollResult",
    "ReplyFuture",
    "Retirement",
    "Router",
    "RouterStatus",
    "RoutingTable",
    "ShadowStatus",
    "VersionHandle",
    "VersionMetrics",
    "VersionState",
    "VersionStatus",
    "WeightedAssigner",
    "as_caxton_error",
    "ask",
    "percentile",
    "replies_agree",
]
