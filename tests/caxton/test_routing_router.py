"""The router with real pykka echo actors as version instances and a concurrent sender."""

from __future__ import annotations

import time

import pykka
import pytest
import structlog

from caxton.errors import AgentFailed, AgentUnavailable, ShuttingDown, Timeout
from caxton.messages import Message
from caxton.routing import ActorVersionHandle, Router, VersionState, ask
from caxton.routing.testing import ConcurrentSender, EchoAgent, SendLedger, served_by, start_echo


def assert_exactly_once(ledger: SendLedger) -> None:
    assert ledger.sent > 0
    assert ledger.unresolved == 0 and ledger.untyped == 0 and ledger.duplicates == 0
    assert ledger.accounted == ledger.sent


def msg(content: object = 1, conversation: str | None = None) -> Message:
    return Message(receiver="echo", content=content, conversation_id=conversation)


@pytest.fixture
def router() -> Router:
    r = Router("echo", seed=1, housekeeping_interval=0.01)
    yield r
    r.close(timeout=5)


def test_conversation_sticks_to_its_version_and_split_is_by_weight(router: Router) -> None:
    router.add_version(start_echo("1"), 50)
    router.add_version(start_echo("2"), 50)
    for c in range(40):
        replies = [router.route(msg(i, f"c{c}")) for i in range(3)]
        versions = {served_by(r) for r in replies if r.get(timeout=5)}
        assert len(versions) == 1
    status = router.status()
    assert status.conversations == 40
    assert {v.version for v in status.versions} == {"1", "2"}
    assert all(v.metrics.requests > 0 for v in status.versions)


def test_concurrent_sender_through_weight_changes_and_drain_loses_nothing(router: Router) -> None:
    router.add_version(start_echo("1"), 100)
    sender = ConcurrentSender(router, one_shot_every=7).start()
    time.sleep(0.2)
    router.add_version(start_echo("2"), 0)
    router.set_weights({"2": 50})
    time.sleep(0.2)
    router.drain("1", timeout=1.0)
    assert router.status().version("1").state in (VersionState.DRAINING, VersionState.STOPPED)
    assert router.wait_stopped("1", timeout=10)
    time.sleep(0.1)
    ledger = sender.stop()
    assert_exactly_once(ledger)
    assert sum(ledger.errors.values()) == 0
    assert ledger.by_version["1"] > 0 and ledger.by_version["2"] > 0
    final = router.status()
    assert final.version("1").state is VersionState.STOPPED
    assert final.version("1").stop_reason in ("drained", "drain_timeout")
    assert router.versions() == ["2"]


def test_drain_waits_for_queued_messages(router: Router) -> None:
    router.add_version(start_echo("slow", delay=0.02), 100)
    router.add_version(start_echo("fast"), 0)
    replies = [router.route(msg(i)) for i in range(20)]
    router.set_weights({"fast": 100})
    router.drain("slow")
    assert router.status().version("slow").in_flight > 0
    assert router.wait_stopped("slow", timeout=10)
    assert all(served_by(r) == "slow" for r in replies if r.get(timeout=5))


def test_drain_timeout_moves_pinned_conversations_and_logs(router: Router) -> None:
    router.add_version(start_echo("1"), 100)
    assert served_by(ask_pinned(router, "long")) == "1"
    router.add_version(start_echo("2"), 100)
    with structlog.testing.capture_logs() as logs:
        router.drain("1", timeout=0.2)
        assert served_by(ask_pinned(router, "long")) == "1"  # still finishing on 1
        assert router.wait_stopped("1", timeout=5)
    assert served_by(ask_pinned(router, "long")) == "2"
    events = {e["event"]: e for e in logs}
    assert events["routing.drain_timeout"]["moved"] == 1
    assert events["routing.drain_timeout"]["to"] == "2"
    assert events["routing.version_retired"]["reason"] == "drain_timeout"


def ask_pinned(router: Router, conversation: str):  # type: ignore[no-untyped-def]
    reply = router.route(msg(0, conversation))
    reply.get(timeout=5)
    return reply


def test_end_conversation_lets_drain_finish_early(router: Router) -> None:
    router.add_version(start_echo("1"), 100)
    ask_pinned(router, "c")
    router.add_version(start_echo("2"), 100)
    router.drain("1", timeout=30)
    time.sleep(0.05)
    assert router.status().version("1").state is VersionState.DRAINING
    assert router.end_conversation("c")
    assert router.wait_stopped("1", timeout=5)


def test_typed_errors_for_failures_dead_actors_and_no_traffic(router: Router) -> None:
    with pytest.raises(AgentUnavailable):
        router.route(msg()).get(timeout=1)
    router.add_version(start_echo("bad", error_rate=1.0), 100)
    with pytest.raises(AgentFailed):
        router.route(msg()).get(timeout=5)
    ref = EchoAgent.start("dead")
    ref.stop()
    with pytest.raises(AgentUnavailable):
        ask(ActorVersionHandle("dead", ref), msg()).get(timeout=5)
    with pytest.raises(AgentUnavailable):
        ask(ActorVersionHandle("none", lambda: None), msg()).get(timeout=5)
    slow = start_echo("slow", delay=0.5)
    with pytest.raises(Timeout):
        ask(slow, msg()).get(timeout=0.01)
    slow.stop(5)
    assert router.status().version("bad").metrics.errors == 1
    router.close(timeout=5)
    with pytest.raises(ShuttingDown):
        router.route(msg()).get(timeout=1)


def test_messages_queued_when_an_instance_stops_get_typed_errors() -> None:
    ref = EchoAgent.start("1", delay=0.01)
    handle = ActorVersionHandle("1", ref)
    router = Router("echo", housekeeping_interval=None)
    router.add_version(handle, 100)
    replies = [router.route(msg(i)) for i in range(30)]
    ref.tell(pykka.messages._ActorStop())  # type: ignore[attr-defined]  # stop mid-queue
    for i in range(30):
        replies.append(router.route(msg(i)))
    outcomes = {"ok": 0, "err": 0}
    for r in replies:
        try:
            r.get(timeout=5)
            outcomes["ok"] += 1
        except AgentUnavailable:
            outcomes["err"] += 1
    assert outcomes["ok"] + outcomes["err"] == 60 and outcomes["err"] > 0
    assert router.status().version("1").in_flight == 0


def test_shadow_runs_every_message_and_returns_the_primary_reply(router: Router) -> None:
    router.add_version(start_echo("1"), 100)
    router.add_version(start_echo("2", transform=lambda c: c if c != 5 else -5), 0)
    router.start_shadow("1", "2", lambda a, b: a.value.content["echo"] == b.value.content["echo"])
    replies = [router.route(msg(i)) for i in range(10)]
    assert all(served_by(r) == "1" for r in replies if r.get(timeout=5))
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        shadow = router.status().shadow
        if shadow and shadow.agreed + shadow.disagreed == 10:
            break
        time.sleep(0.01)
    final = router.stop_shadow()
    assert final is not None and (final.agreed, final.disagreed) == (9, 1)
    assert router.metrics("2").requests == 10


def test_hooks_feed_metrics(router: Router) -> None:
    router.add_version(start_echo("1"), 100)
    router.record_restart("1")
    router.record_breaker_trip("1")
    router.record_fuel("1", 1200)
    router.record_fuel("nope", 1)  # unknown versions are ignored
    m = router.metrics("1")
    assert (m.restarts, m.breaker_trips, m.fuel_per_message) == (1, 1, 1200)
