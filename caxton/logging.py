"""The one place that configures logging; everything else only emits structlog events.

:func:`configure_logging` routes structlog *and* stdlib ``logging`` (pykka, pyzmq, ...) through
one pipeline:

* JSON lines to ``<data_dir>/logs/caxton.jsonl`` (rotated at 10 MB, 5 files kept);
* human-readable lines (or JSON) on stderr;
* an in-memory ring buffer per agent (the last ``ring_size`` records each), which
  ``caxton agents logs <name> --tail N --level L`` reads, falling back to the JSON files for
  older records (:meth:`LogHub.query`);
* any number of *sinks* — callables that receive every record as a JSON-compatible dict (the
  node forwards them to its event stream).

Records carry ``agent``, ``version`` and ``conversation`` when the emitting code runs inside
:func:`agent_context` (structlog context variables, so they follow the thread or task).

Calling :func:`configure_logging` again replaces the previous configuration (no duplicated
handlers); :func:`reset_logging` undoes it (for tests).

Note: this module is ``caxton.logging``; inside the package ``import logging`` still means the
standard library (absolute imports), which is what this module itself relies on.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

LOG_FILE_NAME = "caxton.jsonl"
LOG_FILE_MAX_BYTES = 10 * 1024 * 1024
LOG_FILE_BACKUPS = 5

#: Numeric order of level names (``warn`` and ``fatal`` are accepted aliases).
LEVELS: dict[str, int] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
    "fatal": logging.CRITICAL,
    "exception": logging.ERROR,
}

#: Key under which records without an agent are buffered.
NODE = ""

Sink = Callable[[dict[str, Any]], None]


def level_number(level: str | int) -> int:
    """Return the numeric level of a level name or number.

    Args:
        level: ``debug``/``info``/``warning``/``error``/``critical`` (any case) or a number.

    Returns:
        The stdlib numeric level.

    Raises:
        ValueError: Unknown level name.
    """
    if isinstance(level, int):
        return level
    try:
        return LEVELS[level.strip().lower()]
    except KeyError:
        raise ValueError(
            f"unknown log level {level!r}; use debug, info, warning, error or critical"
        ) from None


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    return str(value)


class LogHub:
    """Per-agent ring buffers, the sinks, and the location of the JSON log files.

    Args:
        ring_size: Records kept per agent (and for node records without an agent).
        log_file: The JSON lines file, or ``None`` when not writing one.
    """

    def __init__(self, ring_size: int = 1000, log_file: Path | None = None) -> None:
        if ring_size < 1:
            raise ValueError("ring_size must be at least 1")
        self.ring_size = ring_size
        self.log_file = log_file
        self.sink_errors = 0
        self._lock = threading.Lock()
        self._rings: dict[str, deque[dict[str, Any]]] = {}
        self._sinks: list[Sink] = []
        self._in_sink = threading.local()

    def record(self, event: dict[str, Any]) -> None:
        """Buffer one record and hand it to every sink.

        Args:
            event: A JSON-compatible record (``event``, ``level``, ``timestamp``, context keys).
        """
        key = str(event.get("agent") or NODE)
        with self._lock:
            ring = self._rings.get(key)
            if ring is None:
                ring = self._rings[key] = deque(maxlen=self.ring_size)
            ring.append(event)
            sinks = list(self._sinks)
        if not sinks or getattr(self._in_sink, "active", False):
            return  # a sink that logs must not recurse into itself
        self._in_sink.active = True
        try:
            for sink in sinks:
                try:
                    sink(event)
                except Exception:
                    self.sink_errors += 1
        finally:
            self._in_sink.active = False

    def add_sink(self, sink: Sink) -> Callable[[], None]:
        """Register a callable that receives every record (on the emitting thread).

        A sink must be quick and must not raise; exceptions are swallowed and counted in
        :attr:`sink_errors` so that logging never breaks the caller.

        Args:
            sink: Called with each record as a JSON-compatible dict.

        Returns:
            A function that unregisters the sink.
        """
        with self._lock:
            self._sinks.append(sink)

        def remove() -> None:
            with self._lock:
                if sink in self._sinks:
                    self._sinks.remove(sink)

        return remove

    def agents(self) -> list[str]:
        """Return the agents that have buffered records.

        Returns:
            Agent names, sorted (node records, under ``""``, are not included).
        """
        with self._lock:
            return sorted(k for k in self._rings if k != NODE)

    def forget(self, agent: str) -> None:
        """Drop an agent's ring buffer (after the agent is removed).

        Args:
            agent: The agent name.
        """
        with self._lock:
            self._rings.pop(agent, None)

    def tail(
        self, agent: str | None, n: int | None = 100, level: str | int | None = None
    ) -> list[dict[str, Any]]:
        """Return an agent's most recent buffered records, oldest first.

        Args:
            agent: The agent name, or ``None`` for node records without an agent.
            n: At most this many records (``None`` for all buffered).
            level: Only records at this level or above.

        Returns:
            The records.
        """
        floor = level_number(level) if level is not None else 0
        with self._lock:
            records = list(self._rings.get(agent or NODE, ()))
        if floor:
            records = [r for r in records if LEVELS.get(str(r.get("level")), 0) >= floor]
        return records[-n:] if n is not None and n >= 0 else records

    def query(
        self, agent: str, n: int = 100, level: str | int | None = None
    ) -> list[dict[str, Any]]:
        """Return an agent's last ``n`` records: the ring buffer, then older ones from the file.

        Args:
            agent: The agent name.
            n: At most this many records.
            level: Only records at this level or above.

        Returns:
            The records, oldest first.
        """
        recent = self.tail(agent, None, level)
        if len(recent) >= n or self.log_file is None:
            return recent[-n:] if n > 0 else []
        oldest = recent[0].get("timestamp") if recent else None
        older = [
            r for r in read_log_files(self.log_file, agent=agent, level=level)
            if oldest is None or str(r.get("timestamp", "")) < str(oldest)
        ]
        merged = older + recent
        return merged[-n:] if n > 0 else []


def read_log_files(
    log_file: str | Path,
    *,
    agent: str | None = None,
    level: str | int | None = None,
    tail: int | None = None,
) -> list[dict[str, Any]]:
    """Read JSON-lines log records from a file and its rotated predecessors, oldest first.

    Lines that are not JSON objects (a partial last line after a crash) are skipped.

    Args:
        log_file: ``<data_dir>/logs/caxton.jsonl`` (``.1`` … ``.5`` are read before it).
        agent: Only records of this agent.
        level: Only records at this level or above.
        tail: Keep only the last ``tail`` matching records.

    Returns:
        The matching records.
    """
    base = Path(log_file)
    files = [base.with_name(f"{base.name}.{i}") for i in range(LOG_FILE_BACKUPS, 0, -1)]
    files.append(base)
    floor = level_number(level) if level is not None else 0
    keep: deque[dict[str, Any]] | list[dict[str, Any]]
    keep = deque(maxlen=tail) if tail is not None else []
    for path in files:
        try:
            fh = path.open("r", encoding="utf-8", errors="replace")
        except FileNotFoundError:
            continue
        with fh:
            for line in fh:
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if not isinstance(rec, dict):
                    continue
                if agent is not None and rec.get("agent") != agent:
                    continue
                if floor and LEVELS.get(str(rec.get("level")), 0) < floor:
                    continue
                keep.append(rec)
    return list(keep)


# -- context ------------------------------------------------------------------------------


@contextmanager
def agent_context(
    agent: str | None = None,
    version: str | None = None,
    conversation: str | None = None,
    **extra: Any,
) -> Iterator[None]:
    """Bind ``agent``/``version``/``conversation`` to every record emitted inside the block.

    ``None`` values are not bound. Bindings are structlog context variables: they belong to
    the current thread (or asyncio task) and are restored on exit.

    Args:
        agent: The agent name.
        version: The agent version.
        conversation: The conversation id.
        **extra: Further keys to bind.

    Yields:
        Nothing.
    """
    values = {"agent": agent, "version": version, "conversation": conversation, **extra}
    with structlog.contextvars.bound_contextvars(
        **{k: v for k, v in values.items() if v is not None}
    ):
        yield


def bind_context(**values: Any) -> None:
    """Bind keys to every later record of this thread/task (until :func:`clear_context`).

    Args:
        **values: Keys to bind; ``None`` values unbind.
    """
    structlog.contextvars.unbind_contextvars(*(k for k, v in values.items() if v is None))
    structlog.contextvars.bind_contextvars(**{k: v for k, v in values.items() if v is not None})


def clear_context() -> None:
    """Remove every context binding of this thread/task."""
    structlog.contextvars.clear_contextvars()


# -- configuration ------------------------------------------------------------------------

def _record_timestamp(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Stamp a stdlib record with its creation time, so every handler writes the same time."""
    record = event_dict.get("_record")
    created = record.created if isinstance(record, logging.LogRecord) else time.time()
    stamp = datetime.fromtimestamp(created, tz=UTC).isoformat().replace("+00:00", "Z")
    event_dict.setdefault("timestamp", stamp)
    return event_dict


_COMMON: list[Processor] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_logger_name,
    structlog.stdlib.add_log_level,
]
# structlog events are stamped once, before they reach the handlers.
_STRUCTLOG_CHAIN: list[Processor] = [
    *_COMMON,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
    structlog.processors.StackInfoRenderer(),
]
# stdlib records (pykka, pyzmq, ...) are enriched per handler; the timestamp is the record's.
_FOREIGN_CHAIN: list[Processor] = [*_COMMON, _record_timestamp]


class _Formatter(structlog.stdlib.ProcessorFormatter):
    """``ProcessorFormatter`` without its per-handler copy of each structlog record.

    The stock formatter copies the whole ``LogRecord`` for every handler (three here) so that
    one handler cannot change what the next sees; for a structlog record it only needs its
    own copy of the event dict, which is what this takes. The processors all end in a string
    renderer, so the result is returned as is. Foreign (stdlib) records take the stock path.
    """

    def __init__(self, *args: Any, json_ready: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.json_ready = json_ready

    def format(self, record: logging.LogRecord) -> str:
        logger = getattr(record, "_logger", None)
        meth_name = getattr(record, "_name", None)
        if logger is None or meth_name is None or not isinstance(record.msg, dict):
            return super().format(record)
        procs = self.processors
        ed: Any
        if self.json_ready:
            # The JSON file and the hub start with the same three processors (drop the meta
            # keys, format the exception, make the values JSON-compatible): done once per
            # record, each formatter then takes its own copy of the result.
            ready: Any = record.__dict__.get(_JSON_READY)
            if ready is None:
                ready = dict(record.msg)  # no meta keys to remove: not added on this path
                for proc in _JSON_PREFIX[1:]:
                    ready = proc(logger, meth_name, ready)
                record.__dict__[_JSON_READY] = ready
            ed = dict(ready)
            procs = procs[len(_JSON_PREFIX):]
        else:
            ed = dict(record.msg)
            ed["_record"] = record
            ed["_from_structlog"] = True
        for proc in procs:
            ed = proc(self.logger if self.logger is not None else logger, meth_name, ed)
        return str(ed)


class _State:
    hub: LogHub | None = None
    handlers: list[logging.Handler] = []
    root_level: int | None = None
    srcfile: str | None = None
    lock = threading.Lock()


def _to_json_record(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    return {k: _jsonable(v) for k, v in event_dict.items()}


#: The processors every JSON-producing formatter starts with (see ``_Formatter.json_ready``).
_JSON_PREFIX: list[Processor] = [
    structlog.stdlib.ProcessorFormatter.remove_processors_meta,
    structlog.processors.format_exc_info,
    _to_json_record,
]
#: ``LogRecord`` attribute holding a structlog record's output of ``_JSON_PREFIX``.
_JSON_READY = "_caxton_json_ready"


class _HubHandler(logging.Handler):
    """Feeds every record, as a JSON-compatible dict, to the :class:`LogHub`."""

    def __init__(self, hub: LogHub) -> None:
        super().__init__()
        self.hub = hub
        self.setFormatter(
            _Formatter(
                foreign_pre_chain=_FOREIGN_CHAIN,
                processors=[*_JSON_PREFIX, self._capture],
                json_ready=True,
            )
        )

    def _capture(self, _: WrappedLogger, __: str, event_dict: EventDict) -> str:
        self.hub.record(dict(event_dict))
        return ""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.format(record)
        except Exception:
            self.handleError(record)


class _JsonLinesFile(logging.handlers.RotatingFileHandler):
    """The JSON-lines file, rotated by size, each record formatted once.

    The stdlib handler formats every record twice (once in ``shouldRollover`` to measure it)
    and stats the file on each record; on a node deploying hundreds of agents a second that
    was a third of the logging cost. Here the size is counted as lines are written (from the
    file's size at open), which is what rotation needs: the lines are JSON with ASCII
    escapes, so characters are bytes.
    """

    def __init__(self, filename: Path, max_bytes: int, backups: int) -> None:
        super().__init__(filename, maxBytes=max_bytes, backupCount=backups, encoding="utf-8")
        self._size = self._current_size()

    def _current_size(self) -> int:
        try:
            return Path(self.baseFilename).stat().st_size
        except OSError:
            return 0

    def doRollover(self) -> None:
        super().doRollover()
        self._size = self._current_size()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + self.terminator
            if self.maxBytes > 0 and self._size > 0 and \
                    self._size + len(line) >= self.maxBytes:
                self.doRollover()
            if self.stream is None:
                self.stream = self._open()
            self.stream.write(line)
            self.flush()
            self._size += len(line)
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)


class _KeyValue(structlog.dev.KeyValueColumnFormatter):
    """structlog's key/value column, built by concatenation instead of a ``StringIO``.

    The stock ``__call__`` makes a ``StringIO`` and writes up to ten pieces into it for every
    key of every record; a node record has six or seven keys, which made the console the
    dearest of the three handlers. Same fields, same pieces, same order: same text.
    """

    def __call__(self, key: str, value: object) -> str:
        text = self.value_repr(value)
        if len(text) < self.width:
            text += " " * (self.width - len(text))
        reset = self.reset_style
        out = self.value_style + text + reset
        if self.key_style is not None:
            out = self.key_style + key + reset + "=" + out
        if self.prefix:
            out = self.prefix + reset + out
        if self.postfix:
            out += self.postfix + reset
        return out


def _fast_columns(renderer: structlog.dev.ConsoleRenderer) -> structlog.dev.ConsoleRenderer:
    """Swap the renderer's stock key/value columns for :class:`_KeyValue` (same output)."""
    try:
        columns = renderer.columns
    except AttributeError:  # pragma: no cover - structlog < 25.5 has no public columns
        return renderer
    kv = structlog.dev.KeyValueColumnFormatter
    fields = ("key_style", "value_style", "reset_style", "value_repr", "width", "prefix",
              "postfix")
    renderer.columns = [
        structlog.dev.Column(col.key, _KeyValue(**{f: getattr(col.formatter, f) for f in fields}))
        if type(col.formatter) is kv else col
        for col in columns
    ]
    return renderer


def _formatter(kind: Literal["console", "json"], colors: bool) -> logging.Formatter:
    renderer: Processor
    if kind == "json":
        return _Formatter(
            foreign_pre_chain=_FOREIGN_CHAIN,
            processors=[*_JSON_PREFIX, structlog.processors.JSONRenderer(sort_keys=False)],
            json_ready=True,
        )
    else:
        # Plain tracebacks: rich ones print local variables, which may hold secrets.
        renderer = _fast_columns(structlog.dev.ConsoleRenderer(
            colors=colors, exception_formatter=structlog.dev.plain_traceback
        ))
        tail: list[Processor] = [renderer]
    return _Formatter(
        foreign_pre_chain=_FOREIGN_CHAIN,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *tail],
    )


def configure_logging(
    data_dir: str | Path | None,
    level: str | int = "info",
    *,
    console: bool = True,
    json_file: bool = True,
    console_format: Literal["console", "json"] = "console",
    ring_size: int = 1000,
    stream: TextIO | None = None,
) -> LogHub:
    """Configure structlog and stdlib logging for the node (replacing any earlier setup).

    Args:
        data_dir: The node's data dir; JSON lines go to ``<data_dir>/logs/caxton.jsonl``.
            ``None`` writes no file.
        level: Lowest level recorded anywhere (console, file, ring buffers, sinks).
        console: Write to ``stream`` (stderr by default).
        json_file: Write the JSON lines file.
        console_format: ``console`` (human-readable) or ``json`` on the console.
        ring_size: Records kept in memory per agent.
        stream: Console stream (default ``sys.stderr``).

    Returns:
        The :class:`LogHub` holding the ring buffers and sinks.

    Raises:
        ValueError: Unknown level, or ``ring_size`` < 1.
        OSError: The log directory cannot be created.
    """
    numeric = level_number(level)
    with _State.lock:
        _uninstall()
        log_file: Path | None = None
        handlers: list[logging.Handler] = []
        if json_file and data_dir is not None:
            log_dir = Path(data_dir) / "logs"
            log_dir.mkdir(parents=True, exist_ok=True)
            log_file = log_dir / LOG_FILE_NAME
            fh = _JsonLinesFile(log_file, LOG_FILE_MAX_BYTES, LOG_FILE_BACKUPS)
            fh.setFormatter(_formatter("json", colors=False))
            handlers.append(fh)
        if console:
            out = stream if stream is not None else sys.stderr
            sh = logging.StreamHandler(out)
            colors = console_format == "console" and bool(getattr(out, "isatty", lambda: False)())
            sh.setFormatter(_formatter(console_format, colors=colors))
            handlers.append(sh)
        hub = LogHub(ring_size=ring_size, log_file=log_file)
        handlers.append(_HubHandler(hub))

        root = logging.getLogger()
        _State.root_level = root.level
        # No caller lookup per record (the stdlib's documented switch): no output here shows
        # a record's file, line or function, and structlog's lookup walks the stack (~8 us of
        # each record's ~60 us).
        _State.srcfile = logging._srcfile
        logging._srcfile = None
        for h in handlers:
            h.setLevel(numeric)
            root.addHandler(h)
        root.setLevel(numeric)
        _State.handlers = handlers
        _State.hub = hub

        structlog.configure(
            processors=[
                structlog.stdlib.filter_by_level,
                *_STRUCTLOG_CHAIN,
                structlog.stdlib.PositionalArgumentsFormatter(),
                structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
            ],
            logger_factory=structlog.stdlib.LoggerFactory(),
            wrapper_class=structlog.stdlib.BoundLogger,
            # Not cached: a logger obtained before a reconfigure must follow the new setup.
            cache_logger_on_first_use=False,
        )
        return hub


def _uninstall() -> None:
    root = logging.getLogger()
    for h in _State.handlers:
        root.removeHandler(h)
        h.close()
    if _State.root_level is not None:
        root.setLevel(_State.root_level)
        logging._srcfile = _State.srcfile
    _State.handlers = []
    _State.root_level = None
    _State.hub = None


def reset_logging() -> None:
    """Undo :func:`configure_logging`: remove its handlers, close the file, reset structlog."""
    with _State.lock:
        _uninstall()
        structlog.reset_defaults()
        structlog.contextvars.clear_contextvars()


def get_hub() -> LogHub | None:
    """Return the active :class:`LogHub`, or ``None`` when logging is not configured."""
    return _State.hub


def get_logger(name: str | None = None, **initial: Any) -> Any:
    """Return a structlog logger (what libraries should use to emit).

    Args:
        name: Logger name (e.g. ``__name__``).
        **initial: Keys bound to every record of this logger.

    Returns:
        A bound structlog logger.
    """
    return structlog.get_logger(name, **initial)


__all__ = [
    "LEVELS",
    "LOG_FILE_NAME",
    "LogHub",
    "Sink",
    "agent_context",
    "bind_context",
    "clear_context",
    "configure_logging",
    "get_hub",
    "get_logger",
    "level_number",
    "read_log_files",
    "reset_logging",
]
