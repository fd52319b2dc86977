"""The embedded memory store: one SQLite file (WAL) shared by every agent on a node.

The store owns the database file, its schema and its connections; agents never touch it
directly, they get a :class:`~caxton.memory.handle.MemoryHandle` bound to one scope partition
from :meth:`MemoryStore.handle`.

Concurrency: many agent actors (one thread each) share one store. Two connection strategies
are available: ``per_thread`` (the default) gives each thread its own connection so WAL readers
run concurrently and writers serialise on SQLite's own lock (``busy_timeout``); ``shared`` uses
one connection behind a Python lock. Measured on the reference machine (2 cores, 8 threads,
3 reads : 1 write, 2,400 operations, four alternating runs) the two were within noise of each
other (medians 1.26 s vs 1.23 s; run-to-run swing ±25 %). ``per_thread`` stays the default
because a slow writer never blocks readers there. Both are correct; pick with
``connection_mode``.

In this process writers take turns on a Python lock before ``BEGIN IMMEDIATE`` (SQLite's own
busy handler sleeps while it waits). Notes a config agent takes per message are **written
behind** (:meth:`MemoryStore.defer`): queued and committed by one writer thread in batches
(one transaction per batch, a savepoint per note), so a message never waits on the disk,
actors never queue on the write lock, and SQLite's work (done with the GIL released) runs on
the other core. A recall first waits for the pending notes of its partition (read your writes,
also across agents sharing a workspace or global partition);
:meth:`MemoryStore.flush` waits for the whole queue; closing the store flushes it. A crash can
lose the notes of the last moments (never a reply).
"""

from __future__ import annotations

import collections
import sqlite3
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import structlog

from caxton.errors import InvalidArgument
from caxton.memory.scope import MemoryScope, ScopeKey

if TYPE_CHECKING:
    from caxton.memory.handle import MemoryHandle

_log = structlog.get_logger("caxton.memory")

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS entities (
    id INTEGER PRIMARY KEY,
    scope TEXT NOT NULL,
    owner TEXT NOT NULL,
    name TEXT NOT NULL,
    type TEXT NOT NULL,
    created REAL NOT NULL,
    UNIQUE (scope, owner, name)
);
CREATE TABLE IF NOT EXISTS observations (
    id INTEGER PRIMARY KEY,
    entity_id INTEGER NOT NULL REFERENCES entities(id) ON DELETE CASCADE,
    text TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS observations_entity ON observations(entity_id);
CREATE TABLE IF NOT EXISTS relations (
    id INTEGER PRIMARY KEY,
    source_id INTEGER NOT NULL REFERENCES entities(id) ON DELETE CASCADE,
    target_id INTEGER NOT NULL REFERENCES entities(id) ON DELETE CASCADE,
    type TEXT NOT NULL,
    UNIQUE (source_id, target_id, type)
);
CREATE INDEX IF NOT EXISTS relations_target ON relations(target_id);
-- Full-text index over entity names (rowid = 2*entity id) and observations
-- (rowid = 2*observation id + 1); scope/owner are stored to filter matches by partition.
CREATE VIRTUAL TABLE IF NOT EXISTS memory_fts USING fts5(
    text, scope UNINDEXED, owner UNINDEXED, entity_id UNINDEXED,
    tokenize = 'unicode61 remove_diacritics 2'
);
CREATE TRIGGER IF NOT EXISTS entities_fts_ins AFTER INSERT ON entities BEGIN
    INSERT INTO memory_fts(rowid, text, scope, owner, entity_id)
    VALUES (2 * new.id, new.name, new.scope, new.owner, new.id);
END;
CREATE TRIGGER IF NOT EXISTS entities_fts_del AFTER DELETE ON entities BEGIN
    DELETE FROM memory_fts WHERE rowid = 2 * old.id;
END;
CREATE TRIGGER IF NOT EXISTS observations_fts_ins AFTER INSERT ON observations BEGIN
    INSERT INTO memory_fts(rowid, text, scope, owner, entity_id)
    SELECT 2 * new.id + 1, new.text, e.scope, e.owner, e.id
    FROM entities e WHERE e.id = new.entity_id;
END;
CREATE TRIGGER IF NOT EXISTS observations_fts_del AFTER DELETE ON observations BEGIN
    DELETE FROM memory_fts WHERE rowid = 2 * old.id + 1;
END;
"""

ConnectionMode = Literal["per_thread", "shared"]


class _Connection(sqlite3.Connection):
    """A connection class that supports weak references (the base class does not)."""


class MemoryStore:
    """A thread-safe SQLite-backed knowledge graph shared by the agents of one node.

    Args:
        path: Database file (created with its directory if missing). ``":memory:"`` is refused
            because per-thread connections would each see a different database.
        connection_mode: ``per_thread`` (default) or ``shared``; see the module docstring.
        busy_timeout: Seconds a writer waits for SQLite's write lock before failing.

    Raises:
        InvalidArgument: ``path`` is ``":memory:"`` or ``connection_mode`` is unknown.
        sqlite3.Error: The file cannot be opened or lacks FTS5 support.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        connection_mode: ConnectionMode = "per_thread",
        busy_timeout: float = 10.0,
    ) -> None:
        if str(path) == ":memory:":
            raise InvalidArgument("MemoryStore needs a file path; ':memory:' is not shareable")
        if connection_mode not in ("per_thread", "shared"):
            raise InvalidArgument(
                f"unknown connection_mode {connection_mode!r}; use 'per_thread' or 'shared'"
            )
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.connection_mode: ConnectionMode = connection_mode
        self._busy_timeout = busy_timeout
        self._local = threading.local()
        self._shared_lock = threading.RLock()
        self._write_lock = threading.RLock()
        self._shared: sqlite3.Connection | None = None
        self._all: weakref.WeakSet[_Connection] = weakref.WeakSet()
        self._all_lock = threading.Lock()
        self._closed = False
        self._pending: collections.deque[tuple[
            Callable[[sqlite3.Connection], None], str, object]] = collections.deque()
        self._pending_cond = threading.Condition()
        self._in_batch = 0
        self._unwritten: dict[object, int] = {}  # partition -> notes queued, not committed
        self._writer: threading.Thread | None = None
        self.deferred_dropped = 0
        self.deferred_failed = 0
        conn = self._open()
        conn.executescript(_SCHEMA)
        conn.execute(
            "INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)",
            (str(SCHEMA_VERSION),),
        )
        if connection_mode == "shared":
            self._shared = conn
        else:
            self._local.conn = conn
        _log.debug("memory.store_opened", path=str(self.path), mode=connection_mode)

    # -- connections -------------------------------------------------------------------------

    def _open(self) -> _Connection:
        conn: _Connection = sqlite3.connect(
            self.path,
            timeout=self._busy_timeout,
            isolation_level=None,
            check_same_thread=False,
            factory=_Connection,
        )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        with self._all_lock:
            self._all.add(conn)
        return conn

    def _conn(self) -> sqlite3.Connection:
        if self._closed:
            raise InvalidArgument(f"memory store {self.path} is closed")
        if self._shared is not None:
            return self._shared
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._open()
            self._local.conn = conn
        return conn

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """Yield a connection for reading (a consistent snapshot for the block's duration).

        Yields:
            The calling thread's connection (or the shared one, locked).
        """
        if self._shared is not None:
            with self._shared_lock:
                yield self._conn()
            return
        yield self._conn()

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """Yield a connection inside ``BEGIN IMMEDIATE`` … ``COMMIT`` (rolled back on error).

        Yields:
            The calling thread's connection holding SQLite's write lock.
        """
        # One writer at a time in this process, queued on a lock: SQLite's own busy handler
        # *sleeps* (1, 2, 5 … 100 ms) while another connection holds the write lock, which
        # turned a few concurrent writers into a few hundred writes a second. Readers stay
        # concurrent (WAL); another process still meets busy_timeout.
        lock = self._shared_lock if self._shared is not None else self._write_lock
        if lock is not None:
            lock.acquire()
        try:
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        finally:
            if lock is not None:
                lock.release()

    # -- written behind ------------------------------------------------------------------------

    MAX_DEFERRED = 100_000
    """Notes that may wait for the writer; past it new ones are dropped and counted."""

    def defer(self, write: Callable[[sqlite3.Connection], None], what: str,
              partition: object = None) -> bool:
        """Queue ``write(conn)`` to run on the writer thread inside a batch transaction.

        Args:
            write: The write (it runs inside a savepoint: an exception undoes only it).
            what: What it is, for the log when it fails.
            partition: The memory partition it writes to (see :meth:`wait_for_partition`).

        Returns:
            False when the queue was full and the write was dropped (counted).
        """
        with self._pending_cond:
            if self._closed:
                return False
            if len(self._pending) >= self.MAX_DEFERRED:
                self.deferred_dropped += 1
                if self.deferred_dropped % 1000 == 1:
                    _log.warning("memory.deferred_dropped", path=str(self.path),
                                 dropped=self.deferred_dropped)
                return False
            self._pending.append((write, what, partition))
            self._unwritten[partition] = self._unwritten.get(partition, 0) + 1
            if self._writer is None:
                self._writer = threading.Thread(target=self._write_behind,
                                                name="caxton-memory-writer", daemon=True)
                self._writer.start()
            self._pending_cond.notify()
        return True

    def _write_behind(self) -> None:
        while True:
            with self._pending_cond:
                while not self._pending and not self._closed:
                    self._pending_cond.wait()
                if not self._pending:
                    return
                batch = [self._pending.popleft() for _ in range(min(512, len(self._pending)))]
                self._in_batch = len(batch)
            try:
                self._write_batch(batch)
            finally:
                with self._pending_cond:
                    self._in_batch = 0
                    for _, _, partition in batch:
                        left = self._unwritten.get(partition, 1) - 1
                        if left > 0:
                            self._unwritten[partition] = left
                        else:
                            self._unwritten.pop(partition, None)
                    self._pending_cond.notify_all()

    def _write_batch(self, batch: list[tuple[Callable[[sqlite3.Connection], None], str, object]],
                     ) -> None:
        try:
            with self.write() as conn:
                for write, what, _ in batch:
                    conn.execute("SAVEPOINT note")
                    try:
                        write(conn)
                    except Exception as exc:
                        conn.execute("ROLLBACK TO note")
                        self.deferred_failed += 1
                        _log.warning("memory.deferred_write_failed", what=what,
                                     error=getattr(exc, "message", repr(exc)))
                    conn.execute("RELEASE note")
        except (sqlite3.Error, InvalidArgument) as exc:
            self.deferred_failed += len(batch)
            _log.error("memory.deferred_batch_failed", path=str(self.path),
                       notes=len(batch), error=repr(exc))

    def wait_for_partition(self, partition: object, timeout: float) -> bool:
        """Wait until no note queued for ``partition`` is left uncommitted (read your writes:
        a recall sees what the agents sharing that partition noted before it).

        Returns:
            Whether it happened within ``timeout``.
        """
        if partition not in self._unwritten:
            return True
        with self._pending_cond:
            return self._pending_cond.wait_for(lambda: partition not in self._unwritten,
                                               timeout)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every deferred write is committed.

        Returns:
            Whether the queue drained within ``timeout``.
        """
        with self._pending_cond:
            return self._pending_cond.wait_for(
                lambda: not self._pending and not self._in_batch, timeout)

    # -- handles -----------------------------------------------------------------------------

    def handle(
        self,
        scope: MemoryScope | str,
        *,
        agent: str,
        workspace: str = "default",
        max_entities: int | None = None,
    ) -> MemoryHandle:
        """Return a handle bound to the partition an agent with ``scope`` uses.

        Args:
            scope: The agent's ``resource_limits.memory_scope``.
            agent: The agent name (named in errors; the owner of ``agent``-scoped data).
            workspace: The agent's workspace (the owner of ``workspace``-scoped data).
            max_entities: The agent's ``max_memory_entities``; ``None`` means unlimited.

        Returns:
            A :class:`MemoryHandle` that can only read and write that partition.

        Raises:
            InvalidArgument: Unknown scope, empty names, or a non-positive limit.
        """
        from caxton.memory.handle import MemoryHandle

        if max_entities is not None and max_entities < 1:
            raise InvalidArgument(
                f"max_memory_entities for agent {agent!r} must be at least 1, got {max_entities}"
            )
        key = ScopeKey.for_agent(scope, agent, workspace)
        return MemoryHandle(self, key, agent=agent, workspace=workspace,
                            max_entities=max_entities)

    def partitions(self) -> list[tuple[ScopeKey, int]]:
        """Return every partition holding entities, with its entity count (for monitoring).

        Returns:
            ``(ScopeKey, entity_count)`` pairs ordered by scope and owner.
        """
        with self.read() as conn:
            rows = conn.execute(
                "SELECT scope, owner, COUNT(*) FROM entities GROUP BY scope, owner "
                "ORDER BY scope, owner"
            ).fetchall()
        return [(ScopeKey(MemoryScope(s), o), int(n)) for s, o, n in rows]

    def close(self) -> None:
        """Close every connection the store opened (idempotent)."""
        if self._closed:
            return
        self.flush()
        with self._pending_cond:
            self._closed = True
            self._pending_cond.notify_all()
        if self._writer is not None:
            self._writer.join(10)
        with self._all_lock:
            conns = list(self._all)
            self._all = weakref.WeakSet()
        for conn in conns:
            try:
                conn.close()
            except sqlite3.Error:  # pragma: no cover - closing is best effort
                pass
        _log.debug("memory.store_closed", path=str(self.path))

    def __enter__(self) -> MemoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["ConnectionMode", "MemoryStore"]
