"""An agent that notes every message must keep bounded memory (observations are pruned)."""

from __future__ import annotations

from pathlib import Path

from caxton.memory import MemoryStore


def test_observations_per_entity_are_capped(tmp_path: Path) -> None:
    store = MemoryStore(tmp_path / "m.db")
    try:
        mem = store.handle("agent", agent="a")
        mem.max_observations = 50
        for i in range(1000):
            mem.observe("agent:a", f"note {i}")
        entity = mem.get_entity("agent:a")
        assert entity is not None
        kept = [o.text for o in entity.observations]
        assert 50 <= len(kept) <= 50 + 16, len(kept)
        assert kept[-1] == "note 999", "the newest observation must be kept"
        assert "note 0" not in kept, "the oldest observations must be pruned"
        # the full-text index follows the pruning
        assert not [h for h in mem.search("note 0") if h.text == "note 0"]
    finally:
        store.close()
