"""Configuration-agent files: each validation stage fails exactly where it should, with lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from caxton.config_agents import (
    ALL_MEMORY_SCOPES,
    DEFAULT_CAPABILITIES,
    DEFAULT_TOOLS,
    AgentConfig,
    MemoryScope,
    StageStatus,
    ValidationReport,
    load_agent,
    name_key,
    parse_agent,
    validate,
    validate_or_raise,
)
from caxton.errors import ErrorCode, ValidationFailed
from caxton.units import ByteSize, Duration

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).parent / "fixtures" / "config"
BAD = FIXTURES / "bad"


def stage_statuses(report: ValidationReport) -> list[str]:
    return [s.status.value for s in report.stages]


# file, failing stage, expected error findings as (line, field, code) in report order,
# and a fragment each fix must contain (or None).
BAD_CASES: list[tuple[str, int, list[tuple[int, str | None, str]], str | None]] = [
    ("s1_yaml_syntax.md", 1, [(4, None, "yaml_syntax")], "indentation"),
    ("s1_no_frontmatter.md", 1, [(1, None, "yaml_syntax")], "---"),
    ("s1_unclosed.md", 1, [(1, None, "yaml_syntax")], "---"),
    ("s1_duplicate_key.md", 1, [(5, "name", "duplicate_key")], "keep one"),
    ("s1_not_a_map.md", 1, [(2, None, "yaml_syntax")], "key: value"),
    ("s2_missing_tools.md", 2, [(2, "tools", "missing_field")], "tools: []"),
    ("s2_unknown_key.md", 2,
     [(2, "capabilities", "missing_field"), (4, "capabilites", "unknown_key")], None),
    ("s2_version_number.md", 2, [(3, "version", "invalid_type")], 'version: "1.5"'),
    ("s2_bad_name.md", 2, [(2, "name", "invalid_value")], "name:"),
    ("s3_unknown_capability.md", 3,
     [(5, "capabilities[1]", "unknown_capability")], "did you mean 'data-processing'?"),
    ("s4_unknown_tool.md", 4, [(6, "tools[1]", "unknown_tool")], "did you mean 'http_client'?"),
    ("s5_parameters.md", 5, [
        (6, "parameters.max_file_size", "invalid_parameter"),
        (7, "parameters.timeout", "invalid_parameter"),
        (8, "parameters.started", "invalid_parameter"),
        (11, "resource_limits.max_conversations", "greater_than_equal"),
        (12, "resource_limits.response_timeout", "invalid_value"),
        (14, "llm.provder", "unknown_key"),
    ], None),
    ("s6_memory_scope.md", 6,
     [(7, "resource_limits.memory_scope", "invalid_memory_scope")], "did you mean 'global'?"),
    ("s7_templates.md", 7, [
        (7, "system_prompt", "template_syntax"),
        (11, "user_prompt_template", "template_undefined_variable"),
    ], None),
]


@pytest.mark.parametrize(("name", "stage", "expected", "fix"), BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_bad_file_fails_exactly_at_its_stage(
    name: str, stage: int, expected: list[tuple[int, str | None, str]], fix: str | None
) -> None:
    parsed = load_agent(BAD / name)
    report = parsed.report
    assert not report.ok and not parsed.ok
    assert parsed.config is None and parsed.prompts is None
    assert report.failed_stage == stage
    want = ["passed"] * (stage - 1) + ["failed"]
    # stages 1 and 2 are hard: everything after is skipped; later stages all run.
    want += ["skipped" if stage <= 2 else "passed"] * (7 - stage)
    assert stage_statuses(report) == want
    got = [(f.line, f.field, f.code) for f in report.errors]
    assert got == expected
    for f in report.errors:
        assert f.stage == stage
        assert f.file == str(BAD / name)
        assert f.fix and f.message
    if fix is not None:
        assert all(fix in f.fix for f in report.errors), [f.fix for f in report.errors]
    with pytest.raises(ValidationFailed) as info:
        parsed.unwrap()
    assert info.value.code is ErrorCode.VALIDATION_FAILED
    assert [d["line"] for d in info.value.details] == [e[0] for e in expected]
    assert str(BAD / name) in info.value.message


def test_yaml_error_reports_column_and_where_the_construct_started() -> None:
    report = load_agent(BAD / "s1_yaml_syntax.md").report
    (err,) = report.errors
    assert (err.line, err.column) == (4, 6)
    assert "starts on line 3" in err.message


def test_unknown_top_level_key_gets_did_you_mean() -> None:
    report = load_agent(BAD / "s2_unknown_key.md").report
    unknown = next(f for f in report.errors if f.code == "unknown_key")
    assert unknown.fix.startswith("did you mean 'capabilities'?")
    assert unknown.column == 1


def test_template_findings_name_the_variables() -> None:
    report = load_agent(BAD / "s7_templates.md").report
    syntax, undefined = report.errors
    assert "endif" in syntax.message and "{% if %}" in syntax.fix
    assert undefined.message == "unknown template variable 'reqest_context'"
    assert "did you mean 'memory_context'?" in undefined.fix
    assert "agent, conversation, memory_context, parameters, request" in undefined.fix


def test_stage2_failure_hides_later_problems_as_skipped() -> None:
    # s2_bad_name.md also has an unknown tool and an unknown template variable
    report = load_agent(BAD / "s2_bad_name.md").report
    assert [s.number for s in report.stages if s.status is StageStatus.SKIPPED] == [3, 4, 5, 6, 7]
    assert all(not s.findings for s in report.stages[2:])
    assert "'9 lives' is not an agent name" in report.errors[0].message


def test_independent_stages_all_report_at_once() -> None:
    text = """---
name: Many
capabilities: [echoo]
tools: [csv_parsr]
resource_limits:
  memory_scope: everywhere
user_prompt_template: "{{ requst }}"
---
"""
    report = validate(text, source="inline.md")
    assert [s.status.value for s in report.stages] == [
        "passed", "passed", "failed", "failed", "passed", "failed", "failed"]
    assert [(f.stage, f.line) for f in report.errors] == [(3, 3), (4, 4), (6, 6), (7, 7)]
    assert all(f.file == "inline.md" for f in report.errors)
    fixes = " ".join(f.fix for f in report.errors)
    assert "'echo'" in fixes and "'csv_parser'" in fixes and "'request'" in fixes


def test_good_examples_and_fixtures_validate() -> None:
    files = sorted((ROOT / "agents").glob("*.md")) + sorted((FIXTURES / "good").glob("*.md"))
    names = {f.name for f in files}
    assert {"data-processor.md", "echo.md", "minimal.md", "full.md"} <= names
    for f in files:
        parsed = load_agent(f)
        assert parsed.ok, parsed.report.format(detailed=True)
        assert parsed.config is not None and parsed.prompts is not None
        assert all(s.status is StageStatus.PASSED for s in parsed.report.stages)


def test_data_processor_matches_the_guide() -> None:
    parsed = load_agent(ROOT / "agents" / "data-processor.md")
    c = parsed.unwrap()
    assert c.name == "DataProcessor" and c.version == "1.0.0" and c.key == "data-processor"
    assert c.capabilities == ("data-processing", "file-analysis")
    assert c.tools == ("http_client", "csv_parser", "json_validator")
    assert c.parameters == {"max_file_size": 50_000_000, "timeout": 30.0}
    assert isinstance(c.parameters["max_file_size"], ByteSize)
    assert isinstance(c.parameters["timeout"], Duration)
    rl = c.resource_limits
    assert rl.memory_scope is MemoryScope.WORKSPACE
    assert rl.max_conversations == 100  # from the alias conversation_limit
    assert (rl.max_memory_entities, rl.response_timeout, rl.tool_call_timeout) == (10_000, 30, 10)
    assert c.llm is None
    assert parsed.body.startswith("# Data Processor Agent")
    assert parsed.documentation == parsed.body
    assert parsed.prompts is not None
    assert parsed.prompts.render_user("sum col B", "sheet.csv has 3 columns") == (
        "Process this data request: sum col B\nAvailable context: sheet.csv has 3 columns\n")
    assert parsed.prompts.render_system().startswith("You are a data processing specialist")


def test_echo_agent_is_small_and_renders_memory_only_when_present() -> None:
    parsed = load_agent(ROOT / "agents" / "echo.md")
    c = parsed.unwrap()
    assert c.tools == () and c.llm is not None and c.llm.provider == "echo"
    assert parsed.prompts is not None
    assert parsed.prompts.render_user("ping") == "ping"
    # a plain echo: the reply never grows with memory, and it recalls nothing
    assert parsed.prompts.render_user("ping", "pong seen") == "ping"
    assert parsed.prompts.render_system("ping", "pong seen") == ""
    assert parsed.prompts.linear and not parsed.prompts.uses_memory
    assert len(parsed.text) < 600


def test_full_fixture_typed_values_and_templates() -> None:
    parsed = load_agent(FIXTURES / "good" / "full.md")
    c = parsed.unwrap()
    assert c.version == "2.1.0-rc.1"
    assert c.parameters["fetch_timeout"] == 90.0 and str(c.parameters["fetch_timeout"]) == "90s"
    assert c.parameters["chunk_size"] == 10 * 1024**2
    assert c.parameters["limits"] == {"depth": 3, "ratio": 0.5, "enabled": True, "note": None}
    rl = c.resource_limits
    assert rl.memory_scope is MemoryScope.GLOBAL and rl.tool_call_timeout == 0.5
    assert c.llm is not None and c.llm.model == "llama3" and c.llm.api_key_env == "OPENAI_API_KEY"
    assert parsed.prompts is not None
    system = parsed.prompts.render_system()
    assert system == "You are Full-Agent_2 v2.1.0-rc.1 with tools http_client, json_validator.\n"
    user = parsed.prompts.render_user(
        "next?", "m1", [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}])
    assert user == ("user: hi\nassistant: yo\nuser: next?\nmemory: m1\nfetch timeout: 90s\n")


def test_defaults_when_optional_fields_absent() -> None:
    c = validate_or_raise("---\nname: Bare\ncapabilities: [echo]\ntools: []\n---\n")
    assert c.version == "1.0.0"
    assert c.parameters == {} and c.llm is None and c.system_prompt == ""
    assert c.user_prompt_template == "{{ request }}"
    rl = c.resource_limits
    assert (rl.memory_scope, rl.max_conversations, rl.max_memory_entities) == (
        MemoryScope.AGENT, 100, 10_000)
    assert (rl.response_timeout, rl.tool_call_timeout) == (30.0, 10.0)


def test_conversation_limit_alias_and_conflict() -> None:
    head = "---\nname: A\ncapabilities: [echo]\ntools: []\nresource_limits:\n"
    c = validate_or_raise(head + "  max_conversations: 3\n---\n")
    assert c.resource_limits.max_conversations == 3
    report = validate(head + "  max_conversations: 3\n  conversation_limit: 4\n---\n")
    (err,) = report.errors
    assert (err.stage, err.line, err.code) == (5, 7, "duplicate_setting")


def test_registries_are_parameters_of_the_validator() -> None:
    text = "---\nname: A\ncapabilities: [fortune-telling]\ntools: [crystal_ball]\n---\n"
    assert validate(text).failed_stage == 3
    assert validate(text, capabilities={"fortune-telling"}).failed_stage == 4
    assert validate(text, capabilities={"fortune-telling"}, available_tools=["crystal_ball"]).ok
    # the data-processor example needs the default tools: a node without csv_parser refuses it
    dp = (ROOT / "agents" / "data-processor.md").read_text()
    report = validate(dp, available_tools=("http_client", "json_validator"))
    (err,) = report.errors
    assert (err.stage, err.field, err.line) == (4, "tools[1]", 9)
    assert set(DEFAULT_TOOLS) == {"http_client", "csv_parser", "json_validator"}
    assert {"data-processing", "file-analysis", "echo", "conversation", "memory",
            "tool-use"} <= set(DEFAULT_CAPABILITIES)


def test_node_can_forbid_a_memory_scope() -> None:
    dp = (ROOT / "agents" / "data-processor.md").read_text()
    assert validate(dp, memory_scopes=ALL_MEMORY_SCOPES).ok
    report = validate(dp, source="dp.md", memory_scopes=("agent",))
    (err,) = report.errors
    assert (err.stage, err.code, err.line, err.field) == (
        6, "memory_scope_not_permitted", 15, "resource_limits.memory_scope")


def test_report_format_and_dict() -> None:
    report = load_agent(BAD / "s4_unknown_tool.md").report
    brief = report.format()
    assert "invalid, 1 error (first failure at stage 4, tool availability)" in brief
    assert "s4_unknown_tool.md:6:5: error [stage 4 tool availability] tools[1]:" in brief
    assert "fix: did you mean 'http_client'?" in brief
    assert "[1] YAML syntax" not in brief
    detailed = report.format(detailed=True)
    for n, name in enumerate(["YAML syntax", "required fields", "capability registry",
                              "tool availability", "parameter validation", "memory scope",
                              "template syntax"], start=1):
        assert f"[{n}] {name}" in detailed
    d = report.to_dict()
    assert json.loads(json.dumps(d)) == d  # plain data, safe for the control protocol
    assert d["ok"] is False and d["agent"] == "Tools"
    assert [s["status"] for s in d["stages"]] == [
        "passed", "passed", "passed", "failed", "passed", "passed", "passed"]
    assert d["errors"][0]["line"] == 6 and d["errors"][0]["stage_name"] == "tool availability"
    ok = load_agent(ROOT / "agents" / "echo.md").report
    assert ok.format() == f"{ok.source}: valid (7/7 stages passed)"


def test_parse_from_text_uses_source_label_and_keeps_body() -> None:
    text = "\ufeff---\nname: T\ncapabilities: [echo]\ntools: []\n...\n\n\n# Doc\nbody\n"
    parsed = parse_agent(text, source="api:deploy")
    assert parsed.ok and parsed.source == "api:deploy"
    assert parsed.body == "# Doc\nbody\n"
    assert len(parsed.digest) == 64
    assert parse_agent(text).digest == parsed.digest
    bad = parse_agent(text.replace("[echo]", "[echo"), source="api:deploy")
    assert bad.report.errors[0].file == "api:deploy"


def test_unreadable_file_is_a_stage1_finding(tmp_path: Path) -> None:
    parsed = load_agent(tmp_path / "missing.md")
    assert parsed.report.failed_stage == 1 and parsed.report.errors[0].code == "unreadable"
    (tmp_path / "latin1.md").write_bytes(b"---\nname: caf\xe9\n---\n")
    assert load_agent(tmp_path / "latin1.md").report.errors[0].code == "unreadable"


@pytest.mark.parametrize(
    ("snippet", "field", "stage"),
    [
        ("capabilities: echo", "capabilities", 2),
        ("capabilities:", "capabilities", 2),
        ("capabilities: [1]", "capabilities[0]", 2),
        ("system_prompt: [not, text]", "system_prompt", 7),
        ("resource_limits: 5", "resource_limits", 5),
        ("resource_limits: {max_memory_entities: '10'}", "resource_limits.max_memory_entities", 5),
        ("resource_limits: {response_timeout: 0s}", "resource_limits.response_timeout", 5),
        ("resource_limits: {max_conversatons: 5}", "resource_limits.max_conversatons", 5),
        ("llm: {provider: gpt}", "llm.provider", 5),
        ("parameters: [a, b]", "parameters", 5),
        ("parameters: {1: x}", "parameters.1", 5),
        ("parameters: {opts: {nested_size: 1}, poll_interval: soon}", "parameters.poll_interval", 5),
    ],
)
def test_type_errors_land_in_the_right_stage(snippet: str, field: str, stage: int) -> None:
    base = {"name": "name: T", "capabilities": "capabilities: [echo]", "tools": "tools: []"}
    key = snippet.split(":", 1)[0]
    base[key] = snippet
    lines = "\n".join(base.values()) if key in base else "\n".join([*base.values(), snippet])
    report = validate(f"---\n{lines}\n---\n")
    assert report.failed_stage == stage, report.format()
    fields = [f.field for f in report.errors]
    assert field in fields
    target = next(f for f in report.errors if f.field == field)
    snippet_line = f"---\n{lines}\n".splitlines().index(snippet) + 1
    assert target.line == snippet_line
    if "conversatons" in snippet:
        assert target.fix.startswith("did you mean 'max_conversations'")


def test_model_dump_round_trips() -> None:
    c = load_agent(FIXTURES / "good" / "full.md").unwrap()
    dumped = c.model_dump(mode="json")
    assert json.loads(json.dumps(dumped)) == dumped
    assert dumped["parameters"]["fetch_timeout"] == "90s"
    assert dumped["resource_limits"]["tool_call_timeout"] == "500ms"
    assert AgentConfig.model_validate(dumped) == c


def test_name_key() -> None:
    assert name_key("DataProcessor") == "data-processor"
    assert name_key("data_processor") == "data-processor"
    assert name_key("HTTPFetcher") == "http-fetcher"
    assert name_key("echo") == "echo"


def test_validate_or_raise_details_are_findings() -> None:
    with pytest.raises(ValidationFailed) as info:
        validate_or_raise("---\nname: X\ncapabilities: [echo]\ntools: [nope]\n---\n",
                          source="x.md")
    (d,) = info.value.details
    assert d["stage"] == 4 and d["line"] == 4 and d["file"] == "x.md" and d["field"] == "tools[0]"
    assert info.value.to_dict()["code"] == "VALIDATION_FAILED"


def test_warnings_do_not_fail() -> None:
    report = validate("---\nname: W\ncapabilities: [echo, echo]\ntools: []\n---\n")
    assert report.ok
    (w,) = report.warnings
    assert (w.stage, w.code, w.line) == (3, "duplicate_capability", 3)


def test_validation_is_fast_enough_for_thousands_of_deploys() -> None:
    import time

    text = (ROOT / "agents" / "echo.md").read_text()
    parse_agent(text)
    start = time.perf_counter()
    for i in range(200):
        assert parse_agent(text.replace("name: echo", f"name: echo-{i}")).ok
    per = (time.perf_counter() - start) / 200
    assert per < 0.005, f"{per * 1000:.2f} ms per parse"




@pytest.mark.parametrize(
    ("yaml_lines", "line", "text"),
    [
        (["parameters:", "  loop: &a [*a]"], 6, "aliases are not allowed"),
        (["parameters:", "  a: &x [1, 2]", "  b: *x"], 7, "aliases are not allowed"),
        (["parameters:", "  deep: " + "[" * 100 + "]" * 100], 6, "nested more than 32"),
        (["system_prompt: !!python/object:os.system x"], 5, "could not determine a constructor"),
    ],
)
def test_hostile_yaml_is_refused_in_stage1(yaml_lines: list[str], line: int, text: str) -> None:
    src = "\n".join(["---", "name: H", "capabilities: [echo]", "tools: []", *yaml_lines, "---"])
    report = validate(src + "\n")
    (err,) = report.errors
    assert err.stage == 1 and err.line == line and text in err.message


def test_non_text_key_is_a_stage2_error() -> None:
    report = validate("---\nname: K\ncapabilities: [echo]\ntools: []\n1: x\n---\n")
    (err,) = report.errors
    assert (err.stage, err.code, err.line) == (2, "invalid_key", 5)
