"""The router of one agent: routes each message to a version instance without an extra hop.

Hot path: :meth:`Router.route` takes the router lock for a few microseconds to pick the version
(pin, weight), count the message in flight and put it in the instance's inbox, then returns the
:class:`~caxton.routing.futures.ReplyFuture`; nothing waits. The future's done callback
(run on the instance's thread) records metrics and the completion.

Control operations (add, weights, switch, drain, shadow) take the same lock, so each is atomic
with respect to routing. A small housekeeping thread expires idle conversations, times drains
out and stops retired instances (outside the lock, so stopping never stalls routing).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from functools import partial

import structlog

from caxton.errors import CaxtonError, ShuttingDown, VersionNotFound
from caxton.messages import Message, Performative
from caxton.routing.futures import ReplyFuture, as_caxton_error
from caxton.routing.handle import VersionHandle
from caxton.routing.metrics import MetricsSnapshot, VersionMetrics
from caxton.routing.status import RouterStatus, ShadowStatus, VersionState, VersionStatus
from caxton.routing.table import PollResult, RoutingTable, VersionEntry

_log = structlog.get_logger("caxton.routing")

Clock = Callable[[], float]
Comparator = Callable[[ReplyFuture, ReplyFuture], bool]
"""``compare(primary_reply, shadow_reply) -> agree``; both futures are complete."""


def replies_agree(primary: ReplyFuture, shadow: ReplyFuture) -> bool:
    """Default parallel-run comparator: same error code, or same performative and content.

    Args:
        primary: The returned version's completed reply.
        shadow: The shadow version's completed reply.

    Returns:
        Whether the two outcomes agree.
    """
    if primary.error is not None or shadow.error is not None:
        return (primary.error is not None and shadow.error is not None
                and primary.error.code == shadow.error.code)
    a, b = primary.value, shadow.value
    if not isinstance(a, Message) or not isinstance(b, Message):
        return a == b
    return a.performative == b.performative and a.content == b.content


class _ShadowRun:
    """Counts agreement between a primary and a shadow version (own lock: off the hot path)."""

    def __init__(self, primary: str, shadow: str, compare: Comparator) -> None:
        self.primary = primary
        self.shadow = shadow
        self.compare = compare
        self.lock = threading.Lock()
        self.agreed = 0
        self.disagreed = 0
        self.last: str | None = None

    def status(self) -> ShadowStatus:
        with self.lock:
            return ShadowStatus(self.primary, self.shadow, self.agreed, self.disagreed, self.last)


class _Pair:
    """Joins one message's primary and shadow replies, then compares them."""

    __slots__ = ("_lock", "_pending", "_run", "primary", "shadow")

    def __init__(self, run: _ShadowRun, primary: ReplyFuture, shadow: ReplyFuture) -> None:
        self._run = run
        self._lock = threading.Lock()
        self._pending = 2
        self.primary = primary
        self.shadow = shadow

    def done(self, _: ReplyFuture) -> None:
        with self._lock:
            self._pending -= 1
            if self._pending:
                return
        try:
            agree = self._run.compare(self.primary, self.shadow)
        except Exception as exc:
            agree = False
            _log.warning("routing.shadow_compare_failed", error=repr(exc))
        with self._run.lock:
            if agree:
                self._run.agreed += 1
            else:
                self._run.disagreed += 1
                self._run.last = (f"primary={self.primary.error or self.primary.value!r} "
                                  f"shadow={self.shadow.error or self.shadow.value!r}")[:300]


class Router:
    """Routes one agent's messages across its live version instances.

    Args:
        agent: The agent name.
        seed: Seed of the weighted assignment (same seed, same assignments).
        clock: Monotonic clock in seconds (injectable for tests).
        pin_ttl: Idle seconds after which a conversation's pin ends (``None``: never).
        drain_grace: Seconds after a drain timeout to wait for in-flight messages.
        housekeeping_interval: Seconds between housekeeping passes; ``None`` starts no
            thread (call :meth:`poll` yourself, e.g. with a fake clock in tests).
        stop_timeout: Seconds to wait for a retired instance to stop.
        retired_kept: How many stopped versions status still shows.
    """

    def __init__(
        self,
        agent: str,
        *,
        seed: int = 0,
        clock: Clock = time.monotonic,
        pin_ttl: float | None = 1800.0,
        drain_grace: float = 5.0,
        housekeeping_interval: float | None = 0.05,
        stop_timeout: float = 10.0,
        retired_kept: int = 10,
    ) -> None:
        self.agent = agent
        self._clock = clock
        self._lock = threading.RLock()
        self._table = RoutingTable(agent, seed=seed, pin_ttl=pin_ttl, drain_grace=drain_grace)
        self._handles: dict[str, VersionHandle] = {}
        self._metrics: dict[str, VersionMetrics] = {}
        self._stopped: dict[str, threading.Event] = {}
        self._retired: deque[VersionStatus] = deque(maxlen=retired_kept)
        self._shadow: _ShadowRun | None = None
        self._stop_timeout = stop_timeout
        self._closed = False
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None
        if housekeeping_interval is not None:
            self._thread = threading.Thread(
                target=self._housekeep, args=(housekeeping_interval,),
                name=f"router-{agent}", daemon=True,
            )
            self._thread.start()

    # -- hot path ----------------------------------------------------------------------------

    def route(self, message: Message) -> ReplyFuture:
        """Route a message to a version instance without waiting.

        A pinned conversation goes to its version; a new conversation is assigned by weight
        and pinned; a message without ``conversation_id`` is routed by weight only.

        Args:
            message: The message.

        Returns:
            The reply future: completes exactly once with the reply or a typed error
            (:class:`AgentUnavailable` when no version takes traffic, :class:`ShuttingDown`
            after :meth:`close`, or whatever the instance fails with).
        """
        reply = ReplyFuture()
        start = self._clock()
        error: CaxtonError | None = None
        shadow_error: tuple[ReplyFuture, CaxtonError] | None = None
        with self._lock:
            if self._closed:
                error = ShuttingDown(f"router of agent {self.agent!r} is closed")
            else:
                try:
                    name = self._table.choose(message.conversation_id, start)
                except CaxtonError as exc:
                    error = exc
                else:
                    entry = self._table.begin(name)
                    metrics = self._metrics[name]
                    reply.served_by = name
                    # a partial, not a closure: cheaper to make (once per message); appended
                    # without add_done_callback's lock, as no other thread has the future yet
                    reply._callbacks.append(partial(self._completed, entry, metrics, start))
                    try:
                        self._handles[name].deliver(message, reply)
                    except Exception as exc:
                        error = as_caxton_error(exc)
                    run = self._shadow
                    if run is not None and run.primary == name and error is None:
                        shadow_error = self._deliver_shadow(run, message, reply, start)
        if error is not None:
            reply.fail(error)
        if shadow_error is not None:
            shadow_error[0].fail(shadow_error[1])
        return reply

    def _deliver_shadow(self, run: _ShadowRun, message: Message, primary: ReplyFuture,
                        start: float) -> tuple[ReplyFuture, CaxtonError] | None:
        if run.shadow not in self._handles:
            return None
        sreply = ReplyFuture()
        sreply.served_by = run.shadow
        entry = self._table.begin(run.shadow)
        metrics = self._metrics[run.shadow]
        sreply.add_done_callback(partial(self._completed, entry, metrics, start))
        pair = _Pair(run, primary, sreply)
        primary.add_done_callback(pair.done)
        sreply.add_done_callback(pair.done)
        try:
            self._handles[run.shadow].deliver(message, sreply)
        except Exception as exc:
            return sreply, as_caxton_error(exc)
        return None

    def _completed(self, entry: VersionEntry, metrics: VersionMetrics, start: float,
                   reply: ReplyFuture) -> None:
        # no router lock: the metrics and the entry's completion count have their own small
        # locks, so an instance finishing a message never contends with route()
        now = self._clock()
        # a reply is a success unless it is an error or a FAILURE message
        value = reply.value
        ok = reply.error is None and not (
            isinstance(value, Message) and value.performative is Performative.FAILURE)
        metrics.record(now, now - start, ok)
        if self._table.finish(entry):
            self._wake.set()

    # -- versions and weights ----------------------------------------------------------------

    def add_version(self, handle: VersionHandle, weight: int = 0) -> None:
        """Add a started version instance.

        Args:
            handle: The instance.
            weight: Its initial weight (0: reachable only by pinned conversations/shadow).

        Raises:
            InvalidArgument: Its label is already live, or the weight is invalid.
            ShuttingDown: The router is closed.
        """
        with self._lock:
            if self._closed:
                raise ShuttingDown(f"router of agent {self.agent!r} is closed")
            self._table.add(handle.version, weight)
            self._handles[handle.version] = handle
            self._metrics[handle.version] = VersionMetrics()
            self._stopped[handle.version] = threading.Event()
            weights = self._table.weights()
        # debug: a deploy's lifecycle transition and a reload's rollout events already say
        # it at info (one record fewer per deploy: ~50 us of the node's CPU each)
        _log.debug("routing.version_added", agent=self.agent, version=handle.version,
                   weights=weights)

    def set_weights(self, weights: Mapping[str, int]) -> None:
        """Change the weights of the named versions atomically.

        Args:
            weights: ``{version: weight}``; unnamed versions keep their weights.

        Raises:
            VersionNotFound: A named version is not live.
            InvalidArgument: A weight is invalid, or positive for a draining version.
        """
        with self._lock:
            self._table.set_weights(weights)
            current = self._table.weights()
        _log.info("routing.weights_changed", agent=self.agent, weights=current)

    def switch(self, version: str, *, move_conversations: bool = True) -> int:
        """Send all traffic to ``version`` at once (blue-green switch and rollback).

        Every other live version gets weight 0 (active ones stay warm, draining ones keep
        draining); with ``move_conversations`` their pinned conversations move too, so every
        message routed after this returns goes to ``version``. Messages already delivered
        complete where they are.

        Args:
            version: The version to serve everything.
            move_conversations: Re-pin other versions' conversations to ``version``.

        Returns:
            How many conversations moved.

        Raises:
            VersionNotFound: ``version`` is not live.
            InvalidArgument: ``version`` is draining.
        """
        moved = 0
        with self._lock:
            others = [n for n in self._table.versions if n != version]
            self._table.set_weights({version: 100, **dict.fromkeys(others, 0)})
            if move_conversations:
                for other in others:
                    moved += self._table.move_conversations(other, version)
        _log.info("routing.switched", agent=self.agent, version=version, moved=moved)
        return moved

    def move_conversations(self, src: str, dst: str | None) -> int:
        """Re-pin every conversation of ``src`` to ``dst`` (``None``: unpin them).

        Returns:
            How many conversations moved.

        Raises:
            VersionNotFound: ``dst`` is not live.
        """
        with self._lock:
            moved = self._table.move_conversations(src, dst)
        _log.info("routing.conversations_moved", agent=self.agent, version=src, to=dst,
                  moved=moved)
        return moved

    def end_conversation(self, conversation_id: str) -> bool:
        """End a conversation: its pin is dropped (a draining version may then retire).

        Returns:
            Whether the conversation was pinned.
        """
        with self._lock:
            version = self._table.end_conversation(conversation_id)
        if version is not None:
            self._wake.set()
        return version is not None

    def drain(self, version: str, timeout: float | None = None) -> None:
        """Drain a version: no new conversations; pinned ones and queued messages finish.

        When it has no pinned conversation and nothing in flight it is stopped. After
        ``timeout`` its remaining conversations move to the active version with the highest
        weight (logged as ``routing.drain_timeout``).

        Args:
            version: The version.
            timeout: Seconds before remaining conversations move (``None``: no limit).

        Raises:
            VersionNotFound: Not live.
        """
        with self._lock:
            self._table.drain(version, self._clock(), timeout)
        _log.info("routing.drain_started", agent=self.agent, version=version, timeout=timeout)
        self._wake.set()

    def undrain(self, version: str) -> None:
        """Cancel a drain (e.g. to abort a gradual reload); the version takes traffic again
        once it gets a weight.

        Raises:
            VersionNotFound: Not live (already retired).
        """
        with self._lock:
            self._table.undrain(version)
        _log.info("routing.drain_cancelled", agent=self.agent, version=version)

    def retire(self, version: str, *, to: str | None = None) -> None:
        """Take a version out at once: its conversations move, in-flight messages finish.

        Args:
            version: The version to stop.
            to: Where its conversations go (default: the primary active version).

        Raises:
            VersionNotFound: Not live.
        """
        with self._lock:
            self._table.entry(version)
            target = to if to is not None else self._table.primary(exclude=version)
            self._table.move_conversations(version, target)
            self._table.drain(version, self._clock(), 0.0)
        _log.info("routing.retire", agent=self.agent, version=version, to=target)
        self._wake.set()

    def wait_stopped(self, version: str, timeout: float | None = None) -> bool:
        """Wait until a version (added to this router) has retired and stopped.

        Returns:
            Whether it stopped within ``timeout``.

        Raises:
            VersionNotFound: The version was never added.
        """
        with self._lock:
            event = self._stopped.get(version)
        if event is None:
            raise VersionNotFound(f"agent {self.agent!r} never had version {version!r}")
        return event.wait(timeout)

    # -- parallel (shadow) runs --------------------------------------------------------------

    def start_shadow(self, primary: str, shadow: str,
                     compare: Comparator = replies_agree) -> None:
        """Also run every message routed to ``primary`` on ``shadow`` and compare replies.

        The caller always gets the primary's reply; the shadow's is only compared.

        Raises:
            VersionNotFound: Either version is not live.
        """
        with self._lock:
            self._table.entry(primary)
            self._table.entry(shadow)
            self._shadow = _ShadowRun(primary, shadow, compare)
        _log.info("routing.shadow_started", agent=self.agent, version=shadow, primary=primary)

    def stop_shadow(self) -> ShadowStatus | None:
        """Stop the parallel run; returns its final counts (``None`` if none ran)."""
        with self._lock:
            run, self._shadow = self._shadow, None
        return None if run is None else run.status()

    # -- signals the node feeds --------------------------------------------------------------

    def record_restart(self, version: str) -> None:
        """Record that ``version``'s instance restarted (ignored if not live)."""
        with self._lock:
            metrics = self._metrics.get(version)
        if metrics is not None:
            metrics.record_restart(self._clock())

    def record_breaker_trip(self, version: str) -> None:
        """Record that ``version``'s circuit breaker tripped (ignored if not live)."""
        with self._lock:
            metrics = self._metrics.get(version)
        if metrics is not None:
            metrics.record_breaker_trip(self._clock())

    def record_fuel(self, version: str, fuel: float) -> None:
        """Record the fuel one message of ``version`` consumed (ignored if not live)."""
        # no router lock (once per message, on the instance's thread): one dict read is
        # atomic, and a version retired just now only gets a sample nobody reads
        metrics = self._metrics.get(version)
        if metrics is not None:
            metrics.record_fuel(self._clock(), fuel)

    # -- views -------------------------------------------------------------------------------

    def now(self) -> float:
        """The router's clock."""
        return self._clock()

    def handle(self, version: str) -> VersionHandle:
        """Return a live version's handle.

        Raises:
            VersionNotFound: Not live.
        """
        with self._lock:
            self._table.entry(version)
            return self._handles[version]

    def versions(self) -> list[str]:
        """Labels of the live versions, in the order they were added."""
        with self._lock:
            return list(self._table.versions)

    def weights(self) -> dict[str, int]:
        """``{version: weight}`` of the live versions."""
        with self._lock:
            return self._table.weights()

    def metrics(self, version: str, since: float | None = None) -> MetricsSnapshot:
        """A live version's metrics over the window starting at ``since``.

        Raises:
            VersionNotFound: Not live.
        """
        with self._lock:
            self._table.entry(version)
            metrics = self._metrics[version]
        return metrics.snapshot(since)

    def pinned_version(self, conversation_id: str) -> str | None:
        """The version a conversation is pinned to, or ``None``."""
        with self._lock:
            return self._table.pins.peek(conversation_id)

    def status(self, since: float | None = None) -> RouterStatus:
        """A consistent snapshot (metrics over the window starting at ``since``)."""
        with self._lock:
            rows = [(e.name, e.state, e.weight, e.in_flight, self._table.pins.count(e.name),
                     self._metrics[e.name], e.drain_deadline)
                    for e in self._table.versions.values()]
            conversations = len(self._table.pins)
            run = self._shadow
            now = self._clock()
            retired = tuple(self._retired)
        # summarising samples (a sort) happens outside the router lock: routing goes on
        live = tuple(VersionStatus(name, state, weight, in_flight, pinned,
                                   metrics.snapshot(since), deadline)
                     for name, state, weight, in_flight, pinned, metrics, deadline in rows)
        return RouterStatus(self.agent, live + retired, conversations,
                            None if run is None else run.status(), now)

    # -- housekeeping ------------------------------------------------------------------------

    def poll(self) -> PollResult:
        """Run one housekeeping pass: expire pins, time out drains, stop retired versions.

        Returns:
            What the pass did.
        """
        to_stop: list[tuple[VersionHandle, threading.Event]] = []
        with self._lock:
            if self._closed:  # close() stops every instance itself
                return PollResult()
            result = self._table.poll(self._clock())
            for r in result.retired:
                to_stop.append((self._handles.pop(r.version), self._stopped[r.version]))
                metrics = self._metrics.pop(r.version)
                self._retired.append(VersionStatus(
                    r.version, VersionState.STOPPED, 0, r.in_flight, 0, metrics.snapshot(),
                    None, r.reason))
        for t in result.timeouts:
            _log.warning("routing.drain_timeout", agent=self.agent, version=t.version,
                         moved=t.moved, to=t.moved_to)
        if result.expired_conversations:
            _log.info("routing.conversations_expired", agent=self.agent,
                      count=result.expired_conversations)
        for r, (handle, event) in zip(result.retired, to_stop, strict=True):
            _log.info("routing.version_retired", agent=self.agent, version=r.version,
                      reason=r.reason, in_flight=r.in_flight)
            handle.stop(self._stop_timeout)
            event.set()
        return result

    def _housekeep(self, interval: float) -> None:
        while not self._closing.is_set():
            self._wake.wait(interval)
            self._wake.clear()
            if self._closing.is_set():
                break
            try:
                self.poll()
            except Exception as exc:  # keep housekeeping alive whatever a handle does
                _log.error("routing.housekeeping_failed", agent=self.agent, error=repr(exc))

    def close(self, timeout: float | None = None) -> None:
        """Refuse new messages, stop housekeeping and stop every live instance.

        Messages already delivered are handled before each instance stops.

        Args:
            timeout: Seconds to wait for each instance to stop.
        """
        with self._lock:
            self._closed = True
            handles = list(self._handles.items())
            self._handles.clear()
            events = dict(self._stopped)
        self._closing.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        for name, handle in handles:
            handle.stop(self._stop_timeout if timeout is None else timeout)
            events[name].set()
        _log.info("routing.closed", agent=self.agent)


__all__ = ["Comparator", "Router", "replies_agree"]
