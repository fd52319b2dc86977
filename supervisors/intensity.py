"""Restart intensity: a pure sliding window over restart times (OTP's MaxR within MaxT)."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

__all__ = ["RestartIntensity"]


class RestartIntensity:
    """Counts restarts in a sliding window of ``within`` seconds.

    Exceeding the intensity means *more than* ``max_restarts`` restarts inside the
    window, as in OTP: with ``max_restarts=0`` the first restart already exceeds it.

    Args:
        max_restarts: Restarts tolerated inside the window (>= 0).
        within: Window length in seconds (> 0).
        clock: Monotonic clock in seconds; inject a fake one in tests.

    Raises:
        ValueError: if a parameter is out of range.
    """

    __slots__ = ("_clock", "_times", "max_restarts", "within")

    def __init__(
        self,
        max_restarts: int = 3,
        within: float = 5.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not isinstance(max_restarts, int) or max_restarts < 0:
            raise ValueError(f"max_restarts must be an int >= 0, got {max_restarts!r}")
        if not isinstance(within, int | float) or not math.isfinite(within) or within <= 0:
            raise ValueError(f"within must be a finite number of seconds > 0, got {within!r}")
        self.max_restarts = max_restarts
        self.within = float(within)
        self._clock = clock
        self._times: deque[float] = deque()

    def _expire(self, now: float) -> None:
        horizon = now - self.within
        while self._times and self._times[0] <= horizon:
            self._times.popleft()

    def record(self) -> bool:
        """Record one restart now.

        Returns:
            True if the restart is within the intensity, False if it exceeds it
            (the supervisor should then give up and escalate).
        """
        now = self._clock()
        self._expire(now)
        self._times.append(now)
        return len(self._times) <= self.max_restarts

    def count(self) -> int:
        """Return the number of restarts currently inside the window.

        Returns:
            How many recorded restarts are younger than ``within`` seconds.
        """
        self._expire(self._clock())
        return len(self._times)
