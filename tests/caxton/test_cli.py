"""The ``caxton`` CLI against a real control server with small handlers defined here."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from caxton.cli import main
from caxton.control import protocol
from caxton.control.events import EventPublisher
from caxton.control.server import ControlServer
from caxton.errors import AgentNotFound, ValidationFailed

pytestmark = pytest.mark.timeout(60)

AGENT_MD = """---
name: greeter
version: 1.0.0
capabilities: [chat]
---
# Greeter
"""


class FakeNode:
    """A control server whose handlers record what they were sent (a stand-in node)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.events = EventPublisher("tcp://127.0.0.1:0")
        self.server = ControlServer("tcp://127.0.0.1:0")
        for op in protocol.OPS:
            self.server.register(op, self._make(op))
        self.server.start()

    @property
    def endpoint(self) -> str:
        return self.server.endpoint

    def _make(self, op: str) -> Any:
        def handler(args: Any) -> Any:
            self.calls.append((op, args))
            return getattr(self, "op_" + op.replace(".", "_"), self.default)(args)

        return handler

    def default(self, args: Any) -> dict[str, Any]:
        return {"name": getattr(args, "name", None) or "x", "version": "1.0.0",
                "state": "running"}

    def op_node_status(self, _args: Any) -> dict[str, Any]:
        return {"version": "0.1.0", "pid": 42, "uptime_s": 1.5,
                "control_endpoint": self.endpoint, "events_endpoint": self.events.endpoint}

    def op_agents_list(self, args: protocol.AgentsListArgs) -> dict[str, Any]:
        agents = [{"name": "greeter", "agent_type": "config", "version": "1.0.0",
                   "state": "running"},
                  {"name": "calc", "agent_type": "wasm", "version": "2", "state": "suspended"}]
        return {"agents": [a for a in agents if args.type is None or a["agent_type"] == args.type]}

    def op_agents_suspend(self, args: protocol.AgentsSuspendArgs) -> Any:
        raise AgentNotFound(f"no agent named {args.name!r}; see `caxton agents list`")

    def op_agents_validate(self, args: protocol.AgentsValidateArgs) -> dict[str, Any]:
        if args.text is not None and "BROKEN" in args.text:
            return {"valid": False, "findings": [{"message": "frontmatter: name is missing",
                                                  "line": 2, "file": args.file_name}]}
        return {"valid": True, "name": "greeter", "findings": []}

    def op_agents_reload(self, args: protocol.AgentsReloadArgs) -> dict[str, Any]:
        if args.text is not None and "BROKEN" in args.text:
            raise ValidationFailed("greeter.md: frontmatter is not valid YAML",
                                   details=[{"line": 2}])
        return {"name": args.name, "version": "1.0.1", "state": "running",
                "operation_id": "op-1" if args.strategy == "canary" else None}

    def op_agents_ab_test(self, args: protocol.AgentsAbTestArgs) -> dict[str, Any]:
        return {"name": args.name, "version": "2.0.0", "state": "running",
                "operation_id": "op-1"}

    def op_agents_deploy(self, args: protocol.AgentsDeployArgs) -> dict[str, Any]:
        return {"name": args.name or "greeter", "version": "1.0.0", "state": "running",
                "operation_id": "op-1" if args.strategy == "canary" else None}

    def op_operations_get(self, args: protocol.OperationsGetArgs) -> dict[str, Any]:
        return {"operation_id": args.operation_id, "name": "greeter", "kind": "reload",
                "strategy": "canary", "state": "succeeded", "step": 3, "steps": 3,
                "traffic": {"1.0.1": 100}}

    def op_agents_logs(self, args: protocol.AgentsLogsArgs) -> dict[str, Any]:
        return {"records": [{"ts": 0, "level": "info", "event": "started",
                             "agent": args.name}] * min(args.tail, 3)}

    def op_agents_monitor(self, args: protocol.AgentsMonitorArgs) -> dict[str, Any]:
        return {"name": args.name, "metrics": {m: 1.0 for m in args.metrics}}

    def op_message_send(self, args: protocol.MessageSendArgs) -> dict[str, Any]:
        return {"receiver": args.sender, "sender": args.agent, "content": args.content,
                "performative": "inform", "message_id": "m1"}

    def last(self, op: str) -> Any:
        return [a for o, a in self.calls if o == op][-1]

    def close(self) -> None:
        self.server.stop()
        self.events.close()


@pytest.fixture
def node() -> Iterator[FakeNode]:
    n = FakeNode()
    yield n
    n.close()


def run(node: FakeNode, *argv: str) -> int:
    return main(["--endpoint", node.endpoint, *argv])


def test_ok_and_json_output(node: FakeNode, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(node, "agents", "list") == 0
    out = capsys.readouterr().out
    assert "greeter" in out and "suspended" in out and "NAME" in out
    assert run(node, "--json", "agents", "list", "--type", "wasm") == 0
    data = json.loads(capsys.readouterr().out)
    assert [a["name"] for a in data["agents"]] == ["calc"]
    assert run(node, "node", "status", "--json") == 0  # --json also after the verb
    assert json.loads(capsys.readouterr().out)["pid"] == 42


def test_refusal_exits_1_with_code_and_message(node: FakeNode,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert run(node, "agents", "suspend", "ghost") == 1
    err = capsys.readouterr().err
    assert "AGENT_NOT_FOUND" in err and "ghost" in err
    assert run(node, "--json", "agents", "suspend", "ghost") == 1
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is False and data["error"]["code"] == "AGENT_NOT_FOUND"


def test_usage_errors_exit_2(node: FakeNode, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["agents", "suspend"]) == 2
    assert main(["agents", "reload", "x", "--strategy", "sideways"]) == 2
    assert main(["bogus"]) == 2
    assert run(node, "agents", "deploy", str(tmp_path / "missing.md")) == 2
    assert run(node, "agents", "deploy", str(tmp_path / "agent.txt")) == 2
    a = tmp_path / "a.md"
    a.write_text(AGENT_MD)
    assert run(node, "agents", "ab-test", "greeter", "--config-a", str(a), "--config-b",
               str(a), "--split", "80/30") == 2
    assert run(node, "agents", "deploy", str(a), "--memory", "lots") == 2
    assert "lots" in capsys.readouterr().err
    assert node.calls == []  # nothing reached the node


def test_unreachable_node_exits_3_naming_endpoint(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--endpoint", "tcp://127.0.0.1:1", "--timeout", "0.3", "node", "status"]) == 3
    err = capsys.readouterr().err
    assert "tcp://127.0.0.1:1" in err and "python3 -m caxton" in err


def test_endpoint_from_environment(node: FakeNode, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CAXTON_ENDPOINT", node.endpoint)
    assert main(["node", "status"]) == 0
    assert "0.1.0" in capsys.readouterr().out


def test_help_on_every_level(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["--help"], ["agents", "--help"], ["agents", "deploy", "--help"],
                 ["message", "send", "--help"], ["node", "--help"], ["keys", "generate", "-h"]):
        assert main(argv) == 0, argv
    out = capsys.readouterr().out
    assert "Exit codes" in out and "--validate-only" in out


def test_deploy_sends_file_content_and_flags(node: FakeNode, tmp_path: Path) -> None:
    md = tmp_path / "greeter.md"
    md.write_text(AGENT_MD)
    wasm = tmp_path / "calc.wasm"
    wasm.write_bytes(b"\0asm\1\0\0\0")
    assert run(node, "agents", "deploy", str(md), "--strategy", "canary") == 0
    args = node.last("agents.deploy")
    assert args.text == AGENT_MD and args.file_name == "greeter.md"
    assert args.strategy is protocol.DeployStrategy.CANARY
    assert run(node, "agents", "deploy", str(wasm), "--name", "calc", "--memory", "10MB",
               "--fuel", "100000") == 0
    args = node.last("agents.deploy")
    assert args.data == b"\0asm\1\0\0\0" and args.name == "calc"
    assert args.memory_bytes == 10 * 1024 * 1024 and args.fuel == 100_000


def test_reload_flags_and_wait_for_rollout(node: FakeNode, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    md = tmp_path / "greeter.md"
    md.write_text(AGENT_MD)
    assert run(node, "agents", "reload", "greeter", "--file", str(md), "--strategy", "canary",
               "--no-preserve-memory", "--steps", "10,50,100", "--wait") == 0
    args = node.last("agents.reload")
    assert args.preserve_memory is False and args.validate_first is True
    assert args.steps == [10, 50, 100] and args.text == AGENT_MD
    assert node.last("operations.get").operation_id == "op-1"
    assert "succeeded" in capsys.readouterr().out


def test_reload_rollout_tunables_reach_the_protocol(node: FakeNode) -> None:
    assert run(node, "agents", "reload", "greeter", "--strategy", "canary", "--steps", "20,100",
               "--step-interval", "0.5", "--max-error-rate", "10%", "--max-p99-ratio", "2",
               "--max-fuel-ratio", "3", "--scale-down-delay", "0") == 0
    args = node.last("agents.reload")
    assert args.steps == [20, 100] and args.step_interval_s == 0.5
    assert args.max_error_rate == pytest.approx(0.10) and args.max_p99_ratio == 2.0
    assert args.max_fuel_ratio == 3.0 and args.scale_down_delay_s == 0.0
    assert run(node, "agents", "reload", "greeter", "--max-error-rate", "0.02") == 0
    args = node.last("agents.reload")
    assert args.max_error_rate == pytest.approx(0.02) and args.max_p99_ratio is None
    assert args.scale_down_delay_s is None  # unset flags leave the node's defaults
    for bad in (["--max-error-rate", "150%"], ["--max-error-rate", "lots"],
                ["--max-p99-ratio", "0"], ["--scale-down-delay", "-1"],
                ["--step-interval", "0"]):
        assert run(node, "agents", "reload", "greeter", *bad) == 2, bad


def test_validate_first_and_rollback_on_error_say_they_are_the_default(
        node: FakeNode, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["agents", "reload", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for flag in ("--validate-first", "--rollback-on-error"):
        helptext = text.split(flag, 2)[2][:300]  # the option's own line, after the usage
        assert helptext.lstrip().startswith("states the default; it changes nothing"), helptext
    # there is no way to turn them off, so the CLI offers none
    assert run(node, "agents", "reload", "greeter", "--no-validate-first") == 2
    assert run(node, "agents", "reload", "greeter", "--no-rollback-on-error") == 2
    assert run(node, "agents", "reload", "greeter", "--validate-first",
               "--rollback-on-error") == 0
    args = node.last("agents.reload")
    assert args.validate_first is True and args.rollback_on_error is True


@pytest.mark.parametrize("verb", ["deploy", "reload", "ab-test"])
def test_json_with_wait_prints_exactly_one_document(node: FakeNode, tmp_path: Path, verb: str,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    md = tmp_path / "greeter.md"
    md.write_text(AGENT_MD)
    argv = {"deploy": ["agents", "deploy", str(md), "--strategy", "canary"],
            "reload": ["agents", "reload", "greeter", "--file", str(md), "--strategy",
                       "canary"],
            "ab-test": ["agents", "ab-test", "greeter", "--config-a", str(md), "--config-b",
                        str(md)]}[verb]
    capsys.readouterr()
    assert run(node, "--json", *argv, "--wait") == 0
    out = capsys.readouterr().out
    doc = json.loads(out)  # raises "Extra data" if a second document follows
    assert out.count("\n") == 1
    assert doc["state"] == "succeeded" and doc["operation_id"] == "op-1"
    assert doc["change"]["operation_id"] == "op-1" and doc["change"]["name"] == "greeter"
    # without --wait: the change alone, still one document
    assert run(node, "--json", *argv) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["operation_id"] == "op-1" and "change" not in doc


@pytest.mark.parametrize("verb", ["suspend", "resume", "remove", "promote", "abort",
                                  "reload-status", "recover", "disable"])
def test_simple_verbs_reach_their_op(node: FakeNode, verb: str) -> None:
    code = run(node, "agents", verb, "greeter")
    op = "agents." + verb.replace("-", "_")
    assert code == (1 if verb == "suspend" else 0)
    assert node.last(op).name == "greeter"


def test_other_verbs_send_their_args(node: FakeNode, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    a, b = tmp_path / "a.md", tmp_path / "b.md"
    a.write_text(AGENT_MD)
    b.write_text(AGENT_MD.replace("1.0.0", "2.0.0"))
    assert run(node, "agents", "ab-test", "greeter", "--config-a", str(a), "--config-b",
               str(b), "--split", "80/20") == 0
    assert node.last("agents.ab_test").split == (80, 20)
    assert run(node, "agents", "rollback", "greeter", "--to-version", "1.0.0") == 0
    assert node.last("agents.rollback").to_version == "1.0.0"
    assert run(node, "agents", "recover", "greeter", "--restore-memory") == 0
    assert node.last("agents.recover").restore_memory is True
    assert run(node, "agents", "status", "greeter", "--detailed") == 0
    assert node.last("agents.status").detailed is True
    assert run(node, "agents", "logs", "greeter", "--tail", "2", "--level", "error") == 0
    assert node.last("agents.logs").tail == 2
    assert run(node, "--json", "message", "send", "greeter", '{"q": 1}', "--json-content",
               "--conversation-id", "c1") == 0
    sent = node.last("message.send")
    assert sent.content == {"q": 1} and sent.conversation_id == "c1"
    capsys.readouterr()
    assert run(node, "--json", "agents", "monitor", "greeter", "--metrics",
               "response_time,success_rate", "--count", "2", "--interval", "0.01") == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and json.loads(lines[0])["metrics"] == {
        "response_time": 1.0, "success_rate": 1.0}
    assert run(node, "node", "shutdown", "--drain-timeout", "3") == 0
    assert node.last("node.shutdown").drain_timeout == 3


def test_validate_and_validate_all(node: FakeNode, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.md"
    good.write_text(AGENT_MD)
    bad = tmp_path / "bad.md"
    bad.write_text("---\nBROKEN\n---\n")
    assert run(node, "agents", "validate", str(good), "--detailed") == 0
    assert run(node, "agents", "validate", str(bad)) == 1
    assert "name is missing" in capsys.readouterr().out
    assert run(node, "--json", "agents", "validate-all", str(tmp_path)) == 1
    data = json.loads(capsys.readouterr().out)
    assert {Path(f["file"]).name: f["valid"] for f in data["files"]} == {
        "bad.md": False, "good.md": True}
    assert run(node, "agents", "validate-all", str(tmp_path / "nope")) == 2


def test_watch_auto_reload_reports_each_verdict(node: FakeNode, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    md = tmp_path / "greeter.md"
    md.write_text(AGENT_MD)

    def edit() -> None:
        time.sleep(0.3)
        md.write_text(AGENT_MD + "\nedited\n")
        time.sleep(0.6)
        md.write_text(AGENT_MD + "\nBROKEN\n")

    t = threading.Thread(target=edit)
    t.start()
    code = run(node, "--json", "agents", "watch", str(tmp_path), "--auto-reload",
               "--interval", "0.05", "--debounce", "0.1", "--max-changes", "2",
               "--duration", "20")
    t.join()
    verdicts = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [v["ok"] for v in verdicts] == [True, False]
    assert verdicts[0]["agent"] == "greeter" and "reloaded" in verdicts[0]["verdict"]
    assert "VALIDATION_FAILED" in verdicts[1]["verdict"]
    assert code == 1
    assert node.last("agents.reload").rollback_on_error is True


def test_watch_deploys_a_new_module_under_the_nodes_name_for_it(
        node: FakeNode, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """greeter.wat beside greeter.md (which defines 'greeter') is the agent 'greeter-wasm',
    as the node names it (caxton.naming); the deploy must say so."""
    (tmp_path / "greeter.md").write_text(AGENT_MD)

    def add_module() -> None:
        time.sleep(0.3)
        (tmp_path / "greeter.wat").write_bytes(b"(module)")

    t = threading.Thread(target=add_module)
    t.start()
    code = run(node, "--json", "agents", "watch", str(tmp_path), "--auto-reload",
               "--max-changes", "1", "--duration", "20")
    t.join()
    assert code == 0
    verdict = json.loads(capsys.readouterr().out)
    assert verdict["agent"] == "greeter-wasm" and verdict["ok"] is True
    args = node.last("agents.deploy")
    assert args.name == "greeter-wasm" and args.file_name == "greeter.wat"


def test_logs_follow_reads_the_event_stream(node: FakeNode,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    stop = threading.Event()

    def publish() -> None:
        while not stop.is_set():
            node.events.publish_agent("greeter", "log", level="error", event="it broke")
            node.events.publish_agent("greeter", "log", level="debug", event="noise")
            time.sleep(0.05)

    t = threading.Thread(target=publish)
    t.start()
    try:
        assert run(node, "agents", "logs", "greeter", "--level", "error", "--follow",
                   "--follow-for", "1.0") == 0
    finally:
        stop.set()
        t.join()
    out = capsys.readouterr().out
    assert "it broke" in out and "noise" not in out


def test_keys_generate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "generate", "--dir", str(tmp_path), "--name", "ops"]) == 0
    out = capsys.readouterr().out
    assert "ops.key" in out and "allow-list" in out
    assert (tmp_path / "ops.key").exists() and (tmp_path / "ops.key_secret").exists()
    assert main(["keys", "generate", "--dir", str(tmp_path), "--name", "ops"]) == 2


def test_cli_imports_no_runtime_module() -> None:
    code = (
        "import sys, caxton.cli\n"
        "caxton.cli.build_parser()\n"
        "bad = ('caxton.manager', 'caxton.node', 'caxton.routing', 'caxton.rollout',\n"
        "       'caxton.config_agents', 'caxton.memory', 'caxton.control.server',\n"
        "       'sandbox', 'supervisors', 'wasmtime', 'pykka')\n"
        "loaded = sorted(m for m in sys.modules if any(m == b or m.startswith(b + '.')\n"
        "                for b in bad))\n"
        "print(','.join(loaded))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=30)
    assert out.stdout.strip() == "", (
        f"the CLI loaded runtime modules: {out.stdout.strip()}. `import caxton.cli` runs "
        "caxton/__init__.py first: it must load the runtime lazily (PEP 562 __getattr__), "
        "not import caxton.manager & co. at import time")


def test_console_script_exit_code_in_a_subprocess() -> None:
    out = subprocess.run([sys.executable, "-c", "import sys, caxton.cli; "
                          "sys.exit(caxton.cli.main())", "--endpoint", "tcp://127.0.0.1:1",
                          "--timeout", "0.2", "node", "status"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 3, out.stderr
