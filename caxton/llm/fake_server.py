"""A fast fake OpenAI-compatible model server with a set latency (aiohttp), for load tests.

:class:`~caxton.llm.testing.FakeOpenAIServer` (a thread per request) is fine for functional
tests; measuring many concurrent conversations needs a server that is never the bottleneck.
This one is one asyncio loop: each ``POST /v1/chat/completions`` sleeps ``latency`` seconds
(without holding anything) and answers ``"echo: <last user message>"``. It counts requests and
the most it ever had in flight, served as JSON at ``GET /stats``.

Run it in its own process so it does not share a GIL with the node it feeds::

    python -m caxton.llm.fake_server --latency 0.2      # prints "PORT <n>", then serves

or in a thread (:meth:`FakeModelServer.start`) inside a test. It binds ``127.0.0.1`` only.
Requires the ``aiohttp`` package (in the ``test`` and ``bench`` extras).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import threading
from typing import Any


class FakeModelServer:
    """The server (see the module docstring).

    Args:
        latency: Seconds each completion takes.
        port: Port to bind on 127.0.0.1 (0 = a free one).
    """

    def __init__(self, latency: float = 0.2, port: int = 0) -> None:
        self.latency = latency
        self.port = port
        self.requests = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.user_messages: list[str] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: Any = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        """The OpenAI base URL (``http://127.0.0.1:<port>/v1``)."""
        return f"http://127.0.0.1:{self.port}/v1"

    def stats(self) -> dict[str, Any]:
        """Requests served, in flight now, and the most at once."""
        return {"requests": self.requests, "in_flight": self.in_flight,
                "max_in_flight": self.max_in_flight, "latency": self.latency}

    async def _complete(self, request: Any) -> Any:
        from aiohttp import web

        body = await request.json()
        self.requests += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            user = [m.get("content") or "" for m in body.get("messages", [])
                    if m.get("role") == "user"]
            last = user[-1] if user else ""
            if len(self.user_messages) < 100_000:
                self.user_messages.append(last)
            await asyncio.sleep(self.latency)
            return web.json_response({
                "id": f"fake-{self.requests}", "object": "chat.completion",
                "model": body.get("model", "fake"),
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": f"echo: {last}"}}],
            })
        finally:
            self.in_flight -= 1

    async def _stats(self, request: Any) -> Any:
        from aiohttp import web

        return web.json_response(self.stats())

    async def _serve(self) -> None:
        from aiohttp import web

        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._complete)
        app.router.add_get("/stats", self._stats)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, backlog=1024)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    def start(self) -> FakeModelServer:
        """Serve from a background thread; returns once it listens."""
        ready = threading.Event()
        loop = asyncio.new_event_loop()
        self._loop = loop

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(self._serve())
            ready.set()
            loop.run_forever()

        self._thread = threading.Thread(target=run, name="fake-model", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the fake model server did not start within 10 s")
        return self

    def stop(self) -> None:
        """Stop serving and join the thread."""
        loop = self._loop
        if loop is None:
            return
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        self._loop = None

    def __enter__(self) -> FakeModelServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    """Run the server in the foreground (prints ``PORT <n>`` once it listens)."""
    p = argparse.ArgumentParser(prog="python -m caxton.llm.fake_server",
                                description="A fake OpenAI-compatible model on 127.0.0.1.")
    p.add_argument("--latency", type=float, default=0.2, help="seconds per completion")
    p.add_argument("--port", type=int, default=0, help="port (0 = a free one)")
    args = p.parse_args(argv)
    server = FakeModelServer(args.latency, args.port)

    async def run() -> None:
        await server._serve()
        print(f"PORT {server.port}", flush=True)
        await asyncio.Event().wait()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())

__all__ = ["FakeModelServer", "main"]
