"""Supervision events: stable names, stable keys, delivered to listeners and to structlog.

Every event carries ``supervisor`` (the supervisor's name) and, when it concerns a
child, ``child_id``. Other keys by event:

==========================  =====================================================
event                       keys
==========================  =====================================================
``supervisor_started``      ``strategy``, ``children``
``supervisor_stopped``      ``reason``
``supervisor_escalated``    ``reason``, ``max_restarts``, ``within``
``supervisor_auto_shutdown`` ``child_id``
``child_started``           ``ref``, ``restarts``
``child_start_failed``      ``reason``, ``exc_type``
``child_exited``            ``reason``, ``normal``, ``exc_type``, ``restarts``
``child_restart_scheduled`` ``delay``, ``attempt``, ``restarts``
``child_terminated``        ``reason``
``child_abandoned``         ``timeout``, ``reason``
``child_deleted``           --
``breaker_state_changed``   ``state``, ``previous``
``listener_failed``         ``failed_event``, ``listener`` (structlog only)
==========================  =====================================================

``reason`` is always a string (``"normal"``, or ``"ValueError: boom"``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import structlog

__all__ = [
    "BREAKER_STATE_CHANGED",
    "CHILD_ABANDONED",
    "CHILD_DELETED",
    "CHILD_EXITED",
    "CHILD_RESTART_SCHEDULED",
    "CHILD_STARTED",
    "CHILD_START_FAILED",
    "CHILD_TERMINATED",
    "EVENTS",
    "LISTENER_FAILED",
    "SUPERVISOR_AUTO_SHUTDOWN",
    "SUPERVISOR_ESCALATED",
    "SUPERVISOR_STARTED",
    "SUPERVISOR_STOPPED",
    "EventEmitter",
    "Listener",
]

SUPERVISOR_STARTED: Final = "supervisor_started"
SUPERVISOR_STOPPED: Final = "supervisor_stopped"
SUPERVISOR_ESCALATED: Final = "supervisor_escalated"
SUPERVISOR_AUTO_SHUTDOWN: Final = "supervisor_auto_shutdown"
CHILD_STARTED: Final = "child_started"
CHILD_START_FAILED: Final = "child_start_failed"
CHILD_EXITED: Final = "child_exited"
CHILD_RESTART_SCHEDULED: Final = "child_restart_scheduled"
CHILD_TERMINATED: Final = "child_terminated"
CHILD_ABANDONED: Final = "child_abandoned"
CHILD_DELETED: Final = "child_deleted"
BREAKER_STATE_CHANGED: Final = "breaker_state_changed"
LISTENER_FAILED: Final = "listener_failed"

EVENTS: Final[frozenset[str]] = frozenset(
    {
        SUPERVISOR_STARTED,
        SUPERVISOR_STOPPED,
        SUPERVISOR_ESCALATED,
        SUPERVISOR_AUTO_SHUTDOWN,
        CHILD_STARTED,
        CHILD_START_FAILED,
        CHILD_EXITED,
        CHILD_RESTART_SCHEDULED,
        CHILD_TERMINATED,
        CHILD_ABANDONED,
        CHILD_DELETED,
        BREAKER_STATE_CHANGED,
    }
)
"""Every event a listener can receive."""

Listener = Callable[[str, dict[str, Any]], None]
"""``fn(event, data)``: called on the supervisor's thread for every event; must be fast."""

_log = structlog.get_logger("supervisors")


class EventEmitter:
    """Delivers events to listeners, then to structlog, for one supervisor.

    A listener that raises is logged as ``listener_failed`` and keeps receiving
    later events; it never breaks the supervisor.

    Args:
        supervisor: Name put under the ``supervisor`` key of every event.
        listeners: Initial listeners.
    """

    __slots__ = ("_listeners", "supervisor")

    def __init__(self, supervisor: str, listeners: list[Listener] | None = None) -> None:
        self.supervisor = supervisor
        self._listeners: list[Listener] = list(listeners or ())

    def add(self, listener: Listener) -> None:
        """Add a listener (adding the same one twice calls it twice).

        Args:
            listener: ``fn(event, data)``.

        Raises:
            TypeError: if ``listener`` is not callable.
        """
        if not callable(listener):
            raise TypeError(f"a listener must be callable as fn(event, data), got {listener!r}")
        self._listeners.append(listener)

    def remove(self, listener: Listener) -> bool:
        """Remove one registration of ``listener``.

        Args:
            listener: A listener previously added.

        Returns:
            True if it was registered.
        """
        try:
            self._listeners.remove(listener)
        except ValueError:
            return False
        return True

    def emit(self, event: str, level: str = "info", /, **data: Any) -> None:
        """Deliver ``event`` with ``data`` (plus ``supervisor``) to listeners and structlog.

        Args:
            event: One of :data:`EVENTS`.
            level: structlog method name: ``debug``, ``info``, ``warning`` or ``error``.
            **data: The event's keys.
        """
        data["supervisor"] = self.supervisor
        for listener in self._listeners:
            try:
                listener(event, dict(data))
            except Exception:
                _log.exception(
                    LISTENER_FAILED,
                    supervisor=self.supervisor,
                    failed_event=event,
                    listener=repr(listener),
                )
        getattr(_log, level)(event, **data)
