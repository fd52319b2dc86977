"""The conversation engine end to end: real providers, real tools, real memory."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from caxton.conversation import (
    ConversationLimits,
    ConversationTracker,
    parse_direct_tool_call,
    process_message,
)
from caxton.errors import ConversationLimit, Timeout, ToolError, ToolNotDeclared
from caxton.llm import EchoProvider, LLMConfig, LLMResponse, OpenAIProvider
from caxton.llm.testing import CannedResponse, FakeOpenAIServer, chat_completion
from caxton.memory import MemoryHandle, MemoryStore
from caxton.tools import AgentToolView, Tool, builtin_registry
from caxton.tools.testing import sleep_tool

LIMITS = ConversationLimits(response_timeout=10, tool_call_timeout=5, max_tool_rounds=3)


class NoModel:
    """A provider that fails the test if the engine consults it."""

    name = "none"

    def complete(self, messages: Sequence[Any], tools: Sequence[Any] = (),
                 timeout: float | None = None) -> LLMResponse:
        raise AssertionError("the model must not be called")

    def close(self) -> None:
        pass


@pytest.fixture
def memory(tmp_path: Path) -> Iterator[MemoryHandle]:
    store = MemoryStore(tmp_path / "memory.db")
    yield store.handle("agent", agent="Bot", max_entities=100)
    store.close()


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as s:
        yield s


@pytest.fixture
def release() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()  # let abandoned slow tools finish


def _tools(release: threading.Event, declared: Sequence[str]) -> AgentToolView:
    reg = builtin_registry()
    reg.register(Tool("slow", "sleeps", {"type": "object"}, sleep_tool))
    return reg.view("Bot", declared)


def _openai(server: FakeOpenAIServer, **kw: Any) -> OpenAIProvider:
    return OpenAIProvider(LLMConfig(provider="openai", base_url=server.base_url, **kw),
                          backoff_base=0.01)


def test_echo_pipeline_shows_prompt_and_stores_memory(memory: MemoryHandle,
                                                      release: threading.Event) -> None:
    memory.observe("invoice-7", "paid on 3 May", entity_type="invoice")
    ctx = memory.memory_context("invoice-7")
    prompt = f"Process this data request: invoice-7 status\nAvailable context: {ctx}"
    reply = process_message(agent="Bot", user_prompt=prompt, request="invoice-7 status",
                            provider=EchoProvider(), tools=_tools(release, []),
                            memory=memory, limits=LIMITS, system_prompt="You are a bot.")
    assert reply.content == prompt and "paid on 3 May" in reply.content
    assert reply.rounds == 1 and reply.tool_calls == () and reply.memory_error is None
    assert [m["role"] for m in reply.new_messages] == ["user", "assistant"]
    assert memory.flush()  # notes are written behind the reply
    agent_entity = memory.get_entity("agent:Bot")
    assert agent_entity is not None
    assert "request: invoice-7 status" in agent_entity.observations[-1].text
    assert reply.to_content()["reply"] == prompt


def test_echo_markers_run_tools_offline(memory: MemoryHandle, release: threading.Event) -> None:
    prompt = ('[[tool:csv_parser {"text": "a,b\\n1,2"}]] [[tool:http_client '
              '{"url": "http://127.0.0.1:9/"}]]')
    reply = process_message(agent="Bot", user_prompt=prompt, request=prompt,
                            provider=EchoProvider(), tools=_tools(release, ["csv_parser"]),
                            memory=memory, limits=LIMITS, conversation_id="c-1")
    ok, refused = reply.tool_calls
    assert ok.ok and ok.result["row_count"] == 1
    assert not refused.ok and refused.error_code == "TOOL_NOT_DECLARED"
    assert "does not declare tool 'http_client'" in (refused.error or "")
    assert reply.rounds == 2
    assert "Tool results:\n- csv_parser:" in reply.content
    assert "TOOL_NOT_DECLARED" in reply.content  # the model saw the refusal as a result
    assert memory.flush()  # notes are written behind the reply
    assert [r.type for r in memory.relations("conversation:c-1")] == ["handled_by"]


def test_openai_tool_round_trip_through_engine(server: FakeOpenAIServer,
                                               memory: MemoryHandle,
                                               release: threading.Event) -> None:
    prompt = 'use json_validator with {"document": {"a": 1}, "schema": {"required": ["b"]}}'
    reply = process_message(agent="Bot", user_prompt=prompt, request=prompt,
                            provider=_openai(server), tools=_tools(release, ["json_validator"]),
                            memory=memory, limits=LIMITS)
    assert len(reply.tool_calls) == 1 and reply.tool_calls[0].ok
    assert reply.tool_calls[0].result["valid"] is False
    assert reply.content.startswith("tool results: json_validator=")
    assert [m["role"] for m in reply.new_messages] == ["user", "assistant", "tool", "assistant"]
    first_request = server.chat_requests()[0]
    assert [t["function"]["name"] for t in first_request["tools"]] == ["json_validator"]


def test_slow_tool_becomes_error_result_for_the_model(server: FakeOpenAIServer,
                                                      release: threading.Event) -> None:
    limits = ConversationLimits(response_timeout=10, tool_call_timeout=0.3, max_tool_rounds=2)
    started = time.monotonic()
    reply = process_message(agent="Bot", user_prompt="use slow with {}", request="x",
                            provider=_openai(server), tools=_tools(release, ["slow"]),
                            memory=None, limits=limits)
    assert time.monotonic() - started < 5
    (rec,) = reply.tool_calls
    assert not rec.ok and rec.error_code == "TOOL_TIMEOUT" and "did not finish" in (rec.error or "")
    assert "tool results: slow=" in reply.content and "did not finish" in reply.content


def test_max_tool_rounds_then_model_must_answer(server: FakeOpenAIServer,
                                                release: threading.Event) -> None:
    loop = chat_completion(None, [("csv_parser", {"text": "a\n1"})])
    server.enqueue(*[CannedResponse(200, loop)] * 2)
    limits = ConversationLimits(response_timeout=10, tool_call_timeout=5, max_tool_rounds=2)
    reply = process_message(agent="Bot", user_prompt="loop forever", request="x",
                            provider=_openai(server), tools=_tools(release, ["csv_parser"]),
                            memory=None, limits=limits)
    assert reply.rounds == 3 and len(reply.tool_calls) == 2
    bodies = server.chat_requests()
    assert "tools" in bodies[0] and "tools" in bodies[1] and "tools" not in bodies[2]
    assert reply.new_messages[-1]["role"] == "assistant"


def test_response_timeout_bounds_the_whole_message(server: FakeOpenAIServer,
                                                   release: threading.Event) -> None:
    server.enqueue(*[CannedResponse(200, chat_completion("late"), delay=5)] * 4)
    limits = ConversationLimits(response_timeout=0.5, tool_call_timeout=5, max_tool_rounds=2)
    started = time.monotonic()
    with pytest.raises(Timeout) as err:
        process_message(agent="Bot", user_prompt="hi", request="hi",
                        provider=_openai(server, timeout=5), tools=_tools(release, []),
                        memory=None, limits=limits)
    assert time.monotonic() - started < 4
    assert "'Bot'" in err.value.message and "response_timeout=0.5s" in err.value.message
    # a tool slower than the remaining response budget also ends in Timeout, promptly
    with pytest.raises(Timeout):
        process_message(agent="Bot", user_prompt="[[tool:slow]]", request="x",
                        provider=EchoProvider(), tools=_tools(release, ["slow"]),
                        memory=None, limits=limits)


def test_direct_tool_call_skips_the_model(release: threading.Event) -> None:
    tools = _tools(release, ["csv_parser", "slow"])
    request = {"tool": "csv_parser", "arguments": {"text": "k,v\nx,1\n"}}
    reply = process_message(agent="Bot", user_prompt="unused", request=request,
                            provider=NoModel(), tools=tools, memory=None, limits=LIMITS)
    assert reply.direct and reply.rounds == 0
    assert reply.tool_result["rows"] == [{"k": "x", "v": "1"}]
    assert reply.to_content()["tool_result"]["row_count"] == 1
    as_text = process_message(agent="Bot", user_prompt="", provider=NoModel(), tools=tools,
                              request='{"tool": "csv_parser", "arguments": {"text": "a\\n1"}}',
                              memory=None, limits=LIMITS)
    assert as_text.tool_result["columns"] == ["a"]
    with pytest.raises(ToolNotDeclared, match="json_validator"):
        process_message(agent="Bot", user_prompt="", provider=NoModel(), tools=tools,
                        request={"tool": "json_validator", "arguments": {}},
                        memory=None, limits=LIMITS)
    with pytest.raises(ToolError, match="invalid arguments"):
        process_message(agent="Bot", user_prompt="", provider=NoModel(), tools=tools,
                        request={"tool": "csv_parser", "arguments": {"txt": 1}},
                        memory=None, limits=LIMITS)
    short = ConversationLimits(response_timeout=10, tool_call_timeout=0.2)
    with pytest.raises(ToolError, match="did not finish"):
        process_message(agent="Bot", user_prompt="", provider=NoModel(), tools=tools,
                        request={"tool": "slow"}, memory=None, limits=short)


def test_parse_direct_tool_call_only_accepts_the_exact_shape() -> None:
    assert parse_direct_tool_call({"tool": "t"}) is not None
    assert parse_direct_tool_call({"tool": "t", "arguments": {"a": 1}}).arguments == {"a": 1}  # type: ignore[union-attr]
    assert parse_direct_tool_call({"tool": "t", "extra": 1}) is None
    assert parse_direct_tool_call({"tool": "t", "arguments": [1]}) is None
    assert parse_direct_tool_call("please use the tool") is None
    assert parse_direct_tool_call('{"tool": 3}') is None


def test_memory_limit_does_not_lose_the_reply(tmp_path: Path, release: threading.Event) -> None:
    store = MemoryStore(tmp_path / "m.db")
    try:
        mem = store.handle("agent", agent="Bot", max_entities=1)
        reply = process_message(agent="Bot", user_prompt="hello", request="hello",
                                provider=EchoProvider(), tools=_tools(release, []),
                                memory=mem, limits=LIMITS, conversation_id="c-9")
        assert reply.content == "hello"
        assert reply.memory_error and "max_memory_entities=1" in reply.memory_error
        assert reply.to_content()["memory_error"] == reply.memory_error
    finally:
        store.close()


def test_history_carries_across_messages_of_a_conversation(server: FakeOpenAIServer,
                                                           release: threading.Event) -> None:
    tracker = ConversationTracker(5, agent="Bot")
    provider, tools = _openai(server), _tools(release, [])
    for text in ("first", "second"):
        tracker.open("conv-1")
        reply = process_message(agent="Bot", user_prompt=text, request=text,
                                provider=provider, tools=tools, memory=None,
                                limits=LIMITS, history=tracker.history("conv-1"),
                                conversation_id="conv-1")
        tracker.append("conv-1", reply.new_messages)
        tracker.release("conv-1")
    sent = server.chat_requests()[1]["messages"]
    assert [m["content"] for m in sent] == ["first", "echo: first", "second"]
    assert len(tracker.history("conv-1")) == 4


def test_conversation_tracker_enforces_max_conversations() -> None:
    now = [0.0]
    tracker = ConversationTracker(2, agent="Bot", idle_timeout=60, clock=lambda: now[0])
    for cid in ("a", "b", "a"):  # a known conversation always gets in
        tracker.open(cid)
        tracker.release(cid)
    with pytest.raises(ConversationLimit) as err:
        tracker.open("c")
    assert "'Bot'" in err.value.message and "max_conversations=2" in err.value.message
    assert "caxton conversations end Bot" in err.value.message
    assert tracker.end("a") and tracker.open_count() == 1
    now[0] = 30.0
    tracker.open("b")  # in flight: never idles out
    now[0] = 100.0
    tracker.open("c")
    assert sorted(tracker.ids()) == ["b", "c"]
    with pytest.raises(ConversationLimit):
        tracker.open("d")
    listed = {c["id"]: c for c in tracker.describe()}
    assert listed["b"]["in_flight"] == 1 and listed["b"]["messages"] == 2
    assert listed["b"]["expires_in_s"] is None
    tracker.release("b")
    now[0] = 161.0  # "b" idles out 60 s after its last message finished
    tracker.open("d")
    assert sorted(tracker.ids()) == ["c", "d"]


def test_tracker_trims_history_at_a_user_turn() -> None:
    tracker = ConversationTracker(1, max_history_messages=4)
    tracker.open("x")
    tracker.append("x", [{"role": "user", "content": "1"}, {"role": "assistant", "content": "1"}])
    tracker.append("x", [{"role": "user", "content": "2"}, {"role": "assistant", "tool_calls": []},
                         {"role": "tool", "content": "r"}, {"role": "assistant", "content": "2"}])
    hist = tracker.history("x")
    assert hist[0] == {"role": "user", "content": "2"} and len(hist) == 4


def test_tracker_is_thread_safe_under_contention() -> None:
    tracker = ConversationTracker(3)
    admitted: list[int] = []
    refused: list[int] = []
    gate = threading.Barrier(8)

    def one(i: int) -> None:
        gate.wait(10)
        try:
            tracker.open(f"conv-{i}")
            admitted.append(i)
        except ConversationLimit:
            refused.append(i)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(admitted) == 3 and len(refused) == 5 and tracker.open_count() == 3
