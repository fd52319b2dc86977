"""Pure routing cores: assignment, pins, metrics, table decisions and drain bookkeeping."""

from __future__ import annotations

import pytest

from caxton.errors import AgentUnavailable, InvalidArgument, VersionNotFound
from caxton.routing import (
    MetricsSnapshot,
    PinTable,
    RoutingTable,
    VersionMetrics,
    VersionState,
    WeightedAssigner,
    percentile,
)


def test_assignment_is_deterministic_given_a_seed() -> None:
    a = WeightedAssigner(7, {"1": 50, "2": 50})
    b = WeightedAssigner(7, {"1": 50, "2": 50})
    ids = [f"conv-{i}" for i in range(500)]
    assert [a.assign(c) for c in ids] == [b.assign(c) for c in reversed(ids)][::-1]
    c = WeightedAssigner(8, {"1": 50, "2": 50})
    assert [a.assign(i) for i in ids] != [c.assign(i) for i in ids]


@pytest.mark.parametrize("split", [(80, 20), (50, 50), (95, 5)])
def test_ab_split_within_tolerance_over_10000_conversations(split: tuple[int, int]) -> None:
    assigner = WeightedAssigner(42, {"a": split[0], "b": split[1]})
    n = 10_000
    share_b = sum(assigner.assign(f"c{i}") == "b" for i in range(n)) / n
    expected = split[1] / sum(split)
    sigma = (expected * (1 - expected) / n) ** 0.5
    assert abs(share_b - expected) < 4 * sigma


def test_one_shot_pick_follows_weights_and_zero_weight_is_never_picked() -> None:
    assigner = WeightedAssigner(1, {"a": 3, "b": 1, "c": 0})
    picks = [assigner.pick() for _ in range(8000)]
    assert "c" not in picks
    assert abs(picks.count("b") / 8000 - 0.25) < 0.03
    assert WeightedAssigner(1, {"a": 0}).pick() is None
    with pytest.raises(InvalidArgument):
        assigner.set_weights({"a": -1})


def test_pins_expire_in_last_seen_order_and_move() -> None:
    pins = PinTable()
    pins.pin("x", "1", 0.0)
    pins.pin("y", "1", 1.0)
    pins.pin("z", "2", 2.0)
    assert pins.get("x", 3.0) == "1"  # x now seen last
    assert pins.expire(2.5) == 2  # y and z
    assert pins.count("1") == 1 and pins.count("2") == 0
    assert pins.move("1", "2") == 1
    assert pins.peek("x") == "2" and pins.count("2") == 1
    assert pins.end("x") == "2" and len(pins) == 0


def test_metrics_window_and_percentiles() -> None:
    m = VersionMetrics()
    for i in range(100):
        m.record(float(i), 0.001 * (i + 1), ok=i % 10 != 0)
    m.record_restart(95.0)
    m.record_fuel(99.0, 500.0)
    snap = m.snapshot(since=50.0)
    assert snap.requests == 50 and snap.errors == 5
    assert snap.error_rate == pytest.approx(0.1)
    assert snap.p50_ms == pytest.approx(75.0) and snap.p99_ms == pytest.approx(100.0)
    assert snap.restarts == 1 and snap.fuel_per_message == 500.0
    assert snap.total_requests == 100
    assert percentile([], 0.5) is None
    assert MetricsSnapshot().success_rate == 1.0


def test_table_pins_new_conversations_and_routes_one_shots_unpinned() -> None:
    t = RoutingTable("a", seed=3)
    t.add("1", 50)
    t.add("2", 50)
    first = t.choose("conv", 0.0)
    assert all(t.choose("conv", 1.0) == first for _ in range(20))
    t.set_weights({first: 0})
    assert t.choose("conv", 2.0) == first  # pinned survives weight 0
    assert t.choose(None, 2.0) != first
    assert len(t.pins) == 1
    with pytest.raises(VersionNotFound):
        t.set_weights({"9": 1})
    with pytest.raises(InvalidArgument):
        t.add("1")


def test_table_with_no_weight_refuses_new_traffic() -> None:
    t = RoutingTable("a")
    t.add("1", 0)
    with pytest.raises(AgentUnavailable):
        t.choose("c", 0.0)


def test_drain_finishes_conversations_then_retires() -> None:
    t = RoutingTable("a")
    t.add("old", 100)
    t.choose("c1", 0.0)
    t.add("new", 0)
    t.set_weights({"new": 100})
    t.drain("old", 0.0, timeout=None)
    assert t.versions["old"].state is VersionState.DRAINING
    assert t.choose("c1", 1.0) == "old"  # pinned conversation finishes on old
    assert t.choose("c2", 1.0) == "new"
    entry = t.begin("old")
    assert t.poll(2.0).retired == ()
    t.end_conversation("c1")
    assert t.poll(3.0).retired == ()  # still one in flight
    assert t.finish(entry) is True
    result = t.poll(4.0)
    assert [(r.version, r.reason) for r in result.retired] == [("old", "drained")]
    assert "old" not in t.versions
    with pytest.raises(InvalidArgument):
        t.set_weights({"new": -1})


def test_drain_timeout_moves_remaining_conversations_to_the_active_version() -> None:
    t = RoutingTable("a", drain_grace=1.0)
    t.add("old", 100)
    for i in range(5):
        t.choose(f"c{i}", 0.0)
    t.add("new", 100)
    t.drain("old", 0.0, timeout=10.0)
    assert t.poll(9.9).timeouts == ()
    entry = t.begin("old")
    result = t.poll(10.0)
    assert [(x.version, x.moved, x.moved_to) for x in result.timeouts] == [("old", 5, "new")]
    assert result.retired == ()  # a message is still in flight
    assert t.choose("c0", 10.5) == "new"
    late = t.poll(11.0)  # grace expired
    assert [(r.version, r.reason, r.in_flight) for r in late.retired] == [
        ("old", "drain_grace_expired", 1)]
    assert t.finish(entry) is False  # counted against the retired entry, harmless


def test_pin_ttl_ends_idle_conversations_and_lets_a_drain_finish() -> None:
    t = RoutingTable("a", pin_ttl=5.0)
    t.add("old", 100)
    t.choose("c", 0.0)
    t.add("new", 100)
    t.drain("old", 0.0, timeout=None)
    assert t.poll(4.0).retired == ()
    result = t.poll(5.5)
    assert result.expired_conversations == 1
    assert [r.reason for r in result.retired] == ["drained"]


def test_draining_version_cannot_get_weight_but_can_be_undrained() -> None:
    t = RoutingTable("a")
    t.add("1", 100)
    t.drain("1", 0.0, 1.0)
    with pytest.raises(InvalidArgument):
        t.set_weights({"1": 10})
    t.undrain("1")
    t.set_weights({"1": 10})
    assert t.versions["1"].state is VersionState.ACTIVE


def test_reply_future_derived_futures_call_their_hook() -> None:
    # pykka's map/join build a derived future whose get() must run the hook; ReplyFuture
    # once mistook pykka's "unset" sentinel for a result and returned the sentinel itself.
    from caxton.messages import Message
    from caxton.routing import ReplyFuture

    reply = ReplyFuture()
    derived = reply.map(lambda m: m.content + 41)
    reply.set(Message(receiver="a", content=1))
    assert derived.get(timeout=1) == 42
    assert derived.get(timeout=1) == 42  # computed once, kept
