"""The child side of supervision: exit reasons and the :class:`Supervised` mixin.

pykka has no links, so a supervised actor must report its own exit. The mixin does
that exactly once, from the very end of the actor's thread, whatever ended it: a
normal ``stop()``, an unhandled exception from a ``tell`` (pykka's ``on_failure``
path), an exception in ``on_start``/``on_stop``, or a deliberate :meth:`Supervised.fail`.
It adds nothing to the per-message path.
"""

from __future__ import annotations

import sys
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import pykka

__all__ = ["ChildExit", "ExitReason", "Supervised", "attach", "capture_started"]


@dataclass(frozen=True, slots=True)
class ExitReason:
    """Why a child stopped.

    Attributes:
        normal: True for a normal stop, False for an abnormal exit (a failure).
        exc_type: Qualified name of the exception type, None for a normal stop.
        message: The exception message, ``""`` for a normal stop.
        exception: The exception object itself, when there is one.
    """

    normal: bool
    exc_type: str | None = None
    message: str = ""
    exception: BaseException | None = field(default=None, compare=False, repr=False)

    @classmethod
    def normal_exit(cls) -> ExitReason:
        """Return the reason of a normal stop.

        Returns:
            ``ExitReason(normal=True)``.
        """
        return _NORMAL

    @classmethod
    def from_exception(cls, exc: BaseException) -> ExitReason:
        """Return the abnormal reason that ``exc`` describes.

        Args:
            exc: The exception that ended the child.

        Returns:
            An abnormal reason carrying the type name, message and object.
        """
        kind = type(exc)
        name = (
            kind.__qualname__
            if kind.__module__ == "builtins"
            else f"{kind.__module__}.{kind.__qualname__}"
        )
        return cls(normal=False, exc_type=name, message=str(exc), exception=exc)

    @classmethod
    def shutdown(cls) -> ExitReason:
        """Return the reason of a child its supervisor stopped on purpose.

        Returns:
            A normal reason that reads ``"shutdown"``.
        """
        return _SHUTDOWN

    def __str__(self) -> str:
        if self.normal:
            return self.message or "normal"
        return f"{self.exc_type}: {self.message}" if self.message else str(self.exc_type)


_NORMAL = ExitReason(normal=True)
_SHUTDOWN = ExitReason(normal=True, message="shutdown")


class ChildExit(NamedTuple):
    """The message a :class:`Supervised` actor sends its supervisor when it exits."""

    child_id: str
    incarnation: int
    reason: ExitReason


class _Link(NamedTuple):
    supervisor: pykka.ActorRef[Any]
    child_id: str
    incarnation: int


# Actors by URN, so that a supervisor can link to the actor behind the ActorRef that
# a start() callable returned (whichever thread constructed it) without touching
# pykka's private attributes.
_live: weakref.WeakValueDictionary[str, Supervised] = weakref.WeakValueDictionary()
_live_lock = threading.Lock()
# Actors constructed on this thread while a supervisor runs a start() callable: held
# strongly until linked, so that one which dies at once cannot vanish before that.
_starting = threading.local()


class Supervised(pykka.Actor):
    """Mixin for pykka actors that a :class:`~supervisors.Supervisor` can supervise.

    Put it before the pykka actor class::

        class Worker(Supervised, pykka.ThreadingActor):   # or PooledActor
            ...

    Exits are reported with their reason: a normal ``stop()`` is normal; an
    unhandled exception (from a ``tell``, ``on_start`` or ``on_stop``) and
    :meth:`fail` are abnormal, with the exception's type and message.
    Exceptions raised while answering an ``ask`` go back to the caller, as in
    pykka, and do not end the actor.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sv_lock = threading.Lock()
        self._sv_link: _Link | None = None
        self._sv_reason: ExitReason | None = None
        self._sv_exited: ExitReason | None = None
        self._sv_thread: int | None = None
        with _live_lock:
            _live[self.actor_urn] = self
        starting = getattr(_starting, "actors", None)
        if starting is not None:
            starting.append(self)

    def fail(self, reason: BaseException) -> None:
        """Exit abnormally with ``reason``, without raising to the current caller.

        Call it from the actor's own thread (inside a message handler or hook).
        The current handler still returns normally, so an ``ask`` in progress gets
        its reply (a typed error, say); then the actor stops without handling the
        rest of its mailbox (pending asks get :class:`pykka.ActorDeadError`), runs
        ``on_failure`` (not ``on_stop``) and its supervisor sees an abnormal exit
        with this reason. From another thread use ``ref.proxy().fail(exc)``.

        Args:
            reason: The exception that describes the failure.

        Raises:
            RuntimeError: if called from another thread than the actor's own.
        """
        if threading.get_ident() != self._sv_thread:
            raise RuntimeError(
                f"{self}.fail() must be called from the actor's own thread; "
                "from outside, call ref.proxy().fail(exc) instead"
            )
        self._sv_record(ExitReason.from_exception(reason))
        pykka.ActorRegistry.unregister(self.actor_ref)
        self.actor_stopped.set()
        try:
            self.on_failure(type(reason), reason, reason.__traceback__)
        except Exception:
            self._handle_failure(*sys.exc_info())

    # -- pykka hooks (once per actor lifetime, never per message) -----------------

    def _actor_loop(self) -> None:
        self._sv_thread = threading.get_ident()
        try:
            super()._actor_loop()
        finally:
            self._sv_report()

    # -- the same two hooks for a PooledActor (run by a dispatcher, not a thread) -------

    def _pool_slice_begin(self) -> None:
        self._sv_thread = threading.get_ident()  # "own thread" = the one running it now
        super()._pool_slice_begin()  # type: ignore[misc]

    def _pool_finished(self) -> None:
        try:
            super()._pool_finished()  # type: ignore[misc]
        finally:
            self._sv_report()

    def _pool_slice_end(self) -> None:
        self._sv_thread = None  # between turns no thread is "its own"
        super()._pool_slice_end()  # type: ignore[misc]

    def _handle_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        if isinstance(exception_value, BaseException):
            self._sv_record(ExitReason.from_exception(exception_value))
        super()._handle_failure(exception_type, exception_value, traceback)

    # -- linking --------------------------------------------------------------------

    def _sv_record(self, reason: ExitReason) -> None:
        # The first failure wins: it is the cause, later ones are consequences.
        if self._sv_reason is None:
            self._sv_reason = reason

    def _sv_report(self) -> None:
        reason = self._sv_reason or _NORMAL
        with self._sv_lock:
            self._sv_exited = reason
            link = self._sv_link
        if link is not None:
            try:
                link.supervisor.tell(ChildExit(link.child_id, link.incarnation, reason))
            except pykka.ActorDeadError:
                pass  # the supervisor is gone; nobody is left to tell

    def _sv_attach(self, link: _Link) -> ExitReason | None:
        with self._sv_lock:
            if self._sv_exited is not None:
                return self._sv_exited
            self._sv_link = link
            return None


@contextmanager
def capture_started() -> Iterator[list[Supervised]]:
    """Collect the :class:`Supervised` actors constructed on this thread (library-internal).

    Yields:
        The list the actors are appended to.
    """
    previous = getattr(_starting, "actors", None)
    actors: list[Supervised] = []
    _starting.actors = actors
    try:
        yield actors
    finally:
        _starting.actors = previous


def attach(
    ref: pykka.ActorRef[Any],
    supervisor: pykka.ActorRef[Any],
    child_id: str,
    incarnation: int,
    started: list[Supervised] | None = None,
) -> ExitReason | None:
    """Link the actor behind ``ref`` to ``supervisor`` (library-internal).

    Args:
        ref: The child's ref, as returned by its spec's ``start``.
        supervisor: The supervisor to report the exit to.
        child_id: The child's id under that supervisor.
        incarnation: Number of this start, echoed back in :class:`ChildExit`.
        started: Actors captured by :func:`capture_started` around ``start``.

    Returns:
        None once linked; the exit reason if the actor already exited (then no
        :class:`ChildExit` will come).

    Raises:
        NotSupervisedError: if the actor does not mix in :class:`Supervised`.
    """
    from supervisors.errors import NotSupervisedError

    if not issubclass(ref.actor_class, Supervised):
        raise NotSupervisedError(ref.actor_class, child_id)
    actor = next((a for a in started or () if a.actor_urn == ref.actor_urn), None)
    if actor is None:
        with _live_lock:
            actor = _live.get(ref.actor_urn)
    if actor is None:
        # Built on another thread, already ended and collected: its reason is lost.
        return ExitReason(
            normal=False, exc_type="UnknownExit", message="exited before it was linked"
        )
    return actor._sv_attach(_Link(supervisor, child_id, incarnation))
