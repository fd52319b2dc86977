"""Client processes that drive a node (or a baseline server) over ZeroMQ and account for
every message.

Each client is a separate process with one DEALER socket. It keeps at most ``window`` requests
in flight, each a ``message.send`` frame with a unique integer request id; it stops sending at
``duration`` or after ``messages`` requests, then waits for the stragglers (up to the message
timeout plus a grace period). Accounting is by request id:

* **replied** — an ``ok`` reply whose content is the one sent (echo agents echo);
* **errors** — a typed error reply, counted by its code;
* **wrong** — an ``ok`` reply carrying someone else's content (must be 0);
* **duplicated** — a second reply for an id already answered (must be 0);
* **stray** — a reply for an id never sent (must be 0);
* **lost** — sent and not answered within ``timeout`` plus the drain grace (must be 0); a
  reply that still comes later moves it to **late**.

The payload of request ``seq`` is ``"<client>:<seq>:"`` padded to ``payload`` bytes, so an
echoed reply proves which request it answers. A client can be paced to a target rate (for the
latency-at-50%-of-peak measurement) and can address a fraction of its messages to crash agents
with content containing ``crash`` (the flaky module traps on it).
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import select
import time
from array import array
from dataclasses import dataclass, field
from typing import Any, cast

import msgpack
import zmq

PROGRESS_FIELDS = 3  # sent, done, errors per client in the shared progress array


@dataclass
class ClientSpec:
    """What one client process does.

    Attributes:
        endpoint: The node's (or baseline's) control endpoint.
        index: The client's number (part of every payload).
        agents: Agent names, addressed round-robin.
        window: Requests in flight at most.
        duration: Seconds of sending (``0`` = no time bound; ``messages`` must bound it).
        messages: Requests at most (``0`` = no count bound; ``duration`` must bound it).
        timeout: The ``message.send`` timeout the node applies (seconds).
        payload: Payload size in bytes.
        crash_agents: Agents that get crashing content.
        crash_every: Every k-th message to a crash agent carries ``crash`` (1 = every one).
        rate: Target messages/s of this client (``0`` = as fast as the window allows).
        conversation: Send a conversation id per client (pins it during rollouts).
        conversations: Spread requests over this many conversation ids per client
            (request ``seq`` uses ``seq % conversations``; 0 = as ``conversation``).
        max_samples: Latency samples kept for percentiles and plots.
        drain_grace: Seconds beyond ``timeout`` to wait for the last replies.
        hard_cap_s: Absolute bound on the client's life (sending plus drain).
        exact_echo: Replies must equal the content (WASM echo); else contain it (config echo).
        polite: Run the client under ``SCHED_BATCH`` (see :func:`_be_polite`).
    """

    endpoint: str
    index: int
    agents: list[str]
    window: int = 16
    duration: float = 5.0
    messages: int = 0
    timeout: float = 10.0
    payload: int = 32
    crash_agents: list[str] = field(default_factory=list)
    crash_every: int = 1
    rate: float = 0.0
    conversation: bool = False
    conversations: int = 0
    max_samples: int = 200_000
    drain_grace: float = 5.0
    hard_cap_s: float = 3600.0
    exact_echo: bool = True
    polite: bool = True


def _payload(index: int, seq: int, size: int, crash: bool) -> str:
    head = f"{'crash:' if crash else ''}{index}:{seq}:"
    return head + "x" * max(0, size - len(head))


def _be_polite() -> None:
    """Put this client process under Linux's ``SCHED_BATCH`` policy (no privilege needed).

    The clients share the machine with the server they measure (the node or the raw echo
    baseline alike). A normal process woken by a reply preempts whatever runs on its CPU -
    often the server's own thread, in the middle of a request - and the server's receipt-to-
    reply clock then counts time in which it did not run at all. A batch process gets the
    same share of CPU but does not preempt on wake-up. Where the policy does not exist the
    client runs as it is.
    """
    setter = getattr(os, "sched_setscheduler", None)
    policy = getattr(os, "SCHED_BATCH", None)
    if setter is None or policy is None:
        return
    with contextlib.suppress(OSError):
        setter(0, policy, os.sched_param(0))


def _readable(sock: zmq.Socket[bytes], fd: int, timeout_s: float) -> bool:
    """Wait up to ``timeout_s`` (with microsecond resolution) for a reply to read.

    ``zmq_poll`` counts its timeout in whole milliseconds, so a paced client that must send
    again within the millisecond would have to poll with a zero timeout in a loop, burning the
    core the node needs and then catching up in bursts. This waits on the socket's file
    descriptor with ``select`` instead; that descriptor is edge-triggered (it signals that
    ZeroMQ has commands to process, not that a message is queued), so ``EVENTS`` is checked
    before blocking and after waking.
    """
    if cast(int, sock.getsockopt(zmq.EVENTS)) & zmq.POLLIN:
        return True
    if timeout_s <= 0:
        return False
    select.select([fd], [], [], timeout_s)
    return bool(cast(int, sock.getsockopt(zmq.EVENTS)) & zmq.POLLIN)


def run_client(spec: ClientSpec, t0: float, progress: Any = None) -> dict[str, Any]:
    """Drive the endpoint as described by ``spec`` and return the accounting.

    Args:
        spec: What to do.
        t0: ``time.time()`` of the run's start (shared by all clients, for the time series).
        progress: A shared ``multiprocessing.Array('q')`` of ``PROGRESS_FIELDS`` per client.

    Returns:
        A msgpack-friendly map: counts, error codes, per-agent counts, latencies (µs, as
        float32 bytes) and the (time, latency) series.
    """
    if spec.duration <= 0 and spec.messages <= 0:
        raise ValueError("a client needs a duration or a message count")
    if spec.polite:
        _be_polite()
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, 100_000)
    sock.setsockopt(zmq.RCVHWM, 100_000)
    sock.connect(spec.endpoint)
    poller = zmq.Poller()
    poller.register(sock, zmq.POLLIN)
    fd = cast(int, sock.getsockopt(zmq.FD))

    pending: dict[int, tuple[int, str, str]] = {}
    expired: dict[int, tuple[int, str, str]] = {}
    late = 0
    expire_ns = int((spec.timeout + spec.drain_grace) * 1e9)
    answered = bytearray()
    sent = replied = wrong = duplicated = stray = 0
    errors: dict[str, int] = {}
    per_agent: dict[str, list[int]] = {a: [0, 0, 0] for a in spec.agents}
    lat_us = array("f")
    series_t = array("f")
    series_l = array("f")
    sample_every = 1
    wrong_examples: list[str] = []
    crash_set = set(spec.crash_agents)
    crash_count: dict[str, int] = {}
    conv = f"load-{spec.index}-{os.getpid()}" if spec.conversation else None
    conv_base = f"load-{spec.index}-{os.getpid()}"
    base = {"v": 1, "op": "message.send"}
    n_agents = len(spec.agents)

    start = time.monotonic()
    send_until = start + spec.duration if spec.duration > 0 else start + spec.hard_cap_s
    hard_end = start + spec.hard_cap_s
    interval = 1.0 / spec.rate if spec.rate > 0 else 0.0
    next_send = start
    seq = 0
    pidx = spec.index * PROGRESS_FIELDS
    blocked_since: float | None = None
    gave_up = False

    def handle(frame: bytes) -> None:
        nonlocal replied, wrong, duplicated, stray, sample_every, late
        now = time.perf_counter_ns()
        try:
            msg = msgpack.unpackb(frame, raw=False)
            rid = msg["id"]
        except Exception:
            stray += 1
            return
        entry = pending.pop(rid, None) if isinstance(rid, int) else None
        if entry is None and isinstance(rid, int) and rid in expired:
            # answered after the client had given it up: not lost, but late
            entry = expired.pop(rid)
            late += 1
        if entry is None:
            if isinstance(rid, int) and 0 < rid < len(answered) and answered[rid]:
                duplicated += 1
            else:
                stray += 1
            return
        if rid >= len(answered):
            answered.extend(b"\0" * max(4096, rid - len(answered) + 1))
        answered[rid] = 1
        t_send, agent, content = entry
        counts = per_agent[agent]
        if msg.get("ok"):
            result = msg.get("result") or {}
            got = result.get("content") if isinstance(result, dict) else None
            if spec.exact_echo:
                good = got == content
            else:  # a config agent replies with a map whose "reply" holds (or is) the echo
                text = got.get("reply") if isinstance(got, dict) else got
                good = isinstance(text, str) and content in text
            if good:
                replied += 1
                counts[1] += 1
            else:
                wrong += 1
                counts[2] += 1
                if len(wrong_examples) < 5:
                    wrong_examples.append(f"sent {content[:40]!r} got {str(got)[:80]!r}")
        else:
            err = msg.get("error") or {}
            code = str(err.get("code", "?")) if isinstance(err, dict) else "?"
            errors[code] = errors.get(code, 0) + 1
            counts[2] += 1
        lat = (now - t_send) / 1000.0
        if len(lat_us) < spec.max_samples:
            lat_us.append(lat)
        done = replied + wrong + sum(errors.values())
        if done % sample_every == 0:
            if len(series_t) >= spec.max_samples:
                # thin the series to every other point and sample half as often
                series_t[:] = series_t[::2]
                series_l[:] = series_l[::2]
                sample_every *= 2
            series_t.append(time.time() - t0)
            series_l.append(lat)
        if progress is not None:
            progress[pidx + 1] = done
            progress[pidx + 2] = done - replied

    try:
        while True:
            now = time.monotonic()
            sending = not gave_up and now < send_until and (
                spec.messages <= 0 or sent < spec.messages)
            if not sending and not pending:
                break
            if now > hard_end:
                break
            # a request unanswered past its timeout plus the grace is given up (counted lost
            # unless its reply still comes), so a dead node cannot hold the window forever
            if pending:
                oldest = next(iter(pending))
                cutoff = time.perf_counter_ns() - expire_ns
                while pending and pending[oldest][0] < cutoff:
                    expired[oldest] = pending.pop(oldest)
                    if pending:
                        oldest = next(iter(pending))
            if sending:
                while len(pending) < spec.window and (spec.messages <= 0 or sent < spec.messages):
                    if interval:
                        now = time.monotonic()
                        if now < next_send:
                            break
                        next_send = max(next_send + interval, now - 1.0)
                    seq += 1
                    agent = spec.agents[seq % n_agents]
                    crash = False
                    if agent in crash_set:
                        k = crash_count.get(agent, 0) + 1
                        crash_count[agent] = k
                        crash = k % spec.crash_every == 0
                    content = _payload(spec.index, seq, spec.payload, crash)
                    req = dict(base)
                    req["id"] = seq
                    args: dict[str, Any] = {"agent": agent, "content": content,
                                            "timeout": spec.timeout}
                    if spec.conversations > 0:
                        args["conversation_id"] = f"{conv_base}-{seq % spec.conversations}"
                    elif conv is not None:
                        args["conversation_id"] = conv
                    req["args"] = args
                    frame = msgpack.packb(req, use_bin_type=True)
                    pending[seq] = (time.perf_counter_ns(), agent, content)
                    try:
                        sock.send(frame, zmq.NOBLOCK)
                    except zmq.Again:
                        # no peer (node gone) or local queue full: the request was not sent;
                        # forget it, and give up sending once it lasts longer than the timeout
                        del pending[seq]
                        seq -= 1
                        if blocked_since is None:
                            blocked_since = time.monotonic()
                        elif time.monotonic() - blocked_since > spec.timeout:
                            gave_up = True
                        break
                    blocked_since = None
                    sent += 1
                    per_agent[agent][0] += 1
                    if progress is not None:
                        progress[pidx] = sent
                wait_s = 0.1
                if interval and len(pending) < spec.window:
                    wait_s = max(0.0, next_send - time.monotonic())
            else:
                wait_s = 0.1
            if not sending and pending:
                # draining: give up once the last request's timeout plus grace has passed
                newest = max(v[0] for v in pending.values())
                limit = newest / 1e9 + spec.timeout + spec.drain_grace
                if time.perf_counter_ns() / 1e9 > limit:
                    break
            if _readable(sock, fd, wait_s):
                while True:
                    try:
                        frame = sock.recv(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    handle(frame)
        # a last look for duplicates that arrive right after the drain
        end_look = time.monotonic() + 0.2
        while time.monotonic() < end_look:
            if poller.poll(50):
                with contextlib.suppress(zmq.Again):
                    handle(sock.recv(zmq.NOBLOCK))
    finally:
        sock.close(0)
        ctx.term()
    elapsed = time.monotonic() - start
    return {
        "index": spec.index,
        "sent": sent,
        "replied": replied,
        "errors": errors,
        "wrong": wrong,
        "wrong_examples": wrong_examples,
        "duplicated": duplicated,
        "stray": stray,
        "lost": len(pending) + len(expired),
        "late": late,
        "send_gave_up": gave_up,
        "lost_ids": sorted([*pending, *expired])[:20],
        "elapsed_s": elapsed,
        "per_agent": per_agent,
        "lat_us": lat_us.tobytes(),
        "series_t": series_t.tobytes(),
        "series_l": series_l.tobytes(),
    }


def _entry(spec: ClientSpec, t0: float, progress: Any, queue: Any) -> None:
    try:
        queue.put(("ok", spec.index, msgpack.packb(run_client(spec, t0, progress))))
    except BaseException as exc:  # report, never hang the parent
        queue.put(("error", spec.index, repr(exc)))


@dataclass
class Totals:
    """The accounting of every client of one load phase, merged."""

    sent: int = 0
    replied: int = 0
    wrong: int = 0
    duplicated: int = 0
    stray: int = 0
    lost: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    per_agent: dict[str, list[int]] = field(default_factory=dict)
    elapsed_s: float = 0.0
    lat_us: list[float] = field(default_factory=list)
    series: list[tuple[float, float]] = field(default_factory=list)
    wrong_examples: list[str] = field(default_factory=list)
    client_failures: list[str] = field(default_factory=list)
    send_gave_up: int = 0
    late: int = 0

    @property
    def answered(self) -> int:
        """Requests that ended in a reply or a typed error."""
        return self.replied + self.wrong + sum(self.errors.values())

    @property
    def rate(self) -> float:
        """Answered requests per second over the phase."""
        return self.answered / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def percentile(self, q: float) -> float:
        """Latency percentile in µs (``q`` in 0..100)."""
        return percentile(self.lat_us, q)

    def summary(self) -> dict[str, Any]:
        """JSON-ready figures (no raw samples)."""
        return {
            "sent": self.sent, "replied": self.replied, "errors": dict(self.errors),
            "wrong": self.wrong, "duplicated": self.duplicated, "stray": self.stray,
            "lost": self.lost, "elapsed_s": round(self.elapsed_s, 3),
            "rate_per_s": round(self.rate, 1),
            "latency_us": {"p50": round(self.percentile(50), 1),
                           "p90": round(self.percentile(90), 1),
                           "p99": round(self.percentile(99), 1),
                           "max": round(max(self.lat_us), 1) if self.lat_us else 0.0},
            "wrong_examples": self.wrong_examples,
            "client_failures": self.client_failures,
            "clients_that_could_not_send": self.send_gave_up,
            "late": self.late,
        }


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    data = sorted(values)
    k = min(len(data) - 1, max(0, round(q / 100 * (len(data) - 1))))
    return float(data[k])


def run_clients(specs: list[ClientSpec], *, on_progress: Any = None,
                poll_s: float = 0.2) -> Totals:
    """Run one process per spec, wait for all of them, and merge their accounting.

    Args:
        specs: One per client.
        on_progress: Called as ``on_progress(sent, done, errors)`` while they run.
        poll_s: Progress period.

    Returns:
        The merged totals.
    """
    ctx = mp.get_context("spawn")
    progress = ctx.Array("q", PROGRESS_FIELDS * max(1, len(specs)), lock=False)
    queue = ctx.Queue()
    t0 = time.time()
    procs = [ctx.Process(target=_entry, args=(s, t0, progress, queue), daemon=True)
             for s in specs]
    for p in procs:
        p.start()
    results: dict[int, Any] = {}
    hard_end = time.monotonic() + max(s.hard_cap_s for s in specs) + 30
    totals = Totals()
    try:
        while len(results) < len(specs):
            try:
                kind, index, payload = queue.get(timeout=poll_s)
                results[index] = (kind, payload)
            except Exception:
                pass
            if on_progress is not None:
                vals = list(progress)
                on_progress(sum(vals[0::3]), sum(vals[1::3]), sum(vals[2::3]))
            if time.monotonic() > hard_end:
                break
            if all(not p.is_alive() for p in procs) and queue.empty():
                time.sleep(0.2)
                if queue.empty():
                    break
    finally:
        for p in procs:
            p.join(timeout=5)
            if p.is_alive():
                p.kill()
                p.join(timeout=5)
    for spec in specs:
        if spec.index not in results:
            totals.client_failures.append(f"client {spec.index} returned nothing")
            continue
        kind, payload = results[spec.index]
        if kind != "ok":
            totals.client_failures.append(f"client {spec.index}: {payload}")
            continue
        r = msgpack.unpackb(payload, raw=False)
        totals.sent += r["sent"]
        totals.replied += r["replied"]
        totals.wrong += r["wrong"]
        totals.duplicated += r["duplicated"]
        totals.stray += r["stray"]
        totals.lost += r["lost"]
        totals.send_gave_up += int(r.get("send_gave_up", False))
        totals.late += r.get("late", 0)
        totals.wrong_examples += r["wrong_examples"]
        for code, n in r["errors"].items():
            totals.errors[code] = totals.errors.get(code, 0) + n
        for agent, counts in r["per_agent"].items():
            acc = totals.per_agent.setdefault(agent, [0, 0, 0])
            for i in range(3):
                acc[i] += counts[i]
        totals.elapsed_s = max(totals.elapsed_s, r["elapsed_s"])
        totals.lat_us.extend(array("f", r["lat_us"]))
        totals.series.extend(zip(array("f", r["series_t"]), array("f", r["series_l"]),
                                 strict=True))
    totals.series.sort()
    return totals
