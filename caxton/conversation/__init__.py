"""Config-agent conversations: one message's steps, and the open conversations of an agent.

* :mod:`~caxton.conversation.engine` — :func:`message_steps`, one message as a pure generator
  of effects (render, model call, tool call), and :func:`process_message`, its blocking driver;
* :mod:`~caxton.conversation.tracker` — :class:`ConversationTracker`, the bounded set of open
  conversations with their histories and idle expiry;
* :mod:`~caxton.conversation.records` — the limits, tool-call records and the reply.
"""

from caxton.conversation.engine import (
    CallTool,
    Complete,
    Effect,
    Render,
    Steps,
    drive,
    message_steps,
    process_message,
    run_effect,
)
from caxton.conversation.records import (
    MAX_TOOL_RESULT_CHARS,
    ConversationLimits,
    ConversationReply,
    DirectToolCall,
    ToolCallRecord,
    parse_direct_tool_call,
)
from caxton.conversation.tracker import DEFAULT_IDLE_TIMEOUT, ConversationTracker

__all__ = [
    "DEFAULT_IDLE_TIMEOUT",
    "MAX_TOOL_RESULT_CHARS",
    "CallTool",
    "Complete",
    "ConversationLimits",
    "ConversationReply",
    "ConversationTracker",
    "DirectToolCall",
    "Effect",
    "Render",
    "Steps",
    "ToolCallRecord",
    "drive",
    "message_steps",
    "parse_direct_tool_call",
    "process_message",
    "run_effect",
]
