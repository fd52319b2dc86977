"""The six validation stages, each reported separately with findings that name the fix."""

from __future__ import annotations

import pytest

from sandbox import (
    Finding,
    ModuleInfo,
    ResourceLimits,
    Sandbox,
    SecurityPolicy,
    Stage,
    StageStatus,
    ValidationError,
    validate,
)
from sandbox.testing import abi_module, oversized_module, read_example_module, read_testing_module


def _codes(report, stage: Stage) -> list[str]:
    return [f.code for f in report.stage(stage).findings]


@pytest.mark.parametrize("name", ["echo.wat", "counter.wat"])
def test_example_agents_pass_the_strict_policy_with_no_findings(name: str) -> None:
    report = validate(read_example_module(name), SecurityPolicy.strict())
    assert report.ok, report.summary()
    assert [s.status for s in report.stages] == [StageStatus.PASSED] * 6
    assert report.findings == ()


def test_bad_magic_fails_stage_1_and_skips_the_rest() -> None:
    report = validate(read_testing_module("bad_magic.wasm"))
    assert not report.ok
    assert report.failed_stage is not None and report.failed_stage.stage is Stage.STRUCTURE
    assert _codes(report, Stage.STRUCTURE) == ["bad_magic"]
    assert "00 61 73 6e" in report.errors[0].message
    assert [s.status for s in report.stages[1:]] == [StageStatus.SKIPPED] * 5


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "empty"),
        (b"\x00asm", "truncated"),
        (b"\x00asm\x02\x00\x00\x00", "bad_version"),
        (b"\x00asm\x01\x00\x00\x00\x01\x05\x01", "truncated"),
        (b"\x00asm\x01\x00\x00\x00\x0e\x00", "bad_section"),
        (b"(module (func $f (unknown_instr)))", "bad_wat"),
        (b"\x00asm\x01\x00\x00\x00\x01\x01\x05", "invalid_module"),
    ],
)
def test_malformed_input_is_a_stage_1_finding(data: bytes, code: str) -> None:
    report = validate(data)
    assert report.failed_stage is not None and report.failed_stage.stage is Stage.STRUCTURE
    assert _codes(report, Stage.STRUCTURE) == [code]
    with pytest.raises(ValidationError) as caught:
        Sandbox.load(data)
    assert caught.value.report.failed_stage.stage is Stage.STRUCTURE


def test_forbidden_import_fails_stage_2_naming_the_import() -> None:
    report = validate(read_testing_module("forbidden_import"), SecurityPolicy.strict())
    assert report.failed_stage is not None and report.failed_stage.stage is Stage.SECURITY
    (finding,) = report.stage(Stage.SECURITY).findings
    assert finding.code == "import_not_allowed"
    assert finding.subject == "wasi_snapshot_preview1.fd_write"
    assert "wasi_snapshot_preview1.fd_write" in report.summary()
    assert "env.log" in finding.fix  # the fix lists what the host does offer
    assert report.stage(Stage.SANDBOX).status is StageStatus.SKIPPED


def test_host_functions_outside_a_narrow_allowlist_fail_stage_2() -> None:
    policy = SecurityPolicy(allowed_imports=("env.log",))
    report = validate(read_testing_module("host_calls"), policy)
    refused = sorted(f.subject for f in report.stage(Stage.SECURITY).findings)
    assert refused == ["env.now", "env.print", "env.send"]


def test_unknown_host_function_and_wrong_signature_fail_stage_2() -> None:
    module = abi_module(
        "(i64.const 0)",
        imports='(import "env" "spawn" (func (param i32)))(import "env" "log" (func (param i32)))',
    )
    report = validate(module)
    assert _codes(report, Stage.SECURITY) == ["unknown_host_function", "import_signature_mismatch"]
    assert "(i32, i32, i32) -> ()" in report.stage(Stage.SECURITY).findings[1].message


def test_memory_import_is_refused() -> None:
    module = b'(module (import "env" "mem" (memory 1)))'
    report = validate(module, SecurityPolicy(required_exports=()))
    assert _codes(report, Stage.SECURITY) == ["import_kind_not_supported"]


def test_simd_is_an_unsafe_feature_under_strict_but_fine_under_relaxed() -> None:
    module = abi_module(
        "(drop (call $simd)) (i64.const 0)",
        extra="(func $simd (result v128) (v128.const i32x4 1 2 3 4))",
    )
    strict = validate(module, SecurityPolicy.strict())
    assert _codes(strict, Stage.SECURITY) == ["unsafe_feature"]
    assert "SIMD" in strict.stage(Stage.SECURITY).findings[0].message
    assert validate(module, SecurityPolicy.relaxed()).ok


def test_start_function_is_refused_unless_allowed() -> None:
    module = abi_module("(i64.const 0)", extra="(func $boot) (start $boot)")
    assert _codes(validate(module), Stage.SECURITY) == ["start_function"]
    assert validate(module, SecurityPolicy.relaxed()).ok


def test_oversized_module_fails_stage_3_without_being_compiled() -> None:
    report = validate(oversized_module(1_200_000), SecurityPolicy.strict())
    assert report.failed_stage is not None and report.failed_stage.stage is Stage.RESOURCES
    (finding,) = report.stage(Stage.RESOURCES).findings
    assert finding.code == "module_too_large" and finding.subject == "max_module_bytes"
    assert "1048576" in finding.message
    assert validate(oversized_module(1_200_000), SecurityPolicy.default()).ok


def test_declared_memory_is_checked_against_policy_and_limits() -> None:
    big = abi_module("(i64.const 0)", memory="20 20")
    report = validate(big, SecurityPolicy.strict())
    assert "memory_too_large" in _codes(report, Stage.RESOURCES)
    under_limits = validate(
        abi_module("(i64.const 0)", memory="8 8"), limits=ResourceLimits(memory_bytes=4 * 65536)
    )
    (finding,) = under_limits.stage(Stage.RESOURCES).findings
    assert finding.code == "memory_exceeds_limit" and finding.subject == "memory_bytes"
    unbounded = validate(abi_module("(i64.const 0)", memory="1"), SecurityPolicy.strict())
    assert unbounded.ok  # a warning, not an error: the cap refuses growth at run time
    assert [w.code for w in unbounded.warnings] == ["memory_max_above_policy"]


def test_instantiate_that_needs_more_than_the_cap_fails_cleanly() -> None:
    with pytest.raises(ValidationError) as caught:
        Sandbox.load(abi_module("(i64.const 0)", memory="8 8"), ResourceLimits(memory_bytes=65536))
    assert caught.value.report.failed_stage.stage is Stage.RESOURCES
    assert "ResourceLimits.memory_bytes" in str(caught.value)


def test_too_many_imports_and_tables_fail_stage_3() -> None:
    imports = "".join(f'(import "env" "now" (func $n{i} (result i64)))' for i in range(3))
    report = validate(
        abi_module("(i64.const 0)", imports=imports, extra="(table 50 funcref)"),
        SecurityPolicy(max_imports=2, max_table_elements=10),
    )
    assert sorted(_codes(report, Stage.RESOURCES)) == ["table_too_large", "too_many_imports"]


def test_missing_and_mistyped_exports_fail_stage_4() -> None:
    no_handle = b'(module (memory (export "memory") 1) (func (export "inbox") (param i32) (result i32) i32.const 0))'
    report = validate(no_handle)
    (finding,) = report.stage(Stage.FUNCTIONS).findings
    assert finding.code == "missing_export" and finding.subject == "handle"
    assert "(i32) -> (i64)" in finding.fix
    wrong = abi_module("(i64.const 0)", extra='(func (export "snapshot") (result i32) i32.const 0)')
    codes = _codes(validate(wrong), Stage.FUNCTIONS)
    assert codes == ["export_signature_mismatch", "half_state_handover"]


def test_stage_5_instantiates_against_the_host() -> None:
    module = abi_module("(i64.const 0)", extra="(func $boot unreachable) (start $boot)")
    report = validate(module, SecurityPolicy.relaxed())
    assert report.failed_stage is not None and report.failed_stage.stage is Stage.SANDBOX
    assert _codes(report, Stage.SANDBOX) == ["start_trapped"]


def test_custom_rules_run_in_stage_6() -> None:
    seen: list[ModuleInfo] = []

    def no_send(info: ModuleInfo) -> list[str]:
        seen.append(info)
        return [f"imports {i.full_name}" for i in info.imports if i.name == "send"]

    def broken(info: ModuleInfo) -> list[Finding]:
        raise RuntimeError("boom")

    report = validate(read_testing_module("host_calls"), custom_rules=[no_send, broken])
    assert report.failed_stage is not None and report.failed_stage.stage is Stage.CUSTOM
    assert _codes(report, Stage.CUSTOM) == ["custom_rule", "custom_rule_error"]
    assert "env.send" in report.stage(Stage.CUSTOM).findings[0].message
    assert {e.name for e in seen[0].exports} == {"memory", "inbox", "handle"}
    assert validate(read_example_module("echo.wat"), custom_rules=[no_send]).ok


def test_report_to_dict_is_plain_data() -> None:
    data = validate(read_testing_module("forbidden_import")).to_dict()
    assert data["ok"] is False and data["failed_stage"] == 2
    assert [s["status"] for s in data["stages"]] == [
        "passed",
        "failed",
        "passed",
        "passed",
        "skipped",
        "passed",
    ]
    assert data["stages"][1]["findings"][0]["subject"] == "wasi_snapshot_preview1.fd_write"
