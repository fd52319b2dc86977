"""Config agents at production shape: concurrent conversations, ordered messages, bounded
one-shot traffic, no thread per agent. A real manager, real pooled actors, a real local
model server (aiohttp) that counts how many requests it holds at once.

Timing bounds are generous (10x the quiet figure or more); the tight figures are in
``benchmarks/bench_config.py``."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from caxton import AgentLifecycleManager, errors
from caxton.llm.fake_server import FakeModelServer
from caxton.manager import SupervisionSettings
from caxton.messages import Message
from supervisors import Backoff, CircuitBreaker

FAST = SupervisionSettings(backoff=Backoff(min=0.01, max=0.1),
                           breaker=CircuitBreaker(fail_max=3, reset_timeout=0.5),
                           healthy_after=0.2, shutdown=2.0)


def md(name: str, *, llm: str = "{provider: echo}", template: str = "{{ request }}",
       limits: str = "", system: str = "") -> str:
    return (f"---\nname: {name}\nversion: \"1.0.0\"\ncapabilities: [conversation]\ntools: []\n"
            f"resource_limits:\n  memory_scope: agent\n{limits}"
            f"llm: {llm}\nsystem_prompt: {json.dumps(system)}\n"
            f"user_prompt_template: {json.dumps(template)}\n---\n\nTest agent.\n")


def eventually(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Wait until ``condition()`` holds (checked every 20 ms), at most ``timeout`` seconds;
    for states that offer no event to wait on (a rollout's step, a server's counter)."""
    tick = threading.Event()
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout:g}s waiting for {what}"
        tick.wait(0.02)


def openai(server: FakeModelServer) -> str:
    return f"{{provider: openai, base_url: '{server.base_url}', model: fake, max_retries: 0}}"


@pytest.fixture
def manager() -> Iterator[AgentLifecycleManager]:
    m = AgentLifecycleManager(supervision=FAST)
    yield m
    m.shutdown(timeout=5)


@pytest.fixture
def model() -> Iterator[FakeModelServer]:
    with FakeModelServer(latency=0.5) as server:
        yield server


def test_conversations_of_one_agent_wait_on_the_model_concurrently(
        manager: AgentLifecycleManager, model: FakeModelServer) -> None:
    manager.deploy_config_agent(md("Talker", llm=openai(model)))
    started = time.monotonic()
    futures = [manager.route(Message(receiver="Talker", content=f"hi {i}",
                                     conversation_id=f"c{i}")) for i in range(20)]
    replies = [f.get(timeout=30) for f in futures]
    elapsed = time.monotonic() - started
    assert [r.content["reply"] for r in replies] == [f"echo: hi {i}" for i in range(20)]
    # Serialised, 20 calls of 0.5 s take 10 s and the model never holds two at once.
    assert model.max_in_flight >= 10, model.stats()
    assert elapsed < 8.0, f"20 concurrent conversations took {elapsed:.1f}s"


def test_messages_of_one_conversation_run_one_at_a_time_in_order(
        manager: AgentLifecycleManager) -> None:
    with FakeModelServer(latency=0.05) as model:
        manager.deploy_config_agent(md("Ordered", llm=openai(model)))
        futures = [manager.route(Message(receiver="Ordered", content=f"m{i}",
                                         conversation_id="one")) for i in range(8)]
        replies = [f.get(timeout=30) for f in futures]
        assert [r.content["reply"] for r in replies] == [f"echo: m{i}" for i in range(8)]
        assert model.max_in_flight == 1, model.stats()
        assert model.user_messages == [f"m{i}" for i in range(8)]


def test_one_shot_messages_open_no_conversation_and_have_their_own_bound(
        manager: AgentLifecycleManager, model: FakeModelServer) -> None:
    manager.deploy_config_agent(md(
        "Bounded", llm=openai(model),
        limits="  max_conversations: 1\n  max_concurrent_requests: 3\n"))
    first = [manager.route(Message(receiver="Bounded", content=f"q{i}")) for i in range(3)]
    with pytest.raises(errors.Busy) as err:
        manager.route(Message(receiver="Bounded", content="one too many")).get(timeout=30)
    assert "max_concurrent_requests=3" in err.value.message
    # the single conversation slot is still free: one-shots never take it
    conv = manager.route(Message(receiver="Bounded", content="in a conversation",
                                 conversation_id="only"))
    with pytest.raises(errors.ConversationLimit):
        manager.route(Message(receiver="Bounded", content="x",
                              conversation_id="second")).get(timeout=30)
    assert [f.get(timeout=30).content["reply"] for f in first] == [
        "echo: q0", "echo: q1", "echo: q2"]
    assert conv.get(timeout=30).content["reply"] == "echo: in a conversation"
    assert manager.send("Bounded", "again", timeout=30).content["reply"] == "echo: again"


def test_conversations_are_listed_and_ended_and_idle_out(
        manager: AgentLifecycleManager) -> None:
    manager.deploy_config_agent(md("Lister", limits="  conversation_idle_timeout: 60s\n"))
    for cid in ("a", "b"):
        manager.send("Lister", "hello", conversation_id=cid)
    listed = manager.conversations("Lister")
    assert [c["id"] for c in listed] == ["a", "b"]
    assert listed[0]["messages"] == 1 and listed[0]["history"] == 2
    assert 0 < listed[0]["expires_in_s"] <= 60
    assert manager.end_conversation("Lister", "a")
    assert [c["id"] for c in manager.conversations("Lister")] == ["b"]
    assert not manager.end_conversation("Lister", "a")
    with pytest.raises(errors.AgentNotFound):
        manager.conversations("Nobody")


def test_echo_reply_does_not_grow_with_memory(manager: AgentLifecycleManager) -> None:
    manager.deploy_config_agent(md(
        "Recaller", system="{% if memory_context %}[memory] {{ memory_context }}{% endif %}"))
    replies = [manager.send("Recaller", f"note {i}").content for i in range(30)]
    assert all(r["reply"] == f"note {i}" for i, r in enumerate(replies))
    assert "request: note 0 | reply: note 0" in replies[-1]["memory_context"]  # shown beside


def test_stopping_an_agent_answers_its_in_flight_messages(
        manager: AgentLifecycleManager, model: FakeModelServer) -> None:
    model.latency = 5.0
    manager.deploy_config_agent(md("Stopper", llm=openai(model)))
    futures = [manager.route(Message(receiver="Stopper", content=f"s{i}",
                                     conversation_id=f"c{i % 2}")) for i in range(4)]
    eventually(lambda: model.in_flight >= 2, 10, "two model calls in flight")
    manager.remove("Stopper", timeout=0.5)
    outcomes = []
    for f in futures:
        try:
            f.get(timeout=10)
            outcomes.append("reply")
        except errors.CaxtonError as exc:
            outcomes.append(str(exc.code))
    assert len(outcomes) == 4 and set(outcomes) <= {"reply", "AGENT_UNAVAILABLE"}, outcomes


def test_thousands_of_config_agents_add_no_threads(manager: AgentLifecycleManager) -> None:
    manager.deploy_config_agent(md("Warm0"))
    manager.send("Warm0", "x")
    before = threading.active_count()
    for i in range(1, 2000):
        manager.deploy_config_agent(md(f"Many{i}"))
    for i in range(1, 2000, 97):
        assert manager.send(f"Many{i}", "ping").content["reply"] == "ping"
    after = threading.active_count()
    # pooled actors: the dispatcher may grow a few workers, never one per agent
    assert after - before < 32, f"{after - before} threads for 2,000 config agents"


def test_an_idle_config_agent_stays_small_after_a_thousand_messages(
        manager: AgentLifecycleManager) -> None:
    import gc
    import tracemalloc

    manager.deploy_config_agent(md("Warm", system="{{ memory_context }}"))
    for i in range(50):  # warm every code path and cache first
        manager.send("Warm", f"w{i}")
        manager.send("Warm", f"w{i}", conversation_id="wc")
    manager.memory_store.flush()
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        manager.deploy_config_agent(md("Small", system="{{ memory_context }}"))
        for i in range(500):
            assert manager.send("Small", f"m{i}").content["reply"] == f"m{i}"
        for i in range(500):
            manager.send("Small", f"c{i}", conversation_id=f"conv{i % 5}")
        open_history = sum(c["history"] for c in manager.conversations("Small"))
        assert open_history == 5 * 50  # history is capped per conversation
        for k in range(5):  # idle: its conversations ended
            assert manager.end_conversation("Small", f"conv{k}")
        manager.memory_store.flush()
        gc.collect()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    # what the runtime's own code allocated (other tests' leftover threads, the logging
    # library's caches and the interpreter are not the agent)
    mine = [tracemalloc.Filter(True, f"*{pkg}/*") for pkg in ("caxton", "supervisors",
                                                               "pykka", "jinja2")]
    diff = after.filter_traces(mine).compare_to(before.filter_traces(mine), "lineno")
    grown = sum(s.size_diff for s in diff)
    top = "; ".join(f"{s.traceback[0]}: {s.size_diff // 1024} KiB" for s in diff[:5])
    # the deployed agent after 1,000 messages, beside its memory store (SQLite, on disk)
    assert grown < 100 * 1024, f"the agent holds {grown / 1024:.0f} KiB: {top}"


def test_a_gradual_reload_waits_on_exactly_the_open_conversations(
        manager: AgentLifecycleManager) -> None:
    """An old version is held by its open conversations: one ended, one that idles out
    (resource_limits.conversation_idle_timeout) — then the reload completes."""
    limits = "  conversation_idle_timeout: 1s\n"
    manager.deploy_config_agent(md("Grad", template="v1 {{ request }}", limits=limits))
    for cid in ("ended", "idle"):
        assert manager.send("Grad", "hi", conversation_id=cid).content["reply"] == "v1 hi"
    v2 = md("Grad", template="v2 {{ request }}", limits=limits).replace('"1.0.0"', '"2.0.0"')
    manager.reload("Grad", v2, strategy="gradual")
    # the rollout's first step (new conversations -> v2) is asynchronous
    eventually(lambda: manager.reload_status("Grad").weights.get("2.0.0") == 100, 20,
               "new conversations to go to v2")
    assert manager.send("Grad", "new", conversation_id="fresh").content["reply"] == "v2 new"
    assert manager.send("Grad", "x", conversation_id="ended").content["reply"] == "v1 x"
    assert manager.end_conversation("Grad", "ended")
    assert str(manager.reload_status("Grad").outcome) == "running"  # "idle" still holds v1
    def done() -> bool:  # the outcome is set a moment before the current version switches
        return (str(manager.reload_status("Grad").outcome) == "succeeded"
                and manager.get_agent_by_name("Grad").version == "2.0.0")

    eventually(done, 20, "the gradual reload to complete once 'idle' idled out")
    assert "idle" not in [c["id"] for c in manager.conversations("Grad")]
    assert manager.send("Grad", "back", conversation_id="idle").content["reply"] == "v2 back"
