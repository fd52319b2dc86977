"""Processing one config-agent message, as a pure generator of effects.

:func:`message_steps` is the whole algorithm of a message — direct tool call or model loop,
tool calls fed back to the model, memory, the deadline — written as a generator that
*yields* each thing it must wait for and is *sent* the outcome:

* :class:`Render` — render the prompt templates (answer: ``(system, user)``);
* :class:`Complete` — ask the model (answer: an :class:`~caxton.llm.LLMResponse`);
* :class:`CallTool` — run a tool (answer: its result).

A failed effect is *thrown* into the generator as its typed error (or
:class:`~caxton.tenant.WorkTimedOut` / :class:`TimeoutError` when it ran out of time). The
generator never blocks and owns no thread, so

* the config-agent actor drives thousands of messages at once on the pooled dispatcher,
  running quick effects inline (linear templates, the ``echo`` provider) and sending slow ones
  to the I/O loop or the tenant workers (:class:`caxton.actors.config_agent.ConfigAgentActor`);
* :func:`process_message` drives one message synchronously (the Python API and tests);
* a test can drive it by hand with any outcome it likes, no threads, an injected clock.

``response_timeout`` bounds the whole message: every effect is given at most the time left,
and running out raises :class:`~caxton.errors.Timeout` naming the stage (``rendering the
prompt``, ``waiting for model call 2``, ``tool 'csv_parser' (round 1)`` …).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from caxton.config_agents.templates import AgentPrompts
from caxton.conversation.records import (
    MAX_TOOL_RESULT_CHARS,
    ConversationLimits,
    ConversationReply,
    ToolCallRecord,
    clip,
    parse_direct_tool_call,
    text_of,
)
from caxton.errors import CaxtonError, Timeout, ToolError, ToolTimeout
from caxton.llm.types import ChatMessage, LLMProvider, LLMResponse, ToolSchema
from caxton.memory.handle import MemoryHandle
from caxton.tenant import work
from caxton.tenant.pool import TenantPool, WorkTimedOut, default_pool
from caxton.tools.registry import AgentToolView

_log = structlog.get_logger("caxton.conversation")

_TIMED_OUT = (WorkTimedOut, TimeoutError, asyncio.TimeoutError, asyncio.CancelledError)


@dataclass(frozen=True, slots=True)
class Render:
    """Render the agent's prompt templates; answered with ``(system, user)``.

    Attributes:
        prompts: The compiled templates (``prompts.linear``: safe to render inline).
        variables: The template variables.
        timeout: Seconds it may take.
    """

    prompts: AgentPrompts
    variables: dict[str, Any]
    timeout: float


@dataclass(frozen=True, slots=True)
class Complete:
    """Ask the model for its next turn; answered with an ``LLMResponse``.

    Attributes:
        provider: The agent's provider (``provider.immediate``: safe to call inline).
        messages: The conversation so far.
        tools: Tools offered.
        timeout: Seconds it may take.
    """

    provider: LLMProvider
    messages: list[ChatMessage]
    tools: Sequence[ToolSchema]
    timeout: float


@dataclass(frozen=True, slots=True)
class CallTool:
    """Run one declared tool; answered with its result.

    Attributes:
        tools: The agent's tool view.
        name: Tool name.
        arguments: Arguments (validated where it starts).
        timeout: Seconds it may take.
    """

    tools: AgentToolView
    name: str
    arguments: dict[str, Any]
    timeout: float


Effect = Render | Complete | CallTool
Steps = Generator[Effect, Any, ConversationReply]


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
            f"agent file, or make the stage that ran out faster",
            details=[{"agent": self.agent, "response_timeout": self.seconds, "stage": stage}],
        )


def _tool_steps(tools: AgentToolView, call_id: str, name: str, args: Mapping[str, Any],
                limits: ConversationLimits, deadline: _Deadline, round_no: int,
                arg_error: str | None) -> Generator[Effect, Any, ToolCallRecord]:
    """One model-requested tool call; every failure becomes an error record."""
    started = time.perf_counter()

    def record(ok: bool, result: Any = None, error: str | None = None,
               code: str | None = None) -> ToolCallRecord:
        return ToolCallRecord(call_id, name, dict(args), ok, result, error, code,
                              round((time.perf_counter() - started) * 1000, 2), round_no)

    if arg_error is not None:
        return record(False, error=f"tool {name!r}: {arg_error}", code=str(ToolError.code))
    try:
        tools.check(name)
        timeout = min(limits.tool_call_timeout, deadline.remaining())
        result = yield CallTool(tools, name, dict(args), timeout)
        return record(True, result)
    except CaxtonError as exc:
        return record(False, error=exc.message, code=str(exc.code))
    except _TIMED_OUT:
        err = ToolTimeout(f"tool {name!r} did not finish in time and was stopped")
        return record(False, error=err.message, code=str(err.code))


def _tool_message(rec: ToolCallRecord) -> dict[str, Any]:
    payload: dict[str, Any] = ({"ok": True, "result": rec.result} if rec.ok
                               else {"ok": False, "error": rec.error, "code": rec.error_code})
    return {"role": "tool", "tool_call_id": rec.id, "name": rec.name,
            "content": clip(text_of(payload), MAX_TOOL_RESULT_CHARS)}


def _remember(memory: MemoryHandle, agent: str, conversation_id: str | None, request: Any,
              reply: str, calls: Sequence[ToolCallRecord]) -> None:
    agent_entity = f"agent:{agent}"
    note = f"request: {clip(text_of(request), 400)} | reply: {clip(reply, 400)}"
    if calls:
        note += " | tools: " + ", ".join(
            f"{c.name}({'ok' if c.ok else 'error'})" for c in calls)
    # written behind: the message never waits on the disk
    if conversation_id is None:
        memory.note(agent_entity, note, entity_type="agent")
    else:
        memory.note(f"conversation:{conversation_id}", note, entity_type="conversation",
                    relate_to=(agent_entity, "agent", "handled_by"))


def message_steps(
    *,
    agent: str,
    request: Any,
    provider: LLMProvider,
    tools: AgentToolView,
    memory: MemoryHandle | None,
    limits: ConversationLimits,
    prompts: AgentPrompts | None = None,
    user_prompt: str = "",
    system_prompt: str = "",
    history: Sequence[ChatMessage] = (),
    conversation_id: str | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Steps:
    """The steps of one message (see the module docstring).

    Args:
        agent: The agent name (in errors, logs and memory).
        request: The request content (checked for a direct tool call first).
        provider: The agent's LLM provider.
        tools: The agent's tool view (declared tools only).
        memory: The agent's memory handle, or ``None`` to recall and store nothing.
        limits: Timeouts and tool rounds.
        prompts: The templates to render (a :class:`Render` step); ``None`` uses
            ``user_prompt`` / ``system_prompt`` as given.
        user_prompt: The rendered user prompt, when ``prompts`` is ``None``.
        system_prompt: The rendered system prompt, when ``prompts`` is ``None``.
        history: Earlier messages of this conversation.
        conversation_id: The conversation, or ``None`` for a one-shot message.
        clock: Monotonic clock (injectable for tests).

    Returns:
        (As the generator's value.) The reply.

    Raises:
        Timeout: The message took longer than ``response_timeout`` (``details`` name the
            stage).
        ToolNotDeclared: A direct tool call names a tool the agent does not declare.
        ToolError: A direct tool call failed (:class:`ToolTimeout`: it ran out of time).
        LLMError: The provider failed after its retries.
        TemplateRenderError: A template failed to render.
        ResourceExhausted: A render went past its memory or size budget.
    """
    started = clock()
    deadline = _Deadline(agent, limits.response_timeout, clock)
    direct = parse_direct_tool_call(request)
    if direct is not None:
        tools.check(direct.tool)
        left = deadline.check("before the direct tool call")
        timeout = min(limits.tool_call_timeout, left)
        t0 = time.perf_counter()
        stage = f"direct call of tool {direct.tool!r}"
        try:
            result = yield CallTool(tools, direct.tool, direct.arguments, timeout)
        except (ToolError, *_TIMED_OUT) as exc:
            if deadline.remaining() <= 0 and left < limits.tool_call_timeout:
                raise deadline.error(stage) from None
            if isinstance(exc, ToolError):
                raise
            raise ToolTimeout(
                f"tool {direct.tool!r} did not finish within {timeout:g}s and was stopped; "
                "raise the agent's resource_limits.tool_call_timeout if it legitimately needs "
                "longer", details=[{"tool": direct.tool, "reason": "timeout"}]) from None
        rec = ToolCallRecord("direct", direct.tool, direct.arguments, True, result,
                             duration_ms=round((time.perf_counter() - t0) * 1000, 2))
        _log.info("conversation.direct_tool_call", agent=agent, tool=direct.tool,
                  conversation_id=conversation_id, duration_ms=rec.duration_ms)
        return ConversationReply(text_of(result), (rec,), 0, True, result,
                                 duration_ms=round((clock() - started) * 1000, 2))

    recalled: str | None = None
    if prompts is not None:
        if memory is not None and prompts.uses_memory:
            query = request if isinstance(request, str) else text_of(request)
            recalled = memory.memory_context(query)
        variables = prompts.variables(request, recalled or "", tuple(history))
        left = deadline.check("before rendering the prompt")
        try:
            system_prompt, user_prompt = yield Render(prompts, variables, left)
        except _TIMED_OUT:
            raise deadline.error("rendering the prompt") from None

    messages: list[ChatMessage] = []
    if system_prompt:
        messages.append({"role": "system", "content": system_prompt})
    messages.extend(history)  # shared turns, never mutated (see ConversationTracker.history)
    first_new = len(messages)
    messages.append({"role": "user", "content": user_prompt})
    offered = tools.tools()
    records: list[ToolCallRecord] = []
    rounds = 0
    response = LLMResponse()
    while True:
        rounds += 1
        may_call_tools = rounds <= limits.max_tool_rounds
        stage = f"waiting for model call {rounds}"
        left = deadline.check(f"before model call {rounds}")
        try:
            # no copy: the steps are suspended (so ``messages`` is unchanged) until it answers
            response = yield Complete(provider, messages,
                                      offered if may_call_tools else (), left)
        except (Timeout, *_TIMED_OUT) as exc:
            raise deadline.error(stage) from exc
        if not response.tool_calls or not may_call_tools:
            # A model that ignores "no tools offered" still ends here: drop its calls so the
            # stored history never holds an unanswered tool call.
            messages.append({"role": "assistant", "content": response.content})
            break
        messages.append(response.assistant_message())
        for call in response.tool_calls:
            rec = yield from _tool_steps(tools, call.id, call.name, call.arguments, limits,
                                         deadline, rounds, call.error)
            records.append(rec)
            _log.info("conversation.tool_call", agent=agent, tool=rec.name, ok=rec.ok,
                      error_code=rec.error_code, round=rounds, duration_ms=rec.duration_ms)
            messages.append(_tool_message(rec))
            if not rec.ok and rec.error_code == str(ToolTimeout.code) \
                    and deadline.remaining() <= 0:
                raise deadline.error(f"tool {rec.name!r} (round {rounds})")
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
    # no log record per message here: it cost 7 % of a config echo message, and the node's
    # metrics and the reply's duration_ms carry the same facts
    duration_ms = round((clock() - started) * 1000, 2)
    shown = (recalled or "") if getattr(provider, "shows_recall", False) else None
    return ConversationReply(content, tuple(records), rounds, False, None,
                             tuple(messages[first_new:]), memory_error, duration_ms, shown)


def run_effect(effect: Effect, pool: TenantPool | None = None) -> Any:
    """Carry out one effect synchronously, waiting for it (the blocking driver's step).

    Args:
        effect: The effect.
        pool: Tenant workers for non-linear renders (default: the process's shared pool).

    Returns:
        The effect's outcome.

    Raises:
        CaxtonError: The effect's typed error.
        WorkTimedOut: A worker render ran out of time.
    """
    if isinstance(effect, Render):
        if effect.prompts.linear:
            return effect.prompts.render_both(effect.variables)
        return (pool or default_pool()).run(
            work.render_prompts, (*effect.prompts.sources(), effect.variables),
            effect.timeout, what="rendering the prompt templates")
    if isinstance(effect, Complete):
        return effect.provider.complete(effect.messages, effect.tools, timeout=effect.timeout)
    return effect.tools.call(effect.name, effect.arguments, effect.timeout)


def drive(steps: Steps, run: Callable[[Effect], Any] = run_effect) -> ConversationReply:
    """Run a message's steps to the end, carrying out each effect with ``run``.

    Args:
        steps: The generator from :func:`message_steps`.
        run: Carries out one effect and returns its outcome (or raises).

    Returns:
        The reply.
    """
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            effect = steps.throw(error) if error is not None else steps.send(value)
        except StopIteration as stop:
            reply: ConversationReply = stop.value
            return reply
        value, error = None, None
        try:
            value = run(effect)
        except (CaxtonError, *_TIMED_OUT) as exc:
            error = exc


def process_message(*, clock: Callable[[], float] = time.monotonic,
                    **kwargs: Any) -> ConversationReply:
    """Process one message synchronously (the arguments of :func:`message_steps`).

    Returns:
        The reply.

    Raises:
        CaxtonError: As :func:`message_steps`.
    """
    return drive(message_steps(clock=clock, **kwargs))


__all__ = ["CallTool", "Complete", "Effect", "Render", "Steps", "drive", "message_steps",
           "process_message", "run_effect"]
