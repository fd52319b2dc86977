"""The ``caxton`` command-line client (placeholder until the node lands)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``caxton`` console script."""
    print("caxton: the CLI is not yet available in this build", file=sys.stderr)
    return 2


def node_main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m caxton``."""
    print("caxton: the node is not yet available in this build", file=sys.stderr)
    return 2
