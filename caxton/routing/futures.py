"""The reply future of a routed message: exactly one outcome, typed errors, done callbacks.

pykka 4 futures have no completion hook (only a *get hook*, which runs when a caller waits),
so the router could not otherwise tell when a version finished a message. A
:class:`ReplyFuture` is a :class:`pykka.ThreadingFuture` that

- accepts the **first** outcome and silently ignores any later one (so a racing "actor died"
  path and the actor's own reply can never produce two outcomes),
- normalises every exception into a :class:`~caxton.errors.CaxtonError` (an actor that died
  before handling the message becomes :class:`~caxton.errors.AgentUnavailable`, any other
  exception raised by an agent becomes :class:`~caxton.errors.AgentFailed`),
- runs done callbacks once the outcome is set (on the thread that set it), and
- raises :class:`caxton.errors.Timeout` instead of :class:`pykka.Timeout` from :meth:`get`.
"""

from __future__ import annotations

import queue
import sys
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any

import pykka
import structlog
from pykka._future import _Unset as _PykkaUnset

from caxton.errors import AgentFailed, AgentUnavailable, CaxtonError, Timeout
from caxton.messages import Message

_log = structlog.get_logger("caxton.routing")
_UNSET = _PykkaUnset()

ExcInfo = tuple[type[BaseException] | None, BaseException | None, TracebackType | None]
DoneCallback = Callable[["ReplyFuture"], None]


def as_caxton_error(exc: BaseException) -> CaxtonError:
    """Map any exception an agent or pykka can raise onto a typed Caxton error.

    Args:
        exc: The exception.

    Returns:
        ``exc`` itself when it already is a :class:`CaxtonError`, otherwise a typed wrapper
        whose ``__cause__`` is ``exc``.
    """
    if isinstance(exc, CaxtonError):
        return exc
    err: CaxtonError
    if isinstance(exc, pykka.ActorDeadError):
        err = AgentUnavailable(f"the agent instance stopped before handling the message: {exc}")
    elif isinstance(exc, pykka.Timeout):
        err = Timeout(f"no reply within the deadline: {exc}")
    else:
        err = AgentFailed(f"the agent raised {type(exc).__name__}: {exc}")
    err.__cause__ = exc
    return err


class ReplyFuture(pykka.ThreadingFuture[Message]):
    """Future of one routed message's reply; see the module docstring for its guarantees."""

    # Initial state as class attributes (immutable values; an instance assigns its own on
    # change), so the constructor - once per routed message - sets only the lock and the
    # callback list. pykka.Future's two fields are among them (pykka tests the hook result
    # with isinstance).
    _get_hook = None
    _get_hook_result = _UNSET
    _condition = None  # type: ignore[assignment]
    _result = None
    _waiter: threading.Event | None = None
    _claimed = False
    _fired = False
    value: Message | None = None
    """The reply once complete with one, else ``None`` (read-only: set by :meth:`set`)."""
    error: CaxtonError | None = None
    """The typed error once complete with one, else ``None`` (read-only)."""
    served_by: str | None = None
    """The label of the version instance the router delivered the message to (``None``
    when it was never delivered, e.g. refused before routing)."""

    def __init__(self) -> None:
        # Not ThreadingFuture.__init__: its Condition (an RLock plus bookkeeping) costs more
        # than the rest of a routed message's bookkeeping, and most replies are consumed by a
        # done callback, never waited on. ``get`` creates a waiter Event only when needed.
        self._state_lock = threading.Lock()
        self._callbacks: list[DoneCallback] = []

    # -- completion --------------------------------------------------------------------------

    def _claim(self) -> bool:
        with self._state_lock:
            if self._claimed:
                return False
            self._claimed = True
            return True

    def _fire(self) -> None:
        with self._state_lock:
            self._fired = True
            callbacks, self._callbacks = self._callbacks, []
            waiter = self._waiter
        self._notify(callbacks, waiter)

    def _notify(self, callbacks: list[DoneCallback], waiter: threading.Event | None) -> None:
        if waiter is not None:
            waiter.set()
        for callback in callbacks:
            try:
                callback(self)
            except Exception as exc:  # a callback bug must not lose the reply
                _log.error("routing.callback_failed", error=repr(exc))

    def _run(self, callback: DoneCallback) -> None:
        try:
            callback(self)
        except Exception as exc:  # a callback bug must not lose the reply
            _log.error("routing.callback_failed", error=repr(exc))

    def set(self, value: Any | None = None) -> None:
        """Complete with the reply; ignored if the future already has an outcome.

        Args:
            value: The reply message.
        """
        # claim, store and fire under one acquisition of the lock (the hot path: every reply)
        with self._state_lock:
            if self._claimed:
                return
            self._claimed = True
            self.value = value
            self._fired = True
            callbacks, self._callbacks = self._callbacks, []
            waiter = self._waiter
        self._notify(callbacks, waiter)

    def set_exception(self, exc_info: ExcInfo | None = None) -> None:
        """Complete with an error (normalised to a CaxtonError); ignored if already complete.

        Args:
            exc_info: A ``sys.exc_info()`` triple; defaults to the exception being handled.
        """
        if exc_info is None:
            exc_info = sys.exc_info()
        raw = exc_info[1] if exc_info[1] is not None else (
            exc_info[0]() if exc_info[0] is not None else RuntimeError("unknown error")
        )
        if not self._claim():
            return
        err = as_caxton_error(raw)
        self.error = err
        if err is raw and exc_info[2] is not None:
            err = err.with_traceback(exc_info[2])
        self._fire()

    def fail(self, error: CaxtonError) -> None:
        """Complete with a typed error; ignored if the future already has an outcome.

        Args:
            error: The error the caller will see.
        """
        self.set_exception((type(error), error, None))

    # -- observation -------------------------------------------------------------------------

    def add_done_callback(self, callback: DoneCallback) -> None:
        """Run ``callback(self)`` once the outcome is set (at once if it already is).

        Args:
            callback: Called exactly once, on the thread that completes the future.
        """
        with self._state_lock:
            if not self._fired:
                self._callbacks.append(callback)
                return
        self._run(callback)

    def done(self) -> bool:
        """Return whether the outcome is set and the callbacks have run."""
        return self._fired

    def get(self, *, timeout: float | None = None) -> Any:
        """Wait for the reply.

        Args:
            timeout: Seconds to wait; ``None`` waits forever.

        Returns:
            The reply message.

        Raises:
            Timeout: No outcome within ``timeout`` (the message may still complete later).
            CaxtonError: The typed error the message ended with.
        """
        if self._get_hook is not None:  # a derived future (``map``, ``join``)
            if self._get_hook_result is _UNSET or isinstance(self._get_hook_result, _PykkaUnset):
                try:
                    self._get_hook_result = self._get_hook(timeout)
                except pykka.Timeout as exc:
                    raise Timeout(f"no reply within {timeout} s") from exc
            return self._get_hook_result
        if not self._fired:
            with self._state_lock:
                if not self._fired:
                    if self._waiter is None:
                        self._waiter = threading.Event()
                    waiter = self._waiter
                else:
                    waiter = None
            if waiter is not None and not waiter.wait(timeout):
                raise Timeout(f"no reply within {timeout} s")
        if self.error is not None:
            raise self.error
        return self.value

    def set_get_hook(self, func: Any) -> None:
        """Make this a derived future whose ``get`` calls ``func(timeout)`` (pykka API)."""
        with self._state_lock:
            if self._claimed:
                raise queue.Full
            self._get_hook = func


__all__ = ["DoneCallback", "ReplyFuture", "as_caxton_error"]
