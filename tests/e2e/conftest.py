"""End-to-end fixtures: real ``python -m caxton`` nodes in temp dirs, driven by the CLI/client.

Every node runs as a subprocess on free loopback ports with its own data dir and agents dir
(the example agents copied from ``agents/``, top-level files only). Readiness is a bounded poll
of ``node.status``; every wait in these tests is bounded in time.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from caxton.control.client import ControlClient, NodeUnreachable
from caxton.control.keys import CurveClientConfig

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "agents"
TESTING = EXAMPLES / "testing"
READY_TIMEOUT = 30.0


def free_port() -> int:
    """A loopback TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("CAXTON_ENDPOINT", None)
    env["COLUMNS"] = "200"
    return env


class NodeProc:
    """A node subprocess.

    Args:
        root: Its working directory (holds ``data/`` and ``agents/``).
        extra: Extra command-line flags.
        control: Control endpoint (default: a free port).
        events: Events endpoint (default: a free port).
    """

    def __init__(self, root: Path, extra: tuple[str, ...] = (), *, control: str | None = None,
                 events: str | None = None) -> None:
        self.root = root
        self.data_dir = root / "data"
        self.agents_dir = root / "agents"
        self.control = control or f"tcp://127.0.0.1:{free_port()}"
        self.events = events or f"tcp://127.0.0.1:{free_port()}"
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs = 0

    @property
    def argv(self) -> list[str]:
        """The node's command line."""
        return [sys.executable, "-m", "caxton", "--control", self.control, "--events",
                self.events, "--data-dir", str(self.data_dir), "--agents-dir",
                str(self.agents_dir), "--drain-timeout", "10s", *self.extra]

    def start(self, *, wait: bool = True,
              curve: CurveClientConfig | None = None) -> NodeProc:
        """Start the process (and wait until ``node.status`` answers).

        Args:
            wait: Wait for readiness.
            curve: Client keys to probe readiness with (CURVE nodes).

        Returns:
            Itself.
        """
        self.runs += 1
        out = (self.root / f"node{self.runs}.out").open("wb")
        err = (self.root / f"node{self.runs}.err").open("wb")
        self.proc = subprocess.Popen(self.argv, cwd=self.root, stdout=out, stderr=err,
                                     env=_env())
        out.close()
        err.close()
        if wait:
            self.wait_ready(curve=curve)
        return self

    def stderr(self) -> str:
        """The current run's stderr."""
        return (self.root / f"node{self.runs}.err").read_text(errors="replace")

    def stdout(self) -> str:
        """The current run's stdout."""
        return (self.root / f"node{self.runs}.out").read_text(errors="replace")

    def wait_ready(self, timeout: float = READY_TIMEOUT,
                   curve: CurveClientConfig | None = None) -> dict[str, Any]:
        """Poll ``node.status`` until it answers.

        Returns:
            The status.
        """
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        with ControlClient(self.control, timeout=0.5, curve=curve) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise AssertionError(f"node exited with {self.proc.returncode}:\n"
                                         f"{self.stderr()[-3000:]}")
                try:
                    return dict(client.call("node.status"))
                except NodeUnreachable:
                    continue
        raise AssertionError(f"node not ready within {timeout}s:\n{self.stderr()[-3000:]}")

    def client(self, timeout: float = 10.0) -> ControlClient:
        """A new control client (close it, or use it as a context manager)."""
        return ControlClient(self.control, timeout=timeout)

    def call(self, op: str, args: dict[str, Any] | None = None, timeout: float = 15.0) -> Any:
        """One control call on a fresh client."""
        with self.client(timeout) as client:
            return client.call(op, args or {})

    def cli(self, *args: str, timeout: float = 30.0,
            endpoint: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``python -m caxton.cli [--endpoint E] ARGS``.

        Returns:
            The completed process (text output).
        """
        argv = [sys.executable, "-m", "caxton.cli"]
        if endpoint:
            argv += ["--endpoint", self.control]
        return subprocess.run([*argv, *args], cwd=self.root, capture_output=True, text=True,
                              timeout=timeout, env=_env(), check=False)

    def cli_json(self, *args: str) -> Any:
        """Run a CLI verb with ``--json`` and parse stdout (asserting exit 0)."""
        res = self.cli("--json", *args)
        assert res.returncode == 0, (res.returncode, res.stdout, res.stderr)
        return json.loads(res.stdout)

    def signal(self, sig: int) -> None:
        """Send a signal to the node."""
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait_exit(self, timeout: float = 30.0) -> int:
        """Wait for the process to exit.

        Returns:
            Its exit code.
        """
        assert self.proc is not None
        return self.proc.wait(timeout)

    def kill9(self) -> None:
        """``kill -9`` the node and reap it."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> None:
        """Stop the node if it still runs (SIGTERM, then SIGKILL after a bounded wait)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def make_root(root: Path) -> Path:
    """Create a node root with the example agents (top-level files only)."""
    agents = root / "agents"
    agents.mkdir(parents=True)
    for f in EXAMPLES.iterdir():
        if f.is_file():
            shutil.copy(f, agents / f.name)
    return root


@pytest.fixture
def node_factory(tmp_path: Path) -> Iterator[Callable[..., NodeProc]]:
    """Build nodes in ``tmp_path`` (each stopped at teardown)."""
    nodes: list[NodeProc] = []

    def make(*extra: str, name: str = "n", **kwargs: Any) -> NodeProc:
        node = NodeProc(make_root(tmp_path / f"{name}{len(nodes)}"), tuple(extra), **kwargs)
        nodes.append(node)
        return node

    yield make
    for node in nodes:
        node.stop()


@pytest.fixture(scope="module")
def shared_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProc]:
    """One running node shared by a module's tests (they use distinct agent names)."""
    node = NodeProc(make_root(tmp_path_factory.mktemp("shared")))
    node.start()
    yield node
    node.stop()


def agent_md(name: str, version: str = "1.0.0", extra: str = "") -> str:
    """A minimal valid config agent file (echo LLM)."""
    return (f"---\nname: {name}\nversion: \"{version}\"\ncapabilities: [echo]\ntools: []\n"
            f"llm: {{provider: echo}}\n{extra}user_prompt_template: \"{{{{ request }}}}\"\n---\n\n"
            f"Test agent {name} {version}.\n")


def states(node: NodeProc) -> dict[str, tuple[str, str]]:
    """``{name: (version, state)}`` of every agent, over the control port."""
    return {a["name"]: (a["version"], a["state"])
            for a in node.call("agents.list")["agents"]}


def wait_for(predicate: Callable[[], bool], timeout: float = 15.0,
             interval: float = 0.1) -> bool:
    """Poll ``predicate`` until true or ``timeout`` passes.

    Returns:
        Whether it became true.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


class Helpers:
    """Helpers handed to tests as the ``h`` fixture (test modules cannot import conftest
    under ``--import-mode=importlib``)."""

    TESTING = TESTING
    EXAMPLES = EXAMPLES
    NodeProc = NodeProc
    agent_md = staticmethod(agent_md)
    states = staticmethod(states)
    wait_for = staticmethod(wait_for)
    free_port = staticmethod(free_port)
    make_root = staticmethod(make_root)


@pytest.fixture
def h() -> type[Helpers]:
    """The e2e helpers."""
    return Helpers


@pytest.fixture(scope="module")
def module_node_factory(tmp_path_factory: pytest.TempPathFactory
                        ) -> Iterator[Callable[..., NodeProc]]:
    """Build nodes shared by one module's tests (each stopped when the module ends)."""
    nodes: list[NodeProc] = []

    def make(*extra: str, name: str = "m", **kwargs: Any) -> NodeProc:
        node = NodeProc(make_root(tmp_path_factory.mktemp(name)), tuple(extra), **kwargs)
        nodes.append(node)
        return node

    yield make
    for node in nodes:
        node.stop()
