"""The agent actors: one pykka actor per running agent-version instance.

Both kinds take a :class:`caxton.messages.Message` in ``on_receive`` and return the reply
message, or raise a typed :class:`caxton.errors.CaxtonError`. They mix in
:class:`supervisors.Supervised` so that their supervisor sees every exit with its reason.
"""

from caxton.actors.handle import SupervisedVersionHandle
from caxton.actors.wasm_agent import WasmAgentActor, WasmInstanceSpec, sandbox_error

__all__ = ["SupervisedVersionHandle", "WasmAgentActor", "WasmInstanceSpec", "sandbox_error"]
