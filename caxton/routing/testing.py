"""Test helpers: echo agent actors as version instances, a fake clock, a counting sender.

Kept in the package (not only in tests) so the benchmark and other suites can reuse them.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import pykka

from caxton.errors import AgentFailed, CaxtonError
from caxton.messages import Message, Performative
from caxton.routing.futures import ReplyFuture
from caxton.routing.handle import ActorVersionHandle


class FakeClock:
    """A manual clock for pure-core tests.

    Args:
        start: The initial time.
    """

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        with self._lock:
            self._now += seconds


class EchoAgent(pykka.ThreadingActor):
    """A version instance that replies ``{"version": v, "echo": content}``.

    Args:
        version: Reported in every reply.
        delay: Seconds to sleep per message (a slower version).
        error_rate: Share of messages that raise :class:`AgentFailed` (deterministic RNG).
        seed: Seed of the error draw.
        transform: Applied to the content before echoing (a version that answers
            differently).
    """

    use_daemon_thread = True

    def __init__(self, version: str, *, delay: float = 0.0, error_rate: float = 0.0,
                 seed: int = 0, transform: Callable[[Any], Any] | None = None) -> None:
        super().__init__()
        self.transform = transform
        self.version = version
        self.delay = delay
        self.error_rate = error_rate
        self._rng = random.Random(seed)

    def on_receive(self, message: Message) -> Message:
        """Reply to ``message`` (or fail / sleep as configured)."""
        if self.delay:
            time.sleep(self.delay)
        if self.error_rate and self._rng.random() < self.error_rate:
            raise AgentFailed(f"version {self.version} failed on purpose")
        content = message.content if self.transform is None else self.transform(message.content)
        return message.reply({"version": self.version, "echo": content},
                             performative=Performative.INFORM)


def start_echo(version: str, *, agent: str = "echo", delay: float = 0.0,
               error_rate: float = 0.0, seed: int = 0,
               transform: Callable[[Any], Any] | None = None) -> ActorVersionHandle:
    """Start an :class:`EchoAgent` and return its version handle.

    Args:
        version: The version label.
        agent: The agent name.
        delay: Per-message sleep.
        error_rate: Share of failing messages.
        seed: Seed of the error draw.
        transform: Applied to the content before echoing.

    Returns:
        The handle (stop it with ``handle.stop()``).
    """
    ref = EchoAgent.start(version, delay=delay, error_rate=error_rate, seed=seed,
                          transform=transform)
    return ActorVersionHandle(version, ref, agent=agent)


def served_by(reply: ReplyFuture) -> str | None:
    """The version an echo reply came from (``None`` for an error)."""
    value = reply.value
    if isinstance(value, Message) and isinstance(value.content, dict):
        version = value.content.get("version")
        return version if isinstance(version, str) else None
    return None


class RouteTarget(Protocol):
    """What a :class:`ConcurrentSender` sends through: a :class:`Router`, or an adapter over
    the node's manager (route + end_conversation for one agent)."""

    @property
    def agent(self) -> str:
        """The agent name messages are addressed to."""
        ...

    def route(self, message: Message) -> ReplyFuture:
        """Route one message without waiting."""
        ...

    def end_conversation(self, conversation_id: str) -> bool:
        """End a conversation's pin."""
        ...


@dataclass
class SendLedger:
    """Every message a :class:`ConcurrentSender` sent and how each ended.

    Attributes:
        sent: Messages routed.
        replies: Messages that ended in a reply.
        errors: Typed errors by code.
        untyped: Outcomes that were neither a reply nor a CaxtonError (must stay 0).
        unresolved: Futures still open at the end (must stay 0).
        duplicates: Replies whose ``in_reply_to`` was seen before (must stay 0).
        by_version: Replies per serving version.
        conversation_versions: For each conversation, every version that served it.
    """

    sent: int = 0
    replies: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    untyped: int = 0
    unresolved: int = 0
    duplicates: int = 0
    by_version: Counter[str] = field(default_factory=Counter)
    conversation_versions: dict[str, set[str]] = field(default_factory=dict)
    conversation_first_sent: dict[str, float] = field(default_factory=dict)
    served_log: list[tuple[float, str]] = field(default_factory=list)

    @property
    def accounted(self) -> int:
        """Replies plus typed errors (equals ``sent`` when nothing was lost)."""
        return self.replies + sum(self.errors.values())


class ConcurrentSender:
    """A thread routing messages through a router and accounting for every outcome.

    Conversations of ``messages_per_conversation`` messages are started continuously; with
    ``one_shot_every`` > 0 every n-th message carries no conversation id.

    Args:
        router: The router.
        rate_sleep: Seconds to sleep between messages (0: as fast as possible).
        messages_per_conversation: Messages sent in each conversation.
        window: Maximum outstanding futures before the sender waits on the oldest.
        reply_timeout: Per-message wait bound when settling.
        one_shot_every: Every n-th message is a one-shot.
        end_conversations: Call ``router.end_conversation`` after a conversation's last reply.
        prefix: Conversation ids are ``prefix`` + a counter.
        content: Builds the content of the n-th message (default: ``n``).
        version_of: Which version served a reply (default: :func:`served_by`, the echo
            agents' ``version`` field, falling back to the router's ``served_by`` label).
    """

    def __init__(self, router: RouteTarget, *, rate_sleep: float = 0.0005,
                 messages_per_conversation: int = 3, window: int = 64,
                 reply_timeout: float = 10.0, one_shot_every: int = 0,
                 end_conversations: bool = True, prefix: str = "c",
                 content: Callable[[int], Any] | None = None,
                 version_of: Callable[[ReplyFuture], str | None] | None = None) -> None:
        self.router = router
        self.content = content or (lambda n: n)
        self.version_of = version_of or (lambda f: served_by(f) or f.served_by)
        self.rate_sleep = rate_sleep
        self.per_conversation = messages_per_conversation
        self.window = window
        self.reply_timeout = reply_timeout
        self.one_shot_every = one_shot_every
        self.end_conversations = end_conversations
        self.prefix = prefix
        self.ledger = SendLedger()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="concurrent-sender", daemon=True)
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def start(self) -> ConcurrentSender:
        """Start sending; returns self."""
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> SendLedger:
        """Stop sending, settle every outstanding future, and return the ledger."""
        self._stop.set()
        self._thread.join(timeout)
        return self.ledger

    def _settle(self, item: tuple[ReplyFuture, str | None, bool]) -> None:
        reply, conversation, last = item
        try:
            reply.get(timeout=self.reply_timeout)
        except CaxtonError:
            pass
        except Exception:
            pass
        ledger = self.ledger
        if not reply.done():
            ledger.unresolved += 1
            return
        if reply.error is not None:
            ledger.errors[str(reply.error.code)] += 1
        elif isinstance(reply.value, Message):
            ledger.replies += 1
            key = reply.value.in_reply_to or ""
            if key in self._seen:
                ledger.duplicates += 1
            self._seen.add(key)
            version = self.version_of(reply) or "?"
            ledger.by_version[version] += 1
            ledger.served_log.append((time.monotonic(), version))
            if conversation is not None:
                ledger.conversation_versions.setdefault(conversation, set()).add(version)
        else:
            ledger.untyped += 1
        if last and conversation is not None and self.end_conversations:
            self.router.end_conversation(conversation)

    def _run(self) -> None:
        pending: list[tuple[ReplyFuture, str | None, bool]] = []
        counter = itertools.count()
        n = 0
        while not self._stop.is_set():
            conversation = f"{self.prefix}{next(counter)}"
            for i in range(self.per_conversation):
                n += 1
                cid: str | None = conversation
                if self.one_shot_every and n % self.one_shot_every == 0:
                    cid = None
                elif conversation not in self.ledger.conversation_first_sent:
                    self.ledger.conversation_first_sent[conversation] = time.monotonic()
                message = Message(receiver=self.router.agent, content=self.content(n),
                                  sender="tester",
                                  conversation_id=cid)
                pending.append((self.router.route(message), cid,
                                i == self.per_conversation - 1))
                self.ledger.sent += 1
                if len(pending) >= self.window:
                    self._settle(pending.pop(0))
                if self.rate_sleep:
                    time.sleep(self.rate_sleep)
            # settle the conversation before starting the next one so its messages are
            # ordered (a conversation is request/reply in real use)
            while pending and pending[0][1] == conversation:
                self._settle(pending.pop(0))
        for item in pending:
            self._settle(item)


__all__ = ["ConcurrentSender", "EchoAgent", "FakeClock", "RouteTarget", "SendLedger", "served_by",
           "start_echo"]
