"""Real local HTTP servers for tests: a generic one and an OpenAI-compatible chat endpoint.

Both bind ``127.0.0.1`` on a free port, serve from a background thread (stdlib
``http.server``), record every request, and stop promptly even while a handler is delaying.

* :class:`LocalHTTPServer` answers each request with whatever ``handler(request)`` returns.
* :class:`FakeOpenAIServer` speaks ``POST {base}/chat/completions``: it plays queued replies
  first (:meth:`~FakeOpenAIServer.enqueue`: text, tool calls, errors, delays), then falls back
  to :func:`toy_model`, a tiny deterministic "model" that can call tools.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class RecordedRequest:
    """One request the server received.

    Attributes:
        method: HTTP method.
        path: Path with query string.
        headers: Header names lower-cased.
        body: Raw body.
    """

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """Return the body parsed as JSON."""
        return json.loads(self.body or b"null")


@dataclass
class CannedResponse:
    """What the server answers.

    Attributes:
        status: HTTP status.
        body: Bytes, text, or a JSON-serialisable value (sent as ``application/json``).
        headers: Extra headers.
        delay: Seconds to wait before answering (cut short when the server stops).
    """

    status: int = 200
    body: Any = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


Handler = Callable[[RecordedRequest], CannedResponse]


class LocalHTTPServer:
    """A real HTTP server on ``127.0.0.1`` answering with ``handler(request)``.

    Args:
        handler: Called (on a server thread) for each request.

    Use as a context manager, or call :meth:`start` / :meth:`stop`.
    """

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[RecordedRequest] = []
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        outer = self

        class _Req(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                req = RecordedRequest(self.command, self.path,
                                      {k.lower(): v for k, v in self.headers.items()}, body)
                with outer._lock:
                    outer.requests.append(req)
                try:
                    resp = outer.handler(req)
                except Exception as exc:  # a broken test handler shows up as a 500
                    resp = CannedResponse(500, f"handler error: {exc!r}")
                if resp.delay and outer._stopping.wait(resp.delay):
                    return
                payload = resp.body
                headers = dict(resp.headers)
                if not isinstance(payload, bytes | str):
                    payload = json.dumps(payload)
                    headers.setdefault("content-type", "application/json")
                if isinstance(payload, str):
                    payload = payload.encode()
                    headers.setdefault("content-type", "text/plain; charset=utf-8")
                try:
                    self.send_response(resp.status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("content-length", str(len(payload)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Req)
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port."""
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LocalHTTPServer:
        """Start serving on a daemon thread.

        Returns:
            ``self``.
        """
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port (delayed handlers are cut short)."""
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> LocalHTTPServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- OpenAI-compatible chat endpoint -----------------------------------------------------------

_counter = iter(range(1, 1 << 62))


def chat_completion(content: str | None = None,
                    tool_calls: Iterable[tuple[str, dict[str, Any] | str]] = (),
                    *, model: str = "toy") -> dict[str, Any]:
    """Build a ``chat.completion`` response body.

    Args:
        content: The assistant text.
        tool_calls: ``(name, arguments)`` pairs; arguments given as a string are sent as is
            (to test malformed JSON).
        model: The model name reported.

    Returns:
        The JSON body.
    """
    calls = [
        {"id": f"call_{next(_counter)}", "type": "function",
         "function": {"name": name,
                      "arguments": args if isinstance(args, str) else json.dumps(args)}}
        for name, args in tool_calls
    ]
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if calls:
        message["tool_calls"] = calls
    return {
        "id": f"chatcmpl-{next(_counter)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message,
                     "finish_reason": "tool_calls" if calls else "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


_USE = re.compile(r"use (?P<name>[A-Za-z0-9_\-]+) with ")


def toy_model(request: dict[str, Any]) -> dict[str, Any]:
    """A deterministic stand-in for a model, good enough to drive tool calling.

    * The newest messages are tool results → answers ``"tool results: <name>=<content>; ..."``.
    * The last user message says ``use <tool> with {json}`` and ``<tool>`` is offered →
      calls that tool with that JSON.
    * Otherwise → answers ``"echo: <last user message>"``.

    Args:
        request: The chat-completions request body.

    Returns:
        A ``chat.completion`` response body.
    """
    messages = request.get("messages") or []
    trailing: list[dict[str, Any]] = []
    for m in reversed(messages):
        if m.get("role") != "tool":
            break
        trailing.insert(0, m)
    if trailing:
        names = {}
        for m in messages:
            for c in m.get("tool_calls") or []:
                names[c["id"]] = c["function"]["name"]
        parts = [f"{names.get(m.get('tool_call_id'), '?')}={m.get('content')}" for m in trailing]
        return chat_completion("tool results: " + "; ".join(parts))
    user = next((m.get("content") or "" for m in reversed(messages)
                 if m.get("role") == "user"), "")
    offered = {t["function"]["name"] for t in request.get("tools") or []}
    match = _USE.search(user)
    if match and match.group("name") in offered:
        args, _ = json.JSONDecoder().raw_decode(user[match.end():])
        return chat_completion(None, [(match.group("name"), args)])
    return chat_completion(f"echo: {user}")


class FakeOpenAIServer(LocalHTTPServer):
    """A local OpenAI-compatible ``/chat/completions`` endpoint.

    Queued replies (:meth:`enqueue`) are played first, one per request; then
    :func:`toy_model` answers. Other paths get 404. ``requests`` records everything.
    """

    def __init__(self) -> None:
        self._queue: deque[CannedResponse] = deque()
        self._qlock = threading.Lock()
        super().__init__(self._handle)

    @property
    def base_url(self) -> str:
        """The base URL to put in ``LLMConfig.base_url`` (``http://127.0.0.1:<port>/v1``)."""
        return f"{self.url}/v1"

    def enqueue(self, *responses: CannedResponse) -> None:
        """Queue replies for the next requests (e.g. a 500, a delay, a tool call).

        Args:
            responses: Replies, used in order.
        """
        with self._qlock:
            self._queue.extend(responses)

    def chat_requests(self) -> list[dict[str, Any]]:
        """Return the JSON bodies of the chat-completion requests received so far."""
        return [r.json() for r in self.requests if r.path.endswith("/chat/completions")]

    def _handle(self, req: RecordedRequest) -> CannedResponse:
        if req.method != "POST" or not req.path.endswith("/chat/completions"):
            return CannedResponse(404, {"error": {"message": f"no route {req.path}"}})
        with self._qlock:
            queued = self._queue.popleft() if self._queue else None
        if queued is not None:
            return queued
        return CannedResponse(200, toy_model(req.json()))


__all__ = [
    "CannedResponse",
    "FakeOpenAIServer",
    "Handler",
    "LocalHTTPServer",
    "RecordedRequest",
    "chat_completion",
    "toy_model",
]
