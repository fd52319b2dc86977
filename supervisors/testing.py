"""Helpers for testing code that uses supervisors: a fake clock, a crashing actor,
an event recorder and a bounded poll.

They are part of the public library so that users (and the Caxton runtime's tests)
can use them too; nothing here starts threads of its own.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import pykka

from supervisors.child import Supervised
from supervisors.spec import ChildSpec, Restart

__all__ = [
    "Crash",
    "Crasher",
    "EventRecorder",
    "FakeClock",
    "crasher_spec",
    "wait_until",
]


class FakeClock:
    """A monotonic clock that only moves when told to.

    Args:
        start: The initial time in seconds.
    """

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        """Move the clock forward.

        Args:
            seconds: How far (>= 0).

        Returns:
            The new time.

        Raises:
            ValueError: if ``seconds`` is negative (monotonic clocks never go back).
        """
        if seconds < 0:
            raise ValueError(f"a monotonic clock cannot go back ({seconds!r} s)")
        self.now += seconds
        return self.now


def wait_until(predicate: Callable[[], Any], timeout: float = 5.0, interval: float = 0.005) -> Any:
    """Poll ``predicate`` until it returns something truthy.

    Args:
        predicate: Called repeatedly, without arguments.
        timeout: Seconds before giving up.
        interval: Seconds between polls.

    Returns:
        The first truthy value.

    Raises:
        TimeoutError: if it stayed falsy for ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"condition still false after {timeout:g} s: {predicate!r}")
        time.sleep(interval)


class Crash(NamedTuple):
    """Tell this to a :class:`Crasher` to make it raise (an unhandled failure)."""

    message: str = "boom"


class Crasher(Supervised, pykka.ThreadingActor):
    """A supervised actor that crashes, fails, blocks or ignores stop on request.

    Args:
        name: Its name, recorded in ``journal`` when it stops normally.
        journal: A shared list that gets ``("stop", name)`` from ``on_stop``
            (:func:`crasher_spec` adds ``("start", name)`` when it starts one).
        fail_on_start: Raise this from ``on_start`` (an abnormal exit at once).
    """

    def __init__(
        self,
        name: str = "crasher",
        journal: list[tuple[str, str]] | None = None,
        fail_on_start: BaseException | None = None,
    ) -> None:
        super().__init__()
        self.name = name
        self.journal = journal if journal is not None else []
        self.fail_on_start = fail_on_start

    def on_start(self) -> None:
        """Fail if asked to.

        Raises:
            BaseException: ``fail_on_start``, when given.
        """
        if self.fail_on_start is not None:
            raise self.fail_on_start

    def on_stop(self) -> None:
        """Record the stop."""
        self.journal.append(("stop", self.name))

    def on_receive(self, message: Any) -> Any:
        """Raise on :class:`Crash`, answer ``"pong"`` to anything else.

        Args:
            message: The message.

        Returns:
            ``"pong"``.

        Raises:
            RuntimeError: on :class:`Crash`.
        """
        if isinstance(message, Crash):
            raise RuntimeError(message.message)
        return "pong"

    def ping(self) -> str:
        """Answer, to show the actor is alive.

        Returns:
            ``"pong"``.
        """
        return "pong"

    def fail_after_reply(self, reason: BaseException) -> str:
        """Reply to the caller, then exit abnormally with ``reason``.

        Args:
            reason: The exit reason.

        Returns:
            ``"failed"``, which the caller receives.
        """
        self.fail(reason)
        return "failed"

    def block(self, seconds: float) -> None:
        """Stay busy (ignoring its mailbox, stop included) for ``seconds``.

        Args:
            seconds: How long.
        """
        time.sleep(seconds)


def crasher_spec(
    child_id: str,
    journal: list[tuple[str, str]] | None = None,
    restart: Restart = Restart.PERMANENT,
    shutdown: float = 5.0,
    significant: bool = False,
) -> ChildSpec:
    """Return a spec that starts a :class:`Crasher` named ``child_id``.

    Its start callable appends ``("start", child_id)`` to ``journal`` on the
    supervisor's thread, so the journal shows the supervisor's start order.

    Args:
        child_id: Child id and Crasher name.
        journal: Shared start/stop journal.
        restart: Restart type.
        shutdown: Shutdown timeout.
        significant: Whether it is significant.

    Returns:
        The spec.
    """

    def start() -> pykka.ActorRef[Crasher]:
        if journal is not None:
            journal.append(("start", child_id))
        return Crasher.start(child_id, journal)

    return ChildSpec(
        child_id,
        start,
        restart=restart,
        shutdown=shutdown,
        significant=significant,
    )


class EventRecorder:
    """A thread-safe supervisor listener that keeps every event it receives."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.events: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, event: str, data: dict[str, Any]) -> None:
        with self._cond:
            self.events.append((event, data))
            self._cond.notify_all()

    def named(self, event: str, **match: Any) -> list[dict[str, Any]]:
        """Return the data of every ``event`` whose keys equal ``match``.

        Args:
            event: Event name.
            **match: Keys and values the data must have.

        Returns:
            The matching data dicts, oldest first.
        """
        with self._cond:
            return [
                d
                for e, d in self.events
                if e == event and all(d.get(k) == v for k, v in match.items())
            ]

    def wait_for(
        self, event: str, count: int = 1, timeout: float = 5.0, **match: Any
    ) -> list[dict[str, Any]]:
        """Wait until ``count`` matching events have arrived.

        Args:
            event: Event name.
            count: How many.
            timeout: Seconds before giving up.
            **match: Keys and values the data must have.

        Returns:
            The matching data dicts, oldest first.

        Raises:
            TimeoutError: if fewer arrived within ``timeout``.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [
                    d
                    for e, d in self.events
                    if e == event and all(d.get(k) == v for k, v in match.items())
                ]
                if len(found) >= count:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    names = [e for e, _ in self.events]
                    raise TimeoutError(
                        f"waited {timeout:g} s for {count} {event!r} events matching {match}, "
                        f"got {len(found)}; events so far: {names}"
                    )
                self._cond.wait(remaining)
