"""Which agent an agent file is: the one naming rule shared by the node and the CLI.

The node deploys an agents dir's files (and its watch mode reloads them); ``caxton agents
watch DIR --auto-reload`` does the same from a client. Both must agree on the name a file
stands for, or the CLI would reload a different agent than the node loaded. The rule:

* a ``.md`` config agent is named by its frontmatter ``name`` (the file stem when there is
  none to read);
* a ``.wasm``/``.wat`` module is named by its file stem, unless a ``.md`` config agent in the
  same directory already uses that name: then ``<stem>-wasm`` (``echo.wat`` beside an
  ``echo.md`` that defines ``echo`` is the agent ``echo-wasm``).

This module imports only the standard library and PyYAML, so the CLI may use it without
loading the runtime.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import yaml

CONFIG_SUFFIX = ".md"
WASM_SUFFIXES = (".wasm", ".wat")
AGENT_SUFFIXES = (CONFIG_SUFFIX, *WASM_SUFFIXES)
"""Suffixes of agent files (lower case)."""

WASM_SUFFIX_TAG = "-wasm"
"""Appended to a module's stem when a config agent beside it has that name."""


def frontmatter_name(text: str) -> str | None:
    """The ``name`` in a config agent file's YAML frontmatter.

    Args:
        text: The ``.md`` file's content.

    Returns:
        The name, or ``None`` when the file has no readable frontmatter or no string name.
    """
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = text.splitlines()
    if not lines or lines[0].rstrip() != "---":
        return None
    # delimiters as the config agent parser reads them: '---' opens, '---' or '...' closes
    end = next((i for i in range(1, len(lines)) if lines[i].rstrip() in ("---", "...")), None)
    if end is None:
        return None
    try:
        data = yaml.safe_load("\n".join(lines[1:end]))
    except yaml.YAMLError:
        return None
    name = data.get("name") if isinstance(data, dict) else None
    if isinstance(name, str | int | float) and not isinstance(name, bool):
        name = str(name).strip()
        return name or None
    return None


def config_names_in(directory: Path) -> set[str]:
    """Names defined by the top-level ``.md`` config agents of a directory.

    Args:
        directory: The directory.

    Returns:
        The names (unreadable files and files without a name are left out).
    """
    names: set[str] = set()
    try:
        entries = list(directory.iterdir())
    except OSError:
        return names
    for path in entries:
        if path.suffix.lower() != CONFIG_SUFFIX or not path.is_file():
            continue
        try:
            name = frontmatter_name(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError):
            continue
        if name is not None:
            names.add(name)
    return names


def wasm_agent_name(path: Path, config_names: Iterable[str] | None = None) -> str:
    """The agent name of a ``.wasm``/``.wat`` file: its stem, or ``<stem>-wasm`` when a
    config agent beside it already uses the stem.

    Args:
        path: The module file.
        config_names: Names of the config agents in its directory (default: read them).

    Returns:
        The agent name.
    """
    stem = path.stem
    names = config_names_in(path.parent) if config_names is None else set(config_names)
    return f"{stem}{WASM_SUFFIX_TAG}" if stem in names else stem


def agent_name_for_file(path: Path, text: str | None = None,
                        config_names: Iterable[str] | None = None) -> str:
    """The agent name any agent file stands for (see the module docstring for the rule).

    Args:
        path: The file.
        text: A ``.md`` file's content, when already read (read here otherwise).
        config_names: For modules: names of the config agents beside it (default: read).

    Returns:
        The agent name.
    """
    if path.suffix.lower() == CONFIG_SUFFIX:
        if text is None:
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                return path.stem
        return frontmatter_name(text) or path.stem
    return wasm_agent_name(path, config_names)


__all__ = [
    "AGENT_SUFFIXES",
    "CONFIG_SUFFIX",
    "WASM_SUFFIXES",
    "WASM_SUFFIX_TAG",
    "agent_name_for_file",
    "config_names_in",
    "frontmatter_name",
    "wasm_agent_name",
]
