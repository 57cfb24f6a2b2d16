"""The gateway's composition root: settings in, running threads out. Tests build it with their own parts."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from gateway.clock import Clock, WallClock
from gateway.config import Settings
from gateway.consumers import run_consumer
from gateway.contract import Limits
from gateway.db.migrate import upgrade
from gateway.db.models import Device
from gateway.db.session import make_engine, make_session_factory
from gateway.heartbeats import HeartbeatFilter
from gateway.ingest import Ingest
from gateway.journal import Entry, Journal
from gateway.metrics import Metrics
from gateway.mqtt_input import MqttInput, MqttOptions
from gateway.registry import DeviceRegistry
from gateway.stores.readings.base import ReadingStore
from gateway.writer import StoreWriter

log = logging.getLogger(__name__)


def make_reading_store(settings: Settings) -> ReadingStore:
    """InfluxDB 2.x when configured, else the embedded SQLite store beside the operational database."""
    if settings.influx_url:
        from gateway.stores.readings.influx import InfluxReadingStore

        assert settings.influx_token and settings.influx_org and settings.influx_bucket
        return InfluxReadingStore(settings.influx_url, settings.influx_token.get_secret_value(),
                                  settings.influx_org, settings.influx_bucket, timeout_s=settings.influx_timeout_s)
    from gateway.stores.readings.sqlite import SqliteReadingStore

    return SqliteReadingStore(settings.embedded_readings_path)


def device_tags_loader(sessions: sessionmaker[Session]) -> Callable[[], dict[tuple[str, str], dict[str, str]]]:
    def load() -> dict[tuple[str, str], dict[str, str]]:
        with sessions() as s:
            rows = s.execute(select(Device.home_id, Device.name, Device.kind, Device.room, Device.role))
            return {(h, n): {"kind": k or "", "room": r or "", "role": ro or ""} for h, n, k, r, ro in rows}
    return load


class RegistryConsumer:
    """The device registry as a journal consumer, heartbeats filtered out."""

    name = "registry"

    def __init__(self, registry: DeviceRegistry, heartbeats: HeartbeatFilter) -> None:
        self.registry = registry
        self.heartbeats = heartbeats

    def handle(self, entries: Sequence[Entry]) -> None:
        passed, seen = self.heartbeats.select(entries)
        if passed:
            self.registry.apply(passed)
        self.heartbeats.written(seen)


@dataclass
class Gateway:
    settings: Settings
    clock: Clock = field(default_factory=WallClock)
    store: ReadingStore | None = None
    metrics: Metrics = field(default_factory=Metrics)
    stop_event: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        s = self.settings
        s.data_dir.mkdir(parents=True, exist_ok=True)
        upgrade(s.database_url)
        self.sessions = make_session_factory(make_engine(s.database_url))
        self.journal = Journal(s.journal_path, max_entries=s.spool_max_entries)
        self.store = self.store or make_reading_store(s)
        limits = Limits(max_payload_bytes=s.max_payload_bytes, max_future_ms=s.max_future_s * 1000)
        self.ingest = Ingest(self.journal, self.clock, self.metrics, root=s.mqtt_topic_root, limits=limits,
                             batch_max=s.batch_max, linger_s=s.linger_ms / 1000)
        self.mqtt = MqttInput(
            MqttOptions(url=s.mqtt_url, client_id=s.mqtt_client_id, topics=(f"{s.mqtt_topic_root}/#",),
                        session_expiry_s=s.mqtt_session_expiry_s),
            self.ingest.offer, self.metrics)
        self.ingest.ack = self.mqtt.ack
        self.consumers = [
            StoreWriter(self.store, self.journal, self.metrics, device_tags_loader(self.sessions)),
            RegistryConsumer(DeviceRegistry(self.sessions), HeartbeatFilter()),
        ]
        for c in self.consumers:
            self.journal.register(c.name)
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        if self.settings.metrics_port is not None:
            port = self.metrics.serve(self.settings.metrics_port)
            log.info("metrics on http://0.0.0.0:%d/metrics", port)
        self._spawn("ingest", self.ingest.run, self.stop_event)
        for c in self.consumers:
            self._spawn(c.name, run_consumer, self.journal, c, self.clock, self.metrics, self.stop_event,
                        batch_max=self.settings.batch_max)
        self._spawn("trim", self._trim_forever)
        self.mqtt.start()

    def stop(self) -> None:
        """Commit and acknowledge what arrived, let consumers finish their batch, then disconnect.

        Anything that arrives after ingest's last commit is never acknowledged: the broker sends it again.
        """
        self.stop_event.set()
        for t in self._threads:
            t.join(timeout=30)
        self.mqtt.stop()
        assert self.store is not None
        self.store.close()

    def _spawn(self, name: str, target: Callable[..., None], *args: object, **kwargs: object) -> None:
        t = threading.Thread(target=target, args=args, kwargs=kwargs, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    def _trim_forever(self) -> None:
        while not self.stop_event.wait(1.0):
            try:
                self.journal.trim()
                self.metrics.journal_entries.set(self.journal.kept())
            except Exception:
                log.exception("journal trim failed")
