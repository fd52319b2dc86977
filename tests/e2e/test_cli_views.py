"""Human views of `status --detailed` and `validate --detailed` against a real node."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def test_status_detailed_shows_instances_and_lifecycle_not_json(shared_node: Any) -> None:
    assert shared_node.cli("message", "send", "counter", "tick").returncode == 0
    out = shared_node.cli("agents", "status", "counter", "--detailed")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "counter (wasm)" in text and "health healthy" in text
    assert "INSTANCE" in text and "BREAKER" in text  # the live-instances table
    assert "Loaded -> Running" in text  # the lifecycle history
    assert "fuel consumed" in text and "limits" in text
    assert '"instances"' not in text and '"lifecycle"' not in text, "raw JSON leaked"


def test_validate_detailed_lists_every_stage_with_its_result(shared_node: Any,
                                                             tmp_path: Path) -> None:
    bad = tmp_path / "broken.md"
    bad.write_text("---\nname: broken\ncapabilities: [echo]\ntools: [http_clent]\n"
                   'user_prompt_template: "{{ requst }}"\n---\n')
    out = shared_node.cli("agents", "validate", str(bad), "--detailed")
    assert out.returncode == 1
    lines = out.stdout.splitlines()
    stage_rows = [ln.split() for ln in lines if ln[:1].isdigit()]
    assert [row[0] for row in stage_rows] == [str(n) for n in range(1, 8)]
    results = {row[0]: row[-2] for row in stage_rows}
    assert results["4"] == "failed" and results["7"] == "failed"
    assert results["1"] == "passed" and results["2"] == "passed"
    assert "did you mean" in out.stdout and "'http_client'?" in out.stdout
    assert '"stage"' not in out.stdout, "raw JSON leaked"
