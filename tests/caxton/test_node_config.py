"""Node configuration: defaults, precedence, path resolution and human-actionable errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from caxton.config import (
    ConfigError,
    NodeConfig,
    default_config_yaml,
    is_loopback_endpoint,
    load_node_config,
)
from caxton.errors import ErrorCode, InvalidArgument
from caxton.node import gil_cpu_for, pin_python_threads


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "caxton.yaml"
    p.write_text(text, encoding="utf-8")
    return p


def test_embedded_defaults() -> None:
    cfg = load_node_config()
    assert cfg.control == "tcp://127.0.0.1:7460"
    assert cfg.events == "tcp://127.0.0.1:7461"
    assert cfg.data_dir == Path(".caxton") and cfg.agents_dir == Path("agents")
    assert cfg.llm.provider == "echo"
    assert cfg.drain_timeout == 10.0
    assert cfg.metrics is None and cfg.metrics_address is None
    assert cfg.curve.enabled is False and cfg.insecure is False
    assert cfg.log.level == "info" and cfg.watch.enabled is False
    assert cfg.state_path == Path(".caxton/node.db")


def test_defaults_yaml_round_trips(tmp_path: Path) -> None:
    cfg = load_node_config(write(tmp_path, default_config_yaml()))
    # paths from the file are relative to the file
    assert cfg.data_dir == tmp_path / ".caxton"
    assert cfg.model_dump(exclude={"data_dir", "agents_dir"}) == NodeConfig().model_dump(
        exclude={"data_dir", "agents_dir"}
    )


def test_file_overrides_defaults_and_flags_override_file(tmp_path: Path) -> None:
    path = write(tmp_path, """
control: tcp://127.0.0.1:9000
drain_timeout: 2500ms
max_frame_size: 2MiB
metrics: 127.0.0.1:9464
log:
  level: WARN
  format: json
watch:
  enabled: true
  debounce: 50ms
llm:
  provider: openai
  model: llama3
http_client:
  allowed_hosts: [api.example.com]
data_dir: state
""")
    cfg = load_node_config(path, {"control": "tcp://127.0.0.1:9100", "log.level": "debug",
                                  "data_dir": None, "agents_dir": "/abs/agents"})
    assert cfg.control == "tcp://127.0.0.1:9100"  # flag wins
    assert cfg.log.level == "debug" and cfg.log.format == "json"  # nested merge keeps format
    assert cfg.drain_timeout == 2.5 and cfg.max_frame_size == 2 * 1024 * 1024
    assert cfg.metrics_address == ("127.0.0.1", 9464)
    assert cfg.watch.enabled and cfg.watch.debounce == pytest.approx(0.05)
    assert cfg.llm.provider == "openai" and cfg.llm.model == "llama3"
    assert cfg.http_client.allowed_hosts == ("api.example.com",)
    assert cfg.data_dir == tmp_path / "state"  # None flag does not override
    assert cfg.agents_dir == Path("/abs/agents")


def test_yaml_syntax_error_has_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "control: tcp://127.0.0.1:1\nlog:\n  level: [info\n")
    with pytest.raises(ConfigError) as info:
        load_node_config(path)
    err = info.value
    assert isinstance(err, InvalidArgument) and err.code == ErrorCode.INVALID_ARGUMENT
    (d,) = err.details
    assert d["file"] == str(path) and d["line"] == 4 and d["column"] == 1
    assert "YAML syntax error" in err.message and "line 3, column 10" in err.message


def test_every_problem_reported_with_line_key_and_fix(tmp_path: Path) -> None:
    path = write(tmp_path, """control: tcp://127.0.0.1:7460
drain_timout: 5s
log:
  levl: info
max_frame_size: 12XB
watch: {debounce: -1}
metrics: nope
""")
    with pytest.raises(ConfigError) as info:
        load_node_config(path)
    by_key = {d["key"]: d for d in info.value.details}
    assert set(by_key) == {"drain_timout", "log.levl", "max_frame_size", "watch.debounce",
                           "metrics"}
    assert by_key["drain_timout"]["line"] == 2 and "did you mean 'drain_timeout'" in by_key[
        "drain_timout"]["fix"]
    assert by_key["log.levl"]["line"] == 4 and by_key["log.levl"]["column"] == 3
    assert "did you mean 'level'" in by_key["log.levl"]["fix"]
    assert by_key["max_frame_size"]["line"] == 5 and "MiB" in by_key["max_frame_size"]["fix"]
    assert by_key["watch.debounce"]["line"] == 6 and "500ms" in by_key["watch.debounce"]["fix"]
    assert by_key["metrics"]["line"] == 7
    msg = info.value.message
    assert msg.startswith("invalid node configuration (5 problems):")
    assert f"{path}:2:1: drain_timout: unknown key; fix: did you mean 'drain_timeout'?" in msg


def test_unknown_key_without_close_match_lists_known(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_node_config(write(tmp_path, "watch:\n  zzzzzz: 1\n"))
    assert "known keys here: debounce, enabled" in info.value.details[0]["fix"]


def test_bad_flag_is_named_as_flag(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_node_config(None, {"suspended_queue_bound": -5, "drain_timeout": "soon"})
    sources = {d["key"]: d["source"] for d in info.value.details}
    assert sources == {"suspended_queue_bound": "flag --suspended-queue-bound",
                       "drain_timeout": "flag --drain-timeout"}
    assert all(d["line"] is None for d in info.value.details)


@pytest.mark.parametrize("text,problem", [
    ("- a\n- b\n", "not a map"),
    ("control: 5\n", "must be a ZeroMQ endpoint"),
    ("control: tcp://127.0.0.1:99999\n", "port 0-65535"),
    ("insecure: maybe\n", "valid boolean"),
    ("max_frame_size: 100\n", "at least 1KiB"),
])
def test_type_errors(tmp_path: Path, text: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        load_node_config(write(tmp_path, text))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_node_config(tmp_path / "nope.yaml")


def test_empty_file_is_defaults(tmp_path: Path) -> None:
    assert load_node_config(write(tmp_path, "# nothing\n")).control == "tcp://127.0.0.1:7460"


@pytest.mark.parametrize("endpoint,loopback", [
    ("tcp://127.0.0.1:1", True), ("tcp://127.3.2.1:1", True), ("tcp://localhost:1", True),
    ("tcp://[::1]:1", True), ("ipc:///tmp/x", True), ("inproc://x", True),
    ("tcp://0.0.0.0:1", False), ("tcp://*:1", False), ("tcp://10.0.0.5:1", False),
    ("tcp://eth0:1", False), ("tcp://[::]:1", False),
])
def test_loopback_detection(endpoint: str, loopback: bool) -> None:
    assert is_loopback_endpoint(endpoint) is loopback


def test_non_loopback_without_curve_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "\n\ncontrol: tcp://0.0.0.0:7460\n")
    with pytest.raises(ConfigError) as info:
        load_node_config(path)
    (d,) = info.value.details
    assert d["key"] == "control" and d["line"] == 3 and "--insecure" in d["fix"]
    with pytest.raises(ConfigError, match="events"):
        load_node_config(None, {"events": "tcp://*:7461"})
    assert load_node_config(path, {"insecure": True}).insecure is True


def test_curve_settings(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "server.key_secret").write_text("x")
    (keys / "clients").mkdir()
    path = write(tmp_path, """control: tcp://0.0.0.0:7460
curve:
  server_secret_key_file: keys/server.key_secret
  authorized_keys_dir: keys/clients
""")
    cfg = load_node_config(path)
    assert cfg.curve.enabled and cfg.curve.server_secret_key_file == keys / "server.key_secret"
    with pytest.raises(ConfigError, match="authorized_keys_dir is required"):
        load_node_config(write(tmp_path, "curve:\n  server_secret_key_file: keys/server.key_secret\n"))
    with pytest.raises(ConfigError) as info:
        load_node_config(write(tmp_path, "curve:\n  server_secret_key_file: missing.key\n"
                                         "  authorized_keys_dir: keys/clients\n"))
    (d,) = info.value.details
    assert d["key"] == "curve.server_secret_key_file" and d["line"] == 2
    assert "does not exist" in d["problem"] and "caxton keys generate" in d["fix"]


def test_config_is_frozen() -> None:
    cfg = NodeConfig()
    with pytest.raises(Exception, match="frozen"):
        cfg.control = "tcp://127.0.0.1:1"  # type: ignore[misc]
    # and it dumps to YAML the loader accepts
    assert yaml.safe_load(default_config_yaml())["drain_timeout"] == "10s"


def test_watch_shorthand(tmp_path: Path) -> None:
    assert load_node_config(write(tmp_path, "watch: true\n")).watch.enabled is True
    cfg = load_node_config(write(tmp_path, "watch: {debounce: 1s}\n"), {"watch": True})
    assert cfg.watch.enabled is True


_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(
    max_size=12)
_keys = st.sampled_from(["control", "events", "data_dir", "watch", "llm", "log", "level",
                         "curve", "metrics", "insecure", "max_frame_size", "drain_timeout",
                         "http_client", "allowed_hosts", "debounce", "enabled", "x"]) | st.text(
    max_size=6)
_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=3)
                       | st.dictionaries(_keys, inner, max_size=4), max_leaves=12)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=st.dictionaries(_keys, _values, max_size=6) | _values)
def test_any_yaml_gives_config_or_config_error(tmp_path: Path, doc: object) -> None:
    path = write(tmp_path, yaml.safe_dump(doc))
    try:
        cfg = load_node_config(path)
    except ConfigError as err:
        assert err.details and err.message.startswith("invalid node configuration")
        for d in err.details:
            assert d["problem"] and d["fix"]
    else:
        assert isinstance(cfg, NodeConfig)


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=80))
def test_any_text_gives_config_or_config_error(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    try:
        load_node_config(path)
    except ConfigError:
        pass


@pytest.mark.parametrize("text,line,problem", [
    ("log: &l {level: info}\nwatch: *l\n", 2, "aliases are not allowed"),
    ("a: &x [*x]\n", 1, "aliases are not allowed"),  # cyclic
    ("x:\n  - &a [1, 2]\n  - [*a, *a]\n", 3, "aliases are not allowed"),
    pytest.param("x: " + "[" * 40 + "]" * 40 + "\n", 1, "nested more than 16", id="deep-40"),
    pytest.param("x: " + "[" * 1000 + "]" * 1000 + "\n", None, "nested", id="deep-1000"),
])
def test_hostile_yaml_is_refused(tmp_path: Path, text: str, line: int | None,
                                 problem: str) -> None:
    with pytest.raises(ConfigError, match=problem) as info:
        load_node_config(write(tmp_path, text))
    if line is not None:
        assert info.value.details[0]["line"] == line


def test_gil_cpu_setting(tmp_path: Path) -> None:
    assert NodeConfig().gil_cpu == "auto"
    assert load_node_config(write(tmp_path, "gil_cpu: 1\n")).gil_cpu == 1
    assert load_node_config(None, {"gil_cpu": "0"}).gil_cpu == 0
    assert load_node_config(None, {"gil_cpu": "off"}).gil_cpu == "off"
    with pytest.raises(ConfigError, match="auto, off or a CPU number") as info:
        load_node_config(write(tmp_path, "gil_cpu: fast\n"))
    assert info.value.details[0]["key"] == "gil_cpu" and info.value.details[0]["line"] == 1
    with pytest.raises(ConfigError):
        load_node_config(None, {"gil_cpu": -1})
    with pytest.raises(ConfigError, match="not a boolean"):
        load_node_config(write(tmp_path, "gil_cpu: yes\n"))


def test_gil_cpu_resolution() -> None:
    allowed = sorted(os.sched_getaffinity(0))
    assert gil_cpu_for("off") is None
    assert gil_cpu_for("auto") == (allowed[0] if len(allowed) > 1 else None)
    assert gil_cpu_for(allowed[-1]) == allowed[-1]
    with pytest.raises(ConfigError, match="may only use CPUs"):
        gil_cpu_for(allowed[-1] + 64)


def test_a_pinning_the_kernel_refuses_leaves_the_node_unpinned_and_says_so() -> None:
    before = os.sched_getaffinity(0)
    with capture_logs() as logs:
        assert pin_python_threads(max(before) + 4096) is None
    assert os.sched_getaffinity(0) == before
    assert [e["event"] for e in logs] == ["node.gil_cpu_unavailable"]
    assert "--gil-cpu off" in logs[0]["fix"]
