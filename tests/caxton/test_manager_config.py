"""AgentLifecycleManager with configuration agents, end to end: real pykka actors under real
supervisors, the real SQLite memory store, the real tool registry and a real local
OpenAI-compatible HTTP server. Short supervision settings; every wait is bounded polling."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from caxton import AgentLifecycleManager, errors
from caxton.llm.testing import CannedResponse, FakeOpenAIServer, LocalHTTPServer
from caxton.manager import SupervisionSettings
from caxton.messages import Message
from caxton.tools import builtin_registry
from supervisors import Backoff, CircuitBreaker

FAST = SupervisionSettings(backoff=Backoff(min=0.01, max=0.1),
                           breaker=CircuitBreaker(fail_max=3, reset_timeout=0.5),
                           healthy_after=0.2, shutdown=2.0)
ROOT = Path(__file__).resolve().parents[2]
ECHO_MD = ROOT / "agents" / "echo.md"

MakeManager = Callable[..., AgentLifecycleManager]


@pytest.fixture
def make_manager() -> Iterator[MakeManager]:
    made: list[AgentLifecycleManager] = []

    def make(**kw: Any) -> AgentLifecycleManager:
        kw.setdefault("supervision", FAST)
        m = AgentLifecycleManager(**kw)
        made.append(m)
        return m

    yield make
    for m in made:
        m.shutdown(timeout=5)


@pytest.fixture
def manager(make_manager: MakeManager) -> AgentLifecycleManager:
    return make_manager()


def agent_md(name: str, *, version: str = "1.0.0", template: str = "{{ request }}",
             tools: tuple[str, ...] = (), scope: str = "agent", extra_limits: str = "",
             llm: str = "{provider: echo}") -> str:
    return (
        "---\n"
        f"name: {name}\n"
        f'version: "{version}"\n'
        "capabilities: [conversation, memory, tool-use]\n"
        f"tools: [{', '.join(tools)}]\n"
        "resource_limits:\n"
        f"  memory_scope: {scope}\n"
        f"{extra_limits}"
        f"llm: {llm}\n"
        f"user_prompt_template: {json.dumps(template)}\n"
        "---\n\nTest agent.\n"
    )


def reply_text(msg: Message) -> str:
    assert isinstance(msg.content, dict), msg.content
    return str(msg.content["reply"])


def said(msg: Message) -> str:
    """The echoed request of agents/echo.md (its reply adds recalled memory below it)."""
    return reply_text(msg).split("\n")[0]


def wait_for(pred: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def transitions(m: AgentLifecycleManager, name: str) -> list[tuple[str, str]]:
    return [(t["from"], t["to"]) for t in m.get_agent_by_name(name).lifecycle]


# ---------------------------------------------------------------------- lifecycle


def test_every_legal_config_transition_through_the_api(manager: AgentLifecycleManager) -> None:
    res = manager.deploy_config_agent(ECHO_MD)
    assert res.state == "Active" and res.operation == "deploy"
    assert said(manager.send("echo", "one")) == "one"
    assert manager.suspend("echo").state == "Suspended"
    assert manager.resume("echo").state == "Active"
    assert manager.disable("echo", timeout=5).state == "Inactive"
    with pytest.raises(errors.AgentUnavailable, match="Inactive"):
        manager.send("echo", "while disabled")
    assert manager.resume("echo").state == "Active"          # Inactive -> Active
    assert said(manager.send("echo", "two")) == "two"
    manager.suspend("echo")
    assert manager.disable("echo", timeout=5).state == "Inactive"  # Suspended -> Inactive
    assert manager.recover("echo").state == "Active"          # Inactive -> Active again
    assert said(manager.send("echo", "three")) == "three"
    hist = manager.get_agent_by_name("echo").lifecycle
    assert [(t["from"], t["to"]) for t in hist] == [
        ("Unvalidated", "Validated"), ("Validated", "Registered"), ("Registered", "Active"),
        ("Active", "Suspended"), ("Suspended", "Active"), ("Active", "Inactive"),
        ("Inactive", "Active"), ("Active", "Suspended"), ("Suspended", "Inactive"),
        ("Inactive", "Active"),
    ]
    stamps = [t["at"] for t in hist]
    assert stamps == sorted(stamps) and all(s > 0 for s in stamps)
    assert all(t["reason"] for t in hist)


@pytest.mark.parametrize("setup,op,src,dst", [
    ([], "resume", "Active", "Active"),
    (["suspend"], "suspend", "Suspended", "Suspended"),
    (["disable"], "suspend", "Inactive", "Suspended"),
    (["disable"], "disable", "Inactive", "Inactive"),
])
def test_illegal_config_transitions_name_both_states(
        manager: AgentLifecycleManager, setup: list[str], op: str, src: str, dst: str) -> None:
    manager.deploy_config_agent(ECHO_MD)
    for step in setup:
        getattr(manager, step)("echo")
    before = transitions(manager, "echo")
    with pytest.raises(errors.IllegalTransition) as exc:
        getattr(manager, op)("echo")
    assert exc.value.code == "ILLEGAL_TRANSITION"
    assert f"from {src} to {dst}" in exc.value.message, exc.value.message
    assert "allowed" in exc.value.message
    assert transitions(manager, "echo") == before  # nothing recorded, state unchanged
    assert manager.get_agent_by_name("echo").state == src


def test_reload_of_an_inactive_agent_is_refused_naming_its_state(
        manager: AgentLifecycleManager) -> None:
    manager.deploy_config_agent(ECHO_MD)
    manager.disable("echo", timeout=5)
    with pytest.raises(errors.IllegalTransition, match="Inactive"):
        manager.reload("echo", ECHO_MD.read_text())


def test_deploying_the_same_name_twice_is_refused(manager: AgentLifecycleManager) -> None:
    manager.deploy_config_agent(ECHO_MD)
    with pytest.raises(errors.AgentExists, match="reload"):
        manager.deploy_config_agent(ECHO_MD)
    assert said(manager.send("echo", "still one")) == "still one"


def test_remove_then_messages_get_agent_not_found_promptly(
        manager: AgentLifecycleManager) -> None:
    manager.deploy_config_agent(ECHO_MD)
    manager.send("echo", "hi", "conv-open")  # a pinned, still-open conversation
    t0 = time.monotonic()
    manager.remove("echo", timeout=20)
    assert time.monotonic() - t0 < 5, "remove waited for the open conversation to time out"
    with pytest.raises(errors.AgentNotFound):
        manager.send("echo", "gone")
    assert manager.agent_names() == []


# ---------------------------------------------------------------------- suspend / resume


def test_messages_sent_while_suspended_wait_and_are_answered_in_order(
        make_manager: MakeManager) -> None:
    m = make_manager(suspend_queue_limit=50, suspend_wait=30.0)
    m.deploy_config_agent(ECHO_MD)
    m.suspend("echo")
    order: list[int] = []
    lock = threading.Lock()
    futures = []
    for i in range(20):
        f = m.route(Message(receiver="echo", content=f"m{i}", conversation_id="c1"))

        def done(_: Any, i: int = i) -> None:
            with lock:
                order.append(i)
        f.add_done_callback(done)
        futures.append(f)
    time.sleep(0.2)
    assert not any(f.done() for f in futures), "a message got through a suspended agent"
    assert m.get_agent_by_name("echo").details["waiting"] == 20
    assert m.resume("echo").details["held"] == 20
    replies = [f.get(timeout=10) for f in futures]
    assert [said(r) for r in replies] == [f"m{i}" for i in range(20)]
    assert order == list(range(20))
    assert m.get_agent_by_name("echo").details["waiting"] == 0


def test_past_the_queue_bound_a_suspended_agent_refuses_with_a_typed_error(
        make_manager: MakeManager) -> None:
    m = make_manager(suspend_queue_limit=3, suspend_wait=30.0)
    m.deploy_config_agent(ECHO_MD)
    m.suspend("echo")
    held = [m.route(Message(receiver="echo", content=i)) for i in range(3)]
    with pytest.raises(errors.AgentSuspended, match="resume"):
        m.send("echo", "fourth", timeout=5)
    assert not any(f.done() for f in held)
    m.resume("echo")
    assert [said(f.get(timeout=10)) for f in held] == ["0", "1", "2"]


def test_past_suspend_wait_held_messages_end_in_agent_suspended(
        make_manager: MakeManager) -> None:
    m = make_manager(suspend_queue_limit=10, suspend_wait=0.3)
    m.deploy_config_agent(ECHO_MD)
    m.suspend("echo")
    t0 = time.monotonic()
    held = [m.route(Message(receiver="echo", content=i)) for i in range(4)]
    for f in held:
        with pytest.raises(errors.AgentSuspended, match="suspended"):
            f.get(timeout=10)
    assert time.monotonic() - t0 >= 0.25
    m.resume("echo")  # nothing left to deliver; the agent answers new messages
    assert said(m.send("echo", "after")) == "after"


# ---------------------------------------------------------------------- reload


def test_reload_keeps_memory_and_the_in_flight_conversation(
        manager: AgentLifecycleManager) -> None:
    tpl = ("v1 {% for turn in conversation %}[{{ turn.role }}: {{ turn.content }}]"
           "{% endfor %} now: {{ request }}")
    manager.deploy_config_agent(agent_md("Talker", template=tpl))
    first = reply_text(manager.send("Talker", "the zebra is striped", "conv-1"))
    assert first.startswith("v1 ") and "now: the zebra is striped" in first
    mem_before = manager.get_agent_by_name("Talker").details["memory"]
    assert mem_before["entities"] >= 1
    res = manager.reload("Talker", agent_md("Talker", version="2.0.0",
                                            template=tpl.replace("v1 ", "v2 ")))
    assert res.version == "2.0.0"
    second = reply_text(manager.send("Talker", "and the lion?", "conv-1"))
    assert second.startswith("v2 "), second           # served by the new version ...
    # ... with the conversation so far (v1's rendered prompt and its reply)
    assert "[user: v1  now: the zebra is striped][assistant: v1  now: the zebra" in second
    st = manager.get_agent_by_name("Talker")
    assert st.version == "2.0.0" and st.versions == ["1.0.0", "2.0.0"]
    assert st.details["memory"]["entities"] >= mem_before["entities"]
    # memory learnt by v1 is recalled by v2 in a fresh conversation
    tpl_mem = "v3 {{ request }} | memory: {{ memory_context }}"
    manager.reload("Talker", agent_md("Talker", version="3.0.0", template=tpl_mem))
    third = reply_text(manager.send("Talker", "zebra", "conv-2"))
    assert third.startswith("v3 ") and "striped" in third, third


def test_a_reload_with_a_broken_file_is_refused_and_the_old_version_keeps_serving(
        manager: AgentLifecycleManager) -> None:
    manager.deploy_config_agent(agent_md("Talker"))
    broken = agent_md("Talker", version="2.0.0").replace("capabilities: [", "capabilities: [[")
    with pytest.raises(errors.ValidationFailed) as exc:
        manager.reload("Talker", broken)
    # the parser notices the unclosed "[[" of line 4 on line 5 and says where it started
    assert exc.value.details and exc.value.details[0]["line"] == 5
    assert "line 4" in exc.value.details[0]["message"]
    assert reply_text(manager.send("Talker", "still v1")) == "still v1"
    assert manager.get_agent_by_name("Talker").version == "1.0.0"


def test_messages_during_reload_all_get_one_answer(manager: AgentLifecycleManager) -> None:
    manager.deploy_config_agent(agent_md("Talker", template="A {{ request }}"))
    stop = threading.Event()
    futures = []

    def sender() -> None:
        i = 0
        while not stop.is_set():
            futures.append(manager.route(
                Message(receiver="Talker", content=str(i), conversation_id=f"c{i % 5}")))
            i += 1
            time.sleep(0.001)

    t = threading.Thread(target=sender)
    t.start()
    for n in range(2, 5):
        time.sleep(0.05)
        manager.reload("Talker", agent_md("Talker", version=f"{n}.0.0",
                                          template=f"{'ABCDE'[n - 1]} {{{{ request }}}}"))
    after = len(futures)  # everything routed from here on must reach version D
    wait_for(lambda: len(futures) >= after + 10, what="messages after the last reload")
    stop.set()
    t.join()
    texts = [reply_text(f.get(timeout=10)) for f in futures]
    assert len(texts) == len(futures) > 20
    assert all(f.done() and f.error is None for f in futures)
    assert all(x.startswith("D ") for x in texts[after + 1:]), texts[after + 1:]
    assert {x[0] for x in texts} <= set("ABCD")


# ---------------------------------------------------------------------- isolation


def test_a_broken_file_beside_good_ones_fails_alone(
        manager: AgentLifecycleManager, tmp_path: Path) -> None:
    (tmp_path / "alpha.md").write_text(agent_md("Alpha"))
    (tmp_path / "beta.md").write_text(agent_md("Beta"))
    # line 5 of broken.md opens a flow sequence that is never closed (noticed on line 6)
    (tmp_path / "broken.md").write_text(
        "---\nname: Broken\nversion: \"1.0.0\"\ncapabilities: [echo]\ntools: [csv_parser\n"
        "---\n")
    (tmp_path / "unknown.md").write_text(agent_md("Gamma").replace("tools:", "toolz:"))
    outcomes: dict[str, Any] = {}
    for path in sorted(tmp_path.glob("*.md")):
        try:
            outcomes[path.name] = manager.deploy_config_agent(path)
        except errors.CaxtonError as exc:
            outcomes[path.name] = exc
    assert outcomes["alpha.md"].state == "Active" and outcomes["beta.md"].state == "Active"
    bad = outcomes["broken.md"]
    assert isinstance(bad, errors.ValidationFailed) and bad.code == "VALIDATION_FAILED"
    first = bad.details[0]
    assert first["file"] == str(tmp_path / "broken.md") and first["line"] == 6, first
    assert "starts on line 5" in first["message"]
    assert str(tmp_path / "broken.md") in bad.message
    unknown = outcomes["unknown.md"]
    assert isinstance(unknown, errors.ValidationFailed)
    assert any(d["field"] and "toolz" in d["field"] and "tools" in d["message"] + d["fix"]
               for d in unknown.details), unknown.details
    assert manager.agent_names() == ["Alpha", "Beta"]
    assert reply_text(manager.send("Alpha", "a")) == "a"
    assert reply_text(manager.send("Beta", "b")) == "b"


# ---------------------------------------------------------------------- openai provider, tools


@pytest.fixture
def llm_server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as server:
        yield server


def openai_md(name: str, server: FakeOpenAIServer, tools: tuple[str, ...],
              tool_timeout: str = "5s") -> str:
    llm = ("{provider: openai, model: toy, base_url: " + json.dumps(server.base_url)
           + ", timeout: 5, max_retries: 0}")
    return agent_md(name, tools=tools, llm=llm,
                    extra_limits=f"  tool_call_timeout: {tool_timeout}\n"
                                 "  response_timeout: 20s\n")


def test_openai_agent_calls_a_tool_through_the_local_server(
        manager: AgentLifecycleManager, llm_server: FakeOpenAIServer) -> None:
    manager.deploy_config_agent(openai_md("Analyst", llm_server, ("csv_parser",)))
    plain = manager.send("Analyst", "hello model", "c1")
    assert reply_text(plain) == "echo: hello model"
    reply = manager.send("Analyst", 'use csv_parser with {"text": "a,b\\n1,2\\n3,4"}', "c1")
    content = reply.content
    assert content["rounds"] == 2
    assert [c["name"] for c in content["tool_calls"]] == ["csv_parser"]
    assert content["tool_calls"][0]["ok"] is True
    assert content["reply"].startswith("tool results: csv_parser=")
    reqs = llm_server.chat_requests()
    assert len(reqs) == 3
    offered = {t["function"]["name"] for t in reqs[1]["tools"]}
    assert offered == {"csv_parser"}
    assert reqs[2]["messages"][-1]["role"] == "tool"
    # the conversation so far went to the model with the second message
    assert any(m.get("content") == "echo: hello model" for m in reqs[1]["messages"])


def test_openai_agent_tool_timeout_is_an_error_result_not_a_crash(
        make_manager: MakeManager, llm_server: FakeOpenAIServer) -> None:
    slow = LocalHTTPServer(lambda req: CannedResponse(200, {"late": True}, delay=5.0)).start()
    try:
        m = make_manager(tools=builtin_registry(http_allowed_hosts=[f"127.0.0.1:{slow.port}"]))
        m.deploy_config_agent(openai_md("Fetcher", llm_server, ("http_client",),
                                        tool_timeout="300ms"))
        t0 = time.monotonic()
        reply = m.send("Fetcher", 'use http_client with {"url": "' + slow.url + '/slow"}',
                       timeout=15)
        assert time.monotonic() - t0 < 4.5
        call = reply.content["tool_calls"][0]
        assert call["name"] == "http_client" and call["ok"] is False
        assert "tool results: http_client=" in reply_text(reply)
        # the registry's deadline ("did not finish") or the client's own ("within 0.3s"),
        # whichever fires first under load
        text = reply_text(reply)
        assert "did not finish" in text or "did not answer within 0.3s" in text, text
        # the agent is fine: no restart, answers the next message
        assert reply_text(m.send("Fetcher", "still there?")) == "echo: still there?"
        st = m.get_agent_by_name("Fetcher")
        assert st.restarts == 0 and st.health_status == "healthy"
    finally:
        slow.stop()


def test_structured_direct_tool_call_runs_the_tool_without_the_model(
        manager: AgentLifecycleManager, llm_server: FakeOpenAIServer) -> None:
    manager.deploy_config_agent(openai_md("Analyst", llm_server, ("csv_parser",)))
    reply = manager.send("Analyst", {"tool": "csv_parser",
                                     "arguments": {"text": "a,b\n1,2\n3,4"}})
    content = reply.content
    assert content["rounds"] == 0 and content["tool_result"]
    assert json.dumps(content["tool_result"]).count("1") >= 1
    assert llm_server.chat_requests() == []
    with pytest.raises(errors.ToolNotDeclared, match="json_validator"):
        manager.send("Analyst", {"tool": "json_validator",
                                 "arguments": {"document": {}, "schema": {}}})
    with pytest.raises(errors.CaxtonError) as exc:
        manager.send("Analyst", {"tool": "csv_parser", "arguments": {"nope": 1}})
    assert exc.value.code in ("INVALID_ARGUMENT", "TOOL_ERROR")
    assert llm_server.chat_requests() == []
    assert manager.get_agent_by_name("Analyst").restarts == 0


# ---------------------------------------------------------------------- memory


MEM_TPL = "{{ request }} | memory: {{ memory_context }}"


def test_memory_scope_boundaries_between_agents(manager: AgentLifecycleManager) -> None:
    for name, scope in (("A", "agent"), ("B", "agent"), ("G1", "global"), ("G2", "global")):
        manager.deploy_config_agent(agent_md(name, scope=scope, template=MEM_TPL))
    manager.send("A", "the zebra is striped", "ca")
    manager.send("G1", "the giraffe is tall", "cg")
    a = reply_text(manager.send("A", "zebra", "ca2"))
    b = reply_text(manager.send("B", "zebra", "cb"))
    g2 = reply_text(manager.send("G2", "giraffe", "cg2"))
    g2_zebra = reply_text(manager.send("G2", "zebra", "cg3"))
    assert "striped" in a.split("| memory:")[1]            # own memory recalled
    assert "striped" not in b.split("| memory:")[1]        # agent scope: not shared
    assert "tall" in g2.split("| memory:")[1]              # global scope: shared
    assert "striped" not in g2_zebra.split("| memory:")[1]  # agent data stays out of global


def test_max_memory_entities_is_enforced_through_an_agent(
        manager: AgentLifecycleManager) -> None:
    manager.deploy_config_agent(agent_md("Small", template=MEM_TPL,
                                         extra_limits="  max_memory_entities: 2\n"))
    first = manager.send("Small", "first", "c1").content
    assert "memory_error" not in first
    second = manager.send("Small", "second", "c2").content   # a new conversation entity
    assert "max_memory_entities=2" in second["memory_error"]
    assert second["reply"].startswith("second")              # the reply itself stands
    mem = manager.get_agent_by_name("Small").details["memory"]
    assert mem["entities"] == 2


# ---------------------------------------------------------------------- limits, status


def test_conversation_limit_is_a_typed_error(manager: AgentLifecycleManager) -> None:
    manager.deploy_config_agent(agent_md("Few", extra_limits="  max_conversations: 1\n"))
    assert reply_text(manager.send("Few", "x", "c1")) == "x"
    with pytest.raises(errors.ConversationLimit):
        manager.send("Few", "y", "c2")
    assert reply_text(manager.send("Few", "z", "c1")) == "z"


def test_config_agent_status_fields(manager: AgentLifecycleManager) -> None:
    manager.deploy_config_agent(ECHO_MD)
    manager.send("echo", "a")
    st = manager.get_agent_by_name("echo")
    d = st.to_dict()
    assert d["type"] == "config" and d["state"] == "Active" and d["health"] == "healthy"
    assert d["restarts"] == 0 and d["last_error"] is None
    assert d["uptime"] >= 0 and d["version"] == "1.0.0"
    assert d["details"]["stats"]["handled"] == 1
    assert d["details"]["memory_scope"] == "agent"
    assert manager.get_agent_type("echo") == "config"
    assert [s.name for s in manager.list_all_agents()] == ["echo"]
    assert manager.list_wasm_agents() == []
    with pytest.raises(errors.AgentNotFound, match="did you mean 'echo'"):
        manager.get_agent_by_name("ecko")


def test_shutdown_answers_held_and_later_messages_and_does_not_wait_for_conversations(
        make_manager: MakeManager) -> None:
    m = make_manager(suspend_wait=30.0)
    m.deploy_config_agent(ECHO_MD)
    m.deploy_config_agent(agent_md("Other"))
    m.send("Other", "hi", "open-conversation")
    m.suspend("echo")
    held = [m.route(Message(receiver="echo", content=i)) for i in range(3)]
    t0 = time.monotonic()
    m.shutdown(timeout=20)
    assert time.monotonic() - t0 < 5, "shutdown waited for an open conversation"
    for f in held:
        with pytest.raises(errors.ShuttingDown):
            f.get(timeout=1)
    with pytest.raises(errors.ShuttingDown):
        m.send("Other", "too late", timeout=5)
