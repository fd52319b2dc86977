"""Splitting an agent file into YAML frontmatter and markdown body, with a line map.

An agent file is::

    ---
    <YAML frontmatter>
    ---
    <markdown body: the agent's documentation>

The frontmatter is composed once with PyYAML (libyaml when available); every mapping key and
sequence item gets its position in the *file* (1-based line and column, offset by the opening
``---``), so every validation finding can name the line of the field it is about.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

Path = tuple[str | int, ...]

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_DELIMS = ("---",)
_CLOSERS = ("---", "...")
_MAX_DEPTH = 32


def _dotted(path: Path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


@dataclass(frozen=True, slots=True)
class Position:
    """A 1-based line and column in the agent file."""

    line: int
    column: int


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """Where a field sits in the file.

    Attributes:
        key: Position of the key (or of the list item for sequence entries).
        value: Position where the value node starts.
        content_line: File line of the value's first content line (for ``|``/``>`` block
            scalars the line after the indicator; otherwise the value's own line).
    """

    key: Position
    value: Position
    content_line: int


class FrontmatterError(Exception):
    """The file has no well-formed frontmatter or its YAML does not parse.

    Args:
        message: What is wrong.
        line: 1-based file line.
        column: 1-based column, if known.
        fix: How to fix it.
    """

    def __init__(self, message: str, *, line: int, column: int | None, fix: str) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column
        self.fix = fix


@dataclass(frozen=True, slots=True)
class Frontmatter:
    """An agent file split in two.

    Attributes:
        yaml_text: The YAML between the delimiters.
        body: The markdown after the closing delimiter (leading blank lines removed).
        first_line: File line of the first YAML line (2 when the file starts with ``---``).
        closing_line: File line of the closing delimiter.
    """

    yaml_text: str
    body: str
    first_line: int
    closing_line: int


@dataclass(slots=True)
class SourceMap:
    """Field path → file position for one parsed frontmatter.

    Attributes:
        root: Position of the start of the frontmatter.
        nodes: Position of every mapping key and sequence item, by path.
        duplicates: Paths and positions of keys that appear more than once in one mapping.
    """

    root: Position
    nodes: dict[Path, NodeInfo] = field(default_factory=dict)
    duplicates: list[tuple[Path, Position]] = field(default_factory=list)

    def position(self, path: Path) -> Position:
        """Return the position of ``path``, or of its nearest present ancestor.

        Args:
            path: A field path such as ``("resource_limits", "memory_scope")``.

        Returns:
            The key position of the longest prefix of ``path`` that is in the file.
        """
        for end in range(len(path), 0, -1):
            info = self.nodes.get(tuple(path[:end]))
            if info is not None:
                return info.key
        return self.root


def split(text: str) -> Frontmatter:
    """Split an agent file into frontmatter and body.

    Args:
        text: The whole file.

    Returns:
        The parts and their line numbers.

    Raises:
        FrontmatterError: The file does not start with ``---`` or the frontmatter is not closed.
    """
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = text.splitlines()
    if not lines or lines[0].rstrip() not in _DELIMS:
        return _raise_no_opening(lines)
    for idx in range(1, len(lines)):
        if lines[idx].rstrip() in _CLOSERS:
            body = "\n".join(lines[idx + 1 :]).lstrip("\n")
            if body and text.endswith("\n"):
                body += "\n"
            return Frontmatter("\n".join(lines[1:idx]) + "\n", body, 2, idx + 1)
    raise FrontmatterError(
        "the YAML frontmatter opened on line 1 is never closed",
        line=1,
        column=1,
        fix="add a line containing only '---' after the last YAML line",
    )


def _raise_no_opening(lines: list[str]) -> Frontmatter:
    first = lines[0] if lines else ""
    raise FrontmatterError(
        "the file does not start with YAML frontmatter"
        + (f" (line 1 is {first[:40]!r})" if first.strip() else " (it is empty)"),
        line=1,
        column=1,
        fix="start the file with a line '---', the YAML settings, then another '---' line",
    )


def load(front: Frontmatter) -> tuple[Any, SourceMap]:
    """Parse the frontmatter YAML and map every field to its file position.

    Args:
        front: The frontmatter from :func:`split`.

    Returns:
        The YAML data (a mapping) and its source map.

    Raises:
        FrontmatterError: YAML syntax error (with line and column), empty frontmatter or a
            top level that is not a mapping.
    """
    offset = front.first_line
    loader = _Loader(front.yaml_text)
    smap: SourceMap | None = None
    try:
        node = loader.get_single_node()
        if node is not None:
            smap = SourceMap(root=_pos(node.start_mark, offset))
            # Walk (and refuse aliases) before constructing: alias graphs can be cyclic or
            # exponentially large ("billion laughs"), and this text may come from the network.
            _walk(node, (), smap, offset, set())
        data = loader.construct_document(node) if node is not None else None
    except RecursionError as exc:
        raise FrontmatterError(
            "the frontmatter is nested too deeply", line=offset, column=None,
            fix=f"agent files need at most {_MAX_DEPTH} levels of nesting") from exc
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = offset + mark.line if mark is not None else offset
        col = mark.column + 1 if mark is not None else None
        problem = exc.problem or "invalid YAML"
        context = ""
        if exc.context:
            context = f" ({exc.context}"
            cmark = exc.context_mark
            if cmark is not None and mark is not None and cmark.line != mark.line:
                context += f" that starts on line {offset + cmark.line}"
            context += ")"
        raise FrontmatterError(
            f"YAML syntax error: {problem}{context}",
            line=line,
            column=col,
            fix="check indentation, quoting and ':' after each key; quote values "
            "containing ': ', '#', '{' or starting with '*', '&', '!', '@' or '`'",
        ) from exc
    except yaml.YAMLError as exc:
        raise FrontmatterError(f"YAML error: {exc}", line=offset, column=None,
                               fix="check the frontmatter is valid YAML") from exc
    finally:
        loader.dispose()
    if node is None:
        raise FrontmatterError("the frontmatter is empty", line=offset, column=1,
                               fix="add at least name, capabilities and tools")
    if not isinstance(node, yaml.MappingNode) or not isinstance(data, dict) or smap is None:
        raise FrontmatterError(
            f"the frontmatter must be a map of settings, got a {type(node).__name__.removesuffix('Node').lower()}",
            line=offset + node.start_mark.line,
            column=node.start_mark.column + 1,
            fix="write one 'key: value' per line, e.g. 'name: MyAgent'",
        )
    return data, smap


def _pos(mark: Any, offset: int) -> Position:
    return Position(offset + mark.line, mark.column + 1)


def _content_line(node: yaml.Node, offset: int) -> int:
    style = getattr(node, "style", None)
    start = offset + node.start_mark.line
    return start + 1 if style in ("|", ">") else start


def _walk(
    node: yaml.Node, path: Path, smap: SourceMap, offset: int, seen_nodes: set[int],
    at: Position | None = None,
) -> None:
    """Record positions below ``node``; ``at`` is where the reference to ``node`` was written."""
    if id(node) in seen_nodes:
        # an alias shares its anchor's node (and marks): report where it was referenced
        pos = at or _pos(node.start_mark, offset)
        raise FrontmatterError(
            f"'{_dotted(path)}' repeats a YAML anchor (&name / *name); aliases are not allowed "
            "in agent files",
            line=pos.line, column=pos.column,
            fix="write the value out in full instead of referring to an anchor")
    seen_nodes.add(id(node))
    if len(path) > _MAX_DEPTH:
        pos = _pos(node.start_mark, offset)
        raise FrontmatterError(
            f"'{_dotted(path[:3])}…' is nested more than {_MAX_DEPTH} levels deep",
            line=pos.line, column=pos.column, fix="flatten the value")
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue
            key = str(key_node.value)
            sub = (*path, key)
            if key in seen:
                smap.duplicates.append((sub, _pos(key_node.start_mark, offset)))
            seen.add(key)
            key_pos = _pos(key_node.start_mark, offset)
            smap.nodes[sub] = NodeInfo(
                key_pos, _pos(value_node.start_mark, offset), _content_line(value_node, offset))
            _walk(value_node, sub, smap, offset, seen_nodes, key_pos)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            sub = (*path, i)
            p = _pos(item.start_mark, offset)
            smap.nodes[sub] = NodeInfo(p, p, _content_line(item, offset))
            _walk(item, sub, smap, offset, seen_nodes, at if id(item) in seen_nodes else p)


__all__ = [
    "Frontmatter",
    "FrontmatterError",
    "NodeInfo",
    "Path",
    "Position",
    "SourceMap",
    "load",
    "split",
]
