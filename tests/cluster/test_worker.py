"""Cluster workers end to end: hubs publish over MQTT to a real nats-server, workers read the partitions of
``$MQTT_msgs``, register, detect and alert, acknowledge only once all of it committed (PostgreSQL), and store the
readings from a stream of decided entries of their own."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Sequence

import orjson
import pytest
from sqlalchemy import select

from gateway.cluster.partition import entry_seq
from gateway.cluster.stream import READINGS_STREAM, partition_of
from gateway.db.cluster import ClusterDeviceState
from gateway.db.models import DeadLetter, DetectorCheckpoint, Device
from gateway.journal import Entry
from gateway.stores.readings.base import ACTIVITY_FIELD
from gateway.worker import RegistryConsumer
from tests.cluster.helpers import delete_stream
from tests.cluster.leasing import ON_POSTGRESQL
from tests.cluster.workers import PARTITIONS, T0_MS, Cluster, cluster, nats_server, press, temperatures, wait_for

__all__ = ["cluster", "nats_server"]  # the fixtures, used by name

# Homes on every partition of four (partition_of: 2, 3, 0, 1).
HOMES = ["h1", "home-a", "care-home-17", "h4"]


def test_the_homes_cover_every_partition() -> None:
    assert {partition_of(home, PARTITIONS) for home in HOMES} == set(range(PARTITIONS))


@ON_POSTGRESQL
def test_readings_are_stored_once_registered_and_a_press_alerts_once(cluster: Cluster) -> None:
    worker = cluster.build("w1")
    worker.metrics_port = 0  # any free port
    cluster.start(worker)
    for home in HOMES:
        cluster.publish(temperatures(home, 30))
    cluster.publish([press("h1"), ("telecare/h4/thermo", b"{not json")])
    for home in HOMES:
        wait_for(lambda home=home: len(cluster.points(home)) == 30, what=f"{home}'s readings stored")  # type: ignore[misc]
    assert cluster.points("h1") == [15 + i / 100 for i in range(30)]
    wait_for(lambda: cluster.pendant_raises("h1") == 1, what="the pendant alert")
    # The store has its own pace: a reading may be stored before its batch's registry and states committed, but
    # never a message acknowledged before.
    wait_for(lambda: cluster.stream_messages() == 0, what="every message acknowledged")
    with cluster.sessions() as session:
        devices = {(d.home_id, d.name) for d in session.scalars(select(Device))}
        states = {(s.home_id, s.device) for s in session.scalars(select(ClusterDeviceState))}
    assert devices >= {(home, "thermo") for home in HOMES} | {("h1", "pendant")}
    assert ("h1", "pendant") in states  # its kind, kept where the partition's next owner finds it
    assert cluster.pendant_raises("h1") == 1
    with cluster.sessions() as session:
        letters = [(d.home_id, d.reason) for d in session.scalars(select(DeadLetter))]
    assert letters == [("h4", "invalid_json")]  # kept once, as on one machine
    # One /metrics for what ingest and the worker count on one machine, and /healthz on the NATS connection.
    assert worker.served_port is not None
    with urllib.request.urlopen(f"http://127.0.0.1:{worker.served_port}/metrics", timeout=5) as response:
        metrics = response.read().decode()
    assert "telecare_messages_received_total 122.0" in metrics
    assert 'telecare_messages_rejected_total{reason="invalid_json"} 1.0' in metrics
    assert "telecare_readings_stored_total 121.0" in metrics
    assert "telecare_partitions_owned 4.0" in metrics
    assert "telecare_stream_full 0.0" in metrics
    assert "telecare_store_entries_waiting " in metrics
    with urllib.request.urlopen(f"http://127.0.0.1:{worker.served_port}/healthz", timeout=5) as response:
        assert json.loads(response.read())["status"] == "ok"


@ON_POSTGRESQL
def test_a_batch_that_fails_after_the_store_write_is_acknowledged_never_and_handled_again(
        cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[int]] = []
    original = RegistryConsumer.handle

    def failing_once(self: RegistryConsumer, entries: Sequence[Entry]) -> None:
        seen.append([e.seq for e in entries])
        if len(seen) == 1:  # the store has written the batch; the worker "dies" before the registry commits
            raise RuntimeError("simulated crash after the store write")
        original(self, entries)

    monkeypatch.setattr(RegistryConsumer, "handle", failing_once)
    # Published before the worker starts, so the first batch holds the press and the readings after it.
    cluster.create_stream()
    cluster.publish([*temperatures("h1", 10), press("h1"), *temperatures("h1", 10, start=10)])
    cluster.start(cluster.build("w1"))
    wait_for(lambda: len(cluster.points("h1")) == 20, what="the readings stored")
    wait_for(lambda: cluster.pendant_raises("h1") == 1, what="the pendant alert")
    wait_for(lambda: cluster.stream_messages() == 0, what="every message acknowledged")
    assert len(seen) >= 2
    assert seen[1][:len(seen[0])] == seen[0], "the failed batch came again, from its first message"
    assert seen[0][0] == entry_seq(1)
    assert cluster.points("h1") == [15 + i / 100 for i in range(20)]
    assert cluster.pendant_raises("h1") == 1


@ON_POSTGRESQL
def test_two_workers_share_the_partitions_and_a_stopped_ones_move_to_the_other(cluster: Cluster) -> None:
    first = cluster.start(cluster.build("w1"))
    second = cluster.start(cluster.build("w2"))
    wait_for(lambda: len(first.worker.owned) == len(second.worker.owned) == PARTITIONS // 2, 20,
             "the partitions shared out")
    assert set(first.worker.owned) | set(second.worker.owned) == set(range(PARTITIONS))
    for home in HOMES:
        cluster.publish(temperatures(home, 20))
    for home in HOMES:
        wait_for(lambda home=home: len(cluster.points(home)) == 20, what=f"{home}'s readings stored")  # type: ignore[misc]
    moved = set(second.worker.owned)
    second.halt()  # a clean stop: its partitions are released at once
    for home in HOMES:
        cluster.publish([*temperatures(home, 20, start=20), press(home)])
    wait_for(lambda: set(first.worker.owned) == set(range(PARTITIONS)), 10, "the stopped worker's partitions moved")
    for home in HOMES:
        wait_for(lambda home=home: len(cluster.points(home)) == 40, what=f"{home}'s later readings stored")  # type: ignore[misc]
        wait_for(lambda home=home: cluster.pendant_raises(home) == 1, what=f"{home}'s pendant alert")  # type: ignore[misc]
    assert moved
    wait_for(lambda: cluster.stream_messages() == 0, what="every message acknowledged")
    for home in HOMES:
        assert cluster.points(home) == [15 + i / 100 for i in range(40)]
        assert cluster.pendant_raises(home) == 1


@ON_POSTGRESQL
def test_a_devices_state_moves_with_its_partition(cluster: Cluster) -> None:
    # The state an activity change is decided from is the partition's, not the worker's: a motion sensor still
    # occupied when its partition moves is no new activity on the next worker.
    def occupied(at: int) -> tuple[str, bytes]:
        return "telecare/h1/hall_pir", orjson.dumps({"occupancy": True, "last_seen": T0_MS + at})

    first = cluster.start(cluster.build("w1"))
    cluster.publish([occupied(0)])
    wait_for(lambda: cluster.stream_messages() == 0 and len(marks(cluster)) == 1, what="the first reading")
    first.halt()
    cluster.start(cluster.build("w2"))
    cluster.publish([occupied(1)])
    wait_for(lambda: cluster.stream_messages() == 0 and readings_of(cluster, "hall_pir") == 2,
             what="the second reading, on the next worker")
    assert marks(cluster) == [(T0_MS, "motion")]  # one mark: the second reading changed nothing


def readings_of(cluster: Cluster, device: str) -> int:
    """How many of h1's readings of ``device`` are stored."""
    return len(cluster.store().timeline("h1", T0_MS, T0_MS + 10_000, device=device))


def marks(cluster: Cluster) -> list[tuple[int, object]]:
    """The activity marks stored with h1's readings: (time, change)."""
    return [(p.time_ms, p.fields[ACTIVITY_FIELD])
            for p in cluster.store().timeline("h1", T0_MS, T0_MS + 10_000, activity_only=True)]


@ON_POSTGRESQL
def test_a_stream_made_again_resets_the_detectors_positions(cluster: Cluster) -> None:
    # The new stream numbers its messages from 1 again: its first messages must not look already seen.
    first = cluster.start(cluster.build("w1"))
    cluster.publish(temperatures("h1", 5))
    wait_for(lambda: checkpoint_seq(cluster) == entry_seq(5), what="h1's detectors checkpointed")
    first.halt()
    delete_stream([cluster.server.url], READINGS_STREAM)
    cluster.start(cluster.build("w2"))
    cluster.publish(temperatures("h1", 1, start=5))
    wait_for(lambda: checkpoint_seq(cluster) == entry_seq(1), what="the new stream's first message seen")


def checkpoint_seq(cluster: Cluster) -> int | None:
    with cluster.sessions() as session:
        return session.scalar(select(DetectorCheckpoint.journal_seq).where(DetectorCheckpoint.home_id == "h1"))
