"""The node's data directory is private: 0700, every file in it 0600 (memory holds message
text), also when it starts on an existing directory that other users can read."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any


def modes(root: Path) -> dict[str, int]:
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            path = Path(dirpath) / name
            out[str(path.relative_to(root))] = stat.S_IMODE(os.lstat(path).st_mode)
    out["."] = stat.S_IMODE(os.lstat(root).st_mode)
    return out


def test_every_file_the_node_writes_is_private(node_factory: Any, tmp_path: Path) -> None:
    node = node_factory()
    data = node.data_dir
    data.mkdir(parents=True, exist_ok=True)
    os.chmod(data, 0o755)
    (data / "notes.txt").write_text("left by someone")
    os.chmod(data / "notes.txt", 0o644)
    outside = tmp_path / "outside.txt"
    outside.write_text("not the node's")
    os.chmod(outside, 0o644)
    (data / "link").symlink_to(outside)  # a planted link: never followed
    node.start()
    node.call("message.send", {"agent": "echo", "content": "secret words"})
    node.call("message.send", {"agent": "counter", "content": "x"})
    found = modes(data)
    assert {"memory.db", "node.db", "logs"} <= set(found), sorted(found)
    for name, mode in found.items():
        if name == "link":
            continue
        want = 0o700 if (data / name).is_dir() else 0o600
        assert mode & 0o077 == 0, f"{name} is {oct(mode)}, readable by other users"
        assert mode & want == mode, (name, oct(mode))
    assert stat.S_IMODE(outside.stat().st_mode) == 0o644  # the link's target is untouched
    node.stop()
    assert "node.data_dir_tightened" in node.stdout() + node.stderr()
