"""The control-port client (a DEALER socket), used by the CLI, the tests and the load harness.

``call(op, args)`` sends one request and returns its result, raising the typed
:class:`~caxton.errors.CaxtonError` of an error reply, or :class:`NodeUnreachable` when no reply
comes in time. For throughput, :meth:`ControlClient.send_nowait` and :meth:`ControlClient.recv`
keep many requests in flight within a bounded window. A client is not thread-safe: use one
per thread.
"""

from __future__ import annotations

import itertools
import os
import time
from dataclasses import dataclass
from typing import Any

import msgpack
import zmq

from caxton.control.keys import CurveClientConfig, apply_client_curve
from caxton.control.protocol import DEFAULT_CONTROL_ENDPOINT, PROTOCOL_VERSION, RequestId
from caxton.errors import CaxtonError, ProtocolError

ENDPOINT_ENV = "CAXTON_ENDPOINT"
"""Environment variable overriding the default control endpoint."""


class NodeUnreachable(ConnectionError):
    """No reply from the node within the timeout (it is not running, or not reachable).

    Args:
        endpoint: The endpoint that was tried.
        timeout: The seconds waited.
        op: The op that went unanswered.

    Attributes:
        endpoint: The endpoint that was tried.
    """

    def __init__(self, endpoint: str, timeout: float, op: str | None = None) -> None:
        what = f"{op} got no reply" if op else "no reply"
        super().__init__(
            f"{what} from the node at {endpoint} within {timeout:g} s. Is a node running "
            f"there? Start one with `python3 -m caxton` (or point the client elsewhere with "
            f"--endpoint or ${ENDPOINT_ENV})."
        )
        self.endpoint = endpoint
        self.timeout = timeout
        self.op = op


class WindowFull(RuntimeError):
    """:meth:`ControlClient.send_nowait` was called with ``max_in_flight`` requests pending."""


@dataclass(frozen=True, slots=True)
class ReplyFrame:
    """One reply as received by :meth:`ControlClient.recv`.

    Attributes:
        id: The request id it answers.
        ok: Whether the op succeeded.
        result: The result when ``ok``.
        error: The typed error when not ``ok``.
    """

    id: RequestId
    ok: bool
    result: Any = None
    error: CaxtonError | None = None

    def unwrap(self) -> Any:
        """Return the result or raise the error.

        Returns:
            The result.

        Raises:
            CaxtonError: The node refused the request.
        """
        if self.error is not None:
            raise self.error
        return self.result


def default_endpoint() -> str:
    """Return ``$CAXTON_ENDPOINT`` or the default control endpoint."""
    return os.environ.get(ENDPOINT_ENV) or DEFAULT_CONTROL_ENDPOINT


def decode_reply(frame: bytes) -> ReplyFrame:
    """Decode one reply frame.

    Args:
        frame: The msgpack frame.

    Returns:
        The reply, with its error rebuilt as the most specific :class:`CaxtonError`.

    Raises:
        ProtocolError: The frame is not a well-formed reply.
    """
    try:
        msg = msgpack.unpackb(frame, raw=False)
    except Exception as exc:
        raise ProtocolError(f"the node sent a frame that is not msgpack: {exc}") from None
    if not isinstance(msg, dict) or "ok" not in msg or msg.get("v") != PROTOCOL_VERSION:
        raise ProtocolError(f"the node sent a malformed reply: {str(msg)[:200]}")
    if msg["ok"]:
        return ReplyFrame(id=msg.get("id"), ok=True, result=msg.get("result"))  # type: ignore[arg-type]
    err = msg.get("error") or {}
    if not isinstance(err, dict):
        raise ProtocolError(f"the node sent a malformed error: {str(err)[:200]}")
    error = CaxtonError.from_code(str(err.get("code", "INTERNAL")), str(err.get("message", "")),
                                  err.get("details") or [])
    return ReplyFrame(id=msg.get("id"), ok=False, error=error)  # type: ignore[arg-type]


class ControlClient:
    """A client of a node's control port.

    Args:
        endpoint: The control endpoint; default ``$CAXTON_ENDPOINT`` or
            ``tcp://127.0.0.1:7460``.
        timeout: Default seconds to wait for a reply.
        curve: CURVE key files, when the node requires CURVE.
        max_in_flight: Bound of the :meth:`send_nowait` window.
        context: A ZeroMQ context to use (default: the process-wide instance).

    Raises:
        KeyFileError: A CURVE key file is missing or wrong.
    """

    def __init__(
        self,
        endpoint: str | None = None,
        *,
        timeout: float = 5.0,
        curve: CurveClientConfig | None = None,
        max_in_flight: int = 1000,
        context: zmq.Context[zmq.Socket[bytes]] | None = None,
    ) -> None:
        self.endpoint = endpoint or default_endpoint()
        self.timeout = timeout
        self.max_in_flight = max_in_flight
        self._ctx = context or zmq.Context.instance()
        self._sock = self._ctx.socket(zmq.DEALER)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.SNDHWM, max(1000, max_in_flight * 2))
        self._sock.setsockopt(zmq.RCVHWM, max(1000, max_in_flight * 2))
        if curve is not None:
            try:
                apply_client_curve(self._sock, curve)
            except BaseException:
                self._sock.close(0)
                raise
        self._sock.connect(self.endpoint)
        self._ids = itertools.count(1)
        self._pending: dict[int, str] = {}
        self._stash: dict[int, ReplyFrame] = {}
        self._rcvtimeo = -1

    @property
    def in_flight(self) -> int:
        """Requests sent and not yet received."""
        return len(self._pending)

    def call(self, op: str, args: dict[str, Any] | None = None, *,
             timeout: float | None = None) -> Any:
        """Send one request and wait for its result.

        Args:
            op: The op name (see :data:`caxton.control.protocol.OPS`).
            args: The op's arguments.
            timeout: Seconds to wait; default the client's timeout.

        Returns:
            The op's result.

        Raises:
            CaxtonError: The node refused the request (the subclass matches the error code).
            NodeUnreachable: No reply within the timeout.
        """
        wait = self.timeout if timeout is None else timeout
        req_id = self._send(op, args, wait)
        deadline = time.monotonic() + wait
        while True:
            reply = self._stash.pop(req_id, None)
            if reply is not None:
                return reply.unwrap()
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._receive_one(remaining):
                self._pending.pop(req_id, None)
                raise NodeUnreachable(self.endpoint, wait, op)

    def send_nowait(self, op: str, args: dict[str, Any] | None = None) -> int:
        """Send a request without waiting for its reply.

        Args:
            op: The op name.
            args: The op's arguments.

        Returns:
            The request id (match it with :attr:`ReplyFrame.id` from :meth:`recv`).

        Raises:
            WindowFull: ``max_in_flight`` requests are already pending; :meth:`recv` first.
            NodeUnreachable: The socket cannot take the request within the timeout.
        """
        if len(self._pending) >= self.max_in_flight:
            raise WindowFull(f"{self.max_in_flight} requests already in flight")
        return self._send(op, args, self.timeout)

    def recv(self, timeout: float | None = None) -> ReplyFrame:
        """Receive the next reply of a request sent with :meth:`send_nowait`.

        Args:
            timeout: Seconds to wait; default the client's timeout.

        Returns:
            The reply (check ``ok`` or call ``unwrap()``).

        Raises:
            NodeUnreachable: No reply within the timeout.
        """
        wait = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + wait
        while not self._stash:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._receive_one(remaining):
                raise NodeUnreachable(self.endpoint, wait)
        key = next(iter(self._stash))
        return self._stash.pop(key)

    def close(self) -> None:
        """Close the socket (pending requests are abandoned)."""
        self._sock.close(0)

    def __enter__(self) -> ControlClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------------------------------

    def _send(self, op: str, args: dict[str, Any] | None, wait: float) -> int:
        req_id = next(self._ids)
        frame = msgpack.packb({"v": PROTOCOL_VERSION, "id": req_id, "op": op,
                               "args": args or {}}, use_bin_type=True)
        try:
            self._sock.send(frame, zmq.NOBLOCK)
        except zmq.Again:
            if not self._sock.poll(int(wait * 1000), zmq.POLLOUT):
                raise NodeUnreachable(self.endpoint, wait, op) from None
            self._sock.send(frame, zmq.NOBLOCK)
        self._pending[req_id] = op
        return req_id

    def _receive_one(self, remaining: float) -> bool:
        """Wait for one frame; stash it if it answers a pending request. False on timeout."""
        ms = max(1, int(remaining * 1000))
        if ms != self._rcvtimeo:  # a blocking recv with a timeout is cheaper than poll+recv
            self._sock.setsockopt(zmq.RCVTIMEO, ms)
            self._rcvtimeo = ms
        try:
            frame = self._sock.recv()
        except zmq.Again:
            return False
        reply = decode_reply(frame)
        if isinstance(reply.id, int) and reply.id in self._pending:
            del self._pending[reply.id]
            self._stash[reply.id] = reply
        return True


__all__ = [
    "ENDPOINT_ENV",
    "ControlClient",
    "NodeUnreachable",
    "ReplyFrame",
    "WindowFull",
    "decode_reply",
    "default_endpoint",
]
