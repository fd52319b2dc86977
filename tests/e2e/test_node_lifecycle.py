"""Node process lifecycle: kill -9 durability, SIGTERM drain without lost replies, the
node.shutdown op, configuration errors, CURVE refusal and watch mode."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import pytest

from caxton.control.client import ControlClient, NodeUnreachable
from caxton.control.keys import CurveClientConfig, generate_keys


def test_kill9_then_restart_brings_back_agents_versions_and_states(node_factory: Any,
                                                                    h: Any) -> None:
    node = node_factory().start()
    node.call("agents.deploy", {"file_name": "durable.md", "text": h.agent_md("durable")})
    node.call("agents.reload", {"name": "durable", "text": h.agent_md("durable", "2.0.0")})
    node.call("agents.suspend", {"name": "durable"})
    node.call("agents.reload", {"name": "echo",
                                "text": (h.EXAMPLES / "echo.md").read_text().replace(
                                    "name: echo\n", "name: echo\nversion: \"1.5.0\"\n")})
    node.call("agents.reload", {"name": "counter", "file_name": "counter.wat",
                                "data": (h.EXAMPLES / "counter.wat").read_bytes()})
    node.call("agents.remove", {"name": "DataProcessor"})
    before = h.states(node)
    assert before["durable"] == ("2.0.0", "Suspended")
    assert before["counter"] == ("v2", "Running")

    node.kill9()
    node.start()
    after = h.states(node)
    # Exactly as before; the removed DataProcessor is not resurrected from the agents dir.
    assert after == before and "DataProcessor" not in after
    assert node.call("agents.status", {"name": "durable"})["agents"][0]["versions"] == [
        "1.0.0", "2.0.0"]
    node.call("agents.resume", {"name": "durable"})
    assert node.call("message.send", {"agent": "durable", "content": "back"})["content"]
    res = node.cli("agents", "rollback", "durable", "--to-version", "1.0.0")
    assert res.returncode == 0, res.stderr


def test_sigterm_drains_in_flight_messages_without_losing_replies(node_factory: Any,
                                                                   h: Any) -> None:
    node = node_factory().start()
    node.call("agents.deploy", {"file_name": "slow.wat", "name": "slow",
                                "data": (h.TESTING / "slow.wat").read_bytes()})
    sent: list[int] = []
    with ControlClient(node.control, timeout=30, max_in_flight=500) as client:
        for i in range(200):
            sent.append(client.send_nowait("message.send",
                                           {"agent": "slow", "content": f"m{i}",
                                            "timeout": 30}))
        time.sleep(0.05)
        node.signal(signal.SIGTERM)
        replies = [client.recv(30) for _ in sent]
    assert node.wait_exit(30) == 0, node.stderr()[-2000:]
    assert sorted(r.id for r in replies) == sorted(sent)
    ok = [r for r in replies if r.ok]
    errors = {str(r.error.code) for r in replies if not r.ok and r.error is not None}
    assert ok, "some messages must have been answered before the drain ended"
    assert errors <= {"SHUTTING_DOWN", "TIMEOUT"}, errors
    assert "node.stopped" in node.stderr()


def test_node_shutdown_op_and_second_start(node_factory: Any, h: Any) -> None:
    node = node_factory().start()
    res = node.cli("node", "shutdown", "--drain-timeout", "2")
    assert res.returncode == 0, res.stderr
    assert node.wait_exit(30) == 0
    node.start()
    assert "echo" in h.states(node)


def test_bad_config_file_exits_2_with_a_clear_error(tmp_path: Path, h: Any) -> None:
    import subprocess
    import sys

    cfg = tmp_path / "caxton.yaml"
    cfg.write_text("control: tcp://127.0.0.1:1\ndrain_timout: 5s\n")
    res = subprocess.run([sys.executable, "-m", "caxton", "--config", str(cfg)],
                         cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 2
    assert "caxton.yaml:2" in res.stderr and "drain_timeout" in res.stderr
    res = subprocess.run([sys.executable, "-m", "caxton", "--help"], capture_output=True,
                         text=True, timeout=60, check=False)
    assert res.returncode == 0 and "--watch" in res.stdout and "--data-dir" in res.stdout


def test_curve_node_refuses_an_unknown_client_key(node_factory: Any, tmp_path: Path,
                                                  h: Any) -> None:
    keys = tmp_path / "keys"
    server = generate_keys(keys, "server")
    friend = generate_keys(keys, "friend")
    stranger = generate_keys(tmp_path / "other", "stranger")
    allow = tmp_path / "allow"
    allow.mkdir()
    (allow / "friend.key").write_bytes(friend.public.read_bytes())
    cfg = tmp_path / "caxton.yaml"
    cfg.write_text(f"curve:\n  server_secret_key_file: {server.secret}\n"
                   f"  authorized_keys_dir: {allow}\n")
    node = node_factory("--config", str(cfg))
    good = CurveClientConfig(server.public, friend.secret)
    node.start(curve=good)
    with ControlClient(node.control, timeout=5, curve=good) as client:
        assert client.call("node.status")["curve"] is True
    bad = CurveClientConfig(server.public, stranger.secret)
    with ControlClient(node.control, timeout=1.5, curve=bad) as client, \
            pytest.raises(NodeUnreachable):
        client.call("node.status")
    with ControlClient(node.control, timeout=1.5) as client, pytest.raises(NodeUnreachable):
        client.call("node.status")  # plain text is not spoken either
    res = node.cli("--timeout", "1.5", "--curve-server-key", str(server.public),
                   "--curve-client-key", str(stranger.secret), "agents", "list")
    assert res.returncode == 3
    res = node.cli("--curve-server-key", str(server.public), "--curve-client-key",
                   str(friend.secret), "agents", "list")
    assert res.returncode == 0 and "echo" in res.stdout


def test_watch_mode_applies_valid_edits_and_keeps_serving_on_invalid(node_factory: Any,
                                                                     h: Any) -> None:
    node = node_factory("--watch").start()
    echo = node.agents_dir / "echo.md"
    original = echo.read_text()
    echo.write_text(original.replace("name: echo\n", "name: echo\nversion: \"1.1.0\"\n"))
    assert h.wait_for(lambda: h.states(node)["echo"][0] == "1.1.0", timeout=20)

    echo.write_text("---\nname: echo\nversion: \"2.0.0\"\ncapabilities: [echo]\n"
                    "tools: [no_such_tool]\n---\nbroken\n")
    assert h.wait_for(lambda: "watch.change_refused" in node.stderr(), timeout=20)
    assert h.states(node)["echo"] == ("1.1.0", "Active")
    assert node.call("message.send", {"agent": "echo", "content": "still here"})["content"]

    (node.agents_dir / "newcomer.md").write_text(h.agent_md("newcomer", "0.1.0"))
    assert h.wait_for(lambda: "newcomer" in h.states(node), timeout=20)
    logs = node.call("agents.logs", {"name": "echo", "tail": 200})["records"]
    assert any(r.get("event") == "watch.change_refused" for r in logs)
