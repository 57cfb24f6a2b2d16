"""Ingest: MQTT messages in, journal entries committed, then acknowledged to the broker.

The MQTT callback only calls :meth:`Ingest.offer` (append to a deque). One thread parses batches, commits them
to the journal in one transaction and only then acknowledges each message. A malformed message becomes a dead
letter in the same batch: it is acknowledged too (redelivering it cannot help) and never holds up its neighbours.

A hub's clock never costs a reading (DESIGN.md, "Time"): a reading whose last_seen is too far ahead is journaled at
receipt time with its skew (see ``gateway.contract``); once a batch is committed its skews go to the clock watch
(``gateway.hub_clocks``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

from gateway.admission import Admission
from gateway.clock import Clock
from gateway.contract import CLOCK_TOPIC, DEFAULT_LIMITS, Limits, Message, parse
from gateway.journal import Journal
from gateway.logs import about
from gateway.metrics import IngestMetrics
from gateway.quotas import HomeQuotas
from gateway.reading_facts import ReadingFacts

log = logging.getLogger(__name__)

Ack = Callable[[int, int], None]  # (mid, qos)


class Ingest:
    def __init__(self, journal: Journal, clock: Clock, metrics: IngestMetrics, *, root: str = "telecare",
                 limits: Limits = DEFAULT_LIMITS, batch_max: int = 5000, linger_s: float = 0.02,
                 clock_check_s: float = 60.0, quotas: HomeQuotas | None = None,
                 facts: ReadingFacts | None = None) -> None:
        self.journal = journal
        self.clock = clock
        self.metrics = metrics
        self.root = root
        self.limits = limits
        self.batch_max = batch_max
        self.linger_s = linger_s
        self.ack: Ack = lambda mid, qos: None
        self._pending: deque[tuple[int, int, str, bytes, int]] = deque()
        self._wake = threading.Event()
        # Parsing, quotas, and each reading's device kind and activity, decided once here and journaled with it.
        self.admission = Admission(metrics, facts or ReadingFacts(states=journal.device_states()), root=root,
                                   limits=limits, quotas=quotas, clock_check_s=clock_check_s, logger=log)
        self.clock_watch = self.admission.clock_watch
        self.facts = self.admission.facts

    def offer(self, mid: int, qos: int, topic: str, payload: bytes) -> None:
        """Called from the MQTT network thread: keep it thin."""
        if topic == CLOCK_TOPIC:  # moves simulated time before the messages behind it are stamped
            tick = parse(topic, payload, 0, 0)
            if type(tick) is Message:
                self._tick(tick.time_ms, tick.body["speed"])
        self._pending.append((mid, qos, topic, payload, self.clock.now_ms()))
        if not self._wake.is_set():
            self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._pending)

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            if not self._pending:
                self._wake.wait(0.5)
                self._wake.clear()
                try:
                    self.forget_when_asked()  # a quiet gateway forgets too, not only at its next reading
                except Exception:
                    log.exception("forgetting device states failed; trying again")
                    stop.wait(1.0)
                continue
            if self.journal.is_full():
                self.metrics.journal_full.set(1)
                stop.wait(0.2)  # the broker holds what we do not acknowledge
                continue
            self.metrics.journal_full.set(0)
            if len(self._pending) < self.batch_max and self.linger_s:
                time.sleep(self.linger_s)  # wall time on purpose: batching is about the machine, not the data
            try:
                self.step()
            except Exception:
                log.exception("journal commit failed; nothing acknowledged, retrying")
                stop.wait(1.0)
        try:
            self.step()  # commit and acknowledge what already arrived
        except Exception:
            log.exception("journal commit failed at shutdown; the broker will send those messages again")

    def step(self) -> int:
        """Parse, commit and acknowledge up to one batch; returns how many messages it took."""
        pending = self._pending
        if not pending:
            return 0
        self.forget_when_asked()  # before judging the batch (and taking it: a failure here keeps it whole)
        taken = [pending.popleft() for _ in range(min(len(pending), self.batch_max))]
        admitted = self.admission.admit([(topic, payload, received_ms)
                                         for _mid, _qos, topic, payload, received_ms in taken], self.clock.now_ms())
        try:
            self.journal.append(admitted.entries, admitted.urgent, self.facts.pending())
        except BaseException:
            pending.extendleft(reversed(taken))  # not committed: keep them, in order, for the next try
            self.admission.rolled_back()
            raise
        self.admission.committed(admitted)
        ack = self.ack
        for mid, qos, *_ in taken:
            if qos:
                ack(mid, qos)
        self.metrics.received.inc(len(taken))
        self.metrics.journaled.inc(len(admitted.entries))
        self.metrics.journal_entries.set(self.journal.kept())
        return len(taken)

    def forget_when_asked(self) -> None:
        """Forget the device states the worker asked to (their home's person cared for changed, or was erased):
        from memory, then from the journal's file. Before each batch (its readings of those homes are judged
        afresh), and between batches (:meth:`run`), so a quiet gateway forgets too. A failed commit leaves the
        requests for the next call; memory forgetting twice is no harm."""
        forget = self.journal.forget_requests()
        if not forget:
            return
        homes = {home for _, home in forget}
        self.facts.forget(homes)
        self.journal.forget(forget)
        for home in sorted(homes):
            log.info("home %s: its device states are forgotten (the person cared for changed, or was erased)", home,
                     extra=about(home=home))

    def _tick(self, time_ms: int, speed: float) -> None:
        if not self.clock.tick(time_ms, speed):
            log.warning("a simulator clock tick arrived but this gateway follows the wall clock; ignored")
