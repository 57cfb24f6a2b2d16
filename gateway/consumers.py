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

from gateway.clock import Clock
from gateway.journal import Entry, Journal
from gateway.metrics import WorkerMetrics

log = logging.getLogger(__name__)


class Consumer(Protocol):
    name: str

    def handle(self, entries: Sequence[Entry]) -> None:
        """Handle a batch durably, or raise to have the same batch retried later."""
        ...


class Backoff:
    def __init__(self, first_s: float = 0.5, most_s: float = 60.0) -> None:
        self.first_s = first_s
        self.most_s = most_s
        self.next_s = first_s

    def failed(self) -> float:
        delay = self.next_s
        self.next_s = min(self.most_s, self.next_s * 2)
        return delay

    def succeeded(self) -> None:
        self.next_s = self.first_s


def run_consumer(journal: Journal, consumer: Consumer, clock: Clock, metrics: WorkerMetrics, stop: threading.Event,
                 *, batch_max: int = 5000, idle_s: float = 0.05, backoff: Backoff | None = None) -> None:
    backoff = backoff or Backoff()
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
            delay = max(backoff.failed(), getattr(e, "retry_after", None) or 0)  # honour Retry-After
            log.warning("%s: batch of %d failed (%s); retrying in %.1f s", consumer.name, len(entries), e, delay)
            clock.wait(stop, delay)
            continue
        backoff.succeeded()
        journal.advance(consumer.name, entries[-1].seq)
