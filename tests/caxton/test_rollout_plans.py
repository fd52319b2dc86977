"""Plans and analysis, driven by a fake clock and hand-made router statuses (no threads)."""

from __future__ import annotations

import pytest

from caxton.errors import InvalidArgument, NoRollout
from caxton.rollout import (
    AnalysisThresholds,
    Command,
    Drain,
    HealthCheck,
    Outcome,
    Retire,
    RolloutConfig,
    SetWeights,
    StartShadow,
    StopShadow,
    Strategy,
    Switch,
    Undrain,
    analyze,
    make_plan,
)
from caxton.routing import MetricsSnapshot, RouterStatus, ShadowStatus, VersionState, VersionStatus
from caxton.routing.testing import FakeClock


def snap(requests: int = 100, errors: int = 0, p99: float | None = 2.0, restarts: int = 0,
         trips: int = 0, fuel: float | None = None) -> MetricsSnapshot:
    return MetricsSnapshot(requests=requests, errors=errors, p50_ms=p99, p99_ms=p99,
                           restarts=restarts, breaker_trips=trips, fuel_per_message=fuel)


def router_status(versions: dict[str, MetricsSnapshot], *, stopped: tuple[str, ...] = (),
                  shadow: ShadowStatus | None = None) -> RouterStatus:
    entries = tuple(
        VersionStatus(v, VersionState.STOPPED if v in stopped else VersionState.ACTIVE, 0, 0, 0,
                      m) for v, m in versions.items())
    return RouterStatus("a", entries, 0, shadow)


ROLLBACK = [Undrain("1"), SetWeights({"1": 100, "2": 0}), Retire("2", to="1")]


def test_analysis_default_thresholds() -> None:
    t = AnalysisThresholds()
    assert analyze(snap(errors=5), snap(), t).verdict == "pass"
    assert analyze(snap(errors=6), snap(), t).reasons == ("error rate 6.0% > 5.0%",)
    assert "success rate" in " ".join(analyze(snap(errors=60), snap(), t).reasons)
    assert analyze(snap(p99=20.0), snap(p99=10.0), t).failed  # > 1.5x and > 5 ms slack
    assert not analyze(snap(p99=0.9), snap(p99=0.1), t).failed  # sub-ms noise ignored
    assert analyze(snap(restarts=1, requests=0), snap(), t).failed
    assert analyze(snap(trips=1, requests=0), snap(), t).failed
    assert analyze(snap(fuel=2000), snap(fuel=1000), t).failed
    assert analyze(snap(requests=3, errors=3), snap(), t).verdict == "inconclusive"
    assert analyze(snap(p99=30.0), snap(requests=0, p99=None), t,
                   baseline_p99_ms=10.0).failed


def test_immediate_switches_and_drains_old_at_once() -> None:
    plan = make_plan("immediate", old="1", new="2", config=RolloutConfig(drain_timeout=3))
    assert plan.start(0.0) == [Switch("2"), Drain("1", 3)]
    assert plan.outcome is Outcome.SUCCEEDED
    first = make_plan(Strategy.IMMEDIATE, old=None, new="1")
    assert first.start(0.0) == [Switch("1")]


def test_gradual_drains_old_with_the_ttl_and_succeeds_when_it_retires() -> None:
    plan = make_plan("gradual", old="1", new="2", config=RolloutConfig(conversation_ttl=60))
    assert plan.start(0.0) == [SetWeights({"2": 100, "1": 0}), Drain("1", 60)]
    assert plan.tick(1.0, router_status({"1": snap(), "2": snap()})) == []
    assert plan.status().step == "retire-old" and not plan.done
    plan.tick(2.0, router_status({"1": snap(), "2": snap()}, stopped=("1",)))
    assert plan.outcome is Outcome.SUCCEEDED


def test_gradual_abort_undrains_old() -> None:
    plan = make_plan("gradual", old="1", new="2")
    plan.start(0.0)
    assert plan.command(Command.ABORT, 1.0) == ROLLBACK
    assert plan.outcome is Outcome.ABORTED
    with pytest.raises(NoRollout):
        plan.command(Command.ABORT, 2.0)


def test_ab_test_split_then_promote_or_abort() -> None:
    cfg = RolloutConfig(split=(80, 20), drain_timeout=5)
    plan = make_plan("ab-test", old="1", new="2", config=cfg)
    assert plan.start(0.0) == [SetWeights({"1": 80, "2": 20})]
    plan.tick(1.0, router_status({"1": snap(errors=1), "2": snap(errors=2)}))
    assert plan.status().variants["2"].errors == 2
    assert plan.command(Command.PROMOTE, 2.0) == [SetWeights({"2": 100, "1": 0}), Drain("1", 5)]
    assert plan.outcome is Outcome.SUCCEEDED
    plan = make_plan("ab-test", old="1", new="2", config=cfg)
    plan.start(0.0)
    assert plan.command(Command.ABORT, 1.0) == [SetWeights({"1": 100, "2": 0}), Drain("2", 5)]
    assert plan.outcome is Outcome.ABORTED
    with pytest.raises(InvalidArgument):
        make_plan("ab-test", old="1", new="2", config=RolloutConfig(split=(0, 0))).start(0.0)


def test_blue_green_health_switch_warm_period_and_instant_rollback() -> None:
    clock = FakeClock(0.0)
    cfg = RolloutConfig(scale_down_delay=10, drain_timeout=2)
    plan = make_plan("blue-green", old="blue", new="green", config=cfg)
    assert plan.start(clock()) == [HealthCheck("green")]
    assert plan.on_health("green", True, "ok", clock()) == [Switch("green")]
    clock.advance(9.0)
    assert plan.tick(clock(), router_status({})) == []
    assert plan.command(Command.ROLLBACK, clock()) == [Switch("blue"), Retire("green", to="blue")]
    assert plan.outcome is Outcome.ABORTED

    plan = make_plan("blue-green", old="blue", new="green", config=cfg)
    plan.start(0.0)
    plan.on_health("green", True, "ok", 0.0)
    assert plan.tick(10.0, router_status({})) == [Drain("blue", 2)]
    assert plan.outcome is Outcome.SUCCEEDED

    plan = make_plan("blue-green", old="blue", new="green", config=cfg)
    plan.start(0.0)
    assert plan.on_health("green", False, "TIMEOUT", 0.5) == [Retire("green", to="blue")]
    assert plan.outcome is Outcome.FAILED and "TIMEOUT" in (plan.reason or "")


def test_canary_steps_through_with_a_pause_each_and_finishes() -> None:
    clock = FakeClock(0.0)
    cfg = RolloutConfig(step_duration=5, drain_timeout=1)
    plan = make_plan("canary", old="1", new="2", config=cfg)
    assert plan.start(clock()) == [SetWeights({"2": 5, "1": 95})]
    healthy = router_status({"1": snap(), "2": snap()})
    seen = []
    for _ in range(4):
        clock.advance(2.5)
        assert plan.tick(clock(), healthy) == []
        clock.advance(2.5)
        seen.append(plan.tick(clock(), healthy))
    assert seen == [[SetWeights({"2": 25, "1": 75})], [SetWeights({"2": 50, "1": 50})],
                    [SetWeights({"2": 100, "1": 0})], [Drain("1", 1)]]
    assert plan.outcome is Outcome.SUCCEEDED
    assert [a.step for a in plan.analyses] == ["5%", "25%", "50%", "100%"]


def test_canary_rolls_back_within_the_step_on_errors() -> None:
    plan = make_plan("canary", old="1", new="2", config=RolloutConfig(step_duration=60))
    plan.start(0.0)
    assert plan.tick(1.0, router_status({"1": snap(), "2": snap(requests=10, errors=10)})) == []
    actions = plan.tick(2.0, router_status({"1": snap(), "2": snap(requests=30, errors=10)}))
    assert actions == ROLLBACK
    assert plan.outcome is Outcome.ROLLED_BACK
    assert "analysis failed at step 5%" in (plan.reason or "")
    assert plan.analyses[-1].failed


def test_canary_rolls_back_when_slower_than_stable_baseline_at_100_percent() -> None:
    cfg = RolloutConfig(steps=(50, 100), step_duration=1)
    plan = make_plan("canary", old="1", new="2", config=cfg)
    plan.start(0.0)
    plan.tick(1.0, router_status({"1": snap(p99=10.0), "2": snap(p99=11.0)}))
    assert plan.status().step == "100%"
    no_stable = router_status({"1": snap(requests=0, p99=None), "2": snap(p99=40.0)})
    assert plan.tick(1.5, no_stable) == ROLLBACK
    assert "p99" in (plan.reason or "")


def test_traffic_splitting_defaults_and_validation() -> None:
    plan = make_plan("traffic-splitting", old="1", new="2")
    assert plan.status().steps == ("10%", "25%", "50%", "75%", "100%")
    with pytest.raises(InvalidArgument):
        make_plan("canary", old="1", new="2", config=RolloutConfig(steps=(50, 10)))
    with pytest.raises(InvalidArgument):
        make_plan("canary", old=None, new="2")
    with pytest.raises(InvalidArgument):
        make_plan("nope", old="1", new="2")


def test_graceful_validates_then_switches() -> None:
    plan = make_plan("graceful", old="1", new="2",
                     config=RolloutConfig(validation_period=3, drain_timeout=4))
    assert plan.start(0.0) == [HealthCheck("2")]
    assert plan.on_health("2", True, "ok", 0.1) == []
    assert plan.tick(2.0, router_status({})) == []
    assert plan.tick(3.1, router_status({})) == [HealthCheck("2")]
    assert plan.on_health("2", True, "ok", 3.2) == [Switch("2"), Drain("1", 4)]
    assert plan.outcome is Outcome.SUCCEEDED
    with pytest.raises(InvalidArgument):
        plan.promote(4.0)


def test_parallel_switches_after_n_agreements_and_aborts_on_disagreement() -> None:
    cfg = RolloutConfig(required_agreements=10, drain_timeout=1)
    plan = make_plan("parallel", old="1", new="2", config=cfg)
    assert plan.start(0.0) == [StartShadow("1", "2")]
    assert plan.tick(1.0, router_status({}, shadow=ShadowStatus("1", "2", 9, 0))) == []
    assert plan.tick(2.0, router_status({}, shadow=ShadowStatus("1", "2", 10, 0))) == [
        StopShadow(), Switch("2"), Drain("1", 1)]
    plan = make_plan("parallel", old="1", new="2", config=cfg)
    plan.start(0.0)
    actions = plan.tick(1.0, router_status({}, shadow=ShadowStatus("1", "2", 3, 1, "x != y")))
    assert actions == [StopShadow(), *ROLLBACK]
    assert plan.outcome is Outcome.ROLLED_BACK and "x != y" in (plan.reason or "")
