"""The ``openai`` provider: any OpenAI-compatible ``/chat/completions`` endpoint.

Works with OpenAI, Ollama (``http://127.0.0.1:11434/v1``), vLLM and the llama.cpp server.
Tool calling uses the standard ``tools`` / ``tool_calls`` fields. Timeouts, connection errors,
HTTP 5xx and 429 are retried with exponential backoff and jitter (honouring ``Retry-After``)
up to ``LLMConfig.max_retries`` times, all within the caller's overall ``timeout``.

The client is asynchronous (the I/O loop's shared ``aiohttp.ClientSession``; its C HTTP
parser cost about a
third of the CPU per call that ``httpx.AsyncClient`` did on the same load, see
``docs/performance.md``): a call is a coroutine that a config agent
runs on the node's I/O loop (:class:`caxton.tenant.IOLoop`), so any number of conversations
can wait on the model at once without a thread each, and one slow answer never holds up
another conversation or agent. :meth:`OpenAIProvider.complete` runs the same coroutine and
waits, for synchronous callers.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aiohttp
import structlog

from caxton.errors import LLMError, Timeout
from caxton.llm.config import LLMConfig
from caxton.llm.types import ChatMessage, LLMResponse, ToolCall, ToolSchema, tool_definition
from caxton.tenant.ioloop import IOLoop, default_ioloop

_log = structlog.get_logger("caxton.llm")

_HINTS = {
    401: "check the API key in the variable named by llm.api_key_env",
    403: "check the API key's permissions",
    404: "check llm.base_url (it usually ends in /v1) and llm.model",
}


class OpenAIProvider:
    """Client of one OpenAI-compatible endpoint (over the I/O loop's pooled ``aiohttp`` session).

    Args:
        config: The agent's (or node's) ``llm`` section.
        api_key: The key sent as ``Authorization: Bearer``; ``None`` sends none.
        backoff_base: First retry delay in seconds (doubles each retry).
        backoff_max: Largest retry delay in seconds.
        rng: Source of jitter in ``[0, 1)`` (injectable for tests).
        sleep: Async sleep function (injectable for tests).
        ioloop: The loop :meth:`complete` runs on (default: the process's shared loop).
    """

    name = "openai"
    immediate = False
    """Calls wait on the network: run :meth:`acomplete` on the I/O loop, never inline."""

    def __init__(self, config: LLMConfig, *, api_key: str | None = None,
                 backoff_base: float = 0.2, backoff_max: float = 5.0,
                 rng: Callable[[], float] = random.random,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 ioloop: IOLoop | None = None) -> None:
        self.config = config
        self.url = config.base_url.rstrip("/") + "/chat/completions"
        self._headers = {"content-type": "application/json"}
        if api_key:
            self._headers["authorization"] = f"Bearer {api_key}"
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._rng = rng
        self._sleep = sleep
        self._ioloop = ioloop

    def close(self) -> None:
        """Nothing to release: connections belong to the I/O loop's shared session."""

    def _body(self, messages: Sequence[ChatMessage], tools: Sequence[ToolSchema]) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.config.model,
            "messages": list(messages),
            "temperature": self.config.temperature,
        }
        if tools:
            body["tools"] = [tool_definition(t) for t in tools]
            body["tool_choice"] = "auto"
        return body

    def complete(self, messages: Sequence[ChatMessage], tools: Sequence[ToolSchema] = (),
                 timeout: float | None = None) -> LLMResponse:
        """Ask the endpoint for the next turn and wait (see :meth:`acomplete`).

        Raises:
            LLMError: As :meth:`acomplete`.
            Timeout: As :meth:`acomplete`.
        """
        return (self._ioloop or default_ioloop()).run(self.acomplete(messages, tools, timeout))

    async def acomplete(self, messages: Sequence[ChatMessage], tools: Sequence[ToolSchema] = (),
                        timeout: float | None = None) -> LLMResponse:
        """Ask the endpoint for the next turn, retrying transient failures.

        Each attempt waits at most ``LLMConfig.timeout`` (and never past the overall budget).

        Args:
            messages: The conversation (OpenAI format).
            tools: Tools the model may call.
            timeout: Overall budget in seconds, retries and backoff included (``None``:
                ``LLMConfig.timeout * (max_retries + 1)``).

        Returns:
            The model's turn.

        Raises:
            LLMError: A non-retryable reply (4xx other than 429), a malformed reply, or
                every retry failed.
            Timeout: The overall budget ran out.
        """
        cfg = self.config
        budget = timeout if timeout is not None else cfg.timeout * (cfg.max_retries + 1)
        deadline = time.monotonic() + budget
        body = json.dumps(self._body(messages, tools)).encode()
        attempt = 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._timeout(budget, attempt, None)
            per_try = min(cfg.timeout, remaining)
            retry_after: float | None = None
            started = time.monotonic()
            session = (self._ioloop or default_ioloop()).http_session()
            try:
                async with session.post(
                        self.url, data=body, headers=self._headers,
                        timeout=aiohttp.ClientTimeout(total=per_try)) as resp:
                    status = resp.status
                    text = await resp.text(errors="replace")
                    retry_header = resp.headers.get("retry-after")
            except TimeoutError:
                cause = f"no answer within {per_try:.3g}s"
                if per_try < cfg.timeout:  # the caller's budget ran out, not one attempt's
                    raise self._timeout(budget, attempt + 1, cause) from None
            except aiohttp.ClientError as exc:
                cause = f"connection failed: {exc or type(exc).__name__}"
            else:
                _log.debug("llm.request", provider=self.name, model=cfg.model, status=status,
                           attempt=attempt + 1,
                           duration_ms=round((time.monotonic() - started) * 1000, 2))
                if status == 200:
                    return self._parse(text)
                excerpt = text[:300]
                if status != 429 and status < 500:
                    hint = _HINTS.get(status, "check the request the agent sends")
                    raise LLMError(
                        f"LLM endpoint {self.url} refused the request (HTTP {status}): "
                        f"{excerpt}; {hint}",
                        details=[{"status": status, "url": self.url, "model": cfg.model}],
                    )
                cause = f"HTTP {status}: {excerpt}"
                retry_after = _retry_after(retry_header)
            if attempt >= cfg.max_retries:
                _log.warning("llm.failed", provider=self.name, model=cfg.model,
                             attempts=attempt + 1, cause=cause)
                raise LLMError(
                    f"LLM endpoint {self.url} failed after {attempt + 1} attempt(s): {cause}; "
                    f"check that the server is up, or raise llm.max_retries / llm.timeout",
                    details=[{"url": self.url, "model": cfg.model, "attempts": attempt + 1}],
                )
            delay = min(self._backoff_max, self._backoff_base * 2**attempt)
            delay *= 0.5 + self._rng() / 2
            if retry_after is not None:
                delay = max(delay, min(retry_after, self._backoff_max))
            if time.monotonic() + delay >= deadline:
                raise self._timeout(budget, attempt + 1, cause)
            _log.info("llm.retry", provider=self.name, model=cfg.model, attempt=attempt + 1,
                      cause=cause, delay_s=round(delay, 3))
            await self._sleep(delay)
            attempt += 1

    def _timeout(self, budget: float, attempts: int, cause: str | None) -> Timeout:
        extra = f" (last failure: {cause})" if cause else ""
        return Timeout(
            f"LLM endpoint {self.url} gave no usable answer within {budget:.3g}s after "
            f"{attempts} attempt(s){extra}; raise the agent's response_timeout or llm.timeout",
            details=[{"url": self.url, "model": self.config.model, "attempts": attempts}],
        )

    def _parse(self, text: str) -> LLMResponse:
        try:
            data = json.loads(text)
            choice = data["choices"][0]
            msg = choice["message"]
            calls = tuple(
                ToolCall.parse(str(c.get("id") or f"call_{i}"), str(c["function"]["name"]),
                               c["function"].get("arguments"))
                for i, c in enumerate(msg.get("tool_calls") or [])
            )
            content = msg.get("content") or ""
            if not isinstance(content, str):  # some servers send content parts
                content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
            return LLMResponse(content, calls, choice.get("finish_reason"),
                               data.get("model"), data.get("usage") or {})
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            raise LLMError(
                f"LLM endpoint {self.url} sent a reply that is not a chat completion "
                f"({type(exc).__name__}: {exc}): {text[:300]}",
            ) from None


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


__all__ = ["OpenAIProvider"]
