"""The event stream over real PUB/SUB sockets on loopback."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from caxton.control.events import EventPublisher, EventSubscriber, agent_topic
from caxton.control.keys import InsecureBind
from caxton.control.protocol import Event

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def publisher() -> Iterator[EventPublisher]:
    pub = EventPublisher("tcp://127.0.0.1:0")
    yield pub
    pub.close()


def _joined(pub: EventPublisher, sub: EventSubscriber, agent: str) -> None:
    """Publish a probe until the subscriber sees it (PUB/SUB slow-joiner handshake)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        pub.publish_agent(agent, "probe")
        event = sub.recv(0.05)
        if event is not None and event.event == "probe":
            while sub.recv(0.05) is not None:  # drain extra probes
                pass
            return
    raise AssertionError("subscriber never joined")


def test_events_are_filtered_by_agent_topic(publisher: EventPublisher) -> None:
    with EventSubscriber(publisher.endpoint, ["agent.echo."]) as sub:
        _joined(publisher, sub, "echo")
        publisher.publish_agent("echoes", "log", level="info", event="not for echo")
        publisher.publish_node("stopping")
        publisher.publish_agent("echo", "lifecycle", state="running", version="1.0.0")
        event = sub.recv(5)
        assert isinstance(event, Event)
        assert event.topic == agent_topic("echo", "lifecycle") == "agent.echo.lifecycle"
        assert event.agent == "echo" and event.data == {"state": "running", "version": "1.0.0"}
        assert sub.recv(0.2) is None


def test_node_events_and_publish_from_many_threads(publisher: EventPublisher) -> None:
    with EventSubscriber(publisher.endpoint) as sub:
        _joined(publisher, sub, "x")

        def spam(n: int) -> None:
            for i in range(200):
                publisher.publish_agent(f"a{n}", "rollout", step=i)

        threads = [threading.Thread(target=spam, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        publisher.publish_node("started", pid=1)
        seen: dict[str, list[int]] = {}
        node_events = []
        while True:
            event = sub.recv(2)
            if event is None:
                break
            if event.topic.startswith("node."):
                node_events.append(event)
                break
            seen.setdefault(event.agent or "", []).append(event.data["step"])
        assert {k: v for k, v in seen.items()} == {f"a{n}": list(range(200)) for n in range(4)}
        assert node_events[0].topic == "node.started"


def test_publisher_refuses_public_bind_without_curve() -> None:
    with pytest.raises(InsecureBind):
        EventPublisher("tcp://0.0.0.0:0")
