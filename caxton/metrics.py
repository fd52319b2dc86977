"""Per-agent, per-version metrics: cheap to record, exported to Prometheus, summarised for monitor.

:class:`NodeMetrics` is owned by a node (never the process-global default registry, so several
nodes can live in one test process). The record path is on every message, so it only touches
plain Python counters under a per-series lock (~1 µs, see ``tests/caxton/test_metrics.py``);
Prometheus metric families are built from those counters when the endpoint is scraped, by a
custom collector, instead of updating prometheus-client objects (and their locks) per message.

Exported series (labels in braces):

* ``caxton_messages_total{agent,version}`` — messages handled (success or error);
* ``caxton_errors_total{agent,version,code}`` — messages that ended in a typed error, by code;
* ``caxton_response_seconds{agent,version}`` — response-time histogram;
* ``caxton_success_ratio{agent,version}`` — successful / handled, since start;
* ``caxton_restarts_total{agent,version}``;
* ``caxton_breaker_state{agent,version}`` — 0 closed, 1 half-open, 2 open;
* ``caxton_fuel_consumed_total{agent,version}`` and ``caxton_memory_bytes{agent,version}``;
* ``caxton_reloads_total{agent,strategy,outcome}``;
* ``caxton_rollout_aborts_total{agent,reason}``;
* the standard ``process_*`` metrics of the node process.

:meth:`NodeMetrics.snapshot` gives what ``caxton agents monitor`` and rollout analysis need:
counts, success rate, and p50/p99 over the last :data:`WINDOW` responses of each version.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, ProcessCollector, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

#: Upper bounds (seconds) of the response-time histogram buckets (``+Inf`` is implied).
BUCKETS: tuple[float, ...] = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)
#: Number of most recent response times kept per version for percentiles (a power of two).
WINDOW = 1024
_MASK = WINDOW - 1

BREAKER_STATES: dict[str, int] = {"closed": 0, "half_open": 1, "open": 2}


def _breaker_value(state: object) -> int:
    key = str(getattr(state, "value", state)).strip().lower().replace("-", "_")
    try:
        return BREAKER_STATES[key]
    except KeyError:
        raise ValueError(
            f"unknown breaker state {state!r}; use closed, half_open or open"
        ) from None


class _Series:
    """Counters of one (agent, version)."""

    __slots__ = (
        "agent", "breaker", "buckets", "errors", "fuel", "lock", "memory", "messages",
        "restarts", "seconds_sum", "window", "window_fill", "window_pos",
    )

    def __init__(self, agent: str, version: str) -> None:
        self.agent = agent
        self.lock = threading.Lock()
        self.messages = 0
        self.errors: dict[str, int] = {}
        self.seconds_sum = 0.0
        self.buckets = [0] * (len(BUCKETS) + 1)
        self.window = [0.0] * WINDOW
        self.window_pos = 0
        self.window_fill = 0
        self.restarts = 0
        self.breaker = 0
        self.fuel = 0
        self.memory = 0


def _percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    idx = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[idx]


@dataclass(frozen=True, slots=True)
class VersionStats:
    """Metrics of one agent version.

    Attributes:
        version: The version string.
        messages: Messages handled since start.
        errors: Messages that ended in an error, since start.
        errors_by_code: ``errors`` split by error code.
        success_rate: ``(messages - errors) / messages``, or ``None`` before any message.
        p50: Median response time (seconds) over the last :data:`WINDOW` messages.
        p99: 99th percentile response time over the same window.
        mean: Mean response time since start.
        restarts: Restarts of this version's instance.
        breaker: ``closed``, ``half_open`` or ``open``.
        fuel_consumed: WASM fuel consumed since start.
        memory_bytes: Last reported memory of the instance.
    """

    version: str
    messages: int
    errors: int
    errors_by_code: dict[str, int]
    success_rate: float | None
    p50: float | None
    p99: float | None
    mean: float | None
    restarts: int
    breaker: str
    fuel_consumed: int
    memory_bytes: int


@dataclass(frozen=True, slots=True)
class AgentStats:
    """Metrics of one agent, in total and per version (what ``caxton agents monitor`` shows).

    Attributes:
        agent: The agent name.
        messages: Messages handled by all versions.
        errors: Errors of all versions.
        success_rate: Over all versions, or ``None`` before any message.
        p50: Median response time over the recent windows of all versions.
        p99: 99th percentile over the same.
        restarts: Restarts of all versions.
        versions: Per-version metrics.
        reloads: Reload count by ``(strategy, outcome)``.
        rollout_aborts: Aborted rollouts by reason.
    """

    agent: str
    messages: int
    errors: int
    success_rate: float | None
    p50: float | None
    p99: float | None
    restarts: int
    versions: dict[str, VersionStats] = field(default_factory=dict)
    reloads: dict[tuple[str, str], int] = field(default_factory=dict)
    rollout_aborts: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the stats as JSON-compatible data (for the control protocol).

        Returns:
            A dict; reload keys are rendered as ``"strategy/outcome"``.
        """
        return {
            "agent": self.agent,
            "messages": self.messages,
            "errors": self.errors,
            "success_rate": self.success_rate,
            "p50": self.p50,
            "p99": self.p99,
            "restarts": self.restarts,
            "versions": {
                v: {
                    "messages": s.messages, "errors": s.errors,
                    "errors_by_code": dict(s.errors_by_code), "success_rate": s.success_rate,
                    "p50": s.p50, "p99": s.p99, "mean": s.mean, "restarts": s.restarts,
                    "breaker": s.breaker, "fuel_consumed": s.fuel_consumed,
                    "memory_bytes": s.memory_bytes,
                }
                for v, s in self.versions.items()
            },
            "reloads": {f"{k[0]}/{k[1]}": n for k, n in self.reloads.items()},
            "rollout_aborts": dict(self.rollout_aborts),
        }


class MetricsServer:
    """A running Prometheus endpoint (see :meth:`NodeMetrics.serve`).

    Attributes:
        host: The bound address.
        port: The bound port (the real one when 0 was requested).
    """

    def __init__(self, server: Any, thread: threading.Thread, host: str) -> None:
        self._server = server
        self._thread = thread
        self.host = host
        self.port = int(server.server_port)

    @property
    def url(self) -> str:
        """The scrape URL."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        """Stop serving and release the port (idempotent)."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(5)
        self._server.server_close()


class NodeMetrics(Collector):
    """The node's metrics on its own :class:`~prometheus_client.CollectorRegistry`.

    Args:
        process_metrics: Also export the standard ``process_*`` metrics (CPU, RSS, fds).
    """

    def __init__(self, *, process_metrics: bool = True) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self._lock = threading.Lock()
        self._series: dict[tuple[str, str], _Series] = {}
        self._reloads: dict[tuple[str, str, str], int] = {}
        self._aborts: dict[tuple[str, str], int] = {}
        self.registry.register(self)
        if process_metrics:
            ProcessCollector(registry=self.registry)

    # -- recording (hot path first) -------------------------------------------------------

    def _new(self, agent: str, version: str) -> _Series:
        with self._lock:
            s = self._series.get((agent, version))
            if s is None:
                s = self._series[(agent, version)] = _Series(agent, version)
            return s

    def record_message(
        self, agent: str, version: str, seconds: float, error: str | None = None
    ) -> None:
        """Count one handled message and its response time.

        Args:
            agent: The agent name.
            version: The version that handled it.
            seconds: Response time.
            error: The error code when the message ended in a typed error (``ErrorCode`` or
                its string), else ``None``.
        """
        s = self._series.get((agent, version))
        if s is None:
            s = self._new(agent, version)
        i = bisect_left(BUCKETS, seconds)
        with s.lock:
            s.messages += 1
            s.seconds_sum += seconds
            s.buckets[i] += 1
            pos = s.window_pos
            s.window[pos] = seconds
            s.window_pos = (pos + 1) & _MASK
            if s.window_fill < WINDOW:
                s.window_fill += 1
            if error is not None:
                code = str(error)
                s.errors[code] = s.errors.get(code, 0) + 1

    def record_error(self, agent: str, version: str, code: str) -> None:
        """Count an error that is not a handled message's outcome (e.g. a crash on start).

        Args:
            agent: The agent name.
            version: The version.
            code: The error code.
        """
        s = self._series.get((agent, version)) or self._new(agent, version)
        with s.lock:
            s.errors[str(code)] = s.errors.get(str(code), 0) + 1

    def record_restart(self, agent: str, version: str) -> None:
        """Count a restart of a version's instance.

        Args:
            agent: The agent name.
            version: The version restarted.
        """
        s = self._series.get((agent, version)) or self._new(agent, version)
        with s.lock:
            s.restarts += 1

    def set_breaker_state(self, agent: str, version: str, state: object) -> None:
        """Record the circuit breaker state of a version.

        Args:
            agent: The agent name.
            version: The version.
            state: ``closed``, ``half_open`` (or ``half-open``) or ``open``; an enum whose
                value is one of those also works.

        Raises:
            ValueError: Unknown state.
        """
        value = _breaker_value(state)
        s = self._series.get((agent, version)) or self._new(agent, version)
        s.breaker = value

    def record_fuel(self, agent: str, version: str, fuel: int) -> None:
        """Add WASM fuel consumed by one call.

        Args:
            agent: The agent name.
            version: The version.
            fuel: Fuel units consumed.
        """
        s = self._series.get((agent, version)) or self._new(agent, version)
        with s.lock:
            s.fuel += int(fuel)

    def set_memory(self, agent: str, version: str, nbytes: int) -> None:
        """Record the memory currently used by a version's instance.

        Args:
            agent: The agent name.
            version: The version.
            nbytes: Bytes in use.
        """
        s = self._series.get((agent, version)) or self._new(agent, version)
        s.memory = int(nbytes)

    def record_reload(self, agent: str, strategy: str, outcome: str) -> None:
        """Count a reload or deploy rollout and how it ended.

        Args:
            agent: The agent name.
            strategy: The strategy used (``immediate``, ``canary``, ...).
            outcome: ``success``, ``rolled_back``, ``failed``, ...
        """
        key = (agent, str(strategy), str(outcome))
        with self._lock:
            self._reloads[key] = self._reloads.get(key, 0) + 1

    def record_rollout_abort(self, agent: str, reason: str) -> None:
        """Count a rollout aborted (rolled back automatically or by command).

        Args:
            agent: The agent name.
            reason: Why, e.g. ``error_rate``, ``latency``, ``restarts``, ``manual``.
        """
        key = (agent, str(reason))
        with self._lock:
            self._aborts[key] = self._aborts.get(key, 0) + 1

    def forget(self, agent: str, version: str | None = None) -> None:
        """Drop the series of a removed agent (or of one retired version).

        Args:
            agent: The agent name.
            version: Only this version; ``None`` drops the agent's series, reloads and aborts.
        """
        with self._lock:
            for key in [k for k in self._series if k[0] == agent]:
                if version is None or key[1] == version:
                    del self._series[key]
            if version is None:
                self._reloads = {k: v for k, v in self._reloads.items() if k[0] != agent}
                self._aborts = {k: v for k, v in self._aborts.items() if k[0] != agent}

    # -- reading --------------------------------------------------------------------------

    def agents(self) -> list[str]:
        """Return the agents with recorded metrics.

        Returns:
            Sorted agent names.
        """
        with self._lock:
            return sorted({k[0] for k in self._series} | {k[0] for k in self._reloads}
                          | {k[0] for k in self._aborts})

    @staticmethod
    def _copy(s: _Series) -> tuple[int, dict[str, int], float, list[int], list[float], int,
                                   int, int, int]:
        with s.lock:
            fill = s.window_fill
            window = s.window[:fill] if fill < WINDOW else list(s.window)
            return (s.messages, dict(s.errors), s.seconds_sum, list(s.buckets), window,
                    s.restarts, s.breaker, s.fuel, s.memory)

    def snapshot(self, agent: str) -> AgentStats:
        """Summarise one agent's metrics.

        Args:
            agent: The agent name (an agent with no metrics gives zero counts).

        Returns:
            Totals and per-version figures.
        """
        with self._lock:
            series = sorted((k[1], s) for k, s in self._series.items() if k[0] == agent)
            reloads = {(k[1], k[2]): n for k, n in self._reloads.items() if k[0] == agent}
            aborts = {k[1]: n for k, n in self._aborts.items() if k[0] == agent}
        names = {v: k for k, v in BREAKER_STATES.items()}
        versions: dict[str, VersionStats] = {}
        all_window: list[float] = []
        total = errors = restarts = 0
        for version, s in series:
            messages, by_code, secs, _, window, rst, breaker, fuel, mem = self._copy(s)
            n_err = sum(by_code.values())
            ordered = sorted(window)
            all_window.extend(window)
            versions[version] = VersionStats(
                version=version,
                messages=messages,
                errors=n_err,
                errors_by_code=by_code,
                success_rate=(max(0, messages - n_err) / messages) if messages else None,
                p50=_percentile(ordered, 0.50),
                p99=_percentile(ordered, 0.99),
                mean=secs / messages if messages else None,
                restarts=rst,
                breaker=names[breaker],
                fuel_consumed=fuel,
                memory_bytes=mem,
            )
            total += messages
            errors += n_err
            restarts += rst
        all_window.sort()
        return AgentStats(
            agent=agent,
            messages=total,
            errors=errors,
            success_rate=(max(0, total - errors) / total) if total else None,
            p50=_percentile(all_window, 0.50),
            p99=_percentile(all_window, 0.99),
            restarts=restarts,
            versions=versions,
            reloads=reloads,
            rollout_aborts=aborts,
        )

    def collect(self) -> Iterable[Metric]:
        """Build the Prometheus metric families from the counters (called on each scrape).

        Returns:
            The metric families.
        """
        return list(self._families())

    def _families(self) -> Iterator[Metric]:
        av = ["agent", "version"]
        messages = CounterMetricFamily("caxton_messages", "Messages handled", labels=av)
        errs = CounterMetricFamily("caxton_errors", "Messages that ended in a typed error",
                                   labels=[*av, "code"])
        hist = HistogramMetricFamily("caxton_response_seconds", "Response time", labels=av)
        ratio = GaugeMetricFamily("caxton_success_ratio", "Successful / handled messages",
                                  labels=av)
        restarts = CounterMetricFamily("caxton_restarts", "Instance restarts", labels=av)
        breaker = GaugeMetricFamily("caxton_breaker_state",
                                    "Circuit breaker: 0 closed, 1 half-open, 2 open", labels=av)
        fuel = CounterMetricFamily("caxton_fuel_consumed", "WASM fuel consumed", labels=av)
        memory = GaugeMetricFamily("caxton_memory_bytes", "Instance memory in use", labels=av)
        with self._lock:
            items = sorted(self._series.items())
            reload_items = sorted(self._reloads.items())
            abort_items = sorted(self._aborts.items())
        bounds = [repr(b) for b in BUCKETS] + ["+Inf"]
        for (agent, version), s in items:
            n, by_code, secs, buckets, _, rst, brk, fu, mem = self._copy(s)
            labels = [agent, version]
            messages.add_metric(labels, n)
            for code, count in sorted(by_code.items()):
                errs.add_metric([*labels, code], count)
            cumulative, acc = [], 0
            for bound, count in zip(bounds, buckets, strict=True):
                acc += count
                cumulative.append((bound, acc))
            hist.add_metric(labels, cumulative, secs)
            if n:
                ratio.add_metric(labels, max(0, n - sum(by_code.values())) / n)
            restarts.add_metric(labels, rst)
            breaker.add_metric(labels, brk)
            fuel.add_metric(labels, fu)
            memory.add_metric(labels, mem)
        reloads = CounterMetricFamily("caxton_reloads", "Reloads and rollouts by outcome",
                                      labels=["agent", "strategy", "outcome"])
        for (agent, strategy, outcome), count in reload_items:
            reloads.add_metric([agent, strategy, outcome], count)
        aborts = CounterMetricFamily("caxton_rollout_aborts", "Rollouts aborted",
                                     labels=["agent", "reason"])
        for (agent, reason), count in abort_items:
            aborts.add_metric([agent, reason], count)
        yield from (messages, errs, hist, ratio, restarts, breaker, fuel, memory, reloads, aborts)

    def serve(self, host: str = "127.0.0.1", port: int = 9464) -> MetricsServer:
        """Expose the registry on ``http://host:port/metrics`` from a daemon thread.

        Args:
            host: Address to bind (loopback by default).
            port: Port to bind; 0 picks a free one (see :attr:`MetricsServer.port`).

        Returns:
            The running server; call :meth:`MetricsServer.close` to stop it.

        Raises:
            OSError: The address cannot be bound.
        """
        server, thread = start_http_server(port, addr=host, registry=self.registry)
        return MetricsServer(server, thread, host)


__all__ = [
    "BREAKER_STATES",
    "BUCKETS",
    "WINDOW",
    "AgentStats",
    "MetricsServer",
    "NodeMetrics",
    "VersionStats",
]
