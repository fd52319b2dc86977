"""Typed errors of the Caxton runtime.

Every failure a caller can see is a :class:`CaxtonError` with a stable ``code`` (the same code
travels in control-protocol error replies), a message that says what happened, to whom, and the
likely fix, and optional structured ``details``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    """Stable error codes shared by the runtime, the control protocol and the CLI."""

    PROTOCOL_ERROR = "PROTOCOL_ERROR"
    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    VALIDATION_FAILED = "VALIDATION_FAILED"
    AGENT_NOT_FOUND = "AGENT_NOT_FOUND"
    AGENT_EXISTS = "AGENT_EXISTS"
    VERSION_NOT_FOUND = "VERSION_NOT_FOUND"
    ILLEGAL_TRANSITION = "ILLEGAL_TRANSITION"
    AGENT_SUSPENDED = "AGENT_SUSPENDED"
    AGENT_UNAVAILABLE = "AGENT_UNAVAILABLE"
    QUEUE_FULL = "QUEUE_FULL"
    CIRCUIT_OPEN = "CIRCUIT_OPEN"
    TIMEOUT = "TIMEOUT"
    OUT_OF_FUEL = "OUT_OF_FUEL"
    MEMORY_LIMIT = "MEMORY_LIMIT"
    DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"
    TRAP = "TRAP"
    ABI_ERROR = "ABI_ERROR"
    SECURITY_VIOLATION = "SECURITY_VIOLATION"
    CONVERSATION_LIMIT = "CONVERSATION_LIMIT"
    TOOL_NOT_DECLARED = "TOOL_NOT_DECLARED"
    TOOL_ERROR = "TOOL_ERROR"
    TOOL_TIMEOUT = "TOOL_TIMEOUT"
    RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"
    BUSY = "BUSY"
    LLM_ERROR = "LLM_ERROR"
    MEMORY_SCOPE_VIOLATION = "MEMORY_SCOPE_VIOLATION"
    MEMORY_ENTITY_LIMIT = "MEMORY_ENTITY_LIMIT"
    ROLLOUT_IN_PROGRESS = "ROLLOUT_IN_PROGRESS"
    NO_ROLLOUT = "NO_ROLLOUT"
    SHUTTING_DOWN = "SHUTTING_DOWN"
    UNAUTHORIZED = "UNAUTHORIZED"
    AGENT_FAILED = "AGENT_FAILED"
    INTERNAL = "INTERNAL"


class CaxtonError(Exception):
    """Base class of every typed runtime error.

    Args:
        message: What happened, to whom, and the likely fix.
        details: Structured findings (e.g. one entry per validation problem).
    """

    code: ErrorCode = ErrorCode.INTERNAL

    def __init__(self, message: str, *, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: list[dict[str, Any]] = list(details or [])

    def to_dict(self) -> dict[str, Any]:
        """Return the error as the control protocol's ``error`` map."""
        return {"code": str(self.code), "message": self.message, "details": self.details}

    @classmethod
    def from_code(
        cls, code: str, message: str, details: list[dict[str, Any]] | None = None
    ) -> CaxtonError:
        """Rebuild the most specific error class for ``code`` (used by clients).

        Args:
            code: An :class:`ErrorCode` value; unknown codes give a plain ``CaxtonError``.
            message: The error message.
            details: Structured details.

        Returns:
            An instance of the registered subclass for ``code``.
        """
        klass = _BY_CODE.get(code, CaxtonError)
        err = klass.__new__(klass)
        CaxtonError.__init__(err, message, details=details)
        if klass is CaxtonError:
            try:
                err.code = ErrorCode(code)
            except ValueError:
                err.code = ErrorCode.INTERNAL
        return err




class ProtocolError(CaxtonError):
    """A control frame could not be understood (not msgpack, not a map, unknown op)."""

    code = ErrorCode.PROTOCOL_ERROR


class InvalidArgument(CaxtonError):
    """An operation's arguments are missing or of the wrong type or range."""

    code = ErrorCode.INVALID_ARGUMENT


class ValidationFailed(CaxtonError):
    """An agent file or module failed validation; ``details`` lists every finding."""

    code = ErrorCode.VALIDATION_FAILED


class AgentNotFound(CaxtonError):
    """No agent with that name or id is deployed."""

    code = ErrorCode.AGENT_NOT_FOUND


class AgentExists(CaxtonError):
    """An agent with that name is already deployed."""

    code = ErrorCode.AGENT_EXISTS


class VersionNotFound(CaxtonError):
    """The requested version is not among the versions kept for the agent."""

    code = ErrorCode.VERSION_NOT_FOUND


class IllegalTransition(CaxtonError):
    """A lifecycle transition that the agent's state machine does not allow."""

    code = ErrorCode.ILLEGAL_TRANSITION


class AgentSuspended(CaxtonError):
    """The agent is suspended and its bounded wait queue is full or the wait timed out."""

    code = ErrorCode.AGENT_SUSPENDED


class AgentUnavailable(CaxtonError):
    """The agent exists but has no running instance (stopped, inactive, restarting)."""

    code = ErrorCode.AGENT_UNAVAILABLE


class QueueFull(CaxtonError):
    """The agent's mailbox is at its bound; retry later."""

    code = ErrorCode.QUEUE_FULL


class CircuitOpen(CaxtonError):
    """The agent failed repeatedly and its circuit breaker is open; it is not restarted now."""

    code = ErrorCode.CIRCUIT_OPEN


class Timeout(CaxtonError):
    """The operation did not complete within its deadline."""

    code = ErrorCode.TIMEOUT


class OutOfFuel(CaxtonError):
    """A WASM agent used its whole fuel budget for one message."""

    code = ErrorCode.OUT_OF_FUEL


class MemoryLimit(CaxtonError):
    """A WASM agent needed more memory than its limit allows."""

    code = ErrorCode.MEMORY_LIMIT


class DeadlineExceeded(CaxtonError):
    """A WASM call ran past its wall-clock deadline."""

    code = ErrorCode.DEADLINE_EXCEEDED


class GuestTrap(CaxtonError):
    """A WASM agent trapped (unreachable, out-of-bounds access, stack overflow, ...)."""

    code = ErrorCode.TRAP


class AbiViolation(CaxtonError):
    """A WASM agent broke the guest ABI (bad pointer or length)."""

    code = ErrorCode.ABI_ERROR


class SecurityViolation(CaxtonError):
    """A WASM agent attempted something its security policy forbids."""

    code = ErrorCode.SECURITY_VIOLATION


class ConversationLimit(CaxtonError):
    """The agent already holds ``max_conversations`` open conversations."""

    code = ErrorCode.CONVERSATION_LIMIT


class ToolNotDeclared(CaxtonError):
    """A tool was requested that the agent does not declare in its ``tools`` list."""

    code = ErrorCode.TOOL_NOT_DECLARED


class ToolError(CaxtonError):
    """A tool call failed or timed out."""

    code = ErrorCode.TOOL_ERROR


class ToolTimeout(ToolError):
    """A tool call ran past ``tool_call_timeout``; its worker was killed, so the work stopped."""

    code = ErrorCode.TOOL_TIMEOUT


class ResourceExhausted(CaxtonError):
    """Tenant work (a template render or tool call) went past its memory or size budget."""

    code = ErrorCode.RESOURCE_EXHAUSTED


class Busy(CaxtonError):
    """The agent (or the node) already holds as many requests of this kind as it allows."""

    code = ErrorCode.BUSY


class LLMError(CaxtonError):
    """The LLM provider failed after its retries."""

    code = ErrorCode.LLM_ERROR


class MemoryScopeViolation(CaxtonError):
    """A memory access crossed the agent's memory-scope boundary."""

    code = ErrorCode.MEMORY_SCOPE_VIOLATION


class MemoryEntityLimit(CaxtonError):
    """Storing would exceed the agent's ``max_memory_entities``."""

    code = ErrorCode.MEMORY_ENTITY_LIMIT


class RolloutInProgress(CaxtonError):
    """Another rollout or reload of the agent is still running."""

    code = ErrorCode.ROLLOUT_IN_PROGRESS


class NoRollout(CaxtonError):
    """The agent has no rollout or A/B test to promote, abort or report on."""

    code = ErrorCode.NO_ROLLOUT


class ShuttingDown(CaxtonError):
    """The node is shutting down and accepts no new work."""

    code = ErrorCode.SHUTTING_DOWN


class Unauthorized(CaxtonError):
    """The client is not allowed to perform the operation."""

    code = ErrorCode.UNAUTHORIZED


class AgentFailed(CaxtonError):
    """The agent crashed while handling the message; its supervisor restarts it."""

    code = ErrorCode.AGENT_FAILED


_BY_CODE: dict[str, type[CaxtonError]] = {
    str(k.code): k
    for k in [
        ProtocolError, InvalidArgument, ValidationFailed, AgentNotFound, AgentExists,
        VersionNotFound, IllegalTransition, AgentSuspended, AgentUnavailable, QueueFull,
        CircuitOpen, Timeout, OutOfFuel, MemoryLimit, DeadlineExceeded, GuestTrap,
        AbiViolation, SecurityViolation, ConversationLimit, ToolNotDeclared, ToolError,
        ToolTimeout, ResourceExhausted, Busy, LLMError, MemoryScopeViolation, MemoryEntityLimit, RolloutInProgress, NoRollout,
        ShuttingDown, Unauthorized, AgentFailed,
    ]
}

__all__ = ["CaxtonError", "ErrorCode", *(k.__name__ for k in _BY_CODE.values())]
