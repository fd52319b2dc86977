"""``python -m caxton``: run a node (the daemon; the ``caxton`` CLI is its client)."""

from caxton.node import main

if __name__ == "__main__":
    raise SystemExit(main())
