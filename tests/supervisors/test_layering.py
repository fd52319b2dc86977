"""supervisors is a library of its own: pykka, structlog and the stdlib only."""

from __future__ import annotations

import subprocess
import sys

CODE = """
import sys, pkgutil, importlib
import pykka, structlog
before = set(sys.modules)
import supervisors
for m in pkgutil.walk_packages(supervisors.__path__, 'supervisors.'):
    importlib.import_module(m.name)
new = {n.split('.')[0] for n in set(sys.modules) - before}
print(','.join(sorted(n for n in new if n not in sys.stdlib_module_names and not n.startswith('_'))))
"""


def test_supervisors_imports_only_pykka_structlog_and_the_stdlib() -> None:
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "supervisors", f"unexpected imports: {out.stdout.strip()}"


def test_supervisors_imports_nothing_from_caxton() -> None:
    code = CODE.replace("print(", "print('caxton' in {n.split('.')[0] for n in sys.modules}) or print(")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines()[0] == "False"
