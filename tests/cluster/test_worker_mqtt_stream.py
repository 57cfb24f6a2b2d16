"""The workers' hand-off is nats-server 2.9.10's own ``$MQTT_msgs`` stream: the facts about it the workers rest on
(server/mqtt.go), and what the workers do with it (placeholders, consumers of older owners, another home's
partition)."""

from __future__ import annotations

from nats.js import JetStreamContext
from nats.js.api import RetentionPolicy, StorageType
from nats.js.errors import NotFoundError
from sqlalchemy import select

from bench.nats_cluster import NatsServer
from gateway.cluster.stream import MQTT_STREAM, JetStreamLink, StreamOptions, consumer_name, partition_filter
from gateway.db.models import DeadLetter
from tests.cluster.helpers import Hub, jetstream, stream_messages
from tests.cluster.leasing import ON_POSTGRESQL
from tests.cluster.workers import PARTITIONS, Cluster, cluster, nats_server, temperatures, wait_for

__all__ = ["cluster", "nats_server"]  # the fixtures, used by name

H1_PARTITION = 2  # partition_of("h1", 4)


def _stream_names(urls: list[str]) -> list[str]:
    async def names(js: JetStreamContext) -> list[str]:
        return [info.config.name or "" for info in await js.streams_info()]

    return jetstream(urls, names)


def _consumers(urls: list[str]) -> list[str]:
    async def names(js: JetStreamContext) -> list[str]:
        return sorted(info.name for info in await js.consumers_info(MQTT_STREAM))

    return jetstream(urls, names)


def test_the_server_makes_mqtt_msgs_at_the_first_hub_connection_as_a_worker_makes_it(nats_server: NatsServer
                                                                                       ) -> None:
    urls = [nats_server.url]
    assert MQTT_STREAM not in _stream_names(urls), "no MQTT client yet: no $MQTT_msgs"
    Hub(nats_server.mqtt_port).close()

    async def config(js: JetStreamContext) -> tuple[object, ...]:
        c = (await js.stream_info(MQTT_STREAM)).config
        return c.retention, c.subjects, c.storage, c.num_replicas

    made_by_server = jetstream(urls, config)
    assert made_by_server == (RetentionPolicy.INTEREST, ["$MQTT.msgs.>"], StorageType.FILE, 1)
    mine = JetStreamLink(urls).stream_config()
    assert (mine.retention, mine.subjects, mine.storage, mine.num_replicas) == made_by_server


def test_qos1_messages_wills_and_retained_ones_are_in_mqtt_msgs_and_qos0_ones_are_not(nats_server: NatsServer
                                                                                       ) -> None:
    urls = [nats_server.url]
    link = JetStreamLink(urls, StreamOptions(partitions=PARTITIONS))
    link.start()  # the stream and a placeholder consumer for each partition
    link.close()
    assert _consumers(urls) == [consumer_name(p, 0) for p in range(PARTITIONS)]
    hub = Hub(nats_server.mqtt_port, will_topic="telecare/h1/bridge/state")
    assert hub.publish("telecare/h1/thermo", b"qos1")
    assert hub.publish("telecare/h1/bridge/state", b"online", qos=0)
    info = hub.client.publish("telecare/h1/bridge/devices", b"retained", qos=1, retain=True)
    info.wait_for_publish(5)
    hub.drop()  # no DISCONNECT: the server publishes the will (QoS 1, retained, as zigbee2mqtt's)
    wait_for(lambda: len(stream_messages(urls, MQTT_STREAM)) == 3, what="three messages in $MQTT_msgs")
    assert stream_messages(urls, MQTT_STREAM) == [
        ("$MQTT.msgs.telecare-part.2.telecare.h1.thermo", b"qos1"),
        ("$MQTT.msgs.telecare-part.2.telecare.h1.bridge.devices", b"retained"),
        ("$MQTT.msgs.telecare-part.2.telecare.h1.bridge.state", b"offline"),
    ]


def test_without_a_consumer_a_pubacked_message_is_not_kept(nats_server: NatsServer) -> None:
    # Interest retention: why every partition has a consumer (a placeholder until it is owned) at all times.
    urls = [nats_server.url]
    hub = Hub(nats_server.mqtt_port)
    try:
        assert hub.publish("telecare/h1/thermo", b"nobody wants it")
    finally:
        hub.close()
    assert stream_messages(urls, MQTT_STREAM) == []


@ON_POSTGRESQL
def test_a_message_on_another_homes_partition_is_a_dead_letter(cluster: Cluster) -> None:
    cluster.start(cluster.build("w1"))
    # The hub bypasses the mapping: h1's reading on partition 0, not its own (2).
    cluster.publish([("telecare-part/0/telecare/h1/thermo", b'{"temperature": 20}'), *temperatures("h1", 1)])
    wait_for(lambda: cluster.stream_messages() == 0 and len(cluster.points("h1")) == 1, what="both handled")
    with cluster.sessions() as session:
        letters = [(d.reason, d.topic) for d in session.scalars(select(DeadLetter))]
    assert letters == [("bad_topic", "telecare-part/0/telecare/h1/thermo")]
    assert cluster.points("h1") == [15.0]  # only the reading on its own partition


@ON_POSTGRESQL
def test_the_owner_deletes_a_placeholder_made_after_it_took_the_partition(cluster: Cluster) -> None:
    # A worker starting during a takeover can make a placeholder the new owner no longer sees at its opening:
    # nothing would acknowledge its messages, and $MQTT_msgs would keep them for ever.
    worker = cluster.build("w1")
    cluster.start(worker)
    wait_for(lambda: set(worker.owned) == set(range(PARTITIONS)), what="the partitions acquired")
    stale = consumer_name(H1_PARTITION, 0)
    wait_for(lambda: stale not in _consumers([cluster.server.url]), what="the placeholders replaced")

    async def placeholder(js: JetStreamContext) -> None:
        await js.add_consumer(MQTT_STREAM, durable_name=stale, filter_subject=partition_filter(H1_PARTITION),
                              ack_policy="explicit")

    jetstream([cluster.server.url], placeholder)
    cluster.publish(temperatures("h1", 3))
    wait_for(lambda: stale not in _consumers([cluster.server.url]), what="the placeholder deleted")
    wait_for(lambda: cluster.stream_messages() == 0, what="every message acknowledged by every consumer")
    assert cluster.points("h1") == [15.0, 15.01, 15.02]

    async def gone(js: JetStreamContext) -> bool:
        try:
            await js.consumer_info(MQTT_STREAM, stale)
        except NotFoundError:
            return True
        return False

    assert jetstream([cluster.server.url], gone)


def test_an_older_consumer_is_deleted_only_once_the_owners_own_exists(nats_server: NatsServer) -> None:
    # The worker tidies while its partitions' loops are still opening: deleting the placeholder first would drop
    # the messages it held (interest retention).
    urls = [nats_server.url]
    link = JetStreamLink(urls, StreamOptions(partitions=PARTITIONS))
    link.start()
    try:
        hub = Hub(nats_server.mqtt_port)
        assert hub.publish("telecare/h1/thermo", b"kept by the placeholder")
        hub.close()
        assert link.tidy({H1_PARTITION: 5}) == []
        assert consumer_name(H1_PARTITION, 0) in _consumers(urls)
        feed = link.open_partition(H1_PARTITION, 5)
        assert link.tidy({H1_PARTITION: 5}) == []  # opening deleted it already
        assert [d.payload for d in link.fetch(feed, 10, 1.0)] == [b"kept by the placeholder"]
        jetstream(urls, _add_placeholder)
        assert link.tidy({H1_PARTITION: 5}) == [consumer_name(H1_PARTITION, 0)]
    finally:
        link.close()


async def _add_placeholder(js: JetStreamContext) -> None:
    name = consumer_name(H1_PARTITION, 0)
    await js.add_consumer(MQTT_STREAM, durable_name=name, filter_subject=partition_filter(H1_PARTITION),
                          ack_policy="explicit")
