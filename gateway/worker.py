"""The worker process: the journal's consumers (readings-store writer, device registry, detectors) and the
alert dispatcher.

It runs apart from ingest so that MQTT, parsing and the journal commit have a core (and a GIL) of their own:
paho's per-message cost is the ingest budget on these machines. The worker only reads the journal and
advances its own positions there, so it can die and restart at any point without losing anything: it takes
up again where its positions stand.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing as mp
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from multiprocessing.synchronize import Event as ProcessEvent

from analytics.alerts import AlertEvent
from gateway import logs
from gateway.alerting.dispatcher import Dispatcher, dispatcher_options
from gateway.alerting.notifiers import make_notifier
from gateway.backoff import Backoff
from gateway.clock import Clock, SimulatedClock, WallClock
from gateway.config import Settings
from gateway.consumers import Consumer, run_consumer
from gateway.db.session import make_engine, make_session_factory
from gateway.detect import DetectorConsumer
from gateway.device_table import DeviceTable
from gateway.heartbeats import HeartbeatFilter
from gateway.journal import Entry, Journal
from gateway.metrics import WorkerMetrics
from gateway.presses_first import PressesFirst
from gateway.purge import run_purge
from gateway.registry import DeviceRegistry
from gateway.retention import DeadLetterLimits, DeadLetterRetention
from gateway.stores.readings import reading_store_for
from gateway.watchdog import build_watchdog
from gateway.writer import StoreWriter

log = logging.getLogger(__name__)

CONSUMERS = ("store", "registry", "detect")
TICK_S = 1.0  # wall seconds between telling the detectors the time when nothing arrives
SUMMARIES_S = 5.0  # wall seconds between writes of closed days' summaries
RESTART_BACKOFF = Backoff(first_s=1.0, cap_s=60.0)  # wall seconds before restarting a dead worker
RETENTION_S = 60.0  # wall seconds between dead-letter purges
WATCHDOG_S = 60.0  # wall seconds between the watchdog's checks
SIMULATED_RETRY_DEADLINE_S = 7 * 24 * 3600.0  # on a simulated clock, a retry deadline would be measured in its time
# Consumers whose cost per batch grows with the homes and devices it touches (a detector checkpoint per home, a row
# per device) take larger batches when behind: a backlog costs them fewer checkpoints and rows per reading. Caught
# up, a batch is what arrived since the last, so this adds no latency (docs/benchmarks.md, Ingest).
PER_HOME_BATCHES = {"registry": 4, "detect": 4}
# What each journal consumer is, for an operator reading the watchdog's message.
CONSUMER_WORDS = {"store": "readings-store writer", "registry": "device registry", "detect": "detectors"}
PR_SET_PDEATHSIG = 1


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


class Worker:
    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        self.settings = settings
        self.simulated = settings.clock == "simulated"
        # Simulated: the detectors move this clock on as they meet the simulator's ticks in the journal.
        self.clock = clock or (SimulatedClock() if self.simulated else WallClock())
        self.metrics = WorkerMetrics()
        self.journal = Journal(settings.journal_path, max_entries=settings.spool_max_entries)
        self.sessions = make_session_factory(make_engine(settings.database_url))
        self.store = reading_store_for(settings)
        # Pushover's emergency retry/expire run on wall time: not in accelerated runs. Nor retry deadlines: sends
        # take wall seconds while simulated minutes race by, and a message would expire before its first try.
        delivery = dispatcher_options(settings)
        if self.simulated:
            delivery |= {"retry_deadline_urgent_s": SIMULATED_RETRY_DEADLINE_S,
                         "retry_deadline_s": SIMULATED_RETRY_DEADLINE_S}
        self.dispatcher = Dispatcher(self.sessions, make_notifier(settings), self.clock,
                                     emergency_allowed=not self.simulated, metrics=self.metrics, **delivery)
        devices = DeviceTable(self.sessions)  # one copy for the writer's tags and the detectors
        self.detect = DetectorConsumer(self.sessions, self.clock, on_alerts=self._alerted, devices=devices)
        self.consumers: list[Consumer] = [
            StoreWriter(self.store, self.journal, self.metrics, self.clock, devices),
            RegistryConsumer(DeviceRegistry(self.sessions), HeartbeatFilter()),
            self.detect,
        ]
        assert tuple(c.name for c in self.consumers) == CONSUMERS
        self.watchdog = build_watchdog(settings, self.journal, self.sessions, self.clock,
                                       [(c, CONSUMER_WORDS[c]) for c in CONSUMERS])
        self.retention = DeadLetterRetention(
            self.sessions, self.clock, DeadLetterLimits(max_age_days=settings.dead_letter_max_age_days,
                                                        max_rows=settings.dead_letter_max_rows,
                                                        max_per_home=settings.dead_letter_max_per_home),
            self.metrics)

    def _alerted(self, events: list[AlertEvent]) -> None:
        for e in events:
            self.metrics.alert_events.labels(str(e.action), str(e.kind)).inc()
        self.dispatcher.wake()

    def tick_detectors(self, stop: threading.Event) -> None:
        """Wall time passing with nothing heard: tell the detectors, once the journal's backlog is seen."""
        while not stop.wait(TICK_S):
            try:
                if self.journal.lag(self.detect.name) == 0:
                    self.detect.tick(self.clock.now_ms())
            except Exception:
                log.exception("detectors: tick failed; trying again")

    def dispatch(self, stop: threading.Event) -> None:
        """The dispatcher, once the clock's time is known: a simulated clock reads the wall clock until the first
        tick, months from the simulation's time, which would expire or escalate every open message at once."""
        if isinstance(self.clock, SimulatedClock):
            while not self.clock.ticked():
                if stop.wait(0.05):
                    return
        self.dispatcher.run(stop)

    def write_summaries(self, stop: threading.Event) -> None:
        """Days the detectors closed → the readings store, for the API; retried while the store is away."""
        while not stop.wait(SUMMARIES_S):
            try:
                self.detect.flush_summaries(self.store)
            except Exception as e:  # the store away: the days wait in the detectors' state
                log.warning("daily summaries not written (%s); retrying", e)

    def run(self, stop: threading.Event) -> None:
        batch_max = self.settings.batch_max
        threads = [threading.Thread(target=run_consumer, name=c.name, daemon=True,
                                    args=(self.journal, c, self.clock, self.metrics, stop),
                                    kwargs={"batch_max": batch_max * PER_HOME_BATCHES.get(c.name, 1)})
                   for c in self.consumers]
        threads.append(threading.Thread(target=PressesFirst(self.journal, self.detect).run, name="presses",
                                        daemon=True, args=(stop,)))
        threads.append(threading.Thread(target=self.dispatch, name="dispatcher", daemon=True, args=(stop,)))
        threads.append(threading.Thread(target=self.write_summaries, name="summaries", daemon=True, args=(stop,)))
        threads.append(threading.Thread(target=self.retention.run, name="retention", daemon=True,
                                        args=(stop, RETENTION_S)))
        threads.append(threading.Thread(target=run_purge, name="purge", daemon=True, args=(self, stop)))
        threads.append(threading.Thread(target=self.watchdog.run, name="watchdog", daemon=True,
                                        args=(stop, WATCHDOG_S)))
        if not self.simulated:  # simulated time reaches the detectors as journal entries
            threads.append(threading.Thread(target=self.tick_detectors, name="tick", daemon=True, args=(stop,)))
        for t in threads:
            t.start()
        textfile = self.settings.worker_metrics_path
        rounds = 0
        while not stop.wait(0.25):
            rounds += 1
            if rounds % 20 == 0:  # every 5 s: the journal's size on disk
                self.metrics.journal_bytes.set(self.journal.file_bytes() + self.journal.wal_bytes())
            self.metrics.write_textfile(textfile)
        for t in threads:
            t.join(timeout=30)
        self.metrics.write_textfile(textfile)
        self.store.close()


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
    Worker(settings).run(local_stop)


class WorkerSupervisor:
    """Starts the worker process, restarts it if it dies, stops it on request."""

    def __init__(self, settings: Settings, on_state: Callable[[bool, bool], None]) -> None:
        self.settings = settings
        self.on_state = on_state  # (up, restarted)
        self._ctx = mp.get_context("spawn")  # never fork a process with threads running
        self._stop = self._ctx.Event()
        self._process: mp.process.BaseProcess | None = None

    def start(self) -> None:
        self._process = self._ctx.Process(
            target=worker_main, name="telecare-worker", daemon=True,
            args=(self.settings, self._stop, os.getpid(), logging.getLogger().getEffectiveLevel(),
                  logs.is_json()))
        self._process.start()
        self.on_state(True, False)

    def watch(self, stop: threading.Event) -> None:
        deaths = 0  # never reset: a worker that keeps dying should not be restarted every second
        while not stop.wait(1.0):
            p = self._process
            if p is not None and not p.is_alive() and not self._stop.is_set():
                deaths += 1
                delay = RESTART_BACKOFF.delay_s(deaths)
                log.error("worker process died (exit code %s); restarting in %.0f s", p.exitcode, delay)
                self.on_state(False, False)
                if stop.wait(delay):
                    return
                self.start()
                self.on_state(True, True)

    def stop(self, timeout_s: float = 30.0) -> None:
        self._stop.set()
        if self._process is not None:
            self._process.join(timeout_s)
            if self._process.is_alive():
                self._process.terminate()
                self._process.join(5)
        self.on_state(False, False)
