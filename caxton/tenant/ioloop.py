"""One asyncio event loop on one daemon thread: where every model call and I/O tool waits.

A model answers in seconds; a thread per waiting call would put the node's thread count in
the hands of its traffic. Instead every config agent submits its waits here as coroutines
(an ``httpx.AsyncClient`` request, an ``asyncio.sleep`` between retries) and gets a done
callback; 10,000 conversations waiting on a model cost 10,000 coroutines, not threads.

The loop thread runs only Caxton's own I/O code (the HTTP client, JSON decoding of bounded
responses): tenant computation never runs here (see :mod:`caxton.tenant.pool`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Coroutine
from typing import Any

import structlog

_log = structlog.get_logger("caxton.tenant")


class IOLoop:
    """A lazily started asyncio loop thread. Thread-safe.

    Args:
        name: The loop thread's name.
    """

    def __init__(self, name: str = "caxton-io") -> None:
        self.name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._session: Any = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The running loop (started on first use)."""
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                ready = threading.Event()

                def run() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    loop.run_forever()

                self._thread = threading.Thread(target=run, name=self.name, daemon=True)
                self._thread.start()
                ready.wait()
                self._loop = loop
            return self._loop

    def http_session(self) -> Any:
        """The loop's one ``aiohttp.ClientSession`` (call it on the loop thread).

        Shared by every model call of every agent, so connections to one endpoint are pooled
        across agents, and closed with the loop (never left for the garbage collector).
        """
        session = self._session
        if session is None or session.closed:
            import aiohttp

            # trust_env=False: proxy variables must never reroute agent traffic
            session = self._session = aiohttp.ClientSession(
                trust_env=False, connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300))
        return session

    def in_loop_thread(self) -> bool:
        """Whether the caller is the loop's own thread."""
        return self._thread is not None and threading.current_thread() is self._thread

    def submit(self, coro: Coroutine[Any, Any, Any],
               done: Callable[[Any, BaseException | None], None] | None = None,
               ) -> concurrent.futures.Future[Any]:
        """Schedule ``coro`` on the loop.

        Args:
            coro: The coroutine.
            done: Called with ``(result, None)`` or ``(None, exception)`` when it ends, on
                the loop thread (it must be quick and must not block).

        Returns:
            A future (``cancel()`` it to cancel the coroutine).
        """
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        if done is not None:
            def finished(fut: concurrent.futures.Future[Any]) -> None:
                error: BaseException | None
                if fut.cancelled():
                    value, error = None, asyncio.CancelledError()
                else:
                    error = fut.exception()
                    value = None if error is not None else fut.result()
                try:
                    done(value, error)
                except Exception as exc:
                    _log.error("ioloop.callback_failed", error=repr(exc))

            future.add_done_callback(finished)
        return future

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float | None = None) -> Any:
        """Run ``coro`` on the loop and wait for its result (for synchronous callers).

        Raises:
            RuntimeError: Called from the loop thread itself (it would deadlock).
        """
        if self.in_loop_thread():
            coro.close()
            raise RuntimeError("IOLoop.run called on the loop thread; await the coroutine")
        return self.submit(coro).result(timeout)

    def close(self) -> None:
        """Stop the loop (pending coroutines are cancelled) and join its thread."""
        with self._lock:
            loop, thread, self._loop, self._thread = self._loop, self._thread, None, None
        if loop is None:
            return

        async def drain() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self._session is not None:
                await self._session.close()
                self._session = None

        try:
            asyncio.run_coroutine_threadsafe(drain(), loop).result(5)
        except Exception as exc:
            _log.warning("ioloop.drain_failed", error=repr(exc))
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(5)
        loop.close()


_default: IOLoop | None = None
_default_lock = threading.Lock()


def default_ioloop() -> IOLoop:
    """The process's shared I/O loop (used when no node-specific loop is given)."""
    global _default
    with _default_lock:
        if _default is None:
            import atexit

            _default = IOLoop()
            atexit.register(_default.close)
        return _default


__all__ = ["IOLoop", "default_ioloop"]
