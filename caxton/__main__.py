"""``python -m caxton``: run a node (the daemon; the ``caxton`` CLI is its client)."""

import gc

from caxton.node import main

#: The node process's cyclic-GC thresholds: the stock ``(700, 10, 10)`` with a full (oldest
#: generation) collection at most every 100 young collections instead of 10. Each agent keeps
#: ~170 tracked objects (actors, router, locks, sandbox handles), and a full collection walks
#: all of them, stopping every thread: deploying 6,000 agents ran 10 of them (2.6-2.9 s in
#: all) and deployed 270-320 agents/s against 405-417/s with this setting (paired runs, one
#: full collection, 0.4-0.5 s), at the same RSS. Full collections still also wait
#: until the long-lived objects grew by a quarter (CPython's own rule), so garbage cycles are
#: still found as the heap grows; almost everything an agent frees goes by reference count.
GC_THRESHOLDS = (700, 10, 100)

if __name__ == "__main__":
    gc.set_threshold(*GC_THRESHOLDS)
    raise SystemExit(main())
