"""The embedded memory store: scopes, limits, FTS, snapshots, reopen, threads."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from caxton.errors import InvalidArgument, MemoryEntityLimit, MemoryScopeViolation
from caxton.memory import MemoryScope, MemoryStore, fts_query


@pytest.fixture
def store(tmp_path: Path) -> Iterator[MemoryStore]:
    s = MemoryStore(tmp_path / "memory.db")
    yield s
    s.close()


def test_database_is_wal_with_fts5(store: MemoryStore) -> None:
    with store.read() as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert "memory_fts" in names


def test_entities_relations_observations_round_trip(store: MemoryStore) -> None:
    mem = store.handle("agent", agent="A")
    mem.add_entity("report-q3", "dataset", ["revenue up 4%"])
    mem.observe("report-q3", "churn down 1%")
    mem.add_entity("alice", "person")
    rel = mem.relate("alice", "report-q3", "owns")
    ent = mem.get_entity("report-q3")
    assert ent is not None and ent.type == "dataset"
    assert [o.text for o in ent.observations] == ["revenue up 4%", "churn down 1%"]
    assert mem.relations("alice") == [rel]
    assert mem.stats() == {"entities": 2, "observations": 2, "relations": 1}
    assert mem.forget("report-q3") is True
    assert mem.relations() == []  # cascade
    assert mem.search("revenue") == []  # FTS rows removed with the entity
    with pytest.raises(InvalidArgument, match="no entity 'ghost'"):
        mem.relate("alice", "ghost", "knows")


def test_agent_scope_is_private_to_its_agent(store: MemoryStore) -> None:
    a = store.handle("agent", agent="A")
    b = store.handle("agent", agent="B")
    a.observe("secret", "the launch code is 1234")
    assert b.get_entity("secret") is None
    assert b.search("launch code") == []
    assert b.memory_context("launch code") == ""
    assert [h.entity for h in a.search("launch code")] == ["secret"]


def test_workspace_scope_shared_within_workspace_only(store: MemoryStore) -> None:
    w1a = store.handle("workspace", agent="A", workspace="w1")
    w1b = store.handle("workspace", agent="B", workspace="w1")
    w2c = store.handle("workspace", agent="C", workspace="w2")
    w1a.observe("shared-fact", "the warehouse is in Lyon")
    assert w1b.get_entity("shared-fact") is not None
    assert w2c.get_entity("shared-fact") is None
    g1 = store.handle("global", agent="A")
    g2 = store.handle("global", agent="Z", workspace="other")
    g1.observe("node", "runs three agents")
    assert g2.get_entity("node") is not None
    assert w1a.get_entity("node") is None  # global data is not visible from workspace scope


def test_handle_cannot_cross_its_scope(store: MemoryStore) -> None:
    mem = store.handle("agent", agent="A", workspace="w1")
    assert mem.view("agent") is mem
    with pytest.raises(MemoryScopeViolation) as err:
        mem.view("global")
    assert "agent 'A'" in err.value.message and "memory_scope" in err.value.message
    with pytest.raises(MemoryScopeViolation):
        mem.view("agent", owner="B")
    with pytest.raises(MemoryScopeViolation):
        mem.view(MemoryScope.WORKSPACE)
    # a snapshot of another partition cannot be restored through this handle
    other = store.handle("agent", agent="B")
    other.observe("x", "y")
    with pytest.raises(MemoryScopeViolation, match="restore a snapshot"):
        mem.restore(other.snapshot())
    assert mem.count() == 0


def test_entity_limit_names_agent_limit_and_fix(store: MemoryStore) -> None:
    mem = store.handle("agent", agent="Limited", max_entities=3)
    for i in range(3):
        mem.observe(f"e{i}", "fact")
    mem.observe("e0", "more facts about an existing entity are fine")
    with pytest.raises(MemoryEntityLimit) as err:
        mem.add_entity("e3")
    msg = err.value.message
    assert "'Limited'" in msg and "max_memory_entities=3" in msg
    assert "raise resource_limits.max_memory_entities" in msg
    assert mem.count() == 3
    mem.forget("e1")
    mem.add_entity("e3")
    assert mem.count() == 3


def test_entity_limit_holds_under_concurrent_writers(store: MemoryStore) -> None:
    limit = 20
    errors: list[Exception] = []

    def work(i: int) -> None:
        mem = store.handle("workspace", agent=f"a{i}", workspace="w", max_entities=limit)
        for j in range(10):
            try:
                mem.observe(f"t{i}-{j}", "x")
            except MemoryEntityLimit as exc:
                errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert store.handle("workspace", agent="q", workspace="w").count() == limit
    assert len(errors) == 40 - limit


def test_full_text_search_ranks_and_sanitises(store: MemoryStore) -> None:
    mem = store.handle("agent", agent="A")
    mem.add_entity("Quarterly revenue", "metric", ["revenue grew in Europe", "costs flat"])
    mem.add_entity("weather", "note", ["sunny in Lyon"])
    hits = mem.search("revenue europe")
    assert hits and hits[0].entity == "Quarterly revenue"
    assert {h.entity for h in hits} == {"Quarterly revenue"}
    # FTS operators and quotes in user text are neutralised, not syntax errors
    assert mem.search('revenue" OR NEAR(* AND') != []
    assert mem.search("!!! ???") == []
    assert fts_query('a "b" a') == '"a" OR "b"'


def test_memory_context_shows_matches_then_recent(store: MemoryStore) -> None:
    mem = store.handle("agent", agent="A")
    assert mem.memory_context("anything") == ""
    mem.observe("invoice-7", "paid on 3 May", entity_type="invoice")
    mem.observe("supplier", "ACME ships from Lyon", entity_type="company")
    ctx = mem.memory_context("when was invoice-7 paid")
    assert ctx.splitlines()[0].startswith("- invoice-7 (invoice)")
    assert "paid on 3 May" in ctx
    fallback = mem.memory_context("zzz unrelated")
    assert "ACME ships from Lyon" in fallback  # newest observations when nothing matches


def test_snapshot_restore_bytes_and_file(store: MemoryStore, tmp_path: Path) -> None:
    mem = store.handle("agent", agent="A")
    mem.add_entity("a", "t", ["one", "two"])
    mem.add_entity("b", "t")
    mem.relate("a", "b", "links")
    data = mem.snapshot()
    path = mem.snapshot_to(tmp_path / "snaps" / "a.json")
    mem.clear()
    mem.observe("junk", "should disappear on restore")
    assert mem.restore(data) == 2
    assert mem.get_entity("junk") is None
    assert [o.text for o in mem.get_entity("a").observations] == ["one", "two"]  # type: ignore[union-attr]
    assert mem.relations() == [mem.relations()[0]] and mem.relations()[0].type == "links"
    assert [h.entity for h in mem.search("two")] == ["a"]  # FTS rebuilt by restore
    # restore into a different store file (a node restored on another machine)
    other = MemoryStore(tmp_path / "other.db")
    try:
        assert other.handle("agent", agent="A").restore_from(path) == 2
        small = other.handle("agent", agent="A", max_entities=1)
        with pytest.raises(MemoryEntityLimit):
            small.restore(data)
    finally:
        other.close()
    with pytest.raises(InvalidArgument, match="not a memory snapshot"):
        mem.restore(b"garbage")


def test_memory_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "node" / "memory.db"
    s1 = MemoryStore(path)
    s1.handle("global", agent="A").observe("fact", "persisted across restarts")
    s1.close()
    s2 = MemoryStore(path, connection_mode="shared")
    try:
        ent = s2.handle("global", agent="B").get_entity("fact")
        assert ent is not None and ent.observations[0].text == "persisted across restarts"
        assert s2.partitions()[0][1] == 1
    finally:
        s2.close()


@pytest.mark.parametrize("mode", ["per_thread", "shared"])
def test_many_threads_share_one_store(tmp_path: Path, mode: str) -> None:
    store = MemoryStore(tmp_path / "m.db", connection_mode=mode)  # type: ignore[arg-type]
    failures: list[BaseException] = []

    def work(i: int) -> None:
        try:
            mem = store.handle("agent", agent=f"agent{i}")
            for j in range(25):
                mem.observe(f"e{j % 5}", f"observation {j} from agent {i}")
                assert mem.search(f"agent {i}")
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    try:
        assert failures == []
        for i in range(6):
            assert store.handle("agent", agent=f"agent{i}").stats()["observations"] == 25
    finally:
        store.close()


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument):
        MemoryStore(":memory:")
    store = MemoryStore(tmp_path / "m.db")
    try:
        with pytest.raises(InvalidArgument, match="unknown memory scope"):
            store.handle("team", agent="A")
        with pytest.raises(InvalidArgument, match="at least 1"):
            store.handle("agent", agent="A", max_entities=0)
        with pytest.raises(InvalidArgument):
            store.handle("agent", agent="A").observe("", "x")
    finally:
        store.close()
