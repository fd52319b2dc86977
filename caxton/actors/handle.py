"""A router :class:`~caxton.routing.VersionHandle` over a supervised agent-version child.

The child's ``ActorRef`` changes on every restart. The handle follows the agent supervisor's
events (``child_started`` carries the new ref; ``child_exited`` clears it;
``breaker_state_changed`` says whether the circuit is open), so the hot path reads one
attribute and never asks the supervisor.
"""

from __future__ import annotations

from typing import Any

import pykka

# the inbox item ``ActorRef.ask`` builds (see caxton.routing.handle)
from pykka._envelope import Envelope

from caxton.errors import AgentUnavailable, CircuitOpen
from caxton.messages import Message
from caxton.routing import ActorVersionHandle, ReplyFuture


class SupervisedVersionHandle(ActorVersionHandle):
    """The router's view of one supervised version instance.

    Args:
        agent: The agent name.
        version: The version label (also the child id under the agent's supervisor).
        stop: Called by :meth:`stop` to terminate the child through its supervisor (so it is
            not restarted); receives the timeout.
    """

    def __init__(self, agent: str, version: str, stop: Any) -> None:
        self.ref: pykka.ActorRef[Any] | None = None
        self.state = "starting"
        self.breaker = "closed"
        self.restarts = 0
        self.last_exit: str | None = None
        self._stop = stop
        super().__init__(version, lambda: self.ref, agent=agent)

    def on_event(self, event: str, data: dict[str, Any]) -> None:
        """Follow one supervisor event about this child (called on the supervisor thread).

        Args:
            event: The supervisor event name.
            data: Its data (``ref``, ``reason``, ``state`` ...).
        """
        if event == "child_started":
            self.ref = data.get("ref")
            self.state = "running"
        elif event == "child_exited":
            self.ref = None
            self.state = "exited"
            reason = data.get("reason")
            self.last_exit = None if reason is None else str(reason)
        elif event == "child_restart_scheduled":
            self.state = "restarting"
            self.restarts += 1
        elif event == "breaker_state_changed":
            self.breaker = str(data.get("state", self.breaker))
            if self.breaker == "open":
                self.state = "circuit_open"
        elif event in ("child_terminated", "child_deleted", "child_abandoned"):
            self.ref = None
            self.state = "terminated"

    def deliver(self, message: Message, reply: ReplyFuture) -> None:
        """Hand ``message`` to the current instance; fail fast when none runs.

        Raises:
            CircuitOpen: The breaker is open after repeated failures.
            AgentUnavailable: The instance is restarting or stopped.
        """
        ref = self.ref
        if ref is None:
            agent, version = self._agent, self._version
            if self.state == "circuit_open":
                raise CircuitOpen(
                    f"agent {agent!r} version {version!r} failed repeatedly and its circuit "
                    f"breaker is open (last exit: {self.last_exit}); it is retried after the "
                    "breaker's reset timeout, or roll back with `caxton agents rollback`"
                )
            raise AgentUnavailable(
                f"agent {agent!r} version {version!r} has no running instance "
                f"({self.state}; last exit: {self.last_exit}); retry shortly"
            )
        # ActorVersionHandle.deliver with the ref already in hand (no resolve call, one read
        # of the stopped flag's Event per check): the hot path of every message
        stopped = ref.actor_stopped
        if stopped.is_set():
            raise AgentUnavailable(
                f"agent {self._agent!r} version {self._version!r} has no running instance"
            )
        ref.actor_inbox.put(Envelope(message, reply_to=reply))
        if stopped.is_set():
            # The actor stopped between the check and the put: the envelope may sit in a dead
            # inbox forever. First outcome wins, so failing it here is always safe.
            reply.fail(AgentUnavailable(
                f"agent {self._agent!r} version {self._version!r} stopped; retry"
            ))

    def stop(self, timeout: float | None = None) -> None:
        """Terminate the child through its supervisor, after its queued messages."""
        self._stop(timeout)
