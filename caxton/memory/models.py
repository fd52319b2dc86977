"""Plain values returned by the memory store."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Observation:
    """A piece of text attached to an entity.

    Attributes:
        text: The observation text.
        created: Unix time it was stored.
    """

    text: str
    created: float


@dataclass(frozen=True, slots=True)
class Entity:
    """A named node of the knowledge graph.

    Attributes:
        name: Unique name within its scope partition.
        type: Free-form entity type (``person``, ``dataset``, ``conversation`` ...).
        observations: Observations attached to it, oldest first.
    """

    name: str
    type: str
    observations: tuple[Observation, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class Relation:
    """A directed, typed edge between two entities of the same partition.

    Attributes:
        source: Name of the entity the edge starts at.
        target: Name of the entity the edge points to.
        type: Edge type (``handled_by``, ``depends_on`` ...).
    """

    source: str
    target: str
    type: str


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One full-text search result.

    Attributes:
        entity: Name of the matching entity.
        entity_type: Its type.
        text: The matching text (the entity name or one observation).
        score: BM25 rank; lower is better, as SQLite reports it.
    """

    entity: str
    entity_type: str
    text: str
    score: float


__all__ = ["Entity", "Observation", "Relation", "SearchHit"]
