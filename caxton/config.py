"""The node configuration (``caxton.yaml``): typed models with embedded defaults, and its loader.

Precedence: command-line flags override the file, the file overrides the defaults embedded here.
Every value is validated once, here; a bad file produces one :class:`ConfigError` listing every
problem with its file, line, key path and a fix, e.g.::

    invalid node configuration (2 problems):
      caxton.yaml:3:1: drain_timout: unknown key; did you mean 'drain_timeout'?
      caxton.yaml:7:12: curve.authorized_keys_dir: value is required when
        server_secret_key_file is set; fix: point it at the directory of client public keys ...

Relative paths written in the file are resolved against the file's directory; relative paths
from defaults and flags are resolved against the working directory (as an operator expects of a
command line).
"""

from __future__ import annotations

import difflib
import ipaddress
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    ValidationError,
    field_validator,
    model_validator,
)

from caxton.errors import InvalidArgument
from caxton.llm.config import LLMConfig
from caxton.units import (
    DURATION_FORMS,
    SIZE_FORMS,
    ByteSize,
    Duration,
    format_duration,
    format_size,
    parse_duration,
    parse_size,
)

DEFAULT_CONTROL = "tcp://127.0.0.1:7460"
DEFAULT_EVENTS = "tcp://127.0.0.1:7461"

# Durations and sizes use the same notation as agent files ("10s", "4MiB"); they stay
# ``Duration``/``ByteSize`` (float/int subclasses) and dump back in that notation.
DurationValue = Annotated[
    float, PlainValidator(parse_duration), PlainSerializer(format_duration, when_used="json")
]
SizeValue = Annotated[
    int, PlainValidator(parse_size), PlainSerializer(format_size, when_used="json")
]


class ConfigError(InvalidArgument):
    """The node configuration (file or flags) is invalid; ``details`` has one entry per problem.

    Each detail is a map with ``file``, ``line``, ``column`` (``None`` when the value came from a
    flag or a default), ``key`` (dotted path), ``problem`` and ``fix``.
    """


def _endpoint(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a ZeroMQ endpoint string")
    text = value.strip()
    scheme, sep, rest = text.partition("://")
    if not sep or scheme not in ("tcp", "ipc", "inproc"):
        raise ValueError(f"{text!r} is not a ZeroMQ endpoint (tcp://HOST:PORT, ipc://PATH)")
    if scheme == "tcp":
        host, colon, port = rest.rpartition(":")
        if not colon or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"{text!r} needs a host and a port 0-65535, e.g. {DEFAULT_CONTROL}")
    elif not rest:
        raise ValueError(f"{text!r} has an empty {scheme} address")
    return text


Endpoint = Annotated[str, BeforeValidator(_endpoint)]


def is_loopback_endpoint(endpoint: str) -> bool:
    """Tell whether a ZeroMQ endpoint is reachable only from this machine.

    Args:
        endpoint: ``tcp://HOST:PORT``, ``ipc://PATH`` or ``inproc://NAME``.

    Returns:
        ``True`` for ipc/inproc and for tcp on ``localhost``, 127.0.0.0/8 or ``::1``;
        ``False`` for wildcards (``*``, ``0.0.0.0``), other addresses and interface names.
    """
    scheme, _, rest = endpoint.partition("://")
    if scheme in ("ipc", "inproc"):
        return True
    host = rest.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class WatchConfig(BaseModel):
    """Watch mode: reload agents when their files in the agents dir change.

    Attributes:
        enabled: Watch the agents dir (``--watch``).
        debounce: Quiet time after the last change before a file is re-read (default
            100 ms; the watcher polls every 50 ms, see :mod:`caxton.watch`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    debounce: DurationValue = Field(default=Duration(0.1))


class HttpClientConfig(BaseModel):
    """Settings of the built-in ``http_client`` tool.

    Attributes:
        allowed_hosts: Host names (or ``*.suffix`` patterns) agents may call; empty allows none.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    allowed_hosts: tuple[str, ...] = ()


class TenantConfig(BaseModel):
    """The worker processes that run config agents' templates and CPU-bound tools.

    Attributes:
        workers: Worker processes (each runs one call at a time).
        memory_limit: Address-space cap of each worker; a call past it fails with
            ``RESOURCE_EXHAUSTED`` and costs only its worker.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    workers: Annotated[int, Field(ge=1, le=64)] = 2
    memory_limit: SizeValue = Field(default=ByteSize(512 * 1024 * 1024))


class CurveConfig(BaseModel):
    """CurveZMQ security of the control port.

    Attributes:
        server_secret_key_file: The node's secret key file (``caxton keys generate``).
        authorized_keys_dir: Directory of allow-listed client public key files.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    server_secret_key_file: Path | None = None
    authorized_keys_dir: Path | None = None

    @field_validator("server_secret_key_file")
    @classmethod
    def _key_file_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"secret key file {value} does not exist")
        return value

    @field_validator("authorized_keys_dir")
    @classmethod
    def _keys_dir_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_dir():
            raise ValueError(f"authorized keys directory {value} does not exist")
        return value

    @property
    def enabled(self) -> bool:
        """Whether CURVE is configured."""
        return self.server_secret_key_file is not None

    @model_validator(mode="after")
    def _both_or_neither(self) -> CurveConfig:
        if self.server_secret_key_file is not None and self.authorized_keys_dir is None:
            raise ValueError(
                "authorized_keys_dir is required when server_secret_key_file is set "
                "(without an allow-list any client key would be accepted)"
            )
        if self.authorized_keys_dir is not None and self.server_secret_key_file is None:
            raise ValueError("server_secret_key_file is required when authorized_keys_dir is set")
        return self


class LogConfig(BaseModel):
    """Logging settings (applied by :func:`caxton.logging.configure_logging`).

    Attributes:
        level: Lowest level recorded.
        format: Console format: ``console`` (human-readable) or ``json`` (one JSON object a line).
        console: Write records to stderr.
        json_file: Write JSON lines to ``<data_dir>/logs/caxton.jsonl``.
        ring_size: Records kept in memory per agent for ``caxton agents logs``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    level: Literal["debug", "info", "warning", "error", "critical"] = "info"
    format: Literal["console", "json"] = "console"
    console: bool = True
    json_file: bool = True
    ring_size: int = Field(default=1000, ge=1, le=1_000_000)

    @field_validator("level", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.strip().lower()
            return "warning" if value == "warn" else value
        return value


def _host_port(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = f"127.0.0.1:{value}"
    if not isinstance(value, str):
        raise ValueError("must be HOST:PORT, e.g. 127.0.0.1:9464")
    host, colon, port = value.strip().rpartition(":")
    if not colon or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{value!r} is not HOST:PORT, e.g. 127.0.0.1:9464")
    return f"{host}:{port}"


class NodeConfig(BaseModel):
    """The whole node configuration, every field with an embedded default.

    Attributes:
        control: ZeroMQ endpoint of the control port (ROUTER).
        events: ZeroMQ endpoint of the event stream (PUB).
        data_dir: Where node state, memory and logs live.
        agents_dir: Agents loaded at start (only if the directory exists).
        watch: Watch mode settings.
        llm: The default LLM provider for agents that do not name one.
        http_client: Settings of the built-in ``http_client`` tool.
        tenant: The worker processes for config agents' templates and CPU tools.
        drain_timeout: How long shutdown waits for agents to drain.
        metrics: ``HOST:PORT`` of the Prometheus endpoint, or ``None`` for no endpoint.
        curve: CurveZMQ settings of the control port.
        insecure: Allow binding a non-loopback address without CURVE.
        log: Logging settings.
        max_frame_size: Largest control frame accepted (ZeroMQ ``MAXMSGSIZE``).
        suspended_queue_bound: Messages held per suspended agent before ``AGENT_SUSPENDED``.
        cpus: CPUs the node pins itself to (``None``: all).
        gil_cpu: The one CPU the node's Python threads share (ZeroMQ's are freed): ``auto``
            (the first CPU the node may use, when it may use more than one), a CPU number,
            or ``off``. The GIL runs one Python thread at a time anyway; on one CPU a
            thread hand-off is a switch on that CPU, not a wake-up of another CPU, and
            ZeroMQ's I/O threads keep the other CPUs. ``off`` suits WASM agents whose long
            guest calls should run in parallel on several cores.
        control_batch: Most requests the saturated control port reads per turn before it
            runs their work and sends the replies. An idle port answers each request before
            reading the next; it batches only after 64 requests in a row found the next one
            queued, and is eager again once the queue empties. ``1`` never batches: less
            throughput under load.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    control: Endpoint = DEFAULT_CONTROL
    events: Endpoint = DEFAULT_EVENTS
    data_dir: Path = Path(".caxton")
    agents_dir: Path = Path("agents")
    watch: WatchConfig = Field(default_factory=WatchConfig)
    llm: LLMConfig = Field(default_factory=LLMConfig)
    http_client: HttpClientConfig = Field(default_factory=HttpClientConfig)
    tenant: TenantConfig = Field(default_factory=TenantConfig)
    drain_timeout: DurationValue = Field(default=Duration(10.0))
    metrics: Annotated[str | None, BeforeValidator(_host_port)] = None
    curve: CurveConfig = Field(default_factory=CurveConfig)
    insecure: bool = False
    log: LogConfig = Field(default_factory=LogConfig)
    max_frame_size: SizeValue = Field(default=ByteSize(4 * 1024 * 1024))
    suspended_queue_bound: int = Field(default=1000, ge=0, le=10_000_000)
    cpus: tuple[Annotated[int, Field(ge=0)], ...] | None = None
    control_batch: int = Field(default=16, ge=1, le=1024)
    gil_cpu: Literal["auto", "off"] | Annotated[int, Field(ge=0)] = "auto"

    @field_validator("gil_cpu", mode="before")
    @classmethod
    def _gil_cpu(cls, value: object) -> object:
        # the flag gives a string; ``gil_cpu: 1`` in YAML gives an int
        if isinstance(value, bool):
            raise ValueError("must be auto, off or a CPU number like 0 (not a boolean)")
        if isinstance(value, str) and value.strip().isdigit():
            return int(value)
        if isinstance(value, str) and value.strip() not in ("auto", "off"):
            raise ValueError("must be auto, off or a CPU number like 0")
        return value.strip() if isinstance(value, str) else value

    @field_validator("cpus", mode="before")
    @classmethod
    def _cpu_list(cls, value: object) -> object:
        # ``cpus: "0,1"`` (and the --cpus flag) as well as a YAML list.
        if isinstance(value, str):
            try:
                return tuple(int(part) for part in value.split(",") if part.strip())
            except ValueError:
                raise ValueError("must be CPU numbers like 0 or 0,1") from None
        return value

    @field_validator("watch", mode="before")
    @classmethod
    def _watch_shorthand(cls, value: object) -> object:
        # ``watch: true`` (and the --watch flag) mean "watch with the default debounce".
        return {"enabled": value} if isinstance(value, bool) else value

    @field_validator("max_frame_size")
    @classmethod
    def _frame_floor(cls, value: int) -> int:
        if value < 1024:
            raise ValueError("must be at least 1KiB (a deploy request carries a whole file)")
        return value

    @model_validator(mode="after")
    def _exposure(self) -> NodeConfig:
        if self.insecure or self.curve.enabled:
            return self
        for key in ("control", "events"):
            endpoint = getattr(self, key)
            if not is_loopback_endpoint(endpoint):
                raise _Exposed(key, endpoint)
        return self

    @property
    def metrics_address(self) -> tuple[str, int] | None:
        """The metrics endpoint as ``(host, port)``, or ``None`` when disabled."""
        if self.metrics is None:
            return None
        host, _, port = self.metrics.rpartition(":")
        return host.strip("[]"), int(port)

    @property
    def log_dir(self) -> Path:
        """Directory of the JSON log files."""
        return self.data_dir / "logs"

    @property
    def state_path(self) -> Path:
        """The node state database."""
        return self.data_dir / "node.db"


class _Exposed(ValueError):
    """Raised by the exposure rule so the loader can report it against the endpoint's key."""

    def __init__(self, key: str, endpoint: str) -> None:
        super().__init__(
            f"{endpoint} is reachable from other machines and CURVE is not configured"
        )
        self.key = key
        self.endpoint = endpoint


def default_config_yaml() -> str:
    """Render the embedded defaults as a commented-free ``caxton.yaml`` an operator can edit.

    Returns:
        YAML text that :func:`load_node_config` reads back into the defaults.
    """
    data = NodeConfig().model_dump(mode="json")
    return yaml.safe_dump(data, sort_keys=False)


# -- loading ------------------------------------------------------------------------------

_PATH_KEYS: tuple[tuple[str, ...], ...] = (
    ("data_dir",),
    ("agents_dir",),
    ("curve", "server_secret_key_file"),
    ("curve", "authorized_keys_dir"),
)

_FIXES: dict[str, str] = {
    "control": f"use tcp://HOST:PORT (default {DEFAULT_CONTROL}) or ipc://PATH",
    "events": f"use tcp://HOST:PORT (default {DEFAULT_EVENTS}) or ipc://PATH",
    "data_dir": "give a directory path, e.g. ./.caxton",
    "agents_dir": "give a directory path, e.g. ./agents",
    "watch": "use a map with enabled (true/false) and debounce (e.g. 300ms)",
    "watch.enabled": "use true or false",
    "watch.debounce": f"use {DURATION_FORMS}",
    "drain_timeout": f"use {DURATION_FORMS}",
    "metrics": "use HOST:PORT such as 127.0.0.1:9464, or null to disable the endpoint",
    "insecure": "use true or false",
    "max_frame_size": f"use {SIZE_FORMS}",
    "suspended_queue_bound": "use a whole number of messages, e.g. 1000",
    "log.level": "use one of debug, info, warning, error, critical",
    "log.format": "use console or json",
    "http_client.allowed_hosts": "use a list of host names, e.g. [api.example.com]",
    "curve.server_secret_key_file": (
        "create the key pair with `caxton keys generate` and point this at the secret key file"
    ),
    "curve.authorized_keys_dir": (
        "point this at a directory holding the allow-listed clients' public key files"
    ),
    "curve": (
        "set both server_secret_key_file and authorized_keys_dir (create them with "
        "`caxton keys generate`), or neither"
    ),
    "llm.provider": "use echo (offline) or openai (any OpenAI-compatible endpoint)",
}


def _fix_for(key: str, problem_type: str) -> str:
    if key in _FIXES:
        return _FIXES[key]
    parent = key.rpartition(".")[0]
    if problem_type in ("bool_type", "bool_parsing"):
        return "use true or false"
    if problem_type.startswith(("int_", "float_", "greater", "less")):
        return "use a number in the allowed range"
    if problem_type == "missing":
        return "add the key"
    if parent in _FIXES:
        return _FIXES[parent]
    by_type = {
        "string_type": "use a string",
        "list_type": "use a list",
        "tuple_type": "use a list",
        "model_type": "use a map of settings",
        "dict_type": "use a map",
        "literal_error": "use one of the listed values",
    }
    return by_type.get(problem_type, "correct the value (see the defaults: default_config_yaml())")


def _model_at(path: tuple[str | int, ...]) -> type[BaseModel] | None:
    """Return the pydantic model class that holds the keys at ``path`` (for did-you-mean)."""
    model: type[BaseModel] = NodeConfig
    for part in path:
        info = model.model_fields.get(str(part))
        annotation = info.annotation if info is not None else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model


_MAX_DEPTH = 16


class _Refused(Exception):
    """A YAML construct the node configuration does not allow (aliases, deep nesting)."""

    def __init__(self, problem: str, fix: str, mark: Any) -> None:
        super().__init__(problem)
        self.problem = problem
        self.fix = fix
        self.line = mark.line + 1
        self.column = mark.column + 1


class _Positions:
    """Line/column (1-based) of every key path in a YAML document.

    Walking the composed node graph before constructing values also refuses YAML aliases
    (``&x`` / ``*x``: alias graphs can be cyclic or exponentially large) and nesting deeper than
    :data:`_MAX_DEPTH`, like agent files.
    """

    def __init__(self, text: str) -> None:
        self.where: dict[tuple[str | int, ...], tuple[int, int]] = {}
        self._seen: set[int] = set()
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        if node is not None:
            self._walk(node, (), node.start_mark)

    def _walk(self, node: yaml.Node, path: tuple[str | int, ...], ref: Any) -> None:
        # ``ref``: where the node is referenced (an alias shares its anchor's marks).
        if id(node) in self._seen:
            raise _Refused(
                "a YAML alias (*name) repeats an anchor; aliases are not allowed",
                "write the value out in full instead of &name / *name", ref,
            )
        self._seen.add(id(node))
        if len(path) > _MAX_DEPTH:
            raise _Refused(
                f"nested more than {_MAX_DEPTH} levels deep",
                "the node configuration needs at most a few levels", node.start_mark,
            )
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                key = str(key_node.value)
                sub = (*path, key)
                self.where[sub] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
                self._walk(value_node, sub, key_node.start_mark)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                sub = (*path, i)
                self.where[sub] = (item.start_mark.line + 1, item.start_mark.column + 1)
                self._walk(item, sub, node.start_mark)

    def find(self, path: tuple[str | int, ...]) -> tuple[int, int] | None:
        """Return the position of ``path`` or of its nearest recorded ancestor."""
        while path:
            if path in self.where:
                return self.where[path]
            path = path[:-1]
        return None


def _nest(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Turn ``{"log.level": "debug", "curve": {...}}`` into nested maps, dropping ``None``."""
    out: dict[str, Any] = {}
    for key, value in overrides.items():
        if value is None:
            continue
        parts = key.replace("-", "_").split(".")
        cur = out
        for part in parts[:-1]:
            nxt = cur.setdefault(part, {})
            if not isinstance(nxt, dict):
                nxt = cur[part] = {}
            cur = nxt
        cur[parts[-1]] = value
    return out


def _merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(dict(out[key]), value)
        else:
            out[key] = value
    return out


def _has(data: Mapping[str, Any], path: tuple[str | int, ...]) -> bool:
    cur: Any = data
    for part in path:
        if not isinstance(cur, Mapping) or part not in cur:
            return False
        cur = cur[part]
    return True


def _flag(path: tuple[str | int, ...]) -> str:
    return "--" + "-".join(str(p) for p in path).replace("_", "-")


def _resolve_paths(data: dict[str, Any], base: Path) -> None:
    for path in _PATH_KEYS:
        cur: Any = data
        for part in path[:-1]:
            cur = cur.get(part) if isinstance(cur, dict) else None
        if isinstance(cur, dict) and isinstance(cur.get(path[-1]), str):
            p = Path(cur[path[-1]]).expanduser()
            cur[path[-1]] = str(p if p.is_absolute() else base / p)


def _format(problems: list[dict[str, Any]]) -> str:
    n = len(problems)
    lines = [f"invalid node configuration ({n} problem{'s' if n != 1 else ''}):"]
    for p in problems:
        if p["file"] is not None and p["line"] is not None:
            where = f"{p['file']}:{p['line']}:{p['column']}: "
        elif p["file"] is not None:
            where = f"{p['file']}: "
        else:
            where = f"{p['source']}: " if p.get("source") else ""
        key = f"{p['key']}: " if p["key"] else ""
        lines.append(f"  {where}{key}{p['problem']}; fix: {p['fix']}")
    return "\n".join(lines)


def load_node_config(
    path: str | Path | None = None, overrides: Mapping[str, Any] | None = None
) -> NodeConfig:
    """Load the node configuration: defaults, then the file, then the flags.

    Args:
        path: ``caxton.yaml`` to read, or ``None`` for defaults and flags only.
        overrides: Flag values by key, nested (``{"log": {"level": "debug"}}``) or dotted
            (``{"log.level": "debug"}``); ``None`` values are ignored so unset flags do not
            override the file.

    Returns:
        The validated configuration.

    Raises:
        ConfigError: The file is missing, unreadable, not YAML, not a map, or any value is
            invalid; the message lists every problem with file, line, key and fix.
    """
    file_label: str | None = None
    file_data: dict[str, Any] = {}
    positions: _Positions | None = None
    if path is not None:
        file_path = Path(path)
        file_label = str(file_path)
        try:
            text = file_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise _single(file_label, "file not found", "check the --config path") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise _single(file_label, f"cannot read the file: {exc}", "check the file") from exc
        try:
            positions = _Positions(text)
            loaded = yaml.safe_load(text)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark
            line = mark.line + 1 if mark is not None else None
            column = mark.column + 1 if mark is not None else None
            problem = f"YAML syntax error: {exc.problem or exc}"
            if exc.context and exc.context_mark is not None:
                cm = exc.context_mark
                problem += f" ({exc.context} at line {cm.line + 1}, column {cm.column + 1})"
            raise ConfigError(
                _format([{"file": file_label, "line": line, "column": column, "key": "",
                          "problem": problem, "fix": "correct the YAML at that position"}]),
                details=[{"file": file_label, "line": line, "column": column, "key": "",
                          "problem": problem, "fix": "correct the YAML at that position"}],
            ) from exc
        except _Refused as exc:
            detail = {"file": file_label, "line": exc.line, "column": exc.column, "key": "",
                      "problem": exc.problem, "fix": exc.fix}
            raise ConfigError(_format([detail]), details=[detail]) from None
        except RecursionError:
            raise _single(file_label, "the YAML is nested too deeply",
                          "the node configuration needs at most a few levels") from None
        except yaml.YAMLError as exc:
            raise _single(file_label, f"YAML error: {exc}", "correct the YAML") from exc
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise _single(
                file_label,
                f"the top level is a {type(loaded).__name__}, not a map of settings",
                "write settings as `key: value` lines, e.g. `control: tcp://127.0.0.1:7460`",
            )
        file_data = {str(k): v for k, v in loaded.items()}
        _resolve_paths(file_data, file_path.resolve().parent)
    flag_data = _nest(overrides or {})
    merged = _merge(file_data, flag_data)
    try:
        return NodeConfig.model_validate(merged)
    except ValidationError as exc:
        problems = [
            _problem(err, file_label, positions, file_data, flag_data) for err in exc.errors()
        ]
        problems.sort(key=lambda p: (p["file"] is None, p["line"] or 0, p["column"] or 0))
        raise ConfigError(_format(problems), details=problems) from None


def _single(file_label: str, problem: str, fix: str) -> ConfigError:
    detail = {"file": file_label, "line": None, "column": None, "key": "", "problem": problem,
              "fix": fix}
    return ConfigError(_format([detail]), details=[detail])


def _problem(
    err: Any,
    file_label: str | None,
    positions: _Positions | None,
    file_data: Mapping[str, Any],
    flag_data: Mapping[str, Any],
) -> dict[str, Any]:
    loc: tuple[str | int, ...] = tuple(err["loc"])
    etype: str = err["type"]
    ctx_error = (err.get("ctx") or {}).get("error")
    if isinstance(ctx_error, _Exposed):
        loc = (ctx_error.key,)
        problem = str(ctx_error)
        fix = (
            "bind a loopback address (tcp://127.0.0.1:PORT), or configure curve "
            "(`caxton keys generate`), or pass --insecure if the network is trusted"
        )
    elif etype == "extra_forbidden":
        name = str(loc[-1])
        model = _model_at(loc[:-1])
        known = sorted(model.model_fields) if model is not None else []
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        problem = "unknown key"
        if close:
            fix = f"did you mean {close[0]!r}?"
        else:
            fix = f"remove it; known keys here: {', '.join(known)}"
    else:
        msg = str(err["msg"])
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        for cut in ("; expected ", ": expected "):
            if cut in msg:  # the fix below says what is expected
                msg = msg.split(cut, 1)[0]
        msg = msg.replace("a valid tuple", "a list")
        got = err.get("input")
        quiet = etype == "missing" or isinstance(got, dict) or repr(got) in msg
        problem = msg if quiet else f"{msg} (got {got!r})"
        fix = _fix_for(".".join(str(p) for p in loc), etype)
    key = ".".join(str(p) for p in loc)
    detail: dict[str, Any] = {
        "file": None, "line": None, "column": None, "key": key, "problem": problem, "fix": fix,
        "source": "defaults",
    }
    if loc and _has(flag_data, loc[:1]) and (_has(flag_data, loc) or not _has(file_data, loc)):
        detail["source"] = f"flag {_flag(loc)}"
    elif file_label is not None and positions is not None and _has(file_data, loc[:1]):
        pos = positions.find(loc)
        detail["file"] = file_label
        detail["source"] = file_label
        if pos is not None:
            detail["line"], detail["column"] = pos
    return detail


__all__ = [
    "DEFAULT_CONTROL",
    "DEFAULT_EVENTS",
    "ConfigError",
    "CurveConfig",
    "HttpClientConfig",
    "LogConfig",
    "NodeConfig",
    "WatchConfig",
    "default_config_yaml",
    "is_loopback_endpoint",
    "load_node_config",
]
