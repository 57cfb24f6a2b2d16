"""Prometheus metrics of one gateway, in a registry of its own so several can live in one test process."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.received = Counter("telecare_messages_received", "MQTT messages received", registry=r)
        self.journaled = Counter("telecare_messages_journaled",
                                 "Messages durably handed off to the journal (then acknowledged)", registry=r)
        self.rejected = Counter("telecare_messages_rejected", "Messages dead-lettered, by reason", ["reason"],
                                registry=r)
        self.ignored = Counter("telecare_messages_ignored", "Messages inside the contract with no use here",
                               registry=r)
        self.stored = Counter("telecare_readings_stored", "Points written to the readings store", registry=r)
        self.dropped = Counter("telecare_points_refused",
                               "Points the readings store refused as invalid (logged)", registry=r)
        self.write_seconds = Histogram("telecare_store_write_seconds", "Readings store write latency",
                                       buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10), registry=r)
        self.spool_depth = Gauge("telecare_spool_depth",
                                 "Journal entries not yet written to the readings store", registry=r)
        self.consumer_lag = Gauge("telecare_consumer_lag", "Journal entries a consumer has still to take",
                                  ["consumer"], registry=r)
        self.consumer_errors = Counter("telecare_consumer_errors", "Failed consumer batches (retried)",
                                       ["consumer"], registry=r)
        self.store_up = Gauge("telecare_store_up", "1 while the readings store accepts writes", registry=r)
        self.journal_entries = Gauge("telecare_journal_entries", "Entries kept in the journal", registry=r)
        self.journal_full = Gauge("telecare_journal_full",
                                  "1 while the journal is full and acknowledgements are paused", registry=r)
        self.mqtt_connected = Gauge("telecare_mqtt_connected", "1 while connected and subscribed to the broker",
                                    registry=r)

    def serve(self, port: int, addr: str = "0.0.0.0") -> int:
        """Serve /metrics; returns the port (useful with port 0)."""
        server, _thread = start_http_server(port, addr=addr, registry=self.registry)
        return int(server.server_port)
