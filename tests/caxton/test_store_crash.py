"""Crash safety of the node state store: kill -9 a writer at random moments, then reopen."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from caxton.store import NodeStore

# The child keeps deploying: plain deploys, rollout starts (new version + rollout state in one
# transaction) and promotions (switch + clear in one transaction), with payloads large enough
# that a kill often lands inside a transaction. After each commit it prints the agent's current
# version number, so the parent knows what was acknowledged.
CHILD = r"""
import json, os, random, sys
from caxton.store import NodeStore, RolloutState

path, seed = sys.argv[1], int(sys.argv[2])
rng = random.Random(seed)
store = NodeStore(path)
numbers = {}
for snap in store.load_all().agents:
    numbers[snap.agent.name] = max(v.info.version_number for v in snap.versions)
print("ready", flush=True)
while True:
    name = f"agent{rng.randrange(4)}"
    n = numbers.get(name, 0) + 1
    numbers[name] = n
    payload = os.urandom(rng.randrange(20_000, 400_000))
    ro = store.get_rollout(name)
    if ro is not None:
        store.set_current_version(name, ro.target_version, clear_rollout=True)
    elif name in numbers and n > 1 and rng.random() < 0.4:
        cur = store.get_agent(name).current_version
        store.deploy_version(name, f"v{n}", payload, version_number=n, make_current=False,
            rollout=RolloutState(strategy="canary", stable_version=cur, target_version=f"v{n}"))
    else:
        store.record_deploy(name, agent_id=name, kind="wasm", version=f"v{n}",
            version_number=n, payload=payload, metadata={"n": n})
    cur = store.get_agent(name).current_version
    print(json.dumps({"agent": name, "current": int(cur[1:])}), flush=True)
"""

# A child that stops inside the COMMIT of a deploy and waits to be killed there.
CHILD_AT_COMMIT = r"""
import sys, time
from caxton.store import NodeStore

store = NodeStore(sys.argv[1])
store.record_deploy("a", agent_id="a", kind="config", version="1", version_number=1, payload="one")
armed = True
def trace(sql):
    if armed and sql.strip().upper() == "COMMIT":
        print("at-commit", flush=True)
        time.sleep(60)
store._conn.set_trace_callback(trace)
store.record_deploy("a", agent_id="a", kind="config", version="2", version_number=2, payload="two")
print("committed", flush=True)
"""


# Several threads deploy new agents at once (their writes share commits); each prints the
# agent's name once its record_deploy returned, i.e. once the deploy was acknowledged.
CHILD_CONCURRENT = r"""
import os, sys, threading
from caxton.store import NodeStore

path, tag = sys.argv[1], sys.argv[2]
store = NodeStore(path)
print("ready", flush=True)
out = threading.Lock()

def writer(t):
    i = 0
    while True:
        name = f"{tag}-{t}-{i}"
        store.record_deploy(name, agent_id=name, kind="wasm", version="v1", version_number=1,
                            payload=os.urandom(2000), metadata={"t": t})
        with out:
            print(name, flush=True)
        i += 1

for t in range(6):
    threading.Thread(target=writer, args=(t,), daemon=True).start()
threading.Event().wait()
"""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    return env


def check_consistent(path: Path) -> NodeStore:
    store = NodeStore(path)
    assert store.integrity_check() == "ok"
    for snap in store.load_all().agents:
        kept = {v.version for v in snap.versions}
        assert snap.agent.current_version in kept, snap
        if snap.rollout is not None:
            assert {snap.rollout.stable_version, snap.rollout.target_version} <= kept
    return store


@pytest.mark.timeout(120)
def test_kill_9_during_deploys_keeps_store_consistent(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    rng = random.Random(1234)
    acked: dict[str, int] = {}
    kills = 6
    for round_no in range(kills):
        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(path), str(round_no)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(), text=True,
        )
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == "ready", proc.stderr.read() if proc.stderr else ""
        time.sleep(rng.uniform(0.15, 0.6))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        out = proc.stdout.read()
        proc.stdout.close()
        assert proc.stderr is not None
        proc.stderr.close()
        for raw in out.splitlines():
            if raw.startswith("{"):
                rec = json.loads(raw)
                acked[rec["agent"]] = rec["current"]
        store = check_consistent(path)
        try:
            # No acknowledged deploy is lost: every current version is at least the acked one.
            for name, number in acked.items():
                current = store.get_agent(name).current_version
                assert int(current[1:]) >= number, (name, current, number)
        finally:
            store.close()
    assert sum(acked.values()) > 0  # the children did real work between kills


@pytest.mark.timeout(60)
def test_kill_inside_commit_leaves_old_version_current(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD_AT_COMMIT, str(path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(), text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    line = proc.stdout.readline()
    assert line.strip() == "at-commit", proc.stderr.read()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    proc.stdout.close()
    proc.stderr.close()
    store = check_consistent(path)
    try:
        assert store.get_agent("a").current_version == "1"
        assert [v.version for v in store.list_versions("a")] == ["1"]
        # and the store is writable again after the crash
        store.record_deploy("a", agent_id="a", kind="config", version="2", version_number=2,
                            payload="two")
        assert store.get_version("a", "2").text() == "two"
    finally:
        store.close()


@pytest.mark.timeout(120)
def test_kill_9_during_concurrent_deploys_loses_no_acknowledged_one(tmp_path: Path) -> None:
    """Group commit: writes from many threads share a COMMIT, and a write is acknowledged only
    after its COMMIT; killing the writer at any moment loses none that were acknowledged."""
    path = tmp_path / "node.db"
    rng = random.Random(99)
    acked: list[str] = []
    for round_no in range(4):
        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD_CONCURRENT, str(path), f"r{round_no}"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(), text=True,
        )
        assert proc.stdout is not None and proc.stderr is not None
        line = proc.stdout.readline()
        assert line.strip() == "ready", proc.stderr.read()
        time.sleep(rng.uniform(0.2, 0.6))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        acked += [raw for raw in proc.stdout.read().splitlines() if raw.startswith("r")]
        proc.stdout.close()
        proc.stderr.close()
        store = check_consistent(path)
        try:
            recorded = {a.name for a in store.list_agents()}
        finally:
            store.close()
        missing = [name for name in acked if name not in recorded]
        assert not missing, missing[:5]
    assert len(acked) > 20  # the writers did real work between kills
