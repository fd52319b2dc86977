"""The event stream: a PUB socket publishing ``[topic, msgpack payload]`` messages.

Topics are ``agent.<name>.<event>`` (``lifecycle``, ``rollout``, ``restart``, ``breaker``,
``log``, ``metrics``) and ``node.<event>``; subscribe to ``agent.<name>.`` (with the trailing
dot) for everything about one agent. The payload is an :class:`~caxton.control.protocol.Event`
map ``{topic, ts, agent, event, data}``.

The stream is best-effort, as PUB/SUB is: a subscriber that joins late or falls behind its
high-water mark misses events. Durable facts (state, reload status, logs) are always available
from the control port; the stream is for following them live.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

import msgpack
import zmq
import zmq.auth.thread

from caxton.control.keys import (
    CurveClientConfig,
    CurveServerConfig,
    apply_client_curve,
    apply_server_curve,
    check_bind_allowed,
)
from caxton.control.protocol import DEFAULT_EVENTS_ENDPOINT, Event


def agent_topic(agent: str, event: str) -> str:
    """Return the topic of an agent event.

    Args:
        agent: The agent's name.
        event: The event kind (``lifecycle``, ``rollout``, ``log``, ...).

    Returns:
        ``agent.<agent>.<event>``.
    """
    return f"agent.{agent}.{event}"


class EventPublisher:
    """Publishes events; :meth:`publish` is safe to call from any thread.

    Args:
        endpoint: Where to bind (``tcp://127.0.0.1:0`` picks a free port).
        curve: CURVE settings (subscribers must then be allow-listed).
        insecure: Allow a non-loopback bind without CURVE.
        sndhwm: Per-subscriber queue bound; beyond it events to that subscriber are dropped.

    Raises:
        InsecureBind: A public bind without CURVE or ``insecure``.
        zmq.ZMQError: The endpoint cannot be bound.
    """

    def __init__(self, endpoint: str = DEFAULT_EVENTS_ENDPOINT, *,
                 curve: CurveServerConfig | None = None, insecure: bool = False,
                 sndhwm: int = 10_000) -> None:
        check_bind_allowed(endpoint, curve=curve is not None, insecure=insecure)
        self._ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self._auth: zmq.auth.thread.ThreadAuthenticator | None = None
        self._sock = self._ctx.socket(zmq.PUB)
        self._lock = threading.Lock()
        try:
            self._sock.setsockopt(zmq.LINGER, 0)
            self._sock.setsockopt(zmq.SNDHWM, sndhwm)
            if curve is not None:
                self._auth = zmq.auth.thread.ThreadAuthenticator(self._ctx)
                self._auth.start()
                self._auth.configure_curve(domain="*", location=str(curve.allow_dir))
                apply_server_curve(self._sock, curve)
            self._sock.bind(endpoint)
        except BaseException:
            self.close()
            raise
        last = self._sock.getsockopt(zmq.LAST_ENDPOINT)
        self.endpoint: str = last.decode() if isinstance(last, bytes) else str(last)
        """The bound endpoint (with the real port)."""
        self.published = 0
        """Events handed to the socket."""
        self._closed = False

    def publish(self, topic: str, event: str, data: dict[str, Any] | None = None, *,
                agent: str | None = None) -> None:
        """Publish one event (from any thread; never blocks).

        Args:
            topic: The full topic, e.g. ``agent.echo.lifecycle`` or ``node.started``.
            event: The event kind.
            data: Event fields (msgpack-serialisable).
            agent: The agent it concerns, if any.
        """
        payload = msgpack.packb({"topic": topic, "ts": time.time(), "agent": agent,
                                 "event": event, "data": data or {}}, use_bin_type=True,
                                default=str)
        with self._lock:
            if self._closed:
                return
            try:
                self._sock.send_multipart([topic.encode(), payload], zmq.NOBLOCK)
                self.published += 1
            except zmq.Again:  # pragma: no cover - PUB drops rather than raising
                pass

    def publish_agent(self, agent: str, event: str, /, **data: Any) -> None:
        """Publish an agent event on ``agent.<agent>.<event>``.

        Args:
            agent: The agent's name.
            event: The event kind (``lifecycle``, ``rollout``, ``restart``, ``breaker``,
                ``log``, ``metrics``).
            **data: Event fields (may include keys named ``agent`` or ``event``, as
                structlog records do).
        """
        self.publish(agent_topic(agent, event), event, data, agent=agent)

    def publish_node(self, event: str, /, **data: Any) -> None:
        """Publish a node event on ``node.<event>``.

        Args:
            event: The event kind (e.g. ``started``, ``stopping``).
            **data: Event fields.
        """
        self.publish(f"node.{event}", event, data)

    def close(self) -> None:
        """Close the socket (idempotent)."""
        with self._lock:
            self._closed = True
            self._sock.close(0)
        if self._auth is not None:
            self._auth.stop()
            self._auth = None
        if not self._ctx.closed:
            self._ctx.term()

    def __enter__(self) -> EventPublisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EventSubscriber:
    """Receives events whose topic starts with one of ``topics``.

    Args:
        endpoint: The node's events endpoint.
        topics: Topic prefixes (e.g. ``["agent.echo."]``); empty = everything.
        curve: CURVE key files, when the stream requires CURVE.
        context: A ZeroMQ context (default: the process-wide instance).

    Raises:
        KeyFileError: A CURVE key file is missing or wrong.
    """

    def __init__(self, endpoint: str = DEFAULT_EVENTS_ENDPOINT,
                 topics: Iterable[str] = (), *, curve: CurveClientConfig | None = None,
                 context: zmq.Context[zmq.Socket[bytes]] | None = None) -> None:
        self.endpoint = endpoint
        self._sock = (context or zmq.Context.instance()).socket(zmq.SUB)
        self._sock.setsockopt(zmq.LINGER, 0)
        if curve is not None:
            try:
                apply_client_curve(self._sock, curve)
            except BaseException:
                self._sock.close(0)
                raise
        prefixes = list(topics) or [""]
        for prefix in prefixes:
            self._sock.setsockopt(zmq.SUBSCRIBE, prefix.encode())
        self._sock.connect(endpoint)

    def recv(self, timeout: float | None = None) -> Event | None:
        """Receive the next event.

        Args:
            timeout: Seconds to wait; ``None`` waits forever.

        Returns:
            The event, or ``None`` on timeout.
        """
        ms = None if timeout is None else max(0, int(timeout * 1000))
        while True:
            if not self._sock.poll(ms):
                return None
            frames = self._sock.recv_multipart()
            if len(frames) != 2:
                continue
            try:
                payload = msgpack.unpackb(frames[1], raw=False)
                return Event.model_validate(payload)
            except Exception:
                continue

    def __iter__(self) -> Iterator[Event]:
        """Yield events forever (stop with Ctrl-C or by breaking out)."""
        while True:
            event = self.recv(None)
            if event is not None:
                yield event

    def close(self) -> None:
        """Close the socket."""
        self._sock.close(0)

    def __enter__(self) -> EventSubscriber:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["EventPublisher", "EventSubscriber", "agent_topic"]
