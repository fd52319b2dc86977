"""The README's two set-up commands must be what CI actually runs."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEST_COMMAND = "python3 -m pip install -q -e '.[test]' && python3 -m pytest"


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert TEST_COMMAND in readme.splitlines(), "README lost its test command"
    assert TEST_COMMAND in ci.splitlines(), ".ci/run no longer runs the README test command"
