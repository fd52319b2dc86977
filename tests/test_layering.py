"""The libraries must stay independent of the runtime (DESIGN.md, dependency direction)."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize("library", ["supervisors", "sandbox"])
def test_library_imports_nothing_from_caxton(library: str) -> None:
    code = (
        f"import sys, pkgutil, importlib; import {library}\n"
        f"for m in pkgutil.walk_packages({library}.__path__, '{library}.'):\n"
        "    importlib.import_module(m.name)\n"
        "bad = sorted(n for n in sys.modules if n == 'caxton' or n.startswith('caxton.'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"{library} loaded caxton modules: {out.stdout.strip()}"
