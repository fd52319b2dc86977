"""``make_message``: the hot path's constructor builds the same frozen message."""

from __future__ import annotations

import dataclasses

import pytest

from caxton.messages import Message, Performative, make_message


def test_make_message_equals_the_constructor() -> None:
    a = make_message("echo", {"k": [1, 2]}, "cli", Performative.QUERY, "conv-1", "r1", "x0",
                     "id-1")
    b = Message(receiver="echo", content={"k": [1, 2]}, sender="cli",
                performative=Performative.QUERY, conversation_id="conv-1", reply_with="r1",
                in_reply_to="x0", message_id="id-1")
    assert a == b and repr(a) == repr(b) and a.to_wire() == b.to_wire()


def test_make_message_defaults_and_fresh_ids() -> None:
    a, b = make_message("echo", 1), make_message("echo", 1)
    assert (a.sender, a.performative, a.conversation_id, a.reply_with, a.in_reply_to) == (
        "anonymous", Performative.REQUEST, None, None, None)
    assert a.message_id and b.message_id and a.message_id != b.message_id


def test_made_messages_stay_frozen_and_replies_match() -> None:
    msg = make_message("echo", "hi", "cli", conversation_id="c")
    with pytest.raises(dataclasses.FrozenInstanceError):
        msg.content = "changed"  # type: ignore[misc]
    reply = msg.reply("ho", sender="echo")
    assert type(reply) is Message
    assert (reply.receiver, reply.sender, reply.content, reply.performative,
            reply.conversation_id, reply.in_reply_to) == (
        "cli", "echo", "ho", Performative.INFORM, "c", msg.message_id)
    assert dataclasses.replace(reply, content="x").content == "x"
