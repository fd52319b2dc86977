"""A real node driven through the ``caxton`` CLI: deploy, message, reload, suspend/resume,
remove, status, logs, validate, and the CLI's exit codes against the real node."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import msgpack
import zmq

from caxton.control.client import ControlClient
from caxton.errors import AgentNotFound, ErrorCode


def test_starts_with_example_agents_and_prints_how_to_talk(shared_node: Any) -> None:
    listed = shared_node.cli_json("agents", "list")
    names = {a["name"]: a for a in listed["agents"]}
    assert {"echo", "DataProcessor", "counter", "echo-wasm"} <= set(names)
    assert names["echo"]["agent_type"] == "config" and names["echo"]["state"] == "Active"
    assert names["counter"]["agent_type"] == "wasm" and names["counter"]["state"] == "Running"
    out = shared_node.stdout()
    assert shared_node.control in out and "agents list" in out and shared_node.events in out
    status = shared_node.cli_json("node", "status")
    assert status["events_endpoint"] == shared_node.events
    assert status["agents"] >= 4 and status["state"] == "running"
    assert status["pid"] == shared_node.proc.pid and status["rss_bytes"] > 0
    assert Path(status["data_dir"]) == shared_node.data_dir.resolve()


def test_message_send_to_config_and_wasm_agents(shared_node: Any) -> None:
    res = shared_node.cli("message", "send", "echo", "hello there")
    assert res.returncode == 0, res.stderr
    assert "hello there" in res.stdout
    reply = shared_node.cli_json("message", "send", "echo-wasm", '"raw"', "--json-content")
    assert reply["content"] == "raw" and reply["sender"] == "echo-wasm"
    with shared_node.client() as client:
        first = client.call("message.send", {"agent": "counter", "content": "x"})["content"]
        second = client.call("message.send", {"agent": "counter", "content": "x"})["content"]
    assert second == first + 1


def test_deploy_reload_immediate_and_canary_then_rollback(shared_node: Any, h: Any,
                                                          tmp_path: Path) -> None:
    v1 = tmp_path / "greeter.md"
    v1.write_text(h.agent_md("greeter", "1.0.0"))
    res = shared_node.cli("agents", "deploy", str(v1))
    assert res.returncode == 0, res.stderr
    assert "greeter" in res.stdout and "1.0.0" in res.stdout
    assert shared_node.cli("agents", "deploy", str(v1)).returncode == 1  # AGENT_EXISTS

    v2 = tmp_path / "greeter2.md"
    v2.write_text(h.agent_md("greeter", "1.1.0"))
    res = shared_node.cli("--json", "agents", "reload", "greeter", "--file", str(v2))
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["version"] == "1.1.0"
    assert h.states(shared_node)["greeter"] == ("1.1.0", "Active")

    v3 = tmp_path / "greeter3.md"
    v3.write_text(h.agent_md("greeter", "1.2.0"))
    res = shared_node.cli("--json", "agents", "reload", "greeter", "--file", str(v3),
                          "--strategy", "canary", "--steps", "50,100", "--step-interval", "0.3")
    assert res.returncode == 0, res.stderr
    op_id = json.loads(res.stdout)["operation_id"]
    assert op_id  # a stepped rollout returns at once with an operation id
    with shared_node.client() as client:
        replies = 0
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            client.call("message.send", {"agent": "greeter", "content": "during canary"})
            replies += 1
            if client.call("operations.get", {"operation_id": op_id})["state"] != "running":
                break
        op = client.call("operations.get", {"operation_id": op_id})
    # Canary analysis judges latency against the stable version; on a loaded machine a
    # noisy p99 may roll it back. Either way the outcome is whole, never half-applied.
    assert op["state"] in ("succeeded", "rolled_back"), op
    assert op["strategy"] == "canary" and op["steps"] == 2 and replies > 0
    expected = "1.2.0" if op["state"] == "succeeded" else "1.1.0"
    assert h.states(shared_node)["greeter"] == (expected, "Active")
    status = shared_node.cli_json("agents", "reload-status", "greeter")
    assert status["history"] and status["history"][0]["operation_id"] == op_id

    v4 = tmp_path / "greeter4.md"
    v4.write_text(h.agent_md("greeter", "1.3.0"))
    res = shared_node.cli("--json", "agents", "reload", "greeter", "--file", str(v4),
                          "--strategy", "blue-green", "--step-interval", "0.2", "--wait")
    assert res.returncode == 0, (res.stdout, res.stderr)
    assert h.states(shared_node)["greeter"] == ("1.3.0", "Active")

    res = shared_node.cli("--json", "agents", "rollback", "greeter", "--to-version", "1.0.0")
    assert res.returncode == 0, res.stderr
    assert h.states(shared_node)["greeter"][0] == "1.0.0"
    assert shared_node.cli("agents", "rollback", "greeter", "--to-version",
                           "9.9.9").returncode == 1


def test_deploy_over_a_running_agent_takes_the_rollout_settings(shared_node: Any, h: Any,
                                                                tmp_path: Path) -> None:
    v1 = tmp_path / "tuned.md"
    v1.write_text(h.agent_md("tuned", "1.0.0"))
    res = shared_node.cli("--json", "agents", "deploy", str(v1), "--max-error-rate", "0.5")
    assert res.returncode == 0, res.stderr
    assert "first deploy" in json.loads(res.stdout)["message"]  # settings had nothing to do
    v2 = tmp_path / "tuned2.md"
    v2.write_text(h.agent_md("tuned", "1.1.0"))
    started = time.monotonic()
    # The node's default canary is 60 s per step; these settings make it two 0.3 s steps.
    res = shared_node.cli("--json", "agents", "deploy", str(v2), "--strategy", "canary",
                          "--steps", "50,100", "--step-interval", "0.3",
                          "--max-p99-ratio", "1000", "--max-error-rate", "1", "--wait",
                          timeout=60)
    assert res.returncode == 0, (res.stdout, res.stderr)
    op = json.loads(res.stdout)
    assert op["strategy"] == "canary" and op["steps"] == 2 and op["state"] == "succeeded", op
    assert time.monotonic() - started < 30
    assert h.states(shared_node)["tuned"] == ("1.1.0", "Active")
    res = shared_node.cli("agents", "deploy", str(v2), "--strategy", "canary",
                          "--steps", "50,10")
    assert res.returncode == 1 and "non-decreasing" in res.stderr


def test_invalid_reload_is_refused_and_old_version_keeps_serving(shared_node: Any, h: Any,
                                                                 tmp_path: Path) -> None:
    f = tmp_path / "keeper.md"
    f.write_text(h.agent_md("keeper", "1.0.0"))
    shared_node.call("agents.deploy", {"file_name": "keeper.md", "text": f.read_text()})
    bad = tmp_path / "bad.md"
    bad.write_text("---\nname: keeper\nversion: \"2.0.0\"\ncapabilities: [nope nope]\n"
                   "tools: [no_such_tool]\n---\nbroken\n")
    res = shared_node.cli("agents", "reload", "keeper", "--file", str(bad))
    assert res.returncode == 1
    assert "VALIDATION_FAILED" in res.stderr
    assert h.states(shared_node)["keeper"] == ("1.0.0", "Active")
    assert shared_node.call("message.send", {"agent": "keeper", "content": "still"})["content"]


def test_wasm_deploy_with_limits_and_validate(shared_node: Any, h: Any) -> None:
    res = shared_node.cli("--json", "agents", "deploy", str(h.TESTING / "slow.wat"), "--name",
                          "slowpoke", "--memory", "2MB", "--fuel", "100000")
    assert res.returncode == 0, res.stderr
    res = shared_node.cli("--json", "message", "send", "slowpoke", "x")
    assert res.returncode == 1
    assert json.loads(res.stdout)["error"]["code"] == "OUT_OF_FUEL"
    res = shared_node.cli("agents", "validate", str(h.TESTING / "forbidden_import.wat"))
    assert res.returncode == 1 and "invalid" in res.stdout
    res = shared_node.cli("--json", "agents", "validate", str(h.EXAMPLES / "echo.md"),
                          "--detailed")
    assert res.returncode == 0 and json.loads(res.stdout)["valid"] is True
    assert len(json.loads(res.stdout)["stages"]) == 7


def test_suspend_holds_messages_until_resume(shared_node: Any, h: Any) -> None:
    shared_node.call("agents.deploy", {"file_name": "held.md", "text": h.agent_md("held")})
    assert shared_node.cli("agents", "suspend", "held").returncode == 0
    assert h.states(shared_node)["held"][1] == "Suspended"
    res = shared_node.cli("--json", "message", "send", "held", "late", "--message-timeout",
                          "0.3")
    assert res.returncode == 1 and json.loads(res.stdout)["error"]["code"] == "TIMEOUT"
    with ControlClient(shared_node.control, timeout=10) as client:
        ids = [client.send_nowait("message.send", {"agent": "held", "content": f"m{i}"})
               for i in range(5)]
        time.sleep(0.3)
        assert shared_node.cli("agents", "resume", "held").returncode == 0
        replies = [client.recv(10) for _ in ids]
    assert sorted(r.id for r in replies) == sorted(ids)
    assert all(r.ok for r in replies), [r.error for r in replies if not r.ok]
    assert h.states(shared_node)["held"][1] == "Active"


def test_remove_then_unknown(shared_node: Any, h: Any) -> None:
    shared_node.call("agents.deploy", {"file_name": "gone.md", "text": h.agent_md("gone")})
    assert shared_node.cli("agents", "remove", "gone").returncode == 0
    assert "gone" not in h.states(shared_node)
    res = shared_node.cli("--json", "message", "send", "gone", "hello")
    assert res.returncode == 1
    assert json.loads(res.stdout)["error"]["code"] == "AGENT_NOT_FOUND"
    try:
        shared_node.call("agents.status", {"name": "gone"})
    except AgentNotFound:
        pass
    else:  # pragma: no cover
        raise AssertionError("status of a removed agent must be refused")


def test_logs_status_monitor(shared_node: Any) -> None:
    shared_node.call("message.send", {"agent": "echo", "content": "for the logs"})
    res = shared_node.cli("--json", "agents", "logs", "echo", "--tail", "50")
    assert res.returncode == 0, res.stderr
    records = [json.loads(line) for line in res.stdout.splitlines() if line.strip()]
    assert records and all(r.get("agent") == "echo" for r in records)
    assert any(r.get("event") == "lifecycle.transition" for r in records)
    detailed = shared_node.cli_json("agents", "status", "echo", "--detailed")["agents"][0]
    assert detailed["name"] == "echo" and "instances" in detailed["details"]
    res = shared_node.cli("--json", "agents", "monitor", "echo", "--count", "1")
    assert res.returncode == 0, res.stderr
    metrics = json.loads(res.stdout.splitlines()[0])["metrics"]
    assert metrics["success_rate"] == 1.0 and metrics["response_time_p50_ms"] is not None


def test_cli_exit_codes_against_the_real_node(shared_node: Any, h: Any) -> None:
    assert shared_node.cli("agents", "list").returncode == 0
    assert shared_node.cli("agents", "status", "nosuch").returncode == 1
    assert shared_node.cli("agents", "suspend", "counter").returncode == 1  # WASM: refused
    assert shared_node.cli("agents", "frobnicate").returncode == 2
    assert shared_node.cli("agents", "deploy", "missing-file.md").returncode == 2
    assert shared_node.cli("agents", "deploy", str(h.TESTING / "slow.wat"), "--memory",
                           "lots").returncode == 2
    port = h.free_port()
    res = shared_node.cli("--endpoint", f"tcp://127.0.0.1:{port}", "--timeout", "0.5",
                          "node", "status", endpoint=False)
    assert res.returncode == 3
    assert f"127.0.0.1:{port}" in res.stderr and "python3 -m caxton" in res.stderr


def test_malformed_frames_get_protocol_errors(shared_node: Any) -> None:
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, 5000)
    sock.connect(shared_node.control)
    try:
        for frame in (b"\xc1not msgpack", msgpack.packb([1, 2]),
                      msgpack.packb({"v": 1, "id": 1, "op": "no.such"}),
                      msgpack.packb({"v": 1, "id": 2, "op": "agents.deploy",
                                     "args": {"file_name": 3}})):
            sock.send(frame)
            reply = msgpack.unpackb(sock.recv(), raw=False)
            assert reply["ok"] is False
            assert reply["error"]["code"] in (ErrorCode.PROTOCOL_ERROR,
                                              ErrorCode.INVALID_ARGUMENT)
    finally:
        sock.close(0)
    assert shared_node.call("node.status")["state"] == "running"
