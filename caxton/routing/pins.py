"""The conversation → version pin map, with idle expiry (pure; the caller passes ``now``)."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass


@dataclass(slots=True)
class _Pin:
    version: str
    last_seen: float


class PinTable:
    """Conversation pins kept in least-recently-seen order so expiry is cheap.

    Not thread-safe: the router guards it with its lock.
    """

    def __init__(self) -> None:
        self._pins: OrderedDict[str, _Pin] = OrderedDict()
        self._counts: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._pins)

    def get(self, conversation_id: str, now: float) -> str | None:
        """Return the pinned version and mark the conversation seen.

        Args:
            conversation_id: The conversation.
            now: The current time.

        Returns:
            The pinned version, or ``None``.
        """
        pin = self._pins.get(conversation_id)
        if pin is None:
            return None
        pin.last_seen = now
        self._pins.move_to_end(conversation_id)
        return pin.version

    def peek(self, conversation_id: str) -> str | None:
        """Return the pinned version without marking the conversation seen."""
        pin = self._pins.get(conversation_id)
        return None if pin is None else pin.version

    def pin(self, conversation_id: str, version: str, now: float) -> None:
        """Pin (or re-pin) a conversation to a version.

        Args:
            conversation_id: The conversation.
            version: The version.
            now: The current time.
        """
        self.end(conversation_id)
        self._pins[conversation_id] = _Pin(version, now)
        self._counts[version] = self._counts.get(version, 0) + 1

    def end(self, conversation_id: str) -> str | None:
        """Forget a conversation.

        Args:
            conversation_id: The conversation.

        Returns:
            The version it was pinned to, or ``None`` if it was not pinned.
        """
        pin = self._pins.pop(conversation_id, None)
        if pin is None:
            return None
        self._counts[pin.version] -= 1
        return pin.version

    def count(self, version: str) -> int:
        """Number of conversations pinned to ``version``."""
        return self._counts.get(version, 0)

    def move(self, src: str, dst: str | None) -> int:
        """Re-pin every conversation of ``src`` to ``dst`` (``None``: unpin them).

        Args:
            src: The version losing its conversations.
            dst: The version receiving them, or ``None``.

        Returns:
            How many conversations moved.
        """
        if self._counts.get(src, 0) == 0:
            return 0
        moved = 0
        for conversation_id in [c for c, p in self._pins.items() if p.version == src]:
            moved += 1
            if dst is None:
                self.end(conversation_id)
            else:
                self._pins[conversation_id].version = dst
        self._counts[src] = 0
        if dst is not None:
            self._counts[dst] = self._counts.get(dst, 0) + moved
        return moved

    def expire(self, older_than: float) -> int:
        """Forget conversations not seen since ``older_than``.

        Args:
            older_than: Conversations last seen before this time end.

        Returns:
            How many conversations ended.
        """
        expired = 0
        while self._pins:
            conversation_id, pin = next(iter(self._pins.items()))
            if pin.last_seen >= older_than:
                break
            self.end(conversation_id)
            expired += 1
        return expired


__all__ = ["PinTable"]
