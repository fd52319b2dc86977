"""The node's durable state: deployed agents, their kept versions, rollout state and node facts.

One SQLite file (``<data_dir>/node.db``) that a restarted node reads to come back with every
agent it had, at the same version and lifecycle state, and with any rollout in progress either
resumed or rolled back. Agent *memory* lives in a separate database owned by ``caxton.memory``.

Durability choices:

* ``journal_mode=WAL`` — readers never block the writer and a crash leaves either the whole
  transaction in the log or none of it.
* ``synchronous=FULL`` — every commit is fsynced before the call returns, so a deploy the CLI
  reported as done survives a power loss or kernel crash too, not only a ``kill -9`` of the
  node. A commit costs about 1 ms on this machine's virtual disk, under the store's lock, so
  concurrent writers share commits (group commit, see :meth:`NodeStore._tx`): each call still
  returns only once its own changes are committed.
* Every operation that changes more than one row (deploy + prune, finish rollout + set current
  version, ...) is one atomic unit (a ``SAVEPOINT`` inside a ``BEGIN IMMEDIATE`` transaction),
  so a crash leaves the old or the new state, never a mix: an agent always has a current
  version that exists among its kept versions.

The store is thread-safe: one connection guarded by a lock (the node calls it from the control
server, the supervisors and the rollout timers).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from caxton.errors import AgentNotFound, CaxtonError, InvalidArgument, VersionNotFound

#: Longest a writer waits for other writers to join its commit (seconds).
_GROUP_COMMIT_WAIT = 0.005

#: How many versions of each agent are kept (the current one is never pruned).
KEEP_VERSIONS = 5

AgentKind = Literal["config", "wasm"]
_KINDS: tuple[str, ...] = ("config", "wasm")


class StoreError(CaxtonError):
    """The state database cannot be used (written by a newer Caxton, or corrupt)."""


# Each entry migrates the schema from version ``i`` to ``i + 1``; append, never edit.
MIGRATIONS: list[tuple[str, ...]] = [
    (
        """CREATE TABLE agents (
            name TEXT PRIMARY KEY,
            agent_id TEXT NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('config', 'wasm')),
            current_version TEXT NOT NULL,
            state TEXT NOT NULL,
            strategy TEXT NOT NULL,
            config TEXT NOT NULL,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        )""",
        """CREATE TABLE versions (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            agent TEXT NOT NULL REFERENCES agents(name) ON DELETE CASCADE,
            version TEXT NOT NULL,
            version_number INTEGER NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('config', 'wasm')),
            payload BLOB NOT NULL,
            metadata TEXT NOT NULL,
            created_at REAL NOT NULL,
            UNIQUE (agent, version)
        )""",
        "CREATE INDEX versions_by_agent ON versions (agent, seq)",
        """CREATE TABLE rollouts (
            agent TEXT PRIMARY KEY REFERENCES agents(name) ON DELETE CASCADE,
            state TEXT NOT NULL,
            updated_at REAL NOT NULL
        )""",
        "CREATE TABLE facts (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    ),
]


@dataclass(frozen=True, slots=True)
class VersionInfo:
    """One kept version of an agent, without its payload.

    Attributes:
        agent: The agent name.
        version: The version string (e.g. ``1.2.0``).
        version_number: The monotonic version number given at deploy.
        kind: ``config`` or ``wasm``.
        metadata: Deploy metadata (strategy, resource limits, who deployed, ...).
        created_at: Unix time the version was stored.
        size: Payload size in bytes.
    """

    agent: str
    version: str
    version_number: int
    kind: AgentKind
    metadata: dict[str, Any]
    created_at: float
    size: int


@dataclass(frozen=True, slots=True)
class VersionRecord:
    """One kept version with its payload (config text as UTF-8, or module bytes).

    Attributes:
        info: The version's description.
        payload: Configuration file text (UTF-8 encoded) or the WASM module bytes.
    """

    info: VersionInfo
    payload: bytes

    @property
    def version(self) -> str:
        """The version string."""
        return self.info.version

    def text(self) -> str:
        """Return the payload decoded as UTF-8 (for configuration agents).

        Returns:
            The configuration file text.

        Raises:
            InvalidArgument: The payload is a WASM module, not text.
        """
        if self.info.kind != "config":
            raise InvalidArgument(
                f"version {self.info.version} of {self.info.agent!r} is a wasm module, not text"
            )
        return self.payload.decode("utf-8")


@dataclass(frozen=True, slots=True)
class AgentRecord:
    """A deployed agent as persisted.

    Attributes:
        name: The agent name (unique on the node).
        agent_id: The agent's id.
        kind: ``config`` or ``wasm``.
        current_version: The version that serves traffic (outside a rollout).
        state: The lifecycle state name as the runtime spells it.
        strategy: The agent's default deployment / reload strategy.
        config: Deploy configuration (resource limits, policy, ...) as JSON-compatible data.
        created_at: Unix time of the first deploy.
        updated_at: Unix time of the last change.
    """

    name: str
    agent_id: str
    kind: AgentKind
    current_version: str
    state: str
    strategy: str
    config: dict[str, Any]
    created_at: float
    updated_at: float


class RolloutState(BaseModel):
    """A rollout in progress, persisted so that a restarted node can resume or roll it back.

    Attributes:
        strategy: The strategy name (``canary``, ``blue-green``, ...).
        stable_version: The version that served before the rollout (the rollback target).
        target_version: The version being rolled out.
        step: Index of the plan step reached.
        weights: Traffic weight per version (e.g. ``{"1.0.0": 75, "1.1.0": 25}``).
        started_at: Unix time the rollout began.
        operation_id: The control-port operation id that reports this rollout.
        outcome: ``None`` while running; ``promoted`` / ``rolled_back`` / ``aborted`` at the end.
        data: Strategy-specific details (analysis results, split, ...), JSON-compatible.
    """

    model_config = ConfigDict(extra="forbid")

    strategy: str
    stable_version: str
    target_version: str
    step: int = Field(default=0, ge=0)
    weights: dict[str, float] = Field(default_factory=dict)
    started_at: float = Field(default_factory=time.time)
    operation_id: str | None = None
    outcome: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AgentSnapshot:
    """Everything needed to bring one agent back at node start.

    Attributes:
        agent: The agent's record.
        versions: Its kept versions with payloads, oldest first.
        rollout: The rollout in progress, if any.
    """

    agent: AgentRecord
    versions: tuple[VersionRecord, ...]
    rollout: RolloutState | None

    def version(self, version: str) -> VersionRecord:
        """Return one kept version.

        Args:
            version: The version string.

        Returns:
            The version with its payload.

        Raises:
            VersionNotFound: The version is not kept.
        """
        for rec in self.versions:
            if rec.info.version == version:
                return rec
        raise VersionNotFound(f"agent {self.agent.name!r} keeps no version {version!r}")

    @property
    def current(self) -> VersionRecord:
        """The current version with its payload."""
        return self.version(self.agent.current_version)


@dataclass(frozen=True, slots=True)
class NodeSnapshot:
    """The whole persisted node state, as read by :meth:`NodeStore.load_all`.

    Attributes:
        agents: One snapshot per deployed agent, by name order.
        facts: The node's key/value facts.
    """

    agents: tuple[AgentSnapshot, ...]
    facts: dict[str, Any] = field(default_factory=dict)

    def agent(self, name: str) -> AgentSnapshot:
        """Return one agent's snapshot.

        Args:
            name: The agent name.

        Returns:
            The snapshot.

        Raises:
            AgentNotFound: No such agent was persisted.
        """
        for snap in self.agents:
            if snap.agent.name == name:
                return snap
        raise AgentNotFound(f"no agent named {name!r} in the node state")


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _check_kind(kind: str) -> AgentKind:
    if kind not in _KINDS:
        raise InvalidArgument(f"agent kind must be 'config' or 'wasm', not {kind!r}")
    return kind  # type: ignore[return-value]


def _state_name(state: object) -> str:
    """Store an enum member as its value (``WasmAgentState.RUNNING`` → ``"running"``)."""
    return str(getattr(state, "value", state))


def _as_bytes(payload: bytes | str) -> bytes:
    return payload.encode("utf-8") if isinstance(payload, str) else bytes(payload)


class NodeStore:
    """The node's state database.

    Args:
        path: The SQLite file (created with its directory if missing).
        timeout: Seconds to wait for a lock held by another connection.

    Raises:
        StoreError: The file was written by a newer schema, or is not a usable database.
    """

    def __init__(self, path: str | Path, *, timeout: float = 10.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._batch_done = threading.Condition(self._lock)
        self._arrivals_lock = threading.Lock()
        self._arriving = 0  # writers waiting for the lock (they join the open batch)
        self._open_batch = 0  # number of the latest write batch (transaction) begun
        self._committed = 0  # batches up to this number are committed (or failed)
        self._failures: dict[int, str] = {}  # batch -> why its COMMIT failed
        try:
            self._conn = sqlite3.connect(
                str(self.path), timeout=timeout, isolation_level=None, check_same_thread=False
            )
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                f"cannot open node state {self.path}: {exc}; move the file aside to start fresh"
            ) from exc

    # -- plumbing -------------------------------------------------------------------------

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """Run the block as one atomic write and return once it is durable (group commit).

        The block runs in a ``SAVEPOINT`` of the open batch transaction (``BEGIN IMMEDIATE``,
        started by the first writer of a batch): it applies all of its changes or, when it
        raises, none. Then its thread commits the batch, unless a writer that came before it
        already has, which includes every block that joined the batch meanwhile. So
        concurrent writers (deploys from the control port's handler threads) share one
        ``COMMIT`` and its fsync, and no call returns before its own changes are committed
        (``synchronous=FULL``): what a caller was told is done survives ``kill -9`` and power
        loss, as with one transaction per call. A failed ``COMMIT`` fails every call of its
        batch.
        """
        with self._arrivals_lock:
            self._arriving += 1
        with self._lock:
            with self._arrivals_lock:
                self._arriving -= 1
            if not self._conn.in_transaction:
                self._conn.execute("BEGIN IMMEDIATE")
                self._open_batch += 1
            batch = self._open_batch
            self._conn.execute("SAVEPOINT caxton_write")
            failed: BaseException | None = None
            try:
                yield self._conn
                self._conn.execute("RELEASE caxton_write")
            except BaseException as exc:
                self._undo_write(batch, exc)
                failed = exc
        if failed is not None:
            # Still close the batch (it may hold other blocks, or nothing but this one's
            # undone changes, and an open transaction keeps the database's write lock).
            with suppress(StoreError):
                self._commit(batch)
            raise failed
        self._commit(batch)

    def _undo_write(self, batch: int, exc: BaseException) -> None:
        """Roll back one failed block, keeping the other blocks of its batch."""
        if self._conn.in_transaction:
            try:
                self._conn.execute("ROLLBACK TO caxton_write")
                self._conn.execute("RELEASE caxton_write")
                return
            except sqlite3.Error:
                self._conn.execute("ROLLBACK")
        # SQLite rolled back the whole batch (an I/O error, a full disk): its other blocks
        # are lost too, and their callers must hear so.
        self._batch_failed(batch, exc)

    def _commit(self, batch: int) -> None:
        with self._lock:
            # Writers already waiting for the lock join this batch first (their blocks are
            # quick; the commit is the slow part), within a bound so a steady stream of them
            # cannot hold this caller back.
            deadline = time.monotonic() + _GROUP_COMMIT_WAIT
            while self._committed < batch and self._arriving > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._batch_done.wait(left)
            if self._committed < batch:
                try:
                    self._conn.execute("COMMIT")
                except BaseException as exc:
                    if self._conn.in_transaction:
                        self._conn.execute("ROLLBACK")
                    self._batch_failed(batch, exc)
                else:
                    self._committed = batch
                self._batch_done.notify_all()
            failure = self._failures.get(batch)
        if failure is not None:
            raise StoreError(f"the node state could not be saved to {self.path}: {failure}")

    def _batch_failed(self, batch: int, exc: BaseException) -> None:
        self._failures[batch] = repr(exc)
        self._committed = batch
        self._batch_done.notify_all()
        while len(self._failures) > 64:  # only batches still being waited for matter
            del self._failures[next(iter(self._failures))]

    def _migrate(self) -> None:
        with self._tx() as db:
            db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = db.execute("SELECT version FROM schema_version").fetchone()
            current = 0 if row is None else int(row[0])
            if current > len(MIGRATIONS):
                raise StoreError(
                    f"node state {self.path} has schema version {current}, newer than this "
                    f"Caxton understands ({len(MIGRATIONS)}); upgrade Caxton or use another "
                    "--data-dir"
                )
            for statements in MIGRATIONS[current:]:
                for sql in statements:
                    db.execute(sql)
            if row is None:
                db.execute("INSERT INTO schema_version (version) VALUES (?)", (len(MIGRATIONS),))
            else:
                db.execute("UPDATE schema_version SET version = ?", (len(MIGRATIONS),))

    @property
    def schema_version(self) -> int:
        """The schema version of the open database."""
        with self._lock:
            return int(self._conn.execute("SELECT version FROM schema_version").fetchone()[0])

    def close(self) -> None:
        """Close the database (idempotent)."""
        with self._lock:
            try:
                if self._conn.in_transaction:  # a batch whose committer waits for the lock
                    self._conn.execute("COMMIT")
                    self._committed = self._open_batch
            except sqlite3.ProgrammingError:
                pass  # closed already
            self._conn.close()

    def __enter__(self) -> NodeStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def integrity_check(self) -> str:
        """Run ``PRAGMA integrity_check``.

        Returns:
            ``"ok"`` when the database is sound, otherwise SQLite's findings.
        """
        with self._lock:
            rows = self._conn.execute("PRAGMA integrity_check").fetchall()
        return "\n".join(str(r[0]) for r in rows)

    # -- row mapping ----------------------------------------------------------------------

    @staticmethod
    def _agent(row: tuple[Any, ...]) -> AgentRecord:
        name, agent_id, kind, current, state, strategy, config, created, updated = row
        return AgentRecord(
            name=name,
            agent_id=agent_id,
            kind=kind,
            current_version=current,
            state=state,
            strategy=strategy,
            config=json.loads(config),
            created_at=created,
            updated_at=updated,
        )

    @staticmethod
    def _info(row: tuple[Any, ...]) -> VersionInfo:
        agent, version, number, kind, metadata, created, size = row
        return VersionInfo(
            agent=agent,
            version=version,
            version_number=int(number),
            kind=kind,
            metadata=json.loads(metadata),
            created_at=created,
            size=int(size),
        )

    _AGENT_COLS = (
        "name, agent_id, kind, current_version, state, strategy, config, created_at, updated_at"
    )
    _INFO_COLS = "agent, version, version_number, kind, metadata, created_at, length(payload)"

    def _require_agent(self, db: sqlite3.Connection, name: str) -> AgentRecord:
        row = db.execute(
            f"SELECT {self._AGENT_COLS} FROM agents WHERE name = ?", (name,)
        ).fetchone()
        if row is None:
            raise AgentNotFound(f"no agent named {name!r} is recorded on this node")
        return self._agent(row)

    def _require_version(self, db: sqlite3.Connection, name: str, version: str) -> None:
        row = db.execute(
            "SELECT 1 FROM versions WHERE agent = ? AND version = ?", (name, version)
        ).fetchone()
        if row is None:
            kept = [r[0] for r in db.execute(
                "SELECT version FROM versions WHERE agent = ? ORDER BY seq", (name,)
            )]
            raise VersionNotFound(
                f"agent {name!r} keeps no version {version!r}; kept versions: "
                f"{', '.join(kept) or 'none'}"
            )

    def _insert_version(
        self,
        db: sqlite3.Connection,
        name: str,
        kind: str,
        version: str,
        version_number: int,
        payload: bytes,
        metadata: Mapping[str, Any] | None,
        now: float,
    ) -> None:
        # Redeploying a kept version string replaces it and makes it the newest.
        db.execute("DELETE FROM versions WHERE agent = ? AND version = ?", (name, version))
        db.execute(
            "INSERT INTO versions (agent, version, version_number, kind, payload, metadata,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (name, version, int(version_number), kind, payload, _dumps(dict(metadata or {})), now),
        )

    def _prune(self, db: sqlite3.Connection, name: str) -> None:
        """Drop the oldest versions beyond :data:`KEEP_VERSIONS`, never the current or the
        versions a persisted rollout refers to."""
        protected = {r[0] for r in db.execute(
            "SELECT current_version FROM agents WHERE name = ?", (name,)
        )}
        row = db.execute("SELECT state FROM rollouts WHERE agent = ?", (name,)).fetchone()
        if row is not None:
            ro = json.loads(row[0])
            protected |= {ro.get("stable_version"), ro.get("target_version")}
        seqs = db.execute(
            "SELECT seq, version FROM versions WHERE agent = ? ORDER BY seq", (name,)
        ).fetchall()
        excess = len(seqs) - KEEP_VERSIONS
        for seq, version in seqs:
            if excess <= 0:
                break
            if version in protected:
                continue
            db.execute("DELETE FROM versions WHERE seq = ?", (seq,))
            excess -= 1

    # -- writes ---------------------------------------------------------------------------

    def record_deploy(
        self,
        name: str,
        *,
        agent_id: str,
        kind: str,
        version: str,
        version_number: int,
        payload: bytes | str,
        metadata: Mapping[str, Any] | None = None,
        config: Mapping[str, Any] | None = None,
        strategy: str = "immediate",
        state: object = "active",
        make_current: bool = True,
    ) -> AgentRecord:
        """Record a deploy: create or update the agent and store a version, in one transaction.

        For a new agent the version is always made current (it has no other). For a known
        agent, ``make_current=False`` stores the version without switching (a rollout starting;
        see also :meth:`deploy_version`).

        Args:
            name: The agent name.
            agent_id: The agent's id.
            kind: ``config`` or ``wasm``; must match the kind already recorded.
            version: The version string.
            version_number: The monotonic version number.
            payload: Config file text or module bytes.
            metadata: Deploy metadata of this version.
            config: The agent's deploy configuration (resource limits, policy, ...).
            strategy: The agent's default strategy.
            state: The lifecycle state to record.
            make_current: Switch the agent to this version.

        Returns:
            The agent record after the deploy.

        Raises:
            InvalidArgument: Unknown kind, or a kind different from the recorded one.
        """
        kind = _check_kind(kind)
        data = _as_bytes(payload)
        now = time.time()
        with self._tx() as db:
            row = db.execute("SELECT kind FROM agents WHERE name = ?", (name,)).fetchone()
            if row is None:
                # A new agent: its only version is current, there is nothing to prune (its
                # versions and rollout rows went with any earlier agent of that name), and its
                # record is what was inserted (five statements fewer under the write lock).
                values = (name, agent_id, kind, version, _state_name(state), strategy,
                          _dumps(dict(config or {})), now, now)
                db.execute(
                    f"INSERT INTO agents ({self._AGENT_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    values,
                )
                db.execute(
                    "INSERT INTO versions (agent, version, version_number, kind, payload,"
                    " metadata, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (name, version, int(version_number), kind, data,
                     _dumps(dict(metadata or {})), now),
                )
                return self._agent(values)
            else:
                if row[0] != kind:
                    raise InvalidArgument(
                        f"agent {name!r} is a {row[0]} agent; cannot deploy a {kind} version "
                        "under the same name (remove it first or choose another name)"
                    )
                db.execute(
                    "UPDATE agents SET agent_id = ?, state = ?, strategy = ?, config = ?,"
                    " updated_at = ? WHERE name = ?",
                    (agent_id, _state_name(state), strategy, _dumps(dict(config or {})), now, name),
                )
            self._insert_version(db, name, kind, version, version_number, data, metadata, now)
            if make_current:
                db.execute(
                    "UPDATE agents SET current_version = ? WHERE name = ?", (version, name)
                )
            self._prune(db, name)
            return self._require_agent(db, name)

    def deploy_version(
        self,
        name: str,
        version: str,
        payload: bytes | str,
        *,
        version_number: int,
        metadata: Mapping[str, Any] | None = None,
        make_current: bool = True,
        rollout: RolloutState | None = None,
    ) -> VersionInfo:
        """Store a new version of a known agent, in one transaction with its consequences.

        Typical uses: an immediate reload (``make_current=True``), or the start of a rollout
        (``make_current=False, rollout=RolloutState(...)``) so that the new version and the
        rollout that refers to it are persisted together.

        Args:
            name: The agent name.
            version: The version string.
            payload: Config file text or module bytes.
            version_number: The monotonic version number.
            metadata: Deploy metadata of this version.
            make_current: Switch the agent to this version.
            rollout: A rollout state to persist in the same transaction.

        Returns:
            The stored version's description.

        Raises:
            AgentNotFound: The agent is not recorded.
        """
        data = _as_bytes(payload)
        now = time.time()
        with self._tx() as db:
            agent = self._require_agent(db, name)
            self._insert_version(db, name, agent.kind, version, version_number, data, metadata, now)
            if make_current:
                db.execute(
                    "UPDATE agents SET current_version = ?, updated_at = ? WHERE name = ?",
                    (version, now, name),
                )
            if rollout is not None:
                self._put_rollout(db, name, rollout, now)
            self._prune(db, name)
            row = db.execute(
                f"SELECT {self._INFO_COLS} FROM versions WHERE agent = ? AND version = ?",
                (name, version),
            ).fetchone()
            return self._info(row)

    def set_state(self, name: str, state: object) -> None:
        """Record an agent's lifecycle state.

        Args:
            name: The agent name.
            state: The state name (a ``StrEnum`` member is stored as its value).

        Raises:
            AgentNotFound: The agent is not recorded.
        """
        with self._tx() as db:
            self._require_agent(db, name)
            db.execute(
                "UPDATE agents SET state = ?, updated_at = ? WHERE name = ?",
                (_state_name(state), time.time(), name),
            )

    def set_current_version(
        self, name: str, version: str, *, clear_rollout: bool = False
    ) -> None:
        """Switch the agent's current version (a rollback, or a rollout's promotion).

        Args:
            name: The agent name.
            version: A kept version.
            clear_rollout: Also delete the persisted rollout, in the same transaction.

        Raises:
            AgentNotFound: The agent is not recorded.
            VersionNotFound: The version is not kept.
        """
        with self._tx() as db:
            self._require_agent(db, name)
            self._require_version(db, name, version)
            db.execute(
                "UPDATE agents SET current_version = ?, updated_at = ? WHERE name = ?",
                (version, time.time(), name),
            )
            if clear_rollout:
                db.execute("DELETE FROM rollouts WHERE agent = ?", (name,))
            self._prune(db, name)

    def update_agent(
        self,
        name: str,
        *,
        config: Mapping[str, Any] | None = None,
        strategy: str | None = None,
        agent_id: str | None = None,
    ) -> AgentRecord:
        """Change an agent's deploy configuration, default strategy or id.

        Args:
            name: The agent name.
            config: New deploy configuration (replaces the old), if given.
            strategy: New default strategy, if given.
            agent_id: New id, if given.

        Returns:
            The updated record.

        Raises:
            AgentNotFound: The agent is not recorded.
        """
        with self._tx() as db:
            cur = self._require_agent(db, name)
            db.execute(
                "UPDATE agents SET config = ?, strategy = ?, agent_id = ?, updated_at = ?"
                " WHERE name = ?",
                (
                    _dumps(dict(config)) if config is not None else _dumps(cur.config),
                    strategy if strategy is not None else cur.strategy,
                    agent_id if agent_id is not None else cur.agent_id,
                    time.time(),
                    name,
                ),
            )
            return self._require_agent(db, name)

    def _put_rollout(
        self, db: sqlite3.Connection, name: str, rollout: RolloutState, now: float
    ) -> None:
        for v in (rollout.stable_version, rollout.target_version):
            self._require_version(db, name, v)
        db.execute(
            "INSERT INTO rollouts (agent, state, updated_at) VALUES (?, ?, ?)"
            " ON CONFLICT (agent) DO UPDATE SET state = excluded.state,"
            " updated_at = excluded.updated_at",
            (name, rollout.model_dump_json(), now),
        )

    def set_rollout(self, name: str, rollout: RolloutState) -> None:
        """Persist (create or replace) the agent's rollout state.

        Args:
            name: The agent name.
            rollout: The rollout's current state.

        Raises:
            AgentNotFound: The agent is not recorded.
            VersionNotFound: The rollout's stable or target version is not kept.
        """
        with self._tx() as db:
            self._require_agent(db, name)
            self._put_rollout(db, name, rollout, time.time())

    def clear_rollout(self, name: str) -> bool:
        """Delete the agent's persisted rollout (it finished or was rolled back).

        Args:
            name: The agent name.

        Returns:
            Whether there was a rollout to delete.
        """
        with self._tx() as db:
            cur = db.execute("DELETE FROM rollouts WHERE agent = ?", (name,))
            removed = cur.rowcount > 0
            self._prune(db, name)
            return removed

    def remove_agent(self, name: str) -> bool:
        """Forget an agent with its versions and rollout.

        Args:
            name: The agent name.

        Returns:
            Whether the agent was recorded (removing an unknown agent is not an error, so
            recovery can retry a half-done removal).
        """
        with self._tx() as db:
            db.execute("DELETE FROM rollouts WHERE agent = ?", (name,))
            db.execute("DELETE FROM versions WHERE agent = ?", (name,))
            cur = db.execute("DELETE FROM agents WHERE name = ?", (name,))
            return cur.rowcount > 0

    def set_fact(self, key: str, value: Any) -> None:
        """Store a node fact (JSON-compatible value), replacing any previous one.

        Args:
            key: The fact's name.
            value: Any JSON-serialisable value.

        Raises:
            InvalidArgument: The value is not JSON-serialisable.
        """
        try:
            text = _dumps(value)
        except (TypeError, ValueError) as exc:
            raise InvalidArgument(f"node fact {key!r} is not JSON-serialisable: {exc}") from exc
        with self._tx() as db:
            db.execute(
                "INSERT INTO facts (key, value) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, text),
            )

    def delete_fact(self, key: str) -> bool:
        """Delete a node fact.

        Args:
            key: The fact's name.

        Returns:
            Whether it existed.
        """
        with self._tx() as db:
            return db.execute("DELETE FROM facts WHERE key = ?", (key,)).rowcount > 0

    # -- reads ----------------------------------------------------------------------------

    def get_fact(self, key: str, default: Any = None) -> Any:
        """Read a node fact.

        Args:
            key: The fact's name.
            default: Returned when the fact is absent.

        Returns:
            The stored value or ``default``.
        """
        with self._lock:
            row = self._conn.execute("SELECT value FROM facts WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    def facts(self) -> dict[str, Any]:
        """Return every node fact.

        Returns:
            A dict of fact name to value.
        """
        with self._lock:
            rows = self._conn.execute("SELECT key, value FROM facts ORDER BY key").fetchall()
        return {k: json.loads(v) for k, v in rows}

    def get_agent(self, name: str) -> AgentRecord:
        """Return an agent's record.

        Args:
            name: The agent name.

        Returns:
            The record.

        Raises:
            AgentNotFound: The agent is not recorded.
        """
        with self._lock:
            return self._require_agent(self._conn, name)

    def list_agents(self) -> list[AgentRecord]:
        """Return every recorded agent, by name.

        Returns:
            The records.
        """
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {self._AGENT_COLS} FROM agents ORDER BY name"
            ).fetchall()
        return [self._agent(r) for r in rows]

    def get_version(self, name: str, version: str) -> VersionRecord:
        """Return one kept version with its payload.

        Args:
            name: The agent name.
            version: The version string.

        Returns:
            The version and payload.

        Raises:
            AgentNotFound: The agent is not recorded.
            VersionNotFound: The version is not kept.
        """
        with self._lock:
            self._require_agent(self._conn, name)
            self._require_version(self._conn, name, version)
            row = self._conn.execute(
                f"SELECT {self._INFO_COLS}, payload FROM versions WHERE agent = ? AND version = ?",
                (name, version),
            ).fetchone()
        return VersionRecord(info=self._info(row[:-1]), payload=bytes(row[-1]))

    def list_versions(self, name: str) -> list[VersionInfo]:
        """Return the agent's kept versions, oldest first, without payloads.

        Args:
            name: The agent name.

        Returns:
            At most :data:`KEEP_VERSIONS` entries (plus any a rollout still needs).

        Raises:
            AgentNotFound: The agent is not recorded.
        """
        with self._lock:
            self._require_agent(self._conn, name)
            rows = self._conn.execute(
                f"SELECT {self._INFO_COLS} FROM versions WHERE agent = ? ORDER BY seq", (name,)
            ).fetchall()
        return [self._info(r) for r in rows]

    def get_rollout(self, name: str) -> RolloutState | None:
        """Return the agent's persisted rollout.

        Args:
            name: The agent name.

        Returns:
            The rollout state, or ``None`` when no rollout is in progress.
        """
        with self._lock:
            row = self._conn.execute(
                "SELECT state FROM rollouts WHERE agent = ?", (name,)
            ).fetchone()
        return None if row is None else RolloutState.model_validate_json(row[0])

    def load_all(self) -> NodeSnapshot:
        """Read the whole state in one consistent read transaction (for recovery at start).

        Returns:
            Every agent with its kept versions (payloads included) and rollout, and the facts.
        """
        with self._lock:
            db = self._conn
            db.execute("BEGIN")
            try:
                agents = [self._agent(r) for r in db.execute(
                    f"SELECT {self._AGENT_COLS} FROM agents ORDER BY name"
                )]
                versions: dict[str, list[VersionRecord]] = {a.name: [] for a in agents}
                for row in db.execute(
                    f"SELECT {self._INFO_COLS}, payload FROM versions ORDER BY agent, seq"
                ):
                    rec = VersionRecord(info=self._info(row[:-1]), payload=bytes(row[-1]))
                    versions.setdefault(rec.info.agent, []).append(rec)
                rollouts = {
                    a: RolloutState.model_validate_json(s)
                    for a, s in db.execute("SELECT agent, state FROM rollouts")
                }
                facts = {k: json.loads(v) for k, v in db.execute("SELECT key, value FROM facts")}
            finally:
                db.execute("COMMIT")
        return NodeSnapshot(
            agents=tuple(
                AgentSnapshot(agent=a, versions=tuple(versions[a.name]), rollout=rollouts.get(a.name))
                for a in agents
            ),
            facts=facts,
        )


__all__ = [
    "KEEP_VERSIONS",
    "MIGRATIONS",
    "AgentRecord",
    "AgentSnapshot",
    "NodeSnapshot",
    "NodeStore",
    "RolloutState",
    "StoreError",
    "VersionInfo",
    "VersionRecord",
]
