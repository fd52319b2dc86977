"""The control port over real ZeroMQ sockets on loopback: protocol, server, client, security."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import msgpack
import pykka
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from caxton.control import protocol
from caxton.control.client import ControlClient, NodeUnreachable, decode_reply
from caxton.control.keys import (
    CurveClientConfig,
    CurveServerConfig,
    InsecureBind,
    check_bind_allowed,
    generate_keys,
    is_loopback_endpoint,
)
from caxton.control.server import ControlServer, Reply
from caxton.errors import (
    AgentNotFound,
    CaxtonError,
    ErrorCode,
    InvalidArgument,
    ProtocolError,
)

pytestmark = pytest.mark.timeout(60)


def node_status(_args: Any) -> dict[str, Any]:
    return {"version": "test", "pid": 1, "uptime_s": 0.0, "control_endpoint": "x"}


def echo_send(args: protocol.MessageSendArgs) -> dict[str, Any]:
    return {"receiver": args.sender, "sender": args.agent, "content": args.content,
            "performative": "inform", "message_id": "m"}


def make_server(**kwargs: Any) -> ControlServer:
    server = ControlServer("tcp://127.0.0.1:0", **kwargs)
    server.register("node.status", node_status, blocking=False)
    server.register("message.send", echo_send, blocking=False)
    return server


@pytest.fixture
def server() -> Iterator[ControlServer]:
    srv = make_server()
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def client(server: ControlServer) -> Iterator[ControlClient]:
    with ControlClient(server.endpoint, timeout=5.0) as c:
        yield c


def raw_request(sock: zmq.Socket[bytes], frame: bytes, timeout: float = 5.0) -> dict[str, Any]:
    sock.send(frame)
    assert sock.poll(int(timeout * 1000)), "no reply to a frame"
    reply = msgpack.unpackb(sock.recv(), raw=False)
    assert isinstance(reply, dict)
    return reply


@pytest.fixture
def dealer(server: ControlServer) -> Iterator[zmq.Socket[bytes]]:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(server.endpoint)
    yield sock
    sock.close(0)


# ------------------------------------------------------------------------- protocol module


def test_every_op_has_models_and_the_cli_verbs_are_covered() -> None:
    expected = {
        "agents.deploy", "agents.reload", "agents.suspend", "agents.resume", "agents.remove",
        "agents.status", "agents.list", "agents.validate", "agents.logs", "agents.rollback",
        "agents.ab_test", "agents.promote", "agents.abort", "agents.recover", "agents.disable",
        "agents.monitor", "agents.reload_status", "message.send", "node.status",
        "node.shutdown", "operations.get", "conversations.list", "conversations.end",
    }
    assert set(protocol.OPS) == expected
    for spec in protocol.OPS.values():
        assert spec.args.model_config.get("extra") == "forbid", spec.name


def test_args_validation_names_the_field() -> None:
    with pytest.raises(InvalidArgument) as info:
        protocol.validate_args("agents.reload", {"name": "x", "strategy": "sideways"})
    assert "strategy" in info.value.message
    assert info.value.details[0]["field"] == "strategy"
    with pytest.raises(InvalidArgument, match="exactly one of 'text'"):
        protocol.validate_args("agents.deploy", {"file_name": "a.md"})
    with pytest.raises(InvalidArgument, match="split"):
        protocol.validate_args("agents.ab_test", {"name": "a", "config_a": "", "config_b": "",
                                                  "split": [80, 30]})
    args = protocol.validate_args("agents.reload", {"name": "x", "strategy": "canary",
                                                    "steps": [10, 50, 100]})
    assert isinstance(args, protocol.AgentsReloadArgs)
    assert args.strategy is protocol.ReloadStrategy.CANARY


def test_reload_rollout_tunables_and_always_on_flags() -> None:
    args = protocol.validate_args("agents.reload", {
        "name": "x", "strategy": "canary", "max_error_rate": 0.1, "max_p99_ratio": 2.0,
        "max_fuel_ratio": 3.0, "scale_down_delay_s": 0, "step_interval_s": 0.5})
    assert isinstance(args, protocol.AgentsReloadArgs)
    assert (args.max_error_rate, args.max_p99_ratio, args.max_fuel_ratio,
            args.scale_down_delay_s) == (0.1, 2.0, 3.0, 0)
    for field, bad in (("max_error_rate", 1.5), ("max_error_rate", -0.1),
                       ("max_p99_ratio", 0), ("max_fuel_ratio", -1),
                       ("scale_down_delay_s", -1)):
        with pytest.raises(InvalidArgument) as info:
            protocol.validate_args("agents.reload", {"name": "x", field: bad})
        assert info.value.details[0]["field"] == field
    # validation first and rollback on error are how the node always works: false is refused
    for flag in ("validate_first", "rollback_on_error"):
        with pytest.raises(InvalidArgument, match=f"'{flag}' cannot be false"):
            protocol.validate_args("agents.reload", {"name": "x", flag: False})


def test_size_and_split_parsers() -> None:
    assert protocol.parse_size("10MB") == 10 * 1024 * 1024
    assert protocol.parse_size("512kb") == 512 * 1024
    assert protocol.parse_size("4096") == 4096
    assert protocol.parse_split("80/20") == (80, 20)
    for bad in ("ten", "-1MB"):
        with pytest.raises(InvalidArgument):
            protocol.parse_size(bad)
    for bad in ("80/30", "80", "a/b"):
        with pytest.raises(InvalidArgument):
            protocol.parse_split(bad)


def test_markdown_reference_lists_every_op_and_error_code() -> None:
    text = protocol.render_markdown()
    for op in protocol.OPS:
        assert f"`{op}`" in text
    for code in ErrorCode:
        assert f"`{code.value}`" in text


def test_readme_protocol_reference_is_current() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    heading = "## Control protocol reference"
    assert heading in readme, "README lacks the generated control protocol reference"
    section = readme[readme.index(heading):]
    lines = section.splitlines()
    end = next((i for i, line in enumerate(lines[1:], 1) if line.startswith("## ")),
               len(lines))
    current = "\n".join(lines[:end]).strip()
    assert current == protocol.render_markdown().strip(), (
        "README's protocol reference is stale; regenerate it with "
        "`python3 -m caxton.control.protocol --markdown`")


# ------------------------------------------------------------------------- server basics


def test_round_trip_and_typed_errors(server: ControlServer, client: ControlClient) -> None:
    def missing(args: protocol.AgentsSuspendArgs) -> Any:
        raise AgentNotFound(f"no agent named {args.name!r}", details=[{"name": args.name}])

    server.register("agents.suspend", missing)
    assert client.call("node.status")["version"] == "test"
    reply = client.call("message.send", {"agent": "echo", "content": {"n": [1, 2]}})
    assert reply["content"] == {"n": [1, 2]}
    with pytest.raises(AgentNotFound) as info:
        client.call("agents.suspend", {"name": "ghost"})
    assert info.value.code is ErrorCode.AGENT_NOT_FOUND
    assert info.value.details == [{"name": "ghost"}]
    with pytest.raises(InvalidArgument) as bad:
        client.call("message.send", {"agent": "", "colour": 1})
    fields = {d["field"] for d in bad.value.details}
    assert fields == {"agent", "colour"}
    stats = server.latency.snapshot()
    assert stats["node.status"]["count"] >= 1 and stats["node.status"]["p50_us"] > 0


@pytest.mark.parametrize(
    ("frame", "needle"),
    [
        (b"\xc1\xc1not msgpack", "not a valid msgpack"),
        (msgpack.packb([1, 2, 3]), "must be a msgpack map"),
        (msgpack.packb({"v": 1, "op": "node.status"}), "'id'"),
        (msgpack.packb({"v": 2, "id": 1, "op": "node.status"}), "version"),
        (msgpack.packb({"v": 1, "id": 1, "op": "agents.teleport"}), "unknown op"),
        (msgpack.packb({"v": 1, "id": 1, "op": 5}), "'op'"),
        (msgpack.packb({"v": 1, "id": 1, "op": "node.status", "args": [1]}), "'args'"),
        (msgpack.packb({"v": 1, "id": 1, "op": "node.status", "extra": 1}), "envelope key"),
        (msgpack.packb({"v": 1, "id": 1, "op": "agents.remove", "args": {"name": "x"}}),
         "not served"),
        (b"", "not a valid msgpack"),
    ],
)
def test_malformed_frames_get_a_protocol_error_naming_the_problem(
        dealer: zmq.Socket[bytes], frame: bytes, needle: str) -> None:
    reply = raw_request(dealer, frame)
    assert reply["ok"] is False
    assert reply["error"]["code"] == "PROTOCOL_ERROR"
    assert needle in reply["error"]["message"]


def test_multi_frame_request_is_refused(dealer: zmq.Socket[bytes]) -> None:
    dealer.send_multipart([b"a", msgpack.packb({"v": 1, "id": 1, "op": "node.status"})])
    assert dealer.poll(5000)
    reply = msgpack.unpackb(dealer.recv_multipart()[-1], raw=False)
    assert reply["error"]["code"] == "PROTOCOL_ERROR"
    assert "exactly one" in reply["error"]["message"]


def test_req_socket_clients_are_served(server: ControlServer) -> None:
    sock = zmq.Context.instance().socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(server.endpoint)
    try:
        reply = raw_request(sock, msgpack.packb({"v": 1, "id": "r1", "op": "node.status"}))
        assert reply["ok"] and reply["id"] == "r1"
    finally:
        sock.close(0)


def test_handler_bugs_become_internal_errors_and_the_server_keeps_serving(
        server: ControlServer, client: ControlClient) -> None:
    def broken(_args: Any) -> Any:
        raise ZeroDivisionError("boom")

    def unencodable(_args: Any) -> Any:
        return {"x": object()}

    server.register("agents.list", broken, blocking=False)
    server.register("agents.status", unencodable)
    with pytest.raises(CaxtonError) as info:
        client.call("agents.list")
    assert info.value.code is ErrorCode.INTERNAL and "ZeroDivisionError" in info.value.message
    with pytest.raises(CaxtonError) as info2:
        client.call("agents.status")
    assert info2.value.code is ErrorCode.INTERNAL
    assert client.call("node.status")["version"] == "test"


def test_results_may_be_models_futures_and_pykka_futures(
        server: ControlServer, client: ControlClient) -> None:
    def as_model(_args: Any) -> protocol.NodeStatusResult:
        return protocol.NodeStatusResult(version="m", pid=2, uptime_s=1.0,
                                         control_endpoint="e")

    def as_future(args: protocol.AgentsLogsArgs) -> Future[dict[str, Any]]:
        fut: Future[dict[str, Any]] = Future()
        threading.Timer(0.05, fut.set_result, [{"records": [{"event": args.name}]}]).start()
        return fut

    def as_pykka(args: protocol.AgentsMonitorArgs) -> pykka.Future[dict[str, Any]]:
        fut: pykka.ThreadingFuture[dict[str, Any]] = pykka.ThreadingFuture()
        threading.Timer(0.05, fut.set, [{"name": args.name, "metrics": {"n": 1}}]).start()
        return fut

    def failing_future(_args: Any) -> Future[Any]:
        fut: Future[Any] = Future()
        fut.set_exception(AgentNotFound("gone"))
        return fut

    server.register("node.status", as_model, blocking=False)
    server.register("agents.logs", as_future, blocking=False)
    server.register("agents.monitor", as_pykka, blocking=False)
    server.register("agents.remove", failing_future, blocking=False)
    assert client.call("node.status")["version"] == "m"
    assert client.call("agents.logs", {"name": "a"})["records"] == [{"event": "a"}]
    assert client.call("agents.monitor", {"name": "b"})["metrics"] == {"n": 1}
    with pytest.raises(AgentNotFound):
        client.call("agents.remove", {"name": "c"})


def test_a_replying_handler_completes_its_reply_from_any_thread_once(
        server: ControlServer, client: ControlClient) -> None:
    completed: list[bool] = []

    def later(args: protocol.MessageSendArgs, reply: Reply) -> None:
        def finish() -> None:
            completed.append(reply.ok({"content": args.content}))
            completed.append(reply.ok({"content": "second"}))  # ignored: the first wins
            completed.append(reply.fail(AgentNotFound("late")))  # ignored too

        threading.Timer(0.05, finish).start()

    server.register("message.send", later, blocking=False, replies=True)
    assert client.call("message.send", {"agent": "a", "content": "x"})["content"] == "x"
    assert completed == [True, False, False]
    # exactly one reply went out: the next call's reply is its own
    assert client.call("message.send", {"agent": "a", "content": "y"})["content"] == "y"


def test_a_replying_handler_that_raises_before_replying_gets_its_typed_error(
        server: ControlServer, client: ControlClient) -> None:
    def refuse(args: protocol.MessageSendArgs, reply: Reply) -> None:
        raise AgentNotFound(f"no agent {args.agent!r}")

    def fail_then_raise(args: protocol.MessageSendArgs, reply: Reply) -> None:
        reply.fail(InvalidArgument("bad content"))
        raise RuntimeError("a bug after replying")

    server.register("message.send", refuse, blocking=False, replies=True)
    with pytest.raises(AgentNotFound, match="no agent 'ghost'"):
        client.call("message.send", {"agent": "ghost", "content": 1})
    server.register("message.send", fail_then_raise, blocking=False, replies=True)
    with pytest.raises(InvalidArgument, match="bad content"):  # its reply, not the bug's
        client.call("message.send", {"agent": "a", "content": 1})
    assert client.call("node.status")["version"] == "test"  # the port lives on


def test_replying_handlers_leave_nothing_in_flight(server: ControlServer,
                                                   client: ControlClient) -> None:
    # Replies completed inline, on other threads, with errors and by raising: each one
    # frees its in-flight slot exactly once (the port's QUEUE_FULL accounting).
    def mixed(args: protocol.MessageSendArgs, reply: Reply) -> None:
        n = args.content
        if n % 4 == 0:
            reply.ok(n)
        elif n % 4 == 1:
            threading.Thread(target=reply.ok, args=(n,)).start()
        elif n % 4 == 2:
            reply.fail(InvalidArgument(f"no {n}"))
        else:
            raise AgentNotFound(f"none {n}")

    server.register("message.send", mixed, blocking=False, replies=True)
    sent = {client.send_nowait("message.send", {"agent": "a", "content": n}): n
            for n in range(200)}
    results: dict[int, Any] = {}
    for _ in range(200):
        frame = client.recv()
        assert frame.id in sent and sent[frame.id] not in results  # one reply each
        results[sent[frame.id]] = frame.result if frame.ok else frame.error.code  # type: ignore[union-attr]
    assert [results[n] for n in range(0, 200, 4)] == list(range(0, 200, 4))
    assert [results[n] for n in range(1, 200, 4)] == list(range(1, 200, 4))
    assert {results[n] for n in range(2, 200, 4)} == {ErrorCode.INVALID_ARGUMENT}
    assert {results[n] for n in range(3, 200, 4)} == {ErrorCode.AGENT_NOT_FOUND}
    assert server._in_flight == 0


def test_replies_requires_an_inline_handler() -> None:
    srv = ControlServer("tcp://127.0.0.1:0")
    with pytest.raises(ValueError, match="blocking=False"):
        srv.register("message.send", lambda _a, _r: None, replies=True)


# ------------------------------------------------------------------------- robustness


_VALID = {"v": 1, "id": 7, "op": "agents.reload",
          "args": {"name": "echo", "strategy": "canary", "steps": [10, 100]}}


def _mutations() -> st.SearchStrategy[Any]:
    leaf = st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**64 - 1),
                     st.floats(allow_nan=True), st.text(max_size=20), st.binary(max_size=20))
    values = st.recursive(leaf, lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
        max_leaves=10)
    keys = st.sampled_from(["v", "id", "op", "args", "extra"])
    arg_keys = st.sampled_from(["name", "strategy", "steps", "split", "text", "bogus"])
    mutated_envelope = st.builds(lambda k, v: {**_VALID, k: v}, keys, values)
    mutated_args = st.builds(lambda k, v: {**_VALID, "args": {**_VALID["args"], k: v}},
                             arg_keys, values)
    dropped = st.builds(lambda k: {k2: v for k2, v in _VALID.items() if k2 != k}, keys)
    return st.one_of(values, mutated_envelope, mutated_args, dropped)


@pytest.fixture(scope="module")
def fuzz_target() -> Iterator[tuple[ControlServer, zmq.Socket[bytes]]]:
    srv = make_server()
    for op in protocol.OPS:
        if op not in ("node.status", "message.send"):
            srv.register(op, lambda _a: {"ok": True}, blocking=False)
    srv.start()
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(srv.endpoint)
    yield srv, sock
    sock.close(0)
    srv.stop()


def _exactly_one_reply(sock: zmq.Socket[bytes], frame: bytes) -> dict[str, Any]:
    sock.send(frame)
    assert sock.poll(5000), f"no reply to {frame[:60]!r}"
    reply = msgpack.unpackb(sock.recv(), raw=False)
    assert not sock.poll(0), "more than one reply to one frame"
    assert isinstance(reply, dict) and reply["v"] == 1 and isinstance(reply["ok"], bool)
    if not reply["ok"]:
        assert reply["error"]["code"] in ("PROTOCOL_ERROR", "INVALID_ARGUMENT"), reply
        assert reply["error"]["message"]
    return reply


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=200))
def test_fuzz_random_bytes(fuzz_target: tuple[ControlServer, zmq.Socket[bytes]],
                           data: bytes) -> None:
    _exactly_one_reply(fuzz_target[1], data)


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=_mutations())
def test_fuzz_msgpack_values_and_mutated_requests(
        fuzz_target: tuple[ControlServer, zmq.Socket[bytes]], value: Any) -> None:
    try:
        frame = msgpack.packb(value, use_bin_type=True)
    except (OverflowError, ValueError, TypeError):
        return
    _exactly_one_reply(fuzz_target[1], frame)


def test_server_still_serves_after_fuzzing(
        fuzz_target: tuple[ControlServer, zmq.Socket[bytes]]) -> None:
    with ControlClient(fuzz_target[0].endpoint, timeout=5) as c:
        assert c.call("node.status")["version"] == "test"


def test_oversized_frames_are_refused_by_zeromq() -> None:
    srv = make_server(max_message_size=1024)
    srv.start()
    try:
        with ControlClient(srv.endpoint, timeout=0.5) as big, \
                pytest.raises(NodeUnreachable):
            big.call("message.send", {"agent": "a", "content": "x" * 4096})
        with ControlClient(srv.endpoint, timeout=5) as small:
            assert small.call("message.send", {"agent": "a", "content": "ok"})["content"] == "ok"
    finally:
        srv.stop()


def test_twenty_concurrent_clients_are_all_served(server: ControlServer) -> None:
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            with ControlClient(server.endpoint, timeout=10) as c:
                for i in range(50):
                    got = c.call("message.send", {"agent": "a", "content": [n, i]})
                    assert got["content"] == [n, i]
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    assert server.latency.snapshot()["message.send"]["count"] >= 1000


def test_pipelined_window_keeps_every_reply(server: ControlServer,
                                            client: ControlClient) -> None:
    sent = {client.send_nowait("message.send", {"agent": "a", "content": i}): i
            for i in range(500)}
    got = {}
    while client.in_flight:
        reply = client.recv(5)
        got[reply.id] = reply.unwrap()["content"]
    assert got == sent


def test_slow_handler_does_not_block_other_clients(server: ControlServer) -> None:
    release = threading.Event()

    def slow(_args: Any) -> dict[str, Any]:
        release.wait(5)
        return {"name": "slow"}

    server.register("agents.deploy", slow)  # blocking: runs in the worker pool
    slow_result: list[Any] = []
    with ControlClient(server.endpoint, timeout=10) as slow_client:
        t = threading.Thread(target=lambda: slow_result.append(slow_client.call(
            "agents.deploy", {"file_name": "a.md", "text": "x"})))
        t.start()
        time.sleep(0.1)
        with ControlClient(server.endpoint, timeout=2) as fast:
            start = time.monotonic()
            for _ in range(20):
                fast.call("node.status")
            assert time.monotonic() - start < 1.5
        release.set()
        t.join(10)
    assert slow_result == [{"name": "slow"}]


def test_slow_future_does_not_block_the_socket_thread(server: ControlServer) -> None:
    pending: list[Future[Any]] = []

    def later(_args: Any) -> Future[Any]:
        fut: Future[Any] = Future()
        pending.append(fut)
        return fut

    server.register("agents.rollback", later, blocking=False)
    with ControlClient(server.endpoint, timeout=5) as a, \
            ControlClient(server.endpoint, timeout=2) as b:
        rid = a.send_nowait("agents.rollback", {"name": "x"})
        assert b.call("node.status")["version"] == "test"
        while not pending:
            time.sleep(0.01)
        pending[0].set_result({"name": "x", "version": "1"})
        reply = a.recv(5)
        assert reply.id == rid and reply.unwrap()["version"] == "1"


def test_reply_to_a_vanished_client_is_counted_not_fatal(server: ControlServer) -> None:
    release = threading.Event()
    server.register("agents.resume", lambda _a: release.wait(5) and {"name": "x"})
    gone = ControlClient(server.endpoint, timeout=5)
    gone.send_nowait("agents.resume", {"name": "x"})
    time.sleep(0.1)
    gone.close()
    time.sleep(0.1)
    release.set()
    deadline = time.monotonic() + 5
    while server.undeliverable == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.undeliverable == 1
    with ControlClient(server.endpoint, timeout=5) as c:
        assert c.call("node.status")["version"] == "test"


def test_stop_drains_in_flight_requests() -> None:
    srv = make_server()
    srv.register("agents.promote", lambda a: time.sleep(0.3) or {"name": a.name})
    srv.start()
    with ControlClient(srv.endpoint, timeout=5) as c:
        rid = c.send_nowait("agents.promote", {"name": "p"})
        time.sleep(0.05)
        srv.stop(timeout=3)
        reply = c.recv(5)
        assert reply.id == rid and reply.unwrap() == {"name": "p"}
        with pytest.raises(NodeUnreachable):
            c.call("node.status", timeout=0.3)


def test_unreachable_node_error_names_endpoint_and_how_to_start() -> None:
    with ControlClient("tcp://127.0.0.1:1", timeout=0.2) as c, \
            pytest.raises(NodeUnreachable) as info:
        c.call("node.status")
    text = str(info.value)
    assert "tcp://127.0.0.1:1" in text and "python3 -m caxton" in text


def test_decode_reply_rejects_garbage() -> None:
    with pytest.raises(ProtocolError):
        decode_reply(b"\xc1")
    with pytest.raises(ProtocolError):
        decode_reply(msgpack.packb({"hello": 1}))


# ------------------------------------------------------------------------- security


def test_bind_policy() -> None:
    for ep in ("tcp://127.0.0.1:7460", "tcp://localhost:1", "tcp://[::1]:7", "ipc:///tmp/x"):
        assert is_loopback_endpoint(ep)
    for ep in ("tcp://0.0.0.0:7460", "tcp://*:7460", "tcp://10.1.2.3:1", "tcp://eth0:1"):
        assert not is_loopback_endpoint(ep)
    with pytest.raises(InsecureBind, match="--insecure"):
        ControlServer("tcp://0.0.0.0:0").start()
    check_bind_allowed("tcp://0.0.0.0:1", curve=False, insecure=True)
    check_bind_allowed("tcp://0.0.0.0:1", curve=True, insecure=False)


def test_curve_admits_only_allow_listed_keys(tmp_path: Path) -> None:
    server_keys = generate_keys(tmp_path / "server", "server")
    known = generate_keys(tmp_path / "clients", "known")
    stranger = generate_keys(tmp_path / "strangers", "stranger")
    allow = tmp_path / "allowed"
    allow.mkdir()
    (allow / "known.key").write_bytes(known.public.read_bytes())
    srv = ControlServer("tcp://127.0.0.1:0",
                        curve=CurveServerConfig(server_keys.secret, allow))
    srv.register("node.status", node_status, blocking=False)
    srv.register("agents.list", lambda _a: {"agents": []})  # pool: replies via the wake path
    srv.start()
    try:
        ok = CurveClientConfig(server_keys.public, known.secret)
        with ControlClient(srv.endpoint, timeout=5, curve=ok) as c:
            assert c.call("node.status")["version"] == "test"
            assert c.call("agents.list") == {"agents": []}
        bad = CurveClientConfig(server_keys.public, stranger.secret)
        with ControlClient(srv.endpoint, timeout=0.7, curve=bad) as c, \
                pytest.raises(NodeUnreachable):
            c.call("node.status")
        with ControlClient(srv.endpoint, timeout=0.7) as plain, \
                pytest.raises(NodeUnreachable):
            plain.call("node.status")
    finally:
        srv.stop()


@pytest.mark.parametrize("max_batch", [1, 3, 16])
def test_pipelined_requests_are_all_answered_whatever_the_batch_limit(max_batch: int) -> None:
    srv = make_server(max_batch=max_batch)
    srv.start()
    try:
        with ControlClient(srv.endpoint, timeout=5.0, max_in_flight=500) as c:
            ids = [c.send_nowait("message.send", {"agent": "a", "content": i})
                   for i in range(300)]
            replies = {r.id: r for r in (c.recv(5) for _ in ids)}
        assert sorted(replies) == sorted(ids)
        assert [replies[i].result["content"] for i in ids] == list(range(300))
    finally:
        srv.stop()


class _InlineWork:
    """A :class:`LocalExecutor` like the node's: a handler's reply is completed only when the
    socket thread runs the pending work (as a WASM agent's guest call is)."""

    def __init__(self) -> None:
        self.pending: list[tuple[Future[dict[str, Any]], dict[str, Any]]] = []

    def adopt(self) -> None:
        pass

    def release(self) -> None:
        pass

    def run_pending(self) -> int:
        ran, self.pending = self.pending, []
        for fut, value in ran:
            fut.set_result(value)
        return len(ran)


def _replies_sent_before_each_request(max_batch: int, eager_run: int,
                                      burst: int) -> list[list[tuple[int, int]]]:
    """Twice, queue ``burst`` requests behind a slow one; for each request the handler
    records (its content, how many replies of the round the port had sent when it ran)."""
    seen: list[tuple[int, int]] = []
    work = _InlineWork()
    srv = ControlServer("tcp://127.0.0.1:0", max_batch=max_batch, eager_run=eager_run,
                        executor=work)

    def send(args: protocol.MessageSendArgs) -> Future[dict[str, Any]]:
        counts = srv.latency.snapshot().get("message.send", {}).get("count", 0)
        seen.append((args.content, int(counts)))
        if args.content == -1:
            time.sleep(0.3)  # the port is busy: the burst queues up behind this request
        fut: Future[dict[str, Any]] = Future()
        work.pending.append((fut, echo_send(args)))
        return fut

    srv.register("message.send", send, blocking=False)
    srv.start()
    rounds: list[list[tuple[int, int]]] = []
    try:
        with ControlClient(srv.endpoint, timeout=5.0, max_in_flight=500) as c:
            for _ in range(2):  # the second burst comes after the port went idle again
                del seen[:]
                first = c.send_nowait("message.send", {"agent": "a", "content": -1})
                time.sleep(0.05)
                ids = [first, *(c.send_nowait("message.send", {"agent": "a", "content": i})
                                for i in range(burst))]
                replies = {r.id: r for r in (c.recv(5) for _ in ids)}
                assert sorted(replies) == sorted(ids)
                assert [replies[i].result["content"] for i in ids] == [-1, *range(burst)]
                base = seen[0][1]
                rounds.append([(content, sent - base) for content, sent in seen])
    finally:
        srv.stop()
    return rounds


def test_an_idle_port_answers_each_request_before_reading_the_next() -> None:
    # After an idle port reads a request it is eager: the first ``eager_run`` requests of a
    # burst each find every earlier reply already sent (nobody waits for later requests).
    # Then it batches: some request runs before the reply of the one before it has left.
    # Once the burst is answered the port idles, and the next burst starts eagerly again.
    for seen in _replies_sent_before_each_request(max_batch=16, eager_run=6, burst=60):
        assert [content for content, _ in seen] == [-1, *range(60)]
        assert [sent for _, sent in seen[:7]] == list(range(7))
        assert any(sent < position for position, (_, sent) in enumerate(seen))


def test_batch_limit_one_never_batches() -> None:
    for seen in _replies_sent_before_each_request(max_batch=1, eager_run=6, burst=40):
        assert [sent for _, sent in seen] == list(range(41))


def test_batch_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_batch"):
        ControlServer("tcp://127.0.0.1:0", max_batch=0)
    with pytest.raises(ValueError, match="eager_run"):
        ControlServer("tcp://127.0.0.1:0", eager_run=0)
