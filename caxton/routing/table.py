"""The routing decision core: versions, weights, pins, in-flight counts and drain bookkeeping.

Pure and single-threaded: every method takes ``now`` from the caller, nothing blocks, nothing
starts or stops instances. :class:`~caxton.routing.router.Router` wraps it in a lock and acts
on what :meth:`RoutingTable.poll` reports.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

from caxton.errors import AgentUnavailable, InvalidArgument, VersionNotFound
from caxton.routing.assignment import WeightedAssigner
from caxton.routing.pins import PinTable
from caxton.routing.status import VersionState


@dataclass(slots=True)
class VersionEntry:
    """Mutable bookkeeping of one live version.

    ``started`` is written only under the router lock (routing); ``finished`` is written by
    completions on the instances' threads under the entry's own small lock, so a completion
    never waits for the router lock (the routing hot path).
    """

    name: str
    weight: int = 0
    state: VersionState = VersionState.ACTIVE
    started: int = 0
    finished: int = 0
    drain_started: float | None = None
    drain_deadline: float | None = None
    timed_out: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def in_flight(self) -> int:
        """Messages delivered and not yet completed."""
        return self.started - self.finished


@dataclass(frozen=True, slots=True)
class DrainTimeout:
    """A drain timed out with conversations left; they moved to another version.

    Attributes:
        version: The draining version.
        moved: How many conversations moved.
        moved_to: Where they went (``None``: no active version; they were unpinned).
    """

    version: str
    moved: int
    moved_to: str | None


@dataclass(frozen=True, slots=True)
class Retirement:
    """A version the router should now stop.

    Attributes:
        version: The version.
        reason: ``drained`` (idle, no conversations), ``drain_timeout`` (its conversations were
            moved at the timeout, then it went idle) or ``drain_grace_expired`` (messages still
            queued after the timeout plus grace; stopping lets the instance finish those
            before it exits).
        in_flight: Messages still in the instance when retired.
    """

    version: str
    reason: str
    in_flight: int


@dataclass(frozen=True, slots=True)
class PollResult:
    """What :meth:`RoutingTable.poll` found."""

    retired: tuple[Retirement, ...] = ()
    timeouts: tuple[DrainTimeout, ...] = ()
    expired_conversations: int = 0


class RoutingTable:
    """Which version gets each message.

    Args:
        agent: The agent name (for error messages).
        seed: Seed of the weighted assignment.
        pin_ttl: Idle seconds after which a conversation's pin ends (``None``: never).
        drain_grace: Seconds after a drain timeout to wait for in-flight messages before the
            version is retired anyway.
    """

    def __init__(self, agent: str, *, seed: int = 0, pin_ttl: float | None = None,
                 drain_grace: float = 5.0) -> None:
        self.agent = agent
        self.pin_ttl = pin_ttl
        self.drain_grace = drain_grace
        self.versions: dict[str, VersionEntry] = {}
        self.pins = PinTable()
        self._assigner = WeightedAssigner(seed)

    # -- membership and weights --------------------------------------------------------------

    def entry(self, version: str) -> VersionEntry:
        """Return a live version's entry.

        Raises:
            VersionNotFound: ``version`` is not live in this router.
        """
        entry = self.versions.get(version)
        if entry is None:
            raise VersionNotFound(f"agent {self.agent!r} has no live version {version!r}; "
                                  f"live: {sorted(self.versions)}")
        return entry

    def add(self, version: str, weight: int = 0) -> None:
        """Add a live version.

        Args:
            version: Its label (unique among live versions).
            weight: Its initial weight.

        Raises:
            InvalidArgument: The label is taken or the weight is invalid.
        """
        if version in self.versions:
            raise InvalidArgument(f"agent {self.agent!r} already has a live version "
                                  f"{version!r}; give the new instance another label")
        self.versions[version] = VersionEntry(version)
        try:
            self.set_weights({version: weight})
        except InvalidArgument:
            del self.versions[version]
            raise

    def set_weights(self, weights: Mapping[str, int]) -> None:
        """Change the weights of the named versions (others keep theirs).

        Args:
            weights: ``{version: weight}``.

        Raises:
            VersionNotFound: A named version is not live.
            InvalidArgument: A weight is negative, or positive for a draining version.
        """
        for name, weight in weights.items():
            entry = self.entry(name)
            if not isinstance(weight, int) or weight < 0:
                raise InvalidArgument(f"weight of version {name!r} must be an integer >= 0")
            if weight > 0 and entry.state is VersionState.DRAINING:
                raise InvalidArgument(f"version {name!r} is draining and takes no new traffic")
        for name, weight in weights.items():
            self.versions[name].weight = weight
        self._assigner.set_weights({n: e.weight for n, e in self.versions.items()})

    def weights(self) -> dict[str, int]:
        """Return ``{version: weight}`` of the live versions."""
        return {n: e.weight for n, e in self.versions.items()}

    def primary(self, exclude: str | None = None) -> str | None:
        """The active version with the highest weight (ties: first added), or ``None``."""
        best: VersionEntry | None = None
        for entry in self.versions.values():
            if entry.name == exclude or entry.state is not VersionState.ACTIVE:
                continue
            if best is None or entry.weight > best.weight:
                best = entry
        return None if best is None else best.name

    # -- the hot path ------------------------------------------------------------------------

    def choose(self, conversation_id: str | None, now: float) -> str:
        """Pick the version for a message and pin a new conversation.

        Args:
            conversation_id: The message's conversation (``None``: one-shot, not pinned).
            now: The current time.

        Returns:
            The version label.

        Raises:
            AgentUnavailable: No live version takes new traffic (all weights are zero).
        """
        if conversation_id is None:
            names = self._assigner._names  # one version takes all traffic: no pick() call
            name = names[0] if len(names) == 1 else self._assigner.pick()
        else:
            pinned = self.pins.get(conversation_id, now)
            if pinned is not None and pinned in self.versions:
                return pinned
            name = self._assigner.assign(conversation_id)
            if name is not None:
                self.pins.pin(conversation_id, name, now)
        if name is None:
            raise AgentUnavailable(f"agent {self.agent!r} has no version taking new traffic "
                                   f"(weights: {self.weights()})")
        return name

    def begin(self, version: str) -> VersionEntry:
        """Count one more message in flight on ``version``.

        Returns:
            The version's entry, to pass to :meth:`finish` (labels can be reused later).
        """
        entry = self.versions[version]
        entry.started += 1
        return entry

    def finish(self, entry: VersionEntry) -> bool:
        """Count one message of the version ``entry`` completed.

        Safe without the router lock (it takes only the entry's lock); the answer is then a
        hint to wake housekeeping, which decides under the router lock.

        Returns:
            Whether the version is still live, draining, and now has nothing in flight.
        """
        with entry.lock:
            entry.finished += 1
            idle = entry.finished >= entry.started
        return (idle and entry.state is VersionState.DRAINING
                and self.versions.get(entry.name) is entry)

    # -- conversations -----------------------------------------------------------------------

    def end_conversation(self, conversation_id: str) -> str | None:
        """End a conversation's pin; returns the version it was pinned to."""
        return self.pins.end(conversation_id)

    def move_conversations(self, src: str, dst: str | None) -> int:
        """Re-pin all conversations of ``src`` to ``dst`` (``None``: unpin).

        Raises:
            VersionNotFound: ``dst`` is not live.
        """
        if dst is not None:
            self.entry(dst)
        return self.pins.move(src, dst)

    # -- draining ----------------------------------------------------------------------------

    def drain(self, version: str, now: float, timeout: float | None) -> None:
        """Start draining: weight 0, no new conversations; pinned ones continue.

        Args:
            version: The version.
            now: The current time.
            timeout: Seconds until remaining conversations move to the primary version
                (``None``: wait for them however long they take; the pin TTL still applies).

        Raises:
            VersionNotFound: Not live.
        """
        entry = self.entry(version)
        self.set_weights({version: 0})
        if entry.state is VersionState.DRAINING:
            if timeout is not None:
                deadline = now + timeout
                if entry.drain_deadline is None or deadline < entry.drain_deadline:
                    entry.drain_deadline = deadline
            return
        entry.state = VersionState.DRAINING
        entry.drain_started = now
        entry.drain_deadline = None if timeout is None else now + timeout

    def undrain(self, version: str) -> None:
        """Make a draining version active again (weight stays 0 until set).

        Raises:
            VersionNotFound: Not live (already retired).
        """
        entry = self.entry(version)
        entry.state = VersionState.ACTIVE
        entry.drain_started = entry.drain_deadline = None
        entry.timed_out = False

    def poll(self, now: float) -> PollResult:
        """Expire idle conversations, time out drains and find versions to retire.

        Retired versions are removed from the table (no message can reach them any more).

        Args:
            now: The current time.

        Returns:
            What happened.
        """
        expired = 0 if self.pin_ttl is None else self.pins.expire(now - self.pin_ttl)
        timeouts: list[DrainTimeout] = []
        retired: list[Retirement] = []
        for entry in list(self.versions.values()):
            if entry.state is not VersionState.DRAINING:
                continue
            deadline = entry.drain_deadline
            if deadline is not None and now >= deadline and not entry.timed_out:
                entry.timed_out = True
                if self.pins.count(entry.name):
                    target = self.primary(exclude=entry.name)
                    moved = self.pins.move(entry.name, target)
                    timeouts.append(DrainTimeout(entry.name, moved, target))
            reason: str | None = None
            if entry.in_flight <= 0 and self.pins.count(entry.name) == 0:
                reason = "drain_timeout" if entry.timed_out else "drained"
            elif deadline is not None and now >= deadline + self.drain_grace:
                self.pins.move(entry.name, self.primary(exclude=entry.name))
                reason = "drain_grace_expired"
            if reason is not None:
                del self.versions[entry.name]
                retired.append(Retirement(entry.name, reason, max(entry.in_flight, 0)))
        if retired:
            self._assigner.set_weights(self.weights())
        return PollResult(tuple(retired), tuple(timeouts), expired)


__all__ = ["DrainTimeout", "PollResult", "Retirement", "RoutingTable", "VersionEntry"]
