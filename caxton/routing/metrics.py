"""Live per-version metrics the rollout analysis reads.

Samples are time-stamped so a snapshot can cover any window (e.g. one canary step). Each
version's metrics have their own lock: completions record on the instance's thread without the
router lock, and a snapshot copies the samples under it and summarises them outside it.
"""

from __future__ import annotations

import threading
from array import array
from collections import deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any


class SampleRing:
    """The newest ``capacity`` ``(time, value)`` samples, in two typed arrays.

    A tuple per sample cost ~140 bytes, so a busy version holding 20,000 of them took
    ~2.8 MB (and 10,000 agents many GB); two ``array('d')`` cost 16 bytes a sample. The arrays
    grow as samples arrive (an idle version costs nothing) and then wrap. Not thread-safe:
    :class:`VersionMetrics` holds its lock around it.

    Args:
        capacity: Samples kept.
    """

    __slots__ = ("_pos", "_t", "_v", "capacity")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._t = array("d")
        self._v = array("d")
        self._pos = 0  # next slot to overwrite, once full

    def append(self, t: float, value: float) -> None:
        """Add one sample, dropping the oldest when full."""
        if len(self._t) < self.capacity:
            self._t.append(t)
            self._v.append(value)
            return
        i = self._pos
        self._t[i] = t
        self._v[i] = value
        self._pos = (i + 1) % self.capacity

    def copy(self) -> SampleRing:
        """A snapshot (one copy of each array)."""
        out = SampleRing(self.capacity)
        out._t, out._v, out._pos = array("d", self._t), array("d", self._v), self._pos
        return out

    def since(self, lo: float) -> Iterator[float]:
        """The values of the samples taken at or after ``lo``."""
        return (v for t, v in zip(self._t, self._v, strict=True) if t >= lo)

    def __len__(self) -> int:
        return len(self._t)


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile of already sorted values.

    Args:
        sorted_values: Ascending values.
        q: The quantile in ``[0, 1]``.

    Returns:
        The percentile, or ``None`` for no values.
    """
    if not sorted_values:
        return None
    rank = max(0, min(len(sorted_values) - 1, int(q * len(sorted_values) + 0.5) - 1))
    return sorted_values[rank]


@dataclass(frozen=True, slots=True)
class MetricsSnapshot:
    """One version's metrics over a window.

    Attributes:
        requests: Messages completed in the window.
        errors: Of those, how many ended in an error (or a ``failure`` reply).
        p50_ms: Median latency in milliseconds (``None``: no samples).
        p99_ms: 99th percentile latency in milliseconds.
        restarts: Instance restarts reported in the window.
        breaker_trips: Circuit-breaker trips reported in the window.
        fuel_per_message: Mean fuel per message reported in the window (``None``: none).
        total_requests: Messages completed since the version was added.
        total_errors: Errors since the version was added.
    """

    requests: int = 0
    errors: int = 0
    p50_ms: float | None = None
    p99_ms: float | None = None
    restarts: int = 0
    breaker_trips: int = 0
    fuel_per_message: float | None = None
    total_requests: int = 0
    total_errors: int = 0

    @property
    def error_rate(self) -> float:
        """Errors / requests in the window (0 with no requests)."""
        return self.errors / self.requests if self.requests else 0.0

    @property
    def success_rate(self) -> float:
        """1 - error rate (1 with no requests)."""
        return 1.0 - self.error_rate

    def to_dict(self) -> dict[str, Any]:
        """Return the snapshot as a plain map (with the derived rates)."""
        out = asdict(self)
        out["error_rate"] = self.error_rate
        out["success_rate"] = self.success_rate
        return out


class VersionMetrics:
    """Accumulates one version's samples.

    Args:
        max_samples: Latency samples kept (oldest dropped first).
    """

    def __init__(self, max_samples: int = 20_000) -> None:
        # a failed message is stored as a negative latency (latencies are never negative)
        self._samples = SampleRing(max_samples)
        self._restarts: deque[float] = deque(maxlen=1000)
        self._trips: deque[float] = deque(maxlen=1000)
        self._fuel = SampleRing(max_samples)
        self.total_requests = 0
        self.total_errors = 0
        self._lock = threading.Lock()

    def record(self, now: float, latency: float, ok: bool) -> None:
        """Record one completed message (thread-safe).

        Args:
            now: Completion time.
            latency: Seconds from routing to completion.
            ok: Whether it ended in a non-failure reply.
        """
        with self._lock:
            self._samples.append(now, latency if ok else -latency - 1e-12)
            self.total_requests += 1
            if not ok:
                self.total_errors += 1

    def record_restart(self, now: float) -> None:
        """Record a restart of the version's instance."""
        with self._lock:
            self._restarts.append(now)

    def record_breaker_trip(self, now: float) -> None:
        """Record a circuit-breaker trip of the version's instance."""
        with self._lock:
            self._trips.append(now)

    def record_fuel(self, now: float, fuel: float) -> None:
        """Record the fuel one message consumed."""
        with self._lock:
            self._fuel.append(now, fuel)

    def snapshot(self, since: float | None = None) -> MetricsSnapshot:
        """Summarise samples completed at or after ``since`` (all kept samples if ``None``).

        Args:
            since: Window start.

        Returns:
            The snapshot.
        """
        lo = float("-inf") if since is None else since
        with self._lock:
            samples = self._samples.copy()
            fuel_samples = self._fuel.copy()
            restarts = sum(1 for t in self._restarts if t >= lo)
            trips = sum(1 for t in self._trips if t >= lo)
            total_requests, total_errors = self.total_requests, self.total_errors
        signed = list(samples.since(lo))
        errors = sum(1 for v in signed if v < 0)
        latencies = sorted(v if v >= 0 else -v - 1e-12 for v in signed)
        fuel = list(fuel_samples.since(lo))
        p50 = percentile(latencies, 0.50)
        p99 = percentile(latencies, 0.99)
        return MetricsSnapshot(
            requests=len(latencies),
            errors=errors,
            p50_ms=None if p50 is None else p50 * 1000.0,
            p99_ms=None if p99 is None else p99 * 1000.0,
            restarts=restarts,
            breaker_trips=trips,
            fuel_per_message=sum(fuel) / len(fuel) if fuel else None,
            total_requests=total_requests,
            total_errors=total_errors,
        )


__all__ = ["MetricsSnapshot", "SampleRing", "VersionMetrics", "percentile"]
