"""The guest calling convention (ABI version 1): export and import names and signatures.

A message travels as bytes (msgpack, by Caxton's convention; the sandbox does not care):

1. The host asks the guest for room: ``inbox(size: i32) -> i32`` returns the address of a
   buffer of at least ``size`` bytes (0 = cannot). The host caches the address and capacity and
   asks again only when a larger message arrives, so steady state costs no call.
2. The host writes the message there and makes one call, ``handle(len: i32) -> i64``. The
   result packs the reply: ``(ptr << 32) | len``, read straight from the guest's ``memory``.

Optional exports: ``init()`` runs once per fresh instance; ``snapshot() -> i64`` returns the
guest's state as packed ``(ptr << 32) | len`` bytes, and ``restore(len: i32) -> i32`` takes state
bytes the host wrote at ``inbox(len)`` and returns 0 on success. Together they hand state over on
hot reload: ``new.restore(old.snapshot())``.

Host functions (module ``env``) are listed in :data:`HOST_FUNCTIONS`.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "ABI_VERSION",
    "EXPORT_SIGNATURES",
    "HOST_FUNCTIONS",
    "LOG_LEVELS",
    "OPTIONAL_EXPORTS",
    "Signature",
    "pack_region",
    "unpack_region",
]

ABI_VERSION: Final = 1

Signature = tuple[tuple[str, ...], tuple[str, ...]]
"""``(param types, result types)`` with wasm type names such as ``"i32"``."""

EXPORT_SIGNATURES: Final[dict[str, Signature | None]] = {
    "memory": None,  # a memory, not a function
    "inbox": (("i32",), ("i32",)),
    "handle": (("i32",), ("i64",)),
    "init": ((), ()),
    "snapshot": ((), ("i64",)),
    "restore": (("i32",), ("i32",)),
}
"""Every export name the ABI gives a meaning to, with its required signature."""

OPTIONAL_EXPORTS: Final = ("init", "snapshot", "restore")

HOST_FUNCTIONS: Final[dict[str, Signature]] = {
    # env.log(level, ptr, len): structured log line; level per LOG_LEVELS.
    "env.log": (("i32", "i32", "i32"), ()),
    # env.print(ptr, len): plain text output (the operations guide's example allowlist).
    "env.print": (("i32", "i32"), ()),
    # env.now() -> nanoseconds since the Unix epoch.
    "env.now": ((), ("i64",)),
    # env.send(ptr, len) -> 0 if the host accepted the message, 1 if it refused.
    "env.send": (("i32", "i32"), ("i32",)),
}
"""Host functions a guest may import (subject to the policy's allowlist)."""

LOG_LEVELS: Final = {0: "trace", 1: "debug", 2: "info", 3: "warning", 4: "error"}
"""``env.log`` levels; values above 4 are treated as ``error``."""

_U32 = 0xFFFFFFFF


def pack_region(ptr: int, length: int) -> int:
    """Pack a ``(ptr, len)`` pair the way the guest returns it (as an unsigned i64).

    Args:
        ptr: Address in guest memory.
        length: Length in bytes.

    Returns:
        ``(ptr << 32) | length``.
    """
    return ((ptr & _U32) << 32) | (length & _U32)


def unpack_region(packed: int) -> tuple[int, int]:
    """Split a guest's packed i64 result into ``(ptr, len)``.

    Args:
        packed: The i64 the guest returned (wasmtime gives it signed).

    Returns:
        ``(ptr, len)``, both unsigned 32-bit.
    """
    packed &= 0xFFFFFFFFFFFFFFFF
    return packed >> 32, packed & _U32
