"""The node's data directory is private: the directory 0700, every file in it 0600.

It holds agents' memory (message text), the node's state and its logs. The daemon calls
:func:`make_private` before it writes anything: the process umask becomes ``077`` (so SQLite's
database, WAL and SHM files, log files and memory snapshots are created 0600), the directory
is created 0700, and an existing directory that other users can read is tightened in place —
symbolic links are never followed, so a link planted inside cannot redirect the ``chmod``.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def make_private(data_dir: Path) -> list[str]:
    """Set umask 077, create ``data_dir`` 0700 and tighten what is already in it.

    Args:
        data_dir: The node's data directory.

    Returns:
        The paths whose modes were tightened (for the node's log).

    Raises:
        OSError: The directory cannot be created or changed (the caller reports it).
    """
    os.umask(0o077)
    data_dir.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
    tightened: list[str] = []
    for root, dirs, files in os.walk(data_dir, followlinks=False):
        for name, want in [(".", PRIVATE_DIR)] + [(d, PRIVATE_DIR) for d in dirs] + [
                (f, PRIVATE_FILE) for f in files]:
            path = os.path.join(root, name)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode) or not st.st_mode & 0o077:
                continue
            os.chmod(path, stat.S_IMODE(st.st_mode) & want)
            tightened.append(os.path.normpath(path))
    return tightened


__all__ = ["PRIVATE_DIR", "PRIVATE_FILE", "make_private"]
