"""Reloads reuse the agent's LLM provider instead of leaking one (and its HTTP client) each."""

from __future__ import annotations

from caxton import AgentLifecycleManager

AGENT = """---
name: prov
version: "{v}"
capabilities: [echo]
tools: []
llm: {{provider: echo{extra}}}
---
"""


def test_reloads_share_one_provider_per_llm_section() -> None:
    with AgentLifecycleManager() as m:
        m.deploy_config_agent(AGENT.format(v="1.0.0", extra=""))
        for i in range(1, 4):
            m.reload("prov", AGENT.format(v=f"1.0.{i}", extra=""), wait=True)
        assert len(m._agents["prov"].providers) == 1
        m.reload("prov", AGENT.format(v="2.0.0", extra=", temperature: 0.5"), wait=True)
        assert len(m._agents["prov"].providers) == 2
        assert m.send("prov", "hi").content["reply"] == "hi"
