"""The snapshot format of one memory partition (``recover --restore-memory`` restores it).

A snapshot is UTF-8 JSON::

    {"format": "caxton-memory-snapshot", "version": 1,
     "scope": "agent", "owner": "DataProcessor", "created": 1717000000.0,
     "entities": [{"name": "...", "type": "...",
                   "observations": [{"text": "...", "created": 1717000000.0}]}],
     "relations": [{"source": "...", "target": "...", "type": "..."}]}

JSON rather than a raw SQLite page copy so a snapshot is readable, diffable, independent of the
schema version, and can be restored into a partition of a different store file.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from caxton.errors import InvalidArgument
from caxton.memory.models import Entity, Observation, Relation
from caxton.memory.scope import MemoryScope, ScopeKey

FORMAT = "caxton-memory-snapshot"
VERSION = 1


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The decoded contents of one partition.

    Attributes:
        key: The partition it was taken from.
        created: Unix time it was taken.
        entities: Every entity with its observations.
        relations: Every relation.
    """

    key: ScopeKey
    created: float
    entities: tuple[Entity, ...]
    relations: tuple[Relation, ...]

    def encode(self) -> bytes:
        """Return the snapshot as UTF-8 JSON bytes."""
        doc: dict[str, Any] = {
            "format": FORMAT,
            "version": VERSION,
            "scope": str(self.key.scope),
            "owner": self.key.owner,
            "created": self.created,
            "entities": [
                {
                    "name": e.name,
                    "type": e.type,
                    "observations": [{"text": o.text, "created": o.created}
                                     for o in e.observations],
                }
                for e in self.entities
            ],
            "relations": [{"source": r.source, "target": r.target, "type": r.type}
                          for r in self.relations],
        }
        return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    @classmethod
    def decode(cls, data: bytes) -> Snapshot:
        """Parse snapshot bytes.

        Args:
            data: Bytes produced by :meth:`encode`.

        Returns:
            The decoded snapshot.

        Raises:
            InvalidArgument: The bytes are not a Caxton memory snapshot of a known version.
        """
        try:
            doc = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidArgument(f"not a memory snapshot (invalid JSON: {exc})") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise InvalidArgument(f"not a memory snapshot (missing format {FORMAT!r})")
        if doc.get("version") != VERSION:
            raise InvalidArgument(
                f"memory snapshot version {doc.get('version')!r} is not supported "
                f"(this node reads version {VERSION})"
            )
        try:
            key = ScopeKey(MemoryScope(doc["scope"]), str(doc["owner"]))
            entities = tuple(
                Entity(
                    name=str(e["name"]),
                    type=str(e["type"]),
                    observations=tuple(Observation(str(o["text"]), float(o["created"]))
                                       for o in e.get("observations", [])),
                )
                for e in doc["entities"]
            )
            relations = tuple(Relation(str(r["source"]), str(r["target"]), str(r["type"]))
                              for r in doc["relations"])
            created = float(doc.get("created", time.time()))
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidArgument(f"memory snapshot is malformed: {exc!r}") from None
        return cls(key, created, entities, relations)


__all__ = ["Snapshot"]
