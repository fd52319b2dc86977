"""Soak (not in the default suite): steady load for ``CAXTON_SOAK_S`` seconds (default 600)
in 30 s rounds; the node's RSS and open file descriptors must stay flat.

Run with ``python3 -m pytest tests/reliability -m soak``. "Flat": after a warm-up of two rounds,
RSS grows by less than 10 % from the first measured round to the last (and less than 64 MiB),
and the open-FD count varies by at most 8.
"""

from __future__ import annotations

import os
import time

import pytest

from benchmarks.load.clients import ClientSpec, run_clients
from benchmarks.load.node import NodeProcess, node_rss_fds
from benchmarks.load.scenarios import agent_kind, windowed_calls

SOAK_S = float(os.environ.get("CAXTON_SOAK_S", "600"))
ROUND_S = 30.0


@pytest.mark.soak
@pytest.mark.timeout(SOAK_S + 300)  # the suite's 180 s per-test limit would cut any real soak
def test_soak_rss_and_fds_flat(request: pytest.FixtureRequest) -> None:
    if "soak" not in (request.config.getoption("-m") or ""):
        pytest.skip("soak run: select it with -m soak")
    node: NodeProcess = request.getfixturevalue("node")
    names = [f"soak-{i}" for i in range(10)]
    echo = agent_kind("wasm-echo")
    cfg_md = agent_kind("config-echo")
    reqs = [("agents.deploy", echo.deploy_args(n)) for n in names[:8]]
    reqs += [("agents.deploy", cfg_md.deploy_args(n)) for n in names[8:]]
    assert windowed_calls(node.control, reqs, 8)["ok"] == len(reqs)
    assert node.pid is not None
    samples: list[tuple[float, int, int]] = []
    end = time.monotonic() + SOAK_S
    rounds = 0
    while time.monotonic() < end and rounds < 10_000:
        rounds += 1
        specs = [ClientSpec(endpoint=node.control, index=i, agents=names[:8], window=8,
                            duration=min(ROUND_S, max(1.0, end - time.monotonic())),
                            timeout=10.0, hard_cap_s=ROUND_S + 60) for i in range(2)]
        totals = run_clients(specs)
        assert totals.lost == 0 and totals.wrong == 0 and totals.duplicated == 0
        assert not totals.errors, totals.errors
        # a few config-agent conversations each round too
        windowed_calls(node.control, [("message.send", {"agent": n, "content": f"r{rounds}"})
                                      for n in names[8:] for _ in range(20)], 4)
        rss, fds = node_rss_fds(node.pid)
        samples.append((time.monotonic(), rss, fds))
    assert len(samples) >= 4, "the soak needs at least 4 rounds (CAXTON_SOAK_S >= 120)"
    measured = samples[2:]
    rss_first, rss_last = measured[0][1], measured[-1][1]
    fds = [s[2] for s in measured]
    growth = (rss_last - rss_first) / rss_first
    assert growth < 0.10 and rss_last - rss_first < 64 * 2**20, [s[1] for s in samples]
    assert max(fds) - min(fds) <= 8, fds
