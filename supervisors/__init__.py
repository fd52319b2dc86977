"""OTP-grade supervision trees on pykka: restart strategies, backoff with jitter,
restart intensity, and a circuit breaker in one supervisor.

This package is a library of its own: it never imports :mod:`caxton`.
"""

__all__: list[str] = []
