"""How the router reaches one version instance: the :class:`VersionHandle` protocol.

The router never holds an ``ActorRef`` itself. Behind a handle the node puts a supervised
actor whose ref changes on restarts; the handle resolves the current ref on every delivery.
:class:`ActorVersionHandle` is the reference implementation over plain pykka actors (used by
tests and benchmarks, and usable by the node with a ``resolve`` callable).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import pykka
import structlog

# pykka exposes no public way to ask with a caller-supplied future; ``Envelope`` is the
# (stable since pykka 2) inbox item ``ActorRef.ask`` itself builds.
from pykka._envelope import Envelope

from caxton.errors import AgentUnavailable
from caxton.messages import Message
from caxton.routing.futures import ReplyFuture

_log = structlog.get_logger("caxton.routing")


@runtime_checkable
class VersionHandle(Protocol):
    """One live instance of one agent version, as the router sees it.

    Contract:

    - ``version`` is the version label (unique within one router).
    - ``deliver(message, reply)`` hands ``message`` to the instance and guarantees that
      ``reply`` is eventually completed exactly once, with the reply :class:`Message` or a
      :class:`~caxton.errors.CaxtonError`. It must **not block** (it runs under the router's
      lock). If no instance is running it raises :class:`~caxton.errors.AgentUnavailable` or
      :class:`~caxton.errors.CircuitOpen` at once (the router turns that into the reply's
      outcome). A :class:`ReplyFuture` ignores every outcome after the first, so racing
      completions are safe; non-Caxton exceptions are normalised.
    - ``stop(timeout)`` stops the instance after it has handled what is already queued; it may
      block up to ``timeout`` and must not raise.
    """

    @property
    def version(self) -> str:
        """The version label."""
        ...

    def deliver(self, message: Message, reply: ReplyFuture) -> None:
        """Hand ``message`` to the instance; see the class docstring."""
        ...

    def stop(self, timeout: float | None = None) -> None:
        """Stop the instance after its queued messages; see the class docstring."""
        ...


def ask(handle: VersionHandle, message: Message) -> ReplyFuture:
    """Deliver ``message`` straight to one version, bypassing routing (health checks, tests).

    Args:
        handle: The version instance.
        message: The message.

    Returns:
        The reply future (already failed if the instance is unavailable).
    """
    reply = ReplyFuture()
    try:
        handle.deliver(message, reply)
    except Exception as exc:
        reply.set_exception((type(exc), exc, exc.__traceback__))
    return reply


class ActorVersionHandle:
    """A :class:`VersionHandle` over a pykka actor whose on_receive maps Message → Message.

    Args:
        version: The version label.
        ref: The actor's ref, or a callable returning the *current* ref (``None`` while no
            instance runs, e.g. during a supervisor restart).
        agent: The agent name, for error messages and logs.
    """

    def __init__(
        self,
        version: str,
        ref: pykka.ActorRef[Any] | Callable[[], pykka.ActorRef[Any] | None],
        *,
        agent: str = "",
    ) -> None:
        self._version = version
        self._agent = agent
        if isinstance(ref, pykka.ActorRef):
            fixed = ref
            self._resolve: Callable[[], pykka.ActorRef[Any] | None] = lambda: fixed
        else:
            self._resolve = ref

    @property
    def version(self) -> str:
        """The version label."""
        return self._version

    def deliver(self, message: Message, reply: ReplyFuture) -> None:
        """Put ``message`` in the actor's inbox with ``reply`` as its reply future.

        Args:
            message: The message.
            reply: Completed by the actor (or with AgentUnavailable if it is gone).

        Raises:
            AgentUnavailable: No running instance.
        """
        ref = self._resolve()
        if ref is None or not ref.is_alive():
            raise AgentUnavailable(
                f"agent {self._agent!r} version {self._version!r} has no running instance"
            )
        ref.actor_inbox.put(Envelope(message, reply_to=reply))
        if not ref.is_alive():
            # The actor stopped between the check and the put: the envelope may sit in a dead
            # inbox forever. First outcome wins, so failing it here is always safe.
            reply.fail(AgentUnavailable(
                f"agent {self._agent!r} version {self._version!r} stopped; retry"
            ))

    def stop(self, timeout: float | None = None) -> None:
        """Stop the actor after the messages already in its inbox.

        Args:
            timeout: Seconds to wait for the actor to stop.
        """
        ref = self._resolve()
        if ref is None:
            return
        try:
            ref.stop(block=True, timeout=timeout)
        except pykka.Timeout:
            _log.warning("routing.stop_timeout", agent=self._agent, version=self._version,
                         timeout=timeout)


__all__ = ["ActorVersionHandle", "VersionHandle", "ask"]
