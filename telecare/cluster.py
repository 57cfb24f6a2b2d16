"""Cluster mode's worker built from settings (``TELECARE_NATS_URL`` set): the parts of a
:class:`gateway.cluster.worker.ClusterWorker` chosen and connected, as :mod:`telecare.processes` does for one
machine. The readings store, the notifier, the dispatcher's options and the detectors are the same ones."""

from __future__ import annotations

from gateway.alerting.dispatcher import Dispatcher, dispatcher_options
from gateway.alerting.notifiers import make_notifier
from gateway.clock import Clock, WallClock
from gateway.cluster import ClusterConfigError, LeaseKeeper, require_postgresql
from gateway.cluster.entries import EntryStream
from gateway.cluster.housekeeping import Housekeeping, build_cluster_watchdog, cluster_chores, housekeeping_lock
from gateway.cluster.partition import PartitionContext
from gateway.cluster.stream import JetStreamLink, StreamOptions
from gateway.cluster.worker import FULL_AT, ClusterWorker
from gateway.config import Settings
from gateway.contract import Limits
from gateway.db.migrate import upgrade
from gateway.db.session import make_engine, make_session_factory
from gateway.device_table import DeviceTable
from gateway.metrics import IngestMetrics, WorkerMetrics
from gateway.purge import RetentionPurge
from gateway.quotas import QuotaLimits
from gateway.retention import DeadLetterLimits, DeadLetterRetention
from gateway.stores.readings import reading_store_for

__all__ = ["build_cluster_worker"]

CLUSTER_POOL_SIZE = 5  # kept open (SQLAlchemy's default): PostgreSQL's connections are shared by every process
CLUSTER_POOL_OVERFLOW = 13  # opened for a while; 3 more than the default for the connections a worker holds


def build_cluster_worker(settings: Settings, *, worker_id: str | None = None, clock: Clock | None = None,
                         stream: StreamOptions | None = None, fetch_wait_s: float = 0.5) -> ClusterWorker:
    """A worker for ``settings``; :class:`ClusterConfigError` (a sentence) when cluster mode cannot run so. The
    database is migrated first (workers starting together take turns)."""
    if not settings.nats_servers:
        raise ClusterConfigError("cluster mode needs TELECARE_NATS_URL: comma-separated nats:// server URLs")
    require_postgresql(settings.database_url)
    if settings.clock == "simulated":
        raise ClusterConfigError("cluster mode follows the wall clock: the simulator's clock topic is outside every "
                                 "partition; unset TELECARE_CLOCK, or run the simulation on one machine")
    upgrade(settings.database_url)
    # Connections held for as long as the worker runs (its liveness lock, the dispatcher's and the housekeeping's
    # locks, the dispatcher's LISTEN) come from this pool too, besides each owned partition's commits: room for
    # them above SQLAlchemy's default 5 (+10), but no more (a larger pool ran a loaded test machine's PostgreSQL
    # out of connections).
    sessions = make_session_factory(make_engine(settings.database_url, pool_size=CLUSTER_POOL_SIZE,
                                                max_overflow=CLUSTER_POOL_OVERFLOW))
    clock = clock or WallClock()
    metrics, ingest_metrics = WorkerMetrics(), IngestMetrics()
    store = reading_store_for(settings)
    dispatcher = Dispatcher(sessions, make_notifier(settings), clock, metrics=metrics,
                            **dispatcher_options(settings))
    batch_max = settings.batch_max
    options = stream or StreamOptions(partitions=settings.nats_partitions,
                                      max_ack_pending=max(2 * batch_max, 1000))
    keeper = LeaseKeeper(sessions, worker_id=worker_id, partitions=settings.nats_partitions)
    link = JetStreamLink(settings.nats_servers, options, name=f"telecare-{keeper.worker_id}")
    context = PartitionContext(
        link=link, entries=EntryStream(link),
        sessions=sessions, clock=clock, store=store, devices=DeviceTable(sessions), metrics=metrics,
        ingest_metrics=ingest_metrics, worker_id=keeper.worker_id, partitions=settings.nats_partitions,
        root=settings.mqtt_topic_root,
        limits=Limits(max_payload_bytes=settings.max_payload_bytes, max_future_ms=settings.max_future_s * 1000),
        quota_limits=QuotaLimits(settings.quota_devices_per_home, settings.quota_new_devices_per_hour,
                                 settings.quota_dead_letters_per_hour),
        batch_max=batch_max, fetch_wait_s=fetch_wait_s)
    retention = DeadLetterRetention(
        sessions, clock, DeadLetterLimits(max_age_days=settings.dead_letter_max_age_days,
                                          max_rows=settings.dead_letter_max_rows,
                                          max_per_home=settings.dead_letter_max_per_home),
        metrics)
    purge = RetentionPurge(sessions, clock, store, metrics=metrics,
                           dead_letter_max_age_days=settings.dead_letter_max_age_days)
    watchdog = build_cluster_watchdog(settings, sessions, clock, link, context.entries.name, FULL_AT)
    housekeeping = Housekeeping(housekeeping_lock(sessions),
                                cluster_chores(sessions, purge=purge, retention=retention, watchdog=watchdog))
    return ClusterWorker(keeper, context, dispatcher, metrics, ingest_metrics, housekeeping,
                         metrics_port=settings.metrics_port, metrics_host=settings.metrics_host)
