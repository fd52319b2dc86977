"""Start (or connect to) a real Caxton node for the load harness and the reliability suite.

:class:`NodeProcess` runs ``python -m caxton`` as a subprocess on free loopback ports, with its
state in a temporary ``--data-dir`` and an empty ``--agents-dir`` (so no example agents load),
waits until ``node.status`` answers, and always cleans up: :meth:`stop` asks for
``node.shutdown``, then SIGTERM, then SIGKILL. :meth:`kill9` is the chaos tests' ``kill -9``;
:meth:`restart` starts the same node again on the same ports and data directory.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from caxton.control.client import ControlClient, NodeUnreachable
from caxton.errors import CaxtonError

REPO_ROOT = Path(__file__).resolve().parents[2]
NODE_CMD_ENV = "CAXTON_LOAD_NODE_CMD"
"""Overrides the command that starts a node (default ``<python> -m caxton``), e.g. with
``taskset -c 0`` in front to pin it to one core."""


def free_port() -> int:
    """Return a loopback TCP port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class NodeStartError(RuntimeError):
    """The node subprocess exited or did not answer ``node.status`` in time."""


class NodeProcess:
    """A ``python -m caxton`` subprocess on free loopback ports.

    Args:
        data_dir: State directory (default: a fresh temporary directory, removed on
            :meth:`cleanup` unless ``keep`` is set).
        agents_dir: Watched agents folder (default: an empty directory beside the data dir).
        node_cmd: The command that starts a node, as a list (default ``$CAXTON_LOAD_NODE_CMD``
            or ``python -m caxton``).
        extra_args: More node flags.
        keep: Keep the temporary directories after :meth:`cleanup`.
    """

    def __init__(self, data_dir: str | Path | None = None, agents_dir: str | Path | None = None,
                 *, node_cmd: list[str] | None = None, extra_args: list[str] | None = None,
                 keep: bool = False) -> None:
        self._tmp = Path(tempfile.mkdtemp(prefix="caxton-load-"))
        self.data_dir = Path(data_dir) if data_dir else self._tmp / "data"
        self.agents_dir = Path(agents_dir) if agents_dir else self._tmp / "agents"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.agents_dir.mkdir(parents=True, exist_ok=True)
        env_cmd = os.environ.get(NODE_CMD_ENV)
        self.node_cmd = node_cmd or (shlex.split(env_cmd) if env_cmd
                                     else [sys.executable, "-m", "caxton"])
        self.extra_args = list(extra_args or [])
        self.keep = keep
        self.control = f"tcp://127.0.0.1:{free_port()}"
        self.events = f"tcp://127.0.0.1:{free_port()}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self._tmp / "node.log"
        self._log: Any = None
        self.starts = 0

    @property
    def pid(self) -> int | None:
        """The node's process id while it runs."""
        return self.proc.pid if self.proc is not None else None

    def command(self) -> list[str]:
        """The full command line of the node."""
        return [*self.node_cmd, "--control", self.control, "--events", self.events,
                "--data-dir", str(self.data_dir), "--agents-dir", str(self.agents_dir),
                *self.extra_args]

    def start(self, timeout: float = 30.0) -> NodeProcess:
        """Start the node and wait until ``node.status`` answers.

        Args:
            timeout: Seconds to wait for the first answer.

        Returns:
            ``self``.

        Raises:
            NodeStartError: It exited or stayed silent (the message quotes its log's tail).
        """
        if self.proc is not None and self.proc.poll() is None:
            return self
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in cleanup
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT),
                                                        env.get("PYTHONPATH", "")) if p)
        self.proc = subprocess.Popen(self.command(), stdout=self._log, stderr=subprocess.STDOUT,
                                     cwd=str(self._tmp), env=env, start_new_session=True)
        self.starts += 1
        deadline = time.monotonic() + timeout
        with ControlClient(self.control, timeout=1.0) as client:
            while True:
                if self.proc.poll() is not None:
                    raise NodeStartError(f"the node exited with {self.proc.returncode}: "
                                         f"{self.log_tail()}")
                try:
                    client.call("node.status", {}, timeout=0.5)
                    return self
                except (NodeUnreachable, CaxtonError):
                    pass
                if time.monotonic() > deadline:
                    self.kill9()
                    raise NodeStartError(f"the node did not answer node.status within "
                                         f"{timeout:g} s: {self.log_tail()}")

    def log_tail(self, chars: int = 2000) -> str:
        """The end of the node's output (for failure messages)."""
        try:
            return self.log_path.read_bytes()[-chars:].decode("utf-8", "replace")
        except OSError:
            return "<no log>"

    def alive(self) -> bool:
        """Whether the subprocess is running."""
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        """``kill -9`` the node (no drain, no clean shutdown) and reap it."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=10)

    def restart(self, timeout: float = 60.0) -> NodeProcess:
        """Start the node again on the same ports and data directory."""
        self.kill9()
        return self.start(timeout)

    def stop(self, timeout: float = 10.0) -> int | None:
        """Stop the node: ``node.shutdown``, then SIGTERM, then SIGKILL.

        Returns:
            Its exit code (``None`` if it was not started).
        """
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                with ControlClient(self.control, timeout=2.0) as client:
                    client.call("node.shutdown", {}, timeout=2.0)
            except (NodeUnreachable, CaxtonError):
                pass
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self.kill9()
        return self.proc.returncode

    def cleanup(self) -> None:
        """Stop the node if running, close the log, remove the temporary directories."""
        try:
            self.stop()
        finally:
            if self.proc is not None and self.proc.poll() is None:
                self.kill9()
            if self._log is not None:
                self._log.close()
                self._log = None
            if not self.keep:
                shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> NodeProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


def node_rss_fds(pid: int) -> tuple[int, int]:
    """Resident set size (bytes) and open file descriptors of a process (psutil)."""
    import psutil

    proc = psutil.Process(pid)
    return int(proc.memory_info().rss), int(proc.num_fds())
