"""What a three-server cluster does when servers die, and what a hub's PUBACK is worth.

The PUBACK (nats-server 2.9, server/mqtt.go, mqttParse and mqttProcessPub): on a QoS 1 PUBLISH the server
first hands the message to the subscribers of its (mapped) subject, the readings stream included, without
waiting for the stream to store it; then it stores a copy in its own $MQTT_msgs stream and waits for that
(4 s at most). Only then does it send the PUBACK. So a PUBACK means "JetStream was up", not "the readings
stream has it": a readings stream that refuses the message does not stop the PUBACK.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DiscardPolicy

from bench.nats_cluster import NatsCluster, NatsServer
from tests.cluster.helpers import (
    Hub,
    connect_hub,
    create_stream,
    jetstream,
    stream_leader,
    stream_messages,
    wait_for,
    wait_for_messages,
)

STREAM = "READINGS"
# nats-server's own stream of MQTT QoS 1 messages (server/mqtt.go, mqttStreamName), subjects $MQTT.msgs.>.
MQTT_MESSAGES = "$MQTT_msgs"


@pytest.fixture
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsCluster]:
    with NatsCluster(tmp_path_factory.mktemp("nats")) as running:
        yield running


def local_replica_messages(server: NatsServer) -> int:
    """How many messages this server's own replica of the stream holds (monitoring /jsz, no quorum needed)."""
    details = server._monitor("/jsz?accounts=true&streams=true") or {}
    for account in details.get("account_details") or []:
        for stream in account.get("stream_detail") or []:
            if stream["name"] == STREAM:
                return int(stream["state"]["messages"])
    return -1


def publish_all(server: NatsServer, first: int, count: int) -> None:
    hub = connect_hub(server.mqtt_port)
    try:
        for number in range(first, first + count):
            assert hub.publish(f"telecare/home-{number}/pendant", str(number).encode(), timeout=10.0)
    finally:
        hub.close()


@pytest.mark.slow
def test_with_one_server_killed_the_stream_accepts_and_serves_and_the_server_catches_up(
    cluster: NatsCluster,
) -> None:
    create_stream(cluster.urls)
    publish_all(cluster.servers[0], 0, 10)
    wait_for_messages(cluster.urls, 10)
    # Kill the stream's leader: the harder case, the two others must elect a new one.
    leader = next(s for s in cluster.servers if s.server_name == stream_leader(cluster.urls))
    survivors = [s for s in cluster.servers if s is not leader]
    leader.kill()
    survivor_urls = [s.url for s in survivors]
    wait_for(lambda: stream_leader(survivor_urls) in {s.server_name for s in survivors}, timeout=15.0,
             what="a new stream leader among the survivors")
    for server in survivors:
        server.wait_healthy()  # the MQTT streams have leaders again too: hubs can connect
    for number, server in enumerate(survivors):
        publish_all(server, 10 + 5 * number, 5)
    messages = wait_for_messages(survivor_urls, 20)
    assert sorted(int(payload) for _, payload in messages) == list(range(20))

    leader.start()
    # Its own replica, not /healthz: a restarted server's /healthz can wait minutes on one of its MQTT consumers
    # after the streams are current (docs/nats/README.md, "Failover facts").
    wait_for(lambda: local_replica_messages(leader) == 20, timeout=60.0,
             what="the restarted server's replica holds all 20")
    assert wait_for_messages(cluster.urls, 20) == messages


def test_a_hub_gets_its_puback_although_the_stream_refused_the_message(cluster: NatsCluster) -> None:
    # A full stream with discard-new refuses; so would a stream over its max_bytes or max_msg_size.
    create_stream(cluster.urls, max_msgs=1, discard=DiscardPolicy.NEW)
    hub = Hub(cluster.servers[1].mqtt_port)
    try:
        assert hub.publish("telecare/h1/pendant", b"stored")
        wait_for_messages(cluster.urls, 1)
        assert hub.publish("telecare/h1/pendant", b"refused")  # PUBACKed all the same
        assert not hub.disconnected.is_set()
    finally:
        hub.close()
    time.sleep(0.5)
    assert stream_messages(cluster.urls) == [("telecare-part.2.telecare.h1.pendant", b"stored")]


@pytest.mark.slow
def test_without_a_quorum_there_is_no_puback_and_the_hub_is_disconnected(cluster: NatsCluster) -> None:
    create_stream(cluster.urls)
    survivor = cluster.servers[2]
    hub = Hub(survivor.mqtt_port)
    try:
        assert hub.publish("telecare/h1/pendant", b"before")
        for server in cluster.servers[:2]:
            server.kill()
        # The server cannot store its $MQTT_msgs copy: after its 4 s JetStream timeout it closes the
        # connection instead of acknowledging. The hub keeps the message and sends it again on reconnect.
        assert not hub.publish("telecare/h1/pendant", b"during", timeout=8.0)
        assert hub.disconnected.wait(2.0)
    finally:
        hub.close()


def _step_down(urls: list[str], stream: str) -> None:
    async def work(js: JetStreamContext) -> None:
        await js._nc.request(f"$JS.API.STREAM.LEADER.STEPDOWN.{stream}", b"", timeout=5.0)

    jetstream(urls, work)


def _drain(urls: list[str], durable: str) -> set[int]:
    async def work(js: JetStreamContext) -> set[int]:
        subscription = await js.pull_subscribe_bind(durable, MQTT_MESSAGES)
        numbers: set[int] = set()
        while True:
            try:
                batch = await subscription.fetch(500, timeout=2.0)
            except TimeoutError:  # nats-py raises nats.errors.TimeoutError or asyncio's, both this one
                return numbers
            for message in batch:
                numbers.add(int(message.data))
                await message.ack()

    return jetstream(urls, work)



@pytest.mark.slow
def test_a_stream_leader_election_loses_pubacked_messages_that_mqtt_msgs_keeps(cluster: NatsCluster) -> None:
    # The readings stream's leader dies while a hub publishes through another server: for the election's
    # 4-9 s (raft election timeout) the readings stream has no leader and drops what the hub sends, while the
    # server's own $MQTT_msgs stream (another raft group, its leader elsewhere) stores each message and the hub
    # gets its PUBACK. A durable consumer on $MQTT_msgs, created before, holds every PUBACKed message.
    create_stream(cluster.urls)
    warm_up = connect_hub(cluster.servers[0].mqtt_port)  # the first MQTT client creates the $MQTT_ streams
    warm_up.close()

    async def consumer(js: JetStreamContext) -> None:
        await js.add_consumer(MQTT_MESSAGES, ConsumerConfig(
            durable_name="telecare-all", filter_subject="$MQTT.msgs.telecare-part.>",
            ack_policy=AckPolicy.EXPLICIT, num_replicas=3))

    jetstream(cluster.urls, consumer)
    while stream_leader(cluster.urls, STREAM) == stream_leader(cluster.urls, MQTT_MESSAGES):
        _step_down(cluster.urls, STREAM)
        wait_for(lambda: stream_leader(cluster.urls, STREAM), timeout=15.0, what="a readings stream leader")
    victim = next(s for s in cluster.servers if s.server_name == stream_leader(cluster.urls, STREAM))
    publisher = next(s for s in cluster.servers if s is not victim)
    hub = connect_hub(publisher.mqtt_port)
    acknowledged: list[int] = []
    try:
        for number in range(160):  # about 8 s
            if number == 10:
                victim.kill()
            if hub.publish("telecare/h1/pendant", str(number).encode(), timeout=6.0):
                acknowledged.append(number)
            time.sleep(0.05)
    finally:
        hub.close()
    survivors = [s.url for s in cluster.servers if s is not victim]
    wait_for(lambda: stream_leader(survivors, STREAM), timeout=15.0, what="a new readings stream leader")
    in_readings = {int(payload) for _, payload in stream_messages(survivors)}
    lost = [number for number in acknowledged if number not in in_readings]
    assert lost, "every PUBACKed message reached the readings stream: nats-server changed, update docs/nats"
    assert len(acknowledged) == 160
    assert _drain(survivors, "telecare-all") >= set(acknowledged)
