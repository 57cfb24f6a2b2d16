"""The gateway's processes built from settings: the ingest process (:class:`Gateway`: MQTT in, the journal,
acknowledgements) and the worker process it starts (:func:`build_worker`, :func:`worker_main`).

This is where the gateway's parts are chosen and connected (the readings store, the notifier, the dispatcher's
delivery options, the detectors and the consumers), as the rest of the composition root does for the command line,
the API and the demo; ``gateway/`` itself only defines the parts.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.synchronize import Event as ProcessEvent

from gateway import logs
from gateway.alerting.dispatcher import Dispatcher, dispatcher_options
from gateway.alerting.notifiers import make_notifier
from gateway.clock import Clock, SimulatedClock, WallClock
from gateway.config import Settings
from gateway.consumers import Consumer
from gateway.contract import CLOCK_TOPIC, Limits
from gateway.db.migrate import upgrade
from gateway.db.session import make_engine, make_session_factory
from gateway.detect import DetectorConsumer
from gateway.device_table import DeviceTable
from gateway.heartbeats import HeartbeatFilter
from gateway.ingest import Ingest
from gateway.journal import Journal
from gateway.metrics import IngestMetrics, WorkerMetrics
from gateway.mqtt_input import MqttInput, MqttOptions
from gateway.quotas import stored_quotas
from gateway.reading_facts import ReadingFacts
from gateway.registry import DeviceRegistry
from gateway.retention import DeadLetterLimits, DeadLetterRetention
from gateway.stores.readings import reading_store_for
from gateway.watchdog import build_watchdog
from gateway.worker import CONSUMERS, RegistryConsumer, Worker, WorkerSupervisor
from gateway.writer import StoreWriter
from telecare.gateway_lock import GatewayLock, lock_path

log = logging.getLogger(__name__)

SIMULATED_RETRY_DEADLINE_S = 7 * 24 * 3600.0  # on a simulated clock, a retry deadline would be measured in its time
# What each journal consumer is, for an operator reading the watchdog's message.
CONSUMER_WORDS = {"store": "readings-store writer", "registry": "device registry", "detect": "detectors"}
PR_SET_PDEATHSIG = 1


def build_worker(settings: Settings, clock: Clock | None = None) -> Worker:
    """The worker's parts from settings. ``clock``: as the settings say unless given (simulated: the detectors move
    it on as they meet the simulator's ticks in the journal)."""
    simulated = settings.clock == "simulated"
    clock = clock or (SimulatedClock() if simulated else WallClock())
    metrics = WorkerMetrics()
    journal = Journal(settings.journal_path, max_entries=settings.spool_max_entries)
    sessions = make_session_factory(make_engine(settings.database_url))
    store = reading_store_for(settings)
    # Pushover's emergency retry/expire run on wall time: not in accelerated runs. Nor retry deadlines: sends take
    # wall seconds while simulated minutes race by, and a message would expire before its first try.
    delivery = dispatcher_options(settings)
    if simulated:
        delivery |= {"retry_deadline_urgent_s": SIMULATED_RETRY_DEADLINE_S,
                     "retry_deadline_s": SIMULATED_RETRY_DEADLINE_S}
    dispatcher = Dispatcher(sessions, make_notifier(settings), clock, emergency_allowed=not simulated,
                            metrics=metrics, **delivery)
    devices = DeviceTable(sessions)  # one copy for the writer's tags and the detectors
    detect = DetectorConsumer(sessions, clock, devices=devices)
    consumers: list[Consumer] = [
        StoreWriter(store, journal, metrics, clock, devices),
        RegistryConsumer(DeviceRegistry(sessions), HeartbeatFilter()),
        detect,
    ]
    watchdog = build_watchdog(settings, journal, sessions, clock, [(c, CONSUMER_WORDS[c]) for c in CONSUMERS])
    retention = DeadLetterRetention(
        sessions, clock, DeadLetterLimits(max_age_days=settings.dead_letter_max_age_days,
                                          max_rows=settings.dead_letter_max_rows,
                                          max_per_home=settings.dead_letter_max_per_home),
        metrics)
    worker = Worker(settings, clock, metrics, journal, sessions, store, dispatcher, detect, consumers, watchdog,
                    retention)
    detect.on_alerts = worker.alerted  # after each commit of alert events: counted, and the dispatcher woken
    return worker


def worker_main(settings: Settings, stop: ProcessEvent, parent_pid: int, log_level: int,
                log_json: bool = False) -> None:
    """Entry point of the worker process (multiprocessing, spawn): its lines in the ingest process's format."""
    logs.configure(log_level, json=log_json, process="worker")
    with contextlib.suppress(OSError, AttributeError):  # Linux: die with the ingest process, even on SIGKILL
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the ingest process, which stops us in order
    local_stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: local_stop.set())

    def watch() -> None:
        while not local_stop.is_set():
            if stop.is_set() or os.getppid() != parent_pid:
                local_stop.set()
            time.sleep(0.2)

    threading.Thread(target=watch, daemon=True).start()
    build_worker(settings).run(local_stop)


@dataclass
class Gateway:
    """Ingest (MQTT in, journal, acknowledgements) here; the journal's consumers in the worker process."""

    settings: Settings
    clock: Clock | None = None  # default: as the settings say (wall, or the simulator's)
    metrics: IngestMetrics = field(default_factory=IngestMetrics)
    stop_event: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        # One gateway a journal, and `baseline warm` refused while it runs: held from here to stop (or exit).
        self.lock = GatewayLock(lock_path(self.settings.journal_path))
        self.lock.acquire()
        try:
            self._build()
        except BaseException:
            self.lock.release()
            raise

    def _build(self) -> None:
        s = self.settings
        if self.clock is None:
            self.clock = SimulatedClock() if s.clock == "simulated" else WallClock()
        s.data_dir.mkdir(parents=True, exist_ok=True)
        upgrade(s.database_url)  # before the worker starts, so it never races a migration
        self.journal = Journal(s.journal_path, max_entries=s.spool_max_entries)
        for name in CONSUMERS:
            self.journal.register(name)  # before the first append, so trimming waits for the worker
        limits = Limits(max_payload_bytes=s.max_payload_bytes, max_future_ms=s.max_future_s * 1000)
        # The device table tells ingest each device's described kind; it is read again by the trim thread, so a
        # slow database never holds up a batch.
        self.devices = DeviceTable(make_session_factory(make_engine(s.database_url)))
        self.devices.refresh_if_due()
        facts = ReadingFacts(self.devices, self.journal.device_states())
        self.ingest = Ingest(self.journal, self.clock, self.metrics, root=s.mqtt_topic_root, limits=limits,
                             batch_max=s.batch_max, linger_s=s.linger_ms / 1000, quotas=stored_quotas(s),
                             facts=facts)
        self.mqtt = MqttInput(
            MqttOptions(url=s.mqtt_url, client_id=s.mqtt_client_id, topics=self.topics(),
                        session_expiry_s=s.mqtt_session_expiry_s, protocol=s.mqtt_protocol,
                        ca_file=str(s.mqtt_ca_file) if s.mqtt_ca_file else None),
            self.ingest.offer, self.metrics, stopping=self.stop_event)  # a stop's disconnect is no trouble
        self.ingest.ack = self.mqtt.ack
        self.worker = WorkerSupervisor(s, self._worker_state, worker_main)
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
        try:
            for t in self._threads:
                t.join(timeout=30)
            self.mqtt.stop()
            self.worker.stop()
        finally:
            self.lock.release()

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
            self.devices.refresh_if_due()  # never raises: the last copy stays while the database is away
