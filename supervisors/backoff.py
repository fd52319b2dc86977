"""Restart backoff: a pure, exponential delay schedule with jitter."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

__all__ = ["Backoff"]

_default_rng = random.Random()


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with jitter for consecutive restarts of one child.

    The un-jittered delay of the *n*-th consecutive restart is
    ``min(max, min * factor ** (n - 1))``. Jitter then shortens it by a random
    fraction of up to ``jitter``, so the actual delay lies in
    ``[base * (1 - jitter), base]``: ``max`` is a hard ceiling, and children that
    all reached the cap still spread over ``[max * (1 - jitter), max]`` instead of
    restarting in one thundering herd.

    Args:
        min: Delay of the first restart, in seconds (0 restarts at once).
        max: Ceiling of any delay, in seconds.
        factor: Growth per consecutive restart (>= 1).
        jitter: Fraction of the delay that is randomised, in ``[0, 1]``.
        reset_after: A child that ran at least this many seconds before it exited
            starts the schedule over (its next restart uses ``min`` again).

    Raises:
        ValueError: if a parameter is out of range.
    """

    min: float = 0.1
    max: float = 30.0
    factor: float = 2.0
    jitter: float = 0.2
    reset_after: float = 60.0

    def __post_init__(self) -> None:
        for name in ("min", "max", "factor", "jitter", "reset_after"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise ValueError(f"Backoff.{name} must be a finite number >= 0, got {value!r}")
        if self.max < self.min:
            raise ValueError(f"Backoff.max ({self.max!r}) must be >= Backoff.min ({self.min!r})")
        if self.factor < 1:
            raise ValueError(
                f"Backoff.factor must be >= 1 (delays never shrink), got {self.factor!r}"
            )
        if self.jitter > 1:
            raise ValueError(f"Backoff.jitter is a fraction in [0, 1], got {self.jitter!r}")

    @classmethod
    def immediate(cls) -> Backoff:
        """Return a backoff that restarts at once, every time.

        Returns:
            ``Backoff(min=0, max=0, jitter=0)``.
        """
        return cls(min=0.0, max=0.0, jitter=0.0)

    def base_delay(self, attempt: int) -> float:
        """Return the un-jittered delay of the ``attempt``-th consecutive restart.

        Args:
            attempt: 1 for the first restart after a healthy run, 2 for the next, ...

        Returns:
            The delay in seconds, capped at ``max``.

        Raises:
            ValueError: if ``attempt`` < 1.
        """
        if attempt < 1:
            raise ValueError(f"attempt counts restarts from 1, got {attempt!r}")
        if self.min == 0:
            return 0.0
        # Compare exponents rather than computing factor ** n, which overflows for big n.
        if self.factor > 1 and (attempt - 1) * math.log(self.factor) >= math.log(
            self.max / self.min
        ):
            return self.max
        return min(self.max, self.min * self.factor ** (attempt - 1))

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Return the jittered delay of the ``attempt``-th consecutive restart.

        Args:
            attempt: 1 for the first restart after a healthy run, 2 for the next, ...
            rng: Source of randomness; inject a seeded :class:`random.Random` for a
                deterministic schedule. Defaults to a module-level generator.

        Returns:
            A delay in ``[base * (1 - jitter), base]`` seconds, never above ``max``.

        Raises:
            ValueError: if ``attempt`` < 1.
        """
        base = self.base_delay(attempt)
        if self.jitter == 0 or base == 0:
            return base
        return base * (1.0 - self.jitter * (rng or _default_rng).random())

    def resets(self, ran_for: float) -> bool:
        """Tell whether a run of ``ran_for`` seconds starts the schedule over.

        Args:
            ran_for: Seconds the child ran between its last start and its exit.

        Returns:
            True if the next restart should use attempt 1 again.
        """
        return ran_for >= self.reset_after
