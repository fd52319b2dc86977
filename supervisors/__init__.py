"""OTP-grade supervision trees on pykka: restart strategies, backoff with jitter,
restart intensity, and a circuit breaker in one supervisor.

This package is a library of its own: it imports only pykka, structlog and the
standard library, never :mod:`caxton`. It emits structlog events and never
configures logging.

Example::

    import pykka
    from supervisors import ChildSpec, Supervised, Supervisor

    class Worker(Supervised, pykka.ThreadingActor):
        def work(self, x: int) -> int:
            return x * 2

    sup = Supervisor.start([ChildSpec("worker", Worker.start)], name="root")
    [info] = sup.proxy().which_children().get()
    info.ref.proxy().work(21).get()  # 42
    sup.stop()
"""

from supervisors.backoff import Backoff
from supervisors.breaker import BreakerState, CircuitBreaker
from supervisors.child import ChildExit, ExitReason, Supervised
from supervisors.dispatch import Dispatcher, PooledActor, default_dispatcher
from supervisors.errors import (
    ChildAlreadyExistsError,
    ChildNotFoundError,
    ChildRunningError,
    ChildStartError,
    NotSupervisedError,
    RestartIntensityExceeded,
    SupervisorError,
)
from supervisors.events import EVENTS, Listener
from supervisors.intensity import RestartIntensity
from supervisors.spec import AutoShutdown, ChildSpec, Restart, Strategy
from supervisors.supervisor import ChildCounts, ChildInfo, ChildState, Supervisor
from supervisors.timer import TimerHandle, TimerService, shared_timer

__all__ = [
    "EVENTS",
    "AutoShutdown",
    "Backoff",
    "BreakerState",
    "ChildAlreadyExistsError",
    "ChildCounts",
    "ChildExit",
    "ChildInfo",
    "ChildNotFoundError",
    "ChildRunningError",
    "ChildSpec",
    "ChildStartError",
    "ChildState",
    "CircuitBreaker",
    "Dispatcher",
    "ExitReason",
    "Listener",
    "NotSupervisedError",
    "PooledActor",
    "Restart",
    "RestartIntensity",
    "RestartIntensityExceeded",
    "Strategy",
    "Supervised",
    "Supervisor",
    "SupervisorError",
    "TimerHandle",
    "TimerService",
    "default_dispatcher",
    "shared_timer",
]
