"""Prompt templates (sandboxed, strict, compile once) and parameter typing."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from caxton.config_agents import (
    TEMPLATE_VARIABLES,
    AgentPrompts,
    ParameterError,
    PromptTemplate,
    TemplateRenderError,
    check_parameters,
    check_template,
    typed_parameters,
    unit_kind,
    validate,
)
from caxton.errors import ErrorCode, ValidationFailed
from caxton.units import ByteSize, Duration

VARS: dict[str, Any] = {"request": "r", "memory_context": "m", "conversation": [],
                        "parameters": {}, "agent": {"name": "A"}}


def test_allowed_variables_are_exactly_the_five() -> None:
    assert {"request", "memory_context", "conversation", "parameters",
                                  "agent"} == TEMPLATE_VARIABLES
    src = "{{ request }}{{ memory_context }}{{ conversation }}{{ parameters }}{{ agent }}"
    assert check_template(src) == ()


@pytest.mark.parametrize(
    ("src", "line", "kind", "text"),
    [
        ("ok\n{{ user }}", 2, "undefined_variable", "unknown template variable 'user'"),
        ("a\nb\n{{ request }} {{ reqest }}", 3, "undefined_variable", "'reqest'"),
        ("{{ request }\n", 1, "syntax", "template syntax error"),
        ("x\n{% for a in conversation %}", 2, "syntax", "endfor"),
        ("x\n\n{{ request | no_such_filter }}", 3, "syntax", "no_such_filter"),
        ("{{ import_os }}", 1, "undefined_variable", "import_os"),
    ],
)
def test_template_problems_with_lines(src: str, line: int, kind: str, text: str) -> None:
    (p,) = check_template(src)
    assert (p.line, p.kind) == (line, kind)
    assert text in p.message
    with pytest.raises(ValidationFailed) as info:
        PromptTemplate(src)
    assert info.value.details[0]["line"] == line


def test_scoped_names_are_not_undeclared() -> None:
    src = ("{% set greeting = 'hi' %}{{ greeting }} "
           "{% for turn in conversation %}{{ loop.index }}:{{ turn.content }}{% endfor %}"
           "{% macro m(x) %}{{ x }}{% endmacro %}{{ m(request) }}")
    assert check_template(src) == ()
    out = PromptTemplate(src).render({**VARS, "conversation": [{"content": "c1"}], "request": "q"})
    assert out == "hi 1:c1q"


def test_strict_undefined_and_sandbox_raise_typed_errors() -> None:
    t = PromptTemplate("{{ request.missing }}")
    with pytest.raises(TemplateRenderError) as info:
        t.render(VARS)
    assert info.value.code is ErrorCode.INVALID_ARGUMENT
    assert "user_prompt_template" in info.value.message
    with pytest.raises(TemplateRenderError, match="unsafe"):
        PromptTemplate("{{ request.__class__.__mro__ }}").render(VARS)
    with pytest.raises(TemplateRenderError):
        PromptTemplate("{{ 1 / parameters.zero }}").render({**VARS, "parameters": {"zero": 0}})


def test_constant_template_renders_its_source() -> None:
    t = PromptTemplate("You are helpful.\n", field="system_prompt")
    assert t.render({}) == "You are helpful.\n"


def test_compile_is_cached_and_render_is_cheap() -> None:
    import time

    src = "Process: {{ request }}\nContext: {{ memory_context }}\n"
    a, b = PromptTemplate(src), PromptTemplate(src)
    assert a._template is b._template  # compiled once for every agent sharing the text
    start = time.perf_counter()
    for i in range(2000):
        a.render({**VARS, "request": i})
    assert (time.perf_counter() - start) / 2000 < 0.0005


def test_agent_prompts_bind_static_variables() -> None:
    p = AgentPrompts("I am {{ agent.name }}; limit {{ parameters.max_size }}",
                     "{{ request }}|{{ memory_context }}|{{ conversation | length }}",
                     agent={"name": "Bot"}, parameters={"max_size": ByteSize(1024)})
    assert p.render_system() == "I am Bot; limit 1KiB"
    assert p.render_user("q") == "q||0"
    assert p.render_user("q", "mem", [1, 2]) == "q|mem|2"
    with pytest.raises(ValidationFailed):
        AgentPrompts("{{ oops }}", "{{ request }}", agent={}, parameters={})


def test_parameter_units_by_name() -> None:
    assert unit_kind("timeout") == "duration" and unit_kind("read_timeout") == "duration"
    assert unit_kind("poll_interval") == "duration" and unit_kind("cache_ttl") == "duration"
    assert unit_kind("max_file_size") == "size" and unit_kind("chunk_bytes") == "size"
    assert unit_kind("timeouts_enabled") is None and unit_kind("resize") is None
    typed = typed_parameters({"timeout": "2m", "max_file_size": "1KB", "mode": "30s", "n": 3})
    assert typed == {"timeout": 120.0, "max_file_size": 1000, "mode": "30s", "n": 3}
    assert isinstance(typed["timeout"], Duration) and isinstance(typed["max_file_size"], ByteSize)
    assert typed_parameters(None) == {}


def test_parameter_problems_collect_every_path() -> None:
    import datetime

    _, problems = check_parameters({
        "timeout": "soon", "ok": [1, {"when": datetime.date(2024, 1, 1)}],
        "x": float("nan"), 7: "seven", "blob": b"\x00",
    })
    paths = [p.path for p in problems]
    assert paths == [("parameters", "timeout"), ("parameters", "ok", 1, "when"),
                     ("parameters", "x"), ("parameters", "7"), ("parameters", "blob")]
    with pytest.raises(ParameterError) as info:
        typed_parameters({"timeout": "soon"})
    assert info.value.problems[0].fix.startswith('write timeout: "30s"')


@settings(max_examples=40, deadline=None)
@given(
    padding=st.lists(st.sampled_from(["", "# a comment", "version: '1.0.0'"]), max_size=6,
                     unique=True),
    after=st.integers(min_value=0, max_value=3),
)
def test_line_numbers_follow_the_file(padding: list[str], after: int) -> None:
    lines = ["---", *padding, "name: Moving", "capabilities: [echo]",
             *[f"# filler {i}" for i in range(after)], "tools: [hammer]", "---"]
    report = validate("\n".join(lines) + "\n", source="moving.md")
    (err,) = report.errors
    assert err.line == lines.index("tools: [hammer]") + 1
    assert err.column == 9 and err.field == "tools[0]"
