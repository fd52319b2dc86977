"""The embedded memory store: entities, relations and observations in SQLite (WAL) with FTS5.

Typical use by a configuration agent::

    store = MemoryStore(data_dir / "memory.db")          # one per node
    mem = store.handle("workspace", agent="DataProcessor", workspace="default",
                       max_entities=10_000)                # one per agent
    mem.observe("report-q3", "revenue up 4%", entity_type="dataset")
    prompt_vars["memory_context"] = mem.memory_context(request_text)
"""

from caxton.memory.handle import MemoryHandle, fts_query
from caxton.memory.models import Entity, Observation, Relation, SearchHit
from caxton.memory.scope import MemoryScope, ScopeKey
from caxton.memory.snapshot import Snapshot
from caxton.memory.store import ConnectionMode, MemoryStore

__all__ = [
    "ConnectionMode",
    "Entity",
    "MemoryHandle",
    "MemoryScope",
    "MemoryStore",
    "Observation",
    "Relation",
    "ScopeKey",
    "SearchHit",
    "Snapshot",
    "fts_query",
]
