"""Prometheus metrics, in registries of their own so several gateways can live in one test process.

The gateway is two processes: ingest (MQTT in, journal, acknowledgements) and a worker (journal consumers:
readings store, registry). The worker writes its metrics to a text file beside the journal every second, as
node_exporter's textfile collector reads them; the ingest process serves both at ``/metrics``.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

HealthCheck = Callable[[], str | None]  # what is wrong, or None
JOURNAL_MIN_FREE_BYTES = 1024 * 1024  # below this a journal commit (batch, WAL growth) is likely to fail


class _QuietHandler(WSGIRequestHandler):
    """Scrapes every few seconds: no access log."""

    def log_message(self, format: str, *args: Any) -> None:  # the base class's parameter name
        pass


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
        # Per-home quotas (gateway.quotas): labelled by quota only, as a label per home would let hostile homes grow
        # the metrics without bound; the home is in the log.
        self.quota_dropped = Counter("telecare_quota_dropped",
                                     "Messages refused by a per-home quota (counted, acknowledged, not stored)",
                                     ["quota"], registry=r)
        # Clock skew (issue 11): a hub's clock never costs a reading, but it is shown.
        self.readings_retimed = Counter(
            "telecare_readings_retimed",
            "Readings stored at receipt time because their last_seen could not be used (future_timestamp: too far "
            "ahead of the gateway's clock; bad_timestamp: a button action with an unusable last_seen)", ["reason"],
            registry=r)
        self.hub_clock_skew = Gauge("telecare_hub_clock_skew_seconds",
                                    "A home's hub clock minus the gateway's, estimated from last_seen (positive: "
                                    "the hub is ahead)", ["home"], registry=r)
        self.hubs_median_clock_skew = Gauge(
            "telecare_hubs_median_clock_skew_seconds",
            "Median of the recently heard hubs' clock skews (NaN with fewer than 3 hubs heard)", registry=r)
        self.gateway_clock_behind = Gauge(
            "telecare_gateway_clock_behind",
            "1 while most recently heard hubs run ahead of the gateway by more than the tolerance", registry=r)
        self.journal_entries = Gauge("telecare_journal_entries", "Entries kept in the journal", registry=r)
        self.journal_full = Gauge("telecare_journal_full",
                                  "1 while the journal is full and acknowledgements are paused", registry=r)
        self.mqtt_connected = Gauge("telecare_mqtt_connected", "1 while connected and subscribed to the broker",
                                    registry=r)
        self.mqtt_connection_failures = Counter(
            "telecare_mqtt_connection_failures",
            "Failed connection attempts and lost connections to the broker, by reason", ["reason"], registry=r)
        self.worker_up = Gauge("telecare_worker_up", "1 while the worker process runs", registry=r)
        self.worker_restarts = Counter("telecare_worker_restarts", "Worker processes restarted after dying",
                                       registry=r)
        # /healthz: each check names what is wrong, or returns None. MqttInput replaces "broker" with its own,
        # which knows why and since when.
        self._health_checks: dict[str, HealthCheck] = {"broker": self._broker_check, "journal": self._journal_check}
        self.spool_dir: Path | None = None  # where the journal lives, once known (see include)

    def include(self, textfile: Path) -> None:
        """Serve the worker's metrics too."""
        self.registry.register(TextfileCollector(textfile))
        self.spool_dir = textfile.parent  # the worker writes its textfile beside the journal (Settings)

    def sample(self, name: str, labels: dict[str, str] | None = None) -> float | None:
        return self.registry.get_sample_value(name, labels or {})

    def add_health_check(self, name: str, check: HealthCheck) -> None:
        """``check()`` returns what is wrong (shown under ``name`` by /healthz), or None when all is well."""
        self._health_checks[name] = check

    def health(self) -> dict[str, str]:
        """What is wrong, by check; empty when healthy. A check that fails is itself a problem."""
        problems: dict[str, str] = {}
        for name, check in list(self._health_checks.items()):
            try:
                problem = check()
            except Exception as e:  # a broken check must not hide the others
                problem = f"health check failed: {type(e).__name__}: {e}"
            if problem:
                problems[name] = problem
        return problems

    def serve(self, port: int, addr: str = "127.0.0.1") -> int:
        """Serve /metrics and /healthz; returns the port (useful with port 0)."""
        metrics_app = make_wsgi_app(self.registry)

        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            if environ.get("PATH_INFO") != "/healthz":
                return metrics_app(environ, start_response)  # type: ignore[no-any-return]
            problems = self.health()
            body = json.dumps({"status": "unhealthy" if problems else "ok", "problems": problems}).encode()
            start_response("503 Service Unavailable" if problems else "200 OK",
                           [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]

        # As prometheus_client's start_http_server, with one more path: a thread per request, quiet log.
        family = socket.getaddrinfo(addr or None, port, type=socket.SOCK_STREAM)[0][0]
        server_class = type("MetricsServer", (ThreadingWSGIServer,), {"address_family": family})
        server: WSGIServer = make_server(addr, port, app, server_class, handler_class=_QuietHandler)
        threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
        return int(server.server_port)

    def _broker_check(self) -> str | None:
        return None if self.sample("telecare_mqtt_connected") == 1 else "not connected to the broker"

    def _journal_check(self) -> str | None:
        if self.sample("telecare_journal_full") == 1:
            return "journal full: acknowledgements paused, the broker keeps the rest"
        if self.spool_dir is None:
            return None
        if not os.access(self.spool_dir, os.W_OK):
            return f"cannot write to the journal's directory {self.spool_dir}"
        stat = os.statvfs(self.spool_dir)
        if stat.f_bavail * stat.f_frsize < JOURNAL_MIN_FREE_BYTES:
            return f"no space left for the journal in {self.spool_dir}"
        return None


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
        # Delivery (issue 11): set by the dispatcher (gateway.alerting.dispatcher).
        self.notifications_oldest_pending = Gauge(
            "telecare_notifications_oldest_pending_seconds",
            "Age of the oldest notification not yet sent (0 when none)", registry=r)
        self.notifications_failed = Counter(
            "telecare_notifications_failed", "Notifications given up, by reason (refused by Pushover, expired "
            "past their retry deadline, internal error)", ["reason"], registry=r)
        self.notifications_fallback = Counter(
            "telecare_notifications_fallback",
            "Notifications sent to the console and log because Pushover refused the application token", registry=r)
        self.alerts_unrouted = Gauge("telecare_alerts_unrouted", "Open alerts with nobody to notify", registry=r)
        self.pushover_token_invalid = Gauge("telecare_pushover_token_invalid",
                                            "1 while Pushover refuses the application token", registry=r)
        self.dispatcher_errors = Counter("telecare_dispatcher_errors", "Dispatcher rounds that failed (retried)",
                                         registry=r)
        # Retention (issue 11): what the worker deletes to keep the disk bounded, and what it keeps.
        self.dead_letters_purged = Counter(
            "telecare_dead_letters_purged", "Dead letters deleted by retention, by rule (age, home, total)",
            ["rule"], registry=r)
        self.dead_letters_kept = Gauge("telecare_dead_letters_kept", "Dead letters kept after the last purge",
                                       registry=r)
        # Retention and privacy (issue 12): the purge of what is past each organisation's retention.
        self.retention_purged = Counter(
            "telecare_retention_purged", "Rows deleted by the retention purge, by kind (alerts, reading_periods, "
            "claims, audit, dead_letters, tokens, login_throttle)", ["kind"], registry=r)
        self.retention_readings_pending = Gauge(
            "telecare_retention_readings_pending",
            "Ended care periods past retention whose readings the store could not delete at the last purge",
            registry=r)
        self.journal_bytes = Gauge("telecare_journal_bytes", "The journal's files on disk (main file and WAL)",
                                   registry=r)

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
