"""Journal consumers: each takes batches after its own position, handles them, then advances.

A failed batch is retried with exponential back-off on the gateway's clock; its position does not move, so
nothing is skipped. A consumer that cannot make progress holds the journal's trim point: the journal fills, the
gateway stops acknowledging, and the metrics show which consumer lags.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Protocol

from gateway.backoff import Backoff
from gateway.clock import Clock
from gateway.journal import Entry, Journal
from gateway.metrics import WorkerMetrics

log = logging.getLogger(__name__)

#: A failed batch waits 0.5 s, then 1, 2 ... at most a minute, and never less than a store's Retry-After.
RETRY = Backoff(first_s=0.5, cap_s=60.0)


class Consumer(Protocol):
    name: str

    def handle(self, entries: Sequence[Entry]) -> None:
        """Handle a batch durably, or raise to have the same batch retried later."""
        ...


def run_consumer(journal: Journal, consumer: Consumer, clock: Clock, metrics: WorkerMetrics, stop: threading.Event,
                 *, batch_max: int = 5000, idle_s: float = 0.05, backoff: Backoff = RETRY) -> None:
    failures = 0
    journal.register(consumer.name)
    lag = metrics.consumer_lag.labels(consumer.name)
    errors = metrics.consumer_errors.labels(consumer.name)
    while not stop.is_set():
        entries = journal.read(consumer.name, batch_max)
        lag.set(journal.lag(consumer.name))
        if not entries:
            stop.wait(idle_s)  # wall time: polling the journal is about the machine, not the data
            continue
        try:
            consumer.handle(entries)
        except Exception as e:
            errors.inc()
            failures += 1
            delay = backoff.delay_s(failures, getattr(e, "retry_after", None))  # a store's Retry-After is heard
            log.warning("%s: batch of %d failed (%s); retrying in %.1f s", consumer.name, len(entries), e, delay)
            clock.wait(stop, delay)
            continue
        failures = 0
        journal.advance(consumer.name, entries[-1].seq)
