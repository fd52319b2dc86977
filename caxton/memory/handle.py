"""A memory handle: one agent's window onto one partition of the shared store."""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from caxton.errors import InvalidArgument, MemoryEntityLimit, MemoryScopeViolation
from caxton.memory.models import Entity, Observation, Relation, SearchHit
from caxton.memory.scope import MemoryScope, ScopeKey
from caxton.memory.snapshot import Snapshot

if TYPE_CHECKING:
    from caxton.memory.store import MemoryStore

_log = structlog.get_logger("caxton.memory")

MAX_NAME = 256
MAX_TYPE = 64
MAX_OBSERVATION = 16 * 1024
_TOKEN = re.compile(r"\w+", re.UNICODE)


def fts_query(text: str, *, max_terms: int = 32) -> str:
    """Turn free text into a safe FTS5 query: each word quoted, any word may match.

    Args:
        text: Free text (a request, a question).
        max_terms: At most this many distinct words are used.

    Returns:
        An FTS5 ``MATCH`` expression, or ``""`` when ``text`` holds no words.
    """
    seen: list[str] = []
    for tok in _TOKEN.findall(text.lower()):
        if tok not in seen:
            seen.append(tok)
        if len(seen) >= max_terms:
            break
    return " OR ".join(f'"{t}"' for t in seen)


DEFAULT_MAX_OBSERVATIONS = 64
"""Observations kept per entity unless a handle says otherwise."""


class MemoryHandle:
    """Reads and writes one partition (scope + owner) of a :class:`MemoryStore`.

    Obtain one with :meth:`MemoryStore.handle`. Every query is confined to the partition; a
    request for another scope (:meth:`view`) or a snapshot of another partition
    (:meth:`restore`) raises :class:`~caxton.errors.MemoryScopeViolation`. Creating an entity
    beyond ``max_entities`` raises :class:`~caxton.errors.MemoryEntityLimit`.

    Args:
        store: The shared store.
        key: The partition.
        agent: The agent using the handle (named in errors).
        workspace: The agent's workspace.
        max_entities: The agent's ``max_memory_entities`` (``None``: unlimited).
        max_observations: Observations kept per entity; :meth:`observe` prunes the oldest
            beyond it, so an agent that notes every message keeps bounded memory.
    """

    def __init__(self, store: MemoryStore, key: ScopeKey, *, agent: str, workspace: str,
                 max_entities: int | None,
                 max_observations: int = DEFAULT_MAX_OBSERVATIONS) -> None:
        self._store = store
        self.max_observations = max_observations
        self.key = key
        self.agent = agent
        self.workspace = workspace
        self.max_entities = max_entities
        self._pending_new: set[str] = set()  # entities a queued note will create
        self._known: set[str] = set()  # entities seen to exist (a note then needs no read)
        self._pending_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"MemoryHandle(agent={self.agent!r}, {self.key.describe()})"

    @property
    def scope(self) -> MemoryScope:
        """The handle's memory scope."""
        return self.key.scope

    # -- scope boundary ----------------------------------------------------------------------

    def view(self, scope: MemoryScope | str, *, owner: str | None = None) -> MemoryHandle:
        """Return a handle on ``scope``, allowed only if it is this handle's own partition.

        Args:
            scope: The scope asked for.
            owner: The owner asked for (agent or workspace name); defaults to this handle's.

        Returns:
            ``self`` when the request names this handle's partition.

        Raises:
            MemoryScopeViolation: The request names any other partition.
        """
        try:
            wanted = MemoryScope(scope)
        except ValueError:
            raise InvalidArgument(
                f"unknown memory scope {scope!r}; use one of agent, workspace, global"
            ) from None
        want_owner = self.key.owner if owner is None else owner
        if wanted is MemoryScope.GLOBAL:
            want_owner = ""
        target = ScopeKey(wanted, want_owner)
        if target != self.key:
            self._violation(target, "access")
        return self

    def _violation(self, target: ScopeKey, what: str) -> None:
        raise MemoryScopeViolation(
            f"agent {self.agent!r} has memory_scope {self.key.scope} "
            f"({self.key.describe()}) and may not {what} {target.describe()}; "
            f"change resource_limits.memory_scope in the agent file if it must share "
            f"that memory",
            details=[{"agent": self.agent, "scope": str(self.key.scope),
                      "owner": self.key.owner, "requested_scope": str(target.scope),
                      "requested_owner": target.owner}],
        )

    # -- helpers -----------------------------------------------------------------------------

    @staticmethod
    def _check_name(name: str, what: str = "entity name") -> str:
        if not isinstance(name, str) or not name.strip():
            raise InvalidArgument(f"{what} must be a non-empty string")
        if len(name) > MAX_NAME:
            raise InvalidArgument(f"{what} is longer than {MAX_NAME} characters")
        return name

    @staticmethod
    def _check_text(text: str) -> str:
        if not isinstance(text, str) or not text:
            raise InvalidArgument("observation text must be a non-empty string")
        if len(text) > MAX_OBSERVATION:
            raise InvalidArgument(
                f"observation is {len(text)} characters; the limit is {MAX_OBSERVATION}"
            )
        return text

    def _entity_id(self, conn: sqlite3.Connection, name: str) -> int | None:
        row = conn.execute(
            "SELECT id FROM entities WHERE scope=? AND owner=? AND name=?",
            (self.key.scope, self.key.owner, name),
        ).fetchone()
        return None if row is None else int(row[0])

    def _count(self, conn: sqlite3.Connection) -> int:
        row = conn.execute("SELECT COUNT(*) FROM entities WHERE scope=? AND owner=?",
                           (self.key.scope, self.key.owner)).fetchone()
        return int(row[0])

    def _limit_error(self, needed: int, current: int) -> MemoryEntityLimit:
        assert self.max_entities is not None
        return MemoryEntityLimit(
            f"agent {self.agent!r} reached max_memory_entities={self.max_entities} in "
            f"{self.key.describe()} memory ({current} stored, {needed} more needed); raise "
            f"resource_limits.max_memory_entities in the agent file or forget unused entities",
            details=[{"agent": self.agent, "limit": self.max_entities, "current": current,
                      "scope": str(self.key.scope), "owner": self.key.owner}],
        )

    def _ensure_entity(self, conn: sqlite3.Connection, name: str, type_: str) -> int:
        eid = self._entity_id(conn, name)
        if eid is not None:
            return eid
        if self.max_entities is not None:
            current = self._count(conn)
            if current + 1 > self.max_entities:
                raise self._limit_error(1, current)
        cur = conn.execute(
            "INSERT INTO entities(scope, owner, name, type, created) VALUES (?,?,?,?,?)",
            (self.key.scope, self.key.owner, name, type_, time.time()),
        )
        assert cur.lastrowid is not None
        return int(cur.lastrowid)

    # -- writes ------------------------------------------------------------------------------

    def add_entity(self, name: str, type: str = "thing",
                   observations: Iterable[str] = ()) -> Entity:
        """Create an entity (or reuse the existing one of that name) and attach observations.

        Args:
            name: Entity name, unique within the partition.
            type: Entity type; an existing entity keeps its original type.
            observations: Texts to attach.

        Returns:
            The entity with all its observations.

        Raises:
            MemoryEntityLimit: Creating it would exceed ``max_entities``.
            InvalidArgument: Empty or over-long name, type or text.
        """
        self._check_name(name)
        self._check_name(type, "entity type")
        if len(type) > MAX_TYPE:
            raise InvalidArgument(f"entity type is longer than {MAX_TYPE} characters")
        texts = [self._check_text(t) for t in observations]
        with self._store.write() as conn:
            eid = self._ensure_entity(conn, name, type)
            now = time.time()
            conn.executemany(
                "INSERT INTO observations(entity_id, text, created) VALUES (?,?,?)",
                [(eid, t, now) for t in texts],
            )
        entity = self.get_entity(name)
        assert entity is not None
        return entity

    def observe(self, entity: str, text: str, *, entity_type: str = "thing") -> None:
        """Attach one observation to ``entity``, creating the entity if needed.

        Args:
            entity: Entity name.
            text: The observation.
            entity_type: Type used if the entity has to be created.

        Raises:
            MemoryEntityLimit: The entity is new and the partition is full.
            InvalidArgument: Empty or over-long name or text.
        """
        self._check_name(entity)
        self._check_text(text)
        with self._store.write() as conn:
            self._observe_in(conn, entity, text, entity_type)

    def note(self, entity: str, text: str, *, entity_type: str = "thing",
             relate_to: tuple[str, str, str] | None = None) -> None:
        """Take a note written behind (see :meth:`MemoryStore.defer`): an observation of
        ``entity`` and, optionally, a relation ``entity -> target`` (``(target, target_type,
        relation_type)``), creating the entities as needed. It never waits on the disk.

        Args:
            entity: Entity name.
            text: The observation.
            entity_type: Type used if the entity has to be created.
            relate_to: ``(target, target_type, relation_type)`` to relate it to, or None.

        Raises:
            MemoryEntityLimit: It needs new entities and the partition is full (checked now,
                counting the entities queued notes will create).
            InvalidArgument: Empty or over-long name or text.
        """
        self._check_name(entity)
        self._check_text(text)
        names = [entity] + ([relate_to[0]] if relate_to else [])
        known = self._known
        with self._pending_lock:
            unsure = [n for n in names if n not in known and n not in self._pending_new]
            new: list[str] = []
            if unsure:
                with self._store.read() as conn:
                    for n in unsure:
                        if self._entity_id(conn, n) is None:
                            new.append(n)
                        else:
                            self._remember_known(n)
                    if new and self.max_entities is not None:
                        current = self._count(conn) + len(self._pending_new)
                        if current + len(new) > self.max_entities:
                            raise self._limit_error(len(new), current)
            self._pending_new.update(new)

        def write(conn: sqlite3.Connection) -> None:
            try:
                eid = self._observe_in(conn, entity, text, entity_type)
                if relate_to is not None:
                    tid = self._ensure_entity(conn, relate_to[0], relate_to[1])
                    conn.execute("INSERT OR IGNORE INTO relations(source_id, target_id, type) "
                                 "VALUES (?,?,?)", (eid, tid, relate_to[2]))
            finally:
                with self._pending_lock:
                    self._pending_new.difference_update(new)
            for n in new:  # committed with the batch (a failed batch only costs a re-read)
                self._remember_known(n)

        if not self._store.defer(write, f"note of agent {self.agent!r} on {entity!r}",
                                 self.key):
            with self._pending_lock:
                self._pending_new.difference_update(new)

    def _remember_known(self, name: str) -> None:
        if len(self._known) >= 4096:  # bounded: forgetting only costs a read
            self._known.clear()
        self._known.add(name)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until the notes taken so far are written (see :meth:`MemoryStore.flush`)."""
        return self._store.flush(timeout)

    def _observe_in(self, conn: sqlite3.Connection, entity: str, text: str,
                    entity_type: str) -> int:
        """Add one observation inside the caller's transaction; return the entity's id.
        Every 16th write prunes the entity to its newest ``max_observations`` (amortised)."""
        eid = self._ensure_entity(conn, entity, entity_type)
        cur = conn.execute("INSERT INTO observations(entity_id, text, created) VALUES (?,?,?)",
                           (eid, text, time.time()))
        if cur.lastrowid is not None and cur.lastrowid % 16 == 0:
            conn.execute(
                "DELETE FROM observations WHERE entity_id = ? AND id <= ("
                "SELECT id FROM observations WHERE entity_id = ? "
                "ORDER BY id DESC LIMIT 1 OFFSET ?)",
                (eid, eid, self.max_observations))
        return eid

    def relate(self, source: str, target: str, type: str) -> Relation:
        """Add a directed relation between two existing entities (idempotent).

        Args:
            source: Name of the entity the edge starts at.
            target: Name of the entity it points to.
            type: Relation type.

        Returns:
            The relation.

        Raises:
            InvalidArgument: Either entity does not exist in this partition.
        """
        self._check_name(type, "relation type")
        with self._store.write() as conn:
            ids = []
            for name in (source, target):
                eid = self._entity_id(conn, name)
                if eid is None:
                    raise InvalidArgument(
                        f"no entity {name!r} in {self.key.describe()} memory of agent "
                        f"{self.agent!r}; add it before relating it"
                    )
                ids.append(eid)
            conn.execute(
                "INSERT OR IGNORE INTO relations(source_id, target_id, type) VALUES (?,?,?)",
                (ids[0], ids[1], type),
            )
        return Relation(source, target, type)

    def forget(self, name: str) -> bool:
        """Delete an entity with its observations and relations.

        Args:
            name: Entity name.

        Returns:
            Whether an entity was deleted.
        """
        self._known.discard(name)
        with self._store.write() as conn:
            cur = conn.execute("DELETE FROM entities WHERE scope=? AND owner=? AND name=?",
                               (self.key.scope, self.key.owner, name))
            return cur.rowcount > 0

    def clear(self) -> int:
        """Delete everything in the partition.

        Returns:
            How many entities were deleted.
        """
        self._known.clear()
        with self._store.write() as conn:
            cur = conn.execute("DELETE FROM entities WHERE scope=? AND owner=?",
                               (self.key.scope, self.key.owner))
            return cur.rowcount

    # -- reads -------------------------------------------------------------------------------

    def get_entity(self, name: str) -> Entity | None:
        """Return the entity called ``name`` with its observations, or ``None``.

        Args:
            name: Entity name.

        Returns:
            The entity, or ``None`` if this partition has no such entity.
        """
        with self._store.read() as conn:
            row = conn.execute(
                "SELECT id, type FROM entities WHERE scope=? AND owner=? AND name=?",
                (self.key.scope, self.key.owner, name),
            ).fetchone()
            if row is None:
                return None
            obs = conn.execute(
                "SELECT text, created FROM observations WHERE entity_id=? ORDER BY id",
                (row[0],),
            ).fetchall()
        return Entity(name, row[1], tuple(Observation(t, c) for t, c in obs))

    def entities(self, *, type: str | None = None, limit: int = 1000) -> list[Entity]:
        """List entities (without observations), newest first.

        Args:
            type: Only entities of this type.
            limit: At most this many.

        Returns:
            The entities.
        """
        sql = "SELECT name, type FROM entities WHERE scope=? AND owner=?"
        args: list[object] = [self.key.scope, self.key.owner]
        if type is not None:
            sql += " AND type=?"
            args.append(type)
        sql += " ORDER BY id DESC LIMIT ?"
        args.append(limit)
        with self._store.read() as conn:
            rows = conn.execute(sql, args).fetchall()
        return [Entity(n, t) for n, t in rows]

    def relations(self, entity: str | None = None) -> list[Relation]:
        """List relations, optionally only those touching ``entity``.

        Args:
            entity: Entity name, or ``None`` for all relations of the partition.

        Returns:
            The relations.
        """
        sql = (
            "SELECT s.name, t.name, r.type FROM relations r "
            "JOIN entities s ON s.id = r.source_id JOIN entities t ON t.id = r.target_id "
            "WHERE s.scope=? AND s.owner=?"
        )
        args: list[object] = [self.key.scope, self.key.owner]
        if entity is not None:
            sql += " AND (s.name=? OR t.name=?)"
            args += [entity, entity]
        with self._store.read() as conn:
            rows = conn.execute(sql + " ORDER BY r.id", args).fetchall()
        return [Relation(s, t, ty) for s, t, ty in rows]

    def count(self) -> int:
        """Return the number of entities in the partition."""
        with self._store.read() as conn:
            return self._count(conn)

    def stats(self) -> dict[str, int]:
        """Return entity, observation and relation counts (for status and metrics).

        Returns:
            ``{"entities": n, "observations": n, "relations": n}``.
        """
        self._store.flush(2.0)  # count the notes still being written, too
        k = (self.key.scope, self.key.owner)
        with self._store.read() as conn:
            ents = conn.execute("SELECT COUNT(*) FROM entities WHERE scope=? AND owner=?",
                                k).fetchone()[0]
            obs = conn.execute(
                "SELECT COUNT(*) FROM observations o JOIN entities e ON e.id=o.entity_id "
                "WHERE e.scope=? AND e.owner=?", k).fetchone()[0]
            rels = conn.execute(
                "SELECT COUNT(*) FROM relations r JOIN entities e ON e.id=r.source_id "
                "WHERE e.scope=? AND e.owner=?", k).fetchone()[0]
        return {"entities": int(ents), "observations": int(obs), "relations": int(rels)}

    def search(self, query: str, *, limit: int = 10) -> list[SearchHit]:
        """Full-text search over entity names and observations of this partition.

        Args:
            query: Free text; any of its words may match (ranked by BM25).
            limit: At most this many hits.

        Returns:
            Hits, best first.
        """
        match = fts_query(query)
        if not match:
            return []
        with self._store.read() as conn:
            rows = conn.execute(
                "SELECT e.name, e.type, f.text, bm25(memory_fts) AS score "
                "FROM memory_fts f JOIN entities e ON e.id = f.entity_id "
                "WHERE memory_fts MATCH ? AND f.scope=? AND f.owner=? "
                "ORDER BY score LIMIT ?",
                (match, self.key.scope, self.key.owner, limit),
            ).fetchall()
        return [SearchHit(n, t, txt, float(s)) for n, t, txt, s in rows]

    def recent_observations(self, limit: int = 5) -> list[tuple[str, str, str]]:
        """Return the newest observations as ``(entity, type, text)``, newest first.

        Args:
            limit: At most this many.

        Returns:
            The observations.
        """
        with self._store.read() as conn:
            rows = conn.execute(
                "SELECT e.name, e.type, o.text FROM observations o "
                "JOIN entities e ON e.id = o.entity_id WHERE e.scope=? AND e.owner=? "
                "ORDER BY o.id DESC LIMIT ?",
                (self.key.scope, self.key.owner, limit),
            ).fetchall()
        return [(n, t, x) for n, t, x in rows]

    def memory_context(self, query: str, limit: int = 5, *, max_chars: int = 2000) -> str:
        """Return the short text a prompt template shows as ``{{memory_context}}``.

        One line per matching entity (best first) with its matching observations — or its
        newest ones when its name matched; when nothing matches, the newest observations;
        ``""`` when the partition is empty.

        Args:
            query: The request text.
            limit: At most this many entities (lines).
            max_chars: The text is cut to this length.

        Returns:
            Lines like ``- report-q3 (dataset): revenue up 4%; churn down 1%``.
        """
        # read your writes: notes taken in this partition (by any agent) land first
        self._store.wait_for_partition(self.key, 2.0)
        found: dict[str, tuple[str, list[str]]] = {}
        for hit in self.search(query, limit=limit * 4):
            if hit.entity not in found:
                if len(found) >= limit:
                    continue
                found[hit.entity] = (hit.entity_type, [])
            texts = found[hit.entity][1]
            if hit.text == hit.entity:  # the name matched: show its newest observations
                ent = self.get_entity(hit.entity)
                extra = [o.text for o in (ent.observations[-3:] if ent else ())]
            else:
                extra = [hit.text]
            texts.extend(t for t in extra if t not in texts)
        lines = [f"- {name} ({etype})" + (f": {'; '.join(texts)}" if texts else "")
                 for name, (etype, texts) in found.items()]
        if not lines:
            lines = [f"- {n} ({t}): {x}" for n, t, x in self.recent_observations(limit)]
        text = "\n".join(lines)
        return text if len(text) <= max_chars else text[: max_chars - 1] + "…"

    # -- snapshot / restore ------------------------------------------------------------------

    def snapshot(self) -> bytes:
        """Return the partition's whole contents as snapshot bytes (see ``snapshot.py``).

        Returns:
            UTF-8 JSON bytes.
        """
        k = (self.key.scope, self.key.owner)
        with self._store.write() as conn:  # one transaction: a consistent cut
            ents = conn.execute(
                "SELECT id, name, type FROM entities WHERE scope=? AND owner=? ORDER BY id", k
            ).fetchall()
            obs: dict[int, list[Observation]] = {}
            for eid, text, created in conn.execute(
                "SELECT o.entity_id, o.text, o.created FROM observations o "
                "JOIN entities e ON e.id=o.entity_id WHERE e.scope=? AND e.owner=? "
                "ORDER BY o.id", k,
            ):
                obs.setdefault(int(eid), []).append(Observation(text, created))
            rels = conn.execute(
                "SELECT s.name, t.name, r.type FROM relations r "
                "JOIN entities s ON s.id=r.source_id JOIN entities t ON t.id=r.target_id "
                "WHERE s.scope=? AND s.owner=? ORDER BY r.id", k,
            ).fetchall()
        snap = Snapshot(
            self.key, time.time(),
            tuple(Entity(n, t, tuple(obs.get(int(i), ()))) for i, n, t in ents),
            tuple(Relation(s, t, ty) for s, t, ty in rels),
        )
        data = snap.encode()
        _log.info("memory.snapshot", agent=self.agent, scope=str(self.key.scope),
                  owner=self.key.owner, entities=len(ents), bytes=len(data))
        return data

    def snapshot_to(self, path: str | Path) -> Path:
        """Write a snapshot to ``path`` atomically (temporary file, then rename).

        Args:
            path: Destination file.

        Returns:
            The path written.
        """
        dest = Path(path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".tmp")
        tmp.write_bytes(self.snapshot())
        tmp.replace(dest)
        return dest

    def restore(self, data: bytes) -> int:
        """Replace the partition's contents with a snapshot's, in one transaction.

        Args:
            data: Bytes from :meth:`snapshot`.

        Returns:
            The number of entities restored.

        Raises:
            MemoryScopeViolation: The snapshot was taken from another partition.
            MemoryEntityLimit: The snapshot holds more entities than ``max_entities``.
            InvalidArgument: The bytes are not a valid snapshot.
        """
        self._known.clear()
        snap = Snapshot.decode(data)
        if snap.key != self.key:
            self._violation(snap.key, "restore a snapshot of")
        if self.max_entities is not None and len(snap.entities) > self.max_entities:
            raise self._limit_error(len(snap.entities), 0)
        k = (self.key.scope, self.key.owner)
        with self._store.write() as conn:
            conn.execute("DELETE FROM entities WHERE scope=? AND owner=?", k)
            ids: dict[str, int] = {}
            for e in snap.entities:
                cur = conn.execute(
                    "INSERT INTO entities(scope, owner, name, type, created) VALUES (?,?,?,?,?)",
                    (*k, e.name, e.type, snap.created),
                )
                assert cur.lastrowid is not None
                ids[e.name] = int(cur.lastrowid)
                conn.executemany(
                    "INSERT INTO observations(entity_id, text, created) VALUES (?,?,?)",
                    [(ids[e.name], o.text, o.created) for o in e.observations],
                )
            for r in snap.relations:
                if r.source in ids and r.target in ids:
                    conn.execute(
                        "INSERT OR IGNORE INTO relations(source_id, target_id, type) "
                        "VALUES (?,?,?)", (ids[r.source], ids[r.target], r.type),
                    )
        _log.info("memory.restore", agent=self.agent, scope=str(self.key.scope),
                  owner=self.key.owner, entities=len(snap.entities))
        return len(snap.entities)

    def restore_from(self, path: str | Path) -> int:
        """Restore from a snapshot file written by :meth:`snapshot_to`.

        Args:
            path: The snapshot file.

        Returns:
            The number of entities restored.

        Raises:
            InvalidArgument: The file is missing or not a snapshot.
            MemoryScopeViolation: The snapshot is of another partition.
            MemoryEntityLimit: The snapshot exceeds ``max_entities``.
        """
        p = Path(path)
        if not p.is_file():
            raise InvalidArgument(f"memory snapshot {p} does not exist")
        return self.restore(p.read_bytes())


__all__ = ["MemoryHandle", "fts_query"]
