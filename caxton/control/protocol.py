"""The control protocol: the single source of truth for server, client, CLI and docs.

Every request and every reply on the control port is ONE msgpack frame holding a map:

* request ``{"v": 1, "id": <int|str>, "op": "agents.deploy", "args": {...}}``
* success ``{"v": 1, "id": <same id>, "ok": true, "result": {...}}``
* failure ``{"v": 1, "id": <same id>, "ok": false,
  "error": {"code": "VALIDATION_FAILED", "message": "...", "details": [...]}}``

Each operation has an ``Args`` model (validated by the server before a handler runs; extra keys
are refused) and a ``Result`` model documenting the shape the node returns (results are
forward-compatible: unknown result keys are kept). :data:`OPS` maps op names to their
:class:`OpSpec`.

Run ``python3 -m caxton.control.protocol --markdown`` to print the protocol reference that the
README embeds; a test checks that the README's copy is current.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from caxton.errors import ErrorCode, InvalidArgument

PROTOCOL_VERSION: Literal[1] = 1
"""The only envelope version this module speaks (``"v"`` in every frame)."""

DEFAULT_CONTROL_ENDPOINT = "tcp://127.0.0.1:7460"
"""Where a node's control port listens unless configured otherwise."""

DEFAULT_EVENTS_ENDPOINT = "tcp://127.0.0.1:7461"
"""Where a node publishes its event stream unless configured otherwise."""

DEFAULT_MAX_MESSAGE_SIZE = 16 * 1024 * 1024
"""Largest frame (bytes) the control port accepts; larger ones are refused by ZeroMQ."""


# --------------------------------------------------------------------------------------------
# Vocabulary
# --------------------------------------------------------------------------------------------


class DeployStrategy(StrEnum):
    """How a first deployment (or a deploy over an existing agent) is rolled out."""

    IMMEDIATE = "immediate"
    GRADUAL = "gradual"
    BLUE_GREEN = "blue-green"
    CANARY = "canary"


class ReloadStrategy(StrEnum):
    """How a hot reload moves traffic from the running version to the new one."""

    IMMEDIATE = "immediate"
    GRADUAL = "gradual"
    BLUE_GREEN = "blue-green"
    CANARY = "canary"
    GRACEFUL = "graceful"
    TRAFFIC_SPLITTING = "traffic-splitting"
    PARALLEL = "parallel"


class AgentType(StrEnum):
    """The two kinds of agent."""

    CONFIG = "config"
    WASM = "wasm"


class LogLevel(StrEnum):
    """Log levels accepted by ``agents.logs``."""

    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"


class OperationState(StrEnum):
    """States of a long-running operation (a canary, a gradual rollout, an A/B test)."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"
    ABORTED = "aborted"


_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmg]i?b?|b)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def parse_size(text: str | int) -> int:
    """Parse a memory size such as ``10MB``, ``512KiB``, ``1g`` or ``1048576`` into bytes.

    Sizes use binary multiples (``1MB`` is 1,048,576 bytes), as WebAssembly pages do.

    Args:
        text: The size as typed by a user, or an integer number of bytes.

    Returns:
        The size in bytes.

    Raises:
        InvalidArgument: The text is not a size.
    """
    if isinstance(text, int):
        if text < 0:
            raise InvalidArgument(f"a size must not be negative, got {text}")
        return text
    match = _SIZE_RE.match(text)
    if not match:
        raise InvalidArgument(f"{text!r} is not a size; write e.g. 10MB, 512KB or 1048576")
    unit = (match.group(2) or "").lower()[:1]
    return int(float(match.group(1)) * _SIZE_UNITS[unit])


def parse_split(text: str) -> tuple[int, int]:
    """Parse a traffic split such as ``80/20`` into two percentages.

    Args:
        text: ``A/B`` with two non-negative integers summing to 100.

    Returns:
        The two percentages.

    Raises:
        InvalidArgument: The text is not a split or does not sum to 100.
    """
    parts = text.split("/")
    try:
        a, b = (int(p) for p in parts)
    except ValueError:
        raise InvalidArgument(f"{text!r} is not a split; write e.g. 80/20") from None
    if a < 0 or b < 0 or a + b != 100:
        raise InvalidArgument(f"split {text!r} must be two percentages summing to 100")
    return a, b


# --------------------------------------------------------------------------------------------
# Envelope
# --------------------------------------------------------------------------------------------


class _Strict(BaseModel):
    """Base of every args model: unknown keys are refused, values are not coerced loosely."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class _Open(BaseModel):
    """Base of every result model: the node may add keys in later versions."""

    model_config = ConfigDict(extra="allow")


RequestId = int | str


class Request(_Strict):
    """One request frame."""

    v: Literal[1] = Field(PROTOCOL_VERSION, description="Envelope version; always 1.")
    id: RequestId = Field(description="Chosen by the client; echoed in the reply.")
    op: str = Field(description="Operation name, e.g. `agents.deploy`.")
    args: dict[str, Any] = Field(default_factory=dict, description="The op's arguments.")


class ErrorBody(_Open):
    """The ``error`` map of a failed reply."""

    code: str = Field(description="An `ErrorCode` value.")
    message: str = Field(description="What happened, to whom, and the likely fix.")
    details: list[Any] = Field(default_factory=list, description="Structured findings.")


class Reply(_Open):
    """One reply frame (``result`` when ``ok``, ``error`` otherwise)."""

    v: Literal[1] = PROTOCOL_VERSION
    id: RequestId | None = Field(description="The request's id; null if it was unreadable.")
    ok: bool
    result: Any = None
    error: ErrorBody | None = None


def ok_reply(req_id: RequestId | None, result: Any) -> dict[str, Any]:
    """Build a success reply map.

    Args:
        req_id: The request's id.
        result: The op's result (msgpack-serialisable).

    Returns:
        The reply map.
    """
    return {"v": PROTOCOL_VERSION, "id": req_id, "ok": True, "result": result}


def error_reply(req_id: RequestId | None, code: str, message: str,
                details: list[Any] | None = None) -> dict[str, Any]:
    """Build a failure reply map.

    Args:
        req_id: The request's id (``None`` if it could not be read).
        code: An :class:`~caxton.errors.ErrorCode` value.
        message: What happened and the likely fix.
        details: Structured findings.

    Returns:
        The reply map.
    """
    return {
        "v": PROTOCOL_VERSION,
        "id": req_id,
        "ok": False,
        "error": {"code": str(code), "message": message, "details": list(details or [])},
    }


# --------------------------------------------------------------------------------------------
# Argument models
# --------------------------------------------------------------------------------------------

AgentName = str


def _name_field(description: str = "The agent's name.") -> Any:
    return Field(min_length=1, max_length=200, description=description)


class _FileContent(_Strict):
    """A file read by the client and sent by content (the node validates; it owns registries)."""

    file_name: str = Field(min_length=1, description="The file's name (its suffix picks the "
                           "kind: `.md` config agent, `.wasm`/`.wat` WASM agent).")
    text: str | None = Field(None, description="Content of a `.md` file.")
    data: bytes | None = Field(None, description="Content of a `.wasm` or `.wat` file.")

    @model_validator(mode="after")
    def _one_content(self) -> _FileContent:
        if (self.text is None) == (self.data is None):
            raise ValueError("give exactly one of 'text' (for .md) or 'data' (for .wasm/.wat)")
        return self


class _RolloutTunables(_Strict):
    """Rollout settings of a reload, or of a deploy that replaces a running agent."""

    split: int | None = Field(None, ge=1, le=99, description="Percent of traffic for the new "
                              "version (traffic-splitting, canary first step).")
    steps: list[int] | None = Field(None, description="Traffic percentages for the new "
                                    "version at each step of a gradual/canary rollout.")
    step_interval_s: float | None = Field(None, gt=0, description="Seconds per step "
                                          "(canary/traffic-splitting: the analysis window; "
                                          "graceful: the validation period; blue-green: the "
                                          "scale-down delay unless `scale_down_delay_s` is "
                                          "given).")
    max_error_rate: float | None = Field(None, ge=0, le=1, description="Analysis (canary, "
                                         "traffic-splitting): roll back when the new version's "
                                         "error rate over a step exceeds this fraction "
                                         "(node default 0.05).")
    max_p99_ratio: float | None = Field(None, gt=0, description="Analysis: roll back when the "
                                        "new version's p99 response time exceeds the stable "
                                        "version's times this (node default 1.5).")
    max_fuel_ratio: float | None = Field(None, gt=0, description="Analysis (WASM): roll back "
                                         "when the new version's fuel per message exceeds the "
                                         "stable version's times this (node default 1.5).")
    scale_down_delay_s: float | None = Field(None, ge=0, description="Blue-green: seconds "
                                             "blue stays warm for instant rollback after the "
                                             "switch; the rollout (and so the next reload) "
                                             "waits for it (node default 300).")

    @model_validator(mode="after")
    def _check_steps(self) -> _RolloutTunables:
        if self.steps is not None:
            if not self.steps or any(not 0 < s <= 100 for s in self.steps):
                raise ValueError("'steps' must be percentages in 1..100")
            if self.steps != sorted(self.steps):
                raise ValueError("'steps' must be non-decreasing")
        return self


class _DeployCore(_FileContent):
    """The fields of ``agents.deploy`` other than the rollout settings."""

    name: str | None = Field(None, min_length=1, description="Agent name; config agents take "
                             "it from their frontmatter, WASM agents from here or the file stem.")
    strategy: DeployStrategy = Field(DeployStrategy.IMMEDIATE, description="Rollout strategy.")
    memory_bytes: int | None = Field(None, gt=0, description="WASM memory cap in bytes.")
    fuel: int | None = Field(None, gt=0, description="WASM fuel budget per message.")
    validate_only: bool = Field(False, description="Validate and report; deploy nothing.")


class AgentsDeployArgs(_RolloutTunables, _DeployCore):
    """Arguments of ``agents.deploy``; the rollout settings apply when it replaces a running
    agent with a strategy other than immediate."""


class _ReloadCore(_Strict):
    """The fields of ``agents.reload`` other than the rollout settings."""

    name: AgentName = _name_field()
    file_name: str | None = Field(None, description="Name of the new file, when one is sent.")
    text: str | None = Field(None, description="New `.md` content; none = reload from source.")
    data: bytes | None = Field(None, description="New `.wasm`/`.wat` content.")
    strategy: ReloadStrategy = Field(ReloadStrategy.IMMEDIATE, description="Reload strategy.")
    validate_first: bool = Field(True, description="Always true: the node validates every "
                                 "new file before touching the running version; `false` is "
                                 "refused.")
    preserve_memory: bool = Field(True, description="Keep the agent's memory and "
                                  "conversations.")
    rollback_on_error: bool = Field(True, description="Always true: an invalid file is refused "
                                    "and the running version keeps serving; a rollout that "
                                    "fails its analysis or health check is rolled back; "
                                    "`false` is refused.")
    @model_validator(mode="after")
    def _check(self) -> _ReloadCore:
        if self.text is not None and self.data is not None:
            raise ValueError("give at most one of 'text' or 'data'")
        if not self.validate_first:
            raise ValueError("'validate_first' cannot be false: the node always validates a "
                             "new file before touching the running version")
        if not self.rollback_on_error:
            raise ValueError("'rollback_on_error' cannot be false: an invalid file or a failed "
                             "analysis always leaves the running version serving")
        return self


class AgentsReloadArgs(_RolloutTunables, _ReloadCore):
    """Arguments of ``agents.reload``."""


class AgentNameArgs(_Strict):
    """Arguments of ops that only name an agent."""

    name: AgentName = _name_field()


class AgentsSuspendArgs(AgentNameArgs):
    """Arguments of ``agents.suspend``."""


class AgentsResumeArgs(AgentNameArgs):
    """Arguments of ``agents.resume``."""


class AgentsRemoveArgs(AgentNameArgs):
    """Arguments of ``agents.remove``."""


class AgentsPromoteArgs(AgentNameArgs):
    """Arguments of ``agents.promote``."""


class AgentsAbortArgs(AgentNameArgs):
    """Arguments of ``agents.abort``."""


class AgentsReloadStatusArgs(AgentNameArgs):
    """Arguments of ``agents.reload_status``."""


class AgentsStatusArgs(_Strict):
    """Arguments of ``agents.status``."""

    name: str | None = Field(None, min_length=1, description="One agent; none = all agents.")
    detailed: bool = Field(False, description="Include versions, metrics and limits.")


class AgentsListArgs(_Strict):
    """Arguments of ``agents.list``."""

    type: AgentType | None = Field(None, description="Only agents of this type.")


class AgentsValidateArgs(_FileContent):
    """Arguments of ``agents.validate``."""

    detailed: bool = Field(False, description="Report every pipeline stage, not only "
                           "findings.")


class AgentsLogsArgs(_Strict):
    """Arguments of ``agents.logs``."""

    name: AgentName = _name_field()
    tail: int = Field(50, ge=0, le=100_000, description="How many recent records.")
    level: LogLevel | None = Field(None, description="Minimum level.")


class AgentsRollbackArgs(_Strict):
    """Arguments of ``agents.rollback``."""

    name: AgentName = _name_field()
    to_version: str | None = Field(None, min_length=1, description="Version to restore; "
                                   "none = the previous one.")


class AgentsAbTestArgs(_Strict):
    """Arguments of ``agents.ab_test``."""

    name: AgentName = _name_field()
    config_a: str = Field(description="Content of configuration A (`.md`).")
    config_b: str = Field(description="Content of configuration B (`.md`).")
    file_a: str | None = Field(None, description="File name of A, for messages.")
    file_b: str | None = Field(None, description="File name of B, for messages.")
    split: tuple[int, int] = Field((50, 50), description="Traffic percent to A and B.")

    @model_validator(mode="after")
    def _check(self) -> AgentsAbTestArgs:
        a, b = self.split
        if a < 0 or b < 0 or a + b != 100:
            raise ValueError("'split' must be two percentages summing to 100")
        return self


class AgentsRecoverArgs(_Strict):
    """Arguments of ``agents.recover``."""

    name: AgentName = _name_field()
    restore_memory: bool = Field(False, description="Restore memory from the last snapshot.")


class AgentsDisableArgs(_Strict):
    """Arguments of ``agents.disable``."""

    name: AgentName = _name_field()
    preserve_memory: bool = Field(True, description="Keep the agent's memory on disk.")


class AgentsMonitorArgs(_Strict):
    """Arguments of ``agents.monitor``."""

    name: AgentName = _name_field()
    metrics: list[str] = Field(default_factory=lambda: ["response_time", "success_rate"],
                               description="Metric names to report.")


class MessageSendArgs(_Strict):
    """Arguments of ``message.send`` (the hot path)."""

    agent: AgentName = _name_field("The receiving agent.")
    content: Any = Field(None, description="Any msgpack value.")
    conversation_id: str | None = Field(None, description="Pins the conversation to one "
                                        "version during rollouts.")
    sender: str = Field("cli", description="Who sends it.")
    timeout: float = Field(30.0, gt=0, le=3600, description="Seconds to wait for the reply.")
    end_conversation: bool = Field(False, description="End the conversation once this "
                                   "message is answered (frees its slot and history).")


class ConversationsListArgs(AgentNameArgs):
    """Arguments of ``conversations.list``."""


class ConversationsEndArgs(AgentNameArgs):
    """Arguments of ``conversations.end``."""

    conversation_id: str = Field(min_length=1, max_length=256,
                                 description="The conversation to end.")


class NodeStatusArgs(_Strict):
    """Arguments of ``node.status`` (none)."""


class NodeShutdownArgs(_Strict):
    """Arguments of ``node.shutdown``."""

    drain_timeout: float | None = Field(None, ge=0, description="Seconds to drain agents; "
                                        "none = the node's configured timeout.")


class OperationsGetArgs(_Strict):
    """Arguments of ``operations.get``."""

    operation_id: str = Field(min_length=1, description="Id returned by a long operation.")


# --------------------------------------------------------------------------------------------
# Result models (documented shapes; the node may add keys)
# --------------------------------------------------------------------------------------------


class Finding(_Open):
    """One validation finding."""

    severity: str = Field("error", description="`error` or `warning`.")
    message: str
    file: str | None = None
    line: int | None = None
    field: str | None = None
    fix: str | None = None


class ValidationReport(_Open):
    """Result of ``agents.validate`` (and of ``agents.deploy`` with ``validate_only``)."""

    valid: bool
    name: str | None = None
    agent_type: AgentType | None = None
    findings: list[Finding] = Field(default_factory=list)
    stages: list[dict[str, Any]] = Field(default_factory=list,
                                         description="With `detailed`: one entry per stage.")


class AgentStatus(_Open):
    """One agent as seen by ``agents.status`` and ``agents.list``."""

    name: str
    agent_type: AgentType
    version: str
    state: str
    versions: list[str] = Field(default_factory=list)
    details: dict[str, Any] = Field(default_factory=dict,
                                    description="With `detailed`: metrics, limits, instances.")


class AgentsResult(_Open):
    """A list of agents (``agents.list``, ``agents.status`` without a name)."""

    agents: list[AgentStatus]


class OperationStatus(_Open):
    """A long operation (rollout, A/B test) and its progress."""

    operation_id: str
    name: str
    kind: str = Field(description="e.g. `reload`, `deploy`, `ab_test`.")
    strategy: str | None = None
    state: OperationState
    step: int = 0
    steps: int = 0
    traffic: dict[str, int] = Field(default_factory=dict,
                                    description="Percent of traffic per version.")
    message: str | None = None


class ChangeResult(_Open):
    """Result of ops that change an agent (deploy, reload, suspend, resume, rollback, ...)."""

    name: str
    version: str | None = None
    state: str | None = None
    operation_id: str | None = Field(None, description="Set when the op continues in the "
                                     "background; poll `operations.get` or watch events.")
    message: str | None = None
    validation: ValidationReport | None = None


class LogsResult(_Open):
    """Result of ``agents.logs``."""

    records: list[dict[str, Any]] = Field(description="Newest last; each has `ts`, `level`, "
                                          "`event`, `agent`, `version`, ... .")


class MonitorResult(_Open):
    """Result of ``agents.monitor`` (one snapshot; watch the event stream for more)."""

    name: str
    metrics: dict[str, Any]


class ReloadStatusResult(_Open):
    """Result of ``agents.reload_status``."""

    name: str
    current: OperationStatus | None = None
    history: list[OperationStatus] = Field(default_factory=list)


class ConversationInfo(_Open):
    """One open conversation of a config agent."""

    id: str
    messages: int = Field(description="Messages it has had.")
    history: int = Field(description="Turns kept for the model.")
    in_flight: int = Field(description="Its messages being processed now (0 or 1; others "
                           "wait in order).")
    age_s: float
    idle_s: float
    expires_in_s: float | None = Field(None, description="Seconds until it idles out "
                                       "(none while a message is in flight).")


class ConversationsResult(_Open):
    """Result of ``conversations.list``."""

    name: str
    conversations: list[ConversationInfo] = Field(default_factory=list)


class ConversationEndResult(_Open):
    """Result of ``conversations.end``."""

    name: str
    conversation_id: str
    ended: bool = Field(description="Whether it was open (or pinned to a version).")


class MessageSendResult(_Open):
    """Result of ``message.send``: the agent's reply message (``Message.to_wire`` shape)."""

    receiver: str
    content: Any = None
    sender: str
    performative: str
    message_id: str
    conversation_id: str | None = None
    in_reply_to: str | None = None


class NodeStatusResult(_Open):
    """Result of ``node.status``."""

    version: str
    pid: int
    uptime_s: float
    control_endpoint: str
    events_endpoint: str | None = None
    agents: int = 0
    state: str = "running"


class ShutdownResult(_Open):
    """Result of ``node.shutdown`` (the node stops after replying)."""

    stopping: bool = True


# --------------------------------------------------------------------------------------------
# Events
# --------------------------------------------------------------------------------------------


class Event(_Open):
    """One event on the event stream (the msgpack payload of a ``[topic, payload]`` message).

    Topics are ``agent.<name>.<event>`` (``lifecycle``, ``rollout``, ``restart``, ``breaker``,
    ``log``, ``metrics``) and ``node.<event>``.
    """

    topic: str
    ts: float = Field(description="Unix time of the event.")
    agent: str | None = None
    event: str
    data: dict[str, Any] = Field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# The op table
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OpSpec:
    """One operation of the control protocol.

    Attributes:
        name: The op name on the wire.
        args: The pydantic model its ``args`` are validated with.
        result: The model documenting its result.
        summary: One line for the reference.
        cli: The CLI command that sends it.
        long_running: It may return at once with an ``operation_id``.
    """

    name: str
    args: type[BaseModel]
    result: type[BaseModel]
    summary: str
    cli: str
    long_running: bool = False


_SPECS = [
    OpSpec("agents.deploy", AgentsDeployArgs, ChangeResult,
           "Deploy a config agent (.md) or a WASM agent (.wasm/.wat) sent by content.",
           "caxton agents deploy FILE", long_running=True),
    OpSpec("agents.reload", AgentsReloadArgs, ChangeResult,
           "Hot-reload an agent with a strategy; rollouts return an operation id at once.",
           "caxton agents reload NAME", long_running=True),
    OpSpec("agents.suspend", AgentsSuspendArgs, ChangeResult,
           "Suspend an agent; messages wait in a bounded queue.", "caxton agents suspend NAME"),
    OpSpec("agents.resume", AgentsResumeArgs, ChangeResult,
           "Resume a suspended agent.", "caxton agents resume NAME"),
    OpSpec("agents.remove", AgentsRemoveArgs, ChangeResult,
           "Drain and remove an agent.", "caxton agents remove NAME"),
    OpSpec("agents.status", AgentsStatusArgs, AgentsResult,
           "Status of one agent or all agents.", "caxton agents status [NAME]"),
    OpSpec("agents.list", AgentsListArgs, AgentsResult,
           "List agents, optionally by type.", "caxton agents list"),
    OpSpec("agents.validate", AgentsValidateArgs, ValidationReport,
           "Validate an agent file sent by content; deploys nothing.",
           "caxton agents validate FILE / validate-all DIR"),
    OpSpec("agents.logs", AgentsLogsArgs, LogsResult,
           "Recent log records of an agent.", "caxton agents logs NAME"),
    OpSpec("agents.rollback", AgentsRollbackArgs, ChangeResult,
           "Restore a kept version.", "caxton agents rollback NAME --to-version V"),
    OpSpec("agents.ab_test", AgentsAbTestArgs, ChangeResult,
           "Run two configurations side by side with a traffic split.",
           "caxton agents ab-test NAME", long_running=True),
    OpSpec("agents.promote", AgentsPromoteArgs, ChangeResult,
           "End a rollout or A/B test by promoting the new version (B).",
           "caxton agents promote NAME"),
    OpSpec("agents.abort", AgentsAbortArgs, ChangeResult,
           "End a rollout or A/B test by rolling back to the old version (A).",
           "caxton agents abort NAME"),
    OpSpec("agents.recover", AgentsRecoverArgs, ChangeResult,
           "Recover a failed agent (resets its breaker and restarts it).",
           "caxton agents recover NAME"),
    OpSpec("agents.disable", AgentsDisableArgs, ChangeResult,
           "Emergency stop: no traffic, no restarts, until recovered.",
           "caxton agents disable NAME"),
    OpSpec("agents.monitor", AgentsMonitorArgs, MonitorResult,
           "A snapshot of an agent's metrics.", "caxton agents monitor NAME"),
    OpSpec("agents.reload_status", AgentsReloadStatusArgs, ReloadStatusResult,
           "The current and recent reloads/rollouts of an agent.",
           "caxton agents reload-status NAME"),
    OpSpec("message.send", MessageSendArgs, MessageSendResult,
           "Send a message to an agent and wait for its reply.",
           "caxton message send AGENT CONTENT"),
    OpSpec("conversations.list", ConversationsListArgs, ConversationsResult,
           "The open conversations of a config agent, oldest first.",
           "caxton conversations list AGENT"),
    OpSpec("conversations.end", ConversationsEndArgs, ConversationEndResult,
           "End one conversation: frees its slot and history, drops its version pin.",
           "caxton conversations end AGENT ID"),
    OpSpec("node.status", NodeStatusArgs, NodeStatusResult,
           "The node's version, endpoints, uptime and agent count.", "caxton node status"),
    OpSpec("node.shutdown", NodeShutdownArgs, ShutdownResult,
           "Drain and stop the node.", "caxton node shutdown"),
    OpSpec("operations.get", OperationsGetArgs, OperationStatus,
           "Progress of a long operation by its id.", "caxton agents reload-status NAME"),
]

OPS: dict[str, OpSpec] = {spec.name: spec for spec in _SPECS}
"""Every op of the protocol by name."""


def validate_args(op: str, args: Any) -> BaseModel:
    """Validate an op's arguments with its model.

    Args:
        op: The op name.
        args: The ``args`` value from the request.

    Returns:
        The validated args model instance.

    Raises:
        InvalidArgument: The op is unknown or ``args`` does not fit its model; the message
            names each bad field and ``details`` lists them.
    """
    spec = OPS.get(op)
    if spec is None:
        raise InvalidArgument(f"unknown op {op!r}")
    if not isinstance(args, dict):
        raise InvalidArgument(f"{op}: 'args' must be a map, got {type(args).__name__}")
    try:
        return spec.args.model_validate(args)
    except ValidationError as exc:
        raise invalid_argument_from(op, exc) from None


def invalid_argument_from(op: str, exc: ValidationError) -> InvalidArgument:
    """Turn a pydantic error into an :class:`InvalidArgument` naming every bad field.

    Args:
        op: The op whose args failed.
        exc: The pydantic validation error.

    Returns:
        The typed error (``details``: one ``{"field", "problem"}`` per finding).
    """
    details: list[dict[str, Any]] = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "args"
        details.append({"field": loc, "problem": err["msg"]})
    summary = "; ".join(f"{d['field']}: {d['problem']}" for d in details)
    return InvalidArgument(f"{op}: invalid args — {summary}", details=details)


# --------------------------------------------------------------------------------------------
# Reference generator
# --------------------------------------------------------------------------------------------


def _type_name(annotation: Any) -> str:
    text = repr(annotation) if not isinstance(annotation, type) else annotation.__name__
    text = re.sub(r"<(?:enum|class) '([\w.]+)'>", r"\1", text)
    text = re.sub(r"\b(?:[A-Za-z_]\w*\.)+([A-Za-z_]\w*)", r"\1", text)
    return text.replace("NoneType", "None")


def _enum_values(annotation: Any) -> str:
    names = []
    for enum in (DeployStrategy, ReloadStrategy, AgentType, LogLevel, OperationState):
        if enum.__name__ in _type_name(annotation):
            names.append(" \\| ".join(f"`{m.value}`" for m in enum))
    return "; ".join(names)


def _fields_table(model: type[BaseModel]) -> list[str]:
    fields = model.model_fields
    if not fields:
        return ["_No arguments._", ""]
    lines = ["| field | type | default | description |", "|---|---|---|---|"]
    for name, info in fields.items():
        if info.is_required():
            default = "**required**"
        elif info.default_factory is not None:
            default = f"`{info.default_factory()!r}`"  # type: ignore[call-arg]
        else:
            value = info.default
            default = f"`{value.value if isinstance(value, StrEnum) else value!r}`"
        desc = (info.description or "").replace("|", "\\|")
        values = _enum_values(info.annotation)
        if values:
            desc = f"{desc} One of {values}."
        type_name = _type_name(info.annotation).replace("|", "\\|")
        lines.append(f"| `{name}` | `{type_name}` | {default} | {desc} |")
    lines.append("")
    return lines


def render_markdown() -> str:
    """Render the protocol reference (envelope, ops, args, results, error codes) as Markdown.

    Returns:
        The reference text, starting with the ``## Control protocol reference`` heading.
    """
    out = [
        "## Control protocol reference",
        "",
        "_Generated by `python3 -m caxton.control.protocol --markdown` from "
        "`caxton/control/protocol.py`; a test checks this copy is current._",
        "",
        f"The node's control port is a ZeroMQ ROUTER socket (default "
        f"`{DEFAULT_CONTROL_ENDPOINT}`); clients use DEALER (or REQ) sockets. Each request and "
        f"each reply is one msgpack frame holding a map. Frames over "
        f"{DEFAULT_MAX_MESSAGE_SIZE // (1024 * 1024)} MiB are refused by ZeroMQ itself "
        "(`MAXMSGSIZE`; the connection is dropped).",
        "",
        "```",
        'request  {"v": 1, "id": 7, "op": "agents.suspend", "args": {"name": "echo"}}',
        'success  {"v": 1, "id": 7, "ok": true, "result": {...}}',
        'failure  {"v": 1, "id": 7, "ok": false, "error": {"code": "AGENT_NOT_FOUND", '
        '"message": "...", "details": [...]}}',
        "```",
        "",
        "A frame that is not msgpack, not a map, has the wrong `v`, lacks `id` or `op`, or names "
        "an unknown op gets a `PROTOCOL_ERROR` reply (with `id` null when it could not be "
        "read); arguments that do not fit the op's model get `INVALID_ARGUMENT` with one "
        "`{field, problem}` detail per bad field. Unknown argument keys are refused; results "
        "may gain keys in later versions. Long operations (marked ⏱) may return at once with "
        "an `operation_id`; follow them with `operations.get`, `agents.reload_status` or the "
        "event stream.",
        "",
        f"Events (default `{DEFAULT_EVENTS_ENDPOINT}`, a PUB socket) are two frames: the topic "
        "(`agent.<name>.<event>` or `node.<event>`; events are `lifecycle`, `rollout`, "
        "`restart`, `breaker`, `log`, `metrics`) and a msgpack map "
        "`{topic, ts, agent, event, data}`.",
        "",
        "Security: by default the port binds loopback only. With CURVE keys "
        "(`caxton keys generate`) it requires CurveZMQ and admits only client public keys found "
        "in the allow-list directory; binding a non-loopback address without CURVE is refused "
        "unless `insecure` is set.",
        "",
        "### Operations",
        "",
        "| op | CLI | summary |",
        "|---|---|---|",
    ]
    for spec in _SPECS:
        mark = " ⏱" if spec.long_running else ""
        out.append(f"| `{spec.name}`{mark} | `{spec.cli}` | {spec.summary} |")
    out.append("")
    for spec in _SPECS:
        out += [f"#### `{spec.name}`", "", spec.summary, "", f"Args (`{spec.args.__name__}`):",
                ""]
        out += _fields_table(spec.args)
        out += [f"Result (`{spec.result.__name__}`):", ""]
        out += _fields_table(spec.result)
    nested: list[type[BaseModel]] = [Finding, AgentStatus, ValidationReport, OperationStatus, Event]
    out += ["### Shared result types", ""]
    for model in nested:
        out += [f"#### `{model.__name__}`", ""]
        out += _fields_table(model)
    out += ["### Error codes", "", "| code | meaning |", "|---|---|"]
    from caxton import errors as _errors

    by_code = {str(getattr(_errors, n).code): getattr(_errors, n) for n in _errors.__all__
               if n not in ("CaxtonError", "ErrorCode")}
    for code in ErrorCode:
        klass = by_code.get(str(code))
        doc = (klass.__doc__ or "").strip().splitlines()[0] if klass else "An unexpected " \
            "failure inside the node (logged there)."
        out.append(f"| `{code.value}` | {doc} |")
    out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: print the reference.

    Args:
        argv: Arguments (``--markdown``).

    Returns:
        The exit code.
    """
    parser = argparse.ArgumentParser(prog="python3 -m caxton.control.protocol",
                                     description="Print the control protocol reference.")
    parser.add_argument("--markdown", action="store_true", help="print it as Markdown")
    parser.parse_args(argv)
    sys.stdout.write(render_markdown())
    return 0


__all__ = [
    "DEFAULT_CONTROL_ENDPOINT",
    "DEFAULT_EVENTS_ENDPOINT",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "OPS",
    "PROTOCOL_VERSION",
    "AgentNameArgs",
    "AgentStatus",
    "AgentType",
    "AgentsAbTestArgs",
    "AgentsAbortArgs",
    "AgentsDeployArgs",
    "AgentsDisableArgs",
    "AgentsListArgs",
    "AgentsLogsArgs",
    "AgentsMonitorArgs",
    "AgentsPromoteArgs",
    "AgentsRecoverArgs",
    "AgentsReloadArgs",
    "AgentsReloadStatusArgs",
    "AgentsRemoveArgs",
    "AgentsResult",
    "AgentsResumeArgs",
    "AgentsRollbackArgs",
    "AgentsStatusArgs",
    "AgentsSuspendArgs",
    "AgentsValidateArgs",
    "ChangeResult",
    "DeployStrategy",
    "ErrorBody",
    "Event",
    "Finding",
    "LogLevel",
    "LogsResult",
    "MessageSendArgs",
    "MessageSendResult",
    "MonitorResult",
    "NodeShutdownArgs",
    "NodeStatusArgs",
    "NodeStatusResult",
    "OpSpec",
    "OperationState",
    "OperationStatus",
    "OperationsGetArgs",
    "ReloadStatusResult",
    "ReloadStrategy",
    "Reply",
    "Request",
    "ShutdownResult",
    "ValidationReport",
    "error_reply",
    "invalid_argument_from",
    "ok_reply",
    "parse_size",
    "parse_split",
    "render_markdown",
    "validate_args",
]

if __name__ == "__main__":
    raise SystemExit(main())
