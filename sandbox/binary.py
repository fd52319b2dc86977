"""A minimal, defensive reader of the WebAssembly binary layout.

wasmtime parses and validates modules fully; this reader only recovers what wasmtime-py does
not expose (section layout, the start function, non-exported memories and tables) and gives
precise messages for malformed headers. It never raises anything but :class:`BinaryFormatError`.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BinaryFormatError", "Limits", "ModuleLayout", "read_layout"]

WASM_MAGIC = b"\x00asm"
WASM_VERSION = 1

_SECTION_NAMES = {
    0: "custom",
    1: "type",
    2: "import",
    3: "function",
    4: "table",
    5: "memory",
    6: "global",
    7: "export",
    8: "start",
    9: "element",
    10: "code",
    11: "data",
    12: "datacount",
    13: "tag",
}


class BinaryFormatError(Exception):
    """The bytes are not a well-formed WebAssembly binary.

    Attributes:
        code: Stable finding code (``"bad_magic"``, ``"bad_version"``, ``"truncated"``, ...).
        offset: Byte offset where the problem was found.
    """

    def __init__(self, code: str, message: str, offset: int) -> None:
        super().__init__(message)
        self.code = code
        self.offset = offset


@dataclass(frozen=True)
class Limits:
    """Declared limits of a memory (in pages) or a table (in elements)."""

    min: int
    max: int | None
    shared: bool = False
    is_64: bool = False


@dataclass(frozen=True)
class ModuleLayout:
    """What the reader recovered from a binary.

    Attributes:
        sections: ``(section id, name, payload offset, payload size)`` in file order.
        memories: Memories defined by the module (not imported ones).
        tables: Tables defined by the module, when their encoding was understood.
        start_function: Index of the start function, or ``None``.
    """

    sections: tuple[tuple[int, str, int, int], ...]
    memories: tuple[Limits, ...]
    tables: tuple[Limits, ...]
    start_function: int | None


class _Reader:
    def __init__(self, data: bytes, pos: int = 0, end: int | None = None) -> None:
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else end

    def byte(self) -> int:
        if self.pos >= self.end:
            raise BinaryFormatError(
                "truncated", f"unexpected end of data at offset {self.pos}", self.pos
            )
        b = self.data[self.pos]
        self.pos += 1
        return b

    def uleb(self, max_bits: int = 32) -> int:
        start = self.pos
        result = 0
        shift = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
            if shift >= max_bits + 7:
                raise BinaryFormatError(
                    "bad_leb128", f"LEB128 integer too long at offset {start}", start
                )
        if result >= 1 << max_bits:
            raise BinaryFormatError(
                "bad_leb128", f"LEB128 integer out of range at offset {start}", start
            )
        return result

    def limits(self) -> Limits:
        flags = self.byte()
        if flags > 0x07:
            raise BinaryFormatError(
                "bad_limits", f"unknown limits flags 0x{flags:02x} at {self.pos - 1}", self.pos - 1
            )
        bits = 64 if flags & 0x04 else 32
        minimum = self.uleb(bits)
        maximum = self.uleb(bits) if flags & 0x01 else None
        return Limits(minimum, maximum, shared=bool(flags & 0x02), is_64=bool(flags & 0x04))


def read_layout(data: bytes) -> ModuleLayout:
    """Read the section layout of a WebAssembly binary.

    Args:
        data: The module bytes.

    Returns:
        The recovered layout.

    Raises:
        BinaryFormatError: If the header or section framing is malformed.
    """
    if len(data) < 8:
        raise BinaryFormatError(
            "truncated",
            f"module is {len(data)} bytes; a WebAssembly binary has at least an 8-byte header",
            0,
        )
    if data[:4] != WASM_MAGIC:
        raise BinaryFormatError(
            "bad_magic",
            f"bad magic number {data[:4].hex(' ')}; a WebAssembly binary starts with "
            "00 61 73 6d ('\\0asm')",
            0,
        )
    version = int.from_bytes(data[4:8], "little")
    if version != WASM_VERSION:
        raise BinaryFormatError(
            "bad_version",
            f"unsupported binary version 0x{version:x}; only core WebAssembly version 1 is "
            "supported (components are not)",
            4,
        )
    reader = _Reader(data, 8)
    sections: list[tuple[int, str, int, int]] = []
    memories: tuple[Limits, ...] = ()
    tables: tuple[Limits, ...] = ()
    start: int | None = None
    while reader.pos < len(data):
        at = reader.pos
        section_id = reader.byte()
        if section_id not in _SECTION_NAMES:
            raise BinaryFormatError(
                "bad_section", f"unknown section id {section_id} at offset {at}", at
            )
        size = reader.uleb()
        payload = reader.pos
        if payload + size > len(data):
            raise BinaryFormatError(
                "truncated",
                f"{_SECTION_NAMES[section_id]} section at offset {at} declares {size} bytes "
                f"but only {len(data) - payload} remain",
                at,
            )
        sections.append((section_id, _SECTION_NAMES[section_id], payload, size))
        body = _Reader(data, payload, payload + size)
        if section_id == 5:
            memories = tuple(body.limits() for _ in range(body.uleb()))
        elif section_id == 4:
            tables = _read_tables(body)
        elif section_id == 8:
            start = body.uleb()
        reader.pos = payload + size
    return ModuleLayout(tuple(sections), memories, tables, start)


def _read_tables(body: _Reader) -> tuple[Limits, ...]:
    tables: list[Limits] = []
    for _ in range(body.uleb()):
        kind = body.byte()
        if kind not in (0x70, 0x6F):  # typed references or an initialiser: not needed here
            break
        tables.append(body.limits())
    return tuple(tables)
