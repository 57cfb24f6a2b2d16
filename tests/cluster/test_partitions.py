"""Hub messages published over MQTT to any server of a three-server cluster land, through the partition
mapping, in a replicated stream on the partition subject of their home; the same home always on the same
partition, homes spread over all of them. What nats-server 2.9 does to MQTT topics on the way."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from nats.js import JetStreamContext
from nats.js.api import StreamInfo

from bench.nats_cluster import NatsCluster, NatsServer, partition_of
from tests.cluster.helpers import (
    Hub,
    create_stream,
    delete_stream,
    jetstream,
    stream_messages,
    wait_for_messages,
)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsCluster]:
    with NatsCluster(tmp_path_factory.mktemp("nats")) as running:
        yield running


@pytest.fixture
def stream(cluster: NatsCluster) -> Iterator[None]:
    create_stream(cluster.urls)
    yield
    delete_stream(cluster.urls)


def test_partition_of_matches_the_mapping_checked_by_hand() -> None:
    # Issue 15: paho's telecare/h1/motion became telecare-part.2.telecare.h1.motion on nats-server 2.9.10.
    assert partition_of("h1") == 2
    assert {partition_of(f"home-{i}") for i in range(200)} == set(range(16))
    assert all(0 <= partition_of(f"home-{i}", 4) < 4 for i in range(50))


def test_a_hub_message_to_any_server_lands_in_the_r3_stream_on_its_partition(cluster: NatsCluster,
                                                                             stream: None) -> None:
    for server in cluster.servers:
        hub = Hub(server.mqtt_port)
        try:
            assert hub.publish("telecare/h1/motion", server.server_name.encode())
        finally:
            hub.close()
    messages = wait_for_messages(cluster.urls, 3)
    assert messages == [("telecare-part.2.telecare.h1.motion", s.server_name.encode()) for s in cluster.servers]

    async def replicas(js: JetStreamContext) -> StreamInfo:
        return await js.stream_info("READINGS")

    info = jetstream(cluster.urls, replicas)
    assert info.config.num_replicas == 3
    assert info.cluster is not None and len(info.cluster.replicas or []) == 2


def test_each_home_stays_on_one_partition_and_homes_spread_over_all(cluster: NatsCluster, stream: None) -> None:
    homes = [f"home-{i}" for i in range(64)]
    hubs = [Hub(server.mqtt_port) for server in cluster.servers]
    try:
        for round_number in range(2):
            for i, home in enumerate(homes):
                # Each round a home speaks through another server: the partition is the server's mapping, not
                # the connection's.
                hub = hubs[(i + round_number) % len(hubs)]
                assert hub.publish(f"telecare/{home}/pir_{round_number}", b"{}")
    finally:
        for hub in hubs:
            hub.close()
    messages = wait_for_messages(cluster.urls, 2 * len(homes))
    partitions: dict[str, set[str]] = {}
    for subject, _payload in messages:
        prefix, partition, namespace, home, _device = subject.split(".")
        assert (prefix, namespace) == ("telecare-part", "telecare")
        partitions.setdefault(home, set()).add(partition)
    assert partitions == {home: {str(partition_of(home))} for home in homes}
    assert len({p for ps in partitions.values() for p in ps}) >= 12  # 64 homes over 16 partitions


def test_a_qos_0_message_lands_in_the_stream_too(cluster: NatsCluster, stream: None) -> None:
    # zigbee2mqtt publishes device state at QoS 0 unless told otherwise: the stream captures the subject
    # whatever the MQTT QoS (the stream, not the MQTT session, stores it).
    hub = Hub(cluster.servers[1].mqtt_port)
    try:
        assert hub.publish("telecare/h1/kettle_plug", b'{"power":3}', qos=0)
    finally:
        hub.close()
    assert wait_for_messages(cluster.urls, 1) == [
        ("telecare-part.2.telecare.h1.kettle_plug", b'{"power":3}')
    ]


@pytest.mark.parametrize("topic", ["telecare/h1/living room", "telecare/h1/sensor.1"])
def test_a_topic_with_a_dot_or_a_space_closes_the_hubs_connection(cluster: NatsCluster, stream: None,
                                                                   topic: str) -> None:
    # nats-server 2.9 cannot turn '.' or ' ' into a subject (server/mqtt.go, mqttToNATSSubjectConversion): the
    # PUBLISH is a protocol error, no PUBACK, the connection is closed, and nothing is stored. A zigbee2mqtt
    # friendly_name must not contain either.
    hub = Hub(cluster.servers[0].mqtt_port)
    try:
        assert not hub.publish(topic, b"{}", timeout=2.0)
        assert hub.disconnected.wait(2.0)
    finally:
        hub.close()
    assert stream_messages(cluster.urls) == []


def test_topic_levels_map_to_subject_tokens(cluster: NatsCluster, stream: None) -> None:
    # '/' becomes '.'; an empty level (a//b, a trailing /) keeps a '/' inside the token; other characters pass.
    hub = Hub(cluster.servers[2].mqtt_port)
    try:
        for topic in ["telecare/h1/bridge/state", "telecare/h1/a//b", "telecare/h1/x/", "telecare/h1/é-$_:"]:
            assert hub.publish(topic, b"{}")
    finally:
        hub.close()
    subjects = [subject for subject, _ in wait_for_messages(cluster.urls, 4)]
    assert subjects == [
        "telecare-part.2.telecare.h1.bridge.state",
        "telecare-part.2.telecare.h1.a./.b",
        "telecare-part.2.telecare.h1.x./",
        "telecare-part.2.telecare.h1.é-$_:",
    ]


def test_the_partition_count_is_the_mappings(tmp_path: Path) -> None:
    with NatsServer(tmp_path / "nats", partitions=4) as server:
        create_stream([server.url], num_replicas=1)
        hub = Hub(server.mqtt_port)
        try:
            for home in ("h1", "home-a", "care-home-17"):
                assert hub.publish(f"telecare/{home}/pendant", b"{}")
        finally:
            hub.close()
        subjects = [subject for subject, _ in wait_for_messages([server.url], 3)]
    assert subjects == [f"telecare-part.{partition_of(home, 4)}.telecare.{home}.pendant"
                        for home in ("h1", "home-a", "care-home-17")]


def test_a_hubs_last_will_lands_on_its_partition(cluster: NatsCluster, stream: None) -> None:
    # The server publishes zigbee2mqtt's will (bridge/state "offline", QoS 1, retained) when the connection
    # dies without a DISCONNECT. nats-server 2.9 maps the will's topic when it reads the CONNECT, with the
    # mappings of the global account: the mapping must be a top-level one (docs/nats/README.md).
    hub = Hub(cluster.servers[0].mqtt_port, will_topic="telecare/h1/bridge/state")
    hub.drop()
    assert wait_for_messages(cluster.urls, 1) == [("telecare-part.2.telecare.h1.bridge.state", b"offline")]
