"""A gateway worker in cluster mode: its share of the partitions, and a turn at dispatching.

One process, run on as many machines as wanted (docs/scale-out.md). Every :data:`~gateway.cluster.keeper.
TICK_INTERVAL_S` the :class:`~gateway.cluster.keeper.LeaseKeeper` renews this worker's leases and takes or gives up
partitions to keep the share fair; a :class:`~gateway.cluster.partition.PartitionLoop` runs for each partition
owned, started when gained and stopped when lost. The alert dispatcher runs in every worker, and sends in one only:
the one holding its PostgreSQL advisory lock (:class:`gateway.alerting.guards.DispatcherLock`), woken through
PostgreSQL's NOTIFY when another worker's detectors raise an alert; when that worker dies, PostgreSQL ends its
connection, the lock is free, and another worker's dispatcher takes over within a second or so, its escalation
timers being rows in the database. The cluster's chores (the retention purge, the forgetting of a former resident's
device states, the dead-letter retention, the watchdog) run in one worker at a time likewise, the holder of the
housekeeping role (:mod:`gateway.cluster.housekeeping`).

A clean stop finishes each partition's batch in hand (committed and acknowledged, or neither), then releases the
leases, so the other workers take the partitions at their next tick rather than after the leases' TTL.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Gauge

from analytics.alerts import AlertEvent
from gateway.alerting.dispatcher import Dispatcher
from gateway.cluster.housekeeping import Housekeeping
from gateway.cluster.keeper import LeaseKeeper, Ownership
from gateway.cluster.partition import PartitionContext, PartitionLoop
from gateway.cluster.stream_identity import adopt_stream
from gateway.metrics import IngestMetrics, WorkerMetrics

__all__ = ["ClusterWorker"]

log = logging.getLogger(__name__)

FULL_AT = 0.99  # JetStream counts as full past this share of its storage: a message more may be refused


class ClusterMetrics:
    """What only cluster mode has: the backlog of ``$MQTT_msgs``, and this worker's share of the partitions."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.stream_messages = Gauge(
            "telecare_stream_messages", "Messages in $MQTT_msgs not yet acknowledged (all partitions)",
            registry=r)
        self.stream_bytes = Gauge("telecare_stream_bytes", "Bytes $MQTT_msgs holds", registry=r)
        self.stream_full = Gauge("telecare_stream_full", "1 while the account's JetStream storage is (nearly) "
                                 "full: the NATS servers do not PUBACK new hub messages (0 when the account has no "
                                 "limit of its own: then see the servers' /jsz)", registry=r)
        self.entries_waiting = Gauge(
            "telecare_store_entries_waiting", "Decided entries not yet written to the readings store (all partitions): "
            "grows while the store is away", registry=r)
        self.partitions_owned = Gauge("telecare_partitions_owned", "Partitions this worker consumes", registry=r)
        self.housekeeping = Gauge("telecare_housekeeping", "1 while this worker holds the housekeeping role (purge, "
                                  "forgetting, dead letters, watchdog): one worker of the cluster", registry=r)
        self.full = False  # as telecare_stream_full says, for /healthz


@dataclass
class ClusterWorker:
    """Parts built for it by the composition root (``telecare.cluster``): :meth:`run` until ``stop`` is set."""

    keeper: LeaseKeeper
    context: PartitionContext
    dispatcher: Dispatcher
    metrics: WorkerMetrics
    ingest_metrics: IngestMetrics
    housekeeping: Housekeeping | None = None  # the cluster's chores, while this worker holds their role
    metrics_port: int | None = None  # serve /metrics and /healthz here (0: any free port)
    metrics_host: str = "127.0.0.1"
    cluster_metrics: ClusterMetrics = field(default_factory=ClusterMetrics)
    loops: dict[int, PartitionLoop] = field(default_factory=dict)
    _stopping: list[PartitionLoop] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.context.on_alerts = self.alerted
        self.served_port: int | None = None

    @property
    def worker_id(self) -> str:
        return self.keeper.worker_id

    @property
    def owned(self) -> Mapping[int, int]:
        """Partition to epoch, of the partitions this worker consumes now."""
        # A copy first: the observer thread reads this while the keeper's loop changes the loops.
        return {p: loop.epoch for p, loop in list(self.loops.items()) if not loop.ended}

    def alerted(self, events: list[AlertEvent]) -> None:
        """A partition's detectors committed alert events: count them, and wake the dispatcher that sends: this
        worker's, or through PostgreSQL's NOTIFY another worker's (:mod:`gateway.alerting.wakeups`)."""
        for e in events:
            self.metrics.alert_events.labels(str(e.action), str(e.kind)).inc()
        self.dispatcher.wake()

    def run(self, stop: threading.Event) -> None:
        link = self.context.link
        link.start()
        self.context.entries.ensure()
        if link.created is not None:
            with self.context.sessions.begin() as session:
                adopt_stream(session, link.options.name, link.created)
        for registry in (self.metrics.registry, self.cluster_metrics.registry):  # one /metrics for all
            self.ingest_metrics.registry.register(registry)
        self.ingest_metrics.add_health_check(
            "broker", lambda: None if link.connected else "not connected to the NATS servers")
        self.ingest_metrics.add_health_check(  # no journal: the stream is the hand-off
            "journal", lambda: "JetStream's storage is full: the NATS servers refuse new hub messages"
            if self.cluster_metrics.full else None)
        if self.metrics_port is not None:
            self.served_port = self.ingest_metrics.serve(self.metrics_port, self.metrics_host)
            log.info("metrics on http://%s:%d/metrics", self.metrics_host, self.served_port)
        threads = [threading.Thread(target=self.dispatcher.run, name="dispatcher", daemon=True, args=(stop,)),
                   # The backlog gauges and the consumers' tidying ask NATS, which takes up to its request timeout
                   # per question while a server fails over: apart from the keeper, so the leases are renewed on
                   # time meanwhile (they lapsed, and partitions moved for nothing, when both shared this loop).
                   threading.Thread(target=self._observe_until, name="observer", daemon=True, args=(stop,))]
        if self.housekeeping is not None:
            threads.append(threading.Thread(target=self.housekeeping.run, name="housekeeping", daemon=True,
                                            args=(stop,)))
        for t in threads:
            t.start()
        log.info("worker %s: cluster mode, %d partitions", self.worker_id, self.context.partitions)
        try:
            while not stop.is_set():
                self.reconcile(self.keeper.tick())
                self.cluster_metrics.partitions_owned.set(len(self.owned))
                stop.wait(self.keeper.tick_interval)
        finally:
            self._shut_down(threads)

    def reconcile(self, ownership: Ownership) -> None:
        """Stop the loops of partitions lost (without waiting: their commits fail the fencing check from now on),
        start loops for those gained, and start again any loop that ended on a lost lease while still owned."""
        for partition in ownership.lost:
            loop = self.loops.pop(partition, None)
            if loop is not None:
                loop.signal_stop()
                self._stopping.append(loop)
        for partition, epoch in ownership.owned.items():
            loop = self.loops.get(partition)
            if loop is not None and loop.epoch == epoch and (loop.alive or loop.lease_lost is not None):
                continue  # running; or it found its lease gone, which the keeper learns at its next tick
            if loop is not None:
                self._stopping.append(loop)
            self.loops[partition] = PartitionLoop(self.context, partition, epoch)
            self.loops[partition].start()
        self._stopping = [loop for loop in self._stopping if loop.alive]

    def _observe_until(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.observe()
            stop.wait(self.keeper.tick_interval)

    def observe(self) -> None:
        """The stream's backlog and this worker's partitions, as gauges (a failed look keeps the last values); and
        the consumers older owners left on this worker's partitions deleted."""
        m = self.cluster_metrics
        m.housekeeping.set(1 if self.housekeeping is not None and self.housekeeping.holding else 0)
        try:
            messages, size = self.context.link.stream_backlog()
            share = self.context.link.storage_share()
            waiting = self.context.entries.backlog()
            stale = self.context.link.tidy(self.owned)
        except Exception as e:  # the servers away: the broker health check says so
            log.info("the stream's backlog not read: %s", e)
            return
        if stale:
            log.info("consumers of older owners deleted: %s", ", ".join(stale))
        m.stream_messages.set(messages)
        m.stream_bytes.set(size)
        m.entries_waiting.set(waiting)
        m.full = share is not None and share >= FULL_AT
        m.stream_full.set(1 if m.full else 0)

    def _shut_down(self, threads: list[threading.Thread]) -> None:
        for loop in [*self.loops.values(), *self._stopping]:
            loop.signal_stop()
        for loop in [*self.loops.values(), *self._stopping]:
            loop.stop()
        self.loops.clear()
        self._stopping.clear()
        self.keeper.stop()  # after the loops: their last commits still passed the fencing check
        for t in threads:
            t.join(timeout=30)
        self.context.link.close()
        self.context.store.close()
        log.info("worker %s stopped; its partitions released", self.worker_id)
