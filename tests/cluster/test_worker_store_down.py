"""The readings store away holds up nothing of the safety path: the partition loop hands the decided entries to a
stream of their own, which the partition's store loop writes when it can (gateway.cluster.entries)."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest
from nats.js import JetStreamContext

from bench.nats_cluster import NatsServer
from gateway.cluster.entries import ENTRIES_STREAM, EntryStream, decoded
from gateway.cluster.partition import entry_seq
from gateway.cluster.stream import Delivery, JetStreamLink, StreamOptions
from gateway.errors import StoreUnavailable
from gateway.journal import Entry
from gateway.stores.readings.base import Point
from gateway.stores.readings.sqlite import SqliteReadingStore
from tests.cluster.helpers import jetstream
from tests.cluster.leasing import ON_POSTGRESQL
from tests.cluster.workers import PARTITIONS, T0_MS, Cluster, cluster, nats_server, press, temperatures, wait_for

__all__ = ["cluster", "nats_server"]  # the fixtures, used by name


def _entries_waiting(urls: list[str]) -> int:
    async def count(js: JetStreamContext) -> int:
        return int((await js.stream_info(ENTRIES_STREAM)).state.messages)

    return jetstream(urls, count)


@ON_POSTGRESQL
def test_with_the_store_down_a_press_still_alerts_and_every_reading_is_stored_once_when_it_is_back(
        cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    up = threading.Event()
    attempts: list[int] = []
    original = SqliteReadingStore.write

    def write(self: SqliteReadingStore, points: Sequence[Point]) -> None:
        if not up.is_set():
            attempts.append(len(points))
            raise StoreUnavailable("simulated: the readings store is down")
        original(self, points)

    monkeypatch.setattr(SqliteReadingStore, "write", write)
    cluster.start(cluster.build("w1"))
    cluster.publish([*temperatures("h1", 20), press("h1"), *temperatures("h1", 20, start=20)])
    wait_for(lambda: cluster.pendant_raises("h1") == 1, what="the pendant alert, the store down")
    wait_for(lambda: cluster.stream_messages() == 0, what="the hub messages acknowledged, the store down")
    assert attempts, "the store loop tried to write"
    assert cluster.points("h1") == []
    assert _entries_waiting([cluster.server.url]) > 0, "the entries wait in their stream"
    up.set()
    wait_for(lambda: len(cluster.points("h1")) == 40, 40, "the readings stored once the store is back")
    wait_for(lambda: _entries_waiting([cluster.server.url]) == 0, what="every entry acknowledged")
    assert cluster.points("h1") == [15 + i / 100 for i in range(40)]
    assert cluster.pendant_raises("h1") == 1


def test_a_batch_published_twice_is_kept_once(nats_server: NatsServer) -> None:
    # A batch decided again after a failure (its activity decided from the states after it) must not reach the
    # store: the store has the first decision. JetStream's duplicate window drops the copy.
    link = JetStreamLink([nats_server.url], StreamOptions(partitions=PARTITIONS))
    link.start()
    try:
        stream = EntryStream(link)
        stream.ensure()
        first = [Entry(entry_seq(1), "state", "h1", "pir", T0_MS, T0_MS, True, {"occupancy": True}, "motion", "on")]
        again = [first[0]._replace(activity=None)]
        stream.publish(2, first)
        stream.publish(2, again)
        feed = stream.open(2, 1)
        deliveries: list[Delivery] = link.fetch(feed, 10, 1.0)
        assert decoded(deliveries) == first
        link.ack(deliveries)
    finally:
        link.close()
