"""The gateway's composition root: settings in, the ingest process's threads and the worker process out."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from gateway.clock import Clock, SimulatedClock, WallClock
from gateway.config import Settings
from gateway.contract import CLOCK_TOPIC, Limits
from gateway.db.migrate import upgrade
from gateway.ingest import Ingest
from gateway.journal import Journal
from gateway.metrics import IngestMetrics
from gateway.mqtt_input import MqttInput, MqttOptions
from gateway.quotas import stored_quotas
from gateway.worker import CONSUMERS, WorkerSupervisor

log = logging.getLogger(__name__)


@dataclass
class Gateway:
    """Ingest (MQTT in, journal, acknowledgements) here; the journal's consumers in the worker process."""

    settings: Settings
    clock: Clock | None = None  # default: as the settings say (wall, or the simulator's)
    metrics: IngestMetrics = field(default_factory=IngestMetrics)
    stop_event: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        s = self.settings
        if self.clock is None:
            self.clock = SimulatedClock() if s.clock == "simulated" else WallClock()
        s.data_dir.mkdir(parents=True, exist_ok=True)
        upgrade(s.database_url)  # before the worker starts, so it never races a migration
        self.journal = Journal(s.journal_path, max_entries=s.spool_max_entries)
        for name in CONSUMERS:
            self.journal.register(name)  # before the first append, so trimming waits for the worker
        limits = Limits(max_payload_bytes=s.max_payload_bytes, max_future_ms=s.max_future_s * 1000)
        self.ingest = Ingest(self.journal, self.clock, self.metrics, root=s.mqtt_topic_root, limits=limits,
                             batch_max=s.batch_max, linger_s=s.linger_ms / 1000, quotas=stored_quotas(s))
        self.mqtt = MqttInput(
            MqttOptions(url=s.mqtt_url, client_id=s.mqtt_client_id, topics=self.topics(),
                        session_expiry_s=s.mqtt_session_expiry_s, protocol=s.mqtt_protocol,
                        ca_file=str(s.mqtt_ca_file) if s.mqtt_ca_file else None),
            self.ingest.offer, self.metrics)
        self.ingest.ack = self.mqtt.ack
        self.worker = WorkerSupervisor(s, self._worker_state)
        self.metrics.include(s.worker_metrics_path)
        self._threads: list[threading.Thread] = []
        self.metrics_port: int | None = None

    def topics(self) -> tuple[str, ...]:
        homes = f"{self.settings.mqtt_topic_root}/#"
        return (homes, CLOCK_TOPIC) if self.settings.clock == "simulated" else (homes,)

    def start(self) -> None:
        if self.settings.metrics_port is not None:
            self.metrics_port = self.metrics.serve(self.settings.metrics_port, self.settings.metrics_host)
            log.info("metrics on http://0.0.0.0:%d/metrics", self.metrics_port)
        self.worker.start()
        self._spawn("ingest", self.ingest.run, self.stop_event)
        self._spawn("trim", self._trim_forever)
        self._spawn("worker-watch", self.worker.watch, self.stop_event)
        self.mqtt.start()

    def stop(self) -> None:
        """Commit and acknowledge what arrived, disconnect, then let the worker finish its batch.

        Anything that arrives after ingest's last commit is never acknowledged: the broker sends it again.
        """
        self.stop_event.set()
        for t in self._threads:
            t.join(timeout=30)
        self.mqtt.stop()
        self.worker.stop()

    def sample(self, name: str, labels: dict[str, str] | None = None) -> float:
        """A metric's current value, the worker's included (0 when not reported yet)."""
        return self.metrics.sample(name, labels) or 0.0

    def _worker_state(self, up: bool, restarted: bool) -> None:
        self.metrics.worker_up.set(1 if up else 0)
        if restarted:
            self.metrics.worker_restarts.inc()

    def _spawn(self, name: str, target: Callable[..., None], *args: object) -> None:
        t = threading.Thread(target=target, args=args, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    def _trim_forever(self) -> None:
        while not self.stop_event.wait(1.0):
            try:
                self.journal.trim()
                self.metrics.journal_entries.set(self.journal.kept())
            except Exception:
                log.exception("journal trim failed")
