"""``caxton conversations list|end`` and ``message send --end`` against a real node."""

from __future__ import annotations

from typing import Any


def test_conversations_are_listed_and_ended_from_the_cli(shared_node: Any) -> None:
    for cid in ("alpha", "beta"):
        res = shared_node.cli("message", "send", "echo", f"hi {cid}", "--conversation-id", cid)
        assert res.returncode == 0, res.stderr
    listed = shared_node.cli_json("conversations", "list", "echo")
    ids = [c["id"] for c in listed["conversations"]]
    assert {"alpha", "beta"} <= set(ids)
    alpha = next(c for c in listed["conversations"] if c["id"] == "alpha")
    assert alpha["messages"] == 1 and alpha["history"] == 2 and alpha["in_flight"] == 0
    table = shared_node.cli("conversations", "list", "echo")
    assert table.returncode == 0 and "alpha" in table.stdout and "EXPIRES IN" in table.stdout
    ended = shared_node.cli("conversations", "end", "echo", "alpha")
    assert ended.returncode == 0 and "ended" in ended.stdout
    again = shared_node.cli("conversations", "end", "echo", "alpha")
    assert again.returncode == 1 and "was not open" in again.stdout
    res = shared_node.cli("message", "send", "echo", "bye", "--conversation-id", "beta", "--end")
    assert res.returncode == 0 and "bye" in res.stdout
    after = [c["id"] for c in shared_node.cli_json("conversations", "list", "echo")
             ["conversations"]]
    assert "alpha" not in after and "beta" not in after
    usage = shared_node.cli("message", "send", "echo", "x", "--end")
    assert usage.returncode == 2 and "--conversation-id" in usage.stderr
    missing = shared_node.cli("conversations", "list", "nobody")
    assert missing.returncode == 1 and "AGENT_NOT_FOUND" in missing.stderr


def test_echo_replies_exactly_however_much_it_remembers(shared_node: Any) -> None:
    with shared_node.client() as client:
        replies = [client.call("message.send", {"agent": "echo", "content": f"n{i}"})["content"]
                   for i in range(5)]
    assert [r["reply"] for r in replies] == [f"n{i}" for i in range(5)]
    assert all(r["memory_context"] == "" for r in replies)  # it recalls nothing
