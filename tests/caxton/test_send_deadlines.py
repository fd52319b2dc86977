"""``message.send`` deadlines: TIMEOUT when no reply comes, and nothing held once one does."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from caxton import errors
from caxton.node import _Deadlines, _SendOutcome


@pytest.fixture
def deadlines() -> Iterator[_Deadlines]:
    d = _Deadlines()
    yield d
    d.close()


def _wait_done(out: _SendOutcome, timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while not out.done() and time.monotonic() < end:
        time.sleep(0.01)


def test_a_message_without_a_reply_times_out(deadlines: _Deadlines) -> None:
    out = _SendOutcome()
    seen: list[_SendOutcome] = []
    out.add_done_callback(seen.append)
    deadlines.add(out, "echo", 0.1)
    _wait_done(out)
    assert isinstance(out.exception(), errors.Timeout)
    assert "'echo' did not reply within 0.1s" in str(out.exception())
    assert seen == [out]
    out.set_result({"late": True})  # the first outcome wins
    assert isinstance(out.exception(), errors.Timeout)
    assert not deadlines._pending


def test_an_answered_message_is_released_at_once(deadlines: _Deadlines) -> None:
    outs = [_SendOutcome() for _ in range(100)]
    for out in outs:
        deadlines.add(out, "echo", 30.0)
    assert len(deadlines._pending) == 100
    for i, out in enumerate(outs):
        out.set_result({"n": i})
    # the sweeper still has the entries, but no longer the futures (nor their replies)
    assert not deadlines._pending
    assert [out.result() for out in outs] == [{"n": i} for i in range(100)]


def test_a_message_answered_before_its_deadline_was_added_is_not_held(
        deadlines: _Deadlines) -> None:
    out = _SendOutcome()
    out.set_result({"fast": True})
    deadlines.add(out, "echo", 30.0)
    assert not deadlines._pending
    assert out.result() == {"fast": True}


def test_close_fails_what_is_pending_with_shutting_down() -> None:
    d = _Deadlines()
    waiting, answered = _SendOutcome(), _SendOutcome()
    d.add(waiting, "echo", 30.0)
    d.add(answered, "echo", 30.0)
    answered.set_result({"ok": 1})
    d.close()
    assert isinstance(waiting.exception(), errors.ShuttingDown)
    assert answered.result() == {"ok": 1}
