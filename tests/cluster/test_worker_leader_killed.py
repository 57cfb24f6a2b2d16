"""Three NATS servers; the one leading ``$MQTT_msgs`` is killed (SIGKILL) while a hub publishes at QoS 1 through
another: every message the hub was PUBACKed is stored by the worker, once. This is what the readings stream of the
workers' own could not do (tests/cluster/test_durability.py): a PUBACK waits for ``$MQTT_msgs`` only."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bench.nats_cluster import NatsCluster, NatsServer
from gateway.cluster.stream import MQTT_STREAM
from tests.cluster.helpers import Hub, connect_hub, stream_leader
from tests.cluster.leasing import ON_POSTGRESQL
from tests.cluster.workers import Cluster, temperatures, wait_for

MESSAGES = 120
KILL_AT = 20


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[NatsCluster]:
    with NatsCluster(tmp_path / "nats", partitions=4) as running:
        yield running


def _publish_through_the_kill(publisher: NatsServer, victim: NatsServer) -> tuple[list[float], float]:
    """The hub's messages, each sent again after a reconnection until PUBACKed (as a hub with a persistent
    session does); returns the temperatures the hub was PUBACKed, in order, and the longest wait for a PUBACK."""
    acknowledged: list[float] = []
    longest = 0.0
    hub: Hub | None = connect_hub(publisher.mqtt_port)
    for number, (topic, payload) in enumerate(temperatures("h1", MESSAGES)):
        if number == KILL_AT:
            victim.kill()
        sent_at = time.monotonic()
        deadline = sent_at + 60
        while True:
            assert time.monotonic() < deadline, f"message {number} never PUBACKed"
            if hub is None:
                hub = connect_hub(publisher.mqtt_port, timeout=30.0)
            if hub.publish(topic, payload, timeout=6.0):
                acknowledged.append(15 + number / 100)
                longest = max(longest, time.monotonic() - sent_at)
                break
            hub.close()  # no PUBACK: the server closed the connection (JetStream's 4 s timeout)
            hub = None
        time.sleep(0.03)
    assert hub is not None
    hub.close()
    return acknowledged, longest


@pytest.mark.slow
@ON_POSTGRESQL
def test_killing_the_mqtt_msgs_leader_loses_no_pubacked_message(servers: NatsCluster, tmp_path: Path,
                                                                 db_url: str) -> None:
    cluster = Cluster(tmp_path, servers.servers[0], db_url)
    cluster.settings = cluster.settings.model_copy(update={"nats_url": servers.url})
    try:
        worker = cluster.build("w1")
        cluster.start(worker)  # makes $MQTT_msgs (three replicas) and every partition's consumer
        wait_for(lambda: len(worker.owned) == 4, 20, "the partitions acquired")
        leader = wait_for_value(lambda: stream_leader(servers.urls, MQTT_STREAM), "a $MQTT_msgs leader")
        victim = next(s for s in servers.servers if s.server_name == leader)
        publisher = next(s for s in servers.servers if s is not victim)
        cluster.server = publisher  # where the test counts what is left in the stream
        acknowledged, longest_wait_s = _publish_through_the_kill(publisher, victim)
        assert len(acknowledged) == MESSAGES
        assert longest_wait_s > 2, "the hub published through the election: some PUBACK waited for it"
        wait_for(lambda: len(cluster.points("h1")) >= MESSAGES, 90, "every PUBACKed reading stored")
        assert cluster.points("h1") == acknowledged, "each PUBACKed reading stored, once, in order"
        wait_for(lambda: cluster.stream_messages() == 0, 30, "every message acknowledged")
        assert stream_leader([publisher.url], MQTT_STREAM) != leader, "the killed server led $MQTT_msgs"
    finally:
        cluster.halt()


def wait_for_value(value: Callable[[], str], what: str, timeout_s: float = 15.0) -> str:
    """``value()`` once it is not empty."""
    deadline = time.monotonic() + timeout_s
    while not (found := value()):
        assert time.monotonic() < deadline, f"{what}: none within {timeout_s:.0f} s"
        time.sleep(0.1)
    return found
