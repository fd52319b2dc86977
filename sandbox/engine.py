"""Shared wasmtime engines, the compiled-module cache and the one epoch ticker thread.

Engines are few and shared: one per (memory reservation, unsafe features allowed) pair. Each
engine meters fuel, supports epoch interruption and reserves only as much address space per
linear memory as the memory cap needs (rounded up to a power of two) instead of wasmtime's
default 4 GiB, so thousands of instances fit in one process.

Compiled modules are cached by SHA-256 of their binary per engine, together with a
pre-instantiated template (``InstancePre``: imports already resolved against the host
functions), so deploying one module to many agents compiles it once.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

import structlog
import wasmtime

from sandbox.host import define_host_functions

__all__ = [
    "CompiledModule",
    "EngineKey",
    "EpochTicker",
    "analysis_engine",
    "cache_info",
    "clear_module_cache",
    "compile_module",
    "engine_for",
    "engine_key_for",
    "safe_features_engine",
    "ticker",
    "to_wasm",
]

_log = structlog.get_logger("sandbox")

_MIN_RESERVATION = 1 << 16
_GUARD_BYTES = 1 << 16
_MODULE_CACHE_SIZE = 256
_WAT_CACHE_SIZE = 256

_UNSAFE_FEATURES = (
    "wasm_simd",
    "wasm_relaxed_simd",
    "wasm_threads",
    "wasm_multi_memory",
    "wasm_memory64",
    "wasm_gc",
    "wasm_function_references",
    "wasm_exceptions",
    "wasm_stack_switching",
    "wasm_wide_arithmetic",
    "wasm_custom_page_sizes",
    "shared_memory",
)
"""Proposals refused when ``SecurityPolicy.deny_unsafe_features`` is set."""


@dataclass(frozen=True)
class EngineKey:
    """Identifies one shared engine configuration.

    Attributes:
        reservation: Address space reserved per linear memory, in bytes (a power of two).
        unsafe_features: Whether SIMD, threads, multi-memory etc. are enabled.
    """

    reservation: int
    unsafe_features: bool


@dataclass
class CompiledModule:
    """A compiled module and its instantiation template, shared by every sandbox using it.

    Attributes:
        module: The compiled wasmtime module.
        template: Pre-instantiated module (imports resolved against the host functions).
        engine: The engine it was compiled for.
        key: The engine's key.
        sha256: Hex digest of the module binary.
        size: Size of the module binary in bytes.
        compile_seconds: Time compiling took (0.0 when it came from the cache).
    """

    module: wasmtime.Module
    template: wasmtime.InstancePre
    engine: wasmtime.Engine
    key: EngineKey
    sha256: str
    size: int
    compile_seconds: float


class EpochTicker:
    """One daemon thread that advances the epoch of every registered engine.

    It runs only while someone holds it (open sandboxes, validation instantiations); a
    deadline of ``timeout`` seconds becomes :meth:`ticks_for` epochs, so interrupts land at
    most one ``interval`` after the deadline (plus scheduling delay).

    Args:
        interval: Seconds between epoch increments.
    """

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self._engines: list[wasmtime.Engine] = []
        self._lock = threading.Lock()
        self._users = 0
        self._stop: threading.Event | None = None
        self.generation = 0
        """Ticks so far, bumped just before each tick reaches the engines: a store whose
        deadline was set at generation ``g`` still has its whole deadline ahead while the
        generation is ``g`` (see ``Sandbox``, which skips resetting it then)."""

    def register(self, engine: wasmtime.Engine) -> None:
        """Advance ``engine``'s epoch from now on.

        Args:
            engine: An engine configured with epoch interruption.
        """
        with self._lock:
            self._engines = [*self._engines, engine]

    def acquire(self) -> None:
        """Start ticking (if not already); pair with :meth:`release`."""
        with self._lock:
            self._users += 1
            if self._stop is None:
                stop = threading.Event()
                self._stop = stop
                thread = threading.Thread(
                    target=self._run, args=(stop,), name="sandbox-epoch-ticker", daemon=True
                )
                thread.start()

    def release(self) -> None:
        """Drop one hold; the thread stops when nobody holds it."""
        with self._lock:
            self._users = max(0, self._users - 1)
            if self._users == 0 and self._stop is not None:
                self._stop.set()
                self._stop = None

    @property
    def running(self) -> bool:
        """Whether the ticker thread is currently meant to be running."""
        return self._stop is not None

    def ticks_for(self, timeout: float) -> int:
        """Epoch deadline (in ticks from now) for a wall-clock timeout.

        Args:
            timeout: Seconds.

        Returns:
            Ticks such that the interrupt comes no earlier than ``timeout``.
        """
        return max(1, math.ceil(timeout / self.interval)) + 1

    def _run(self, stop: threading.Event) -> None:
        # Epochs track wall-clock time: when the thread wakes late (a loaded machine), it
        # catches up on the missed ticks instead of letting the lateness accumulate into
        # every deadline.
        started = time.monotonic()
        done = 0
        while True:
            due = int((time.monotonic() - started) / self.interval)
            for _ in range(due - done):
                self.generation += 1  # before the engines: a reader never sees it late
                for engine in self._engines:
                    engine.increment_epoch()
            done = max(done, due)
            wait = started + (done + 1) * self.interval - time.monotonic()
            if stop.wait(max(0.0, wait)):
                return


ticker = EpochTicker()
"""The process-wide ticker."""

_lock = threading.Lock()
_engines: dict[EngineKey, tuple[wasmtime.Engine, wasmtime.Linker]] = {}
_modules: OrderedDict[tuple[str, EngineKey], CompiledModule] = OrderedDict()
_wat: OrderedDict[str, bytes] = OrderedDict()
_analysis: wasmtime.Engine | None = None
_safe: wasmtime.Engine | None = None
_hits = 0
_misses = 0


def engine_key_for(memory_cap: int, unsafe_features: bool) -> EngineKey:
    """The engine key for a memory cap.

    Args:
        memory_cap: Memory cap in bytes.
        unsafe_features: Whether the policy allows unsafe features.

    Returns:
        The key; the reservation is the cap rounded up to a power of two (at least 64 KiB).
    """
    reservation = max(_MIN_RESERVATION, 1 << max(0, memory_cap - 1).bit_length())
    return EngineKey(reservation, unsafe_features)


def engine_for(key: EngineKey) -> tuple[wasmtime.Engine, wasmtime.Linker]:
    """The shared engine (and its host-function linker) for ``key``, created on first use.

    Args:
        key: Which configuration.

    Returns:
        ``(engine, linker)``.
    """
    with _lock:
        found = _engines.get(key)
        if found is not None:
            return found
        config = wasmtime.Config()
        config.consume_fuel = True
        config.epoch_interruption = True
        config.memory_reservation = key.reservation
        config.memory_guard_size = _GUARD_BYTES
        config.memory_reservation_for_growth = 0
        if key.unsafe_features:
            config.wasm_multi_memory = True
        else:
            for feature in _UNSAFE_FEATURES:
                setattr(config, feature, False)
        engine = wasmtime.Engine(config)
        linker = wasmtime.Linker(engine)
        define_host_functions(linker)
        _engines[key] = (engine, linker)
    ticker.register(engine)
    return engine, linker


def analysis_engine() -> wasmtime.Engine:
    """An engine with every proposal enabled, used only to parse and inspect modules.

    Returns:
        The engine (never used to run code).
    """
    global _analysis
    with _lock:
        if _analysis is None:
            config = wasmtime.Config()
            for feature in (*_UNSAFE_FEATURES, "wasm_tail_call", "wasm_reference_types"):
                if feature not in ("wasm_stack_switching", "wasm_custom_page_sizes"):
                    setattr(config, feature, True)
            _analysis = wasmtime.Engine(config)
        return _analysis


def safe_features_engine() -> wasmtime.Engine:
    """An engine with every unsafe proposal disabled, used to detect their use.

    Returns:
        The engine (never used to run code).
    """
    global _safe
    with _lock:
        if _safe is None:
            config = wasmtime.Config()
            for feature in _UNSAFE_FEATURES:
                setattr(config, feature, False)
            _safe = wasmtime.Engine(config)
        return _safe


def looks_like_wat(data: bytes) -> bool:
    """Tell whether ``data`` is WebAssembly text rather than a binary.

    Args:
        data: Module bytes.

    Returns:
        True if it is UTF-8 text whose first non-blank character opens an s-expression or a
        comment.
    """
    if data[:4] == b"\x00asm":
        return False
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    stripped = text.lstrip()
    return stripped.startswith(("(", ";;", "(;"))


def to_wasm(data: bytes) -> bytes:
    """Return the binary form of a module given as a binary or as WAT text (cached).

    Args:
        data: ``.wasm`` bytes or ``.wat`` text (as UTF-8 bytes).

    Returns:
        The module binary (``data`` itself when it is not WAT).

    Raises:
        wasmtime.WasmtimeError: If ``data`` looks like WAT but does not parse.
    """
    if not looks_like_wat(data):
        return data
    digest = hashlib.sha256(data).hexdigest()
    with _lock:
        cached = _wat.get(digest)
        if cached is not None:
            _wat.move_to_end(digest)
            return cached
    binary = bytes(wasmtime.wat2wasm(data.decode("utf-8")))
    with _lock:
        _wat[digest] = binary
        while len(_wat) > _WAT_CACHE_SIZE:
            _wat.popitem(last=False)
    return binary


def compile_module(wasm: bytes, key: EngineKey) -> CompiledModule:
    """Compile ``wasm`` for the engine ``key`` names, or return the cached compilation.

    Args:
        wasm: A module binary.
        key: Which engine.

    Returns:
        The compiled module with its template.

    Raises:
        wasmtime.WasmtimeError: If the module does not compile or link against the host
            functions for this engine.
    """
    global _hits, _misses
    digest = hashlib.sha256(wasm).hexdigest()
    cache_key = (digest, key)
    with _lock:
        cached = _modules.get(cache_key)
        if cached is not None:
            _modules.move_to_end(cache_key)
            _hits += 1
            return cached
    engine, linker = engine_for(key)
    started = time.perf_counter()
    module = wasmtime.Module(engine, wasm)
    template = linker.instantiate_pre(module)
    elapsed = time.perf_counter() - started
    compiled = CompiledModule(module, template, engine, key, digest, len(wasm), elapsed)
    with _lock:
        _misses += 1
        existing = _modules.setdefault(cache_key, compiled)
        while len(_modules) > _MODULE_CACHE_SIZE:
            _modules.popitem(last=False)
    _log.debug(
        "sandbox.module_compiled",
        module_hash=digest,
        size=len(wasm),
        compile_ms=round(elapsed * 1000, 3),
        reservation=key.reservation,
    )
    return existing


def cache_info() -> dict[str, int]:
    """Counters of the compiled-module cache.

    Returns:
        ``{"modules": entries, "hits": n, "misses": n, "engines": n}``.
    """
    with _lock:
        return {
            "modules": len(_modules),
            "hits": _hits,
            "misses": _misses,
            "engines": len(_engines),
        }


def clear_module_cache() -> None:
    """Forget every cached compilation (engines and the ticker are kept)."""
    global _hits, _misses
    with _lock:
        _modules.clear()
        _wat.clear()
        _hits = 0
        _misses = 0
