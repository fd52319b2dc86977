"""Exceptions raised by the :mod:`supervisors` library.

Every error names the supervisor or child involved and says what to do about it.
"""

from __future__ import annotations

__all__ = [
    "ChildAlreadyExistsError",
    "ChildNotFoundError",
    "ChildRunningError",
    "ChildStartError",
    "NotSupervisedError",
    "RestartIntensityExceeded",
    "SupervisorError",
]


class SupervisorError(Exception):
    """Base class of every error raised by this library."""


class ChildNotFoundError(SupervisorError, LookupError):
    """No child with the given id exists under the supervisor."""

    def __init__(self, supervisor: str, child_id: str) -> None:
        self.supervisor = supervisor
        self.child_id = child_id
        super().__init__(
            f"supervisor {supervisor!r} has no child {child_id!r}; "
            "call which_children() to list the ids it knows"
        )


class ChildAlreadyExistsError(SupervisorError):
    """A child with the given id already exists under the supervisor."""

    def __init__(self, supervisor: str, child_id: str) -> None:
        self.supervisor = supervisor
        self.child_id = child_id
        super().__init__(
            f"supervisor {supervisor!r} already has a child {child_id!r}; "
            "child ids must be unique per supervisor (delete_child() the old one first)"
        )


class ChildRunningError(SupervisorError):
    """The operation needs a child that is not running, but it is."""

    def __init__(self, supervisor: str, child_id: str, operation: str) -> None:
        self.supervisor = supervisor
        self.child_id = child_id
        super().__init__(
            f"cannot {operation} child {child_id!r} of supervisor {supervisor!r}: "
            "it is running; terminate_child() it first"
        )


class ChildStartError(SupervisorError):
    """A child's ``start`` callable raised or returned something unusable.

    The original exception, if any, is chained as ``__cause__``.
    """

    def __init__(self, supervisor: str, child_id: str, detail: str) -> None:
        self.supervisor = supervisor
        self.child_id = child_id
        super().__init__(f"supervisor {supervisor!r} could not start child {child_id!r}: {detail}")


class NotSupervisedError(SupervisorError, TypeError):
    """A child's ``start`` returned an actor that cannot report its exit."""

    def __init__(self, actor_class: type, child_id: str) -> None:
        self.actor_class = actor_class
        self.child_id = child_id
        super().__init__(
            f"child {child_id!r}: start() returned an actor of class "
            f"{actor_class.__qualname__}, which does not mix in supervisors.Supervised, "
            "so its supervisor could never learn that it exited; "
            f"declare it as `class {actor_class.__name__}(Supervised, pykka.ThreadingActor)`"
        )


class RestartIntensityExceeded(SupervisorError):
    """The exit reason of a supervisor that gave up: too many restarts too fast.

    Its parent supervisor sees this as an abnormal exit and handles it (escalation).
    """

    def __init__(self, supervisor: str, max_restarts: int, within: float) -> None:
        self.supervisor = supervisor
        self.max_restarts = max_restarts
        self.within = within
        super().__init__(
            f"supervisor {supervisor!r} exceeded its restart intensity "
            f"(more than {max_restarts} restarts within {within:g} s) and shut down"
        )
