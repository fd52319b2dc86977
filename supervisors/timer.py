"""One shared timer thread for every delayed restart in the process.

A supervisor never sleeps and never starts a :class:`threading.Timer`: it asks the
shared :class:`TimerService` to call a function later, and that function only
``tell()``s the supervisor a message. Ten thousand supervisors therefore share one
extra thread, started lazily on the first delayed call.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable

import structlog

__all__ = ["TimerHandle", "TimerService", "shared_timer"]

_log = structlog.get_logger("supervisors.timer")


class TimerHandle:
    """A pending call made by :meth:`TimerService.call_later`."""

    __slots__ = ("_cancelled", "when")

    def __init__(self, when: float) -> None:
        self.when = when
        self._cancelled = False

    def cancel(self) -> None:
        """Prevent the call, if it has not run yet."""
        self._cancelled = True

    @property
    def cancelled(self) -> bool:
        """Whether :meth:`cancel` was called."""
        return self._cancelled


class TimerService:
    """Runs short callbacks at given times on one daemon thread.

    Callbacks must be fast (they run one after another on the timer thread); an
    exception in one is logged as ``timer_callback_failed`` and does not stop the
    others.

    Args:
        clock: Monotonic clock in seconds, used to compute due times.
        name: Name of the thread.
    """

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, name: str = "supervisors-timer"
    ) -> None:
        self._clock = clock
        self._name = name
        self._cond = threading.Condition(threading.Lock())
        self._heap: list[tuple[float, int, TimerHandle, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None
        self._closed = False

    def call_later(self, delay: float, fn: Callable[[], None]) -> TimerHandle:
        """Call ``fn()`` on the timer thread after ``delay`` seconds.

        Args:
            delay: Seconds from now (negative counts as 0).
            fn: Fast callback without arguments.

        Returns:
            A handle whose ``cancel()`` prevents the call.

        Raises:
            RuntimeError: if the service was closed.
        """
        handle = TimerHandle(self._clock() + max(0.0, delay))
        with self._cond:
            if self._closed:
                raise RuntimeError(f"timer service {self._name!r} is closed; create a new one")
            heapq.heappush(self._heap, (handle.when, next(self._seq), handle, fn))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            if self._heap[0][2] is handle:
                self._cond.notify()
        return handle

    def pending(self) -> int:
        """Return the number of calls not yet run (cancelled ones included until due).

        Returns:
            The size of the queue.
        """
        with self._cond:
            return len(self._heap)

    def close(self) -> None:
        """Drop every pending call and stop the thread (for tests and embedders)."""
        with self._cond:
            self._closed = True
            self._heap.clear()
            self._cond.notify()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed:
                    if not self._heap:
                        self._cond.wait()
                        continue
                    wait = self._heap[0][0] - self._clock()
                    if wait <= 0:
                        break
                    self._cond.wait(timeout=wait)
                if self._closed:
                    return
                _, _, handle, fn = heapq.heappop(self._heap)
            if handle.cancelled:
                continue
            try:
                fn()
            except Exception:
                _log.exception("timer_callback_failed", timer=self._name)


_shared: TimerService | None = None
_shared_lock = threading.Lock()


def shared_timer() -> TimerService:
    """Return the process-wide timer service that supervisors use by default.

    Returns:
        The same :class:`TimerService` on every call.
    """
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = TimerService()
        return _shared
