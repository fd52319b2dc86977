"""``caxton.AgentLifecycleManager``: the Python API that deploys and drives agents.

The supervision tree is root supervisor → one supervisor per agent name → one child per running
version instance. A :class:`~caxton.routing.Router` per agent name routes each message to a
version instance (conversation-pinned, weighted); rollouts are plans the
:class:`~caxton.rollout.RolloutCoordinator` drives over that router.

Every operation is synchronous with an explicit timeout; long rollouts return at once with an
operation id (``wait=False``) and report through :meth:`reload_status`.
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pykka
import structlog
from pykka.messages import ProxyCall

import sandbox as sb
from caxton import errors
from caxton.actors.config_agent import ConfigAgentActor, ConfigInstanceSpec
from caxton.actors.handle import SupervisedVersionHandle
from caxton.actors.wasm_agent import WasmAgentActor, WasmInstanceSpec, sandbox_error
from caxton.config_agents import (
    DEFAULT_CAPABILITIES,
    ParsedAgent,
    name_key,
    parse_agent,
)
from caxton.conversation import ConversationTracker
from caxton.deployment import (
    AgentStatus,
    AgentType,
    DeploymentConfig,
    HotReloadConfig,
    HotReloadStrategy,
    OperationResult,
    ResourceRequirements,
)
from caxton.lifecycle import (
    ConfigAgentState,
    Lifecycle,
    WasmAgentState,
    config_agent_lifecycle,
    wasm_agent_lifecycle,
)
from caxton.llm import LLMConfig, LLMProvider, provider_for
from caxton.memory import MemoryHandle, MemoryStore
from caxton.messages import Message
from caxton.rollout import Command, Outcome, RolloutConfig, RolloutCoordinator, RolloutStatus
from caxton.routing import ReplyFuture, Router
from caxton.store import RolloutState
from caxton.tenant import TenantPool
from caxton.tools import ToolRegistry, builtin_registry
from supervisors import Backoff, ChildSpec, CircuitBreaker, Restart, Supervisor

_log = structlog.get_logger("caxton.manager")

KEPT_VERSIONS = 5

#: Housekeeping: seconds between passes, and how many passes a full round over every agent's
#: router may take (10 s). Agents with something to finish (more than one live instance: a
#: rollout or a drain; or messages held while suspended) are "hot" and polled on every pass;
#: the others only expire idle conversation pins (after 30 minutes by default), which has no
#: hurry, so a pass polls a slice of them (all of them while there are at most
#: ``_POLL_SLICE_MIN``). Polling all 10,000 routers of a big node every 50 ms took half a core.
_HOUSEKEEP_TICK = 0.05
_POLL_ROUND_TICKS = 200
_POLL_SLICE_MIN = 64
EventSink = Callable[[str, str, dict[str, Any]], None]
"""``sink(agent, event, data)``: lifecycle, rollout, restart and breaker events."""


@dataclass(frozen=True)
class SupervisionSettings:
    """Restart policy of every agent's supervisor.

    Attributes:
        backoff: Delay schedule of consecutive restarts of one version instance.
        breaker: Template of each instance's circuit breaker.
        max_restarts: Restarts tolerated within ``within`` seconds before the agent's
            supervisor gives up and escalates to the root (which restarts it with backoff).
        within: The restart-intensity window.
        healthy_after: Seconds an instance must run to count as healthy for its breaker.
        shutdown: Seconds an instance gets to finish its mailbox when stopped.
    """

    backoff: Backoff = field(default_factory=lambda: Backoff(min=0.05, max=5.0, reset_after=30.0))
    breaker: CircuitBreaker = field(
        default_factory=lambda: CircuitBreaker(fail_max=5, reset_timeout=10.0))
    max_restarts: int = 100
    within: float = 10.0
    healthy_after: float = 2.0
    shutdown: float = 10.0


@dataclass
class VersionRecord:
    """One kept version of an agent (for rollback), newest last in ``_Agent.history``."""

    version: str
    version_number: int
    payload: bytes
    metadata: dict[str, Any]
    created_at: float = field(default_factory=time.time)


@dataclass
class _Waiting:
    message: Message
    reply: ReplyFuture
    deadline: float


class _Agent:
    """Everything the manager holds about one agent name."""

    def __init__(self, name: str, agent_id: str, kind: AgentType, lifecycle: Lifecycle,
                 router: Router) -> None:
        self.name = name
        self.agent_id = agent_id
        self.kind = kind
        self.lifecycle = lifecycle
        self.router = router
        self.lock = threading.RLock()
        self.sup: pykka.ActorRef[Any] | None = None
        self.persisted = False  # recorded in the node store (its state changes are written)
        self.handles: dict[str, SupervisedVersionHandle] = {}
        self.child_specs: dict[str, ChildSpec] = {}
        self.label_version: dict[str, str] = {}
        self.current_label = ""
        self.current_version = ""
        self.history: list[VersionRecord] = []
        self.deployed_at = time.monotonic()
        self.seq = itertools.count(1)
        self.accepting = True
        self.waiting: deque[_Waiting] = deque()
        self.operation_id: str | None = None
        self.watcher: threading.Thread | None = None  # applies a rollout's outcome
        self.last_error: str | None = None
        # config agents
        self.source: str | None = None
        self.parsed: ParsedAgent | None = None
        self.tracker: ConversationTracker | None = None
        self.memory: MemoryHandle | None = None
        self.providers: dict[LLMConfig, LLMProvider] = {}  # one per distinct llm section
        # wasm agents
        self.requirements: ResourceRequirements | None = None
        self.policy: sb.SecurityPolicy | None = None
        self.auto_rollback_pending = False

    def record(self, rec: VersionRecord) -> None:
        self.history = [r for r in self.history if r.version != rec.version] + [rec]
        del self.history[:-KEPT_VERSIONS]

    def find(self, version: str) -> VersionRecord:
        for rec in reversed(self.history):
            if rec.version == version:
                return rec
        kept = ", ".join(r.version for r in self.history) or "none"
        raise errors.VersionNotFound(
            f"agent {self.name!r} keeps no version {version!r} (kept: {kept}); the node keeps "
            f"the last {KEPT_VERSIONS} versions of every agent"
        )


class AgentLifecycleManager:
    """Deploys, reloads, suspends, resumes, removes and rolls back agents; routes messages.

    Args:
        memory: The embedded memory store config agents use (``None``: a private store in a
            temporary directory, removed at shutdown).
        tools: The tool registry (``None``: the built-ins with no HTTP hosts allowed).
        default_llm: Provider settings for agents whose file has no ``llm`` section.
        capabilities: The capability registry config files are validated against.
        supervision: Restart policy of agent supervisors.
        suspend_queue_limit: Messages held per suspended agent before ``AGENT_SUSPENDED``.
        suspend_wait: Seconds a message waits for a suspended agent before ``AGENT_SUSPENDED``.
        store: The node's durable store (``caxton.store.NodeStore``), or ``None``.
        on_event: Sink of lifecycle, rollout, restart and breaker events.
        seed: Seed of weighted routing (same seed, same assignments).
        router_pin_ttl: Idle seconds before a conversation's pin ends.
        tenant_pool: Worker processes for config agents' templates and CPU tools (``None``:
            the process's shared pool, started on first use).
    """

    def __init__(
        self,
        *,
        memory: MemoryStore | None = None,
        tools: ToolRegistry | None = None,
        default_llm: LLMConfig | None = None,
        capabilities: Iterable[str] = DEFAULT_CAPABILITIES,
        supervision: SupervisionSettings | None = None,
        suspend_queue_limit: int = 1000,
        suspend_wait: float = 30.0,
        store: Any = None,
        on_event: EventSink | None = None,
        seed: int = 0,
        router_pin_ttl: float | None = 1800.0,
        tenant_pool: TenantPool | None = None,
    ) -> None:
        self._memory_owned = memory is None
        self._tmp: str | None = None
        if memory is None:
            import tempfile

            self._tmp = tempfile.mkdtemp(prefix="caxton-memory-")
            memory = MemoryStore(Path(self._tmp) / "memory.db")
        self.memory_store = memory
        self.tools = tools if tools is not None else builtin_registry()
        self.tenant_pool = tenant_pool
        """Worker processes for config agents' renders and CPU tools (``None``: shared)."""
        self.default_llm = default_llm or LLMConfig()
        self.capabilities = tuple(capabilities)
        self.supervision = supervision or SupervisionSettings()
        self.suspend_queue_limit = suspend_queue_limit
        self.suspend_wait = suspend_wait
        self.store = store
        self._on_event = on_event
        self.fuel_sink: Callable[[str, str, int], None] | None = None
        """``sink(agent, version_label, fuel)`` per WASM message (e.g. the node's metrics)."""
        self._seed = seed
        self._pin_ttl = router_pin_ttl
        self._agents: dict[str, _Agent] = {}
        self._ids: dict[str, str] = {}
        self._lock = threading.RLock()
        self._closed = False
        self.rollouts = RolloutCoordinator(on_abort=self._rollout_aborted)
        self._root = Supervisor.start(
            name="caxton", breaker=None, max_restarts=10_000, within=1.0,
            listeners=[self._root_event],
        )
        self._hot: set[str] = set()  # agents the housekeeper polls on every pass
        self._housekeeper = threading.Thread(target=self._housekeep, name="caxton-manager",
                                             daemon=True)
        self._stop = threading.Event()
        self._housekeeper.start()

    # ------------------------------------------------------------------ lookup

    def _agent(self, name_or_id: str) -> _Agent:
        agent = self._agents.get(name_or_id)
        if agent is None:
            name = self._ids.get(name_or_id) or self._agents_by_key(name_or_id)
            agent = self._agents.get(name) if name else None
        if agent is None:
            close = difflib.get_close_matches(name_or_id, list(self._agents), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else \
                "; list agents with `caxton agents list`"
            raise errors.AgentNotFound(f"no agent named {name_or_id!r} is deployed{hint}")
        return agent

    def _agents_by_key(self, name: str) -> str | None:
        key = name_key(name)
        for agent_name in self._agents:
            if name_key(agent_name) == key:
                return agent_name
        return None

    def get_agent_type(self, agent_id: str) -> AgentType:
        """Return whether an agent is a config or a WASM agent.

        Args:
            agent_id: Agent id or name.

        Returns:
            The agent's type.

        Raises:
            AgentNotFound: No such agent.
        """
        return self._agent(agent_id).kind

    # ------------------------------------------------------------------ messages

    def route(self, message: Message) -> ReplyFuture:
        """Route a message to its agent without waiting (the hot path).

        Args:
            message: The message; ``receiver`` names the agent.

        Returns:
            A future completed exactly once, with the reply or a typed error.
        """
        agent = self._agents.get(message.receiver)
        if agent is not None and agent.accepting:
            return agent.router.route(message)
        reply = ReplyFuture()
        try:
            if self._closed:
                raise errors.ShuttingDown("the node is shutting down and accepts no messages")
            agent = self._agent(message.receiver)
            if agent.accepting:
                return agent.router.route(message)
            self._hold_or_refuse(agent, message, reply)
        except errors.CaxtonError as exc:
            reply.fail(exc)
        return reply

    def _hold_or_refuse(self, agent: _Agent, message: Message, reply: ReplyFuture) -> None:
        with agent.lock:
            if agent.accepting:
                _relay(agent.router.route(message), reply)
                return
            state = agent.lifecycle.state
            if state == ConfigAgentState.SUSPENDED:
                if len(agent.waiting) >= self.suspend_queue_limit:
                    raise errors.AgentSuspended(
                        f"agent {agent.name!r} is suspended and {len(agent.waiting)} messages "
                        "already wait for it (the bound); resume it with `caxton agents resume "
                        f"{agent.name}` or retry later")
                agent.waiting.append(
                    _Waiting(message, reply, time.monotonic() + self.suspend_wait))
                self._hot.add(agent.name)
                return
            raise errors.AgentUnavailable(
                f"agent {agent.name!r} is {state} and takes no messages; "
                + ("recover it with `caxton agents recover`" if state in ("Failed",)
                   else f"resume or redeploy it (`caxton agents resume {agent.name}`)"))

    def send(self, agent_name: str, content: Any, conversation_id: str | None = None, *,
             sender: str = "api", timeout: float = 30.0) -> Message:
        """Send a message and wait for the reply.

        Args:
            agent_name: The agent.
            content: Any msgpack-serialisable value.
            conversation_id: Pins the conversation to one version during rollouts.
            sender: Who sends it.
            timeout: Seconds to wait for the reply.

        Returns:
            The reply message.

        Raises:
            CaxtonError: The typed error the message ended with (``TIMEOUT`` past ``timeout``).
        """
        msg = Message(receiver=agent_name, content=content, sender=sender,
                      conversation_id=conversation_id)
        future = self.route(msg)
        try:
            return future.get(timeout=timeout)
        except pykka.Timeout:
            raise errors.Timeout(
                f"agent {agent_name!r} did not reply within {timeout}s; the message is still "
                "queued and its reply will be dropped") from None

    def tell(self, agent_name: str, content: Any, conversation_id: str | None = None, *,
             sender: str = "api") -> None:
        """Send a message without waiting for its reply (errors are logged).

        Args:
            agent_name: The agent.
            content: The content.
            conversation_id: The conversation.
            sender: Who sends it.
        """
        msg = Message(receiver=agent_name, content=content, sender=sender,
                      conversation_id=conversation_id)
        self.route(msg).add_done_callback(_log_failure)

    # ------------------------------------------------------------------ supervision plumbing

    def _root_event(self, event: str, data: dict[str, Any]) -> None:
        agent = self._agents.get(str(data.get("child_id", "")))
        if agent is None:
            return
        if event == "child_started":
            agent.sup = data.get("ref")
        elif event in ("child_exited", "child_terminated"):
            agent.sup = None
        if event == "child_started" and not data.get("restarts"):
            return  # a deploy's first start: its lifecycle transitions already say so
        self._emit(agent.name, f"supervisor.{event}",
                   {k: v for k, v in data.items() if k != "ref"})

    def _agent_event(self, agent: _Agent, event: str, data: dict[str, Any]) -> None:
        label = str(data.get("child_id", ""))
        handle = agent.handles.get(label)
        if handle is not None:
            handle.on_event(event, data)
        if event == "child_restart_scheduled":
            _quiet(agent.router.record_restart, label)
        elif event == "breaker_state_changed":
            state = str(data.get("state"))
            if state == "open":
                _quiet(agent.router.record_breaker_trip, label)
                if label == agent.current_label and not (
                        agent.kind is AgentType.WASM
                        and self._schedule_auto_rollback(agent, label)):
                    self._fail_agent(agent, label)
            elif state == "closed" and label == agent.current_label:
                self._heal_agent(agent, label)
        elif event == "child_exited" and not data.get("normal", True):
            agent.last_error = str(data.get("reason"))
        # First starts (of the agent's supervisor, of a version) are routine: a deploy's or a
        # rollout's own events say so, and a supervisor started again after a crash comes
        # with the root's ``supervisor.child_started`` (restarts > 0).
        if event == "supervisor_started" or (event == "child_started"
                                             and not data.get("restarts")):
            return
        self._emit(agent.name, event, {k: v for k, v in data.items() if k != "ref"})

    def _ensure_supervisor(self, agent: _Agent) -> pykka.ActorRef[Any]:
        if agent.sup is not None and agent.sup.is_alive():
            return agent.sup
        s = self.supervision

        def start() -> pykka.ActorRef[Any]:
            return Supervisor.start(
                list(agent.child_specs.values()),
                name=f"agent:{agent.name}", backoff=s.backoff, breaker=s.breaker,
                max_restarts=s.max_restarts, within=s.within, healthy_after=s.healthy_after,
                listeners=[lambda e, d: self._agent_event(agent, e, d)],
            )

        spec = ChildSpec(agent.name, start, restart=Restart.PERMANENT, shutdown=s.shutdown + 5)
        ref = _call(self._root, "start_child", spec).get(timeout=30)
        agent.sup = ref
        return ref

    def _start_instance(self, agent: _Agent, label: str,
                        start: Callable[[], pykka.ActorRef[Any]]) -> SupervisedVersionHandle:
        """Start one version instance under the agent's supervisor and return its handle."""
        handle = SupervisedVersionHandle(
            agent.name, label, lambda timeout: self._stop_instance(agent, label, timeout))
        spec = ChildSpec(label, start, restart=Restart.PERMANENT,
                         shutdown=self.supervision.shutdown)
        sup = agent.sup if agent.sup is not None and agent.sup.is_alive() else None
        with agent.lock:
            agent.handles[label] = handle
            agent.child_specs[label] = spec
            if len(agent.handles) > 1:
                self._hot.add(agent.name)
        try:
            if sup is None:
                # A new agent (or one whose supervisor is gone): its supervisor starts with
                # the version as a child (its ``child_started`` gives the handle its ref),
                # one hand-off to the supervisors' threads instead of two.
                self._ensure_supervisor(agent)
                ref = handle.ref
            else:
                ref = _call(sup, "start_child", spec).get(timeout=30)
        except Exception as exc:
            with agent.lock:
                agent.handles.pop(label, None)
                agent.child_specs.pop(label, None)
            raise _start_error(agent, label, exc) from exc
        if handle.ref is None and ref is not None:
            handle.ref = ref
            handle.state = "running"
        return handle

    def _stop_instance(self, agent: _Agent, label: str, timeout: float | None) -> None:
        with agent.lock:
            agent.child_specs.pop(label, None)
        sup = agent.sup
        if sup is not None:
            try:
                _call(sup, "terminate_child", label).get(timeout=(timeout or 10) + 5)
                _call(sup, "delete_child", label).get(timeout=10)
            except Exception as exc:  # the supervisor may be gone already
                _log.debug("manager.stop_instance", agent=agent.name, version=label,
                           reason=repr(exc))
        with agent.lock:
            agent.handles.pop(label, None)

    def _new_label(self, agent: _Agent, version: str) -> str:
        label = version
        while label in agent.handles:
            label = f"{version}~{next(agent.seq)}"
        return label

    # ------------------------------------------------------------------ config agents

    def validate(self, text: str, *, source: str = "<text>") -> ParsedAgent:
        """Validate a configuration-agent file against this node's registries.

        Args:
            text: The file's text.
            source: Its path, named in findings.

        Returns:
            The parse result; ``.report`` has all seven stages.
        """
        return parse_agent(text, source=source, capabilities=self.capabilities,
                           available_tools=tuple(self.tools.names()))

    def _read_config(self, path_or_text: str | Path, source: str | None) -> tuple[str, str]:
        if isinstance(path_or_text, Path) or (
                "\n" not in path_or_text and path_or_text.strip().endswith(".md")):
            path = Path(path_or_text)
            try:
                return path.read_text(encoding="utf-8"), source or str(path)
            except OSError as exc:
                raise errors.InvalidArgument(
                    f"cannot read agent file {str(path)!r}: {exc.strerror}") from exc
        return str(path_or_text), source or "<text>"

    def _config_spec(self, agent: _Agent, parsed: ParsedAgent, label: str) -> ConfigInstanceSpec:
        config = parsed.unwrap()
        assert parsed.prompts is not None and agent.tracker is not None
        llm = config.llm or self.default_llm
        provider = agent.providers.get(llm)
        if provider is None:  # versions with the same llm section share one provider/client
            provider = agent.providers[llm] = provider_for(llm, agent=agent.name)
        tools = self.tools.view(agent.name, config.tools)
        rl = config.resource_limits
        # one tracker per agent: the newest version's limits apply to its conversations
        agent.tracker.configure(max_conversations=rl.max_conversations,
                                idle_timeout=float(rl.conversation_idle_timeout))
        return ConfigInstanceSpec(agent.name, label, config, parsed.prompts, provider, tools,
                                  agent.memory, agent.tracker, self.tenant_pool)

    def deploy_config_agent(self, path_or_text: str | Path, *, source: str | None = None,
                            validate_only: bool = False) -> OperationResult:
        """Deploy a configuration agent from a file path or its text.

        Args:
            path_or_text: A path to a ``.md`` file, or the file's text.
            source: The path to name in findings and to re-read on ``reload`` without text.
            validate_only: Validate, deploy nothing.

        Returns:
            The result; ``details["report"]`` is the validation report.

        Raises:
            ValidationFailed: The file failed validation (``details`` lists the findings).
            AgentExists: An agent of that name is deployed; use ``reload``.
        """
        text, source = self._read_config(path_or_text, source)
        parsed = self.validate(text, source=source)
        if not parsed.ok:
            raise parsed.report.to_error()
        config = parsed.unwrap()
        if validate_only:
            return OperationResult(config.name, "", "validate", "Validated", config.version,
                                   details={"report": parsed.report.to_dict()})
        self._check_open()
        with self._lock:
            if config.name in self._agents:
                raise errors.AgentExists(
                    f"agent {config.name!r} is already deployed (version "
                    f"{self._agents[config.name].current_version}); use `caxton agents reload "
                    f"{config.name}` to change it")
            lifecycle = config_agent_lifecycle(config.name)
            agent = self._new_agent(config.name, uuid.uuid4().hex, AgentType.CONFIG, lifecycle)
        try:
            lifecycle.transition(ConfigAgentState.VALIDATED, "validation passed")
            agent.source = source if source != "<text>" else None
            agent.parsed = parsed
            rl = config.resource_limits
            agent.tracker = ConversationTracker(
                rl.max_conversations, agent=config.name,
                idle_timeout=float(rl.conversation_idle_timeout),
                on_close=agent.router.end_conversation)
            agent.memory = self.memory_store.handle(
                str(rl.memory_scope), agent=config.name, max_entities=rl.max_memory_entities)
            lifecycle.transition(ConfigAgentState.REGISTERED, "capabilities registered")
            label = self._new_label(agent, config.version)
            spec = self._config_spec(agent, parsed, label)
            handle = self._start_instance(agent, label,
                                          lambda: ConfigAgentActor.start(spec))
            agent.router.add_version(handle, 100)
            agent.current_label, agent.current_version = label, config.version
            agent.label_version[label] = config.version
            number = 1
            agent.record(VersionRecord(config.version, number, text.encode(),
                                       {"source": source}))
            lifecycle.transition(ConfigAgentState.ACTIVE, "deployed")
        except BaseException:
            self._discard(agent)
            raise
        self._persist_deploy(agent, config.version, number, text.encode(), {"source": source},
                             {"source": agent.source})
        return OperationResult(agent.name, agent.agent_id, "deploy", str(lifecycle.state),
                               config.version, details={"report": parsed.report.to_dict()})

    def _new_agent(self, name: str, agent_id: str, kind: AgentType,
                   lifecycle: Lifecycle) -> _Agent:
        router = Router(name, seed=self._seed, pin_ttl=self._pin_ttl,
                        housekeeping_interval=None)
        agent = _Agent(name, agent_id, kind, lifecycle, router)
        lifecycle.add_listener(
            lambda lc, rec: self._on_transition(agent, rec))
        self._agents[name] = agent
        self._ids[agent_id] = name
        return agent

    def _on_transition(self, agent: _Agent, rec: Any) -> None:
        state = str(rec.to_state)
        # A Failed agent (its version crash-looped until the breaker opened) still takes
        # messages: the breaker answers CIRCUIT_OPEN while open and lets its trial restart
        # serve when half-open, which is how the agent heals by itself.
        agent.accepting = state in ("Active", "Running", "Failed")
        self._emit(agent.name, "lifecycle.transition",
                   {"from": str(rec.from_state), "to": state, "reason": rec.reason})
        # A deploy's first transitions come before its record exists (``_persist_deploy``
        # writes the state it reached); writing them would only open and roll back a write
        # transaction each, under the store's lock.
        if self.store is not None and agent.persisted and agent.name in self._agents:
            try:
                self.store.set_state(agent.name, state)
            except errors.AgentNotFound:
                pass  # not persisted yet (first transitions of a deploy)

    def _discard(self, agent: _Agent) -> None:
        with self._lock:
            self._agents.pop(agent.name, None)
            self._ids.pop(agent.agent_id, None)
        agent.router.close(timeout=5)
        if agent.sup is not None:
            try:
                _call(self._root, "terminate_child", agent.name).get(timeout=30)
                _call(self._root, "delete_child", agent.name).get(timeout=10)
            except Exception:
                pass
        for provider in agent.providers.values():
            _quiet(provider.close)

    def reload(self, name: str, text: str | None = None, *, strategy: str = "immediate",
               rollout: RolloutConfig | None = None, preserve_memory: bool = True,
               wait: bool | None = None, timeout: float = 60.0) -> OperationResult:
        """Hot-reload a configuration agent, validating first.

        An invalid file is refused and the running version keeps serving. Memory and open
        conversations are kept (they belong to the agent, not the version).

        Args:
            name: The agent.
            text: The new file's text (``None``: re-read the file it was deployed from).
            strategy: ``immediate``, ``gradual``, ``blue-green``, ``canary`` ... (any plan).
            rollout: Strategy tunables.
            preserve_memory: Keep memory (``False`` clears the agent's memory first).
            wait: Wait for the rollout to finish (default: only for ``immediate``).
            timeout: Seconds to wait.

        Returns:
            The result; ``operation_id`` is set while the rollout runs.

        Raises:
            ValidationFailed: The new file failed validation (nothing changed).
            RolloutInProgress: Another rollout of the agent is running.
        """
        agent = self._agent(name)
        if agent.kind is not AgentType.CONFIG:
            raise errors.InvalidArgument(
                f"agent {agent.name!r} is a WASM agent; reload it with a module "
                "(`caxton agents reload NAME --file module.wasm`)")
        if text is None:
            if agent.source is None:
                raise errors.InvalidArgument(
                    f"agent {agent.name!r} was deployed from text, not a file; pass the new "
                    "file (`caxton agents reload NAME --file agent.md`)")
            text, source = self._read_config(Path(agent.source), agent.source)
        else:
            source = agent.source or "<text>"
        parsed = self.validate(text, source=source)
        if not parsed.ok:
            self._emit(agent.name, "reload.refused", {"reason": parsed.report.summary()})
            raise parsed.report.to_error()
        config = parsed.unwrap()
        if name_key(config.name) != name_key(agent.name):
            raise errors.InvalidArgument(
                f"the new file names agent {config.name!r}, not {agent.name!r}; deploy it as a "
                "new agent or fix its `name`")
        if agent.lifecycle.state not in (ConfigAgentState.ACTIVE, ConfigAgentState.SUSPENDED):
            raise errors.IllegalTransition(
                f"agent {agent.name!r} is {agent.lifecycle.state}; reload needs Active or "
                "Suspended (recover or resume it first)")
        if not preserve_memory and agent.memory is not None:
            agent.memory.clear()
        label = self._new_label(agent, config.version)

        def start_new() -> SupervisedVersionHandle:
            spec = self._config_spec(agent, parsed, label)
            return self._start_instance(agent, label, lambda: ConfigAgentActor.start(spec))

        record = VersionRecord(config.version, len(agent.history) + 1, text.encode(),
                               {"source": source, "strategy": strategy})
        return self._run_rollout(agent, strategy, label, config.version, start_new, record,
                                 rollout, wait, timeout, on_success=lambda: setattr(
                                     agent, "parsed", parsed))

    def ab_test(self, name: str, config_b: str, *, config_a: str | None = None,
                split: tuple[int, int] = (80, 20), rollout: RolloutConfig | None = None
                ) -> OperationResult:
        """Run versions A (the current one, or ``config_a``) and B side by side at a split.

        End it with :meth:`promote` (B takes over) or :meth:`abort` (A stays).

        Args:
            name: The agent.
            config_b: The text of version B.
            config_a: The text of version A (``None``: the running version); if it differs
                from the running one it is reloaded first.
            split: Traffic weights (A, B).
            rollout: Other tunables.

        Returns:
            The result with the operation id.
        """
        agent = self._agent(name)
        if config_a is not None and agent.parsed is not None and config_a != agent.parsed.text:
            self.reload(name, config_a, wait=True)
        base = rollout or RolloutConfig()
        cfg = dataclasses.replace(base, split=(split[0], split[1]))
        return self.reload(name, config_b, strategy="ab-test", rollout=cfg, wait=False)

    def promote(self, name: str, *, timeout: float = 10.0) -> RolloutStatus:
        """Promote the running rollout or A/B test of ``name`` (the new version takes over).

        Returns once the rollout has ended and the agent's current version is updated (or
        after ``timeout``), so the status returned shows the outcome.
        """
        return self._end_rollout(self._agent(name), Command.PROMOTE, timeout)

    def abort(self, name: str, *, timeout: float = 10.0) -> RolloutStatus:
        """Abort the running rollout or A/B test of ``name`` (the old version stays).

        Returns once the old version takes all traffic again (or after ``timeout``).
        """
        return self._end_rollout(self._agent(name), Command.ABORT, timeout)

    def _end_rollout(self, agent: _Agent, command: Command, timeout: float) -> RolloutStatus:
        self.rollouts.command(agent.name, command)
        watcher = agent.watcher
        if watcher is not None and watcher is not threading.current_thread():
            watcher.join(timeout)
        return self.rollouts.status(agent.name)

    def end_conversation(self, name: str, conversation_id: str) -> bool:
        """End a conversation: its version pin is dropped (a version draining for a gradual
        reload retires once its last conversation ends) and a config agent's slot and history
        for it are released.

        Args:
            name: The agent.
            conversation_id: The conversation.

        Returns:
            Whether the conversation was known (pinned or open).
        """
        agent = self._agent(name)
        pinned = agent.router.end_conversation(conversation_id)
        opened = agent.tracker.end(conversation_id) if agent.tracker is not None else False
        return pinned or opened

    def conversations(self, name: str) -> list[dict[str, Any]]:
        """The open conversations of a config agent (none for a WASM agent), oldest first.

        Args:
            name: The agent.

        Returns:
            One map per conversation: ``id``, ``messages``, ``history``, ``in_flight``,
            ``age_s``, ``idle_s``, ``expires_in_s``.

        Raises:
            AgentNotFound: No such agent.
        """
        agent = self._agent(name)
        return agent.tracker.describe() if agent.tracker is not None else []

    def reload_status(self, name: str) -> RolloutStatus:
        """The running (or last) rollout of ``name``: strategy, step, weights, analyses.

        Raises:
            NoRollout: The agent never had a rollout.
        """
        return self.rollouts.status(self._agent(name).name)

    def _run_rollout(self, agent: _Agent, strategy: str, label: str, version: str,
                     start_new: Callable[[], Any], record: VersionRecord,
                     rollout: RolloutConfig | None, wait: bool | None, timeout: float,
                     on_success: Callable[[], None] | None = None) -> OperationResult:
        self._check_open()
        executor = self.rollouts.start(agent.router, strategy, new_version=label,
                                       start_new=start_new, old_version=agent.current_label,
                                       config=rollout)
        op_id = uuid.uuid4().hex[:12]
        agent.operation_id = op_id
        self._emit(agent.name, "rollout.started",
                   {"strategy": strategy, "version": version, "operation_id": op_id})
        self._persist_rollout_start(agent, strategy, version, record, op_id)

        def finish() -> None:
            status = executor.wait()
            if status.outcome is Outcome.SUCCEEDED:
                with agent.lock:
                    agent.current_label, agent.current_version = label, version
                    agent.label_version[label] = version
                    agent.record(record)
                if on_success is not None:
                    on_success()
            self._persist_rollout_end(agent, status)
            self._emit(agent.name, "rollout.finished",
                       {"strategy": strategy, "version": version, "operation_id": op_id,
                        "outcome": str(status.outcome), "reason": status.reason})

        watcher = threading.Thread(target=finish, name=f"rollout-{agent.name}", daemon=True)
        agent.watcher = watcher
        watcher.start()
        if wait is None:
            wait = strategy == "immediate"
        if wait:
            watcher.join(timeout)
            if watcher.is_alive():
                raise errors.Timeout(
                    f"the {strategy} rollout of agent {agent.name!r} did not finish within "
                    f"{timeout}s; it goes on (see `caxton agents reload-status {agent.name}`)")
            status = executor.status()
            if status.outcome is not Outcome.SUCCEEDED:
                raise errors.AgentFailed(
                    f"the {strategy} rollout of agent {agent.name!r} to {version} ended "
                    f"{status.outcome}: {status.reason}", details=[status.to_dict()])
            return OperationResult(agent.name, agent.agent_id, "reload",
                                   str(agent.lifecycle.state), version,
                                   details={"rollout": status.to_dict()})
        return OperationResult(agent.name, agent.agent_id, "reload",
                               str(agent.lifecycle.state), version, operation_id=op_id,
                               details={"rollout": executor.status().to_dict()})

    def suspend(self, name: str) -> OperationResult:
        """Suspend an agent: new messages wait (bounded) until :meth:`resume`.

        Raises:
            IllegalTransition: The agent is not Active.
        """
        agent = self._agent(name)
        with agent.lock:
            target = (ConfigAgentState.SUSPENDED if agent.kind is AgentType.CONFIG
                      else WasmAgentState.DRAINING)
            if agent.kind is AgentType.WASM:
                raise errors.InvalidArgument(
                    f"agent {agent.name!r} is a WASM agent: stop it with stop_wasm_agent "
                    "(`caxton agents disable`)")
            agent.lifecycle.transition(target, "suspended by operator")
        return self._result(agent, "suspend")

    def resume(self, name: str) -> OperationResult:
        """Resume a suspended (or disabled) agent; held messages are delivered in order.

        Raises:
            IllegalTransition: The agent is neither Suspended nor Inactive.
        """
        agent = self._agent(name)
        with agent.lock:
            state = agent.lifecycle.state
            if state == WasmAgentState.STOPPED:
                # Stopped -> Running is not in the table (it started an instance, then
                # raised IllegalTransition): go through Loaded as recover does.
                agent.lifecycle.transition(WasmAgentState.LOADED, "resume")
            if state in (ConfigAgentState.INACTIVE, WasmAgentState.STOPPED):
                self._restart_current(agent)
            target = (ConfigAgentState.ACTIVE if agent.kind is AgentType.CONFIG
                      else WasmAgentState.RUNNING)
            agent.lifecycle.transition(target, "resumed by operator")
            held = list(agent.waiting)
            agent.waiting.clear()
        for w in held:
            _relay(agent.router.route(w.message), w.reply)
        return self._result(agent, "resume", held=len(held))

    def disable(self, name: str, *, preserve_memory: bool = True,
                timeout: float = 30.0) -> OperationResult:
        """Stop an agent's instances and keep its configuration (state ``Inactive``).

        Args:
            name: The agent.
            preserve_memory: Keep its memory (and snapshot it for ``recover``); ``False``
                clears it.
            timeout: Seconds to drain.
        """
        agent = self._agent(name)
        target = (ConfigAgentState.INACTIVE if agent.kind is AgentType.CONFIG
                  else WasmAgentState.STOPPED)
        if not agent.lifecycle.can(target) and agent.kind is AgentType.WASM:
            agent.lifecycle.transition(WasmAgentState.DRAINING, "disable: draining")
        elif not agent.lifecycle.can(target):
            agent.lifecycle.transition(target)  # raises IllegalTransition naming the states
        else:
            agent.accepting = False
        self._drain_all(agent, timeout)
        if agent.memory is not None:
            if preserve_memory:
                self._snapshot_memory(agent)
            else:
                agent.memory.clear()
        if agent.lifecycle.state != target:
            agent.lifecycle.transition(target, "disabled by operator")
        self._fail_waiting(agent, errors.AgentUnavailable(
            f"agent {agent.name!r} was disabled while this message waited"))
        return self._result(agent, "disable")

    def recover(self, name: str, *, restore_memory: bool = False) -> OperationResult:
        """Bring a Failed or Inactive agent back at its current version.

        Args:
            name: The agent.
            restore_memory: Restore the memory snapshot taken at disable/remove.
        """
        agent = self._agent(name)
        with agent.lock:
            if agent.memory is not None and restore_memory:
                snap = self._memory_snapshot_path(agent)
                if snap is None or not snap.exists():
                    raise errors.InvalidArgument(
                        f"agent {agent.name!r} has no memory snapshot to restore; snapshots "
                        "are taken by `caxton agents disable --preserve-memory`")
                agent.memory.restore_from(snap)
            state = agent.lifecycle.state
            if agent.kind is AgentType.CONFIG:
                if state == ConfigAgentState.FAILED:
                    agent.lifecycle.transition(ConfigAgentState.VALIDATED, "recover")
                    agent.lifecycle.transition(ConfigAgentState.REGISTERED, "recover")
                if agent.lifecycle.state in (ConfigAgentState.REGISTERED,
                                             ConfigAgentState.INACTIVE):
                    self._restart_current(agent)
                    agent.lifecycle.transition(ConfigAgentState.ACTIVE, "recovered")
                elif agent.lifecycle.state == ConfigAgentState.SUSPENDED:
                    return self.resume(name)
            else:
                if state in (WasmAgentState.FAILED, WasmAgentState.STOPPED):
                    agent.lifecycle.transition(WasmAgentState.LOADED, "recover")
                    self._restart_current(agent)
                    agent.lifecycle.transition(WasmAgentState.RUNNING, "recovered")
        return self._result(agent, "recover")

    def remove(self, name: str, *, timeout: float = 30.0) -> OperationResult:
        """Drain and remove an agent completely (its memory is snapshotted first).

        Args:
            name: The agent.
            timeout: Seconds to drain.
        """
        agent = self._agent(name)
        agent.accepting = False
        with self._lock:
            self._agents.pop(agent.name, None)
            self._ids.pop(agent.agent_id, None)
        try:
            self.rollouts.command(agent.name, Command.ABORT)
        except errors.CaxtonError:
            pass
        self._drain_all(agent, timeout)
        self._fail_waiting(agent, errors.AgentNotFound(
            f"agent {agent.name!r} was removed while this message waited"))
        if agent.memory is not None:
            self._snapshot_memory(agent)
        self._agents[agent.name] = agent  # so _discard can find the supervisor bookkeeping
        self._discard(agent)
        if self.store is not None:
            self.store.remove_agent(agent.name)
        self._emit(agent.name, "agent.removed", {})
        return OperationResult(agent.name, agent.agent_id, "remove", "removed",
                               agent.current_version)

    def rollback(self, name: str, to_version: str | None = None, *,
                 strategy: str = "immediate", wait: bool = True,
                 timeout: float = 60.0) -> OperationResult:
        """Roll an agent back to a kept version (default: the one before the current).

        Args:
            name: The agent.
            to_version: The version (``None``: the previous one).
            strategy: ``immediate`` or ``blue-green``.
            wait: Wait for the switch.
            timeout: Seconds to wait.

        Raises:
            VersionNotFound: The version is not among the last five kept.
        """
        agent = self._agent(name)
        if to_version is None:
            older = [r for r in agent.history if r.version != agent.current_version]
            if not older:
                raise errors.VersionNotFound(
                    f"agent {agent.name!r} has no earlier version to roll back to")
            rec = older[-1]
        else:
            rec = agent.find(to_version)
        label = self._new_label(agent, rec.version)
        start_new = self._starter(agent, rec, label)
        return self._run_rollout(agent, strategy, label, rec.version, start_new, rec,
                                 None, wait, timeout)

    def _starter(self, agent: _Agent, rec: VersionRecord, label: str
                 ) -> Callable[[], SupervisedVersionHandle]:
        if agent.kind is AgentType.CONFIG:
            parsed = self.validate(rec.payload.decode(), source=agent.source or "<text>")

            def start_config() -> SupervisedVersionHandle:
                spec = self._config_spec(agent, parsed, label)
                agent.parsed = parsed
                return self._start_instance(agent, label, lambda: ConfigAgentActor.start(spec))
            return start_config
        requirements = ResourceRequirements.from_dict(rec.metadata["requirements"]) \
            if "requirements" in rec.metadata else (agent.requirements or ResourceRequirements())
        policy = agent.policy or sb.SecurityPolicy.default()

        def start_wasm() -> SupervisedVersionHandle:
            spec = WasmInstanceSpec(agent.name, label, rec.payload, requirements.to_limits(),
                                    policy, on_fuel=self._fuel_reporter(agent, label))
            return self._start_instance(agent, label, lambda: WasmAgentActor.start(spec))
        return start_wasm

    def _restart_current(self, agent: _Agent) -> None:
        rec = agent.find(agent.current_version)
        for label in list(agent.router.versions()):
            _quiet(agent.router.retire, label)
        label = self._new_label(agent, rec.version)
        handle = self._starter(agent, rec, label)()
        agent.router.add_version(handle, 100)
        agent.current_label = label

    def _drain_all(self, agent: _Agent, timeout: float) -> None:
        # Stopping a whole agent waits for the messages already delivered, not for its open
        # conversations: no new message can reach it, so a pin would only hold the stop for
        # the whole timeout (``remove`` of an agent with a conversation took 30 s).
        deadline = time.monotonic() + timeout
        for label in list(agent.router.versions()):
            _quiet(agent.router.retire, label)
        while time.monotonic() < deadline:
            agent.router.poll()
            if not agent.router.versions():
                break
            time.sleep(0.01)
        for label in list(agent.router.versions()):
            _quiet(agent.router.retire, label)

    def _fail_waiting(self, agent: _Agent, error: errors.CaxtonError) -> None:
        with agent.lock:
            held = list(agent.waiting)
            agent.waiting.clear()
        for w in held:
            w.reply.fail(error)

    # ------------------------------------------------------------------ WASM agents

    def validate_wasm(self, module: bytes, policy: sb.SecurityPolicy | None = None
                      ) -> sb.ValidationReport:
        """Run the six-stage WASM validation pipeline.

        Args:
            module: ``.wasm`` bytes or ``.wat`` text.
            policy: The policy (default: ``SecurityPolicy.default()``).

        Returns:
            The report.
        """
        return sb.validate(module, policy or sb.SecurityPolicy.default())

    def deploy_wasm_agent(self, agent_id: str | None, agent_name: str | None, version: str,
                          version_number: int, config: DeploymentConfig,
                          wasm_bytes: bytes) -> OperationResult:
        """Deploy a WASM agent (validated against ``config.security_policy`` first).

        Args:
            agent_id: The agent's id (``None``: generated).
            agent_name: Its name (``None``: the id).
            version: The version label.
            version_number: Monotonic version number.
            config: Strategy, resource requirements and security policy.
            wasm_bytes: The module (``.wasm`` bytes or ``.wat`` text).

        Returns:
            The deployment result.

        Raises:
            ValidationFailed: The module failed validation (``details`` names each finding).
            AgentExists: The name is taken; use :meth:`hot_reload_wasm_agent`.
        """
        agent_id = agent_id or uuid.uuid4().hex
        name = agent_name or agent_id
        self._check_open()
        report = sb.validate(wasm_bytes, config.security_policy)
        if not report.ok:
            raise sandbox_error(sb.ValidationError(report), name, version)
        with self._lock:
            if name in self._agents:
                raise errors.AgentExists(
                    f"agent {name!r} is already deployed; hot-reload it instead "
                    f"(`caxton agents reload {name} --file MODULE`)")
            lifecycle = wasm_agent_lifecycle(name)
            agent = self._new_agent(name, agent_id, AgentType.WASM, lifecycle)
        try:
            agent.requirements = config.resource_requirements
            agent.policy = config.security_policy
            lifecycle.transition(WasmAgentState.LOADED, "module validated")
            metadata = {"requirements": config.resource_requirements.to_dict(),
                        "strategy": str(config.strategy)}
            rec = VersionRecord(str(version), version_number, bytes(wasm_bytes), metadata)
            label = self._new_label(agent, str(version))
            handle = self._starter(agent, rec, label)()
            agent.router.add_version(handle, 100)
            agent.current_label, agent.current_version = label, str(version)
            agent.label_version[label] = str(version)
            agent.record(rec)
            lifecycle.transition(WasmAgentState.RUNNING, "deployed")
        except BaseException:
            self._discard(agent)
            raise
        self._persist_deploy(agent, str(version), version_number, bytes(wasm_bytes), metadata,
                             {"policy": _policy_name(config.security_policy)})
        return self._result(agent, "deploy")

    def hot_reload_wasm_agent(self, agent_id: str, agent_name: str | None, new_version: str,
                              version_number: int, config: HotReloadConfig,
                              new_wasm_bytes: bytes, *, wait: bool | None = None,
                              timeout: float = 60.0) -> OperationResult:
        """Hot-reload a WASM agent with a strategy (state handed over when both support it).

        Args:
            agent_id: The agent's id (or name).
            agent_name: Its name (optional, used when ``agent_id`` is unknown).
            new_version: The new version label.
            version_number: Monotonic version number.
            config: Strategy, tunables, state hand-over.
            new_wasm_bytes: The new module.
            wait: Wait for the rollout (default: only for ``immediate``).
            timeout: Seconds to wait.

        Returns:
            The result (``operation_id`` while a rollout runs).

        Raises:
            ValidationFailed: The new module failed validation (the old keeps serving).
        """
        agent = self._agent(agent_name or agent_id) if agent_name else self._agent(agent_id)
        if agent.kind is not AgentType.WASM:
            raise errors.InvalidArgument(f"agent {agent.name!r} is a config agent; use reload")
        policy = config.security_policy or agent.policy or sb.SecurityPolicy.default()
        report = sb.validate(new_wasm_bytes, policy)
        if not report.ok:
            raise sandbox_error(sb.ValidationError(report), agent.name, str(new_version))
        requirements = config.resource_requirements or agent.requirements or \
            ResourceRequirements()
        strategy = str(config.strategy)
        metadata = {"requirements": requirements.to_dict(), "strategy": strategy}
        rec = VersionRecord(str(new_version), version_number, bytes(new_wasm_bytes), metadata)
        label = self._new_label(agent, str(new_version))
        old = agent.handles.get(agent.current_label)

        def start_new() -> SupervisedVersionHandle:
            state = None
            if config.preserve_state and old is not None and old.ref is not None:
                try:
                    state = old.ref.proxy().snapshot().get(timeout=5)
                except Exception as exc:
                    _log.warning("manager.snapshot_failed", agent=agent.name, reason=repr(exc))
            spec = WasmInstanceSpec(agent.name, label, rec.payload, requirements.to_limits(),
                                    policy, state=state,
                                    on_fuel=self._fuel_reporter(agent, label))
            return self._start_instance(agent, label, lambda: WasmAgentActor.start(spec))

        def adopt() -> None:
            agent.requirements, agent.policy = requirements, policy

        return self._run_rollout(agent, strategy, label, str(new_version), start_new, rec,
                                 config.rollout, wait, timeout, on_success=adopt)

    def reload_wasm(self, name: str, module: bytes, *, version: str | None = None,
                    strategy: str = "immediate", rollout: RolloutConfig | None = None,
                    wait: bool | None = None, timeout: float = 60.0) -> OperationResult:
        """Convenience over :meth:`hot_reload_wasm_agent` for the control port and CLI."""
        agent = self._agent(name)
        number = max((r.version_number for r in agent.history), default=0) + 1
        return self.hot_reload_wasm_agent(
            agent.agent_id, agent.name, version or f"v{number}", number,
            HotReloadConfig(strategy=_hot_strategy(strategy), rollout=rollout),
            module, wait=wait, timeout=timeout)

    def _fuel_reporter(self, agent: _Agent, label: str) -> Callable[[int], None]:
        """What a WASM instance calls with each message's fuel: the router's per-version
        window (rollout analysis compares fuel per message) and :attr:`fuel_sink`."""
        record = agent.router.record_fuel
        name = agent.name

        def report(fuel: int) -> None:
            record(label, fuel)
            sink = self.fuel_sink
            if sink is not None:
                sink(name, label, fuel)

        return report

    def stop_wasm_agent(self, agent_id: str, timeout: float | None = None) -> OperationResult:
        """Drain a WASM agent (queued messages finish), then stop it (state ``Stopped``)."""
        agent = self._agent(agent_id)
        if agent.lifecycle.state == WasmAgentState.RUNNING:
            agent.lifecycle.transition(WasmAgentState.DRAINING, "stop requested")
        self._drain_all(agent, 30.0 if timeout is None else timeout)
        agent.lifecycle.transition(WasmAgentState.STOPPED, "drained")
        return self._result(agent, "stop")

    def remove_wasm_agent(self, agent_id: str) -> OperationResult:
        """Remove a WASM agent completely."""
        return self.remove(agent_id)

    def _fail_agent(self, agent: _Agent, label: str) -> None:
        """The current version crash-looped until its breaker opened: the agent is Failed."""
        reason = (f"version {label} failed repeatedly and its circuit breaker opened "
                  f"(last exit: {agent.last_error})")
        if agent.lifecycle.fail(reason) is not None:
            _log.error("manager.agent_failed", agent=agent.name, version=label,
                       reason=agent.last_error)

    def _heal_agent(self, agent: _Agent, label: str) -> None:
        """The breaker's trial run of a Failed agent's version stayed up: it serves again."""
        why = f"version {label} ran healthy after its breaker's trial restart"
        if str(agent.lifecycle.state) != "Failed":
            return
        try:
            if agent.kind is AgentType.CONFIG:
                agent.lifecycle.transition(ConfigAgentState.VALIDATED, why)
                agent.lifecycle.transition(ConfigAgentState.REGISTERED, why)
                agent.lifecycle.transition(ConfigAgentState.ACTIVE, why)
            else:
                agent.lifecycle.transition(WasmAgentState.LOADED, why)
                agent.lifecycle.transition(WasmAgentState.RUNNING, why)
        except errors.CaxtonError as exc:  # an operator acted meanwhile: theirs wins
            _log.info("manager.heal_skipped", agent=agent.name, reason=str(exc))
            return
        _log.info("manager.agent_healed", agent=agent.name, version=label)

    def _schedule_auto_rollback(self, agent: _Agent, label: str) -> bool:
        """Roll a WASM agent back to its previous version from another thread.

        Returns:
            Whether a rollback is scheduled or already running (``False``: no older version).
        """
        older = [r for r in agent.history if r.version != agent.current_version]
        if agent.auto_rollback_pending:
            return True
        if not older:
            return False
        agent.auto_rollback_pending = True
        target = older[-1].version

        def run() -> None:
            try:
                _log.warning("manager.auto_rollback", agent=agent.name, version=label,
                             to_version=target)
                self._emit(agent.name, "rollback.automatic",
                           {"from": agent.current_version, "to": target,
                            "reason": "circuit breaker opened"})
                self.rollback(agent.name, target, wait=True)
            except Exception as exc:
                _log.error("manager.auto_rollback_failed", agent=agent.name, reason=repr(exc))
            finally:
                agent.auto_rollback_pending = False

        threading.Thread(target=run, name=f"auto-rollback-{agent.name}", daemon=True).start()
        return True

    # ------------------------------------------------------------------ status

    def get_agent_by_name(self, name: str) -> AgentStatus:
        """Status of one agent of either kind.

        Raises:
            AgentNotFound: No such agent.
        """
        return self._status(self._agent(name))

    get_wasm_agent_status = get_agent_by_name

    def list_all_agents(self) -> list[AgentStatus]:
        """Status of every agent, by name."""
        return [self._status(a) for _, a in sorted(self._agents.items())]

    def list_wasm_agents(self) -> list[AgentStatus]:
        """Status of every WASM agent."""
        return [s for s in self.list_all_agents() if s.type is AgentType.WASM]

    def agent_names(self) -> list[str]:
        """Names of every deployed agent."""
        return sorted(self._agents)

    def has_agent(self, name: str) -> bool:
        """Whether an agent of that name is deployed (without listing them all)."""
        return name in self._agents

    def _status(self, agent: _Agent) -> AgentStatus:
        router = agent.router.status()
        instances = []
        restarts = 0
        breaker_open = False
        for v in router.versions:
            handle = agent.handles.get(v.version)
            restarts += handle.restarts if handle else 0
            breaker_open = breaker_open or bool(handle and handle.breaker == "open")
            m = v.metrics
            instances.append({
                "version": agent.label_version.get(v.version, v.version), "label": v.version,
                "state": str(v.state), "weight": v.weight, "in_flight": v.in_flight,
                "pinned": v.pinned,
                "instance": handle.state if handle and str(v.state) != "Stopped" else "stopped",
                "breaker": handle.breaker if handle else None,
                "restarts": handle.restarts if handle else 0,
                "requests": m.total_requests, "errors": m.total_errors,
                "p50_ms": m.p50_ms, "p99_ms": m.p99_ms,
            })
        state = str(agent.lifecycle.state)
        stats: dict[str, Any] = {}
        handle = agent.handles.get(agent.current_label)
        if handle is not None and handle.ref is not None:
            try:
                stats = handle.ref.proxy().stats().get(timeout=2)
            except Exception:
                stats = {}
        if state in ("Failed",) or breaker_open:
            health = "unhealthy"
        elif state in ("Inactive", "Stopped", "Unloaded"):
            health = "stopped"
        elif any(i["instance"] != "running" for i in instances if i["state"] == "Active"):
            health = "degraded"
        else:
            health = "healthy"
        details: dict[str, Any] = {"stats": stats, "waiting": len(agent.waiting),
                                   "operation_id": agent.operation_id}
        if agent.kind is AgentType.CONFIG and agent.parsed is not None and agent.parsed.config:
            cfg = agent.parsed.config
            details.update(capabilities=list(cfg.capabilities), tools=list(cfg.tools),
                           memory_scope=str(cfg.resource_limits.memory_scope),
                           source=agent.source,
                           memory=agent.memory.stats() if agent.memory else None)
        if agent.kind is AgentType.WASM and agent.requirements is not None:
            details.update(requirements=agent.requirements.to_dict(),
                           policy=_policy_name(agent.policy))
        return AgentStatus(
            name=agent.name, agent_id=agent.agent_id, type=agent.kind, state=state,
            version=agent.current_version, versions=[r.version for r in agent.history],
            health_status=health, restarts=restarts,
            last_error=agent.last_error or stats.get("last_error"),
            uptime=time.monotonic() - agent.deployed_at, instances=instances,
            lifecycle=[{"from": str(r.from_state), "to": str(r.to_state), "at": r.at,
                        "reason": r.reason} for r in agent.lifecycle.history],
            memory_allocated=int(stats.get("memory_allocated", 0)),
            fuel_consumed=int(stats.get("fuel_consumed", 0)),
            details=details,
        )

    def _result(self, agent: _Agent, operation: str, **details: Any) -> OperationResult:
        return OperationResult(agent.name, agent.agent_id, operation,
                               str(agent.lifecycle.state), agent.current_version,
                               details=details)

    # ------------------------------------------------------------------ persistence

    def _persist_deploy(self, agent: _Agent, version: str, number: int, payload: bytes,
                        metadata: dict[str, Any], config: dict[str, Any]) -> None:
        if self.store is None:
            return
        agent.persisted = True
        self.store.record_deploy(agent.name, agent_id=agent.agent_id, kind=str(agent.kind),
                                 version=version, version_number=number, payload=payload,
                                 metadata=metadata, config=config,
                                 state=str(agent.lifecycle.state))

    def _persist_rollout_start(self, agent: _Agent, strategy: str, version: str,
                               record: VersionRecord, op_id: str) -> None:
        if self.store is None:
            return
        self.store.deploy_version(
            agent.name, version, record.payload, version_number=record.version_number,
            metadata=record.metadata, make_current=False,
            rollout=RolloutState(strategy=strategy, stable_version=agent.current_version,
                                 target_version=version, operation_id=op_id))

    def _persist_rollout_end(self, agent: _Agent, status: RolloutStatus) -> None:
        if self.store is None or agent.name not in self._agents:
            return
        try:
            self.store.set_current_version(agent.name, agent.current_version,
                                           clear_rollout=True)
        except errors.CaxtonError as exc:
            _log.error("manager.persist_failed", agent=agent.name, reason=str(exc))

    def _rollout_aborted(self, status: RolloutStatus) -> None:
        self._emit(status.agent, "rollout.aborted",
                   {"outcome": str(status.outcome), "reason": status.reason,
                    "version": status.new_version})

    def _memory_snapshot_path(self, agent: _Agent) -> Path | None:
        if self.store is None or getattr(self.store, "path", None) is None:
            return None
        return Path(self.store.path).parent / "memory-snapshots" / f"{agent.name}.json"

    def _snapshot_memory(self, agent: _Agent) -> None:
        path = self._memory_snapshot_path(agent)
        if path is None or agent.memory is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        agent.memory.snapshot_to(path)

    def restore(self, snapshot: Any) -> list[str]:
        """Bring agents back from the node store's snapshot (node start).

        A rollout that was in progress is rolled back: the current version recorded in the
        store is the stable one, so the agent comes back on it and the rollout is cleared.

        Args:
            snapshot: ``NodeStore.load_all()``.

        Returns:
            The names of agents that could not be restored (each logged with the reason).
        """
        failed: list[str] = []
        for snap in snapshot.agents:
            rec = snap.agent
            try:
                self._restore_one(snap)
            except Exception as exc:
                failed.append(rec.name)
                _log.error("manager.restore_failed", agent=rec.name, reason=str(exc))
        return failed

    def _restore_one(self, snap: Any) -> None:
        rec = snap.agent
        current = snap.current
        kind = AgentType(rec.kind)
        lifecycle = (config_agent_lifecycle(rec.name) if kind is AgentType.CONFIG
                     else wasm_agent_lifecycle(rec.name))
        agent = self._new_agent(rec.name, rec.agent_id, kind, lifecycle)
        agent.persisted = True
        for v in snap.versions:
            agent.record(VersionRecord(v.info.version, v.info.version_number, v.payload,
                                       dict(v.info.metadata), v.info.created_at))
        agent.record(VersionRecord(current.info.version, current.info.version_number,
                                   current.payload, dict(current.info.metadata)))
        agent.current_version = current.info.version
        saved = str(rec.state)
        if kind is AgentType.CONFIG:
            agent.source = rec.config.get("source")
            parsed = self.validate(current.payload.decode(), source=agent.source or "<text>")
            if not parsed.ok:
                raise parsed.report.to_error()
            agent.parsed = parsed
            cfg = parsed.unwrap()
            agent.tracker = ConversationTracker(
                cfg.resource_limits.max_conversations, agent=rec.name,
                idle_timeout=float(cfg.resource_limits.conversation_idle_timeout),
                on_close=agent.router.end_conversation)
            agent.memory = self.memory_store.handle(
                str(cfg.resource_limits.memory_scope), agent=rec.name,
                max_entities=cfg.resource_limits.max_memory_entities)
            lifecycle.transition(ConfigAgentState.VALIDATED, "restored")
            lifecycle.transition(ConfigAgentState.REGISTERED, "restored")
            if saved in ("Inactive", "Failed"):
                lifecycle.transition(ConfigAgentState.INACTIVE, f"restored as {saved}")
            else:
                self._restart_current(agent)
                lifecycle.transition(ConfigAgentState.ACTIVE, "restored")
                if saved == "Suspended":
                    lifecycle.transition(ConfigAgentState.SUSPENDED, "restored as Suspended")
        else:
            meta = current.info.metadata
            agent.requirements = ResourceRequirements.from_dict(meta["requirements"]) \
                if "requirements" in meta else ResourceRequirements()
            agent.policy = _policy_from_name(rec.config.get("policy", "default"))
            lifecycle.transition(WasmAgentState.LOADED, "restored")
            if saved in ("Stopped", "Failed"):
                lifecycle.transition(WasmAgentState.STOPPED, f"restored as {saved}")
            else:
                self._restart_current(agent)
                lifecycle.transition(WasmAgentState.RUNNING, "restored")
        if snap.rollout is not None and self.store is not None:
            self.store.set_current_version(rec.name, agent.current_version, clear_rollout=True)
            self._emit(rec.name, "rollout.rolled_back_on_restart",
                       {"target": snap.rollout.target_version,
                        "stable": snap.rollout.stable_version})

    # ------------------------------------------------------------------ housekeeping / shutdown

    def _housekeep(self) -> None:
        ring: list[_Agent] = []
        pos = 0
        while not self._stop.wait(_HOUSEKEEP_TICK):
            now = time.monotonic()
            if pos >= len(ring):
                ring, pos = list(self._agents.values()), 0
            step = max(_POLL_SLICE_MIN, -(-len(ring) // _POLL_ROUND_TICKS))
            batch = ring[pos:pos + step]
            pos += step
            seen: set[str] = set()
            for name in list(self._hot):
                agent = self._agents.get(name)
                if agent is None:
                    self._hot.discard(name)
                    continue
                seen.add(name)
                self._housekeep_one(agent, now)
                with agent.lock:
                    if len(agent.handles) <= 1 and not agent.waiting:
                        self._hot.discard(name)
            for agent in batch:
                if agent.name in seen:
                    continue
                self._housekeep_one(agent, now)
                if len(agent.handles) > 1 or agent.waiting:
                    self._hot.add(agent.name)

    def _housekeep_one(self, agent: _Agent, now: float) -> None:
        try:
            agent.router.poll()
        except Exception as exc:
            _log.error("manager.poll_failed", agent=agent.name, reason=repr(exc))
        if agent.waiting:
            self._expire_waiting(agent, now)
        if agent.tracker is not None:
            agent.tracker.expire()  # an idle conversation also lets go of its version pin

    def _expire_waiting(self, agent: _Agent, now: float) -> None:
        expired: list[_Waiting] = []
        with agent.lock:
            while agent.waiting and agent.waiting[0].deadline <= now:
                expired.append(agent.waiting.popleft())
        for w in expired:
            w.reply.fail(errors.AgentSuspended(
                f"agent {agent.name!r} stayed suspended for {self.suspend_wait}s while this "
                f"message waited; resume it with `caxton agents resume {agent.name}`"))

    def _check_open(self) -> None:
        if self._closed:
            raise errors.ShuttingDown("the node is shutting down; no new deploys or reloads")

    def _emit(self, agent: str, event: str, data: dict[str, Any]) -> None:
        if self._on_event is not None:
            try:
                self._on_event(agent, event, data)
            except Exception:
                _log.exception("manager.event_sink_failed", event_name=event)

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop accepting, drain every agent within ``timeout``, stop the tree.

        Args:
            timeout: Seconds to drain all agents (in total).
        """
        if self._closed:
            return
        self._closed = True
        deadline = time.monotonic() + timeout
        self.rollouts.shutdown(timeout=min(5.0, timeout))
        agents = list(self._agents.values())
        for agent in agents:
            self._fail_waiting(agent, errors.ShuttingDown("the node is shutting down"))
            for label in list(agent.router.versions()):  # in-flight finish; pins do not wait
                _quiet(agent.router.retire, label)
        while time.monotonic() < deadline and any(a.router.versions() for a in agents):
            for agent in agents:
                _quiet(agent.router.poll)
            time.sleep(0.01)
        for agent in agents:
            agent.accepting = False
            _quiet(agent.router.close, 1.0)
        self._stop.set()
        try:
            self._root.stop(block=True, timeout=max(5.0, deadline - time.monotonic()))
        except Exception as exc:
            _log.warning("manager.root_stop_failed", reason=repr(exc))
        for agent in agents:
            for provider in agent.providers.values():
                _quiet(provider.close)
        if self._memory_owned:
            self.memory_store.close()
            if self._tmp is not None:
                import shutil

                shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> AgentLifecycleManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


# ---------------------------------------------------------------------- helpers

def _relay(source: ReplyFuture, target: ReplyFuture) -> None:
    source.add_done_callback(lambda f: _forward(f, target))


def _forward(source: ReplyFuture, target: ReplyFuture) -> None:
    target.served_by = source.served_by  # before completing: done callbacks read it
    err = source.error
    if err is not None:
        target.fail(err)
    else:
        target.set(source.value)


def _call(ref: pykka.ActorRef[Any], method: str, *args: Any) -> pykka.Future[Any]:
    """``ref.proxy().method(*args)`` without building the proxy.

    ``ActorRef.proxy()`` introspects every attribute of the actor on each call (~0.5 ms for a
    Supervisor, a third of a WASM deploy's time); the message it sends is this same ProxyCall.
    """
    return ref.ask(ProxyCall(attr_path=(method,), args=args, kwargs={}), block=False)


def _log_failure(future: ReplyFuture) -> None:
    err = future.error
    if err is not None:
        _log.warning("manager.tell_failed", code=str(err.code), reason=err.message)


def _quiet(fn: Callable[..., Any], *args: Any) -> None:
    try:
        fn(*args)
    except Exception as exc:
        _log.debug("manager.ignored", call=getattr(fn, "__name__", repr(fn)), reason=repr(exc))


def _start_error(agent: _Agent, label: str, exc: BaseException) -> errors.CaxtonError:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, errors.CaxtonError):
            return cause
        cause = cause.__cause__ or cause.__context__
    return errors.AgentFailed(
        f"agent {agent.name!r} version {label!r} failed to start: {exc}")


def _hot_strategy(strategy: str) -> HotReloadStrategy:
    try:
        return HotReloadStrategy(strategy)
    except ValueError:
        allowed = ", ".join(s.value for s in HotReloadStrategy)
        raise errors.InvalidArgument(
            f"unknown reload strategy {strategy!r}; use one of: {allowed}") from None


def _policy_name(policy: sb.SecurityPolicy | None) -> str:
    if policy is None:
        return "default"
    for name in ("strict", "default", "relaxed"):
        if policy == getattr(sb.SecurityPolicy, name)():
            return name
    return "custom"


def _policy_from_name(name: str) -> sb.SecurityPolicy:
    factory = getattr(sb.SecurityPolicy, name, None)
    return factory() if callable(factory) and name in ("strict", "default", "relaxed") \
        else sb.SecurityPolicy.default()


__all__ = ["KEPT_VERSIONS", "AgentLifecycleManager", "SupervisionSettings", "VersionRecord"]
