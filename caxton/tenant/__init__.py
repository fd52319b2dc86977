"""Where a config agent's tenant work runs: killable worker processes and one I/O loop.

* :class:`TenantPool` — worker processes for template renders and CPU-bound tools, each call
  under a wall-clock limit that kills its worker, each worker under a memory cap.
* :class:`IOLoop` — one asyncio event loop thread for everything that waits: model calls
  (an async HTTP client) and I/O tools (``http_client``). Thousands of conversations wait on
  it at once without a thread each.
"""

from caxton.tenant.ioloop import IOLoop
from caxton.tenant.pool import DEFAULT_MEMORY_LIMIT, DEFAULT_WORKERS, TenantPool, WorkTimedOut

__all__ = ["DEFAULT_MEMORY_LIMIT", "DEFAULT_WORKERS", "IOLoop", "TenantPool", "WorkTimedOut"]
