"""LLM providers: echo, and openai against a real local OpenAI-compatible server."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from caxton.errors import LLMError, Timeout
from caxton.llm import (
    EchoProvider,
    LLMConfig,
    OpenAIProvider,
    ToolCall,
    parse_tool_markers,
    provider_for,
)
from caxton.llm.testing import CannedResponse, FakeOpenAIServer, chat_completion
from caxton.tools import builtin_registry


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as s:
        yield s


def _provider(server: FakeOpenAIServer, **cfg: object) -> OpenAIProvider:
    config = LLMConfig(provider="openai", base_url=server.base_url, model="toy-1",
                       **cfg)  # type: ignore[arg-type]
    return OpenAIProvider(config, api_key="sk-test", backoff_base=0.01, backoff_max=0.05)


def test_openai_provider_text_reply_and_request_shape(server: FakeOpenAIServer) -> None:
    p = _provider(server)
    tools = builtin_registry().view("A", ["csv_parser"]).tools()
    resp = p.complete([{"role": "system", "content": "be brief"},
                       {"role": "user", "content": "hello"}], tools, timeout=5)
    assert resp.content == "echo: hello" and resp.tool_calls == ()
    assert resp.finish_reason == "stop"
    req = server.requests[0]
    assert req.path == "/v1/chat/completions"
    assert req.headers["authorization"] == "Bearer sk-test"
    body = req.json()
    assert body["model"] == "toy-1" and body["messages"][0]["role"] == "system"
    fn = body["tools"][0]["function"]
    assert fn["name"] == "csv_parser" and fn["parameters"]["required"] == ["text"]
    p.close()


def test_openai_provider_tool_call_round_trip(server: FakeOpenAIServer) -> None:
    p = _provider(server)
    reg = builtin_registry()
    tools = reg.view("A", ["csv_parser"]).tools()
    messages: list[dict[str, object]] = [
        {"role": "user", "content": 'use csv_parser with {"text": "a,b\\n1,2\\n3,4"}'}]
    first = p.complete(messages, tools, timeout=5)
    assert first.content == "" and len(first.tool_calls) == 1
    call = first.tool_calls[0]
    assert call.name == "csv_parser" and call.arguments == {"text": "a,b\n1,2\n3,4"}
    result = reg.call(call.name, call.arguments, timeout=5)
    messages.append(first.assistant_message())
    messages.append({"role": "tool", "tool_call_id": call.id, "content": json.dumps(result)})
    second = p.complete(messages, tools, timeout=5)
    assert second.content.startswith("tool results: csv_parser=")
    assert '"row_count": 2' in second.content
    # the server saw the assistant tool_calls message and the tool result, in protocol shape
    sent = server.chat_requests()[1]["messages"]
    assert sent[1]["tool_calls"][0]["id"] == call.id
    assert sent[2] == {"role": "tool", "tool_call_id": call.id, "content": json.dumps(result)}


def test_openai_provider_retries_after_500_then_succeeds(server: FakeOpenAIServer) -> None:
    server.enqueue(CannedResponse(500, "upstream exploded"),
                   CannedResponse(429, "slow down", headers={"retry-after": "0"}))
    p = _provider(server, max_retries=2)
    resp = p.complete([{"role": "user", "content": "again"}], timeout=10)
    assert resp.content == "echo: again"
    assert len(server.chat_requests()) == 3


def test_openai_provider_gives_up_after_retries(server: FakeOpenAIServer) -> None:
    server.enqueue(*[CannedResponse(503, "down")] * 3)
    p = _provider(server, max_retries=1)
    with pytest.raises(LLMError, match=r"failed after 2 attempt\(s\): HTTP 503"):
        p.complete([{"role": "user", "content": "x"}], timeout=10)
    assert len(server.chat_requests()) == 2


def test_openai_provider_does_not_retry_client_errors(server: FakeOpenAIServer) -> None:
    server.enqueue(CannedResponse(401, {"error": {"message": "bad key"}}))
    p = _provider(server, max_retries=3)
    with pytest.raises(LLMError, match="HTTP 401") as err:
        p.complete([{"role": "user", "content": "x"}], timeout=10)
    assert "api_key_env" in err.value.message
    assert len(server.chat_requests()) == 1


def test_openai_provider_retries_a_slow_reply_then_times_out(server: FakeOpenAIServer) -> None:
    server.enqueue(CannedResponse(200, chat_completion("late"), delay=3))
    p = _provider(server, timeout=0.5, max_retries=3)
    resp = p.complete([{"role": "user", "content": "fast"}], timeout=10)
    assert resp.content == "echo: fast"  # the slow first attempt was retried
    server.enqueue(*[CannedResponse(200, chat_completion("late"), delay=3)] * 5)
    started = time.monotonic()
    with pytest.raises((Timeout, LLMError)):
        p.complete([{"role": "user", "content": "x"}], timeout=0.5)
    assert time.monotonic() - started < 3  # bounded by the overall budget, not the server


def test_openai_provider_connection_refused_is_llm_error() -> None:
    with FakeOpenAIServer() as s:
        url = s.base_url
    p = OpenAIProvider(LLMConfig(provider="openai", base_url=url, max_retries=1),
                       backoff_base=0.01)
    with pytest.raises(LLMError, match="connection failed"):
        p.complete([{"role": "user", "content": "x"}], timeout=5)


def test_openai_provider_malformed_reply(server: FakeOpenAIServer) -> None:
    server.enqueue(CannedResponse(200, {"choices": []}))
    with pytest.raises(LLMError, match="not a chat completion"):
        _provider(server).complete([{"role": "user", "content": "x"}], timeout=5)


def test_tool_call_with_bad_json_arguments_is_kept_as_error() -> None:
    call = ToolCall.parse("c1", "csv_parser", "{not json")
    assert call.arguments == {} and call.error and "not valid JSON" in call.error
    assert ToolCall.parse("c2", "t", {"a": 1}).arguments == {"a": 1}


def test_provider_for_reads_the_api_key_env(server: FakeOpenAIServer) -> None:
    cfg = LLMConfig(provider="openai", base_url=server.base_url, api_key_env="CAXTON_TEST_KEY")
    with pytest.raises(LLMError) as err:
        provider_for(cfg, agent="Bot", env={})
    assert "CAXTON_TEST_KEY" in err.value.message and "'Bot'" in err.value.message
    p = provider_for(cfg, env={"CAXTON_TEST_KEY": "k-123"})
    p.complete([{"role": "user", "content": "x"}], timeout=5)
    assert server.requests[-1].headers["authorization"] == "Bearer k-123"
    assert isinstance(provider_for(None), EchoProvider)
    assert isinstance(provider_for(LLMConfig()), EchoProvider)


def test_echo_provider_echoes_and_drives_tools_offline() -> None:
    echo = EchoProvider()
    plain = echo.complete([{"role": "system", "content": "s"},
                           {"role": "user", "content": "Process: hi\nContext: - a (b)"}])
    assert plain.content == "Process: hi\nContext: - a (b)" and plain.tool_calls == ()
    prompt = 'go [[tool:csv_parser {"text": "x\\n1"}]] and [[tool:json_validator]]'
    first = echo.complete([{"role": "user", "content": prompt}])
    assert [c.name for c in first.tool_calls] == ["csv_parser", "json_validator"]
    assert first.tool_calls[0].arguments == {"text": "x\n1"}
    history = [{"role": "user", "content": prompt}, first.assistant_message(),
               {"role": "tool", "tool_call_id": "echo_1", "content": "R1"},
               {"role": "tool", "tool_call_id": "echo_2", "content": "R2"}]
    final = echo.complete(history)
    assert final.content == prompt + "\n\nTool results:\n- csv_parser: R1\n- json_validator: R2"
    broken = parse_tool_markers("[[tool:x {oops]]")
    assert broken[0].error is not None
