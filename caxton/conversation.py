"""Processing one message for a configuration agent: model, tools, memory, reply.

The agent actor renders its prompt templates (``caxton.config_agents``) and then calls
:func:`process_message` with the strings, the request, the conversation history, its provider,
its tool view, its memory handle and its limits. The engine:

1. runs a structured tool call (``{"tool": name, "arguments": {...}}``) directly when the
   request is one — no model involved;
2. otherwise asks the model, runs each tool call it requests under ``tool_call_timeout``
   (a failed, refused or slow tool becomes an error result fed back to the model — never a
   crashed agent), and loops for at most ``max_tool_rounds`` rounds of tool calls (the last
   model call is offered no tools, so it must answer in text);
3. stores what it learned as an observation in memory;
4. returns the reply text with a trace of every tool call.

The whole message is bounded by ``response_timeout`` (:class:`caxton.errors.Timeout`).
:class:`ConversationTracker` counts open conversations against ``max_conversations`` and keeps
each conversation's history; the actor owns one (and hands it to its successor on reload).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import structlog

from caxton.errors import CaxtonError, ConversationLimit, InvalidArgument, Timeout, ToolError
from caxton.llm.types import ChatMessage, LLMProvider, LLMResponse
from caxton.memory.handle import MemoryHandle
from caxton.tools.registry import AgentToolView

_log = structlog.get_logger("caxton.conversation")

MAX_TOOL_RESULT_CHARS = 16_000
"""Tool results fed back to the model are cut to this many characters."""


@dataclass(frozen=True)
class ConversationLimits:
    """The per-message limits of a configuration agent.

    Attributes:
        response_timeout: Seconds one message may take in total (``resource_limits``).
        tool_call_timeout: Seconds one tool call may take (``resource_limits``).
        max_tool_rounds: Rounds of model → tools → model (``llm.max_tool_rounds``).
    """

    response_timeout: float = 30.0
    tool_call_timeout: float = 10.0
    max_tool_rounds: int = 4

    def __post_init__(self) -> None:
        if self.response_timeout <= 0 or self.tool_call_timeout <= 0:
            raise InvalidArgument("response_timeout and tool_call_timeout must be positive")
        if self.max_tool_rounds < 0:
            raise InvalidArgument("max_tool_rounds must be 0 or more")


@dataclass(frozen=True)
class ToolCallRecord:
    """One tool call made while processing a message.

    Attributes:
        id: The call id (the model's, ``direct`` for structured requests).
        name: Tool name.
        arguments: Arguments passed.
        ok: Whether the tool returned a result.
        result: The result (when ``ok``).
        error: The error message (when not ``ok``).
        error_code: The typed error code (``TOOL_ERROR``, ``TOOL_NOT_DECLARED`` ...).
        duration_ms: Wall time of the call.
        round: Which model round asked for it (0 for a direct call).
    """

    id: str
    name: str
    arguments: Mapping[str, Any]
    ok: bool
    result: Any = None
    error: str | None = None
    error_code: str | None = None
    duration_ms: float = 0.0
    round: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Return the record as a plain map (for reply content and logs)."""
        out: dict[str, Any] = {"id": self.id, "name": self.name,
                               "arguments": dict(self.arguments), "ok": self.ok,
                               "duration_ms": self.duration_ms, "round": self.round}
        if self.ok:
            out["result"] = self.result
        else:
            out["error"] = self.error
            out["error_code"] = self.error_code
        return out


@dataclass(frozen=True)
class ConversationReply:
    """The outcome of one message.

    Attributes:
        content: The reply text (for a direct tool call: the result as JSON text).
        tool_calls: Every tool call made, in order.
        rounds: How many times the model was called (0 for a direct tool call).
        direct: Whether the request was a structured tool call run without the model.
        tool_result: The tool's result, for a direct tool call.
        new_messages: Messages to append to the conversation history (user turn, assistant
            turns, tool results).
        memory_error: Why storing to memory failed (the reply is still valid), or ``None``.
        duration_ms: Wall time of the whole message.
    """

    content: str
    tool_calls: tuple[ToolCallRecord, ...] = ()
    rounds: int = 0
    direct: bool = False
    tool_result: Any = None
    new_messages: tuple[dict[str, Any], ...] = ()
    memory_error: str | None = None
    duration_ms: float = 0.0

    def to_content(self) -> dict[str, Any]:
        """Return the reply as message content (msgpack/JSON-serialisable)."""
        out: dict[str, Any] = {"reply": self.content,
                               "tool_calls": [c.to_dict() for c in self.tool_calls],
                               "rounds": self.rounds}
        if self.direct:
            out["tool_result"] = self.tool_result
        if self.memory_error:
            out["memory_error"] = self.memory_error
        return out


@dataclass(frozen=True)
class DirectToolCall:
    """A request that names a tool to run directly.

    Attributes:
        tool: Tool name.
        arguments: Argument object.
    """

    tool: str
    arguments: dict[str, Any] = field(default_factory=dict)


def parse_direct_tool_call(content: Any) -> DirectToolCall | None:
    """Recognise ``{"tool": name, "arguments": {...}}`` (a map, or JSON text of one).

    Args:
        content: The request content.

    Returns:
        The call, or ``None`` when the content is not exactly that shape (only the keys
        ``tool`` and, optionally, ``arguments`` with an object value).
    """
    if isinstance(content, str):
        text = content.strip()
        if not (text.startswith("{") and '"tool"' in text):
            return None
        try:
            content = json.loads(text)
        except json.JSONDecodeError:
            return None
    if not isinstance(content, Mapping) or not isinstance(content.get("tool"), str):
        return None
    if set(content) - {"tool", "arguments"}:
        return None
    args = content.get("arguments", {})
    if not isinstance(args, Mapping):
        return None
    return DirectToolCall(content["tool"], dict(args))


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return repr(value)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _Deadline:
    def __init__(self, agent: str, seconds: float, clock: Callable[[], float]) -> None:
        self.agent, self.seconds, self.clock = agent, seconds, clock
        self.end = clock() + seconds

    def remaining(self) -> float:
        return self.end - self.clock()

    def check(self, stage: str) -> float:
        left = self.remaining()
        if left <= 0:
            raise self.error(stage)
        return left

    def error(self, stage: str) -> Timeout:
        return Timeout(
            f"agent {self.agent!r} did not answer within response_timeout="
            f"{self.seconds:g}s ({stage}); raise resource_limits.response_timeout in the "
            f"agent file or make its tools faster",
            details=[{"agent": self.agent, "response_timeout": self.seconds, "stage": stage}],
        )


def _run_tool(tools: AgentToolView, call_id: str, name: str, args: Mapping[str, Any],
              limits: ConversationLimits, deadline: _Deadline, round_no: int,
              arg_error: str | None = None) -> ToolCallRecord:
    """Run one tool call; every failure becomes an error record, never an exception."""
    started = time.perf_counter()
    timeout = min(limits.tool_call_timeout, deadline.remaining())

    def record(ok: bool, result: Any = None, error: str | None = None,
               code: str | None = None) -> ToolCallRecord:
        return ToolCallRecord(call_id, name, dict(args), ok, result, error, code,
                              round((time.perf_counter() - started) * 1000, 2), round_no)

    if arg_error is not None:
        return record(False, error=f"tool {name!r}: {arg_error}", code=str(ToolError.code))
    try:
        return record(True, tools.call(name, dict(args), timeout))
    except CaxtonError as exc:
        return record(False, error=exc.message, code=str(exc.code))
    except Exception as exc:  # defensive: a tool bug is still just an error result
        return record(False, error=f"tool {name!r} failed: {exc!r}", code=str(ToolError.code))


def _tool_message(rec: ToolCallRecord) -> dict[str, Any]:
    payload: dict[str, Any] = ({"ok": True, "result": rec.result} if rec.ok
                               else {"ok": False, "error": rec.error, "code": rec.error_code})
    return {"role": "tool", "tool_call_id": rec.id, "name": rec.name,
            "content": _clip(_text(payload), MAX_TOOL_RESULT_CHARS)}


def _remember(memory: MemoryHandle, agent: str, conversation_id: str | None, request: Any,
              reply: str, calls: Sequence[ToolCallRecord]) -> None:
    agent_entity = f"agent:{agent}"
    note = f"request: {_clip(_text(request), 400)} | reply: {_clip(reply, 400)}"
    if calls:
        note += " | tools: " + ", ".join(
            f"{c.name}({'ok' if c.ok else 'error'})" for c in calls)
    if conversation_id is None:
        memory.observe(agent_entity, note, entity_type="agent")
        return
    conv = f"conversation:{conversation_id}"
    memory.observe(conv, note, entity_type="conversation")
    if memory.get_entity(agent_entity) is None:
        memory.add_entity(agent_entity, "agent")
    memory.relate(conv, agent_entity, "handled_by")


def process_message(
    *,
    agent: str,
    user_prompt: str,
    request: Any,
    provider: LLMProvider,
    tools: AgentToolView,
    memory: MemoryHandle | None,
    limits: ConversationLimits,
    system_prompt: str = "",
    history: Sequence[ChatMessage] = (),
    conversation_id: str | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> ConversationReply:
    """Process one message for a configuration agent (see the module docstring).

    Args:
        agent: The agent name (in errors, logs and memory).
        user_prompt: The rendered ``user_prompt_template``.
        request: The request content (checked for a direct tool call first).
        provider: The agent's LLM provider.
        tools: The agent's tool view (declared tools only).
        memory: The agent's memory handle, or ``None`` to store nothing.
        limits: Timeouts and tool rounds.
        system_prompt: The rendered ``system_prompt`` (omitted when empty).
        history: Earlier messages of this conversation (from :class:`ConversationTracker`).
        conversation_id: The conversation, or ``None`` for a one-shot message.
        clock: Monotonic clock (injectable for tests).

    Returns:
        The reply.

    Raises:
        Timeout: The message took longer than ``response_timeout``.
        ToolNotDeclared: A direct tool call names a tool the agent does not declare.
        ToolError: A direct tool call failed or timed out.
        LLMError: The provider failed after its retries.
    """
    started = clock()
    deadline = _Deadline(agent, limits.response_timeout, clock)
    direct = parse_direct_tool_call(request)
    if direct is not None:
        tools.check(direct.tool)
        timeout = min(limits.tool_call_timeout, deadline.check("before the direct tool call"))
        t0 = time.perf_counter()
        try:
            result = tools.call(direct.tool, direct.arguments, timeout)
        except ToolError:
            if deadline.remaining() <= 0:
                raise deadline.error(f"direct call of tool {direct.tool!r}") from None
            raise
        rec = ToolCallRecord("direct", direct.tool, direct.arguments, True, result,
                             duration_ms=round((time.perf_counter() - t0) * 1000, 2))
        _log.info("conversation.direct_tool_call", agent=agent, tool=direct.tool,
                  conversation_id=conversation_id, duration_ms=rec.duration_ms)
        return ConversationReply(_text(result), (rec,), 0, True, result,
                                 duration_ms=round((clock() - started) * 1000, 2))

    messages: list[dict[str, Any]] = []
    if system_prompt:
        messages.append({"role": "system", "content": system_prompt})
    messages.extend(dict(m) for m in history)
    first_new = len(messages)
    messages.append({"role": "user", "content": user_prompt})
    offered = tools.tools()
    records: list[ToolCallRecord] = []
    rounds = 0
    response = LLMResponse()
    while True:
        rounds += 1
        may_call_tools = rounds <= limits.max_tool_rounds
        left = deadline.check(f"before model call {rounds}")
        try:
            response = provider.complete(messages, offered if may_call_tools else (),
                                         timeout=left)
        except Timeout as exc:
            raise deadline.error(f"waiting for model call {rounds}") from exc
        if not response.tool_calls or not may_call_tools:
            # A model that ignores "no tools offered" still ends here: drop its calls so the
            # stored history never holds an unanswered tool call.
            messages.append({"role": "assistant", "content": response.content})
            break
        messages.append(response.assistant_message())
        for call in response.tool_calls:
            rec = _run_tool(tools, call.id, call.name, call.arguments, limits, deadline,
                            rounds, call.error)
            records.append(rec)
            _log.info("conversation.tool_call", agent=agent, tool=rec.name, ok=rec.ok,
                      error_code=rec.error_code, round=rounds, duration_ms=rec.duration_ms)
            messages.append(_tool_message(rec))
        deadline.check(f"after tool round {rounds}")

    content = response.content
    memory_error: str | None = None
    if memory is not None:
        try:
            _remember(memory, agent, conversation_id, request, content, records)
        except CaxtonError as exc:
            memory_error = exc.message
            _log.warning("conversation.memory_store_failed", agent=agent,
                         conversation_id=conversation_id, code=str(exc.code), error=exc.message)
    duration_ms = round((clock() - started) * 1000, 2)
    _log.info("conversation.processed", agent=agent, conversation_id=conversation_id,
              rounds=rounds, tool_calls=len(records), duration_ms=duration_ms)
    return ConversationReply(content, tuple(records), rounds, False, None,
                             tuple(messages[first_new:]), memory_error, duration_ms)


# -- open conversations ---------------------------------------------------------------------


@dataclass
class _Conversation:
    history: list[dict[str, Any]]
    last_used: float
    active: int = 0


class ConversationSlot:
    """A message's hold on a conversation (from :meth:`ConversationTracker.begin`).

    Attributes:
        conversation_id: The conversation, or ``None`` for a one-shot message.
    """

    def __init__(self, tracker: ConversationTracker, conversation_id: str | None) -> None:
        self._tracker = tracker
        self.conversation_id = conversation_id

    @property
    def history(self) -> list[dict[str, Any]]:
        """A copy of the conversation's history (empty for one-shot messages)."""
        return self._tracker.history(self.conversation_id)

    def append(self, messages: Sequence[Mapping[str, Any]]) -> None:
        """Add a processed message's turns (``ConversationReply.new_messages``).

        Args:
            messages: Messages to append.
        """
        self._tracker.append(self.conversation_id, messages)


class ConversationTracker:
    """Open conversations of one agent, bounded by ``max_conversations``. Thread-safe.

    A conversation opens with its first message and stays open until :meth:`end` or until it
    has been idle for ``idle_timeout`` seconds. A one-shot message (no conversation id) holds
    a slot only while it is processed. History is kept per conversation, trimmed to
    ``max_history_messages`` at a user-turn boundary.

    Args:
        max_conversations: The agent's ``max_conversations``.
        agent: The agent name (in errors).
        idle_timeout: Seconds after which an idle conversation is closed.
        max_history_messages: History kept per conversation.
        clock: Monotonic clock (injectable for tests).

    Raises:
        InvalidArgument: ``max_conversations`` < 1.
    """

    def __init__(self, max_conversations: int, *, agent: str = "", idle_timeout: float = 1800.0,
                 max_history_messages: int = 50,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if max_conversations < 1:
            raise InvalidArgument(f"max_conversations must be at least 1, got {max_conversations}")
        self.max_conversations = max_conversations
        self.agent = agent
        self.idle_timeout = idle_timeout
        self.max_history_messages = max_history_messages
        self._clock = clock
        self._lock = threading.Lock()
        self._open: dict[str, _Conversation] = {}
        self._one_shot = 0

    def _expire(self, now: float) -> None:
        for cid in [c for c, conv in self._open.items()
                    if conv.active == 0 and now - conv.last_used > self.idle_timeout]:
            del self._open[cid]
            _log.info("conversation.expired", agent=self.agent, conversation_id=cid)

    def open_count(self) -> int:
        """Return how many conversations (including in-flight one-shot messages) are open."""
        with self._lock:
            self._expire(self._clock())
            return len(self._open) + self._one_shot

    def ids(self) -> list[str]:
        """Return the ids of the open conversations."""
        with self._lock:
            self._expire(self._clock())
            return list(self._open)

    @contextmanager
    def begin(self, conversation_id: str | None) -> Iterator[ConversationSlot]:
        """Hold a conversation slot while a message is processed.

        Args:
            conversation_id: The message's conversation, or ``None`` for a one-shot message.

        Yields:
            The slot (its history; ``append`` to store the new turns).

        Raises:
            ConversationLimit: A new conversation (or one-shot message) would exceed
                ``max_conversations``.
        """
        with self._lock:
            now = self._clock()
            self._expire(now)
            known = conversation_id is not None and conversation_id in self._open
            if not known and len(self._open) + self._one_shot >= self.max_conversations:
                raise ConversationLimit(
                    f"agent {self.agent!r} already has {len(self._open) + self._one_shot} open "
                    f"conversations (max_conversations={self.max_conversations}); end one, "
                    f"wait for idle ones to close ({self.idle_timeout:g}s), or raise "
                    f"resource_limits.max_conversations in the agent file",
                    details=[{"agent": self.agent, "limit": self.max_conversations}],
                )
            if conversation_id is None:
                self._one_shot += 1
            else:
                conv = self._open.setdefault(conversation_id, _Conversation([], now))
                conv.active += 1
                conv.last_used = now
        try:
            yield ConversationSlot(self, conversation_id)
        finally:
            with self._lock:
                if conversation_id is None:
                    self._one_shot -= 1
                elif (conv2 := self._open.get(conversation_id)) is not None:
                    conv2.active -= 1
                    conv2.last_used = self._clock()

    def history(self, conversation_id: str | None) -> list[dict[str, Any]]:
        """Return a copy of a conversation's history (``[]`` if unknown or ``None``).

        Args:
            conversation_id: The conversation.

        Returns:
            Its messages, oldest first.
        """
        with self._lock:
            conv = self._open.get(conversation_id) if conversation_id is not None else None
            return [dict(m) for m in conv.history] if conv else []

    def append(self, conversation_id: str | None, messages: Sequence[Mapping[str, Any]]) -> None:
        """Append turns to a conversation's history (no-op for one-shot messages).

        Args:
            conversation_id: The conversation.
            messages: Messages to append.
        """
        if conversation_id is None:
            return
        with self._lock:
            conv = self._open.get(conversation_id)
            if conv is None:
                return
            conv.history.extend(dict(m) for m in messages)
            if len(conv.history) > self.max_history_messages:
                cut = len(conv.history) - self.max_history_messages
                while cut < len(conv.history) and conv.history[cut].get("role") != "user":
                    cut += 1
                del conv.history[:cut]

    def end(self, conversation_id: str) -> bool:
        """Close a conversation, freeing its slot.

        Args:
            conversation_id: The conversation.

        Returns:
            Whether it was open.
        """
        with self._lock:
            return self._open.pop(conversation_id, None) is not None


__all__ = [
    "MAX_TOOL_RESULT_CHARS",
    "ConversationLimits",
    "ConversationReply",
    "ConversationSlot",
    "ConversationTracker",
    "DirectToolCall",
    "ToolCallRecord",
    "parse_direct_tool_call",
    "process_message",
]
