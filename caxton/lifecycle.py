"""Agent lifecycle state machines as explicit transition tables.

Each agent kind has a :class:`StateMachine`: a state enum, an initial state and a table mapping
every state to the set of states it may move to. The table is data, so the tests walk the whole
product of states and the control port can show operators the allowed moves.

Configuration agents (operations guide: ``Unvalidated → Validated → Registered → Active ⇄
Suspended → Inactive``, any → ``Failed``)::

    Unvalidated → Validated                 file parsed and passed the 7-stage pipeline
    Validated   → Registered                capabilities registered with the node
    Registered  → Active                    instance started, taking messages
    Active      ⇄ Suspended                 suspend / resume (maintenance, config reload)
    Active      → Inactive                  disable / stop, configuration preserved
    Suspended   → Inactive                  disable while suspended
    Registered  → Inactive                  disable before it ever started
    Inactive    → Active                    resume after disable (config still registered)
    Inactive    → Validated                 reload a new file into a disabled agent
    Failed      → Validated                 recover: re-validate the (fixed) file
    Failed      → Registered                recover with the last known-good config
    Failed      → Inactive                  disable a failed agent, keeping its memory
    any (except Failed) → Failed

WASM agents (``Unloaded → Loaded → Running ⇄ Draining → Stopped``, any → ``Failed``)::

    Unloaded → Loaded                       module validated and compiled
    Loaded   → Running                      instance created, taking messages
    Loaded   → Unloaded                     removed before it started
    Running  ⇄ Draining                     stop requested / drain cancelled
    Draining → Stopped                      queue finished, resources released
    Stopped  → Loaded                       start again (module kept)
    Stopped  → Unloaded                     removed
    Failed   → Loaded                       supervisor restart or binary rollback
    Failed   → Unloaded                     removed after failure
    any (except Failed) → Failed

A self-loop (``Active → Active``) is never a transition: asking for it is an error, so callers
notice double resumes and the history only records real changes.

:class:`Lifecycle` tracks one agent: current state, ``transition``/``can``/``allowed``, a bounded
history of :class:`TransitionRecord` stamped by an injected clock, and listeners notified after
each transition (the node publishes them on its event stream).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Generic, TypeVar

import structlog

from caxton.errors import IllegalTransition, InvalidArgument

_log = structlog.get_logger("caxton.lifecycle")


class ConfigAgentState(StrEnum):
    """Lifecycle states of a configuration agent (values as the operations guide spells them)."""

    UNVALIDATED = "Unvalidated"
    VALIDATED = "Validated"
    REGISTERED = "Registered"
    ACTIVE = "Active"
    SUSPENDED = "Suspended"
    INACTIVE = "Inactive"
    FAILED = "Failed"


class WasmAgentState(StrEnum):
    """Lifecycle states of a WASM agent (values as the operations guide spells them)."""

    UNLOADED = "Unloaded"
    LOADED = "Loaded"
    RUNNING = "Running"
    DRAINING = "Draining"
    STOPPED = "Stopped"
    FAILED = "Failed"


S = TypeVar("S", bound=StrEnum)


@dataclass(frozen=True, slots=True)
class StateMachine(Generic[S]):
    """A lifecycle definition: states, initial state and transition table.

    Attributes:
        name: Short name used in messages and events (``"config agent"``).
        states: The state enum.
        initial: The state a new lifecycle starts in.
        table: For each state, the states it may move to. Must cover every state and never
            contain a self-loop.
    """

    name: str
    states: type[S]
    initial: S
    table: Mapping[S, frozenset[S]]

    def __post_init__(self) -> None:
        missing = set(self.states) - set(self.table)
        if missing:
            raise ValueError(f"{self.name}: transition table lacks states {sorted(missing)}")
        for src, targets in self.table.items():
            if src in targets:
                raise ValueError(f"{self.name}: self-loop on {src} is not a transition")

    def allowed(self, state: S) -> frozenset[S]:
        """Return the states ``state`` may move to.

        Args:
            state: A state of this machine.

        Returns:
            The legal targets.
        """
        return self.table[state]

    def is_legal(self, src: S, dst: S) -> bool:
        """Return whether ``src → dst`` is in the table.

        Args:
            src: Current state.
            dst: Requested state.

        Returns:
            True when the transition is allowed.
        """
        return dst in self.table[src]

    def coerce(self, state: S | str) -> S:
        """Turn a state or its name/value (case-insensitive) into a member of ``states``.

        Args:
            state: A state member, its value (``"Active"``) or its name (``"ACTIVE"``).

        Returns:
            The state member.

        Raises:
            InvalidArgument: ``state`` names no state of this machine.
        """
        if isinstance(state, self.states):
            return state
        if isinstance(state, str):
            wanted = state.strip().lower()
            for member in self.states:
                if wanted in (member.value.lower(), member.name.lower()):
                    return member
        names = ", ".join(m.value for m in self.states)
        raise InvalidArgument(f"{state!r} is not a {self.name} state; states are: {names}")


def _table(
    states: Iterable[S], edges: Mapping[S, Iterable[S]], failed: S
) -> dict[S, frozenset[S]]:
    """Build a table from explicit edges plus "any state except ``failed`` → ``failed``"."""
    return {
        s: frozenset(edges.get(s, ())) | (frozenset() if s is failed else frozenset({failed}))
        for s in states
    }


_C = ConfigAgentState
CONFIG_AGENT_MACHINE: StateMachine[ConfigAgentState] = StateMachine(
    name="config agent",
    states=ConfigAgentState,
    initial=_C.UNVALIDATED,
    table=_table(
        ConfigAgentState,
        {
            _C.UNVALIDATED: {_C.VALIDATED},
            _C.VALIDATED: {_C.REGISTERED},
            _C.REGISTERED: {_C.ACTIVE, _C.INACTIVE},
            _C.ACTIVE: {_C.SUSPENDED, _C.INACTIVE},
            _C.SUSPENDED: {_C.ACTIVE, _C.INACTIVE},
            _C.INACTIVE: {_C.ACTIVE, _C.VALIDATED},
            _C.FAILED: {_C.VALIDATED, _C.REGISTERED, _C.INACTIVE},
        },
        _C.FAILED,
    ),
)

_W = WasmAgentState
WASM_AGENT_MACHINE: StateMachine[WasmAgentState] = StateMachine(
    name="wasm agent",
    states=WasmAgentState,
    initial=_W.UNLOADED,
    table=_table(
        WasmAgentState,
        {
            _W.UNLOADED: {_W.LOADED},
            _W.LOADED: {_W.RUNNING, _W.UNLOADED},
            _W.RUNNING: {_W.DRAINING},
            _W.DRAINING: {_W.RUNNING, _W.STOPPED},
            _W.STOPPED: {_W.LOADED, _W.UNLOADED},
            _W.FAILED: {_W.LOADED, _W.UNLOADED},
        },
        _W.FAILED,
    ),
)


@dataclass(frozen=True, slots=True)
class TransitionRecord(Generic[S]):
    """One entry of a lifecycle's history.

    Attributes:
        from_state: State before the transition.
        to_state: State after it.
        at: Clock reading when it happened (seconds; wall clock unless a clock was injected).
        reason: Why it happened (operator command, error message), if given.
    """

    from_state: S
    to_state: S
    at: float
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the record as a plain map (for the control protocol and events)."""
        return {
            "from": self.from_state.value,
            "to": self.to_state.value,
            "at": self.at,
            "reason": self.reason,
        }


Listener = Callable[["Lifecycle[Any]", TransitionRecord[Any]], None]


class Lifecycle(Generic[S]):
    """The lifecycle of one agent instance.

    Thread-safe: the owning actor transitions it while status queries may read it from other
    threads. Listeners run synchronously after the state changed (outside the lock); a listener
    that raises is logged (``lifecycle.listener_failed``) and does not undo the transition or stop
    other listeners.

    Args:
        machine: The state machine (:data:`CONFIG_AGENT_MACHINE`, :data:`WASM_AGENT_MACHINE`).
        subject: Who this lifecycle belongs to (agent name/id), used in messages and events.
        initial: Starting state; defaults to the machine's initial state (pass a stored state to
            restore an agent after a node restart).
        clock: Returns the current time in seconds; injected for tests.
        history_limit: How many transitions to keep (oldest dropped first); ``None`` keeps all.
    """

    def __init__(
        self,
        machine: StateMachine[S],
        *,
        subject: str = "",
        initial: S | str | None = None,
        clock: Callable[[], float] = time.time,
        history_limit: int | None = 256,
    ) -> None:
        if history_limit is not None and history_limit < 1:
            raise InvalidArgument(f"history_limit must be >= 1 or None, got {history_limit}")
        self.machine = machine
        self.subject = subject
        self._clock = clock
        self._state: S = machine.initial if initial is None else machine.coerce(initial)
        self._entered_at = clock()
        self._history: deque[TransitionRecord[S]] = deque(maxlen=history_limit)
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()

    @property
    def state(self) -> S:
        """The current state."""
        return self._state

    @property
    def entered_at(self) -> float:
        """Clock reading when the current state was entered (or the lifecycle created)."""
        return self._entered_at

    @property
    def history(self) -> list[TransitionRecord[S]]:
        """A copy of the transition history, oldest first."""
        with self._lock:
            return list(self._history)

    def allowed(self) -> frozenset[S]:
        """Return the states the lifecycle may move to from its current state."""
        return self.machine.allowed(self._state)

    def can(self, to: S | str) -> bool:
        """Return whether a transition to ``to`` is legal now.

        Args:
            to: Requested state (member or name).

        Returns:
            True when ``transition(to)`` would succeed.

        Raises:
            InvalidArgument: ``to`` names no state of this machine.
        """
        return self.machine.is_legal(self._state, self.machine.coerce(to))

    def transition(self, to: S | str, reason: str | None = None) -> TransitionRecord[S]:
        """Move to ``to``, record it, and notify listeners.

        Args:
            to: Requested state (member or name).
            reason: Why (operator command, error text); kept in the history.

        Returns:
            The history record of this transition.

        Raises:
            IllegalTransition: ``to`` is not allowed from the current state (including
                ``to`` == current state); the message names both states and the allowed targets,
                ``details`` carries them as data.
            InvalidArgument: ``to`` names no state of this machine.
        """
        target = self.machine.coerce(to)
        with self._lock:
            src = self._state
            if not self.machine.is_legal(src, target):
                raise self._illegal(src, target)
            record = TransitionRecord(src, target, self._clock(), reason)
            self._state = target
            self._entered_at = record.at
            self._history.append(record)
            listeners = list(self._listeners)
        _log.debug(
            "lifecycle.transition",
            machine=self.machine.name,
            subject=self.subject,
            from_state=src.value,
            to_state=target.value,
            reason=reason,
        )
        for listener in listeners:
            try:
                listener(self, record)
            except Exception as exc:
                _log.warning(
                    "lifecycle.listener_failed",
                    machine=self.machine.name,
                    subject=self.subject,
                    error=repr(exc),
                )
        return record

    def fail(self, reason: str) -> TransitionRecord[S] | None:
        """Move to the machine's ``Failed`` state unless already there.

        Args:
            reason: The error that caused the failure.

        Returns:
            The record, or ``None`` if the lifecycle was already failed.
        """
        failed = self.machine.coerce("Failed")
        with self._lock:
            if self._state is failed:
                return None
        try:
            return self.transition(failed, reason)
        except IllegalTransition:  # raced with another fail()
            return None

    def add_listener(self, listener: Listener) -> Callable[[], None]:
        """Register ``listener(lifecycle, record)`` to be called after every transition.

        Args:
            listener: The callable.

        Returns:
            A function that unregisters the listener (idempotent).
        """
        with self._lock:
            self._listeners.append(listener)

        def remove() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return remove

    def to_dict(self) -> dict[str, Any]:
        """Return state, allowed targets and history as plain data (for status replies)."""
        with self._lock:
            return {
                "machine": self.machine.name,
                "subject": self.subject,
                "state": self._state.value,
                "entered_at": self._entered_at,
                "allowed": sorted(s.value for s in self.machine.allowed(self._state)),
                "history": [r.to_dict() for r in self._history],
            }

    def _illegal(self, src: S, dst: S) -> IllegalTransition:
        allowed = sorted(s.value for s in self.machine.allowed(src))
        who = f" {self.subject!r}" if self.subject else ""
        why = "it is already in that state" if src is dst else "that move is not in its lifecycle"
        return IllegalTransition(
            f"{self.machine.name}{who} cannot go from {src.value} to {dst.value}: {why}; "
            f"allowed from {src.value}: {', '.join(allowed) or 'none'}",
            details=[{"from": src.value, "to": dst.value, "allowed": allowed,
                      "machine": self.machine.name, "subject": self.subject}],
        )

    def __repr__(self) -> str:
        return f"Lifecycle({self.machine.name!r}, subject={self.subject!r}, state={self._state})"


def config_agent_lifecycle(
    subject: str = "",
    *,
    initial: ConfigAgentState | str | None = None,
    clock: Callable[[], float] = time.time,
    history_limit: int | None = 256,
) -> Lifecycle[ConfigAgentState]:
    """Create a configuration-agent lifecycle (starts in ``Unvalidated``).

    Args:
        subject: Agent name, for messages and events.
        initial: Starting state, e.g. a persisted one after a node restart.
        clock: Time source in seconds.
        history_limit: Transitions kept.

    Returns:
        The lifecycle.
    """
    return Lifecycle(CONFIG_AGENT_MACHINE, subject=subject, initial=initial, clock=clock,
                     history_limit=history_limit)


def wasm_agent_lifecycle(
    subject: str = "",
    *,
    initial: WasmAgentState | str | None = None,
    clock: Callable[[], float] = time.time,
    history_limit: int | None = 256,
) -> Lifecycle[WasmAgentState]:
    """Create a WASM-agent lifecycle (starts in ``Unloaded``).

    Args:
        subject: Agent id or name, for messages and events.
        initial: Starting state, e.g. a persisted one after a node restart.
        clock: Time source in seconds.
        history_limit: Transitions kept.

    Returns:
        The lifecycle.
    """
    return Lifecycle(WASM_AGENT_MACHINE, subject=subject, initial=initial, clock=clock,
                     history_limit=history_limit)


__all__ = [
    "CONFIG_AGENT_MACHINE",
    "WASM_AGENT_MACHINE",
    "ConfigAgentState",
    "Lifecycle",
    "Listener",
    "StateMachine",
    "TransitionRecord",
    "WasmAgentState",
    "config_agent_lifecycle",
    "wasm_agent_lifecycle",
]
