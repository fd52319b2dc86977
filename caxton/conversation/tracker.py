"""Open conversations of one config agent: the bounded set, their histories, idle expiry.

A conversation opens with its first message and stays open until it is ended (``caxton
conversations end``, ``agents.end_conversation``, ``message send --end``) or has been idle for
``idle_timeout`` seconds (``resource_limits.conversation_idle_timeout``). Only conversations
count against ``max_conversations``: a message without a ``conversation_id`` opens none (the
agent bounds those separately, see :class:`caxton.actors.config_agent.ConfigAgentActor`).

The tracker is shared by every version and restart of one agent, so a hot reload keeps
conversations and their history. Thread-safe.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from caxton.errors import ConversationLimit, InvalidArgument

_log = structlog.get_logger("caxton.conversation")

DEFAULT_IDLE_TIMEOUT = 1800.0
"""Seconds an idle conversation stays open unless the agent file says otherwise."""


@dataclass
class _Conversation:
    opened: float
    last_used: float
    history: list[dict[str, Any]] = field(default_factory=list)
    active: int = 0
    messages: int = 0


class ConversationTracker:
    """Open conversations of one agent, bounded by ``max_conversations``.

    Args:
        max_conversations: The agent's ``max_conversations``.
        agent: The agent name (in errors).
        idle_timeout: Seconds after which an idle conversation is closed.
        max_history_messages: History kept per conversation (trimmed at a user turn).
        clock: Monotonic clock (injectable for tests).
        on_close: Called with the id of each conversation that idles out (outside the
            tracker's lock) — the manager drops its version pin there, so a gradual reload
            waits on exactly the open conversations.

    Raises:
        InvalidArgument: ``max_conversations`` < 1 or ``idle_timeout`` <= 0.
    """

    def __init__(self, max_conversations: int, *, agent: str = "",
                 idle_timeout: float = DEFAULT_IDLE_TIMEOUT, max_history_messages: int = 50,
                 clock: Callable[[], float] = time.monotonic,
                 on_close: Callable[[str], Any] | None = None) -> None:
        if max_conversations < 1:
            raise InvalidArgument(f"max_conversations must be at least 1, got {max_conversations}")
        if not idle_timeout > 0:
            raise InvalidArgument(f"conversation idle_timeout must be > 0, got {idle_timeout}")
        self.max_conversations = max_conversations
        self.agent = agent
        self.idle_timeout = idle_timeout
        self.max_history_messages = max_history_messages
        self._clock = clock
        self._lock = threading.Lock()
        self._open: dict[str, _Conversation] = {}
        self._on_close = on_close
        self._closed: list[str] = []  # idled out under the lock, reported after it

    def configure(self, *, max_conversations: int, idle_timeout: float) -> None:
        """Apply a reloaded file's limits (open conversations stay open)."""
        with self._lock:
            self.max_conversations = max_conversations
            self.idle_timeout = idle_timeout

    def _expire(self, now: float) -> None:
        for cid in [c for c, conv in self._open.items()
                    if conv.active == 0 and now - conv.last_used > self.idle_timeout]:
            del self._open[cid]
            self._closed.append(cid)
            _log.info("conversation.expired", agent=self.agent, conversation_id=cid)

    def _report_closed(self) -> None:
        if not self._closed or self._on_close is None:
            return
        with self._lock:
            closed, self._closed = self._closed, []
        for cid in closed:
            try:
                self._on_close(cid)
            except Exception as exc:  # a callback must not break admission
                _log.warning("conversation.on_close_failed", agent=self.agent, error=repr(exc))

    def expire(self) -> None:
        """Close the conversations idle longer than ``idle_timeout`` (the housekeeper calls
        it; admission and listing also expire lazily)."""
        with self._lock:
            self._expire(self._clock())
        self._report_closed()

    def open_count(self) -> int:
        """Return how many conversations are open."""
        with self._lock:
            self._expire(self._clock())
            n = len(self._open)
        self._report_closed()
        return n

    def ids(self) -> list[str]:
        """Return the ids of the open conversations."""
        with self._lock:
            self._expire(self._clock())
            ids = list(self._open)
        self._report_closed()
        return ids

    def describe(self) -> list[dict[str, Any]]:
        """Describe every open conversation, oldest first.

        Returns:
            Maps with ``id``, ``messages``, ``history`` (turns kept), ``in_flight``,
            ``age_s``, ``idle_s`` and ``expires_in_s``.
        """
        self.expire()
        with self._lock:
            now = self._clock()
            return [{"id": cid, "messages": c.messages, "history": len(c.history),
                     "in_flight": c.active, "age_s": round(now - c.opened, 3),
                     "idle_s": round(now - c.last_used, 3),
                     "expires_in_s": (None if c.active else
                                      round(self.idle_timeout - (now - c.last_used), 3))}
                    for cid, c in sorted(self._open.items(), key=lambda kv: kv[1].opened)]

    def open(self, conversation_id: str) -> None:
        """Take a hold on a conversation for one message, opening it if it is new.

        Args:
            conversation_id: The conversation.

        Raises:
            ConversationLimit: It is new and ``max_conversations`` are already open.
        """
        with self._lock:
            now = self._clock()
            conv = self._open.get(conversation_id)
            if conv is None:
                if len(self._open) >= self.max_conversations:
                    self._expire(now)
                if len(self._open) >= self.max_conversations:
                    raise ConversationLimit(
                        f"agent {self.agent!r} already has {len(self._open)} open "
                        f"conversations (max_conversations={self.max_conversations}); end one "
                        f"(`caxton conversations end {self.agent} ID`), wait for idle ones "
                        f"to close ({self.idle_timeout:g}s), or raise "
                        "resource_limits.max_conversations in the agent file",
                        details=[{"agent": self.agent, "limit": self.max_conversations}],
                    )
                conv = self._open[conversation_id] = _Conversation(now, now)
            conv.active += 1
            conv.messages += 1
            conv.last_used = now
        self._report_closed()

    def release(self, conversation_id: str) -> None:
        """Drop the hold :meth:`open` took (the message finished, either way)."""
        with self._lock:
            conv = self._open.get(conversation_id)
            if conv is not None:
                conv.active = max(0, conv.active - 1)
                conv.last_used = self._clock()

    def history(self, conversation_id: str | None) -> tuple[dict[str, Any], ...]:
        """Return a conversation's history (``()`` if unknown or ``None``).

        The turns are shared, not copied (a message's whole history is sent to the model on
        every turn, so copying it cost more than the rest of the message): they are stored
        once by :meth:`append` and never changed afterwards; callers must not mutate them.
        """
        with self._lock:
            conv = self._open.get(conversation_id) if conversation_id is not None else None
            return tuple(conv.history) if conv else ()

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
        """Close a conversation, freeing its slot and its history.

        Returns:
            Whether it was open.
        """
        with self._lock:
            return self._open.pop(conversation_id, None) is not None


__all__ = ["DEFAULT_IDLE_TIMEOUT", "ConversationTracker"]
