"""Circuit breaker: a pure closed / open / half-open state machine with an injected clock."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from enum import StrEnum

__all__ = ["BreakerState", "CircuitBreaker"]


class BreakerState(StrEnum):
    """The three states of a :class:`CircuitBreaker`."""

    CLOSED = "closed"
    """Failures are counted; restarts are allowed."""
    OPEN = "open"
    """Too many failures: no restart until the reset timeout has passed."""
    HALF_OPEN = "half_open"
    """The reset timeout passed: one trial restart is allowed."""


class CircuitBreaker:
    """Stops restarting a child that keeps failing, and retries it cautiously later.

    CLOSED → OPEN after ``fail_max`` consecutive failures (failures not separated by
    a success). OPEN → HALF_OPEN once the reset timeout has passed; the timeout
    starts at ``reset_timeout`` and is multiplied by ``reset_backoff`` every time
    the breaker re-opens from HALF_OPEN, up to ``max_reset_timeout``. HALF_OPEN
    allows one trial (:meth:`allow` answers True once); ``success_threshold``
    successes close it (and reset the timeout), one failure re-opens it.

    The breaker is a pure object: it never sleeps and never starts threads; time
    comes from ``clock``. A supervisor uses the instance it is given as a template
    and gives each child its own :meth:`fresh` copy.

    Args:
        fail_max: Consecutive failures that open the breaker (>= 1).
        reset_timeout: First OPEN duration in seconds (> 0).
        success_threshold: Successes in HALF_OPEN needed to close (>= 1).
        reset_backoff: Growth of the OPEN duration on each re-open (>= 1).
        max_reset_timeout: Ceiling of the OPEN duration (>= ``reset_timeout``).
        clock: Monotonic clock in seconds; inject a fake one in tests.

    Raises:
        ValueError: if a parameter is out of range.
    """

    def __init__(
        self,
        fail_max: int = 5,
        reset_timeout: float = 30.0,
        success_threshold: int = 1,
        reset_backoff: float = 2.0,
        max_reset_timeout: float = 300.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        for name, value in (("fail_max", fail_max), ("success_threshold", success_threshold)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"CircuitBreaker.{name} must be an int >= 1, got {value!r}")
        for name, fvalue in (
            ("reset_timeout", reset_timeout),
            ("reset_backoff", reset_backoff),
            ("max_reset_timeout", max_reset_timeout),
        ):
            if not isinstance(fvalue, int | float) or not math.isfinite(fvalue) or fvalue <= 0:
                raise ValueError(
                    f"CircuitBreaker.{name} must be a finite number > 0, got {fvalue!r}"
                )
        if reset_backoff < 1:
            raise ValueError(f"CircuitBreaker.reset_backoff must be >= 1, got {reset_backoff!r}")
        if max_reset_timeout < reset_timeout:
            raise ValueError(
                f"CircuitBreaker.max_reset_timeout ({max_reset_timeout!r}) must be >= "
                f"reset_timeout ({reset_timeout!r})"
            )
        self.fail_max = fail_max
        self.reset_timeout = float(reset_timeout)
        self.success_threshold = success_threshold
        self.reset_backoff = float(reset_backoff)
        self.max_reset_timeout = float(max_reset_timeout)
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._successes = 0
        self._timeout = self.reset_timeout
        self._opened_at = 0.0
        self._trial_taken = False

    def __repr__(self) -> str:
        return (
            f"CircuitBreaker(state={self.state.value}, failures={self._failures}, "
            f"timeout={self._timeout:g}, fail_max={self.fail_max})"
        )

    def fresh(self, clock: Callable[[], float] | None = None) -> CircuitBreaker:
        """Return a new CLOSED breaker with the same settings.

        Args:
            clock: Clock of the copy; defaults to this breaker's clock.

        Returns:
            An independent breaker.
        """
        return CircuitBreaker(
            self.fail_max,
            self.reset_timeout,
            self.success_threshold,
            self.reset_backoff,
            self.max_reset_timeout,
            clock=clock or self._clock,
        )

    @property
    def state(self) -> BreakerState:
        """The current state; OPEN turns into HALF_OPEN once the timeout has passed."""
        if self._state is BreakerState.OPEN and self._clock() >= self._opened_at + self._timeout:
            self._state = BreakerState.HALF_OPEN
            self._successes = 0
            self._trial_taken = False
        return self._state

    @property
    def failures(self) -> int:
        """Consecutive failures counted while CLOSED."""
        return self._failures

    @property
    def timeout(self) -> float:
        """The current OPEN duration in seconds."""
        return self._timeout

    def retry_in(self) -> float | None:
        """Return the seconds left until an OPEN breaker turns HALF_OPEN.

        Returns:
            The remaining seconds (>= 0) while OPEN, None in any other state.
        """
        if self.state is not BreakerState.OPEN:
            return None
        return max(0.0, self._opened_at + self._timeout - self._clock())

    def allow(self) -> bool:
        """Ask whether a restart may happen now, taking the trial when HALF_OPEN.

        Returns:
            True when CLOSED; False when OPEN; True exactly once when HALF_OPEN
            (the trial), then False until the trial's outcome is recorded.
        """
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and not self._trial_taken:
            self._trial_taken = True
            return True
        return False

    def record_failure(self) -> BreakerState:
        """Record one failure.

        Returns:
            The state after the failure.
        """
        state = self.state
        if state is BreakerState.CLOSED:
            self._failures += 1
            if self._failures >= self.fail_max:
                self._open()
        elif state is BreakerState.HALF_OPEN:
            self._timeout = min(self._timeout * self.reset_backoff, self.max_reset_timeout)
            self._open()
        return self._state

    def record_success(self) -> BreakerState:
        """Record one success (a healthy period of the child).

        Returns:
            The state after the success.
        """
        state = self.state
        if state is BreakerState.CLOSED:
            self._failures = 0
        elif state is BreakerState.HALF_OPEN:
            self._successes += 1
            if self._successes >= self.success_threshold:
                self.reset()
        return self._state

    def reset(self) -> None:
        """Force the breaker CLOSED, forgetting failures and the grown timeout."""
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._successes = 0
        self._timeout = self.reset_timeout
        self._trial_taken = False

    def _open(self) -> None:
        self._state = BreakerState.OPEN
        self._opened_at = self._clock()
        self._failures = 0
        self._successes = 0
        self._trial_taken = False
