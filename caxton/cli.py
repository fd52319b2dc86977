"""The ``caxton`` command-line client.

It talks to a running node over the control port (:mod:`caxton.control.client`) and follows
its event stream (:mod:`caxton.control.events`). It imports only ``caxton.control``,
``caxton.errors``, ``caxton.messages`` and ``caxton.naming`` (the agent-file naming rule it
shares with the node) — never the runtime — so it starts fast and works
against a node on another machine. Files (agents to deploy or validate) are read locally and
sent by content; the node validates them.

Exit codes: 0 ok, 1 the node refused (error reply or failed validation), 2 usage (bad flags,
unreadable local file), 3 node unreachable or timed out.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from caxton.control.client import ENDPOINT_ENV, ControlClient, NodeUnreachable, default_endpoint
from caxton.control.keys import CurveClientConfig, KeyFileError, generate_keys
from caxton.control.protocol import (
    DEFAULT_EVENTS_ENDPOINT,
    AgentType,
    DeployStrategy,
    LogLevel,
    OperationState,
    ReloadStrategy,
    parse_size,
    parse_split,
)
from caxton.errors import CaxtonError, InvalidArgument
from caxton.naming import AGENT_SUFFIXES, agent_name_for_file

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3


class UsageError(Exception):
    """A local problem with the command line or a local file (exit code 2)."""


class Refused(Exception):
    """The node answered, but the answer means failure (e.g. an invalid file; exit 1)."""


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors carry exit code 2 without killing the interpreter."""

    def error(self, message: str) -> Any:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


# --------------------------------------------------------------------------------------------
# Context: connection, output
# --------------------------------------------------------------------------------------------


class Ctx:
    """What every command needs: options, a lazily connected client, and the consoles.

    Args:
        ns: The parsed command line.
    """

    def __init__(self, ns: argparse.Namespace) -> None:
        self.ns = ns
        self.json: bool = bool(getattr(ns, "json", False))
        self.endpoint: str = getattr(ns, "endpoint", None) or default_endpoint()
        self.timeout: float = float(getattr(ns, "timeout", None) or 10.0)
        self.out = Console(soft_wrap=True, highlight=False)
        self.err = Console(stderr=True, soft_wrap=True, highlight=False)
        self._client: ControlClient | None = None
        server_key = getattr(ns, "curve_server_key", None)
        client_key = getattr(ns, "curve_client_key", None)
        if bool(server_key) != bool(client_key):
            raise UsageError("--curve-server-key and --curve-client-key go together")
        self.curve = (CurveClientConfig(Path(server_key), Path(client_key))
                      if server_key and client_key else None)

    @property
    def client(self) -> ControlClient:
        """The control client (connected on first use)."""
        if self._client is None:
            self._client = ControlClient(self.endpoint, timeout=self.timeout, curve=self.curve)
        return self._client

    def call(self, op: str, args: dict[str, Any] | None = None,
             timeout: float | None = None) -> Any:
        """Call an op, dropping ``None`` args so the node's defaults apply.

        Args:
            op: The op.
            args: Its arguments.
            timeout: Seconds to wait (default ``--timeout``).

        Returns:
            The result.
        """
        clean = {k: v for k, v in (args or {}).items() if v is not None}
        return self.client.call(op, clean, timeout=timeout)

    def events_endpoint(self) -> str:
        """The events endpoint: ``--events``, else what ``node.status`` reports."""
        explicit = getattr(self.ns, "events", None)
        if explicit:
            return str(explicit)
        status = self.call("node.status")
        return str(status.get("events_endpoint") or DEFAULT_EVENTS_ENDPOINT)

    def emit(self, result: Any, render: Callable[[Any], None] | None = None) -> None:
        """Print a result as JSON (``--json``) or through ``render`` (or a generic view).

        Args:
            result: The op's result.
            render: Human renderer.
        """
        if self.json:
            self.print_json(result)
        elif render is not None:
            render(result)
        else:
            self.render_generic(result)

    def print_json(self, value: Any) -> None:
        """Print one JSON document on stdout.

        Args:
            value: The value (bytes and unknown types are stringified).
        """
        sys.stdout.write(json.dumps(value, default=_json_default, sort_keys=True) + "\n")
        sys.stdout.flush()

    def render_generic(self, result: Any) -> None:
        """Render a map as an aligned key/value table, anything else as text.

        Args:
            result: The value.
        """
        if isinstance(result, dict):
            table = Table(show_header=False, box=None, pad_edge=False)
            table.add_column(style="bold")
            table.add_column()
            for key, value in result.items():
                if value is None or value == [] or value == {}:
                    continue
                table.add_row(str(key), _cell(value))
            self.out.print(table)
        else:
            self.out.print(_cell(result))


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _cell(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value, default=_json_default)
    return str(value)


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def read_agent_file(path: str | Path) -> dict[str, Any]:
    """Read an agent file for sending: ``.md`` as text, ``.wasm``/``.wat`` as bytes.

    Args:
        path: The file.

    Returns:
        ``{"file_name", "text"}`` or ``{"file_name", "data"}``.

    Raises:
        UsageError: The file is missing, unreadable, or not an agent file type.
    """
    p = Path(path)
    if p.suffix.lower() not in AGENT_SUFFIXES:
        raise UsageError(f"{p}: not an agent file (expected .md, .wasm or .wat)")
    try:
        if p.suffix.lower() == ".md":
            return {"file_name": p.name, "text": p.read_text(encoding="utf-8")}
        return {"file_name": p.name, "data": p.read_bytes()}
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {p}: {exc}") from None


def agent_name_of(path: Path, content: dict[str, Any]) -> str:
    """The agent name a file stands for, by the node's rule (:mod:`caxton.naming`): the
    frontmatter ``name:`` of a ``.md``; a module's stem, or ``<stem>-wasm`` when a config
    agent beside it already has that name.

    Args:
        path: The file.
        content: What :func:`read_agent_file` returned.

    Returns:
        The agent name.
    """
    text = content.get("text")
    return agent_name_for_file(path, text if isinstance(text, str) else None)


def scan_agent_files(directory: Path, paths: dict[str, Path] | None = None
                     ) -> dict[Path, tuple[int, int]]:
    """``{file: (mtime_ns, size)}`` of the agent files under a directory (recursively).

    ``agents watch`` calls it at every poll, so it costs one ``scandir`` per directory and one
    ``stat`` per agent file, and reuses ``Path`` objects from ``paths``.

    Args:
        directory: The directory.
        paths: A cache of path string -> ``Path`` kept by the caller between polls.

    Returns:
        The signatures (entries that vanish while scanning are left out).
    """
    cache: dict[str, Path] = {} if paths is None else paths
    out: dict[Path, tuple[int, int]] = {}
    stack = [str(directory)]
    while stack:
        try:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(entry.path)
                            continue
                        name = entry.name
                        dot = name.rfind(".")
                        if dot <= 0 or name[dot:].lower() not in AGENT_SUFFIXES \
                                or not entry.is_file():
                            continue
                        st = entry.stat()
                    except OSError:
                        continue
                    path = cache.get(entry.path)
                    if path is None:
                        if len(cache) > 10_000:  # bounded: a tree with endless new names
                            cache.clear()
                        path = cache[entry.path] = Path(entry.path)
                    out[path] = (st.st_mtime_ns, st.st_size)
        except OSError:
            continue
    return out


def _agent_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*")
                  if p.is_file() and p.suffix.lower() in AGENT_SUFFIXES)


def _local(parse: Callable[[str], Any], text: str) -> Any:
    """Run a local parser; its InvalidArgument is a usage error (exit 2), not a refusal."""
    try:
        return parse(text)
    except InvalidArgument as exc:
        raise UsageError(exc.message) from None


def _positive(text: str) -> float:
    """argparse type: a number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be greater than 0")
    return value


def _non_negative(text: str) -> float:
    """argparse type: a number >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must not be negative")
    return value


def _rate(text: str) -> float:
    """argparse type: a fraction in [0, 1], written ``0.05`` or ``5%``."""
    raw = text.strip()
    try:
        value = float(raw[:-1]) / 100.0 if raw.endswith("%") else float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a rate; write e.g. 0.05 or 5%") \
            from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} must be between 0 and 1 (0% to 100%)")
    return value


def _split_list(text: str | None) -> list[str] | None:
    if text is None:
        return None
    return [part.strip() for part in text.split(",") if part.strip()]


# --------------------------------------------------------------------------------------------
# Renderers
# --------------------------------------------------------------------------------------------


def _render_agents(ctx: Ctx, result: Any, *, show_type: bool = True,
                   detailed: bool = False) -> None:
    agents = result.get("agents", []) if isinstance(result, dict) else []
    if not agents:
        ctx.out.print("no agents deployed")
        return
    if detailed:
        for agent in agents:
            _render_agent_detail(ctx, agent)
        return
    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("NAME")
    if show_type:
        table.add_column("TYPE")
    table.add_column("VERSION")
    table.add_column("STATE")
    for agent in agents:
        row = [str(agent.get("name", ""))]
        if show_type:
            row.append(str(agent.get("agent_type", "")))
        row += [str(agent.get("version", "")), str(agent.get("state", ""))]
        table.add_row(*row)
    ctx.out.print(table)


def _fmt_ms(value: Any) -> str:
    return "-" if value is None else f"{float(value):.2f}"


def _render_agent_detail(ctx: Ctx, agent: dict[str, Any]) -> None:
    """One agent as an operator reads it: summary, live instances, lifecycle history."""
    details = agent.get("details") or {}
    ctx.out.print(f"[bold]{agent.get('name', '')}[/bold] ({agent.get('agent_type', '')}) "
                  f"version {agent.get('version', '')}  state {agent.get('state', '')}  "
                  f"health {agent.get('health', '-')}")
    summary = Table(box=None, pad_edge=False, show_header=False)
    summary.add_column(style="dim")
    summary.add_column()
    uptime = agent.get("uptime")
    rows: list[tuple[str, Any]] = [
        ("versions kept", ", ".join(map(str, agent.get("versions", [])))),
        ("restarts", agent.get("restarts", 0)),
        ("last error", agent.get("last_error") or "-"),
        ("uptime", f"{float(uptime):.1f}s" if uptime is not None else "-"),
        ("waiting (suspended)", details.get("waiting", 0)),
    ]
    if agent.get("agent_type") == "wasm":
        req = details.get("requirements") or {}
        rows += [("memory allocated", f"{details.get('memory_allocated', 0)} bytes"),
                 ("fuel consumed", details.get("fuel_consumed", 0)),
                 ("limits", f"memory {req.get('memory_bytes', '-')} bytes, fuel "
                            f"{req.get('fuel', '-')}/message, timeout {req.get('timeout', '-')}s"),
                 ("policy", details.get("policy", "-"))]
    else:
        rows += [("capabilities", ", ".join(details.get("capabilities") or []) or "-"),
                 ("tools", ", ".join(details.get("tools") or []) or "-"),
                 ("memory scope", details.get("memory_scope", "-")),
                 ("memory", _cell(details.get("memory")) if details.get("memory") else "-"),
                 ("source", details.get("source") or "-")]
    if details.get("operation_id"):
        rows.append(("last operation", details["operation_id"]))
    for key, value in rows:
        summary.add_row(key, str(value))
    ctx.out.print(summary)
    instances = details.get("instances") or []
    if instances:
        table = Table(box=None, pad_edge=False, header_style="bold", title_justify="left")
        for col in ("INSTANCE", "STATE", "WEIGHT", "INFL", "PINS", "BREAKER", "RST", "REQ",
                    "ERR", "P50ms", "P99ms"):
            table.add_column(col, no_wrap=True)
        for i in instances:
            state = str(i.get("state", ""))
            if i.get("instance") not in (None, "running") and state != "Stopped":
                state = f"{state}/{i.get('instance')}"
            table.add_row(str(i.get("label", i.get("version", ""))), state,
                          str(i.get("weight", "")), str(i.get("in_flight", "")),
                          str(i.get("pinned", "")), str(i.get("breaker") or "-"),
                          str(i.get("restarts", 0)), str(i.get("requests", 0)),
                          str(i.get("errors", 0)), _fmt_ms(i.get("p50_ms")),
                          _fmt_ms(i.get("p99_ms")))
        ctx.out.print(table)
    history = details.get("lifecycle") or []
    if history:
        table = Table(box=None, pad_edge=False, header_style="bold")
        for col in ("AT", "TRANSITION", "REASON"):
            table.add_column(col)
        for rec in history[-10:]:
            at = rec.get("at")
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(at))) \
                if isinstance(at, int | float) else str(at)
            table.add_row(when, f"{rec.get('from')} -> {rec.get('to')}",
                          str(rec.get("reason") or ""))
        ctx.out.print(table)
    ctx.out.print("")


def _render_report(ctx: Ctx, report: dict[str, Any], file_name: str | None = None) -> None:
    label = file_name or report.get("name") or "file"
    verdict = "[green]valid[/green]" if report.get("valid") else "[red]invalid[/red]"
    ctx.out.print(f"{label}: {verdict}")
    findings = report.get("findings") or []
    if findings:
        table = Table(box=None, pad_edge=False, header_style="bold")
        for col in ("SEVERITY", "WHERE", "PROBLEM", "FIX"):
            table.add_column(col)
        for f in findings:
            where = ":".join(str(x) for x in (f.get("file"), f.get("line")) if x is not None)
            if f.get("field"):
                where = f"{where} {f['field']}".strip()
            table.add_row(str(f.get("severity", "error")), where, str(f.get("message", "")),
                          str(f.get("fix") or ""))
        ctx.out.print(table)
    stages = report.get("stages") or []
    if stages:
        table = Table(box=None, pad_edge=False, header_style="bold")
        for col in ("STAGE", "CHECK", "RESULT", "FINDINGS"):
            table.add_column(col)
        for stage in stages:
            status = str(stage.get("status", ""))
            colour = {"passed": "green", "failed": "red"}.get(status, "yellow")
            table.add_row(str(stage.get("stage", stage.get("number", ""))),
                          str(stage.get("name", "")), f"[{colour}]{status}[/{colour}]",
                          str(len(stage.get("findings") or [])))
        ctx.out.print(table)


def _render_change(ctx: Ctx, result: Any) -> None:
    if not isinstance(result, dict):
        ctx.render_generic(result)
        return
    parts = [str(result.get("name", ""))]
    if result.get("version"):
        parts.append(f"version {result['version']}")
    if result.get("state"):
        parts.append(f"state {result['state']}")
    ctx.out.print(": ".join([parts[0], ", ".join(parts[1:])]) if len(parts) > 1 else parts[0])
    if result.get("message"):
        ctx.out.print(str(result["message"]))
    if result.get("operation_id"):
        ctx.out.print(f"operation {result['operation_id']} continues in the background; "
                      f"follow it with `caxton agents reload-status {result.get('name', '')}`")
    if isinstance(result.get("validation"), dict):
        _render_report(ctx, result["validation"])


def _render_logs(ctx: Ctx, result: Any) -> None:
    for rec in (result or {}).get("records", []):
        ctx.out.print(_format_log(rec), markup=False)


def _format_log(rec: dict[str, Any]) -> str:
    ts = rec.get("ts")
    when = time.strftime("%H:%M:%S", time.localtime(ts)) if isinstance(ts, int | float) \
        else str(ts or "")
    level = str(rec.get("level", "")).upper()
    event = rec.get("event") or rec.get("message") or ""
    extra = " ".join(f"{k}={v}" for k, v in rec.items()
                     if k not in ("ts", "level", "event", "message", "agent"))
    return f"{when} {level:<8} {event} {extra}".rstrip()


def _render_operation(ctx: Ctx, op: dict[str, Any]) -> None:
    traffic = ", ".join(f"{k}: {v}%" for k, v in (op.get("traffic") or {}).items())
    step = f"step {op.get('step', 0)}/{op.get('steps', 0)}" if op.get("steps") else ""
    line = " ".join(x for x in (str(op.get("operation_id", "")), str(op.get("kind", "")),
                                str(op.get("strategy") or ""), str(op.get("state", "")), step,
                                traffic) if x)
    ctx.out.print(line)
    if op.get("message"):
        ctx.out.print(f"  {op['message']}")


def _render_reload_status(ctx: Ctx, result: Any) -> None:
    current = (result or {}).get("current")
    if current:
        ctx.out.print("[bold]current[/bold]")
        _render_operation(ctx, current)
    else:
        ctx.out.print("no reload in progress")
    history = (result or {}).get("history") or []
    if history:
        ctx.out.print("[bold]recent[/bold]")
        for op in history:
            _render_operation(ctx, op)


# --------------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------------


def _emit_change_and_wait(ctx: Ctx, result: Any) -> int:
    """Print a change result, then (``--wait``) follow its operation until it ends.

    With ``--json`` exactly one JSON document reaches stdout, so scripts can parse it: the
    change itself, or, when ``--wait`` follows an operation, the final operation status with
    the change nested under ``"change"``.

    Returns:
        0, or 1 when a followed operation did not succeed.
    """
    op_id = result.get("operation_id") if isinstance(result, dict) else None
    if not op_id or not getattr(ctx.ns, "wait", False):
        ctx.emit(result, lambda r: _render_change(ctx, r))
        return EXIT_OK
    if not ctx.json:
        _render_change(ctx, result)
    last: dict[str, Any] = {}
    with ctx.err.status(f"waiting for operation {op_id}") as status:
        while True:
            last = ctx.call("operations.get", {"operation_id": op_id})
            status.update(f"{op_id}: {last.get('state')} step {last.get('step', 0)}/"
                          f"{last.get('steps', 0)} {_cell(last.get('traffic') or {})}")
            if last.get("state") != OperationState.RUNNING:
                break
            time.sleep(0.2)
    if ctx.json:
        ctx.print_json({**last, "change": result})
    else:
        _render_operation(ctx, last)
    return EXIT_OK if last.get("state") == OperationState.SUCCEEDED else EXIT_REFUSED


def cmd_deploy(ctx: Ctx) -> int:
    """``agents deploy FILE``."""
    ns = ctx.ns
    args = read_agent_file(ns.file)
    args.update(name=ns.name, strategy=ns.strategy, fuel=ns.fuel,
                validate_only=ns.validate_only or None,
                memory_bytes=_local(parse_size, ns.memory) if ns.memory else None,
                **_rollout_args(ns))
    result = ctx.call("agents.deploy", args)
    if ns.validate_only and isinstance(result, dict) and "valid" in result:
        ctx.emit(result, lambda r: _render_report(ctx, r, args["file_name"]))
        return EXIT_OK if result.get("valid") else EXIT_REFUSED
    return _emit_change_and_wait(ctx, result)


def _rollout_args(ns: argparse.Namespace) -> dict[str, Any]:
    """The rollout settings of ``agents reload`` / ``agents deploy`` as protocol args."""
    steps = _split_list(ns.steps)
    try:
        step_values = [int(s) for s in steps] if steps else None
    except ValueError:
        raise UsageError(f"--steps {ns.steps!r}: write percentages like 10,50,100") from None
    return {"split": ns.split, "steps": step_values, "step_interval_s": ns.step_interval,
            "max_error_rate": ns.max_error_rate, "max_p99_ratio": ns.max_p99_ratio,
            "max_fuel_ratio": ns.max_fuel_ratio, "scale_down_delay_s": ns.scale_down_delay}


def cmd_reload(ctx: Ctx) -> int:
    """``agents reload NAME``."""
    ns = ctx.ns
    args: dict[str, Any] = {"name": ns.name}
    if ns.file:
        args.update(read_agent_file(ns.file))
    args.update(strategy=ns.strategy, validate_first=ns.validate_first,
                preserve_memory=ns.preserve_memory, rollback_on_error=ns.rollback_on_error,
                **_rollout_args(ns))
    result = ctx.call("agents.reload", args)
    return _emit_change_and_wait(ctx, result)


def _simple(op: str) -> Callable[[Ctx], int]:
    def run(ctx: Ctx) -> int:
        result = ctx.call(op, {"name": ctx.ns.name})
        ctx.emit(result, lambda r: _render_change(ctx, r))
        return EXIT_OK

    run.__doc__ = f"Send ``{op}``."
    return run


def cmd_status(ctx: Ctx) -> int:
    """``agents status [NAME]``."""
    result = ctx.call("agents.status", {"name": ctx.ns.name,
                                        "detailed": ctx.ns.detailed or None})
    ctx.emit(result, lambda r: _render_agents(ctx, r, detailed=ctx.ns.detailed))
    return EXIT_OK


def cmd_list(ctx: Ctx) -> int:
    """``agents list``."""
    result = ctx.call("agents.list", {"type": ctx.ns.type})
    ctx.emit(result, lambda r: _render_agents(ctx, r, show_type=ctx.ns.show_type
                                              or ctx.ns.type is None))
    return EXIT_OK


def cmd_validate(ctx: Ctx) -> int:
    """``agents validate FILE``."""
    args = read_agent_file(ctx.ns.file)
    args["detailed"] = ctx.ns.detailed or None
    result = ctx.call("agents.validate", args)
    ctx.emit(result, lambda r: _render_report(ctx, r, args["file_name"]))
    return EXIT_OK if isinstance(result, dict) and result.get("valid") else EXIT_REFUSED


def cmd_validate_all(ctx: Ctx) -> int:
    """``agents validate-all [DIR]``."""
    directory = Path(ctx.ns.dir)
    if not directory.is_dir():
        raise UsageError(f"{directory} is not a directory")
    files = _agent_files(directory)
    reports: list[dict[str, Any]] = []
    for path in files:
        args = read_agent_file(path)
        try:
            report = ctx.call("agents.validate", args)
        except CaxtonError as exc:  # a refusal for one file is a finding, not the end
            report = {"valid": False, "findings": [{"severity": "error",
                                                     "message": f"{exc.code}: {exc.message}"}]}
        reports.append({"file": str(path), **(report if isinstance(report, dict) else {})})
    if ctx.json:
        ctx.print_json({"files": reports, "valid": all(r.get("valid") for r in reports)})
    else:
        if not files:
            ctx.out.print(f"no agent files (.md, .wasm, .wat) under {directory}")
        table = Table(box=None, pad_edge=False, header_style="bold")
        for col in ("FILE", "RESULT", "FINDINGS"):
            table.add_column(col)
        for r in reports:
            findings = "; ".join(str(f.get("message", "")) for f in r.get("findings") or [])
            table.add_row(r["file"], "valid" if r.get("valid") else "INVALID", findings)
        if reports:
            ctx.out.print(table)
    return EXIT_OK if all(r.get("valid") for r in reports) else EXIT_REFUSED


def _follow(ctx: Ctx, prefixes: list[str], on_event: Callable[[Any], None],
            until: Callable[[], bool] | None = None) -> None:
    from caxton.control.events import EventSubscriber

    with EventSubscriber(ctx.events_endpoint(), prefixes, curve=ctx.curve) as sub:
        while until is None or not until():
            event = sub.recv(0.2)
            if event is not None:
                on_event(event)


def cmd_logs(ctx: Ctx) -> int:
    """``agents logs NAME``."""
    ns = ctx.ns
    result = ctx.call("agents.logs", {"name": ns.name, "tail": ns.tail, "level": ns.level})
    if ctx.json:
        for rec in (result or {}).get("records", []):
            ctx.print_json(rec)
    else:
        _render_logs(ctx, result)
    if ns.follow:
        order = [lv.value for lv in LogLevel]
        floor = order.index(ns.level) if ns.level else 0

        def show(event: Any) -> None:
            rec = dict(event.data)
            level = str(rec.get("level", "info")).lower()
            if level in order and order.index(level) < floor:
                return
            rec.setdefault("ts", event.ts)
            if ctx.json:
                ctx.print_json(rec)
            else:
                ctx.out.print(_format_log(rec), markup=False)

        _follow(ctx, [f"agent.{ns.name}.log"], show, _deadline(ns.follow_for))
    return EXIT_OK


def _deadline(seconds: float | None) -> Callable[[], bool] | None:
    if seconds is None:
        return None
    end = time.monotonic() + seconds
    return lambda: time.monotonic() >= end


def cmd_rollback(ctx: Ctx) -> int:
    """``agents rollback NAME --to-version V``."""
    result = ctx.call("agents.rollback", {"name": ctx.ns.name, "to_version": ctx.ns.to_version})
    ctx.emit(result, lambda r: _render_change(ctx, r))
    return EXIT_OK


def cmd_ab_test(ctx: Ctx) -> int:
    """``agents ab-test NAME --config-a A --config-b B --split 80/20``."""
    ns = ctx.ns
    a, b = read_agent_file(ns.config_a), read_agent_file(ns.config_b)
    if "text" not in a or "text" not in b:
        raise UsageError("ab-test compares two configuration agents (.md files)")
    result = ctx.call("agents.ab_test", {
        "name": ns.name, "config_a": a["text"], "config_b": b["text"],
        "file_a": a["file_name"], "file_b": b["file_name"], "split": list(_local(parse_split, ns.split)),
    })
    return _emit_change_and_wait(ctx, result)


def cmd_recover(ctx: Ctx) -> int:
    """``agents recover NAME``."""
    result = ctx.call("agents.recover", {"name": ctx.ns.name,
                                         "restore_memory": ctx.ns.restore_memory or None})
    ctx.emit(result, lambda r: _render_change(ctx, r))
    return EXIT_OK


def cmd_disable(ctx: Ctx) -> int:
    """``agents disable NAME``."""
    result = ctx.call("agents.disable", {"name": ctx.ns.name,
                                         "preserve_memory": ctx.ns.preserve_memory})
    ctx.emit(result, lambda r: _render_change(ctx, r))
    return EXIT_OK


def cmd_reload_status(ctx: Ctx) -> int:
    """``agents reload-status NAME``."""
    result = ctx.call("agents.reload_status", {"name": ctx.ns.name})
    ctx.emit(result, lambda r: _render_reload_status(ctx, r))
    return EXIT_OK


def cmd_monitor(ctx: Ctx) -> int:
    """``agents monitor NAME``: a live table of metrics, refreshed every ``--interval``."""
    from rich.live import Live

    ns = ctx.ns
    args = {"name": ns.name, "metrics": _split_list(ns.metrics)}
    count = 0

    def table_of(snapshot: dict[str, Any]) -> Table:
        table = Table(title=f"{ns.name}", box=None, pad_edge=False, header_style="bold")
        table.add_column("METRIC")
        table.add_column("VALUE", justify="right")
        for key, value in (snapshot.get("metrics") or {}).items():
            table.add_row(str(key), _cell(value))
        return table

    if ctx.json or not ctx.out.is_terminal:
        while ns.count is None or count < ns.count:
            snapshot = ctx.call("agents.monitor", args)
            ctx.emit(snapshot, lambda r: ctx.out.print(table_of(r)))
            count += 1
            if ns.count is not None and count >= ns.count:
                break
            time.sleep(ns.interval)
        return EXIT_OK
    with Live(console=ctx.out, refresh_per_second=4) as live:  # pragma: no cover - tty only
        while ns.count is None or count < ns.count:
            live.update(table_of(ctx.call("agents.monitor", args)))
            count += 1
            time.sleep(ns.interval)
    return EXIT_OK


def cmd_watch(ctx: Ctx) -> int:
    """``agents watch DIR [--auto-reload]``: poll files, debounce, validate or reload."""
    ns = ctx.ns
    directory = Path(ns.dir)
    if not directory.is_dir():
        raise UsageError(f"{directory} is not a directory")

    paths: dict[str, Path] = {}

    def scan() -> dict[Path, tuple[int, int]]:
        return scan_agent_files(directory, paths)

    known = scan()
    known_names = {p: agent_name_of(p, read_agent_file(p)) for p in known}
    changed_at: dict[Path, float] = {}
    handled = 0
    failures = 0
    mode = "reloading" if ns.auto_reload else "validating"
    if not ctx.json:
        ctx.err.print(f"watching {directory} ({len(known)} agent files), {mode} changes; "
                      "Ctrl-C stops")
    end = _deadline(ns.duration)
    try:
        while (ns.max_changes is None or handled < ns.max_changes) and not (end and end()):
            now = time.monotonic()
            wall = time.time()
            current = scan()
            for path, sig in current.items():
                if known.get(path) != sig:
                    known[path] = sig
                    # quiet since its last write (mtime, clamped to one debounce for clock
                    # skew or preserved mtimes), so the poll interval adds nothing
                    changed_at[path] = now - min(max(0.0, wall - sig[0] / 1e9), ns.debounce)
            for path in [p for p in known if p not in current]:
                del known[path]
                changed_at.pop(path, None)
                _watch_report(ctx, {"file": str(path), "event": "deleted",
                                    "verdict": "ignored (remove agents explicitly)"})
            for path, since in list(changed_at.items()):
                if now - since < ns.debounce:
                    continue
                del changed_at[path]
                ok = _watch_apply(ctx, path, known_names)
                handled += 1
                failures += 0 if ok else 1
            # wake at the next poll, or sooner when a pending change's debounce ends
            now = time.monotonic()
            due = [since + ns.debounce - now for since in changed_at.values()]
            time.sleep(max(0.001, min([ns.interval, *due])))
    except KeyboardInterrupt:
        pass
    return EXIT_OK if failures == 0 else EXIT_REFUSED


def _watch_apply(ctx: Ctx, path: Path, known_names: dict[Path, str]) -> bool:
    try:
        content = read_agent_file(path)
    except UsageError as exc:
        _watch_report(ctx, {"file": str(path), "event": "changed", "ok": False,
                            "verdict": str(exc)})
        return False
    name = agent_name_of(path, content)
    is_new = path not in known_names
    known_names[path] = name
    try:
        if not ctx.ns.auto_reload:
            report = ctx.call("agents.validate", content)
            ok = bool(report.get("valid")) if isinstance(report, dict) else False
            findings = report.get("findings", []) if isinstance(report, dict) else []
            verdict = "valid" if ok else "invalid: " + "; ".join(
                str(f.get("message", "")) for f in findings)
        elif is_new:
            deploy = {**content, "strategy": ctx.ns.strategy}
            if "data" in content:  # the node would name a module by its stem alone
                deploy["name"] = name
            result = ctx.call("agents.deploy", deploy)
            ok, verdict = True, f"deployed version {result.get('version')}"
        else:
            result = ctx.call("agents.reload", {**content, "name": name,
                                                "strategy": ctx.ns.strategy,
                                                "validate_first": True,
                                                "rollback_on_error": True})
            ok = True
            verdict = f"reloaded to version {result.get('version')}"
            if result.get("operation_id"):
                verdict += f" (operation {result['operation_id']})"
    except CaxtonError as exc:
        ok, verdict = False, f"refused: {exc.code}: {exc.message} (the running version keeps " \
            "serving)" if ctx.ns.auto_reload else f"refused: {exc.code}: {exc.message}"
    _watch_report(ctx, {"file": str(path), "agent": name, "event": "changed", "ok": ok,
                        "verdict": verdict})
    return ok


def _watch_report(ctx: Ctx, entry: dict[str, Any]) -> None:
    if ctx.json:
        ctx.print_json(entry)
    else:
        mark = "[green]✓[/green]" if entry.get("ok") else "[red]✗[/red]"
        ctx.out.print(f"{mark} {entry['file']}: {entry['verdict']}")


def cmd_message_send(ctx: Ctx) -> int:
    """``message send AGENT CONTENT``."""
    ns = ctx.ns
    content: Any = ns.content
    if ns.json_content:
        try:
            content = json.loads(ns.content)
        except json.JSONDecodeError as exc:
            raise UsageError(f"--json-content: CONTENT is not JSON ({exc})") from None
    wait = ns.message_timeout or ctx.timeout
    if ns.end and not ns.conversation_id:
        raise UsageError("--end needs --conversation-id (a message without one opens none)")
    result = ctx.call("message.send", {"agent": ns.agent, "content": content,
                                       "conversation_id": ns.conversation_id,
                                       "end_conversation": bool(ns.end),
                                       "timeout": wait}, timeout=wait + 1.0)
    ctx.emit(result, lambda r: ctx.out.print(
        _cell(r.get("content")) if isinstance(r, dict) else _cell(r), markup=False))
    return EXIT_OK


def _render_conversations(ctx: Ctx, result: Any) -> None:
    rows = (result or {}).get("conversations") or []
    if not rows:
        ctx.out.print(f"agent {result.get('name')} has no open conversations")
        return
    table = Table(box=None, pad_edge=False, header_style="bold")
    for col in ("ID", "MESSAGES", "HISTORY", "IN FLIGHT", "AGE", "IDLE", "EXPIRES IN"):
        table.add_column(col)
    for c in rows:
        expires = c.get("expires_in_s")
        table.add_row(str(c["id"]), str(c["messages"]), str(c["history"]), str(c["in_flight"]),
                      f"{c['age_s']:.1f}s", f"{c['idle_s']:.1f}s",
                      "-" if expires is None else f"{expires:.0f}s")
    ctx.out.print(table)


def cmd_conversations_list(ctx: Ctx) -> int:
    """``conversations list AGENT``: the agent's open conversations, oldest first."""
    result = ctx.call("conversations.list", {"name": ctx.ns.agent})
    ctx.emit(result, lambda r: _render_conversations(ctx, r))
    return EXIT_OK


def cmd_conversations_end(ctx: Ctx) -> int:
    """``conversations end AGENT ID``: end one conversation (exit 1 if it was not open)."""
    result = ctx.call("conversations.end", {"name": ctx.ns.agent,
                                            "conversation_id": ctx.ns.conversation_id})
    ended = bool((result or {}).get("ended"))
    ctx.emit(result, lambda r: ctx.out.print(
        f"conversation {ctx.ns.conversation_id} of {ctx.ns.agent} "
        + ("ended" if ended else "was not open"), markup=False))
    return EXIT_OK if ended else EXIT_REFUSED


def cmd_node_status(ctx: Ctx) -> int:
    """``node status``."""
    ctx.emit(ctx.call("node.status"))
    return EXIT_OK


def cmd_node_shutdown(ctx: Ctx) -> int:
    """``node shutdown``."""
    result = ctx.call("node.shutdown", {"drain_timeout": ctx.ns.drain_timeout})
    ctx.emit(result, lambda r: ctx.out.print(f"node at {ctx.endpoint} is shutting down"))
    return EXIT_OK


def cmd_keys_generate(ctx: Ctx) -> int:
    """``keys generate``: write a CURVE key pair and explain how to use it."""
    pair = generate_keys(ctx.ns.dir, ctx.ns.name)
    info = {"public": str(pair.public), "secret": str(pair.secret)}
    if ctx.json:
        ctx.print_json(info)
        return EXIT_OK
    ctx.out.print(f"public key: {pair.public}\nsecret key: {pair.secret} (keep it private)",
                  markup=False)
    ctx.out.print(
        "To run a node with CURVE, generate a 'server' pair and give the node its .key_secret "
        "and an allow-list directory. To admit a client, copy the client's public .key file "
        "into that allow-list directory; the client then runs e.g.\n"
        f"  caxton --curve-server-key server.key --curve-client-key {pair.secret} node status",
        markup=False)
    return EXIT_OK


# --------------------------------------------------------------------------------------------
# Parser
# --------------------------------------------------------------------------------------------


def _common(json_only: bool = False) -> _Parser:
    """Options accepted both before and after the verb (defaults suppressed on leaves)."""
    p = _Parser(add_help=False)
    p.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                   help="print machine-readable JSON instead of tables")
    if not json_only:
        p.add_argument("--endpoint", default=argparse.SUPPRESS, metavar="E",
                       help=f"control endpoint (default ${ENDPOINT_ENV} or "
                            "tcp://127.0.0.1:7460)")
        p.add_argument("--timeout", type=float, default=argparse.SUPPRESS, metavar="S",
                       help="seconds to wait for the node (default 10)")
        p.add_argument("--events", default=argparse.SUPPRESS, metavar="E",
                       help="events endpoint (default: as reported by `node status`)")
    return p


def _add_rollout_flags(p: argparse.ArgumentParser, note: str = "") -> None:
    """Add the rollout settings shared by ``agents reload`` and ``agents deploy``."""
    g = p.add_argument_group("rollout settings" + note)
    g.add_argument("--split", type=int, metavar="PCT",
                   help="percent of traffic to the new version (traffic-splitting/canary)")
    g.add_argument("--steps", metavar="P1,P2,…",
                   help="traffic percentages per step (gradual/canary), e.g. 10,50,100")
    g.add_argument("--step-interval", type=_positive, metavar="S",
                   help="seconds per step: the analysis window of canary/traffic-splitting "
                        "(node default 60), graceful's validation period, and blue-green's "
                        "scale-down delay unless --scale-down-delay is given")
    g.add_argument("--max-error-rate", type=_rate, metavar="R",
                   help="analysis: roll back when the new version's error rate over a step "
                        "exceeds R, e.g. 0.05 or 5%% (node default 5%%)")
    g.add_argument("--max-p99-ratio", type=_positive, metavar="X",
                   help="analysis: roll back when the new version's p99 exceeds the stable "
                        "version's times X (node default 1.5)")
    g.add_argument("--max-fuel-ratio", type=_positive, metavar="X",
                   help="analysis (WASM): roll back when fuel per message exceeds the stable "
                        "version's times X (node default 1.5)")
    g.add_argument("--scale-down-delay", type=_non_negative, metavar="S",
                   help="blue-green: seconds blue stays warm for instant rollback; the "
                        "rollout, and so the next reload, waits for it (node default 300)")


def build_parser() -> argparse.ArgumentParser:
    """Build the ``caxton`` argument parser.

    Returns:
        The parser; each leaf sets ``func`` to its command.
    """
    common = _common()
    parser = _Parser(
        prog="caxton",
        description="Control a Caxton node: deploy, reload, inspect and message agents. "
                    "Start a node with `python3 -m caxton`.",
        epilog="Exit codes: 0 ok, 1 refused by the node, 2 usage, 3 node unreachable.",
    )
    parser.add_argument("--endpoint", metavar="E", default=None,
                        help=f"control endpoint (default ${ENDPOINT_ENV} or "
                             "tcp://127.0.0.1:7460)")
    parser.add_argument("--events", metavar="E", default=None,
                        help="events endpoint (default: as reported by `node status`)")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    parser.add_argument("--timeout", type=float, default=10.0, metavar="S",
                        help="seconds to wait for the node (default 10)")
    parser.add_argument("--curve-server-key", metavar="F",
                        help="the node's public CURVE key file (when the node requires CURVE)")
    parser.add_argument("--curve-client-key", metavar="F",
                        help="this client's CURVE .key_secret file")
    groups = parser.add_subparsers(dest="group", metavar="{agents,message,node,keys}",
                                   parser_class=_Parser)
    groups.required = True

    agents = groups.add_parser("agents", help="deploy, reload and inspect agents",
                               description="Manage agents on the node.")
    verbs = agents.add_subparsers(dest="verb", metavar="VERB", parser_class=_Parser)
    verbs.required = True

    def verb(name: str, func: Callable[[Ctx], int], help_text: str) -> argparse.ArgumentParser:
        p = verbs.add_parser(name, help=help_text, description=help_text, parents=[common])
        p.set_defaults(func=func)
        return p

    deploy_strategies = [s.value for s in DeployStrategy]
    reload_strategies = [s.value for s in ReloadStrategy]

    p = verb("deploy", cmd_deploy, "deploy an agent file (.md config agent, .wasm/.wat module)")
    p.add_argument("file", help="the agent file; read locally and sent to the node")
    p.add_argument("--validate-only", action="store_true",
                   help="validate and report; deploy nothing")
    p.add_argument("--strategy", choices=deploy_strategies, help="rollout strategy")
    p.add_argument("--name", help="agent name (WASM agents; default: the file stem)")
    p.add_argument("--memory", metavar="SIZE", help="WASM memory cap, e.g. 10MB")
    p.add_argument("--fuel", type=int, metavar="N", help="WASM fuel per message, e.g. 100000")
    _add_rollout_flags(p, note=" (when the deploy replaces a running agent)")
    p.add_argument("--wait", action="store_true", help="follow a rollout until it ends")

    p = verb("reload", cmd_reload, "hot-reload an agent (from its source, or --file)")
    p.add_argument("name", help="the agent's name")
    p.add_argument("--file", help="new version of the agent file")
    p.add_argument("--strategy", choices=reload_strategies, help="reload strategy")
    p.add_argument("--validate-first", action="store_true", default=None,
                   help="states the default; it changes nothing: the node always validates "
                        "the new file before touching the running version (there is no way "
                        "to skip validation)")
    p.add_argument("--preserve-memory", action=argparse.BooleanOptionalAction, default=None,
                   help="keep memory and conversations (node default: yes)")
    p.add_argument("--rollback-on-error", action="store_true", default=None,
                   help="states the default; it changes nothing: an invalid file is refused "
                        "and the running version keeps serving, and a canary or "
                        "traffic-splitting rollout that fails its analysis is always rolled "
                        "back (tune when with --max-error-rate/--max-p99-ratio)")
    _add_rollout_flags(p)
    p.add_argument("--wait", action="store_true", help="follow a rollout until it ends")

    for name, op, text in (
        ("suspend", "agents.suspend", "suspend an agent (messages wait in a bounded queue)"),
        ("resume", "agents.resume", "resume a suspended agent"),
        ("remove", "agents.remove", "drain and remove an agent"),
        ("promote", "agents.promote", "end a rollout or A/B test by promoting the new version"),
        ("abort", "agents.abort", "end a rollout or A/B test by rolling back"),
    ):
        p = verb(name, _simple(op), text)
        p.add_argument("name", help="the agent's name")

    p = verb("status", cmd_status, "show the status of one agent or all agents")
    p.add_argument("name", nargs="?", help="the agent's name (default: all)")
    p.add_argument("--detailed", action="store_true", help="versions, metrics and limits")

    p = verb("list", cmd_list, "list deployed agents")
    p.add_argument("--type", choices=[t.value for t in AgentType], help="only this type")
    p.add_argument("--show-type", action="store_true", help="show the TYPE column")

    p = verb("validate", cmd_validate, "validate an agent file (the node validates; "
             "nothing is deployed)")
    p.add_argument("file", help="the agent file")
    p.add_argument("--detailed", action="store_true", help="report every validation stage")

    p = verb("validate-all", cmd_validate_all, "validate every agent file under a directory")
    p.add_argument("dir", nargs="?", default="agents", help="the directory (default: agents)")

    p = verb("logs", cmd_logs, "show an agent's recent log records")
    p.add_argument("name", help="the agent's name")
    p.add_argument("--tail", type=int, default=50, metavar="N", help="records (default 50)")
    p.add_argument("--level", choices=[lv.value for lv in LogLevel], help="minimum level")
    p.add_argument("--follow", "-f", action="store_true",
                   help="keep printing new records from the event stream (Ctrl-C stops)")
    p.add_argument("--follow-for", type=float, metavar="S", help=argparse.SUPPRESS)

    p = verb("watch", cmd_watch, "watch a directory and validate (or, with --auto-reload, "
             "reload) changed agent files")
    p.add_argument("dir", help="the directory to watch")
    p.add_argument("--auto-reload", action="store_true",
                   help="reload changed agents (deploy new files); invalid edits are refused "
                        "and the running version keeps serving")
    p.add_argument("--strategy", choices=reload_strategies, help="reload strategy")
    p.add_argument("--interval", type=_positive, default=0.05, metavar="S",
                   help="polling interval (default 0.05 s)")
    p.add_argument("--debounce", type=_non_negative, default=0.1, metavar="S",
                   help="quiet time before a change is applied (default 0.1 s)")
    p.add_argument("--max-changes", type=int, metavar="N", help="stop after N changes")
    p.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")

    p = verb("rollback", cmd_rollback, "restore a kept version of an agent")
    p.add_argument("name", help="the agent's name")
    p.add_argument("--to-version", metavar="V", help="the version (default: the previous one)")

    p = verb("ab-test", cmd_ab_test, "run two configurations side by side with a traffic split")
    p.add_argument("name", help="the agent's name")
    p.add_argument("--config-a", required=True, metavar="FILE", help="configuration A (.md)")
    p.add_argument("--config-b", required=True, metavar="FILE", help="configuration B (.md)")
    p.add_argument("--split", default="50/50", metavar="A/B", help="traffic split, e.g. 80/20")
    p.add_argument("--wait", action="store_true", help="follow the test until it ends")

    p = verb("recover", cmd_recover, "recover a failed agent (reset its breaker, restart it)")
    p.add_argument("name", help="the agent's name")
    p.add_argument("--restore-memory", action="store_true",
                   help="restore memory from the last snapshot")

    p = verb("disable", cmd_disable, "emergency stop: no traffic, no restarts")
    p.add_argument("name", help="the agent's name")
    p.add_argument("--preserve-memory", action=argparse.BooleanOptionalAction, default=None,
                   help="keep the agent's memory (node default: yes)")

    p = verb("monitor", cmd_monitor, "show an agent's metrics, refreshed live")
    p.add_argument("name", help="the agent's name")
    p.add_argument("--metrics", metavar="M1,M2",
                   help="metrics, e.g. response_time,success_rate")
    p.add_argument("--interval", type=float, default=1.0, metavar="S",
                   help="refresh interval (default 1 s)")
    p.add_argument("--count", type=int, metavar="N", help="stop after N snapshots")

    p = verb("reload-status", cmd_reload_status, "show the current and recent reloads")
    p.add_argument("name", help="the agent's name")

    message = groups.add_parser("message", help="send messages to agents",
                                description="Send messages to agents.")
    msg_verbs = message.add_subparsers(dest="verb", metavar="VERB", parser_class=_Parser)
    msg_verbs.required = True
    p = msg_verbs.add_parser("send", help="send a message and print the reply",
                             description="Send a message to an agent and print its reply.",
                             parents=[common])
    p.set_defaults(func=cmd_message_send)
    p.add_argument("agent", help="the receiving agent")
    p.add_argument("content", help="the content (a string; see --json-content)")
    p.add_argument("--conversation-id", metavar="ID", help="continue a conversation")
    p.add_argument("--json-content", action="store_true", help="parse CONTENT as JSON")
    p.add_argument("--message-timeout", type=float, metavar="S",
                   help="seconds the node waits for the agent (default: --timeout)")
    p.add_argument("--end", action="store_true",
                   help="end the conversation once this message is answered")

    convs = groups.add_parser(
        "conversations", help="list or end a config agent's open conversations",
        description="A config agent's open conversations. Each holds a slot of the agent's "
                    "max_conversations and its history until it is ended or idles out "
                    "(resource_limits.conversation_idle_timeout, default 30m). Messages without "
                    "a conversation id open none.")
    conv_verbs = convs.add_subparsers(dest="verb", metavar="VERB", parser_class=_Parser)
    conv_verbs.required = True
    p = conv_verbs.add_parser("list", help="the agent's open conversations, oldest first",
                              description="List a config agent's open conversations.",
                              parents=[common])
    p.set_defaults(func=cmd_conversations_list)
    p.add_argument("agent", help="the agent")
    p = conv_verbs.add_parser("end", help="end one conversation (frees its slot and history)",
                              description="End a conversation: its slot, history and version "
                                          "pin are released; exit 1 if it was not open.",
                              parents=[common])
    p.set_defaults(func=cmd_conversations_end)
    p.add_argument("agent", help="the agent")
    p.add_argument("conversation_id", metavar="ID", help="the conversation id")

    node = groups.add_parser("node", help="inspect or stop the node",
                             description="Inspect or stop the node.")
    node_verbs = node.add_subparsers(dest="verb", metavar="VERB", parser_class=_Parser)
    node_verbs.required = True
    p = node_verbs.add_parser("status", help="version, endpoints, uptime, agents",
                              description="Show the node's status.", parents=[common])
    p.set_defaults(func=cmd_node_status)
    p = node_verbs.add_parser("shutdown", help="drain agents and stop the node",
                              description="Drain agents and stop the node.", parents=[common])
    p.add_argument("--drain-timeout", type=float, metavar="S", help="seconds to drain")
    p.set_defaults(func=cmd_node_shutdown)

    keys = groups.add_parser("keys", help="CURVE keys for the control port",
                             description="Manage CURVE keys.")
    key_verbs = keys.add_subparsers(dest="verb", metavar="VERB", parser_class=_Parser)
    key_verbs.required = True
    p = key_verbs.add_parser("generate", help="generate a CURVE key pair",
                             description="Generate a CURVE key pair (NAME.key public, "
                                         "NAME.key_secret secret).",
                             parents=[_common(json_only=True)])
    p.add_argument("--dir", default=os.path.join(".caxton", "keys"),
                   help="where to write (default .caxton/keys)")
    p.add_argument("--name", default="client", help="base name (default client)")
    p.set_defaults(func=cmd_keys_generate)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``caxton`` console script.

    Args:
        argv: Arguments (default ``sys.argv[1:]``).

    Returns:
        The exit code: 0 ok, 1 refused by the node, 2 usage, 3 node unreachable.
    """
    parser = build_parser()
    try:
        ns = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2)
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    err = Console(stderr=True, soft_wrap=True, highlight=False)
    ctx: Ctx | None = None
    try:
        ctx = Ctx(ns)
        return int(ns.func(ctx))
    except (UsageError, KeyFileError) as exc:
        err.print(f"caxton: error: {exc}", markup=False)
        return EXIT_USAGE
    except NodeUnreachable as exc:
        err.print(f"caxton: {exc}", markup=False)
        return EXIT_UNREACHABLE
    except CaxtonError as exc:
        assert ctx is not None
        return _refused(ctx, exc)
    except Refused as exc:
        err.print(f"caxton: {exc}", markup=False)
        return EXIT_REFUSED
    except KeyboardInterrupt:
        return 130
    finally:
        if ctx is not None and ctx._client is not None:
            ctx._client.close()


def _refused(ctx: Ctx, exc: CaxtonError) -> int:
    if ctx.json:
        ctx.print_json({"ok": False, "error": exc.to_dict()})
    else:
        ctx.err.print(f"caxton: refused: {exc.code}: {exc.message}", markup=False)
        for detail in exc.details:
            ctx.err.print(f"  - {_cell(detail)}", markup=False)
    return EXIT_REFUSED


__all__ = ["build_parser", "main", "read_agent_file"]

if __name__ == "__main__":  # ``python -m caxton.cli`` (same as the ``caxton`` script)
    raise SystemExit(main())
