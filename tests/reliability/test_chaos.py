"""Chaos: ``kill -9`` the node during steady load, during a deploy and during a canary, restart
it on the same ports and data dir, and check that every agent is back at a consistent version
and answers correctly, and that clients saw typed errors or timeouts, never a wrong reply.

Requests in flight when the node dies are never answered; the client counts them as lost after
its timeout — that is the "timeout" a client of a killed node sees. What must never happen is
a reply with someone else's content (``wrong``), a second reply (``duplicated``) or a reply to
an id never sent (``stray``).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from benchmarks.load.clients import ClientSpec, Totals, run_clients
from benchmarks.load.node import NodeProcess
from benchmarks.load.scenarios import (
    TESTING_DIR,
    agent_kind,
    agent_versions,
    call,
    windowed_calls,
)
from caxton.control.client import ControlClient

ECHO = agent_kind("wasm-echo")


def _answers(endpoint: str, names: list[str]) -> dict[str, Any]:
    """Send one message to each agent; return ``{name: content or error code}``."""
    out: dict[str, Any] = {}
    with ControlClient(endpoint, timeout=20.0) as client:
        for n in names:
            token = f"after-restart-{n}"
            try:
                reply = client.call("message.send", {"agent": n, "content": token,
                                                     "timeout": 10.0}, timeout=20.0)
                out[n] = reply["content"] == token
            except Exception as exc:
                out[n] = repr(exc)
    return out


def _load_in_thread(endpoint: str, agents: list[str], duration: float) -> tuple[threading.Thread,
                                                                                list[Totals]]:
    box: list[Totals] = []
    specs = [ClientSpec(endpoint=endpoint, index=i, agents=agents, window=8, duration=duration,
                        timeout=2.0, drain_grace=2.0, hard_cap_s=duration + 30)
             for i in range(2)]
    th = threading.Thread(target=lambda: box.append(run_clients(specs)), daemon=True)
    th.start()
    return th, box


def _no_wrong_replies(totals: Totals) -> None:
    assert totals.wrong == 0, totals.wrong_examples
    assert totals.duplicated == 0
    assert totals.stray == 0
    assert not totals.client_failures, totals.client_failures
    assert totals.replied > 0


def test_kill9_during_steady_load(node: NodeProcess) -> None:
    names = [f"chaos-{i}" for i in range(4)]
    assert windowed_calls(node.control, [("agents.deploy", ECHO.deploy_args(n))
                                         for n in names], 8)["ok"] == 4
    before = agent_versions(node.control)
    th, box = _load_in_thread(node.control, names, duration=4.0)
    time.sleep(1.5)
    node.kill9()
    time.sleep(0.5)
    node.start(timeout=60)
    th.join(60)
    assert box, "the load clients did not finish"
    totals = box[0]
    _no_wrong_replies(totals)
    # typed errors only (e.g. SHUTTING_DOWN is not expected after kill -9, but any code is
    # typed); everything else unanswered is a client-side timeout of a request the dead node
    # had taken
    assert all(code.isupper() for code in totals.errors)
    assert agent_versions(node.control) == before
    assert all(v is True for v in _answers(node.control, names).values())


def test_kill9_during_deploy(node: NodeProcess) -> None:
    names = [f"dep-{i:03d}" for i in range(60)]
    acked: list[str] = []
    reqs = [("agents.deploy", ECHO.deploy_args(n)) for n in names]
    result: dict[str, Any] = {}

    def deploy() -> None:
        result.update(windowed_calls(node.control, reqs, 4, timeout=5.0))

    th = threading.Thread(target=deploy, daemon=True)
    th.start()
    # kill once some deploys were acknowledged
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with ControlClient(node.control, timeout=2.0) as c:
            try:
                if c.call("node.status", {}, timeout=2.0)["agents"] >= 10:
                    break
            except Exception:
                pass
        time.sleep(0.05)
    node.kill9()
    th.join(30)
    acked = [n for n, code in zip(names, result.get("codes", []), strict=False) if code is None]
    assert acked, "no deploy was acknowledged before the kill"
    node.start(timeout=60)
    versions = agent_versions(node.control)
    # every acknowledged deploy survived; anything present is at v1 and answers
    assert set(acked) <= set(versions), sorted(set(acked) - set(versions))
    present = [n for n in names if n in versions]
    assert all(versions[n] == "v1" for n in present), versions
    answers = _answers(node.control, present)
    assert all(v is True for v in answers.values()), answers
    # and the ones that did not make it can be deployed now
    missing = [n for n in names if n not in versions]
    if missing:
        out = windowed_calls(node.control, [("agents.deploy", ECHO.deploy_args(n))
                                            for n in missing], 8)
        assert out["ok"] == len(missing), out


def test_kill9_during_canary(node: NodeProcess) -> None:
    names = [f"can-{i}" for i in range(3)]
    assert windowed_calls(node.control, [("agents.deploy", ECHO.deploy_args(n))
                                         for n in names], 8)["ok"] == 3
    v2 = (TESTING_DIR / "echo_v2.wat").read_bytes()
    th, box = _load_in_thread(node.control, names, duration=4.0)
    time.sleep(0.5)
    out = windowed_calls(node.control, [
        ("agents.reload", ECHO.reload_args(n, v2, "canary", steps=[20, 50, 100],
                                           step_interval_s=1.0)) for n in names], 8)
    assert out["ok"] == 3, out
    time.sleep(1.2)  # mid-canary: the new version takes part of the traffic
    node.kill9()
    node.start(timeout=60)
    th.join(60)
    assert box
    _no_wrong_replies(box[0])
    versions = agent_versions(node.control)
    assert set(names) <= set(versions)
    # consistent: each agent reports one version, the old or the new, and answers as echo
    assert all(versions[n] in ("v1", "v2") for n in names), versions
    answers = _answers(node.control, names)
    assert all(v is True for v in answers.values()), answers
    # no rollout left half-done after the restart, and the next change goes through
    for n in names:
        status = call(node.control, "agents.reload_status", {"name": n})
        assert (status.get("current") or {}).get("state") != "running", status
        call(node.control, "agents.reload", ECHO.reload_args(n, ECHO.content, "immediate"))
    assert all(v is True for v in _answers(node.control, names).values())
