"""Every strategy run for real: pykka echo actors as versions, a concurrent sender counting
every message and reply, short step durations."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from caxton.errors import InvalidArgument, NoRollout, RolloutInProgress
from caxton.messages import Message
from caxton.rollout import (
    AnalysisThresholds,
    Outcome,
    RolloutConfig,
    RolloutCoordinator,
    RolloutStatus,
    Strategy,
)
from caxton.routing import ReplyFuture, Router, VersionState
from caxton.routing.testing import ConcurrentSender, SendLedger, served_by, start_echo

FAST = RolloutConfig(step_duration=0.3, drain_timeout=2.0, scale_down_delay=0.3,
                     validation_period=0.2, required_agreements=50, conversation_ttl=5.0,
                     thresholds=AnalysisThresholds(min_requests=10, p99_slack_ms=50.0))


def assert_exactly_once(ledger: SendLedger, *, errors_allowed: bool = False) -> None:
    assert ledger.sent > 0
    assert ledger.unresolved == 0 and ledger.untyped == 0 and ledger.duplicates == 0
    assert ledger.accounted == ledger.sent
    if not errors_allowed:
        assert sum(ledger.errors.values()) == 0, ledger.errors


@pytest.fixture
def router() -> Iterator[Router]:
    r = Router("echo", seed=5, housekeeping_interval=0.01)
    r.add_version(start_echo("1"), 100)
    yield r
    r.close(timeout=5)


@pytest.fixture
def coordinator() -> Iterator[RolloutCoordinator]:
    aborted: list[RolloutStatus] = []
    c = RolloutCoordinator(on_abort=aborted.append, tick_interval=0.01)
    c.aborted = aborted  # type: ignore[attr-defined]
    yield c
    c.shutdown()


def same_echo(a: ReplyFuture, b: ReplyFuture) -> bool:
    """Echo replies name their version; agreement is about the echoed content."""
    if a.error or b.error:
        return a.error is not None and b.error is not None and a.error.code == b.error.code
    return a.value.content["echo"] == b.value.content["echo"]  # type: ignore[union-attr]


def run(coordinator: RolloutCoordinator, router: Router, strategy: Strategy, *,
        config: RolloutConfig = FAST, settle: float = 0.0, **new_kw: object
        ) -> tuple[RolloutStatus, SendLedger]:
    sender = ConcurrentSender(router, one_shot_every=5).start()
    time.sleep(0.1)
    ex = coordinator.start(router, strategy, new_version="2", config=config, compare=same_echo,
                           start_new=lambda: start_echo("2", **new_kw))  # type: ignore[arg-type]
    status = ex.wait(timeout=20)
    time.sleep(settle)
    return status, sender.stop()


@pytest.mark.parametrize("strategy", [Strategy.IMMEDIATE, Strategy.BLUE_GREEN, Strategy.CANARY,
                                      Strategy.GRACEFUL, Strategy.TRAFFIC_SPLITTING,
                                      Strategy.PARALLEL])
def test_strategy_completes_with_every_message_answered_once(
        router: Router, coordinator: RolloutCoordinator, strategy: Strategy) -> None:
    status, ledger = run(coordinator, router, strategy, settle=0.1)
    assert status.outcome is Outcome.SUCCEEDED, status.reason
    assert_exactly_once(ledger)
    assert router.wait_stopped("1", timeout=10)
    assert router.versions() == ["2"]
    assert ledger.by_version["1"] > 0
    if strategy is not Strategy.PARALLEL or ledger.served_log[-1][1] == "2":
        assert ledger.by_version["2"] > 0
    if strategy in (Strategy.CANARY, Strategy.TRAFFIC_SPLITTING):
        assert [a.verdict for a in status.analyses][-1] == "pass"
        assert len(status.analyses) == len(status.steps)
    if strategy is Strategy.PARALLEL:
        assert status.shadow is None or status.shadow.disagreed == 0


def test_gradual_old_conversations_finish_on_old_and_new_go_to_new(
        router: Router, coordinator: RolloutCoordinator) -> None:
    old_conversations = [f"old{i}" for i in range(20)]
    for c in old_conversations:
        router.route(Message("echo", 0, conversation_id=c)).get(timeout=5)
    sender = ConcurrentSender(router, prefix="new", rate_sleep=0.001).start()
    ex = coordinator.start(router, "gradual", new_version="2", config=FAST,
                           start_new=lambda: start_echo("2"))
    time.sleep(0.2)
    served: dict[str, set[str | None]] = {c: set() for c in old_conversations}
    for round_ in range(3):
        for c in old_conversations:
            served[c].add(served_by(_ask(router, c, round_)))
    assert router.status().version("1").state is VersionState.DRAINING
    for c in old_conversations:
        router.end_conversation(c)
    status = ex.wait(timeout=10)
    ledger = sender.stop()
    assert status.outcome is Outcome.SUCCEEDED
    assert all(v == {"1"} for v in served.values())
    new_started_after = {c for c, t in ledger.conversation_first_sent.items()
                         if t > _started(ex) + 0.05}
    assert new_started_after
    assert all(ledger.conversation_versions.get(c, {"2"}) == {"2"} for c in new_started_after)
    assert_exactly_once(ledger)
    assert router.versions() == ["2"]


def _ask(router: Router, conversation: str, content: int):  # type: ignore[no-untyped-def]
    reply = router.route(Message("echo", content, conversation_id=conversation))
    reply.get(timeout=5)
    return reply


def _started(executor: object) -> float:
    # the executor records wall time; convert to the monotonic clock the ledger uses
    return time.monotonic() - (time.time() - executor._started_at)  # type: ignore[attr-defined]


def test_gradual_ttl_retires_old_with_idle_conversations(coordinator: RolloutCoordinator) -> None:
    router = Router("echo", housekeeping_interval=0.01, pin_ttl=0.3)
    router.add_version(start_echo("1"), 100)
    _ask(router, "idle", 0)
    ex = coordinator.start(router, "gradual", new_version="2", config=FAST,
                           start_new=lambda: start_echo("2"))
    assert ex.wait(timeout=10).outcome is Outcome.SUCCEEDED
    assert router.status().version("1").stop_reason == "drained"
    router.close(5)


@pytest.mark.parametrize("failure", ["errors", "slower"])
def test_canary_rolls_back_automatically_within_its_step(
        router: Router, coordinator: RolloutCoordinator, failure: str) -> None:
    config = RolloutConfig(steps=(30, 60, 100), step_duration=5.0,
                           thresholds=AnalysisThresholds(min_requests=10, p99_slack_ms=20.0))
    kw = {"error_rate": 1.0} if failure == "errors" else {"delay": 0.05}
    started = time.monotonic()
    status, ledger = run(coordinator, router, Strategy.CANARY, config=config, settle=0.2, **kw)
    assert status.outcome is Outcome.ROLLED_BACK
    assert status.step == "30%" and time.monotonic() - started < 5.0  # within the first step
    assert status.analyses[-1].failed
    assert ("error rate" if failure == "errors" else "p99") in (status.reason or "")
    assert_exactly_once(ledger, errors_allowed=failure == "errors")
    assert set(ledger.errors) <= {"AGENT_FAILED"}
    assert router.wait_stopped("2", timeout=10)
    assert router.versions() == ["1"] and router.weights() == {"1": 100}
    assert ledger.served_log[-1][1] == "1"  # the stable version served throughout
    assert coordinator.aborted_total("echo") == 1
    assert coordinator.aborted[0].outcome is Outcome.ROLLED_BACK  # type: ignore[attr-defined]


def test_blue_green_rollback_is_instant_and_error_free(
        router: Router, coordinator: RolloutCoordinator) -> None:
    config = RolloutConfig(scale_down_delay=30.0)
    sender = ConcurrentSender(router).start()
    ex = coordinator.start(router, Strategy.BLUE_GREEN, new_version="2", config=config,
                           start_new=lambda: start_echo("2"))
    deadline = time.monotonic() + 5
    while router.weights().get("2") != 100 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert ex.status().step == "switched"
    time.sleep(0.2)
    with pytest.raises(RolloutInProgress):
        coordinator.start(router, "canary", new_version="3", start_new=None)
    coordinator.command("echo", "rollback")
    status = ex.wait(timeout=5)
    switched_back = time.monotonic()
    time.sleep(0.2)
    ledger = sender.stop()
    assert status.outcome is Outcome.ABORTED
    assert_exactly_once(ledger)
    assert ledger.by_version["2"] > 0
    assert all(v == "1" for t, v in ledger.served_log if t > switched_back + 0.01)
    assert router.wait_stopped("2", timeout=5)
    assert status.weights == {"1": 100} or status.weights.get("2", 0) == 0
    with pytest.raises(NoRollout):
        coordinator.command("echo", "abort")
    assert coordinator.status("echo").outcome is Outcome.ABORTED


def test_blue_green_unhealthy_green_never_takes_traffic(
        router: Router, coordinator: RolloutCoordinator) -> None:
    status, ledger = run(coordinator, router, Strategy.BLUE_GREEN, error_rate=1.0)
    assert status.outcome is Outcome.FAILED and "health check" in (status.reason or "")
    assert_exactly_once(ledger)
    assert ledger.by_version["2"] == 0


def test_ab_test_split_per_variant_metrics_then_promote(
        router: Router, coordinator: RolloutCoordinator) -> None:
    config = RolloutConfig(split=(80, 20), drain_timeout=1.0)
    with pytest.raises(InvalidArgument):
        coordinator.start(router, "nope", new_version="x", start_new=None)
    sender = ConcurrentSender(router, messages_per_conversation=1, rate_sleep=0).start()
    ex = coordinator.start(router, "ab-test", new_version="2", config=config,
                           start_new=lambda: start_echo("2"))
    time.sleep(1.0)
    mid = ex.status()
    assert set(mid.variants) == {"1", "2"} and mid.weights == {"1": 80, "2": 20}
    with pytest.raises(RolloutInProgress):
        coordinator.start(router, "nope", new_version="x", start_new=None)
    coordinator.command("echo", "promote")
    status = ex.wait(timeout=5)
    time.sleep(0.1)
    ledger = sender.stop()
    assert status.outcome is Outcome.SUCCEEDED
    assert_exactly_once(ledger)
    assert mid.variants["2"].requests > 0 and mid.variants["1"].requests > 0
    assert router.wait_stopped("1", timeout=5)
    assert status.to_dict()["strategy"] == "ab-test"


def test_parallel_disagreement_aborts_and_old_reply_is_always_returned(
        router: Router, coordinator: RolloutCoordinator) -> None:
    status, ledger = run(coordinator, router, Strategy.PARALLEL,
                         transform=lambda c: "different")
    assert status.outcome is Outcome.ROLLED_BACK and "disagreed" in (status.reason or "")
    assert_exactly_once(ledger)
    assert set(ledger.by_version) == {"1"}


def test_rollback_to_version_starts_it_again_and_switches(
        router: Router, coordinator: RolloutCoordinator) -> None:
    ex = coordinator.start(router, "immediate", new_version="2", start_new=lambda: start_echo("2"))
    assert ex.wait(5).outcome is Outcome.SUCCEEDED
    assert router.wait_stopped("1", timeout=5)
    sender = ConcurrentSender(router).start()
    time.sleep(0.1)
    back = coordinator.rollback_to(router, "1#2", lambda: start_echo("1#2"), strategy="blue-green",
                                   config=RolloutConfig(scale_down_delay=0.1))
    assert back.wait(5).outcome is Outcome.SUCCEEDED
    time.sleep(0.1)
    ledger = sender.stop()
    assert_exactly_once(ledger)
    assert ledger.served_log[-1][1] == "1#2"
    with pytest.raises(InvalidArgument):
        coordinator.rollback_to(router, "x", lambda: start_echo("x"), strategy="canary")
