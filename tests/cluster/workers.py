"""Shared by the cluster worker tests: a nats-server of their own, cluster workers in threads, and what they stored.

Hubs publish over MQTT at QoS 1 to the server's MQTT port (``tests.cluster.helpers.Hub``); the workers read
``$MQTT_msgs`` (nats-server's stream of MQTT QoS 1 messages) and write to the embedded SQLite readings store and a
fresh PostgreSQL database.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from bench.nats_cluster import NatsServer
from gateway.cluster.stream import READINGS_STREAM, JetStreamLink, StreamOptions
from gateway.cluster.worker import ClusterWorker
from gateway.config import Settings
from gateway.db.models import Alert, AlertLog
from gateway.db.session import make_engine, make_session_factory
from gateway.stores.readings.sqlite import SqliteReadingStore
from telecare.cluster import build_cluster_worker
from tests.cluster.helpers import Hub, jetstream

PARTITIONS = 4
T0_MS = 1_780_000_000_000  # event times of the readings (2026)


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    with NatsServer(tmp_path / "nats", partitions=PARTITIONS) as server:
        yield server


@pytest.fixture
def cluster(tmp_path: Path, nats_server: NatsServer, db_url: str) -> Iterator[Cluster]:
    """Workers on ``nats_server`` and the ``db_url`` database, halted at the end of the test."""
    running = Cluster(tmp_path, nats_server, db_url)
    yield running
    running.halt()


@dataclass
class Running:
    worker: ClusterWorker
    stop: threading.Event
    thread: threading.Thread

    def halt(self, timeout_s: float = 30.0) -> None:
        self.stop.set()
        self.thread.join(timeout_s)
        assert not self.thread.is_alive(), "the worker did not stop"


class Cluster:
    """Workers on one server and one database; ``start()`` one more, ``halt()`` them all at the end."""

    def __init__(self, tmp_path: Path, server: NatsServer, db_url: str) -> None:
        self.settings = Settings(db_url=db_url, data_dir=tmp_path / "gw", nats_url=server.url,  # type: ignore[call-arg]
                                 nats_partitions=PARTITIONS, batch_max=500)
        self.server = server
        self.running: list[Running] = []
        self.sessions: sessionmaker[Session] = make_session_factory(make_engine(db_url))

    def build(self, name: str) -> ClusterWorker:
        return build_cluster_worker(self.settings, worker_id=name, fetch_wait_s=0.2)

    def start(self, worker: ClusterWorker) -> Running:
        stop = threading.Event()
        thread = threading.Thread(target=worker.run, args=(stop,), name=worker.worker_id, daemon=True)
        thread.start()
        running = Running(worker, stop, thread)
        self.running.append(running)
        # $MQTT_msgs keeps only what a consumer wants: the first worker's start makes the stream (if no hub did) and
        # a consumer for every partition.
        wait_for(self._stream_ready, 20, "$MQTT_msgs made, with a consumer for every partition")
        return running

    def _stream_ready(self) -> bool:
        """The stream exists and every partition has a consumer: a message published before that would be kept by
        nobody (a loaded machine showed the race)."""
        async def consumers(js) -> int:  # type: ignore[no-untyped-def]
            return int((await js.stream_info(READINGS_STREAM)).state.consumer_count)

        try:
            return jetstream([self.server.url], consumers) >= PARTITIONS
        except Exception:
            return False

    def halt(self) -> None:
        for running in self.running:
            running.halt()

    def create_stream(self) -> None:
        """``$MQTT_msgs`` and every partition's placeholder consumer, as a worker makes them at start, before any
        worker runs: what hubs publish from then on is kept for the partitions' owners."""
        link = JetStreamLink(self.settings.nats_servers, StreamOptions(partitions=PARTITIONS))
        link.start()
        link.close()

    def publish(self, messages: list[tuple[str, bytes]]) -> None:
        hub = Hub(self.server.mqtt_port)
        try:
            for topic, payload in messages:
                assert hub.publish(topic, payload), f"no PUBACK for {topic}"
        finally:
            hub.close()

    def store(self) -> SqliteReadingStore:
        return SqliteReadingStore(self.settings.embedded_readings_path)

    def points(self, home: str) -> list[float]:
        """The temperatures stored for a home, by point (a point rewritten is still one)."""
        return [float(p.fields["temperature"]) for p in self.store().timeline(home, T0_MS, T0_MS + 10_000_000)
                if "temperature" in p.fields]

    def pendant_raises(self, home: str) -> int:
        """How many times a pendant alert of ``home`` was raised (its log's raise lines)."""
        with self.sessions() as session:
            return session.scalar(select(func.count()).select_from(AlertLog).join(Alert, Alert.id == AlertLog.alert_id)
                                  .where(Alert.home_id == home, Alert.kind == "pendant", AlertLog.what == "raised")
                                  ) or 0

    def stream_messages(self) -> int:
        """Messages still in ``$MQTT_msgs``: not acknowledged yet by every consumer."""
        async def count(js) -> int:  # type: ignore[no-untyped-def]
            return int((await js.stream_info(READINGS_STREAM)).state.messages)

        return jetstream([self.server.url], count)


def temperatures(home: str, n: int, *, start: int = 0) -> list[tuple[str, bytes]]:
    """``n`` readings of one home, each a distinct point (its own last_seen)."""
    return [(f"telecare/{home}/thermo", orjson.dumps({"temperature": 15 + i / 100, "last_seen": T0_MS + i}))
            for i in range(start, start + n)]


def press(home: str, at: int = 500_000) -> tuple[str, bytes]:
    return f"telecare/{home}/pendant", orjson.dumps({"action": "single", "last_seen": T0_MS + at})


def wait_for(condition: object, timeout_s: float = 15.0, what: str = "condition") -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout_s
    while True:
        result = condition()
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s:.0f} s (last: {result!r})")
        time.sleep(0.1)
