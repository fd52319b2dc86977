"""Watch mode of the node (``python -m caxton --watch``): reload agents whose files change.

A thread polls the agents dir's top-level agent files (mtime and size), waits until a changed
file has been quiet for the debounce time, validates it, and applies it: a reload of the agent
the file defines (its configured strategy: immediate), or a deploy for a new file. An invalid
edit is logged (and so published on the event stream) and the running version keeps serving.
Deleting a file does not remove its agent (removal is explicit: ``caxton agents remove``).

Defaults: poll every 50 ms, apply once a file has been quiet for 100 ms since its last write
(its mtime; the thread wakes at that moment rather than at the next poll), so a saved file is
served by its new version about 110 ms later (``tests/e2e/test_node_review.py`` measures it through a real node). Polling a
directory is one ``scandir`` plus a ``stat`` per agent file: ~0.1 ms for 100 files, well under
1 % of a core at 20 polls a second.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from caxton import errors

if TYPE_CHECKING:
    from caxton.node import Node

_log = structlog.get_logger("caxton.watch")

Signature = tuple[int, int]

DEFAULT_INTERVAL = 0.05
"""Seconds between polls of the agents dir."""

DEFAULT_DEBOUNCE = 0.1
"""Seconds a changed file must stay unchanged before it is applied."""


def scan(directory: Path, suffixes: tuple[str, ...],
         paths: dict[str, Path] | None = None) -> dict[Path, Signature]:
    """Return ``{file: (mtime_ns, size)}`` of the directory's top-level agent files.

    It runs at every poll, so it does one ``scandir`` and one ``stat`` per agent file (the
    entry's type comes from the directory listing) and reuses ``Path`` objects.

    Args:
        directory: The agents dir.
        suffixes: Lower-case suffixes to include (``.md``, ``.wasm``, ``.wat``).
        paths: A cache of file name -> ``Path`` kept by the caller between polls.

    Returns:
        The signatures (files that vanish while scanning are left out).
    """
    out: dict[Path, Signature] = {}
    if paths is None:
        paths = {}
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                name = entry.name
                dot = name.rfind(".")
                if dot <= 0 or name[dot:].lower() not in suffixes:
                    continue
                try:
                    if not entry.is_file():
                        continue
                    st = entry.stat()
                except OSError:
                    continue
                path = paths.get(name)
                if path is None:
                    if len(paths) > 10_000:  # bounded: a dir with endless new names
                        paths.clear()
                    path = paths[name] = directory / name
                out[path] = (st.st_mtime_ns, st.st_size)
    except OSError:
        return out
    return out


def quiet_for(sig: Signature, wall: float, debounce: float) -> float:
    """Seconds a file has been unchanged, from its mtime: clamped to ``[0, debounce]`` so a
    clock skew or a preserved old mtime (``cp -p``) never makes it count as quieter than one
    debounce.

    Args:
        sig: The file's ``(mtime_ns, size)``.
        wall: Wall-clock now, in seconds.
        debounce: The debounce time.

    Returns:
        The quiet time to credit.
    """
    return min(max(0.0, wall - sig[0] / 1e9), debounce)


class AgentsDirWatcher:
    """Polls a directory and applies changed agent files to a node.

    Args:
        node: The node (its manager deploys and reloads).
        directory: The agents dir.
        debounce: Seconds a file must stay unchanged before it is applied.
        interval: Polling interval in seconds.
    """

    def __init__(self, node: Node, directory: Path, *, debounce: float = DEFAULT_DEBOUNCE,
                 interval: float = DEFAULT_INTERVAL) -> None:
        from caxton.naming import AGENT_SUFFIXES

        self.node = node
        self.directory = directory
        self.debounce = max(0.0, debounce)
        self.interval = max(0.01, interval)
        self._suffixes = AGENT_SUFFIXES
        self._paths: dict[str, Path] = {}
        self._known = scan(directory, self._suffixes, self._paths)
        self._changed: dict[Path, float] = {}
        self._names: dict[Path, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="caxton-watch", daemon=True)
        self.applied = 0
        """Changes applied successfully."""
        self.refused = 0
        """Changes refused (invalid edits; the running version kept serving)."""

    def start(self) -> None:
        """Start polling."""
        self._thread.start()
        _log.info("watch.started", directory=str(self.directory), debounce=self.debounce)

    def stop(self) -> None:
        """Stop polling (waits for a change being applied)."""
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(10)

    def _run(self) -> None:
        wait = self.interval
        while not self._stop.wait(wait):
            try:
                self.poll(time.monotonic())
            except Exception as exc:  # the watcher must survive anything a file does
                _log.error("watch.poll_failed", reason=repr(exc))
            wait = self.next_wait(time.monotonic())

    def next_wait(self, now: float) -> float:
        """Seconds until the next poll: the interval, or less when a pending change becomes
        due sooner (so it is applied when its debounce ends, not up to a poll later).

        Args:
            now: The monotonic time.

        Returns:
            The wait, at least 1 ms.
        """
        wait = self.interval
        for since in list(self._changed.values()):
            wait = min(wait, since + self.debounce - now)
        return max(0.001, wait)

    def poll(self, now: float, wall: float | None = None) -> None:
        """One polling round: note changes, apply those quiet for the debounce time.

        A file counts as quiet since its last write (its mtime), not since the poll that saw
        it, so the polling interval does not add to the debounce.

        Args:
            now: The monotonic time.
            wall: The wall-clock time mtimes are compared with (default ``time.time()``).
        """
        wall = time.time() if wall is None else wall
        current = scan(self.directory, self._suffixes, self._paths)
        for path, sig in current.items():
            if self._known.get(path) != sig:
                self._known[path] = sig
                self._changed[path] = now - quiet_for(sig, wall, self.debounce)
        for path in [p for p in self._known if p not in current]:
            del self._known[path]
            self._changed.pop(path, None)
            _log.info("watch.file_deleted", file=str(path),
                      note="its agent keeps running; remove it with `caxton agents remove`")
        for path, since in list(self._changed.items()):
            if now - since < self.debounce or self._stop.is_set():
                continue
            del self._changed[path]
            self.apply(path)

    def apply(self, path: Path) -> bool:
        """Validate and apply one changed file.

        Args:
            path: The file.

        Returns:
            Whether the change was applied.
        """
        node = self.node
        manager = node.manager
        name: str | None = None
        try:
            if path.suffix.lower() == ".md":
                text = path.read_text(encoding="utf-8")
                parsed = manager.validate(text, source=str(path))
                name = parsed.report.agent_name or self._names.get(path)
                if not parsed.ok:
                    raise parsed.report.to_error()
                name = parsed.unwrap().name
                if name in manager.agent_names():
                    result = manager.reload(name, text, strategy="immediate")
                    verdict = "reloaded"
                else:
                    result = manager.deploy_config_agent(path)
                    verdict = "deployed"
            else:
                name = node.wasm_name_for(path)
                module = path.read_bytes()
                if name in manager.agent_names():
                    result = manager.reload_wasm(name, module, strategy="immediate")
                    verdict = "reloaded"
                else:
                    from caxton.deployment import DeploymentConfig

                    result = manager.deploy_wasm_agent(None, name, "v1", 1, DeploymentConfig(),
                                                       module)
                    verdict = "deployed"
        except errors.CaxtonError as exc:
            self.refused += 1
            _log.error("watch.change_refused", agent=name, file=str(path), code=str(exc.code),
                       reason=exc.message,
                       note="the running version keeps serving" if name else None)
            if name and node.publisher is not None:
                node.publisher.publish_agent(name, "rollout", kind="watch.refused",
                                             file=str(path), code=str(exc.code),
                                             reason=exc.message)
            return False
        except (OSError, UnicodeDecodeError) as exc:
            self.refused += 1
            _log.error("watch.change_unreadable", file=str(path), reason=str(exc))
            return False
        self.applied += 1
        self._names[path] = result.agent
        node._versions[result.agent] = result.version or ""
        _log.info(f"watch.{verdict}", agent=result.agent, version=result.version,
                  file=str(path))
        return True


__all__ = ["DEFAULT_DEBOUNCE", "DEFAULT_INTERVAL", "AgentsDirWatcher", "quiet_for", "scan"]
