"""Weighted version assignment: pure, deterministic given a seed.

A new conversation is assigned by hashing ``(seed, conversation_id)`` onto ``[0, 1)`` — so the
same conversation id always lands on the same version for the same weights, whatever the order
of arrival. A one-shot message (no conversation) draws from a seeded RNG.
"""

from __future__ import annotations

import bisect
import hashlib
import random
from collections.abc import Mapping

from caxton.errors import InvalidArgument

_SCALE = float(1 << 64)


class WeightedAssigner:
    """Pick a version by weight.

    Args:
        seed: Makes every assignment reproducible.
        weights: Initial ``{version: weight}``; weights are non-negative integers.
    """

    def __init__(self, seed: int = 0, weights: Mapping[str, int] | None = None) -> None:
        self._seed = seed
        self._salt = seed.to_bytes(8, "big", signed=True)
        self._rng = random.Random(seed)
        self._names: list[str] = []
        self._cumulative: list[float] = []
        self._total = 0
        self.set_weights(weights or {})

    def set_weights(self, weights: Mapping[str, int]) -> None:
        """Replace the weights.

        Args:
            weights: ``{version: weight}``; zero-weight versions are never picked.

        Raises:
            InvalidArgument: A weight is negative or not an integer.
        """
        names: list[str] = []
        cumulative: list[float] = []
        total = 0
        for name in sorted(weights):
            weight = weights[name]
            if not isinstance(weight, int) or weight < 0:
                raise InvalidArgument(f"weight of version {name!r} must be an integer >= 0, "
                                      f"got {weight!r}")
            if weight == 0:
                continue
            total += weight
            names.append(name)
            cumulative.append(float(total))
        self._names, self._total = names, total
        self._cumulative = [c / total for c in cumulative] if total else []

    @property
    def weights_total(self) -> int:
        """Sum of the weights (0: nothing can be picked)."""
        return self._total

    def _pick(self, u: float) -> str | None:
        if not self._names:
            return None
        index = bisect.bisect_right(self._cumulative, u)
        return self._names[min(index, len(self._names) - 1)]

    def assign(self, conversation_id: str) -> str | None:
        """Version for a new conversation (a pure function of seed, id and weights).

        Args:
            conversation_id: The conversation.

        Returns:
            The version, or ``None`` when every weight is zero.
        """
        digest = hashlib.blake2b(conversation_id.encode(), digest_size=8, key=self._salt).digest()
        return self._pick(int.from_bytes(digest, "big") / _SCALE)

    def pick(self) -> str | None:
        """Version for a one-shot message (seeded RNG, deterministic per call sequence).

        Returns:
            The version, or ``None`` when every weight is zero.
        """
        if len(self._names) == 1:
            return self._names[0]
        return self._pick(self._rng.random())


__all__ = ["WeightedAssigner"]
