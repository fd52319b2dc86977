"""``message.send`` deadlines: TIMEOUT when no reply comes, and nothing held once one does.

The deadlines watch the control port's real :class:`Reply` objects; a reply's completion is
captured as the packed frame the port would send.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import msgpack
import pytest

from caxton.control.server import Reply
from caxton.node import _Deadlines


class _Sink:
    """Collects completed replies as the decoded maps the port would send."""

    def __init__(self) -> None:
        self.sent: dict[int, dict[str, Any]] = {}
        self.lock = threading.Lock()

    def __call__(self, reply: Reply, frame: bytes) -> None:
        with self.lock:
            assert reply.req_id not in self.sent, "a reply was completed twice"
            self.sent[reply.req_id] = msgpack.unpackb(frame, raw=False)

    def reply(self, req_id: int) -> Reply:
        return Reply([b"peer"], req_id, "message.send", 0, self)


@pytest.fixture
def deadlines() -> Iterator[_Deadlines]:
    d = _Deadlines()
    yield d
    d.close()


def _wait_done(out: Reply, timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while not out.done and time.monotonic() < end:
        time.sleep(0.01)


def _answer(deadlines: _Deadlines, out: Reply, value: Any) -> bool:
    # what the node's reply callback does
    if out.ok(value):
        deadlines.forget(out.watch)
        return True
    return False


def test_a_message_without_a_reply_times_out(deadlines: _Deadlines) -> None:
    sink = _Sink()
    out = sink.reply(1)
    deadlines.add(out, "echo", 0.1)
    _wait_done(out)
    assert out.done
    assert sink.sent[1]["ok"] is False
    assert sink.sent[1]["error"]["code"] == "TIMEOUT"
    assert "'echo' did not reply within 0.1s" in sink.sent[1]["error"]["message"]
    assert not _answer(deadlines, out, {"late": True})  # the first outcome wins
    assert sink.sent[1]["error"]["code"] == "TIMEOUT"
    assert not deadlines._pending


def test_an_answered_message_is_released_at_once(deadlines: _Deadlines) -> None:
    sink = _Sink()
    outs = [sink.reply(i) for i in range(100)]
    for out in outs:
        deadlines.add(out, "echo", 30.0)
    assert len(deadlines._pending) == 100
    for i, out in enumerate(outs):
        assert _answer(deadlines, out, {"n": i})
    # the sweeper still has the entries, but no longer the replies
    assert not deadlines._pending
    assert [sink.sent[i]["result"] for i in range(100)] == [{"n": i} for i in range(100)]


def test_a_message_answered_before_its_deadline_was_added_is_not_held(
        deadlines: _Deadlines) -> None:
    sink = _Sink()
    out = sink.reply(7)
    assert _answer(deadlines, out, {"fast": True})  # watch is still None: nothing to forget
    deadlines.add(out, "echo", 30.0)
    assert not deadlines._pending
    assert sink.sent[7]["result"] == {"fast": True}


def test_a_reply_and_its_deadline_racing_complete_it_exactly_once(
        deadlines: _Deadlines) -> None:
    # Replies completed by other threads while their deadlines expire: each gets exactly
    # one outcome (the sink asserts it), and none stays watched.
    sink = _Sink()
    outs = [sink.reply(i) for i in range(300)]
    for out in outs:
        deadlines.add(out, "echo", 0.05)
    time.sleep(0.03)
    threads = [threading.Thread(target=lambda part=outs[k::3]: [
        _answer(deadlines, o, {"n": o.req_id}) for o in part]) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for out in outs:
        _wait_done(out)
    assert len(sink.sent) == 300
    for i, sent in sink.sent.items():
        assert sent.get("result") == {"n": i} or sent["error"]["code"] == "TIMEOUT"
    end = time.monotonic() + 2
    while deadlines._pending and time.monotonic() < end:
        time.sleep(0.01)
    assert not deadlines._pending


def test_close_fails_what_is_pending_with_shutting_down() -> None:
    d = _Deadlines()
    sink = _Sink()
    waiting, answered = sink.reply(1), sink.reply(2)
    d.add(waiting, "echo", 30.0)
    d.add(answered, "echo", 30.0)
    assert _answer(d, answered, {"ok": 1})
    d.close()
    assert sink.sent[1]["error"]["code"] == "SHUTTING_DOWN"
    assert sink.sent[2]["result"] == {"ok": 1}
