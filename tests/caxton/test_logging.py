"""Logging configuration: JSON file, console, per-agent ring buffers, sinks, context, reset."""

from __future__ import annotations

import io
import json
import logging
import threading
from pathlib import Path
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from caxton.logging import (
    LogHub,
    agent_context,
    bind_context,
    clear_context,
    configure_logging,
    get_hub,
    get_logger,
    level_number,
    read_log_files,
    reset_logging,
)


@pytest.fixture(autouse=True)
def _reset() -> Any:
    reset_logging()
    yield
    reset_logging()


def file_records(data_dir: Path) -> list[dict[str, Any]]:
    for h in logging.getLogger().handlers:
        h.flush()
    text = (data_dir / "logs" / "caxton.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()]


def test_json_file_and_console_carry_context(tmp_path: Path) -> None:
    out = io.StringIO()
    configure_logging(tmp_path, "debug", stream=out)
    log = get_logger("caxton.test")
    with agent_context("echo", "1.0.0", "conv-1"):
        log.info("message handled", took_ms=3)
        logging.getLogger("pykka").warning("stdlib %s", "bridged")
        try:
            raise ZeroDivisionError("boom")
        except ZeroDivisionError:
            log.exception("handler failed")
    log.info("outside")
    recs = file_records(tmp_path)
    assert [r["event"] for r in recs] == ["message handled", "stdlib bridged", "handler failed",
                                          "outside"]
    for r in recs[:3]:
        assert (r["agent"], r["version"], r["conversation"]) == ("echo", "1.0.0", "conv-1")
        assert r["timestamp"].endswith("Z")
    assert recs[0]["took_ms"] == 3 and recs[0]["level"] == "info"
    assert recs[1]["logger"] == "pykka" and recs[1]["level"] == "warning"
    assert "ZeroDivisionError: boom" in recs[2]["exception"]
    assert "agent" not in recs[3]
    console = out.getvalue()
    assert "message handled" in console and "agent=echo" in console
    assert not console.lstrip().startswith("{")  # human-readable, not JSON
    assert "locals" not in console  # plain tracebacks, no local variables


def test_console_json_format(tmp_path: Path) -> None:
    out = io.StringIO()
    configure_logging(None, "info", stream=out, console_format="json")
    get_logger("x").info("hi", a=1)
    line = json.loads(out.getvalue().strip())
    assert line["event"] == "hi" and line["a"] == 1
    assert not (tmp_path / "logs").exists()


def test_configure_twice_does_not_duplicate(tmp_path: Path) -> None:
    root = logging.getLogger()
    before = len(root.handlers)
    configure_logging(tmp_path, "info", stream=io.StringIO())
    configure_logging(tmp_path, "info", stream=io.StringIO())
    hub = get_hub()
    assert hub is not None
    assert len(root.handlers) == before + 3
    calls: list[dict[str, Any]] = []
    hub.add_sink(calls.append)
    with agent_context("a"):
        get_logger("x").info("once")
    assert len(calls) == 1 and len(hub.tail("a")) == 1
    assert [r["event"] for r in file_records(tmp_path)] == ["once"]
    reset_logging()
    assert len(root.handlers) == before and get_hub() is None


def test_level_filter(tmp_path: Path) -> None:
    hub = configure_logging(tmp_path, "warning", console=False)
    log = get_logger("x")
    with agent_context("a"):
        log.info("quiet")
        logging.getLogger("lib").info("quiet too")
        log.warning("loud")
    assert [r["event"] for r in hub.tail("a")] == ["loud"]
    with pytest.raises(ValueError, match="unknown log level"):
        level_number("chatty")


def test_ring_buffer_is_bounded_per_agent_and_filters(tmp_path: Path) -> None:
    hub = configure_logging(None, "debug", console=False, ring_size=10)
    log = get_logger("x")
    for i in range(25):
        with agent_context("a"):
            (log.error if i % 5 == 0 else log.debug)("a-event", i=i)
        with agent_context("b"):
            log.info("b-event", i=i)
    a = hub.tail("a", None)
    assert len(a) == 10 and [r["i"] for r in a] == list(range(15, 25))
    assert [r["i"] for r in hub.tail("a", 3)] == [22, 23, 24]
    assert [r["i"] for r in hub.tail("a", 100, level="error")] == [15, 20]
    assert len(hub.tail("b", None)) == 10 and hub.agents() == ["a", "b"]
    hub.forget("a")
    assert hub.tail("a") == [] and hub.agents() == ["b"]


def test_query_reads_older_records_from_file(tmp_path: Path) -> None:
    hub = configure_logging(tmp_path, "info", console=False, ring_size=5)
    log = get_logger("x")
    for i in range(12):
        with agent_context("a"):
            log.info(f"m{i}")
    assert [r["event"] for r in hub.tail("a", None)] == [f"m{i}" for i in range(7, 12)]
    assert [r["event"] for r in hub.query("a", 10)] == [f"m{i}" for i in range(2, 12)]
    # a restarted node (fresh ring) still finds the previous run's records in the file
    hub2 = configure_logging(tmp_path, "info", console=False, ring_size=5)
    with agent_context("a"):
        log.info("after restart")
    got = [r["event"] for r in hub2.query("a", 4)]
    assert got == ["m9", "m10", "m11", "after restart"]


def test_read_log_files_rotation_and_partial_lines(tmp_path: Path) -> None:
    base = tmp_path / "caxton.jsonl"
    (tmp_path / "caxton.jsonl.2").write_text('{"event": "e1", "agent": "a", "level": "info"}\n')
    (tmp_path / "caxton.jsonl.1").write_text('{"event": "e2", "agent": "b", "level": "error"}\n'
                                             '[1, 2]\n')
    base.write_text('{"event": "e3", "agent": "a", "level": "error"}\n{"event": "cut')
    assert [r["event"] for r in read_log_files(base)] == ["e1", "e2", "e3"]
    assert [r["event"] for r in read_log_files(base, agent="a")] == ["e1", "e3"]
    assert [r["event"] for r in read_log_files(base, level="error")] == ["e2", "e3"]
    assert [r["event"] for r in read_log_files(base, tail=1)] == ["e3"]
    assert read_log_files(tmp_path / "missing.jsonl") == []


def test_sinks_receive_records_and_cannot_break_logging() -> None:
    hub = configure_logging(None, "info", console=False)
    seen: list[dict[str, Any]] = []

    def bad(_: dict[str, Any]) -> None:
        raise RuntimeError("sink down")

    def chatty(rec: dict[str, Any]) -> None:
        seen.append(rec)
        get_logger("sink").info("sink logging")  # must not recurse forever

    remove_bad = hub.add_sink(bad)
    remove = hub.add_sink(chatty)
    with agent_context("a", "2", "c"):
        get_logger("x").info("evt", payload={"k": (1, 2)})
    assert [r["event"] for r in seen] == ["evt"]
    assert seen[0]["payload"] == {"k": [1, 2]} and seen[0]["agent"] == "a"
    json.dumps(seen[0])  # JSON-compatible, ready for the event stream
    assert hub.sink_errors == 1
    remove()
    remove_bad()
    get_logger("x").info("after")
    assert len(seen) == 1


def test_context_is_per_thread() -> None:
    hub = configure_logging(None, "info", console=False)
    barrier = threading.Barrier(2)

    def work(name: str) -> None:
        with agent_context(name, conversation=f"c-{name}"):
            barrier.wait(5)
            for i in range(20):
                get_logger("x").info("tick", i=i)

    threads = [threading.Thread(target=work, args=(n,)) for n in ("t1", "t2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    for name in ("t1", "t2"):
        recs = hub.tail(name, None)
        assert len(recs) == 20 and {r["conversation"] for r in recs} == {f"c-{name}"}


def test_bind_and_clear_context_with_capture_logs() -> None:
    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
        bind_context(agent="x", version="1")
        structlog.get_logger().info("one")
        bind_context(version=None, conversation="c9")
        structlog.get_logger().info("two")
        clear_context()
        structlog.get_logger().info("three")
    assert logs[0]["agent"] == "x" and logs[0]["version"] == "1"
    assert logs[1]["conversation"] == "c9" and "version" not in logs[1]
    assert "agent" not in logs[2]


def test_hub_rejects_bad_ring_size() -> None:
    with pytest.raises(ValueError):
        LogHub(ring_size=0)


@pytest.mark.parametrize("colors", [False, True])
def test_console_columns_render_exactly_as_structlogs_own(colors: bool) -> None:
    # The console's key/value columns are built by concatenation (cheaper per record than
    # structlog's StringIO), and must print the very same text, padding and styles included.
    from caxton.logging import _fast_columns, _KeyValue

    def stock() -> structlog.dev.ConsoleRenderer:
        return structlog.dev.ConsoleRenderer(
            colors=colors, exception_formatter=structlog.dev.plain_traceback)

    fast = _fast_columns(stock())
    assert any(isinstance(c.formatter, _KeyValue) for c in fast.columns)
    try:
        raise ValueError("boom")
    except ValueError as exc:
        error = exc
    records: list[dict[str, Any]] = [
        {"event": "lifecycle.transition", "level": "info", "logger": "caxton.node",
         "timestamp": "2026-01-01T00:00:00Z", "agent": "a", "from": "Loaded", "to": "Running",
         "reason": "deployed", "n": 3, "none": None, "quoted": "two words", "eq": "a=b"},
        {"event": "an event name longer than the thirty-character pad", "level": "warning"},
        {"event": "x", "level": "debug", "logger_name": "other", "data": {"k": [1, 2]}},
        {"event": "failed", "level": "error", "exc_info": error, "stack": "stack text"},
        {"event": "no level"},
    ]
    for record in records:
        assert fast(None, "info", dict(record)) == stock()(None, "info", dict(record))
