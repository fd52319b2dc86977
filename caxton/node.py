"""The node: ``python -m caxton``.

A :class:`Node` wires the runtime to the outside world:

* :class:`~caxton.manager.AgentLifecycleManager` with the durable :class:`~caxton.store.NodeStore`
  and the embedded :class:`~caxton.memory.MemoryStore`, both under the data dir;
* the control port (:class:`~caxton.control.server.ControlServer`) with one handler per op of
  :mod:`caxton.control.protocol`;
* the event stream (:class:`~caxton.control.events.EventPublisher`): lifecycle transitions,
  rollout steps, restarts, breaker changes and log records, topic-prefixed by agent;
* logging (configured once, here) and :class:`~caxton.metrics.NodeMetrics` (optionally on a
  Prometheus endpoint);
* watch mode (:mod:`caxton.watch`) over the agents dir.

Start-up order: restore every agent from the store, deploy the agents dir's files that are not
known yet (a broken file is logged and skipped), then bind the ports — so a node that answers
``node.status`` has everything back. SIGTERM/SIGINT (or the ``node.shutdown`` op) stop
accepting, drain agents within the drain timeout, persist and exit 0; a second signal exits at
once.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import itertools
import logging
import os
import signal
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import structlog

from caxton import __version__, errors
from caxton.config import ConfigError, NodeConfig, load_node_config
from caxton.control import protocol as p
from caxton.control.events import EventPublisher
from caxton.control.keys import CurveServerConfig
from caxton.control.server import ControlServer, Reply
from caxton.datadir import make_private
from caxton.deployment import (
    AgentType,
    DeploymentConfig,
    DeploymentFuelLimit,
    DeploymentMemoryLimit,
    DeploymentStrategy,
    OperationResult,
    ResourceRequirements,
)
from caxton.logging import LogHub, configure_logging
from caxton.messages import Performative, make_message
from caxton.metrics import MetricsServer, NodeMetrics
from caxton.naming import AGENT_SUFFIXES, wasm_agent_name
from caxton.rollout import AnalysisThresholds, RolloutConfig, RolloutStatus
from caxton.routing import ReplyFuture

_log = structlog.get_logger("caxton.node")

_REQUEST = Performative.REQUEST
_SEEN_FACT = "node.agents_dir_loaded"

_STATE_OF_OUTCOME = {
    "running": p.OperationState.RUNNING,
    "succeeded": p.OperationState.SUCCEEDED,
    "rolled-back": p.OperationState.ROLLED_BACK,
    "aborted": p.OperationState.ABORTED,
    "failed": p.OperationState.FAILED,
}

# Libraries that log chattily at INFO/DEBUG; the console shows their warnings only.
_QUIET_LOGGERS = ("pykka", "zmq", "httpx", "httpcore", "asyncio", "wasmtime")
# Loggers whose INFO records are routine bookkeeping: kept in the log file, the per-agent
# ring buffers and the event stream, but left off the console unless --log-level debug.
_CONSOLE_QUIET = ("supervisors", "caxton.routing", "caxton.control", "caxton.config_agents",
                  "caxton.conversation", "caxton.actors", "caxton.rollout", "caxton.manager",
                  "caxton.llm", "caxton.memory", "caxton.tools", "sandbox")
_ROUTINE_EVENTS = ("supervisor.", "supervisor_", "child_started", "child_terminated",
                   "child_deleted")


class _ConsoleFilter(logging.Filter):
    """Lets warnings through, and INFO only from the node's own loggers."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or not record.name.startswith(_CONSOLE_QUIET)


def _quiet_console() -> None:
    for handler in logging.getLogger().handlers:
        if type(handler) is logging.StreamHandler:
            handler.addFilter(_ConsoleFilter())


def _topic_kind(event: str) -> str:
    """Map a manager event name onto an event-stream kind (the topic's last part)."""
    if event.startswith(("rollout", "reload", "rollback", "ab_test")):
        return "rollout"
    if "breaker" in event:
        return "breaker"
    if "restart" in event or event.startswith(("supervisor.", "child_")):
        return "restart"
    return "lifecycle"


@dataclass
class _Operation:
    """A long operation (a rollout) the node tracks for ``operations.get``."""

    operation_id: str
    name: str
    kind: str
    strategy: str | None
    version: str | None
    state: p.OperationState = p.OperationState.RUNNING
    message: str | None = None
    started: float = field(default_factory=time.time)
    last: dict[str, Any] | None = None


class _Watched(Protocol):
    """What :class:`_Deadlines` watches: a control-port :class:`~caxton.control.server.Reply`
    (the first outcome wins; ``watch`` holds the deadline's key)."""

    watch: Any

    @property
    def done(self) -> bool: ...

    def fail(self, error: BaseException) -> bool: ...


class _Deadlines:
    """Fails ``message.send`` replies that outlive their timeout (one sweeper thread).

    One FIFO per distinct timeout value: entries of one FIFO expire in the order they were
    added (a monotonic clock), so adding is an append (no heap, no lock: ``deque.append`` is
    atomic) and the sweeper pops expired or answered entries from the left.

    The FIFOs hold only ``(deadline, key, agent)``; the replies still pending are in a map by
    key, which a reply leaves as it completes (:meth:`forget`). An answered message's reply
    is then freed at once rather than at the next sweep: held that long, every message's
    objects outlived the young GC generations, and their promotion made the collector run
    full collections of the whole heap every few thousand messages (~15% of the CPU of a
    small message; an entry of atomic values is untracked by the collector).
    """

    def __init__(self) -> None:
        self._fifos: dict[float, deque[tuple[float, int, str]]] = {}
        self._pending: dict[int, _Watched] = {}
        self._keys = itertools.count(1)
        self._fifos_lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._idle = True
        self._thread = threading.Thread(target=self._run, name="caxton-deadlines", daemon=True)
        self._thread.start()

    def add(self, future: _Watched, agent: str, timeout: float) -> None:
        """Fail ``future`` with ``TIMEOUT`` unless it completes within ``timeout`` seconds.

        Whoever completes it calls :meth:`forget` with its ``watch`` key afterwards.
        """
        fifo = self._fifos.get(timeout)
        if fifo is None:
            with self._fifos_lock:
                fifo = self._fifos.setdefault(timeout, deque())
        key = next(self._keys)
        future.watch = key
        self._pending[key] = future
        if future.done:  # it completed before it was in the map: its forget() missed it
            self._pending.pop(key, None)
        fifo.append((time.monotonic() + timeout, key, agent))
        if self._idle:
            self._idle = False
            self._wake.set()  # the sweeper sleeps while nothing is pending

    def forget(self, key: int | None) -> None:
        """Stop watching the future ``key`` (it completed; ``None``: it was never added)."""
        self._pending.pop(key, None)  # type: ignore[arg-type]

    def _run(self) -> None:
        pending_futures = self._pending
        while not self._stop.is_set():
            if self._idle:
                self._wake.wait()
                self._wake.clear()
                continue
            if self._stop.wait(0.05):
                break
            now = time.monotonic()
            pending = False
            for timeout, fifo in list(self._fifos.items()):
                while fifo:
                    deadline, key, agent = fifo[0]
                    future = pending_futures.get(key)
                    if future is not None and not future.done:
                        if deadline > now:
                            break
                        future.fail(errors.Timeout(
                            f"agent {agent!r} did not reply within {timeout:g}s; the message "
                            "may still be processed, its reply is dropped"))
                    pending_futures.pop(key, None)
                    fifo.popleft()  # only this thread pops
                pending = pending or bool(fifo)
            if not pending:
                self._idle = True
                # an add() between the scan and here saw _idle False and did not wake us:
                if any(self._fifos.values()):
                    self._idle = False

    def close(self) -> None:
        """Stop the sweeper, failing what is still pending with ``SHUTTING_DOWN``."""
        self._stop.set()
        self._wake.set()
        self._thread.join(2)
        for fifo in list(self._fifos.values()):
            while fifo:
                _, key, _ = fifo.popleft()
                future = self._pending.pop(key, None)
                if future is not None:
                    future.fail(errors.ShuttingDown("the node stopped before the reply"))


def _iso_to_epoch(stamp: Any) -> float | None:
    if not isinstance(stamp, str):
        return None
    try:
        return datetime.fromisoformat(stamp).timestamp()
    except ValueError:
        return None


_RSS_CACHE: list[float] = [0.0, 0.0]  # [monotonic time read, value]


def _rss_bytes(max_age: float = 1.0) -> int:
    """The process's resident set size (cached for ``max_age`` seconds: /proc costs ~30 us)."""
    now = time.monotonic()
    if now - _RSS_CACHE[0] < max_age:
        return int(_RSS_CACHE[1])
    _RSS_CACHE[0], _RSS_CACHE[1] = now, float(_read_rss())
    return int(_RSS_CACHE[1])


def _read_rss() -> int:
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def _end_conversation(manager: Any, agent: str, conversation_id: str | None) -> None:
    """``message send --end``: close the conversation after its reply (never fails the send)."""
    try:
        manager.end_conversation(agent, str(conversation_id))
    except errors.CaxtonError as exc:
        _log.info("node.end_conversation_failed", agent=agent, code=str(exc.code))


class Node:
    """One Caxton node: runtime, control port, event stream, metrics and watch mode.

    Args:
        config: The validated node configuration.
        hub: The log hub from :func:`caxton.logging.configure_logging` (``None``: logs are
            not buffered per agent and ``agents.logs`` returns nothing).
        tenant_cpus: CPUs for the tenant worker processes (empty: as inherited).

    Raises:
        OSError: The data dir cannot be created.
    """

    def __init__(self, config: NodeConfig, hub: LogHub | None = None, *,
                 tenant_cpus: tuple[int, ...] = ()) -> None:
        from caxton.manager import AgentLifecycleManager
        from caxton.memory import MemoryStore
        from caxton.store import NodeStore
        from caxton.tools import builtin_registry

        self.config = config
        self.hub = hub
        self.started_at = time.monotonic()
        self._latency_cache: tuple[float, dict[str, Any]] | None = None
        self.state = "starting"
        config.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._data_dir = str(config.data_dir.resolve())
        self._agents_dir = str(config.agents_dir.resolve())
        self.metrics = NodeMetrics()
        self.metrics_server: MetricsServer | None = None
        self.publisher: EventPublisher | None = None
        self.server: ControlServer | None = None
        self._ops: dict[str, _Operation] = {}
        self._ops_by_agent: dict[str, deque[str]] = {}
        self._versions: dict[str, str] = {}
        self._stop_requested = threading.Event()
        self._stop_drain: float | None = None
        self._stopped = threading.Event()
        self._stopping = False
        self._watcher: Any = None
        self._remove_sink: Any = None
        self.store = NodeStore(config.state_path)
        self.memory = MemoryStore(config.data_dir / "memory.db")
        from caxton.tenant import TenantPool

        # started on first use: a node of linear templates and no CPU tools forks nothing
        self.tenant = TenantPool(workers=config.tenant.workers,
                                 memory_limit=int(config.tenant.memory_limit), cpus=tenant_cpus)
        self.manager = AgentLifecycleManager(
            tenant_pool=self.tenant,
            memory=self.memory,
            tools=builtin_registry(http_allowed_hosts=config.http_client.allowed_hosts),
            default_llm=config.llm,
            suspend_queue_limit=config.suspended_queue_bound,
            store=self.store,
            on_event=self._on_event,
        )
        self.manager.fuel_sink = self.metrics.record_fuel  # caxton_fuel_consumed_total
        self._deadlines = _Deadlines()

    # ------------------------------------------------------------------ start / stop

    def _curve(self) -> CurveServerConfig | None:
        curve = self.config.curve
        if curve.server_secret_key_file is None or curve.authorized_keys_dir is None:
            return None
        return CurveServerConfig(curve.server_secret_key_file, curve.authorized_keys_dir)

    def start(self) -> None:
        """Restore agents, load the agents dir, bind the event stream and the control port.

        Raises:
            zmq.ZMQError: An endpoint cannot be bound (e.g. the port is in use).
            InsecureBind: A non-loopback bind without CURVE or ``insecure``.
            OSError: The metrics endpoint cannot be bound.
        """
        curve = self._curve()
        self.publisher = EventPublisher(self.config.events, curve=curve,
                                        insecure=self.config.insecure)
        if self.hub is not None:
            self._remove_sink = self.hub.add_sink(self._log_sink)
        failed = self.manager.restore(self.store.load_all())
        for name in failed:
            _log.error("node.restore_skipped", agent=name)
        self.load_agents_dir()
        for status in self.manager.list_all_agents():
            self._versions[status.name] = status.version
        if self.config.metrics_address is not None:
            host, port = self.config.metrics_address
            self.metrics_server = self.metrics.serve(host, port)
        from supervisors import default_dispatcher

        # The port's thread runs WASM guest calls for message.send itself (see
        # supervisors.dispatch): no thread hand-off on the hot path.
        server = ControlServer(self.config.control, curve=curve, insecure=self.config.insecure,
                               max_message_size=self.config.max_frame_size,
                               executor=default_dispatcher(),
                               max_batch=self.config.control_batch)
        self._register(server)
        server.start()
        self.server = server
        if self.config.watch.enabled and self.config.agents_dir.is_dir():
            from caxton.watch import AgentsDirWatcher

            self._watcher = AgentsDirWatcher(self, self.config.agents_dir,
                                             debounce=float(self.config.watch.debounce))
            self._watcher.start()
        self.state = "running"
        self.publisher.publish_node("started", control=server.endpoint,
                                    events=self.publisher.endpoint, pid=os.getpid())
        _log.info("node.started", control=server.endpoint, events=self.publisher.endpoint,
                  agents=len(self.manager.agent_names()), data_dir=str(self.config.data_dir))

    def load_agents_dir(self) -> list[str]:
        """Deploy the agents dir's top-level agent files that are not deployed yet.

        The dir seeds the node: a file loaded once is remembered in the store, so an agent
        removed with ``caxton agents remove`` is not brought back by the next start (deploy
        the file again to have it back). A file that fails to load is logged and skipped
        (configuration isolation) and tried again at the next start.

        Returns:
            The names deployed.
        """
        directory = self.config.agents_dir
        if not directory.is_dir():
            return []
        files = sorted((f for f in directory.iterdir()
                        if f.is_file() and f.suffix.lower() in AGENT_SUFFIXES),
                       key=lambda f: (f.suffix.lower() != ".md", f.name))
        deployed: list[str] = []
        seen = set(self.store.get_fact(_SEEN_FACT, []) or [])
        for path in files:
            key = str(path.resolve())
            if key in seen:
                continue
            try:
                name = self.deploy_file(path, skip_known=True)
            except errors.CaxtonError as exc:
                _log.error("node.agent_file_skipped", file=str(path), code=str(exc.code),
                           reason=exc.message)
                continue
            except Exception as exc:
                _log.error("node.agent_file_skipped", file=str(path), reason=repr(exc))
                continue
            seen.add(key)
            self.store.set_fact(_SEEN_FACT, sorted(seen))
            if name is not None:
                deployed.append(name)
        return deployed

    def wasm_name_for(self, path: Path) -> str:
        """Name of the WASM agent a file of the agents dir is deployed as.

        :func:`caxton.naming.wasm_agent_name` (the rule ``caxton agents watch`` uses too):
        the file stem; when a config agent of the dir already uses that name, the stem with
        ``-wasm`` (``echo.wat`` beside ``echo.md`` becomes ``echo-wasm``).

        Args:
            path: The ``.wasm``/``.wat`` file.

        Returns:
            The agent name.
        """
        return wasm_agent_name(path)

    def deploy_file(self, path: Path, *, skip_known: bool = False) -> str | None:
        """Deploy one agent file from disk.

        Args:
            path: A ``.md``, ``.wasm`` or ``.wat`` file.
            skip_known: Return ``None`` instead of failing when the agent is deployed.

        Returns:
            The agent name, or ``None`` when skipped.

        Raises:
            CaxtonError: The file is invalid or the agent exists (without ``skip_known``).
        """
        if path.suffix.lower() == ".md":
            text = path.read_text(encoding="utf-8")
            parsed = self.manager.validate(text, source=str(path))
            if not parsed.ok:
                raise parsed.report.to_error()
            name = parsed.unwrap().name
            if skip_known and name in self.manager.agent_names():
                return None
            result = self.manager.deploy_config_agent(path)
        else:
            name = self.wasm_name_for(path)
            if skip_known and name in self.manager.agent_names():
                return None
            result = self.manager.deploy_wasm_agent(None, name, "v1", 1, DeploymentConfig(),
                                                    path.read_bytes())
        self._versions[result.agent] = result.version or ""
        _log.info("node.agent_loaded", agent=result.agent, version=result.version,
                  file=str(path))
        return result.agent

    def request_stop(self, drain_timeout: float | None = None) -> None:
        """Ask the node to stop (from any thread; :meth:`run` performs the shutdown).

        Args:
            drain_timeout: Seconds to drain agents (default: the configured timeout).
        """
        if drain_timeout is not None:
            self._stop_drain = drain_timeout
        self._stop_requested.set()

    def run(self) -> None:
        """Block until a stop is requested, then shut down cleanly."""
        while not self._stop_requested.wait(0.2):
            pass
        self.shutdown(self._stop_drain)

    def shutdown(self, drain_timeout: float | None = None) -> None:
        """Stop accepting, drain agents, flush replies, persist and close everything.

        Args:
            drain_timeout: Seconds to drain agents (default: the configured timeout).
        """
        if self._stopping:
            self._stopped.wait(30)
            return
        self._stopping = True
        self.state = "stopping"
        drain = float(self.config.drain_timeout if drain_timeout is None else drain_timeout)
        _log.info("node.stopping", drain_timeout=drain)
        if self.publisher is not None:
            self.publisher.publish_node("stopping", drain_timeout=drain)
        if self._watcher is not None:
            self._watcher.stop()
        stopper: threading.Thread | None = None
        if self.server is not None:
            # New requests get SHUTTING_DOWN at once; in-flight ones are answered before the
            # socket closes (the manager completes every routed message: reply or typed error).
            stopper = threading.Thread(target=self.server.stop, args=(drain + 5.0,),
                                       name="caxton-control-stop", daemon=True)
            stopper.start()
        try:
            self.manager.shutdown(timeout=drain)
        except Exception as exc:
            _log.error("node.manager_shutdown_failed", reason=repr(exc))
        self._deadlines.close()
        if stopper is not None:
            stopper.join(drain + 10.0)
        if self.metrics_server is not None:
            self.metrics_server.close()
        if self._remove_sink is not None:
            self._remove_sink()
        if self.publisher is not None:
            self.publisher.publish_node("stopped")
            self.publisher.close()
        self.tenant.close()
        self.memory.close()
        self.store.close()
        self.state = "stopped"
        _log.info("node.stopped")
        self._stopped.set()

    # ------------------------------------------------------------------ events, logs, metrics

    def _on_event(self, agent: str, event: str, data: dict[str, Any]) -> None:
        """Manager event sink: event stream, metrics, operation tracking, per-agent logs."""
        label = str(data.get("child_id") or data.get("version") or "")
        if event == "child_restart_scheduled":
            self.metrics.record_restart(agent, label)
        elif event == "breaker_state_changed":
            try:
                self.metrics.set_breaker_state(agent, label, data.get("state"))
            except ValueError:
                pass
        elif event == "rollout.started":
            self._track_start(agent, data)
        elif event == "rollout.finished":
            self._track_finish(agent, data)
        elif event == "rollout.aborted":
            self.metrics.record_rollout_abort(agent, str(data.get("outcome") or "aborted"))
        elif event == "agent.removed":
            self._versions.pop(agent, None)
        if self.publisher is not None:
            self.publisher.publish_agent(agent, _topic_kind(event), kind=event, **data)
        level = logging.WARNING if event in ("rollout.aborted", "reload.refused",
                                             "rollback.automatic") else logging.INFO
        if event == "child_exited" and not data.get("normal", True):
            level = logging.WARNING
        elif event.startswith(_ROUTINE_EVENTS):
            level = logging.DEBUG  # the supervisors library logs these itself
        fields = {k: v for k, v in data.items()
                  if k not in ("event", "agent", "level", "timestamp", "logger")}
        _log.log(level, event, agent=agent, **fields)

    def _track_start(self, agent: str, data: dict[str, Any]) -> None:
        op_id = str(data.get("operation_id") or "")
        if not op_id:
            return
        self._ops[op_id] = _Operation(op_id, agent, "reload", str(data.get("strategy") or ""),
                                      str(data.get("version") or ""))
        history = self._ops_by_agent.setdefault(agent, deque(maxlen=10))
        history.append(op_id)
        while len(self._ops) > 1000:  # bounded: forget the oldest operations
            self._ops.pop(next(iter(self._ops)))

    def _track_finish(self, agent: str, data: dict[str, Any]) -> None:
        outcome = str(data.get("outcome") or "")
        strategy = str(data.get("strategy") or "")
        self.metrics.record_reload(agent, strategy, outcome)
        if outcome == "succeeded" and data.get("version"):
            self._versions[agent] = str(data["version"])
        op = self._ops.get(str(data.get("operation_id") or ""))
        if op is not None:
            op.state = _STATE_OF_OUTCOME.get(outcome, p.OperationState.FAILED)
            op.message = data.get("reason")

    def _log_sink(self, record: dict[str, Any]) -> None:
        publisher = self.publisher
        if publisher is None:
            return
        agent = record.get("agent")
        if agent:
            publisher.publish_agent(str(agent), "log", **record)
        else:
            publisher.publish_node("log", **record)

    # ------------------------------------------------------------------ handlers

    def _register(self, server: ControlServer) -> None:
        server.register("message.send", self.h_message_send, blocking=False, replies=True)
        server.register("node.status", self.h_node_status, blocking=False)
        server.register_many({
            "agents.deploy": self.h_deploy,
            "agents.reload": self.h_reload,
            "agents.suspend": lambda a: self._change(self.manager.suspend(a.name)),
            "agents.resume": lambda a: self._change(self.manager.resume(a.name)),
            "agents.remove": self.h_remove,
            "agents.status": self.h_status,
            "agents.list": self.h_list,
            "agents.validate": self.h_validate,
            "agents.logs": self.h_logs,
            "agents.rollback": self.h_rollback,
            "agents.ab_test": self.h_ab_test,
            "agents.promote": lambda a: self._rollout_change(a.name, self.manager.promote(a.name)),
            "agents.abort": lambda a: self._rollout_change(a.name, self.manager.abort(a.name)),
            "agents.recover": lambda a: self._change(
                self.manager.recover(a.name, restore_memory=a.restore_memory)),
            "agents.disable": lambda a: self._change(
                self.manager.disable(a.name, preserve_memory=a.preserve_memory)),
            "agents.monitor": self.h_monitor,
            "agents.reload_status": self.h_reload_status,
            "conversations.list": lambda a: {
                "name": a.name, "conversations": self.manager.conversations(a.name)},
            "conversations.end": lambda a: {
                "name": a.name, "conversation_id": a.conversation_id,
                "ended": self.manager.end_conversation(a.name, a.conversation_id)},
            "node.shutdown": self.h_shutdown,
            "operations.get": self.h_operation,
        })
        missing = set(p.OPS) - set(server._routes)
        assert not missing, f"ops without a handler: {sorted(missing)}"

    def _check_accepting(self) -> None:
        if self._stopping:
            raise errors.ShuttingDown("the node is shutting down; it takes no new work")

    @staticmethod
    def _change(result: OperationResult, message: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"name": result.agent, "agent_id": result.agent_id,
                               "operation": result.operation, "version": result.version,
                               "state": result.state, "operation_id": result.operation_id}
        if message:
            out["message"] = message
        return out

    def _rollout_change(self, name: str, status: RolloutStatus) -> dict[str, Any]:
        return {"name": name, "version": status.new_version, "state": str(status.outcome),
                "message": status.reason, "rollout": status.to_dict()}

    def h_deploy(self, args: p.AgentsDeployArgs) -> Any:
        """``agents.deploy``: a ``.md`` by text or a ``.wasm``/``.wat`` by bytes.

        Args:
            args: The validated arguments.

        Returns:
            A change result (or a validation report with ``validate_only``).

        Raises:
            CaxtonError: Invalid file, agent exists, bad limits.
        """
        self._check_accepting()
        is_config = args.text is not None
        suffix = Path(args.file_name).suffix.lower()
        if is_config and suffix not in (".md", ""):
            raise errors.InvalidArgument(f"{args.file_name}: text content is for .md files")
        if not is_config and suffix not in (".wasm", ".wat", ""):
            raise errors.InvalidArgument(f"{args.file_name}: byte content is for .wasm/.wat")
        if args.validate_only:
            return self._validate(args.file_name, args.text, args.data, detailed=True)
        rollout = rollout_config_for(args)
        if is_config:
            assert args.text is not None
            parsed = self.manager.validate(args.text, source=args.file_name)
            if not parsed.ok:
                raise parsed.report.to_error()
            name = parsed.unwrap().name
            if args.strategy != DeployStrategyDefault and self.manager.has_agent(name):
                return self._change(self.manager.reload(
                    name, args.text, strategy=str(args.strategy),
                    rollout=rollout, wait=None))
            result = self.manager.deploy_config_agent(args.text)
        else:
            assert args.data is not None
            name = args.name or Path(args.file_name).stem
            if args.strategy != DeployStrategyDefault and self.manager.has_agent(name):
                return self._change(self.manager.reload_wasm(
                    name, args.data, strategy=str(args.strategy), rollout=rollout))
            kwargs: dict[str, Any] = {}
            if args.memory_bytes is not None:
                kwargs["memory"] = DeploymentMemoryLimit(args.memory_bytes)
            if args.fuel is not None:
                kwargs["fuel"] = DeploymentFuelLimit(args.fuel)
            config = DeploymentConfig(strategy=DeploymentStrategy(
                args.strategy.value if args.strategy.value in
                [s.value for s in DeploymentStrategy] else "immediate"),
                resource_requirements=ResourceRequirements(**kwargs))
            result = self.manager.deploy_wasm_agent(None, name, "v1", 1, config, args.data)
        self._versions[result.agent] = result.version or ""
        if rollout is not None:
            return self._change(result, "first deploy of this agent: the rollout settings "
                                "apply when a deploy replaces a running version")
        return self._change(result)

    def h_reload(self, args: p.AgentsReloadArgs) -> Any:
        """``agents.reload``: validate first, then roll out with the strategy.

        Args:
            args: The validated arguments.

        Returns:
            A change result (``operation_id`` while a rollout runs).

        Raises:
            CaxtonError: Unknown agent, invalid file (the running version keeps serving).
        """
        self._check_accepting()
        kind = self.manager.get_agent_type(args.name)
        rollout = rollout_config_for(args)
        if kind is AgentType.CONFIG:
            if args.data is not None:
                raise errors.InvalidArgument(
                    f"agent {args.name!r} is a config agent; reload it with a .md file")
            result = self.manager.reload(args.name, args.text, strategy=str(args.strategy),
                                         rollout=rollout, preserve_memory=args.preserve_memory)
        else:
            if args.data is None:
                raise errors.InvalidArgument(
                    f"agent {args.name!r} is a WASM agent; reload it with a module "
                    f"(`caxton agents reload {args.name} --file module.wasm`)")
            result = self.manager.reload_wasm(args.name, args.data, strategy=str(args.strategy),
                                              rollout=rollout)
        if result.operation_id is None:
            self._versions[result.agent] = result.version or ""
        return self._change(result)

    def h_remove(self, args: p.AgentsRemoveArgs) -> Any:
        """``agents.remove``: drain and remove.

        Args:
            args: The validated arguments.

        Returns:
            A change result.
        """
        result = self.manager.remove(args.name, timeout=float(self.config.drain_timeout))
        return self._change(result)

    @staticmethod
    def _status_map(status: Any, detailed: bool) -> dict[str, Any]:
        d = status.to_dict()
        out = {"name": d["name"], "agent_type": d["type"], "version": d["version"],
               "state": d["state"], "versions": d["versions"], "health": d["health"],
               "restarts": d["restarts"], "last_error": d["last_error"],
               "uptime": d["uptime"]}
        if detailed:
            out["details"] = {**d["details"], "instances": d["instances"],
                              "lifecycle": d["lifecycle"], "agent_id": d["agent_id"],
                              "memory_allocated": d["memory_allocated"],
                              "fuel_consumed": d["fuel_consumed"]}
        return out

    def h_status(self, args: p.AgentsStatusArgs) -> Any:
        """``agents.status``: one agent or all.

        Args:
            args: The validated arguments.

        Returns:
            ``{"agents": [...]}``.
        """
        statuses = ([self.manager.get_agent_by_name(args.name)] if args.name
                    else self.manager.list_all_agents())
        return {"agents": [self._status_map(s, args.detailed) for s in statuses]}

    def h_list(self, args: p.AgentsListArgs) -> Any:
        """``agents.list``, optionally by type.

        Args:
            args: The validated arguments.

        Returns:
            ``{"agents": [...]}``.
        """
        agents = [self._status_map(s, False) for s in self.manager.list_all_agents()]
        if args.type is not None:
            agents = [a for a in agents if a["agent_type"] == args.type.value]
        return {"agents": agents}

    def _validate(self, file_name: str, text: str | None, data: bytes | None,
                  detailed: bool) -> dict[str, Any]:
        if text is not None:
            parsed = self.manager.validate(text, source=file_name)
            rep = parsed.report.to_dict()
            out: dict[str, Any] = {
                "valid": parsed.ok, "name": rep.get("agent"), "agent_type": "config",
                "findings": rep["errors"] + rep["warnings"],
                "text": parsed.report.format(detailed),
            }
            if detailed:
                out["stages"] = rep["stages"]
            return out
        assert data is not None
        report = self.manager.validate_wasm(data)
        wrep = report.to_dict()
        findings = [
            {"severity": f.get("severity", "error"), "message": f.get("message", ""),
             "file": file_name, "field": f.get("subject"), "fix": f.get("fix"),
             "code": f.get("code"), "stage": f.get("stage")}
            for stage in wrep["stages"] for f in stage["findings"]]
        out = {"valid": bool(wrep["ok"]), "name": Path(file_name).stem, "agent_type": "wasm",
               "findings": findings, "module_hash": wrep.get("module_hash"),
               "size": wrep.get("size")}
        if detailed:
            out["stages"] = wrep["stages"]
        return out

    def h_validate(self, args: p.AgentsValidateArgs) -> Any:
        """``agents.validate``: validate a file sent by content; deploys nothing.

        Args:
            args: The validated arguments.

        Returns:
            A validation report.
        """
        return self._validate(args.file_name, args.text, args.data, args.detailed)

    def h_logs(self, args: p.AgentsLogsArgs) -> Any:
        """``agents.logs``: recent records of an agent (ring buffer, then the log file).

        Args:
            args: The validated arguments.

        Returns:
            ``{"records": [...]}``, newest last.

        Raises:
            AgentNotFound: No such agent and no records of it.
        """
        records = (self.hub.query(args.name, n=args.tail,
                                  level=args.level.value if args.level else None)
                   if self.hub is not None else [])
        if not records and args.name not in self.manager.agent_names():
            self.manager.get_agent_by_name(args.name)  # raises AgentNotFound with a hint
        out = []
        for rec in records:
            r = {k: v for k, v in rec.items() if k not in ("timestamp", "logger")}
            r["ts"] = _iso_to_epoch(rec.get("timestamp"))
            out.append(r)
        return {"records": out}

    def h_rollback(self, args: p.AgentsRollbackArgs) -> Any:
        """``agents.rollback``: restore a kept version.

        Args:
            args: The validated arguments.

        Returns:
            A change result.
        """
        self._check_accepting()
        result = self.manager.rollback(args.name, args.to_version)
        self._versions[result.agent] = result.version or ""
        return self._change(result)

    def h_ab_test(self, args: p.AgentsAbTestArgs) -> Any:
        """``agents.ab_test``: A and B side by side until promote or abort.

        Args:
            args: The validated arguments.

        Returns:
            A change result with the operation id.
        """
        self._check_accepting()
        result = self.manager.ab_test(args.name, args.config_b, config_a=args.config_a,
                                      split=args.split)
        op = self._ops.get(result.operation_id or "")
        if op is not None:
            op.kind = "ab_test"
        return self._change(result)

    def h_monitor(self, args: p.AgentsMonitorArgs) -> Any:
        """``agents.monitor``: one metrics snapshot.

        Args:
            args: The validated arguments.

        Returns:
            ``{"name", "metrics", "versions"}``.

        Raises:
            AgentNotFound: No such agent.
        """
        status = self.manager.get_agent_by_name(args.name)
        snap = self.metrics.snapshot(status.name).to_dict()
        p50, p99 = snap.get("p50"), snap.get("p99")
        available: dict[str, Any] = {
            "messages": snap["messages"], "errors": snap["errors"],
            "success_rate": snap["success_rate"],
            "response_time_p50_ms": None if p50 is None else round(p50 * 1000, 3),
            "response_time_p99_ms": None if p99 is None else round(p99 * 1000, 3),
            "restarts": snap["restarts"], "state": status.state, "version": status.version,
            "health": status.health_status, "reloads": snap["reloads"],
            "rollout_aborts": snap["rollout_aborts"],
            "fuel_consumed": status.fuel_consumed, "memory_allocated": status.memory_allocated,
        }
        chosen: dict[str, Any] = {}
        for want in args.metrics:
            hits = {k: v for k, v in available.items() if k == want or k.startswith(want)}
            if not hits:
                raise errors.InvalidArgument(
                    f"unknown metric {want!r}; available: {', '.join(available)}")
            chosen.update(hits)
        return {"name": status.name, "metrics": chosen or available,
                "versions": snap["versions"]}

    def _operation_map(self, op: _Operation) -> dict[str, Any]:
        out: dict[str, Any] = {"operation_id": op.operation_id, "name": op.name,
                               "kind": op.kind, "strategy": op.strategy,
                               "state": op.state.value, "version": op.version,
                               "message": op.message}
        history = self._ops_by_agent.get(op.name)
        latest = history is not None and history[-1] == op.operation_id
        status: RolloutStatus | None = None
        if latest:
            try:
                status = self.manager.reload_status(op.name)
            except errors.CaxtonError:
                status = None
        if status is not None:
            op.last = {"step": status.step_index + 1, "steps": len(status.steps),
                       "traffic": dict(status.weights), "step_name": status.step}
            if op.state is p.OperationState.RUNNING and str(status.outcome) != "running":
                op.state = _STATE_OF_OUTCOME.get(str(status.outcome), p.OperationState.FAILED)
                op.message = status.reason
                out["state"], out["message"] = op.state.value, op.message
        if op.last:
            out.update(op.last)
        return out

    def h_reload_status(self, args: p.AgentsReloadStatusArgs) -> Any:
        """``agents.reload_status``: the current and recent rollouts of an agent.

        Args:
            args: The validated arguments.

        Returns:
            ``{"name", "current", "history"}``.
        """
        status = self.manager.get_agent_by_name(args.name)
        ids = list(self._ops_by_agent.get(status.name, ()))
        ops = [self._operation_map(self._ops[i]) for i in ids if i in self._ops]
        current = next((o for o in reversed(ops) if o["state"] == "running"), None)
        history = [o for o in reversed(ops) if o is not current]
        return {"name": status.name, "current": current, "history": history}

    def h_operation(self, args: p.OperationsGetArgs) -> Any:
        """``operations.get``: progress of a long operation.

        Args:
            args: The validated arguments.

        Returns:
            The operation's status.

        Raises:
            NoRollout: Unknown operation id.
        """
        op = self._ops.get(args.operation_id)
        if op is None:
            raise errors.NoRollout(f"no operation {args.operation_id!r} is known to this node "
                                   "(ids are kept until the node restarts)")
        return self._operation_map(op)

    def h_message_send(self, args: p.MessageSendArgs, reply: Reply) -> None:
        """``message.send`` (non-blocking): route, and complete ``reply`` from the agent's
        reply callback (or with ``TIMEOUT`` when none comes within ``args.timeout``).

        Args:
            args: The validated arguments.
            reply: The control port's reply: the reply message in its wire form, or the
                typed error.

        Raises:
            ShuttingDown: The node no longer accepts messages.
        """
        if self._stopping:  # _check_accepting, inlined: once per message
            self._check_accepting()
        agent = args.agent
        msg = make_message(agent, args.content, args.sender, _REQUEST, args.conversation_id)
        t0 = time.perf_counter()
        metrics = self.metrics
        versions = self._versions
        deadlines = self._deadlines
        end = args.end_conversation and args.conversation_id is not None
        manager = self.manager

        def done(routed: ReplyFuture) -> None:
            # under the version instance that served it (canary / A-B traffic splits by
            # version); the current version when it never reached one
            err = routed.error
            if end:
                _end_conversation(manager, agent, args.conversation_id)
            if err is None:
                metrics.record_message(agent, routed.served_by or versions.get(agent, ""),
                                       time.perf_counter() - t0)
                value = routed.value
                assert value is not None
                if reply.ok(value.to_wire()):
                    deadlines.forget(reply.watch)
                return
            code = str(err.code)
            if code not in ("AGENT_NOT_FOUND", "SHUTTING_DOWN") and agent in versions:
                metrics.record_message(agent, routed.served_by or versions.get(agent, ""),
                                       time.perf_counter() - t0, code)
            if reply.fail(err):
                deadlines.forget(reply.watch)

        self.manager.route(msg).add_done_callback(done)
        deadlines.add(reply, agent, args.timeout)  # it lets go at once of one already done

    def h_node_status(self, args: p.NodeStatusArgs) -> Any:
        """``node.status``.

        Args:
            args: No arguments.

        Returns:
            Version, endpoints, uptime, agent counts, pid, data dir, RSS, and the node-side
            latency (receipt at the port to reply at the port) of each op.
        """
        names = self.manager.agent_names()
        return {
            "version": __version__, "pid": os.getpid(),
            "uptime_s": round(time.monotonic() - self.started_at, 3),
            "control_endpoint": self.server.endpoint if self.server else self.config.control,
            "events_endpoint": self.publisher.endpoint if self.publisher else None,
            "agents": len(names), "state": self.state,
            "data_dir": self._data_dir, "agents_dir": self._agents_dir,
            "watch": self._watcher is not None, "rss_bytes": _rss_bytes(),
            "metrics_url": self.metrics_server.url if self.metrics_server else None,
            "curve": self.config.curve.enabled,
            # receipt at the port -> reply at the port, per op, over the recent window
            "latency": self._latency_snapshot(),
        }

    def _latency_snapshot(self) -> dict[str, Any]:
        """The control port's per-op latency, recomputed at most once a second.

        The snapshot sorts each op's recent window; doing that on every ``node.status`` made
        the call 3-4x slower than a bare round trip (bench_node).
        """
        if self.server is None:
            return {}
        now = time.monotonic()
        cached = self._latency_cache
        if cached is None or now - cached[0] >= 1.0:
            cached = (now, self.server.latency.snapshot())
            self._latency_cache = cached
        return cached[1]

    def h_shutdown(self, args: p.NodeShutdownArgs) -> Any:
        """``node.shutdown``: reply, then drain and stop.

        Args:
            args: The validated arguments.

        Returns:
            ``{"stopping": true}``.
        """
        drain = args.drain_timeout if args.drain_timeout is not None \
            else float(self.config.drain_timeout)
        self.request_stop(drain)
        return {"stopping": True, "drain_timeout": drain}


DeployStrategyDefault = p.DeployStrategy.IMMEDIATE


def rollout_config_for(args: p.AgentsReloadArgs | p.AgentsDeployArgs) -> RolloutConfig | None:
    """The rollout tunables a reload (or a deploy over a running agent) asks for (``None``:
    all node defaults).

    Args:
        args: The validated arguments.

    Returns:
        The config, with only the asked-for fields changed from the defaults.
    """
    fields: dict[str, Any] = {}
    if args.steps:
        fields["steps"] = tuple(args.steps)
    elif args.split is not None and str(args.strategy) in (p.ReloadStrategy.CANARY,
                                                           p.ReloadStrategy.TRAFFIC_SPLITTING):
        fields["steps"] = (args.split, 100)
    if args.step_interval_s is not None:
        step = float(args.step_interval_s)
        fields.update(step_duration=step, validation_period=step,
                      scale_down_delay=step, drain_timeout=max(step, 1.0),
                      conversation_ttl=max(step, 1.0))
    if args.scale_down_delay_s is not None:
        fields["scale_down_delay"] = float(args.scale_down_delay_s)
    limits: dict[str, Any] = {k: v for k, v in (("max_error_rate", args.max_error_rate),
                                                ("max_p99_ratio", args.max_p99_ratio),
                                                ("max_fuel_ratio", args.max_fuel_ratio))
                              if v is not None}
    if limits:
        fields["thresholds"] = dataclasses.replace(AnalysisThresholds(), **limits)
    return RolloutConfig(**fields) if fields else None


# ---------------------------------------------------------------------- command line


def build_node_parser() -> argparse.ArgumentParser:
    """Build the ``python -m caxton`` argument parser.

    Returns:
        The parser.
    """
    parser = argparse.ArgumentParser(
        prog="python -m caxton",
        description="Run a Caxton node: it hosts agents under supervision and serves the "
                    "control port the `caxton` CLI talks to. Every setting has an embedded "
                    "default; --config FILE overrides defaults and flags override the file.",
        epilog="Examples:\n  python -m caxton\n  python -m caxton --agents-dir ./agents --watch\n"
               "  python -m caxton --config caxton.yaml --metrics 127.0.0.1:9464\n"
               "SIGTERM/SIGINT drain agents and stop; a second signal exits at once.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", metavar="FILE", help="node configuration (caxton.yaml)")
    parser.add_argument("--control", metavar="E",
                        help="control endpoint (default tcp://127.0.0.1:7460)")
    parser.add_argument("--events", metavar="E",
                        help="event stream endpoint (default tcp://127.0.0.1:7461)")
    parser.add_argument("--data-dir", metavar="DIR", help="state, memory, logs (default .caxton)")
    parser.add_argument("--agents-dir", metavar="DIR",
                        help="agents loaded at start (default ./agents, if it exists)")
    parser.add_argument("--watch", action="store_true",
                        help="reload agents when their files in the agents dir change")
    parser.add_argument("--metrics", metavar="HOST:PORT",
                        help="serve Prometheus metrics there (e.g. 127.0.0.1:9464)")
    parser.add_argument("--insecure", action="store_true",
                        help="allow binding non-loopback addresses without CURVE")
    parser.add_argument("--log-level", metavar="L",
                        help="debug, info, warning, error or critical (default info)")
    parser.add_argument("--drain-timeout", metavar="S",
                        help="how long shutdown drains agents, e.g. 10s (default 10s)")
    parser.add_argument("--cpus", metavar="LIST",
                        help="pin the node to these CPUs, e.g. 0 (default: all)")
    parser.add_argument("--gil-cpu", metavar="CPU",
                        help="the one CPU the node's Python threads share: auto (default: "
                             "the first usable CPU, if there are several), a number, or off. "
                             "The GIL runs one Python thread at a time anyway; on one CPU a "
                             "hand-off between them wakes no other CPU, and ZeroMQ's I/O "
                             "threads keep the others. off lets long WASM guest calls of "
                             "several agents run on several cores")
    parser.add_argument("--control-batch", metavar="N", type=int,
                        help="most requests the saturated control port reads before it "
                             "answers them (default 16). An idle port answers each request "
                             "before reading the next; it batches only after 64 requests in "
                             "a row found the next one queued, and stops as soon as the "
                             "queue empties. 1 never batches: less throughput under load")
    return parser


def gil_cpu_for(setting: int | str) -> int | None:
    """The CPU the node's Python threads will share, from the ``gil_cpu`` setting.

    Args:
        setting: ``"auto"``, ``"off"`` or a CPU number.

    Returns:
        The CPU, or ``None`` for no pinning (``off``, ``auto`` with one usable CPU, or a
        platform without CPU affinity and ``auto``).

    Raises:
        ConfigError: A CPU number the node may not use (not in its affinity mask).
    """
    if setting == "off":
        return None
    gil_enabled = getattr(sys, "_is_gil_enabled", None)
    if setting == "auto" and gil_enabled is not None and not gil_enabled():
        return None  # free-threaded Python: threads do run in parallel
    getter = getattr(os, "sched_getaffinity", None)
    if getter is None:
        if setting == "auto":
            return None
        raise ConfigError(f"gil_cpu={setting!r}: this platform has no CPU affinity; set "
                          "--gil-cpu off")
    allowed = sorted(getter(0))
    if setting == "auto":
        return allowed[0] if len(allowed) > 1 else None
    if setting not in allowed:
        raise ConfigError(f"gil_cpu={setting!r}: the node may only use CPUs {allowed} (see "
                          "--cpus); choose one of them with --gil-cpu, or --gil-cpu off")
    return int(setting)


def pin_python_threads(cpu: int) -> set[int] | None:
    """Pin every thread of the process to ``cpu`` (call it before the node starts threads).

    Threads inherit the affinity of the thread that starts them, so every thread the node
    starts afterwards - its Python threads, and ZeroMQ's I/O threads too, until
    :func:`free_zeromq_threads` widens them again - begins on ``cpu``; no thread can start
    on another CPU between two steps of a scan.

    Args:
        cpu: The CPU.

    Returns:
        The CPUs the process could use before (for :func:`free_zeromq_threads`), or ``None``
        when the pinning failed (logged as ``node.gil_cpu_unavailable``; the node runs
        unpinned).
    """
    try:
        allowed = set(os.sched_getaffinity(0))
    except OSError as exc:
        _log.warning("node.gil_cpu_unavailable", cpu=cpu, error=str(exc),
                     fix="run with --gil-cpu off")
        return None
    try:
        _set_every_thread({cpu})
    except OSError as exc:
        _log.warning("node.gil_cpu_unavailable", cpu=cpu, error=str(exc),
                     fix="run with --gil-cpu off, or name a CPU this node may use")
        with contextlib.suppress(OSError):
            _set_every_thread(allowed)  # undo a partial pinning
        return None
    return allowed


def _set_every_thread(cpus: set[int]) -> None:
    os.sched_setaffinity(0, cpus)
    for tid in os.listdir("/proc/self/task"):
        with contextlib.suppress(ProcessLookupError, FileNotFoundError):
            os.sched_setaffinity(int(tid), cpus)


def free_zeromq_threads(cpus: set[int]) -> dict[str, int]:
    """Give ZeroMQ's I/O threads (named ``ZMQbg/...``) back every CPU in ``cpus``.

    Args:
        cpus: The CPUs the process could use before :func:`pin_python_threads`.

    Returns:
        ``{"pinned": n, "free": m}``: threads left on the one CPU, ZeroMQ threads freed.
    """
    counts = {"pinned": 0, "free": 0}
    try:
        tids = os.listdir("/proc/self/task")
    except OSError as exc:
        _log.warning("node.zeromq_threads_not_freed", error=str(exc))
        return counts
    for tid in tids:
        try:
            with open(f"/proc/self/task/{tid}/comm") as fh:
                name = fh.read().strip()
            if name.startswith("ZMQbg"):
                os.sched_setaffinity(int(tid), cpus)
                counts["free"] += 1
            else:
                counts["pinned"] += 1
        except (FileNotFoundError, ProcessLookupError):
            continue  # the thread ended meanwhile
        except OSError as exc:
            _log.warning("node.zeromq_thread_not_freed", thread=tid, error=str(exc))
    return counts


def pin_to_cpus(cpus: tuple[int, ...]) -> None:
    """Pin this process (all its threads, present and future) to ``cpus``.

    Args:
        cpus: CPU numbers.

    Raises:
        ConfigError: A CPU this machine does not have, or pinning is unsupported here.
    """
    try:
        _set_every_thread(set(cpus))
    except (AttributeError, OSError) as exc:
        available = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        raise ConfigError(
            f"cannot pin the node to CPUs {list(cpus)}: {exc}; this machine offers "
            f"{available or 'no CPU affinity'} (fix --cpus or `cpus:` in caxton.yaml)"
        ) from exc
    _log.info("node.pinned", cpus=list(cpus))


def _banner(node: Node) -> str:
    assert node.server is not None and node.publisher is not None
    endpoint = node.server.endpoint
    names = node.manager.agent_names()
    lines = [
        f"caxton node {__version__} ready (pid {os.getpid()})",
        f"  control  {endpoint}" + ("  (CURVE)" if node.config.curve.enabled else ""),
        f"  events   {node.publisher.endpoint}",
        f"  data     {node.config.data_dir.resolve()}",
        f"  agents   {len(names)}" + (f": {', '.join(names)}" if names else ""),
    ]
    if node.metrics_server is not None:
        lines.append(f"  metrics  {node.metrics_server.url}")
    if node._watcher is not None:
        lines.append(f"  watching {node.config.agents_dir.resolve()}")
    lines += [
        "talk to it:",
        f"  caxton --endpoint {endpoint} agents list",
        f"  caxton --endpoint {endpoint} message send echo hello",
        "stop it with Ctrl-C (SIGINT) or SIGTERM, or `caxton node shutdown`",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run a node until it is stopped (``python -m caxton``).

    Args:
        argv: Arguments (default ``sys.argv[1:]``).

    Returns:
        0 after a clean stop; 2 for a bad configuration or command line; 1 when the node
        cannot start (e.g. a port in use).
    """
    parser = build_node_parser()
    try:
        ns = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code) if isinstance(exc.code, int) else 2
    overrides: dict[str, Any] = {
        "control": ns.control, "events": ns.events, "data_dir": ns.data_dir,
        "agents_dir": ns.agents_dir, "metrics": ns.metrics,
        "watch.enabled": True if ns.watch else None,
        "insecure": True if ns.insecure else None,
        "log.level": ns.log_level, "drain_timeout": ns.drain_timeout, "cpus": ns.cpus,
        "control_batch": ns.control_batch, "gil_cpu": ns.gil_cpu,
    }
    try:
        config = load_node_config(ns.config, overrides)
        if config.cpus is not None:
            pin_to_cpus(config.cpus)  # before any thread starts, so every thread inherits it
        gil_cpu = gil_cpu_for(config.gil_cpu)
    except ConfigError as exc:
        print(f"caxton: {exc.message}", file=sys.stderr)
        return 2
    try:  # before anything is written there: its files hold agents' memory and logs
        tightened = make_private(config.data_dir)
    except OSError as exc:
        print(f"caxton: cannot make the data dir {config.data_dir} private: {exc}; choose "
              "another with --data-dir", file=sys.stderr)
        return 1
    hub = configure_logging(config.data_dir, config.log.level, console=config.log.console,
                            json_file=config.log.json_file, console_format=config.log.format,
                            ring_size=config.log.ring_size)
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLogger().level))
    if config.log.level != "debug":
        _quiet_console()
    if tightened:
        _log.warning("node.data_dir_tightened", data_dir=str(config.data_dir),
                     paths=len(tightened), examples=tightened[:5],
                     reason="other users could read it; it is now 0700 and its files 0600")
    # before the node starts any thread: every thread it starts inherits the one CPU
    free_cpus = pin_python_threads(gil_cpu) if gil_cpu is not None else None
    if free_cpus is not None:
        from supervisors import default_dispatcher

        # a slow actor's long guest call releases the GIL and must not take the CPU of
        # everyone else's Python work: the pool runs those turns on every CPU
        default_dispatcher().set_slow_actor_cpus(free_cpus)
    # tenant workers: every CPU but the one the node's Python threads share (they would
    # inherit it through the fork server, and compete with the node for it)
    tenant_cpus: tuple[int, ...] = ()
    if free_cpus is not None and gil_cpu is not None:
        tenant_cpus = tuple(sorted((free_cpus - {gil_cpu}) or free_cpus))
    try:
        node = Node(config, hub, tenant_cpus=tenant_cpus)
    except Exception as exc:
        print(f"caxton: cannot open the node's state under {config.data_dir}: {exc}",
              file=sys.stderr)
        return 1
    signals = {"count": 0}

    def on_signal(signum: int, _frame: Any) -> None:
        signals["count"] += 1
        if signals["count"] > 1:
            print("caxton: second signal, exiting at once", file=sys.stderr, flush=True)
            os._exit(1)
        node.request_stop()

    in_main = threading.current_thread() is threading.main_thread()
    if in_main:
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
    try:
        node.start()
    except Exception as exc:
        code = getattr(exc, "code", None)
        what = exc.message if isinstance(exc, errors.CaxtonError) else str(exc)
        print(f"caxton: cannot start the node: {what}"
              + (f" ({code})" if code else "")
              + f"\n  control {config.control}, events {config.events}; is another node "
                "running there? Choose other endpoints with --control/--events.",
              file=sys.stderr)
        node.shutdown(0.0)
        return 1
    if free_cpus is not None:
        counts = free_zeromq_threads(free_cpus)
        _log.info("node.python_threads_pinned", cpu=gil_cpu, **counts)
    print(_banner(node), flush=True)
    node.run()
    return 0


__all__ = ["AGENT_SUFFIXES", "Node", "build_node_parser", "free_zeromq_threads", "gil_cpu_for",
           "main", "pin_python_threads", "rollout_config_for"]
