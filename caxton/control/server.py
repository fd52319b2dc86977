"""The control port: a ZeroMQ ROUTER socket dispatching protocol ops to registered handlers.

One thread owns the ROUTER socket (ZeroMQ sockets are not thread-safe). It reads frames,
validates them against :mod:`caxton.control.protocol`, and calls the op's handler:

* ``blocking=False`` handlers run inline on the socket thread. They must return at once —
  a value, or a future-like object (anything with ``add_done_callback``, such as a
  :class:`concurrent.futures.Future`; or a pykka-style future with ``get(timeout)``, which a
  waiter thread resolves). Use this for the hot path (``message.send``).
* ``blocking=True`` handlers (the default) run in a bounded worker pool, so a slow handler
  never delays other clients.
* ``replies=True`` handlers run inline too, but take ``(args, reply)`` and complete the
  :class:`Reply` themselves, from any thread (``reply.ok(value)`` or ``reply.fail(error)``;
  the first call wins). No future is made per request: this is the leanest path, and the one
  ``message.send`` takes.

Completed replies are handed back to the socket thread through a queue and a wake-up socket
pair; only the socket thread ever sends. Replies use ``ROUTER_MANDATORY``: a peer at its
high-water mark keeps its replies in a backlog that is retried (never silently dropped); a
peer that disconnected is logged and counted as undeliverable.
"""

from __future__ import annotations

import collections
import errno
import functools
import os
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, is_dataclass
from enum import Enum
from typing import Any, Protocol, TypeVar

import msgpack
import structlog
import zmq
import zmq.auth.thread
from pydantic import BaseModel, ValidationError

from caxton.control.keys import CurveServerConfig, apply_server_curve, check_bind_allowed
from caxton.control.protocol import (
    DEFAULT_CONTROL_ENDPOINT,
    DEFAULT_MAX_MESSAGE_SIZE,
    OPS,
    PROTOCOL_VERSION,
    error_reply,
    invalid_argument_from,
)
from caxton.errors import CaxtonError, ErrorCode

log = structlog.get_logger("caxton.control.server")

Handler = Callable[[Any], Any]
"""A handler takes the op's validated args model and returns a result or a future of one."""

ReplyingHandler = Callable[[Any, "Reply"], None]
"""A ``replies=True`` handler: takes the args model and the :class:`Reply` it completes."""

F = TypeVar("F", bound=Handler)

_ENVELOPE_KEYS = frozenset({"v", "id", "op", "args"})
_INVALID_OP = "<invalid>"
_EMPTY: dict[str, Any] = {}
_SNDMORE_NOBLOCK = int(zmq.SNDMORE | zmq.NOBLOCK)
_NOBLOCK = int(zmq.NOBLOCK)
_local = threading.local()


def _encode_default(value: Any) -> Any:
    """msgpack fallback: pydantic models, dataclasses, enums, tuples/sets, messages."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="python", exclude_none=False)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    to_wire = getattr(value, "to_wire", None)
    if callable(to_wire):
        return to_wire()
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    raise TypeError(f"cannot encode {type(value).__name__} for the control protocol")


def pack(value: Any) -> bytes:
    """Encode a value as one msgpack frame (with the control protocol's type fallbacks).

    Args:
        value: A map, list, scalar, pydantic model, dataclass or enum.

    Returns:
        The frame.

    Raises:
        TypeError: A value inside has no msgpack encoding.
    """
    return msgpack.packb(value, use_bin_type=True, default=_encode_default)


class LocalExecutor(Protocol):
    """Work the socket thread may run itself (see :class:`supervisors.Dispatcher`).

    The socket thread calls :meth:`adopt` once, :meth:`run_pending` after each request it
    handled (before it blocks again), and :meth:`release` when it ends.
    """

    def adopt(self) -> None: ...

    def run_pending(self) -> int: ...

    def release(self) -> None: ...


@dataclass(slots=True)
class _Route:
    handler: Callable[..., Any]
    blocking: bool
    args_model: type[BaseModel]
    replies: bool = False


class Reply:
    """The reply to one request: who gets it, and the way to send it (any thread, once).

    A ``replies=True`` handler receives it and completes it with :meth:`ok` or :meth:`fail`;
    the first of them wins and later ones do nothing (so a deadline and the real reply may
    race). The port also keeps one per request for its own replies.

    Attributes:
        envelope: The routing frames to send the reply back on.
        req_id: The request's ``id``.
        op: The op name (``"<invalid>"`` until the request is known good).
        t0: ``perf_counter_ns()`` when the port read the request.
        watch: A free slot for the handler's bookkeeping (the node keeps the key of the
            deadline that watches the reply here).
    """

    __slots__ = ("_complete", "_open", "envelope", "op", "req_id", "t0", "watch")

    def __init__(self, envelope: list[bytes], req_id: Any, op: str, t0: int,
                 complete: Callable[[Reply, bytes], None] | None = None) -> None:
        self.envelope = envelope
        self.req_id = req_id
        self.op = op
        self.t0 = t0
        self.watch: Any = None
        self._complete = complete
        self._open = [True]  # popped by whoever completes it: ``list.pop`` is atomic

    def _claim(self) -> bool:
        try:
            self._open.pop()
        except IndexError:
            return False
        return True

    @property
    def done(self) -> bool:
        """Whether the reply was completed (sent or queued to be sent)."""
        return not self._open

    def ok(self, value: Any) -> bool:
        """Reply with a result (packed at once, sent by the port's thread).

        Args:
            value: The result (map, model, dataclass, scalar).

        Returns:
            Whether this call completed the reply (``False``: it was already complete).
        """
        try:  # _claim(), inlined: once per message
            self._open.pop()
        except IndexError:
            return False
        complete = self._complete
        assert complete is not None, "only a handler's Reply can be completed"
        complete(self, _pack_ok(self, value))
        return True

    def fail(self, error: BaseException) -> bool:
        """Reply with the typed error for ``error`` (``INTERNAL`` for an untyped one).

        Args:
            error: A :class:`~caxton.errors.CaxtonError`, a timeout, or any exception.

        Returns:
            Whether this call completed the reply.
        """
        if not self._claim():
            return False
        complete = self._complete
        assert complete is not None, "only a handler's Reply can be completed"
        complete(self, pack(_error_for(self, error)))
        return True


class LatencyRecorder:
    """Receipt-to-reply latency per op: a count and a bounded window of recent samples.

    Args:
        window: How many recent samples per op to keep for percentiles.
    """

    def __init__(self, window: int = 4096) -> None:
        self._window = window
        self._samples: dict[str, collections.deque[int]] = {}
        self._counts: dict[str, int] = collections.defaultdict(int)

    def record(self, op: str, ns: int) -> None:
        """Record one sample (called only from the socket thread).

        Args:
            op: The op name.
            ns: Latency in nanoseconds.
        """
        dq = self._samples.get(op)
        if dq is None:
            dq = self._samples[op] = collections.deque(maxlen=self._window)
        dq.append(ns)
        self._counts[op] += 1

    def snapshot(self) -> dict[str, dict[str, float]]:
        """Return per-op figures.

        Returns:
            ``{op: {"count", "p50_us", "p99_us", "max_us"}}`` over the recent window.
        """
        out: dict[str, dict[str, float]] = {}
        for op, dq in list(self._samples.items()):
            data = sorted(dq)
            if not data:
                continue
            n = len(data)
            out[op] = {
                "count": float(self._counts[op]),
                "p50_us": data[n // 2] / 1000,
                "p99_us": data[min(n - 1, (n * 99) // 100)] / 1000,
                "max_us": data[-1] / 1000,
            }
        return out


class ControlServer:
    """The node's control port.

    Args:
        endpoint: Where to bind (``tcp://127.0.0.1:0`` picks a free port; see
            :attr:`endpoint` after :meth:`start`).
        curve: CURVE settings; ``None`` = no encryption (loopback only unless ``insecure``).
        insecure: Allow a non-loopback bind without CURVE.
        max_message_size: Larger frames are refused by ZeroMQ (``MAXMSGSIZE``).
        workers: Threads of the pool running blocking handlers (and waiting on pykka-style
            futures).
        max_in_flight: Requests accepted but not yet answered; beyond it requests get a
            ``QUEUE_FULL`` reply at once.
        future_timeout: Seconds a waiter thread waits on a pykka-style future before replying
            ``TIMEOUT``.
        sndhwm: Per-peer send high-water mark of the ROUTER socket.
        executor: Lets the socket thread run quick actors that a non-blocking handler made
            runnable (a WASM agent's guest call for ``message.send``) itself, right after the
            request, instead of handing them to another thread; ``None`` = never.
        max_batch: Most requests read per turn of the socket loop before their work runs
            and their replies are sent, once the port is saturated (adaptive, see
            :meth:`_run`); ``1`` = always answer each request before reading the next.
        eager_run: Requests answered one by one in a row, each finding the next already
            queued, after which the port counts as saturated and starts batching.

    Raises:
        InsecureBind: (from :meth:`start`) a public bind without CURVE or ``insecure``.
    """

    def __init__(
        self,
        endpoint: str = DEFAULT_CONTROL_ENDPOINT,
        *,
        curve: CurveServerConfig | None = None,
        insecure: bool = False,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        workers: int = 16,
        max_in_flight: int = 10_000,
        future_timeout: float = 600.0,
        sndhwm: int = 10_000,
        executor: LocalExecutor | None = None,
        max_batch: int = 16,
        eager_run: int = 64,
    ) -> None:
        self._requested_endpoint = endpoint
        self._curve = curve
        self._insecure = insecure
        self._max_message_size = max_message_size
        self._workers = workers
        self._max_in_flight = max_in_flight
        self._future_timeout = future_timeout
        self._sndhwm = sndhwm
        self._executor = executor
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch!r}")
        self._max_batch = max_batch
        if eager_run < 1:
            raise ValueError(f"eager_run must be >= 1, got {eager_run!r}")
        self._eager_run = eager_run
        self._routes: dict[str, _Route] = {}
        self._done: collections.deque[tuple[Reply, bytes]] = collections.deque()
        self._wake_pending = False
        self._idle = False
        self._stopping = False
        self._stopped = threading.Event()
        self._drain_deadline = 0.0
        self._in_flight = 0
        self._backlog: collections.deque[list[bytes]] = collections.deque()
        self._thread: threading.Thread | None = None
        self._ctx: zmq.Context[zmq.Socket[bytes]] | None = None
        self._sock: zmq.Socket[bytes] | None = None
        self._auth: zmq.auth.thread.ThreadAuthenticator | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._wake_sock: zmq.Socket[bytes] | None = None
        self._wake_lock = threading.Lock()
        self._wake_id = b"caxton-wake-" + os.urandom(16).hex().encode()
        self._endpoint = endpoint
        self._complete_bound = self._complete  # made once, not per request
        self.latency = LatencyRecorder()
        """Receipt-to-reply latency per op (see :meth:`LatencyRecorder.snapshot`)."""
        self.undeliverable = 0
        """Replies that could not be sent because their client had disconnected."""

    # ---------------------------------------------------------------- registration

    def register(self, op: str, handler: Handler | ReplyingHandler, *, blocking: bool = True,
                 replies: bool = False) -> None:
        """Register the handler of one op.

        Args:
            op: A name from :data:`caxton.control.protocol.OPS`.
            handler: Called with the validated args model (e.g. ``AgentsDeployArgs``);
                returns the result (map, model, dataclass, scalar) or a future-like of it,
                or raises :class:`~caxton.errors.CaxtonError` to refuse. With ``replies``
                it is called as ``handler(args, reply)`` and completes the :class:`Reply`.
            blocking: ``True`` runs it in the worker pool; ``False`` runs it inline on the
                socket thread (it must not block; return a future for slow work).
            replies: The handler completes a :class:`Reply` itself (inline, like
                ``blocking=False``; it may complete it later from any thread). An exception
                it raises before completing it becomes the error reply.

        Raises:
            ValueError: ``op`` is not a protocol op, or ``replies`` with ``blocking``.
        """
        spec = OPS.get(op)
        if spec is None:
            raise ValueError(f"unknown op {op!r}; ops are defined in caxton.control.protocol")
        if replies and blocking:
            raise ValueError(f"op {op!r}: a replies=True handler runs inline on the socket "
                             "thread; register it with blocking=False")
        self._routes[op] = _Route(handler, blocking, spec.args, replies)

    def handler(self, op: str, *, blocking: bool = True) -> Callable[[F], F]:
        """Decorator form of :meth:`register`.

        Args:
            op: The op name.
            blocking: See :meth:`register`.

        Returns:
            A decorator registering the function and returning it unchanged.
        """

        def deco(fn: F) -> F:
            self.register(op, fn, blocking=blocking)
            return fn

        return deco

    def register_many(self, handlers: Mapping[str, Handler], *, blocking: bool = True) -> None:
        """Register several handlers with the same mode.

        Args:
            handlers: ``{op: handler}``.
            blocking: See :meth:`register`.
        """
        for op, fn in handlers.items():
            self.register(op, fn, blocking=blocking)

    # ---------------------------------------------------------------- lifecycle

    @property
    def endpoint(self) -> str:
        """The bound endpoint (with the real port once started)."""
        return self._endpoint

    @property
    def in_flight(self) -> int:
        """Requests accepted and not yet answered."""
        return self._in_flight

    def start(self) -> None:
        """Bind the socket and start serving on a background thread.

        Raises:
            InsecureBind: A non-loopback bind without CURVE or ``insecure``.
            zmq.ZMQError: The endpoint cannot be bound (e.g. the port is in use).
            KeyFileError: A CURVE key file is missing or wrong.
        """
        if self._thread is not None:
            raise RuntimeError("server already started")
        check_bind_allowed(self._requested_endpoint, curve=self._curve is not None,
                           insecure=self._insecure)
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        sock = ctx.socket(zmq.ROUTER)
        try:
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
            sock.setsockopt(zmq.MAXMSGSIZE, self._max_message_size)
            sock.setsockopt(zmq.SNDHWM, self._sndhwm)
            sock.setsockopt(zmq.RCVHWM, self._sndhwm)
            if self._curve is not None:
                self._auth = zmq.auth.thread.ThreadAuthenticator(ctx)
                self._auth.start()
                self._auth.configure_curve(domain="*", location=str(self._curve.allow_dir))
                apply_server_curve(sock, self._curve)
            sock.bind(self._requested_endpoint)
            last = sock.getsockopt(zmq.LAST_ENDPOINT)
            # Wake-ups arrive on the same socket (an inproc peer with a secret routing id), so
            # the socket thread can block in recv without a poller on the hot path.
            wake_ep = f"inproc://caxton-control-wake-{self._wake_id[-32:].decode()}"
            sock.bind(wake_ep)
            wake = ctx.socket(zmq.DEALER)
            wake.setsockopt(zmq.LINGER, 0)
            wake.setsockopt(zmq.ROUTING_ID, self._wake_id)
            wake.connect(wake_ep)
            self._wake_sock = wake
        except BaseException:
            if self._wake_sock is not None:
                self._wake_sock.close(0)
            sock.close(0)
            if self._auth is not None:
                self._auth.stop()
            ctx.term()
            raise
        self._endpoint = last.decode() if isinstance(last, bytes) else str(last)
        self._ctx, self._sock = ctx, sock
        # pyzmq's Socket.send only adds DRAFT routing-id/group handling to the backend's
        # send, which the reply path never uses (~0.3 us a call on every reply frame)
        self._raw_send = super(zmq.Socket, sock).send
        self._pool = ThreadPoolExecutor(max_workers=self._workers,
                                        thread_name_prefix="caxton-control")
        self._thread = threading.Thread(target=self._run, name="caxton-control-port",
                                        daemon=True)
        self._thread.start()
        log.info("control_port_listening", endpoint=self._endpoint,
                 curve=self._curve is not None)

    def reload_allow_list(self) -> None:
        """Re-read the CURVE allow-list directory (after adding or removing client keys)."""
        if self._auth is not None and self._curve is not None:
            self._auth.configure_curve(domain="*", location=str(self._curve.allow_dir))

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting requests, let in-flight ones finish (up to ``timeout``), and close.

        Safe to call from a handler (then it does not wait) and more than once.

        Args:
            timeout: Seconds to wait for in-flight requests to be answered.
        """
        if self._thread is None:
            return
        self._drain_deadline = time.monotonic() + timeout
        self._stopping = True
        self._wake_stop()
        if threading.current_thread() is self._thread:
            return
        if self._pool is not None and threading.current_thread().name.startswith(
                "caxton-control"):
            return
        self._thread.join(timeout + 5.0)

    def wait_stopped(self, timeout: float | None = None) -> bool:
        """Block until the server has closed its socket.

        Args:
            timeout: Seconds to wait; ``None`` waits forever.

        Returns:
            Whether it stopped.
        """
        return self._stopped.wait(timeout)

    def __enter__(self) -> ControlServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---------------------------------------------------------------- socket thread

    def _wake(self) -> None:
        if self._wake_pending or not self._idle:
            # The socket thread is not blocked in recv: it drains the done queue before it
            # next blocks (it re-checks the queue after setting ``_idle``), so no wake-up
            # message (and no extra trip through the socket) is needed.
            return
        self._wake_pending = True
        with self._wake_lock:  # the lock is the memory barrier that lets threads share it
            if self._wake_sock is not None:
                try:
                    self._wake_sock.send(b"", zmq.NOBLOCK)
                except zmq.ZMQError:
                    pass  # at its HWM: a wake-up is already queued

    def _wake_stop(self) -> None:
        # ``stop`` must wake the thread whatever ``_idle`` says (it may be about to block).
        with self._wake_lock:
            if self._wake_sock is not None:
                try:
                    self._wake_sock.send(b"", zmq.NOBLOCK)
                except zmq.ZMQError:
                    pass

    def _run(self) -> None:
        sock = self._sock
        assert sock is not None
        recv_multipart = _multipart_reader(sock)
        wake_id = self._wake_id
        done = self._done
        rcvtimeo = -1
        executor = self._executor
        run_pending = executor.run_pending if executor is not None else None
        limit = 1
        max_batch = self._max_batch
        eager_run = self._eager_run
        if executor is not None:
            executor.adopt()
        try:
            while True:
                if self._stopping and (
                        (self._in_flight == 0 and not self._backlog and not done)
                        or time.monotonic() > self._drain_deadline):
                    break
                want = 1 if self._backlog else (50 if self._stopping else -1)
                if want != rcvtimeo:
                    sock.setsockopt(zmq.RCVTIMEO, want)
                    rcvtimeo = want
                # Completers append to ``done`` and then read ``_idle``; this thread sets
                # ``_idle`` and then reads ``done`` (the GIL orders both), so a completion is
                # either seen here or wakes the recv below - never lost, and no wake-up is
                # sent while this thread is busy.
                frames = None
                if not done:
                    try:
                        frames = recv_multipart(_NOBLOCK)
                    except zmq.Again:
                        # Nothing is waiting: the port is idle, so it answers the next
                        # requests eagerly (see below) until it is saturated again.
                        limit = 1
                        self._idle = True
                        if not done:
                            try:
                                frames = recv_multipart()
                            except zmq.Again:
                                pass
                        self._idle = False
                # Two modes. Eager (``limit == 1``, whenever the port has been idle): each
                # request is handled, its inline work run and its reply sent before the next
                # is read, so a request never waits for the ones read after it. Batching
                # (``limit`` 2..max_batch): up to ``limit`` requests already queued are read
                # before their work runs and their replies leave together. Under saturation
                # that costs far fewer wake-ups of ZeroMQ's I/O thread (each one a write
                # that can preempt this thread) and of the clients, but a request read early
                # waits for the rest of its batch. The port turns to batching only after
                # ``eager_run`` requests in a row found the next one already queued; the
                # limit then doubles while turns find the queue still full and halves (to 2
                # at least) when a turn empties it early, and it is eager again as soon as
                # it finds nothing to read.
                batch = 0
                eager = limit == 1  # each request's inline work runs right after it
                while frames is not None:
                    if frames[0] == wake_id:
                        self._wake_pending = False
                    else:
                        try:
                            self._handle(sock, frames, time.perf_counter_ns())
                        except Exception as exc:  # a bug must cost one reply, not the port
                            self._handle_bug(sock, frames, exc)
                        if eager:
                            self._settle_local(sock, run_pending)
                    batch += 1
                    frames = None
                    if eager:
                        if batch >= eager_run:
                            if max_batch > 1:
                                limit = 2  # saturated: start batching
                            break
                    elif batch > limit or batch >= max_batch:
                        limit = min(limit * 2, max_batch)  # the queue outlasted the turn
                        break
                    try:  # cheaper than asking zmq.EVENTS first (pyzmq wraps it in an enum)
                        frames = recv_multipart(_NOBLOCK)
                    except zmq.Again:
                        if limit > 2 and batch <= limit // 2:
                            limit //= 2
                self._settle_local(sock, run_pending if batch and not eager else None)
                if self._backlog:
                    self._flush_backlog(sock)
        except Exception:  # pragma: no cover - a bug here must be visible, not silent
            log.exception("control_port_crashed")
        finally:
            if executor is not None:
                executor.release()
            self._close()

    def _settle_local(self, sock: zmq.Socket[bytes],
                      run_pending: Callable[[], int] | None) -> None:
        # Run the inline work the requests just handled made runnable, then send every reply
        # that is ready (theirs and any completed elsewhere meanwhile).
        if run_pending is not None:
            try:
                run_pending()
            except Exception:  # pragma: no cover - actors catch their own
                log.exception("control_local_work_crashed")
        done = self._done
        while done:
            pending, frame = done.popleft()
            self._in_flight -= 1
            self._send(sock, pending, frame)

    def _close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        with self._wake_lock:
            if self._wake_sock is not None:
                self._wake_sock.close(0)
                self._wake_sock = None
        if self._sock is not None:
            self._sock.close(0)
        if self._auth is not None:
            self._auth.stop()
        if self._ctx is not None:
            self._ctx.term()
        self._stopped.set()
        log.info("control_port_stopped", endpoint=self._endpoint)

    def _handle(self, sock: zmq.Socket[bytes], frames: list[bytes], t0: int) -> None:
        # Routing envelope: everything up to the last empty delimiter that precedes a payload
        # (REQ peers), else the identity frame alone (DEALER peers). The rest must be exactly
        # one payload frame.
        split = 1
        for i in range(len(frames) - 2, 0, -1):
            if not frames[i]:
                split = i + 1
                break
        envelope, body = frames[:split], frames[split:]
        pending = Reply(envelope, None, _INVALID_OP, t0)
        if len(body) != 1:
            self._reply_now(sock, pending, error_reply(
                None, ErrorCode.PROTOCOL_ERROR,
                f"a request must be exactly one msgpack frame, got {len(body)} frames"))
            return
        try:
            msg = msgpack.unpackb(body[0], raw=False)
        except Exception as exc:
            self._reply_now(sock, pending, error_reply(
                None, ErrorCode.PROTOCOL_ERROR,
                f"frame is not a valid msgpack value ({type(exc).__name__}: {exc})"[:500]))
            return
        if not isinstance(msg, dict):
            self._reply_now(sock, pending, error_reply(
                None, ErrorCode.PROTOCOL_ERROR,
                f"frame must be a msgpack map with v, id, op, args; got {type(msg).__name__}"))
            return
        req_id = msg.get("id")
        if type(req_id) not in (int, str):
            self._reply_now(sock, pending, error_reply(
                None, ErrorCode.PROTOCOL_ERROR,
                "request field 'id' is missing or not an integer/string"))
            return
        pending.req_id = req_id
        op: str = msg.get("op")  # type: ignore[assignment]  # checked below: names a route
        route = self._routes.get(op) if type(op) is str else None
        # the common, well-formed case inline; _envelope_problem says what else is wrong
        if route is None or msg.get("v") != PROTOCOL_VERSION or \
                not msg.keys() <= _ENVELOPE_KEYS or type(msg.get("args", _EMPTY)) is not dict:
            problem = self._envelope_problem(msg)
            if problem is not None:
                self._reply_now(sock, pending, error_reply(req_id, ErrorCode.PROTOCOL_ERROR,
                                                           problem))
                return
            op = msg["op"]
            route = self._routes[op]
        pending.op = op
        try:
            # what ``model_validate`` does, minus its Python-level wrapper (~0.5 us)
            args = route.args_model.__pydantic_validator__.validate_python(
                msg.get("args") or _EMPTY)
        except ValidationError as exc:
            self._reply_now(sock, pending, invalid_argument_from(op, exc).to_dict())
            return
        if self._stopping:
            self._reply_now(sock, pending, error_reply(
                req_id, ErrorCode.SHUTTING_DOWN, "the node is shutting down"))
            return
        if self._in_flight >= self._max_in_flight:
            self._reply_now(sock, pending, error_reply(
                req_id, ErrorCode.QUEUE_FULL,
                f"the control port has {self._in_flight} requests in flight; retry later"))
            return
        self._in_flight += 1
        if route.replies:
            pending._complete = self._complete_bound
            try:
                route.handler(args, pending)
            except BaseException as exc:
                if pending._claim():  # it failed before replying: its error is the reply
                    self._in_flight -= 1
                    self._reply_now(sock, pending, _error_for(pending, exc))
                else:
                    log.error("control_handler_failed_after_reply", op=op, error=repr(exc),
                              exc_info=exc)
            return
        if route.blocking:
            assert self._pool is not None
            try:
                fut = self._pool.submit(route.handler, args)
            except RuntimeError:
                self._in_flight -= 1
                self._reply_now(sock, pending, error_reply(
                    req_id, ErrorCode.SHUTTING_DOWN, "the node is shutting down"))
                return
            fut.add_done_callback(functools.partial(self._settle_future, pending))
            return
        try:
            value = route.handler(args)
        except BaseException as exc:
            self._in_flight -= 1
            self._reply_now(sock, pending, _error_for(pending, exc))
            return
        if _is_future_like(value):
            self._await(pending, value)
            return
        self._in_flight -= 1
        self._send(sock, pending, _pack_ok(pending, value))

    def _handle_bug(self, sock: zmq.Socket[bytes], frames: list[bytes],
                    exc: Exception) -> None:
        log.error("control_request_crashed", error=repr(exc), exc_info=exc)
        pending = Reply(frames[:1], None, _INVALID_OP, time.perf_counter_ns())
        try:
            msg = msgpack.unpackb(frames[-1], raw=False)
            if isinstance(msg, dict) and type(msg.get("id")) in (int, str):
                pending.req_id = msg["id"]
        except Exception:
            pass
        try:
            self._send(sock, pending, pack(error_reply(
                pending.req_id, ErrorCode.INTERNAL,
                f"internal error reading the request ({type(exc).__name__}); see the node's "
                "log")))
        except Exception:
            log.exception("control_bug_reply_failed")

    def _envelope_problem(self, msg: dict[Any, Any]) -> str | None:
        op = msg.get("op")
        if msg.get("v") == PROTOCOL_VERSION and type(op) is str and op in self._routes and \
                msg.keys() <= _ENVELOPE_KEYS and type(msg.get("args", _EMPTY)) is dict:
            return None  # the common, well-formed case
        if msg.get("v") != PROTOCOL_VERSION:
            return (f"unsupported protocol version v={msg.get('v')!r}; this node speaks "
                    f"v={PROTOCOL_VERSION}")
        extra = [k for k in msg if k not in _ENVELOPE_KEYS]
        if extra:
            return f"unknown envelope key(s) {sorted(map(str, extra))}; allowed: v, id, op, args"
        if not isinstance(op, str):
            return "request field 'op' is missing or not a string"
        if op not in OPS:
            return f"unknown op {op[:100]!r}; known ops: {', '.join(OPS)}"
        if op not in self._routes:
            return f"op {op!r} is not served by this node"
        args = msg.get("args")
        if args is not None and not isinstance(args, dict):
            return f"request field 'args' must be a map, got {type(args).__name__}"
        return None

    # ---------------------------------------------------------------- completion

    def _await(self, pending: Reply, value: Any) -> None:
        add = getattr(value, "add_done_callback", None)
        if callable(add):
            add(functools.partial(self._settle_future, pending))
            return
        assert self._pool is not None
        try:
            self._pool.submit(self._wait_get, pending, value)
        except RuntimeError:
            self._complete(pending, pack(error_reply(pending.req_id, ErrorCode.SHUTTING_DOWN,
                                                     "the node is shutting down")))

    def _wait_get(self, pending: Reply, fut: Any) -> None:
        try:
            value = fut.get(timeout=self._future_timeout)
        except BaseException as exc:
            self._complete(pending, pack(_error_for(pending, exc)))
            return
        self._finish(pending, value)

    def _settle_future(self, pending: Reply, fut: Any) -> None:
        try:
            exc = fut.exception()
        except BaseException as cancelled:  # CancelledError
            exc = cancelled
        if exc is not None:
            self._complete(pending, pack(_error_for(pending, exc)))
            return
        value = fut.result()
        if type(value) is dict:  # the common case (a message's wire map): not a future
            self._complete(pending, _pack_ok(pending, value))
            return
        self._finish(pending, value)

    def _finish(self, pending: Reply, value: Any) -> None:
        if _is_future_like(value):
            self._await(pending, value)
            return
        self._complete(pending, _pack_ok(pending, value))

    def _complete(self, pending: Reply, frame: bytes) -> None:
        """Hand a packed reply to the socket thread (any thread)."""
        self._done.append((pending, frame))
        if self._idle and not self._wake_pending:  # _wake()'s own first test, inlined
            self._wake()

    def _reply_now(self, sock: zmq.Socket[bytes], pending: Reply,
                   reply: dict[str, Any]) -> None:
        if "v" not in reply:  # a CaxtonError.to_dict() map
            reply = error_reply(pending.req_id, reply["code"], reply["message"],
                                reply.get("details"))
        self._send(sock, pending, pack(reply))

    def _send(self, sock: zmq.Socket[bytes], pending: Reply, frame: bytes) -> None:
        envelope = pending.envelope
        if self._backlog:
            self._backlog.append([*envelope, frame])
        elif len(envelope) == 1:  # a DEALER peer: identity + reply, without send_multipart
            send = self._raw_send
            try:
                send(envelope[0], _SNDMORE_NOBLOCK)
                send(frame, _NOBLOCK)
            except zmq.ZMQError as exc:
                self._send_failed(exc, [*envelope, frame])
        else:
            self._send_parts(sock, [*envelope, frame])
        self.latency.record(pending.op, time.perf_counter_ns() - pending.t0)

    def _send_failed(self, exc: zmq.ZMQError, parts: list[bytes]) -> bool:
        # A ROUTER takes or refuses a message at its first frame, so nothing of it went out:
        # at the peer's high-water mark it waits in the backlog; a gone peer is counted.
        if isinstance(exc, zmq.Again):
            self._backlog.append(parts)
            return False
        if exc.errno == errno.EHOSTUNREACH:
            self.undeliverable += 1
            log.warning("control_reply_undeliverable", reason="client disconnected")
            return True
        raise exc

    def _send_parts(self, sock: zmq.Socket[bytes], parts: list[bytes]) -> bool:
        # a REQ peer's reply (identity, delimiter(s), reply); _send sends a DEALER's itself
        try:
            sock.send_multipart(parts, zmq.NOBLOCK)
            return True
        except zmq.ZMQError as exc:
            return self._send_failed(exc, parts)

    def _flush_backlog(self, sock: zmq.Socket[bytes]) -> None:
        backlog = self._backlog
        while backlog:
            parts = backlog.popleft()
            try:
                sock.send_multipart(parts, zmq.NOBLOCK)
            except zmq.Again:
                backlog.appendleft(parts)
                return
            except zmq.ZMQError as exc:
                if exc.errno != errno.EHOSTUNREACH:
                    raise
                self.undeliverable += 1


def _multipart_reader(sock: zmq.Socket[bytes]) -> Callable[..., list[bytes]]:
    """``sock.recv_multipart`` for small frames, about twice as fast.

    pyzmq's version asks ``getsockopt(RCVMORE)`` after every frame (an enum conversion and a
    call into libzmq each); a zero-copy frame carries the same flag as ``.more``.
    """
    recv = sock.recv

    def recv_multipart(flags: int = 0) -> list[bytes]:
        frame = recv(flags, copy=False)  # raises zmq.Again like recv_multipart
        parts = [frame.bytes]
        while frame.more:  # the rest of a multipart message is already queued
            frame = recv(flags, copy=False)
            parts.append(frame.bytes)
        return parts

    return recv_multipart


def _error_for(pending: Reply, exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, CaxtonError):
        return error_reply(pending.req_id, str(exc.code), exc.message, exc.details)
    if isinstance(exc, TimeoutError) or type(exc).__name__ == "Timeout":
        return error_reply(pending.req_id, ErrorCode.TIMEOUT,
                           f"{pending.op}: the node did not finish in time")
    log.error("control_handler_failed", op=pending.op, error=repr(exc), exc_info=exc)
    return error_reply(pending.req_id, ErrorCode.INTERNAL,
                       f"{pending.op}: internal error ({type(exc).__name__}: {exc}); "
                       "see the node's log")


def _pack_ok(pending: Reply, value: Any) -> bytes:
    # A packer per thread (a Packer is not thread-safe; ``pack`` makes one every call).
    packer = getattr(_local, "packer", None)
    if packer is None:
        packer = _local.packer = msgpack.Packer(use_bin_type=True, default=_encode_default)
    try:
        return packer.pack({"v": PROTOCOL_VERSION, "id": pending.req_id, "ok": True,
                            "result": value})
    except Exception as exc:
        packer.reset()
        log.error("control_result_unencodable", op=pending.op, error=repr(exc))
        return pack(error_reply(pending.req_id, ErrorCode.INTERNAL,
                                f"{pending.op}: the result could not be encoded ({exc})"))


_PLAIN = frozenset({dict, list, str, bytes, int, float, bool, type(None), tuple})


def _is_future_like(value: Any) -> bool:
    if type(value) in _PLAIN or isinstance(value, BaseModel):
        return False
    if callable(getattr(value, "add_done_callback", None)):
        return True
    return callable(getattr(value, "get", None)) and callable(
        getattr(value, "set_exception", None))


def serve_forever(server: ControlServer) -> None:  # pragma: no cover - convenience
    """Start ``server`` (if needed) and block until it stops.

    Args:
        server: The server.
    """
    if server._thread is None:
        server.start()
    server.wait_stopped()


__all__ = ["ControlServer", "Handler", "LatencyRecorder", "LocalExecutor", "Reply",
           "ReplyingHandler", "pack", "serve_forever"]
