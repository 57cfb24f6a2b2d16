"""The worker process: the journal's consumers (readings-store writer, device registry, detectors) and the
alert dispatcher.

It runs apart from ingest so that MQTT, parsing and the journal commit have a core (and a GIL) of their own:
paho's per-message cost is the ingest budget on these machines. The worker only reads the journal and
advances its own positions there, so it can die and restart at any point without losing anything: it takes
up again where its positions stand.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import os
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from analytics.alerts import AlertEvent
from gateway import logs
from gateway.alerting.dispatcher import Dispatcher
from gateway.backoff import Backoff
from gateway.clock import Clock, SimulatedClock
from gateway.config import Settings
from gateway.consumers import Consumer, run_consumer
from gateway.detect import DetectorConsumer
from gateway.heartbeats import HeartbeatFilter
from gateway.journal import Entry, Journal
from gateway.metrics import WorkerMetrics
from gateway.presses_first import PressesFirst
from gateway.purge import run_purge
from gateway.registry import DeviceRegistry
from gateway.retention import DeadLetterRetention
from gateway.stores.readings.base import ReadingStore
from gateway.watchdog import Watchdog

log = logging.getLogger(__name__)

CONSUMERS = ("store", "registry", "detect")
TICK_S = 1.0  # wall seconds between telling the detectors the time when nothing arrives
SUMMARIES_S = 5.0  # wall seconds between writes of closed days' summaries
RESTART_BACKOFF = Backoff(first_s=1.0, cap_s=60.0)  # wall seconds before restarting a dead worker
RETENTION_S = 60.0  # wall seconds between dead-letter purges
WATCHDOG_S = 60.0  # wall seconds between the watchdog's checks
# Consumers whose cost per batch grows with the homes and devices it touches (a detector checkpoint per home, a row
# per device) take larger batches when behind: a backlog costs them fewer checkpoints and rows per reading. Caught
# up, a batch is what arrived since the last, so this adds no latency (docs/benchmarks.md, Ingest).
PER_HOME_BATCHES = {"registry": 4, "detect": 4}


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
class Worker:
    """The worker's threads over parts built for it (telecare.processes.build_worker): the journal's consumers, the
    presses-first loop, the dispatcher, the daily summaries, retention, the purge and the watchdog."""

    settings: Settings
    clock: Clock
    metrics: WorkerMetrics
    journal: Journal
    sessions: sessionmaker[Session]
    store: ReadingStore
    dispatcher: Dispatcher
    detect: DetectorConsumer
    consumers: list[Consumer]
    watchdog: Watchdog
    retention: DeadLetterRetention

    def __post_init__(self) -> None:
        assert tuple(c.name for c in self.consumers) == CONSUMERS

    @property
    def simulated(self) -> bool:
        return self.settings.clock == "simulated"

    def alerted(self, events: list[AlertEvent]) -> None:
        """The detectors committed alert events: count them, and wake the dispatcher."""
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


class WorkerSupervisor:
    """Starts the worker process, restarts it if it dies, stops it on request."""

    def __init__(self, settings: Settings, on_state: Callable[[bool, bool], None],
                 target: Callable[..., None]) -> None:
        self.settings = settings
        self.on_state = on_state  # (up, restarted)
        self.target = target  # the process's entry: (settings, stop, parent pid, log level, JSON logs)
        self._ctx = mp.get_context("spawn")  # never fork a process with threads running
        self._stop = self._ctx.Event()
        self._process: mp.process.BaseProcess | None = None

    def start(self) -> None:
        self._process = self._ctx.Process(
            target=self.target, name="telecare-worker", daemon=True,
            args=(self.settings, self._stop, os.getpid(), logging.getLogger().getEffectiveLevel(),
                  logs.is_json()))
        with _ctrl_c_ignored():
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


@contextlib.contextmanager
def _ctrl_c_ignored() -> Iterator[None]:
    """Ctrl-C ignored while the worker is spawned. The terminal sends it to the worker too, which ignores it once
    its entry runs (the ingest process stops it in order); while the new interpreter was still importing, it printed
    a KeyboardInterrupt traceback. An ignored signal stays ignored across exec, and Python leaves it so. Only the
    main thread may change a handler: a restart from the watch thread goes without."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
