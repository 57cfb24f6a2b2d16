"""A worker whose lease was taken over cannot commit its partition's work and acknowledges none of it; whoever owns
the partition next handles the messages, once. Also: subjects back to topics, and cluster mode's start-up refusals."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from typer.testing import CliRunner

from bench.nats_cluster import NatsServer
from gateway.cluster import ClusterConfigError, LeaseKeeper
from gateway.cluster.stream import (
    READINGS_STREAM,
    JetStreamLink,
    consumer_name,
    home_of,
    hub_topic,
    partition_filter,
    subject_partition,
    topic_of,
)
from gateway.db.cluster import ClusterDeviceState
from telecare.cli import app
from tests.cluster.helpers import create_stream
from tests.cluster.leasing import ON_POSTGRESQL
from tests.cluster.workers import PARTITIONS, Cluster, cluster, nats_server, press, temperatures, wait_for

__all__ = ["cluster", "nats_server"]  # the fixtures, used by name

H1_PARTITION = 2  # partition_of("h1", 4)


@ON_POSTGRESQL
def test_a_worker_taken_over_cannot_commit_and_acknowledges_nothing(cluster: Cluster) -> None:
    worker = cluster.build("w1")
    # Ticks far apart: the worker goes on consuming the partition after the takeover, as one paused past its
    # lease does, and its commit must be what stops it.
    worker.keeper = LeaseKeeper(cluster.sessions, worker_id="w1", partitions=PARTITIONS, ttl=9.0, tick_interval=8.0)
    cluster.start(worker)
    wait_for(lambda: set(worker.owned) == set(range(PARTITIONS)), what="the partitions acquired")
    with cluster.sessions.begin() as session:
        session.execute(text("INSERT INTO cluster_workers VALUES ('intruder', :n, now(), now() + interval '1 minute')"),
                        {"n": PARTITIONS})  # alive for a minute: its lease stands
        session.execute(text("UPDATE partition_leases SET owner = 'intruder', epoch = epoch + 1 WHERE partition = :p"),
                        {"p": H1_PARTITION})
    cluster.publish([*temperatures("h1", 3), press("h1")])
    wait_for(lambda: worker.loops[H1_PARTITION].lease_lost is not None, what="the fencing check failing")
    assert cluster.pendant_raises("h1") == 0
    assert cluster.stream_messages() == 4, "nothing acknowledged"
    with cluster.sessions() as session:
        assert session.scalar(select(func.count()).select_from(ClusterDeviceState)
                              .where(ClusterDeviceState.home_id == "h1")) == 0
    # The intruder gives the partition up and leaves: the worker takes it again, under a new epoch, and handles it
    # all once.
    with cluster.sessions.begin() as session:
        session.execute(text("UPDATE partition_leases SET owner = NULL WHERE partition = :p"),
                        {"p": H1_PARTITION})
        session.execute(text("DELETE FROM cluster_workers WHERE worker_id = 'intruder'"))
    wait_for(lambda: cluster.pendant_raises("h1") == 1, 15, "the press handled by the partition's next owner")
    wait_for(lambda: cluster.stream_messages() == 0, what="every message acknowledged")
    assert worker.owned[H1_PARTITION] == 3
    assert cluster.points("h1") == [15.0, 15.01, 15.02]


def test_a_subject_gives_back_the_hubs_topic() -> None:
    # nats-server turns '/' into '.', and an empty topic level into a '/' token (tests/cluster/test_partitions.py).
    assert topic_of("telecare-part.2.telecare.h1.motion") == "telecare/h1/motion"
    assert topic_of("telecare-part.2.telecare.h1.bridge.state") == "telecare/h1/bridge/state"
    assert topic_of("telecare-part.2.telecare.h1.a./.b") == "telecare/h1/a//b"
    assert topic_of("telecare-part.2.telecare.h1.x./") == "telecare/h1/x/"
    assert topic_of("elsewhere.h1") is None
    # As $MQTT_msgs stores them: the mapped subject after its prefix.
    assert topic_of("$MQTT.msgs.telecare-part.2.telecare.h1.motion") == "telecare/h1/motion"
    assert home_of("$MQTT.msgs.telecare-part.2.telecare.h1.motion") == "h1"
    assert subject_partition("$MQTT.msgs.telecare-part.12.telecare.h1.motion") == 12
    assert subject_partition("$MQTT.msgs.elsewhere.2") is None
    assert hub_topic("$MQTT.msgs.telecare-part.2.telecare.h1.motion") == "telecare-part/2/telecare/h1/motion"


def test_consumer_names_carry_the_partition_the_epoch_and_the_attempt() -> None:
    assert consumer_name(3, 7) == "part-3-e7"
    assert consumer_name(3, 7, 2) == "part-3-e7-r2"
    assert partition_filter(3) == "$MQTT.msgs.telecare-part.3.>"


def test_cluster_mode_on_sqlite_is_a_sentence(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["gateway"], env={"TELECARE_NATS_URL": "nats://127.0.0.1:4222",
                                                       "TELECARE_DATA_DIR": str(tmp_path)})
    assert result.exit_code == 2
    assert "cluster mode (TELECARE_NATS_URL) needs PostgreSQL" in result.output
    assert "Traceback" not in result.output


def test_a_url_that_is_not_nats_is_a_sentence(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["gateway"], env={"TELECARE_NATS_URL": "mqtt://127.0.0.1:1883",
                                                       "TELECARE_DATA_DIR": str(tmp_path)})
    assert result.exit_code == 2
    assert "TELECARE_NATS_URL: 'mqtt://127.0.0.1:1883' is not a NATS server URL" in result.output


def test_no_nats_server_answering_is_a_sentence() -> None:
    link = JetStreamLink(["nats://user:secret@127.0.0.1:9"])
    with pytest.raises(ConnectionError, match=r"no NATS server of nats://user:\*\*\*@127.0.0.1:9 answered within 1 s"):
        link.start(timeout_s=1.0)
    link.close()


def test_an_mqtt_messages_stream_of_another_kind_is_a_sentence(nats_server: NatsServer) -> None:
    # A stream of that name made otherwise (here: limits retention, on other subjects): not nats-server 2.9's.
    create_stream([nats_server.url], name=READINGS_STREAM, num_replicas=1)
    link = JetStreamLink([nats_server.url])
    try:
        with pytest.raises(ClusterConfigError, match=r"the NATS servers' \$MQTT_msgs stream has retention limits"):
            link.start()
    finally:
        link.close()
