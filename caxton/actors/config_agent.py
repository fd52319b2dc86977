"""The configuration agent actor: one pooled pykka actor per running config-agent version.

It serves many messages at once and never blocks:

* **Admission.** A message with a ``conversation_id`` joins its conversation (opened on first
  use, bounded by ``max_conversations`` → ``CONVERSATION_LIMIT``). A message without one opens
  no conversation; at most ``max_concurrent_requests`` of those are in flight (→ ``BUSY``).
* **Order.** The messages of one conversation are processed one at a time, in arrival order
  (at most :data:`MAX_QUEUED_PER_CONVERSATION` wait behind the one in flight → ``BUSY``);
  different conversations proceed concurrently.
* **Effects.** Each message runs :func:`caxton.conversation.message_steps`. Quick effects run
  inline on the actor's turn (a linear template, the ``echo`` provider); waiting ones go to the
  node's I/O loop (model calls, ``http_client``) or its tenant workers (other templates,
  ``csv_parser``, ``json_validator``), and their outcome comes back to the mailbox as a
  :class:`_Resume`. Nothing tenant-controlled runs on the actor's thread except what is
  linear in the message's size.

The actor runs on the shared dispatcher (no thread of its own), so a node with 10,000 config
agents has the threads of a node with none. Errors are typed and go back to the caller; they
do not crash the actor, because a bad request is not a bad agent — except that
:data:`BUDGET_FAILURES_TO_FAIL` messages in a row that ran out of their budget make it fail, so
that supervision (backoff, circuit breaker) stops an agent that only burns CPU. When the actor
stops, every message it still holds is answered with ``AGENT_UNAVAILABLE``.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pykka
import structlog

from caxton import errors
from caxton.config_agents import AgentConfig, AgentPrompts
from caxton.conversation import (
    CallTool,
    Complete,
    ConversationLimits,
    ConversationTracker,
    Effect,
    Render,
    Steps,
    message_steps,
    run_effect,
)
from caxton.llm import LLMProvider
from caxton.memory import MemoryHandle
from caxton.messages import Message
from caxton.tenant import work
from caxton.tenant.ioloop import default_ioloop
from caxton.tenant.pool import TenantPool, default_pool
from caxton.tools import AgentToolView
from supervisors import PooledActor, Supervised

_log = structlog.get_logger("caxton.config_agent")

MAX_QUEUED_PER_CONVERSATION = 64
"""Messages of one conversation that may wait behind the one in flight."""

BUDGET_FAILURES_TO_FAIL = 5
"""Messages in a row that ran out of their budget (``TIMEOUT``, ``TOOL_TIMEOUT``,
``RESOURCE_EXHAUSTED``) after which the instance fails: its supervisor restarts it with
backoff and, if it keeps failing, opens its circuit breaker (``CIRCUIT_OPEN`` at once), so an
agent whose every message burns a worker until it is killed stops taking CPU from the rest."""

_BUDGET_ERRORS = (errors.Timeout, errors.ToolTimeout, errors.ResourceExhausted)


@dataclass(frozen=True)
class ConfigInstanceSpec:
    """Everything one config-agent version instance runs with.

    The tracker and memory handle are shared across versions and restarts of the same agent,
    so a hot reload keeps conversations and memory.

    Attributes:
        agent: Agent name.
        version: Version label.
        config: The validated agent file.
        prompts: Its compiled prompt templates.
        provider: Its LLM provider.
        tools: Its declared-tool view.
        memory: Its memory handle (``None``: no memory).
        tracker: Its open conversations.
        pool: Tenant workers for renders and CPU tools (``None``: the process's shared pool).
    """

    agent: str
    version: str
    config: AgentConfig
    prompts: AgentPrompts
    provider: LLMProvider
    tools: AgentToolView
    memory: MemoryHandle | None
    tracker: ConversationTracker
    pool: TenantPool | None = field(default=None, compare=False)

    @property
    def limits(self) -> ConversationLimits:
        """The per-message limits from the file's ``resource_limits`` and ``llm``."""
        rl = self.config.resource_limits
        rounds = self.config.llm.max_tool_rounds if self.config.llm else 4
        return ConversationLimits(float(rl.response_timeout), float(rl.tool_call_timeout), rounds)


class _Run:
    """One message in flight: its steps, its reply, and how to stop what it waits on."""

    __slots__ = ("cancel", "conversation_id", "message", "reply", "steps")

    def __init__(self, message: Message, reply: Any, steps: Steps) -> None:
        self.message = message
        self.reply = reply
        self.steps = steps
        self.conversation_id = message.conversation_id
        self.cancel: Callable[[], Any] | None = None


@dataclass(frozen=True, slots=True)
class _Resume:
    run: _Run
    value: Any
    error: BaseException | None


def _fail(reply: Any, err: errors.CaxtonError) -> None:
    reply.set_exception(exc_info=(type(err), err, None))


class ConfigAgentActor(Supervised, PooledActor):
    """A running configuration-agent version instance (see the module docstring).

    Args:
        spec: What to run.
    """

    inline = True  # a turn only admits, orders and runs linear-time steps

    def __init__(self, spec: ConfigInstanceSpec) -> None:
        super().__init__()
        self.spec = spec
        self._limits = spec.limits
        self._max_one_shot = spec.config.resource_limits.max_concurrent_requests
        self._pool = spec.pool or default_pool()
        self._ioloop = default_ioloop()
        self._started = time.monotonic()
        self._handled = 0
        self._errors = 0
        self._one_shot = 0
        self._budget_failures = 0  # messages in a row that ran out of their budget
        self._failing = False
        self._runs: set[_Run] = set()
        # conversation id -> messages waiting behind the one in flight (key present = busy)
        self._waiting: dict[str, collections.deque[tuple[Message, Any]]] = {}

    # -- the mailbox ----------------------------------------------------------------------

    def _pool_handle(self, envelope: Any) -> None:
        message = envelope.message
        kind = type(message)
        if kind is Message and envelope.reply_to is not None:
            self._admit(message, envelope.reply_to)
        elif kind is _Resume:
            if message.run in self._runs:
                message.run.cancel = None
                self._advance(message.run, message.value, message.error)
        else:
            super()._pool_handle(envelope)

    def on_receive(self, message: Any) -> Any:
        """Refuse anything that is not an agent message asked for a reply.

        Raises:
            InvalidArgument: Always (agent messages are handled before this).
        """
        raise errors.InvalidArgument(
            f"config agent {self.spec.agent!r} got a {type(message).__name__} without a reply "
            "address; send a Message and wait for its reply")

    def _admit(self, message: Message, reply: Any) -> None:
        spec = self.spec
        cid = message.conversation_id
        if cid is None:
            if self._one_shot >= self._max_one_shot:
                _fail(reply, errors.Busy(
                    f"agent {spec.agent!r} is already processing {self._one_shot} messages "
                    f"without a conversation_id (resource_limits.max_concurrent_requests="
                    f"{self._max_one_shot}); retry shortly, send within a conversation, or "
                    "raise the limit in the agent file",
                    details=[{"agent": spec.agent, "limit": self._max_one_shot}]))
                return
            self._one_shot += 1
            self._start(message, reply, ())
            return
        queue = self._waiting.get(cid)
        if queue is not None:  # one of its messages is in flight: wait, in order
            if len(queue) >= MAX_QUEUED_PER_CONVERSATION:
                _fail(reply, errors.Busy(
                    f"conversation {cid!r} of agent {spec.agent!r} already has {len(queue)} "
                    f"messages waiting behind the one in flight (the limit is "
                    f"{MAX_QUEUED_PER_CONVERSATION}); wait for replies before sending more",
                    details=[{"agent": spec.agent, "conversation_id": cid}]))
                return
            queue.append((message, reply))
            return
        try:
            spec.tracker.open(cid)
        except errors.CaxtonError as exc:
            self._errors += 1
            _fail(reply, exc)
            return
        self._waiting[cid] = collections.deque()
        self._start(message, reply, spec.tracker.history(cid))

    def _start(self, message: Message, reply: Any, history: Any) -> None:
        spec = self.spec
        steps = message_steps(
            agent=spec.agent, request=message.content, provider=spec.provider,
            tools=spec.tools, memory=spec.memory, limits=self._limits, prompts=spec.prompts,
            history=history, conversation_id=message.conversation_id)
        run = _Run(message, reply, steps)
        self._runs.add(run)
        self._advance(run, None, None)

    # -- the interpreter ------------------------------------------------------------------

    def _advance(self, run: _Run, value: Any, error: BaseException | None) -> None:
        """Step ``run`` until it waits on something slow or ends."""
        while True:
            try:
                effect = run.steps.throw(error) if error is not None else run.steps.send(value)
            except StopIteration as stop:
                self._finish(run, stop.value, None)
                return
            except errors.CaxtonError as exc:
                self._finish(run, None, exc)
                return
            except Exception as exc:  # a bug must answer the caller, not hang it
                _log.exception("config_agent.step_failed", agent=self.spec.agent)
                self._finish(run, None, errors.AgentFailed(
                    f"config agent {self.spec.agent!r} failed processing a message: "
                    f"{type(exc).__name__}: {exc}"))
                return
            value, error = None, None
            try:
                if self._start_effect(run, effect):
                    return  # waiting; a _Resume continues it
                value = run_effect(effect)  # quick: linear render or immediate provider
            except (TimeoutError, errors.CaxtonError) as exc:
                error = exc

    def _start_effect(self, run: _Run, effect: Effect) -> bool:
        """Start ``effect`` elsewhere and return True, or return False to run it inline."""
        if isinstance(effect, Render):
            if effect.prompts.linear:
                return False
            fut = self._pool.submit(
                work.render_prompts, (*effect.prompts.sources(), effect.variables),
                effect.timeout, self._resumer(run), what=f"agent {self.spec.agent!r}'s prompt")
            run.cancel = fut.cancel
            return True
        if isinstance(effect, Complete):
            if effect.provider.immediate:
                return False
            coro = asyncio.wait_for(
                effect.provider.acomplete(effect.messages, effect.tools, effect.timeout),
                effect.timeout)
            afut = self._ioloop.submit(coro, self._resumer(run))
            loop = self._ioloop.loop
            run.cancel = lambda: loop.call_soon_threadsafe(afut.cancel)
            return True
        assert isinstance(effect, CallTool)
        run.cancel = effect.tools.registry.start(
            effect.name, effect.arguments, effect.timeout, self._resumer(run),
            agent=self.spec.agent, pool=self._pool, ioloop=self._ioloop)
        return True

    def _resumer(self, run: _Run) -> Callable[[Any, BaseException | None], None]:
        ref = self.actor_ref

        def resume(value: Any, error: BaseException | None) -> None:
            try:
                ref.tell(_Resume(run, value, error))
            except pykka.ActorDeadError:
                pass  # the actor stopped and already answered the message

        return resume

    def _finish(self, run: _Run, reply: Any, error: errors.CaxtonError | None) -> None:
        self._runs.discard(run)
        cid = run.conversation_id
        spec = self.spec
        if error is None:
            self._handled += 1
            self._budget_failures = 0
            if cid is not None:
                spec.tracker.append(cid, reply.new_messages)
            run.reply.set(run.message.reply(reply.to_content(), sender=spec.agent))
        else:
            self._errors += 1
            _fail(run.reply, error)
            if isinstance(error, _BUDGET_ERRORS) and not self._failing:
                self._budget_failures += 1
                if self._budget_failures >= BUDGET_FAILURES_TO_FAIL:
                    self._fail_over_budget(error)
        if cid is None:
            self._one_shot -= 1
            return
        spec.tracker.release(cid)
        queue = self._waiting.get(cid)
        if queue:
            message, nxt = queue.popleft()
            try:
                spec.tracker.open(cid)  # it may have been ended meanwhile: reopen or refuse
            except errors.CaxtonError as exc:
                _fail(nxt, exc)
                self._drain_queue(cid, exc)
                return
            self._start(message, nxt, spec.tracker.history(cid))
        else:
            self._waiting.pop(cid, None)

    def _fail_over_budget(self, last: errors.CaxtonError) -> None:
        self._failing = True
        _log.warning("config_agent.failing_over_budget", agent=self.spec.agent,
                     version=self.spec.version, failures=self._budget_failures,
                     last_code=str(last.code))
        self.fail(errors.AgentFailed(
            f"config agent {self.spec.agent!r} version {self.spec.version!r}: "
            f"{self._budget_failures} messages in a row ran out of their budget (last: "
            f"{last.code}: {last.message}); its supervisor restarts it with backoff and opens "
            "its circuit breaker if this goes on. Fix the agent file (templates, tools, "
            "limits) and reload it, or roll it back",
            details=[{"agent": self.spec.agent, "failures": self._budget_failures,
                      "last_code": str(last.code)}]))

    def _drain_queue(self, cid: str, err: errors.CaxtonError) -> None:
        for _, reply in self._waiting.pop(cid, ()):
            _fail(reply, err)

    # -- lifecycle ------------------------------------------------------------------------

    def on_stop(self) -> None:
        """Answer everything still held with ``AGENT_UNAVAILABLE`` and stop its work."""
        self._abandon("stopped")

    def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        """Answer everything still held after a failure."""
        self._abandon("failed")

    def _abandon(self, how: str) -> None:
        self._failing = True  # answering what it held must not count as new failures
        err = errors.AgentUnavailable(
            f"config agent {self.spec.agent!r} version {self.spec.version!r} {how} while "
            "processing the message; retry")
        for cid in list(self._waiting):  # first, so finishing a run starts nothing queued
            self._drain_queue(cid, err)
        for run in list(self._runs):
            if run.cancel is not None:
                try:
                    run.cancel()
                except Exception as exc:
                    _log.debug("config_agent.cancel_failed", error=repr(exc))
            run.steps.close()
            self._finish(run, None, err)

    def stats(self) -> dict[str, Any]:
        """Return the instance's counters (handled, errors, in flight, conversations, uptime)."""
        return {
            "handled": self._handled,
            "errors": self._errors,
            "in_flight": len(self._runs),
            "queued": sum(len(q) for q in self._waiting.values()),
            "open_conversations": self.spec.tracker.open_count(),
            "uptime": time.monotonic() - self._started,
        }


__all__ = ["BUDGET_FAILURES_TO_FAIL", "MAX_QUEUED_PER_CONVERSATION", "ConfigAgentActor",
           "ConfigInstanceSpec"]
