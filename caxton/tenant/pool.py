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


def _expire(future: concurrent.futures.Future[Any]) -> None:
    if not future.done():
        future.cancel()


class TenantPool:
    """A bounded pool of killable worker processes (see the module docstring). Thread-safe.

    Args:
        workers: Worker processes.
        memory_limit: Address-space cap of each worker in bytes (0 = none).
    """

    def __init__(self, *, workers: int = DEFAULT_WORKERS,
                 memory_limit: int = DEFAULT_MEMORY_LIMIT) -> None:
        if workers < 1:
            raise ValueError(f"tenant workers must be at least 1, got {workers}")
        self.workers = workers
        self.memory_limit = memory_limit
        self._lock = threading.Lock()
        self._pool: Any = None
        self._closed = False
        self.calls = 0
        self.killed = 0
        self.died = 0

    def _started(self) -> Any:
        with self._lock:
            if self._closed:
                raise ResourceExhausted("the node's tenant pool is closed (the node is stopping)")
            if self._pool is None:
                import pebble  # only a node that needs workers pays for the import

                ctx = multiprocessing.get_context("forkserver")
                ctx.set_forkserver_preload(["caxton.tenant.work", "caxton.tools.builtin",
                                            "caxton.config_agents.templates"])
                self._pool = pebble.ProcessPool(
                    max_workers=self.workers, initializer=work.init_worker,
                    initargs=(self.memory_limit,), context=ctx)
                _log.info("tenant.pool_started", workers=self.workers,
                          memory_limit=self.memory_limit)
            return self._pool

    def submit(self, func: Callable[..., work.Outcome], args: tuple[Any, ...], timeout: float,
               done: Done, *, what: str) -> concurrent.futures.Future[Any]:
        """Run ``func(*args)`` in a worker; call ``done`` when it ends (on a pool thread).

        Args:
            func: A function of :mod:`caxton.tenant.work` (it returns an outcome).
            args: Its arguments (pickled).
            timeout: Seconds the call may run; past it the worker is killed.
            done: The completion callback (it must be quick and must not raise).
            what: What the call is, for errors and logs.

        Returns:
            The future (``cancel()`` it to stop the call: a running one kills its worker).
        """
        future: concurrent.futures.Future[Any] = self._started().schedule(
            func, args=args, timeout=max(timeout, 0.001))
        self.calls += 1
        # pebble's timeout starts when a worker picks the call up; a call queued behind busy
        # workers must not outlive its budget either, so a timer from submission cancels it
        # (cancelling a running call stops its worker).
        loop = default_ioloop().loop
        loop.call_soon_threadsafe(loop.call_later, max(timeout, 0.001), _expire, future)

        def finished(fut: concurrent.futures.Future[Any]) -> None:
            try:
                value, error = self._outcome(fut, what, timeout)
            except BaseException as exc:  # defensive: the callback must always be called
                value, error = None, exc
            try:
                done(value, error)
            except Exception as exc:
                _log.error("tenant.callback_failed", what=what, error=repr(exc))

        future.add_done_callback(finished)
        return future

    def run(self, func: Callable[..., work.Outcome], args: tuple[Any, ...], timeout: float, *,
            what: str) -> Any:
        """Run ``func(*args)`` in a worker and wait for it (for synchronous callers).

        Returns:
            The call's value.

        Raises:
            CaxtonError: The call's typed error.
            WorkTimedOut: It ran past ``timeout`` (its worker was killed).
        """
        box: list[Any] = []
        event = threading.Event()

        def done(value: Any, error: BaseException | None) -> None:
            box.append((value, error))
            event.set()

        self.submit(func, args, timeout, done, what=what)
        event.wait()
        value, error = box[0]
        if error is not None:
            raise error
        return value

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
        if pool is not None:
            pool.stop()
            pool.join(timeout=5)


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


def configure_default_pool(*, workers: int = DEFAULT_WORKERS,
                           memory_limit: int = DEFAULT_MEMORY_LIMIT) -> TenantPool:
    """Set the shared pool's size before first use (the node does, from caxton.yaml).

    Returns:
        The shared pool.
    """
    pool = default_pool()
    with pool._lock:
        if pool._pool is None:
            pool.workers, pool.memory_limit = workers, memory_limit
    return pool


__all__ = ["DEFAULT_MEMORY_LIMIT", "DEFAULT_WORKERS", "Done", "TenantPool", "WorkTimedOut",
           "configure_default_pool", "default_pool"]
