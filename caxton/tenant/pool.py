"""Tenant worker processes: where template renders and CPU-bound tool calls run.

A config agent's templates and tools are tenant code. Run on the node's threads, a
catastrophic regular expression (Python's ``re`` holds the GIL for a whole match), a nested
template loop or a huge multiplication freezes or kills the whole node, and a timed-out
thread keeps burning its core afterwards. So they run here instead: a small pool of worker
processes, each with an address-space cap (``RLIMIT_AS``), one call at a time each, and a
wall-clock limit per call. A call past its limit **kills its worker** (SIGTERM, then
SIGKILL) and the pool starts a replacement, so the work really stops and the node's CPU goes
back to idle.

The pool is `pebble <https://pypi.org/project/Pebble/>`_'s ``ProcessPool``: it is maintained,
typed, has exactly these semantics (per-task timeout that terminates the worker, a
replacement worker, ``ProcessExpired`` for a worker that died), and its futures take done
callbacks, so nothing waits on a thread per call. Workers come from a *fork server* that has
preloaded :mod:`caxton.tenant.work` — forking the node itself (many threads, ZeroMQ
contexts) would be unsafe, and spawning a fresh interpreter for each replacement would cost
~0.3 s of imports.

The pool starts on first use: a node whose agents render only linear templates and use no
CPU tools never starts a process.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import threading
from collections.abc import Callable
from typing import Any

import structlog

from caxton.errors import CaxtonError, ResourceExhausted
from caxton.tenant import work
from caxton.tenant.ioloop import default_ioloop

_log = structlog.get_logger("caxton.tenant")

DEFAULT_WORKERS = 2
"""Worker processes of a node's tenant pool (``tenant.workers`` in caxton.yaml)."""

DEFAULT_MEMORY_LIMIT = 512 * 1024 * 1024
"""Address-space cap of each worker, in bytes (``tenant.memory_limit``)."""


class WorkTimedOut(Exception):
    """A call ran past the timeout it was submitted with; its worker was killed."""


Done = Callable[[Any, BaseException | None], None]
"""A completion callback: ``(value, None)`` or ``(None, error)``; ``error`` is a
:class:`~caxton.errors.CaxtonError` or :class:`WorkTimedOut`."""


class _Call:
    """One submitted call: queued (before the pool started) or running in a worker."""

    __slots__ = ("_done_once", "_inner", "_lock", "args", "cancelled", "done", "func", "pool",
                 "timeout", "what")

    def __init__(self, pool: TenantPool, func: Callable[..., work.Outcome],
                 args: tuple[Any, ...], timeout: float, done: Done, what: str) -> None:
        self.pool, self.func, self.args, self.timeout = pool, func, args, timeout
        self.done, self.what = done, what
        self.cancelled = False
        self._inner: concurrent.futures.Future[Any] | None = None
        self._lock = threading.Lock()
        self._done_once = False

    def cancel(self) -> None:
        """Stop the call: a queued one never runs, a running one kills its worker."""
        with self._lock:
            self.cancelled = True
            inner = self._inner
        if inner is not None and not inner.done():
            inner.cancel()

    def attach(self, inner: concurrent.futures.Future[Any]) -> None:
        with self._lock:
            self._inner = inner
            cancelled = self.cancelled
        if cancelled:
            inner.cancel()
        inner.add_done_callback(self._finished)

    def finish_without_running(self, failed: bool) -> None:
        err: BaseException = (ResourceExhausted(
            f"{self.what}: the tenant workers could not be started (see the node's log)")
            if failed and not self.cancelled else
            WorkTimedOut(f"{self.what} ran past {self.timeout:.3g}s before a worker took it"))
        self._report(None, err)

    def _finished(self, fut: concurrent.futures.Future[Any]) -> None:
        try:
            value, error = self.pool._outcome(fut, self.what, self.timeout)
        except BaseException as exc:  # defensive: the callback must always be called
            value, error = None, exc
        self._report(value, error)

    def _report(self, value: Any, error: BaseException | None) -> None:
        with self._lock:
            if self._done_once:
                return
            self._done_once = True
        try:
            self.done(value, error)
        except Exception as exc:
            _log.error("tenant.callback_failed", what=self.what, error=repr(exc))


class TenantPool:
    """A bounded pool of killable worker processes (see the module docstring). Thread-safe.

    Args:
        workers: Worker processes.
        memory_limit: Address-space cap of each worker in bytes (0 = none).
        cpus: CPUs the workers run on (empty: as inherited from the process).
    """

    def __init__(self, *, workers: int = DEFAULT_WORKERS,
                 memory_limit: int = DEFAULT_MEMORY_LIMIT,
                 cpus: tuple[int, ...] = ()) -> None:
        if workers < 1:
            raise ValueError(f"tenant workers must be at least 1, got {workers}")
        self.workers = workers
        self.memory_limit = memory_limit
        self.cpus = cpus
        self._lock = threading.Lock()
        self._pool: Any = None
        self._starting = False
        self._backlog: list[_Call] = []
        self._closed = False
        self.calls = 0
        self.killed = 0
        self.died = 0

    def _start(self) -> None:
        """Create the pebble pool (on the starter thread: forking the fork server and the
        workers takes ~0.5 s, which must never block a caller such as the control port)."""
        try:
            import pebble  # only a node that needs workers pays for the import

            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload(["caxton.tenant.work", "caxton.tools.builtin",
                                        "caxton.config_agents.templates"])
            pool = pebble.ProcessPool(
                max_workers=self.workers, initializer=work.init_worker,
                initargs=(self.memory_limit, self.cpus), context=ctx)
            _log.info("tenant.pool_started", workers=self.workers,
                      memory_limit=self.memory_limit, cpus=list(self.cpus))
        except Exception as exc:
            _log.error("tenant.pool_start_failed", error=repr(exc))
            pool = None
        with self._lock:
            closed = self._closed
            if not closed:
                self._pool = pool
            backlog, self._backlog = self._backlog, []
            self._starting = False
        if closed and pool is not None:  # closed while starting: nothing may run
            pool.stop()
            pool.join(timeout=5)
            pool = None
        for call in backlog:
            self._schedule(call) if pool is not None else call.finish_without_running(True)

    def _schedule(self, call: _Call) -> None:
        pool = self._pool
        if call.cancelled or pool is None:
            call.finish_without_running(pool is None)
            return
        try:
            inner = pool.schedule(call.func, args=call.args, timeout=max(call.timeout, 0.001))
        except RuntimeError:  # the pool was stopped meanwhile
            call.finish_without_running(True)
            return
        call.attach(inner)

    def submit(self, func: Callable[..., work.Outcome], args: tuple[Any, ...], timeout: float,
               done: Done, *, what: str) -> _Call:
        """Run ``func(*args)`` in a worker; call ``done`` when it ends (on a pool thread).

        Never blocks: before the pool has started (it starts on first use, on a thread of its
        own) calls wait in a backlog, inside their budget.

        Args:
            func: A function of :mod:`caxton.tenant.work` (it returns an outcome).
            args: Its arguments (pickled).
            timeout: Seconds the call may take from now; past it its worker is killed.
            done: The completion callback (it must be quick and must not raise).
            what: What the call is, for errors and logs.

        Returns:
            The call (``cancel()`` it to stop it: a running one kills its worker).

        Raises:
            ResourceExhausted: The pool is closed (the node is stopping).
        """
        call = _Call(self, func, args, timeout, done, what)
        with self._lock:
            if self._closed:
                raise ResourceExhausted("the node's tenant pool is closed (the node is stopping)")
            self.calls += 1
            ready = self._pool is not None
            if not ready:
                self._backlog.append(call)
                if not self._starting:
                    self._starting = True
                    threading.Thread(target=self._start, name="caxton-tenant-start",
                                     daemon=True).start()
        # pebble's timeout starts when a worker picks the call up; a call queued behind busy
        # workers (or the pool's start) must not outlive its budget either, so a timer from
        # submission cancels it (cancelling a running call stops its worker).
        loop = default_ioloop().loop
        loop.call_soon_threadsafe(loop.call_later, max(timeout, 0.001), call.cancel)
        if ready:
            self._schedule(call)
        return call

    def run(self, func: Callable[..., work.Outcome], args: tuple[Any, ...], timeout: float, *,
            what: str) -> Any:
        """Run ``func(*args)`` in a worker and wait for it (for synchronous callers).

        Returns:
            The call's value.

        Raises:
            CaxtonError: The call's typed error.
            WorkTimedOut: It ran past ``timeout`` (its worker was killed).
        """
        return wait_done(lambda done: self.submit(func, args, timeout, done, what=what))

    def _outcome(self, fut: concurrent.futures.Future[Any], what: str,
                 timeout: float) -> tuple[Any, BaseException | None]:
        if fut.cancelled():  # past its budget while queued or running, or stopped by its caller
            self.killed += 1
            return None, WorkTimedOut(f"{what} ran past {timeout:.3g}s and was stopped")
        exc = fut.exception()
        if exc is None:
            out = fut.result()
            if out[0] == "ok":
                return out[1], None
            return None, CaxtonError.from_code(out[1], out[2], out[3])
        if isinstance(exc, concurrent.futures.TimeoutError):
            self.killed += 1
            _log.warning("tenant.killed", what=what, timeout=timeout)
            return None, WorkTimedOut(f"{what} ran past {timeout:.3g}s; its worker was killed")
        self.died += 1
        code = getattr(exc, "exitcode", None)
        _log.warning("tenant.worker_died", what=what, exitcode=code, error=str(exc))
        return None, ResourceExhausted(
            f"{what} killed its tenant worker (exit code {code}); the usual cause is the "
            f"worker's memory limit ({self.memory_limit:,} bytes, tenant.memory_limit in "
            "caxton.yaml): make the input or template smaller",
            details=[{"reason": "worker_died", "exitcode": code}])

    def stats(self) -> dict[str, Any]:
        """Return the pool's counters: workers, started, calls, killed, died."""
        return {"workers": self.workers, "started": self._pool is not None,
                "calls": self.calls, "killed": self.killed, "died": self.died}

    def close(self) -> None:
        """Stop every worker (running calls end with an error)."""
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
            backlog, self._backlog = self._backlog, []
        for call in backlog:
            call.finish_without_running(True)
        if pool is not None:
            pool.stop()
            pool.join(timeout=5)


def wait_done(start: Callable[[Done], object]) -> Any:
    """Call ``start(done)`` and block until ``done`` is called; return its value or raise its
    error (how a synchronous caller uses a callback API such as :meth:`TenantPool.submit`).

    Raises:
        BaseException: The error ``done`` was called with.
    """
    box: list[tuple[Any, BaseException | None]] = []
    event = threading.Event()

    def done(value: Any, error: BaseException | None) -> None:
        box.append((value, error))
        event.set()

    start(done)
    event.wait()
    value, error = box[0]
    if error is not None:
        raise error
    return value


_default: TenantPool | None = None
_default_lock = threading.Lock()


def default_pool() -> TenantPool:
    """The process's shared tenant pool (closed at interpreter exit)."""
    global _default
    with _default_lock:
        if _default is None:
            import atexit

            _default = TenantPool()
            atexit.register(_default.close)
        return _default


__all__ = ["DEFAULT_MEMORY_LIMIT", "DEFAULT_WORKERS", "Done", "TenantPool", "WorkTimedOut",
           "default_pool", "wait_done"]
