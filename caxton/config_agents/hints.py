"""Hints ("did you mean ...?") for misspelt keys, capabilities, tools, scopes and variables."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def close_matches(word: str, candidates: Iterable[str], *, limit: int = 3) -> list[str]:
    """Return up to ``limit`` candidates that look like ``word`` (case-insensitive).

    Args:
        word: What the user wrote.
        candidates: The valid names.
        limit: Most suggestions returned.

    Returns:
        Suggestions, best first, in their original spelling.
    """
    by_lower: dict[str, str] = {}
    for c in candidates:
        by_lower.setdefault(c.lower(), c)
    found = difflib.get_close_matches(word.lower(), list(by_lower), n=limit, cutoff=0.6)
    return [by_lower[f] for f in found]


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    """Return ``"did you mean 'x'?"`` (or ``'x' or 'y'``) when something close exists.

    Args:
        word: What the user wrote.
        candidates: The valid names.

    Returns:
        The hint, or ``None`` when nothing is close.
    """
    found = close_matches(word, candidates)
    if not found:
        return None
    return "did you mean " + " or ".join(f"'{f}'" for f in found) + "?"


__all__ = ["close_matches", "did_you_mean"]
