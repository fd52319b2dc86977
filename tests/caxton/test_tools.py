"""Tool registry, declared-tool views and the built-in tools (http_client against a real server)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from caxton.errors import InvalidArgument, ToolError, ToolNotDeclared, ToolTimeout
from caxton.llm.testing import CannedResponse, LocalHTTPServer, RecordedRequest
from caxton.tools import (
    BUILTIN_TOOLS,
    HostAllowlist,
    Tool,
    ToolRegistry,
    builtin_registry,
    parse_csv,
    validate_json,
)
from caxton.tools.testing import add_tool as _add
from caxton.tools.testing import broken_tool, sleep_tool

ADD_SCHEMA = {
    "type": "object",
    "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
    "required": ["a", "b"],
    "additionalProperties": False,
}


@pytest.fixture
def web() -> Iterator[LocalHTTPServer]:
    def handler(req: RecordedRequest) -> CannedResponse:
        if req.path == "/data.json":
            return CannedResponse(200, {"rows": [1, 2, 3]})
        if req.path == "/big":
            return CannedResponse(200, "x" * 5000)
        if req.path == "/slow":
            return CannedResponse(200, "late", delay=5)
        if req.path == "/redirect":
            return CannedResponse(302, "", headers={"location": "http://evil.example/"})
        if req.path == "/echo":
            return CannedResponse(200, req.body.decode() or "empty")
        return CannedResponse(404, "missing")

    with LocalHTTPServer(handler) as server:
        yield server


def test_registry_validates_arguments_before_calling() -> None:
    calls: list[dict[str, Any]] = []

    async def spy(args: dict[str, Any], timeout: float) -> int:  # an I/O tool: on the loop
        calls.append(args)
        return _add(args, timeout)

    reg = ToolRegistry([Tool("add", "adds", ADD_SCHEMA, spy)])
    assert reg.names() == ["add"]
    assert reg.call("add", {"a": 2, "b": 3}, timeout=5) == 5
    with pytest.raises(ToolError) as err:
        reg.call("add", {"a": "two", "c": 1}, timeout=5)
    paths = {d["path"] for d in err.value.details}
    assert "$.a" in paths and "$" in paths  # wrong type at $.a; missing b / extra c at $
    with pytest.raises(ToolError, match="object of arguments"):
        reg.call("add", [1, 2], timeout=5)
    assert len(calls) == 1  # invalid calls never reached the tool
    with pytest.raises(ToolError, match="no tool named 'mul'"):
        reg.call("mul", {}, timeout=5)


def test_registry_refuses_bad_tools() -> None:
    reg = ToolRegistry([Tool("add", "adds", ADD_SCHEMA, _add)])
    with pytest.raises(InvalidArgument, match="already registered"):
        reg.register(Tool("add", "again", ADD_SCHEMA, _add))
    with pytest.raises(InvalidArgument, match="'object' schema"):
        reg.register(Tool("x", "x", {"type": "string"}, _add))
    with pytest.raises(InvalidArgument, match="not a valid JSON Schema"):
        reg.register(Tool("y", "y", {"type": "object", "properties": {"a": {"type": 7}}}, _add))


def test_slow_and_failing_tools_become_tool_errors() -> None:
    obj = {"type": "object"}
    reg = ToolRegistry([Tool("slow", "", obj, sleep_tool), Tool("broken", "", obj, broken_tool)])
    started = time.monotonic()
    with pytest.raises(ToolTimeout, match=r"did not finish within 0\.2s") as err:
        reg.call("slow", {}, timeout=0.2)
    assert time.monotonic() - started < 5
    assert err.value.details[0]["reason"] == "timeout"
    with pytest.raises(ToolError, match="RuntimeError: disk on fire"):
        reg.call("broken", {}, timeout=5)


def test_a_computing_tool_must_be_importable_by_name() -> None:
    def local(args: dict[str, Any], timeout: float) -> int:
        return 1

    with pytest.raises(InvalidArgument, match="module-level function"):
        ToolRegistry([Tool("local", "", {"type": "object"}, local)])


def test_agent_view_refuses_undeclared_tools() -> None:
    reg = builtin_registry()
    assert reg.names() == sorted(BUILTIN_TOOLS)
    view = reg.view("DataProcessor", ["csv_parser", "json_validator"])
    assert view.names() == ["csv_parser", "json_validator"]
    assert [t.name for t in view.tools()] == ["csv_parser", "json_validator"]
    with pytest.raises(ToolNotDeclared) as err:
        view.call("http_client", {"url": "http://127.0.0.1/"}, timeout=5)
    msg = err.value.message
    assert "'DataProcessor'" in msg and "'http_client'" in msg
    assert "csv_parser, json_validator" in msg
    result = view.call("csv_parser", {"text": "a,b\n1,2\n"}, timeout=5)
    assert result["row_count"] == 1


def test_http_client_fetches_from_allowed_local_host(web: LocalHTTPServer) -> None:
    reg = builtin_registry(http_allowed_hosts=[f"127.0.0.1:{web.port}"])
    out = reg.call("http_client", {"url": f"{web.url}/data.json"}, timeout=5)
    assert out["status"] == 200 and out["json"] == {"rows": [1, 2, 3]}
    posted = reg.call("http_client", {"url": f"{web.url}/echo", "method": "POST",
                                      "json": {"k": "v"}}, timeout=5)
    assert posted["body"] == '{"k": "v"}'
    assert web.requests[-1].headers["content-type"] == "application/json"
    missing = reg.call("http_client", {"url": f"{web.url}/nope"}, timeout=5)
    assert missing["status"] == 404  # an HTTP error status is a result, not a tool failure


def test_http_client_refuses_hosts_off_the_allowlist(web: LocalHTTPServer) -> None:
    reg = builtin_registry(http_allowed_hosts=["api.example.com"])
    with pytest.raises(ToolError) as err:
        reg.call("http_client", {"url": f"{web.url}/data.json"}, timeout=5)
    assert "'127.0.0.1'" in err.value.message
    assert "http_client.allowed_hosts" in err.value.message
    assert web.requests == []  # refused before any connection
    # right host, wrong port: refused too
    reg2 = builtin_registry(http_allowed_hosts=[f"127.0.0.1:{web.port + 1}"])
    with pytest.raises(ToolError, match="not on this node's allowlist"):
        reg2.call("http_client", {"url": f"{web.url}/data.json"}, timeout=5)
    with pytest.raises(ToolError, match="http"):
        reg2.call("http_client", {"url": "file:///etc/passwd"}, timeout=5)


def test_http_client_caps_size_timeouts_and_redirects(web: LocalHTTPServer) -> None:
    reg = builtin_registry(http_allowed_hosts=["127.0.0.1"], http_max_response_bytes=1000)
    with pytest.raises(ToolError, match="1000-byte cap"):
        reg.call("http_client", {"url": f"{web.url}/big"}, timeout=5)
    started = time.monotonic()
    with pytest.raises(ToolError, match=r"did not answer within 0\.3s"):
        reg.call("http_client", {"url": f"{web.url}/slow", "timeout": 0.3}, timeout=5)
    assert time.monotonic() - started < 4
    redirect = reg.call("http_client", {"url": f"{web.url}/redirect"}, timeout=5)
    assert redirect["status"] == 302  # not followed to the off-list host
    assert redirect["headers"]["location"] == "http://evil.example/"


def test_host_allowlist_patterns() -> None:
    allow = HostAllowlist(["*.example.com", "api.test:8443", "LOCALHOST"])
    assert allow.allows("a.example.com", 443)
    assert not allow.allows("example.com", 443)
    assert not allow.allows("badexample.com", 443)
    assert allow.allows("api.test", 8443) and not allow.allows("api.test", 443)
    assert allow.allows("localhost", 80)
    with pytest.raises(InvalidArgument):
        HostAllowlist(["host:port"])


def test_csv_parser_summarises_columns() -> None:
    out = parse_csv({"text": "name;amount;note\nx;1,000;a\ny;2.5;\nz;3;c\n"})
    assert out["delimiter"] == ";"
    assert out["columns"] == ["name", "amount", "note"]
    assert out["row_count"] == 3
    assert out["rows"][0] == {"name": "x", "amount": "1,000", "note": "a"}
    amount = out["summary"]["amount"]
    assert amount["numeric"] and amount["min"] == 2.5 and amount["max"] == 1000
    assert out["summary"]["name"]["numeric"] is False
    assert out["summary"]["note"]["non_empty"] == 2
    headless = parse_csv({"text": "1,2\n3,4\n", "has_header": False, "max_rows": 1})
    assert headless["columns"] == ["column_1", "column_2"]
    assert headless["row_count"] == 2 and len(headless["rows"]) == 1


def test_json_validator_reports_errors_with_paths() -> None:
    schema = {
        "type": "object",
        "properties": {"items": {"type": "array", "items": {"type": "object",
                                                            "required": ["id"]}}},
        "required": ["items", "owner"],
    }
    bad = validate_json({"document": {"items": [{"id": 1}, {}]}, "schema": schema})
    assert bad["valid"] is False and bad["error_count"] == 2
    paths = [e["path"] for e in bad["errors"]]
    assert paths == ["$", "$.items[1]"]
    good = validate_json({"document_json": '{"items": [], "owner": "x"}', "schema": schema})
    assert good == {"valid": True, "error_count": 0, "errors": []}
    with pytest.raises(ToolError, match="not a valid JSON Schema"):
        validate_json({"document": 1, "schema": {"type": "nonsense"}})
    reg = builtin_registry()
    with pytest.raises(ToolError, match="invalid arguments"):
        reg.call("json_validator", {"schema": {}}, timeout=5)  # neither document given
