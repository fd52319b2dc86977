"""Tenant work cannot freeze, starve or kill the node: hostile templates, regular expressions,
CSV, memory bombs and crashing tools, each beside a healthy agent that keeps answering.

Every test checks three things: the typed error (naming the stage or tool), that the healthy
agent answered while the hostile work ran, and that the work really stopped (the worker
processes' CPU goes back to idle after the reply). Real worker processes, real manager."""

from __future__ import annotations

import json
import resource
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import psutil
import pytest

from caxton import AgentLifecycleManager, errors
from caxton.config_agents.templates import check_template
from caxton.llm.fake_server import FakeModelServer
from caxton.manager import SupervisionSettings
from caxton.tools.testing import registry_with_testing_tools
from supervisors import Backoff, CircuitBreaker

FAST = SupervisionSettings(backoff=Backoff(min=0.01, max=0.1),
                           breaker=CircuitBreaker(fail_max=50, reset_timeout=0.5),
                           healthy_after=0.2, shutdown=2.0)
# Its cost depends on the message, so validation cannot refuse it: 3,000 characters make
# 2.7e10 iterations, which only a worker that is killed can stop.
NESTED_LOOPS = ("{% for a in request %}{% for b in request %}{% for c in request %}"
                "{% endfor %}{% endfor %}{% endfor %}")
LONG = "x" * 3000
EVIL_REGEX = {"tool": "json_validator", "arguments": {
    "schema": {"type": "string", "pattern": "^(a+)+$"}, "document": "a" * 64 + "!"}}


def md(name: str, *, template: str = "{{ request }}", tools: str = "[]", limits: str = "",
       llm: str = "{provider: echo}") -> str:
    return (f"---\nname: {name}\nversion: \"1.0.0\"\ncapabilities: [conversation]\n"
            f"tools: {tools}\nresource_limits:\n  memory_scope: agent\n{limits}"
            f"llm: {llm}\nuser_prompt_template: {json.dumps(template)}\n---\n\nHostile.\n")


@pytest.fixture
def manager() -> Iterator[AgentLifecycleManager]:
    m = AgentLifecycleManager(supervision=FAST, tools=registry_with_testing_tools())
    m.deploy_config_agent(md("Healthy"))
    yield m
    m.shutdown(timeout=5)


def workers_cpu() -> float:
    """CPU seconds used so far by this process's descendants (the tenant workers)."""
    total = 0.0
    for child in psutil.Process().children(recursive=True):
        try:
            t = child.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def assert_workers_idle() -> None:
    """Within a second of the reply the killed work must be gone: over the next second the
    workers use (much) less than a core."""
    window = threading.Event()  # never set: these are measurement windows, not synchronisation
    window.wait(1.0)  # the second the work is allowed to take to stop
    before = workers_cpu()
    window.wait(1.0)  # then a second in which the workers must be (nearly) idle
    used = workers_cpu() - before
    assert used < 0.3, f"tenant workers still used {used:.2f} CPU-s in a second"


def while_healthy_answers(manager: AgentLifecycleManager,
                          hostile: Callable[[], Any]) -> tuple[Any, list[float]]:
    """Run ``hostile()`` while another thread keeps messaging the healthy agent."""
    done = threading.Event()
    latencies: list[float] = []

    def talk() -> None:
        while not done.is_set() and len(latencies) < 10_000:
            t0 = time.monotonic()
            assert manager.send("Healthy", "ping", timeout=10).content["reply"] == "ping"
            latencies.append(time.monotonic() - t0)

    talker = threading.Thread(target=talk)
    talker.start()
    try:
        outcome: Any = hostile()
    except errors.CaxtonError as exc:
        outcome = exc
    finally:
        done.set()
        talker.join(20)
    assert latencies, "the healthy agent never answered while the hostile work ran"
    assert max(latencies) < 3.0, f"the healthy agent waited {max(latencies):.2f}s"
    return outcome, latencies


def test_nested_template_loops_time_out_at_the_render_stage_and_stop(
        manager: AgentLifecycleManager) -> None:
    manager.deploy_config_agent(md("Loops", template=NESTED_LOOPS,
                                   limits="  response_timeout: 1s\n"))
    started = time.monotonic()
    outcome, _ = while_healthy_answers(manager, lambda: manager.send("Loops", LONG, timeout=30))
    assert isinstance(outcome, errors.Timeout), outcome
    assert outcome.details[0]["stage"] == "rendering the prompt"
    assert "response_timeout=1s" in outcome.message
    assert time.monotonic() - started < 10
    assert_workers_idle()
    assert manager.send("Healthy", "after").content["reply"] == "after"


def test_huge_constants_cost_nothing_to_validate_and_are_refused_with_their_line(
        manager: AgentLifecycleManager) -> None:
    for template in ("{{ 'x' * 10**9 }}", "{{ 'x'|center(1000000000) }}",
                     "{{ [1] * 1000000000 }}", "{{ '%0999999999d' % 1 }}", "{{ 7 ** 99999999 }}",
                     "{% for a in range(99999) %}{% for b in range(99999) %}{% endfor %}"
                     "{% endfor %}"):
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t0 = time.monotonic()
        (problem,) = check_template(template)
        assert problem.kind == "budget" and problem.line == 1, problem
        parsed = manager.validate(md("Bomb", template="\n" + template))
        assert time.monotonic() - t0 < 5
        grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss  # KiB
        assert grown < 100_000, f"validating {template!r} grew the node by {grown} KiB"
        assert not parsed.ok
        (finding,) = parsed.report.errors
        assert finding.code == "template_budget" and "over budget" in finding.message
        assert finding.line == 10  # the template's second line, in the file
    with pytest.raises(errors.ValidationFailed, match="over budget"):
        manager.deploy_config_agent(md("Bomb", template="{{ 'x' * 10**9 }}"))


def test_a_render_that_grows_with_the_message_is_refused_at_render(
        manager: AgentLifecycleManager) -> None:
    manager.deploy_config_agent(md("Grows", template="{{ request * 1000000 }}"))
    assert manager.send("Grows", "", timeout=30).content["reply"] == ""
    with pytest.raises(errors.ResourceExhausted) as err:
        manager.send("Grows", "xx", timeout=30)
    assert "user_prompt_template" in err.value.message and "1,000,000" in err.value.message


def test_catastrophic_regex_in_json_validator_is_killed_at_its_timeout(
        manager: AgentLifecycleManager) -> None:
    manager.deploy_config_agent(md("Regex", tools="[json_validator]",
                                   limits="  tool_call_timeout: 1s\n"))
    started = time.monotonic()
    outcome, _ = while_healthy_answers(
        manager, lambda: manager.send("Regex", EVIL_REGEX, timeout=30))
    assert isinstance(outcome, errors.ToolTimeout), outcome
    assert "'json_validator'" in outcome.message and "tool_call_timeout" in outcome.message
    assert time.monotonic() - started < 10
    assert_workers_idle()


def test_a_slow_csv_parse_stops_at_its_timeout(manager: AgentLifecycleManager) -> None:
    manager.deploy_config_agent(md("Csv", tools="[csv_parser]",
                                   limits="  tool_call_timeout: 0.05s\n"))
    big = "\n".join(f"{i},{i * 2},name {i},{i / 3}" for i in range(120_000))
    outcome, _ = while_healthy_answers(manager, lambda: manager.send(
        "Csv", {"tool": "csv_parser", "arguments": {"text": big}}, timeout=30))
    assert isinstance(outcome, errors.ToolTimeout), outcome
    assert_workers_idle()


def test_memory_bombs_and_crashing_tools_cost_only_their_worker(
        manager: AgentLifecycleManager) -> None:
    manager.deploy_config_agent(md("Crash", tools="[hog, exit, csv_parser]"))
    with pytest.raises(errors.ResourceExhausted) as err:
        manager.send("Crash", {"tool": "hog", "arguments": {"bytes": 8 << 30}}, timeout=30)
    assert "'hog'" in err.value.message and "memory" in err.value.message
    with pytest.raises(errors.ResourceExhausted) as died:
        manager.send("Crash", {"tool": "exit", "arguments": {}}, timeout=30)
    assert "killed its tenant worker" in died.value.message
    ok = manager.send("Crash", {"tool": "csv_parser", "arguments": {"text": "a\n1\n"}})
    assert ok.content["tool_result"]["row_count"] == 1  # a replacement worker serves at once
    assert manager.send("Healthy", "still here").content["reply"] == "still here"


def test_response_timeout_bounds_a_slow_model_and_names_the_stage(
        manager: AgentLifecycleManager) -> None:
    with FakeModelServer(latency=5.0) as model:
        manager.deploy_config_agent(md(
            "SlowModel", limits="  response_timeout: 1s\n",
            llm=f"{{provider: openai, base_url: '{model.base_url}', model: f, max_retries: 0}}"))
        started = time.monotonic()
        with pytest.raises(errors.Timeout) as err:
            manager.send("SlowModel", "hi", timeout=30)
        assert time.monotonic() - started < 4.5
        assert err.value.details[0]["stage"] == "waiting for model call 1"
        assert "response_timeout=1s" in err.value.message


def test_a_timed_out_render_does_not_hold_a_worker_for_later_messages(
        manager: AgentLifecycleManager) -> None:
    """Two runaway renders on a two-worker pool, then a normal non-linear render: it must get a
    worker within its own budget (the runaway ones were killed, not left running)."""
    manager.deploy_config_agent(md("Loops", template=NESTED_LOOPS,
                                   limits="  response_timeout: 0.5s\n"))
    manager.deploy_config_agent(md("Loop3", template="{% for i in range(3) %}{{ i }}{% endfor %}"))
    for _ in range(2):
        with pytest.raises(errors.Timeout):
            manager.send("Loops", LONG, timeout=30)
    assert manager.send("Loop3", "x", timeout=30).content["reply"] == "012"


def test_an_agent_whose_messages_keep_running_out_of_budget_fails_and_trips_its_breaker(
) -> None:
    from caxton.actors.config_agent import BUDGET_FAILURES_TO_FAIL

    strict = SupervisionSettings(backoff=Backoff(min=0.01, max=0.05),
                                 breaker=CircuitBreaker(fail_max=2, reset_timeout=60),
                                 healthy_after=30, shutdown=2.0)
    m = AgentLifecycleManager(supervision=strict, tools=registry_with_testing_tools())
    try:
        m.deploy_config_agent(md("Healthy"))
        m.deploy_config_agent(md("Burner", tools="[spin, csv_parser]",
                                 limits="  tool_call_timeout: 0.2s\n"))
        spin = {"tool": "spin", "arguments": {"seconds": 60}}
        codes: list[str] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "CIRCUIT_OPEN" not in codes[-1:]:
            try:
                m.send("Burner", spin, timeout=30)
                codes.append("ok")
            except errors.CaxtonError as exc:
                codes.append(str(exc.code))
        assert codes[-1] == "CIRCUIT_OPEN", codes
        assert codes[:BUDGET_FAILURES_TO_FAIL] == ["TOOL_TIMEOUT"] * BUDGET_FAILURES_TO_FAIL
        assert codes.count("TOOL_TIMEOUT") >= 2 * BUDGET_FAILURES_TO_FAIL - 1, codes
        t0 = time.monotonic()
        with pytest.raises(errors.CircuitOpen):
            m.send("Burner", {"tool": "csv_parser", "arguments": {"text": "a\n1\n"}})
        assert time.monotonic() - t0 < 2.0  # refused at once: no worker spins for it
        tick, until = threading.Event(), time.monotonic() + 10
        while m.get_agent_by_name("Burner").state != "Failed" and time.monotonic() < until:
            tick.wait(0.02)  # the lifecycle follows the breaker's event asynchronously
        assert m.get_agent_by_name("Burner").state == "Failed"
        assert m.send("Healthy", "fine").content["reply"] == "fine"
        m.recover("Burner")
        assert m.send("Burner", "back").content["reply"] == "back"  # serving again
    finally:
        m.shutdown(timeout=5)
