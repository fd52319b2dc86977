"""``python -m caxton``: run a node."""

from caxton.cli import node_main

if __name__ == "__main__":
    raise SystemExit(node_main())
