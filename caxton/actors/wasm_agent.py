"""The WASM agent actor: one pykka actor over one :class:`sandbox.Sandbox`.

Per message: the content is packed with msgpack, handed to the guest in one ``handle`` call,
and the guest's bytes are unpacked as the reply content. Any sandbox failure (out of fuel,
memory, deadline, trap, ABI or security violation) is answered to the caller as the matching
typed error *and* ends the actor abnormally with that reason, so its supervisor restarts it
with backoff and its breaker counts the failure ("sandbox recreation").
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgpack
import structlog

import sandbox as sb
from caxton import errors
from caxton.messages import Message, Performative, make_message
from supervisors import PooledActor, Supervised

_log = structlog.get_logger("caxton.wasm_agent")
_INFORM = Performative.INFORM

_ERRORS: dict[type[sb.SandboxError], type[errors.CaxtonError]] = {
    sb.OutOfFuel: errors.OutOfFuel,
    sb.MemoryLimitExceeded: errors.MemoryLimit,
    sb.DeadlineExceeded: errors.DeadlineExceeded,
    sb.Trap: errors.GuestTrap,
    sb.SecurityViolation: errors.SecurityViolation,
    sb.AbiError: errors.AbiViolation,
    sb.ValidationError: errors.ValidationFailed,
    sb.SandboxClosed: errors.AgentUnavailable,
}


def sandbox_error(exc: sb.SandboxError, agent: str, version: str) -> errors.CaxtonError:
    """Translate a sandbox error into the runtime's typed error for one agent version.

    Args:
        exc: The sandbox error.
        agent: The agent name (named in the message).
        version: The agent version (named in the message).

    Returns:
        The typed :class:`caxton.errors.CaxtonError`, with ``exc`` as its cause.
    """
    klass = next((v for k, v in _ERRORS.items() if isinstance(exc, k)), errors.AgentFailed)
    details: list[dict[str, Any]] = []
    if isinstance(exc, sb.ValidationError):
        details = [f.to_dict() if hasattr(f, "to_dict") else {"message": str(f)}
                   for f in exc.report.errors]
    err = klass(f"WASM agent {agent!r} version {version!r}: {exc}", details=details)
    err.__cause__ = exc
    return err


@dataclass(frozen=True)
class WasmInstanceSpec:
    """Everything needed to start (and restart) one WASM agent-version instance.

    Attributes:
        agent: Agent name.
        version: Version label.
        module: The module, ``.wasm`` bytes or ``.wat`` text as bytes.
        limits: Fuel, memory and deadline budgets per message.
        policy: The security policy the module was validated against.
        state: State handed over from the previous version (the ABI's ``snapshot``), if any.
        host: Host-function callbacks (``env.send``, ``env.log``).
        on_fuel: Called on the actor's thread with the fuel each message used (also when
            the call failed, e.g. out of fuel) — how the router's rollout analysis compares
            fuel per message between versions. It must be cheap and must not block.
    """

    agent: str
    version: str
    module: bytes
    limits: sb.ResourceLimits
    policy: sb.SecurityPolicy
    state: bytes | None = None
    host: sb.HostCallbacks = field(default_factory=sb.HostCallbacks)
    on_fuel: Callable[[int], None] | None = field(default=None, compare=False)


class WasmAgentActor(Supervised, PooledActor):
    """A running WASM agent-version instance.

    It runs on the shared dispatcher, not a thread of its own, and is ``inline``: a guest
    call is short and bounded by the sandbox's fuel and deadline, so the control port's
    thread may run it right after reading the request (no thread hand-off). An instance
    whose recent messages were slow (a fuel-hungry guest) goes back to the pool's workers.

    Args:
        spec: What to run.
    """

    inline = True

    def __init__(self, spec: WasmInstanceSpec) -> None:
        super().__init__()
        self.spec = spec
        self._box: sb.Sandbox | None = None
        self._started = time.monotonic()
        self._last_error: str | None = None
        # One packer per actor (``msgpack.packb`` makes one per call); an actor handles one
        # message at a time, so it is never used by two threads at once.
        self._packer = msgpack.Packer(use_bin_type=True)

    def on_start(self) -> None:
        """Load the sandbox (validated, compiled once per module hash) and restore state."""
        try:
            self._box = sb.Sandbox.load(
                self.spec.module, self.spec.limits, self.spec.policy, self.spec.host
            )
            if self.spec.state is not None and self._box.supports_state_handover:
                self._box.restore(self.spec.state)
        except sb.SandboxError as exc:
            raise sandbox_error(exc, self.spec.agent, self.spec.version) from exc

    def on_stop(self) -> None:
        """Release the sandbox instance."""
        self._close()

    def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        """Release the sandbox instance after a failure."""
        self._close()

    def _close(self) -> None:
        if self._box is not None:
            self._box.close()

    def _handle_receive(self, message: Any) -> Any:
        # The hot path: an agent Message skips pykka's four proxy/stop isinstance checks.
        if type(message) is Message:
            return self.on_receive(message)
        return super()._handle_receive(message)

    def on_receive(self, message: Any) -> Any:
        """Handle one agent message.

        Args:
            message: A :class:`Message`.

        Returns:
            The reply message.

        Raises:
            CaxtonError: The typed error of a sandbox failure (the actor then exits).
        """
        if not isinstance(message, Message):
            raise errors.InvalidArgument(
                f"WASM agent {self.spec.agent!r} got a {type(message).__name__}, not a Message"
            )
        box = self._box
        assert box is not None
        on_fuel = self.spec.on_fuel
        fuel_before = box.fuel_consumed  # a plain counter read: no extra guest call
        packer = self._packer
        try:
            data = packer.pack(message.content)
        except BaseException:
            packer.reset()  # a half-packed value must not prefix the next message
            raise
        try:
            out = box.handle(data)
        except sb.SandboxError as exc:
            if on_fuel is not None:
                self._report_fuel(on_fuel, box.fuel_consumed - fuel_before)
            err = sandbox_error(exc, self.spec.agent, self.spec.version)
            self._last_error = err.message
            self.fail(err)
            raise err from exc
        try:
            content = msgpack.unpackb(out, raw=False)
        except Exception as exc:
            err = errors.AbiViolation(
                f"WASM agent {self.spec.agent!r} version {self.spec.version!r} replied with "
                f"{len(out)} bytes that are not msgpack ({exc}); the guest must write a "
                "msgpack value as its reply"
            )
            self.fail(err)
            raise err from exc
        if on_fuel is not None:
            try:  # _report_fuel, inlined: once per message
                on_fuel(box.fuel_consumed - fuel_before)
            except Exception as exc:
                self._fuel_report_failed(exc)
        # message.reply(content, sender=...), inlined: once per message
        return make_message(message.sender, content, self.spec.agent, _INFORM,
                            message.conversation_id, None,
                            message.reply_with or message.message_id)

    def _report_fuel(self, on_fuel: Callable[[int], None], fuel: int) -> None:
        try:
            on_fuel(fuel)
        except Exception as exc:  # a metrics hook must never fail a message
            self._fuel_report_failed(exc)

    def _fuel_report_failed(self, exc: Exception) -> None:
        _log.warning("wasm_agent.fuel_report_failed", agent=self.spec.agent,
                     version=self.spec.version, reason=repr(exc))

    # -- called through the proxy -------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Return the sandbox counters (state, memory, fuel, calls, traps, uptime)."""
        box = self._box
        return {
            "memory_allocated": box.memory_allocated if box else 0,
            "fuel_consumed": box.fuel_consumed if box else 0,
            "calls": box.calls if box else 0,
            "traps": box.traps if box else 0,
            "uptime": time.monotonic() - self._started,
            "module_hash": box.module_hash if box else "",
            "last_error": self._last_error,
        }

    def snapshot(self) -> bytes | None:
        """Return the guest's state for a hot-reload hand-over, or None if it keeps none."""
        box = self._box
        if box is None or not box.supports_state_handover:
            return None
        try:
            return box.snapshot()
        except sb.SandboxError as exc:
            _log.warning("wasm_agent.snapshot_failed", agent=self.spec.agent,
                         version=self.spec.version, reason=str(exc))
            return None
