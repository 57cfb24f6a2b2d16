"""Prometheus metrics, in registries of their own so several gateways can live in one test process.

The gateway is two processes: ingest (MQTT in, journal, acknowledgements) and a worker (journal consumers:
readings store, registry). The worker writes its metrics to a text file beside the journal every second, as
node_exporter's textfile collector reads them; the ingest process serves both at ``/metrics``.
"""

from __future__ import annotations

import os
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, start_http_server
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector


class IngestMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.received = Counter("telecare_messages_received", "MQTT messages received", registry=r)
        self.journaled = Counter("telecare_messages_journaled",
                                 "Messages durably handed off to the journal (then acknowledged)", registry=r)
        self.rejected = Counter("telecare_messages_rejected", "Messages dead-lettered, by reason", ["reason"],
                                registry=r)
        self.ignored = Counter("telecare_messages_ignored", "Messages inside the contract with no use here",
                               registry=r)
        self.journal_entries = Gauge("telecare_journal_entries", "Entries kept in the journal", registry=r)
        self.journal_full = Gauge("telecare_journal_full",
                                  "1 while the journal is full and acknowledgements are paused", registry=r)
        self.mqtt_connected = Gauge("telecare_mqtt_connected", "1 while connected and subscribed to the broker",
                                    registry=r)
        self.worker_up = Gauge("telecare_worker_up", "1 while the worker process runs", registry=r)
        self.worker_restarts = Counter("telecare_worker_restarts", "Worker processes restarted after dying",
                                       registry=r)

    def include(self, textfile: Path) -> None:
        """Serve the worker's metrics too."""
        self.registry.register(TextfileCollector(textfile))

    def sample(self, name: str, labels: dict[str, str] | None = None) -> float | None:
        return self.registry.get_sample_value(name, labels or {})

    def serve(self, port: int, addr: str = "0.0.0.0") -> int:
        """Serve /metrics; returns the port (useful with port 0)."""
        server, _thread = start_http_server(port, addr=addr, registry=self.registry)
        return int(server.server_port)


class WorkerMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.stored = Counter("telecare_readings_stored", "Points written to the readings store", registry=r)
        self.dropped = Counter("telecare_points_refused",
                               "Points the readings store refused as invalid (logged)", registry=r)
        self.write_seconds = Histogram("telecare_store_write_seconds", "Readings store write latency",
                                       buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10), registry=r)
        self.event_age = Histogram(
            "telecare_event_age_at_store_seconds", "Age of a reading's event time when it is stored",
            buckets=(.025, .05, .075, .1, .15, .2, .3, .4, .5, .75, 1, 1.5, 2, 3, 5, 10, 30, 60, 300, 3600),
            registry=r)
        self.spool_depth = Gauge("telecare_spool_depth",
                                 "Journal entries not yet written to the readings store", registry=r)
        self.consumer_lag = Gauge("telecare_consumer_lag", "Journal entries a consumer has still to take",
                                  ["consumer"], registry=r)
        self.consumer_errors = Counter("telecare_consumer_errors", "Failed consumer batches (retried)",
                                       ["consumer"], registry=r)
        self.store_up = Gauge("telecare_store_up", "1 while the readings store accepts writes", registry=r)
        self.alert_events = Counter("telecare_alert_events", "Alerts raised, cleared and notices, by kind",
                                    ["action", "kind"], registry=r)
        self.notifications_pending = Gauge("telecare_notifications_pending",
                                           "Notifications in the outbox not yet sent", registry=r)

    def write_textfile(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(generate_latest(self.registry))
        os.replace(tmp, path)  # readers never see half a file


class TextfileCollector(Collector):
    def __init__(self, path: Path) -> None:
        self.path = path

    def collect(self):  # type: ignore[no-untyped-def]
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return
        yield from text_string_to_metric_families(text)
