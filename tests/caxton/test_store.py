"""The node state store: transactions, version pruning, rollouts, recovery snapshot, threads."""

from __future__ import annotations

import sqlite3
import threading
from enum import Enum
from pathlib import Path

import pytest

from caxton.errors import AgentNotFound, InvalidArgument, VersionNotFound
from caxton.store import KEEP_VERSIONS, NodeStore, RolloutState, StoreError


@pytest.fixture
def store(tmp_path: Path) -> NodeStore:
    s = NodeStore(tmp_path / "state" / "node.db")
    yield s
    s.close()


def deploy(store: NodeStore, name: str, n: int, kind: str = "config", **kw: object) -> None:
    payload = f"---\nname: {name}\nversion: 1.0.{n}\n---\n" if kind == "config" else bytes([n]) * 64
    store.record_deploy(
        name, agent_id=f"id-{name}", kind=kind, version=f"1.0.{n}", version_number=n,
        payload=payload, metadata={"n": n}, **kw,  # type: ignore[arg-type]
    )


def test_pragmas_and_schema(store: NodeStore) -> None:
    assert store._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert store.schema_version == 1
    assert store.integrity_check() == "ok"


def test_deploy_and_read_back(store: NodeStore) -> None:
    rec = store.record_deploy(
        "echo", agent_id="a1", kind="config", version="1.0.0", version_number=1,
        payload="hello text", metadata={"by": "cli"}, config={"memory": "10MB"},
        strategy="canary", state="active",
    )
    assert rec.current_version == "1.0.0" and rec.kind == "config" and rec.strategy == "canary"
    assert rec.config == {"memory": "10MB"}
    v = store.get_version("echo", "1.0.0")
    assert v.text() == "hello text" and v.info.metadata == {"by": "cli"} and v.info.size == 10
    store.record_deploy(
        "mod", agent_id="m1", kind="wasm", version="0.1", version_number=1, payload=b"\0asm\x01",
    )
    w = store.get_version("mod", "0.1")
    assert w.payload == b"\0asm\x01"
    with pytest.raises(InvalidArgument):
        w.text()


def test_kind_is_checked(store: NodeStore) -> None:
    with pytest.raises(InvalidArgument, match="kind"):
        store.record_deploy("x", agent_id="x", kind="python", version="1", version_number=1,
                            payload=b"")
    deploy(store, "x", 1)
    with pytest.raises(InvalidArgument, match="config agent"):
        deploy(store, "x", 2, kind="wasm")
    assert store.get_agent("x").current_version == "1.0.1"


def test_keeps_last_five_versions(store: NodeStore) -> None:
    for n in range(1, 9):
        deploy(store, "a", n)
    kept = [v.version for v in store.list_versions("a")]
    assert kept == [f"1.0.{n}" for n in range(4, 9)]
    assert len(kept) == KEEP_VERSIONS
    with pytest.raises(VersionNotFound, match=r"1\.0\.4"):
        store.get_version("a", "1.0.1")


def test_current_version_is_never_pruned(store: NodeStore) -> None:
    for n in range(1, 6):
        deploy(store, "a", n)
    store.set_current_version("a", "1.0.1")  # roll back to the oldest kept
    for n in range(6, 9):
        deploy(store, "a", n, make_current=False)
    kept = [v.version for v in store.list_versions("a")]
    assert "1.0.1" in kept and len(kept) == KEEP_VERSIONS
    assert store.get_agent("a").current_version == "1.0.1"
    assert kept[-1] == "1.0.8"


def test_redeploying_a_version_replaces_it(store: NodeStore) -> None:
    deploy(store, "a", 1)
    deploy(store, "a", 2)
    store.record_deploy("a", agent_id="id-a", kind="config", version="1.0.1", version_number=3,
                        payload="new text")
    assert [v.version for v in store.list_versions("a")] == ["1.0.2", "1.0.1"]
    assert store.get_version("a", "1.0.1").text() == "new text"
    assert store.get_agent("a").current_version == "1.0.1"


def test_set_state_and_current_version_errors(store: NodeStore) -> None:
    deploy(store, "a", 1)
    store.set_state("a", "suspended")
    assert store.get_agent("a").state == "suspended"
    class State(Enum):  # a plain Enum: its str() would be "State.RUNNING"
        RUNNING = "Running"

    store.set_state("a", State.RUNNING)  # enum members are stored as their value
    assert store.get_agent("a").state == "Running"
    with pytest.raises(AgentNotFound):
        store.set_state("nope", "active")
    with pytest.raises(VersionNotFound, match=r"kept versions: 1\.0\.1"):
        store.set_current_version("a", "9.9.9")
    assert store.get_agent("a").current_version == "1.0.1"


def test_rollout_lifecycle(store: NodeStore) -> None:
    deploy(store, "a", 1)
    ro = RolloutState(strategy="canary", stable_version="1.0.1", target_version="1.0.2",
                      weights={"1.0.1": 95, "1.0.2": 5}, operation_id="op-1")
    store.deploy_version("a", "1.0.2", "v2", version_number=2, make_current=False, rollout=ro)
    assert store.get_agent("a").current_version == "1.0.1"
    got = store.get_rollout("a")
    assert got is not None and got.weights == {"1.0.1": 95, "1.0.2": 5} and got.step == 0
    store.set_rollout("a", got.model_copy(update={"step": 2, "weights": {"1.0.1": 50, "1.0.2": 50}}))
    assert store.get_rollout("a").step == 2  # type: ignore[union-attr]
    # promotion: switch and clear in one transaction
    store.set_current_version("a", "1.0.2", clear_rollout=True)
    assert store.get_rollout("a") is None and store.get_agent("a").current_version == "1.0.2"
    with pytest.raises(VersionNotFound):
        store.set_rollout("a", RolloutState(strategy="canary", stable_version="1.0.2",
                                            target_version="7"))
    assert store.clear_rollout("a") is False


def test_rollout_versions_are_not_pruned(store: NodeStore) -> None:
    deploy(store, "a", 1)
    store.deploy_version("a", "1.0.2", "v2", version_number=2, make_current=False,
                         rollout=RolloutState(strategy="canary", stable_version="1.0.1",
                                              target_version="1.0.2"))
    store.set_current_version("a", "1.0.1")
    for n in range(3, 10):
        store.deploy_version("a", f"1.0.{n}", "x", version_number=n, make_current=False)
    kept = {v.version for v in store.list_versions("a")}
    assert {"1.0.1", "1.0.2"} <= kept


def test_failed_transaction_leaves_nothing(store: NodeStore) -> None:
    deploy(store, "a", 1)
    bad = RolloutState(strategy="canary", stable_version="missing", target_version="1.0.2")
    with pytest.raises(VersionNotFound):
        store.deploy_version("a", "1.0.2", "v2", version_number=2, rollout=bad)
    assert [v.version for v in store.list_versions("a")] == ["1.0.1"]
    assert store.get_agent("a").current_version == "1.0.1"
    assert store.get_rollout("a") is None


def test_remove_agent(store: NodeStore) -> None:
    deploy(store, "a", 1)
    store.set_rollout("a", RolloutState(strategy="x", stable_version="1.0.1",
                                        target_version="1.0.1"))
    assert store.remove_agent("a") is True
    assert store.remove_agent("a") is False
    with pytest.raises(AgentNotFound):
        store.list_versions("a")
    assert store._conn.execute("SELECT count(*) FROM versions").fetchone()[0] == 0
    assert store.get_rollout("a") is None


def test_facts(store: NodeStore) -> None:
    store.set_fact("node_id", "n-1")
    store.set_fact("started", {"count": 3})
    assert store.get_fact("node_id") == "n-1" and store.get_fact("missing", 7) == 7
    assert store.facts() == {"node_id": "n-1", "started": {"count": 3}}
    with pytest.raises(InvalidArgument):
        store.set_fact("bad", object())
    assert store.delete_fact("node_id") and not store.delete_fact("node_id")


def test_load_all_after_reopen(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    with NodeStore(path) as s:
        deploy(s, "b", 1)
        deploy(s, "b", 2)
        deploy(s, "a", 1, kind="wasm", state="suspended")
        s.set_rollout("b", RolloutState(strategy="gradual", stable_version="1.0.1",
                                        target_version="1.0.2"))
        s.set_fact("k", [1, 2])
    with NodeStore(path) as s:
        snap = s.load_all()
    assert [a.agent.name for a in snap.agents] == ["a", "b"]
    a = snap.agent("a")
    assert a.agent.state == "suspended" and a.current.payload == bytes([1]) * 64
    b = snap.agent("b")
    assert b.current.version == "1.0.2" and [v.version for v in b.versions] == ["1.0.1", "1.0.2"]
    assert b.rollout is not None and b.rollout.strategy == "gradual"
    assert snap.facts == {"k": [1, 2]}
    with pytest.raises(AgentNotFound):
        snap.agent("zzz")


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    NodeStore(path).close()
    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE schema_version SET version = 99")
    with pytest.raises(StoreError, match="schema version 99"):
        NodeStore(path)


def test_garbage_file_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="move the file aside"):
        NodeStore(path)


def test_concurrent_threads(store: NodeStore) -> None:
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            for n in range(1, 31):
                deploy(store, f"agent{i % 3}", n * 10 + i)
                store.set_state(f"agent{i % 3}", f"s{n}")
                store.list_versions(f"agent{i % 3}")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert store.integrity_check() == "ok"
    for snap in store.load_all().agents:
        assert len(snap.versions) == KEEP_VERSIONS
        snap.current  # noqa: B018 - raises if the current version is missing


def test_concurrent_writers_share_commits_and_each_is_durable_on_return(tmp_path: Path) -> None:
    """Group commit: writers from many threads; a failing one undoes only itself; every call
    that returned is visible to another connection at once (it was committed)."""
    path = tmp_path / "node.db"
    store = NodeStore(path)
    commits: list[str] = []
    store._conn.set_trace_callback(lambda sql: commits.append(sql) if sql == "COMMIT" else None)
    other = sqlite3.connect(str(path), check_same_thread=False)
    other_lock = threading.Lock()
    missing: list[str] = []
    errors: list[BaseException] = []

    def writer(t: int) -> None:
        try:
            for i in range(40):
                deploy(store, f"t{t}-{i}", 1)
                # acknowledged: another connection sees it now
                with other_lock:
                    row = other.execute("SELECT 1 FROM agents WHERE name = ?",
                                        (f"t{t}-{i}",)).fetchone()
                if row is None:
                    missing.append(f"t{t}-{i}")
                with pytest.raises(AgentNotFound):
                    store.set_state(f"nobody-{t}-{i}", "running")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    other.close()
    assert not errors and not missing
    assert not store._conn.in_transaction
    assert len(commits) <= 8 * 40 * 2
    store.close()
    reopened = NodeStore(path)
    assert len(reopened.list_agents()) == 8 * 40
    assert reopened.integrity_check() == "ok"
    reopened.close()
