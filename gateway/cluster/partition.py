"""One owned partition of the hub messages (``$MQTT_msgs``), handled as one machine handles its journal.

A loop in a thread of its own, for as long as the worker owns the partition under one fencing epoch:

1. fetch a batch from the partition's consumer (:mod:`gateway.cluster.stream`), oldest first;
2. decide it as ingest does (:class:`gateway.admission.Admission`: contract, quotas, device kinds and activity,
   dead letters), each message's receipt time being when the stream stored it, so that a message delivered again
   is decided, timed and stored the same way;
3. publish the entries to the partition's entries stream (:mod:`gateway.cluster.entries`), which the partition's
   :class:`~gateway.cluster.entries.StoreLoop` writes to the readings store at its own pace (a store away holds up
   nothing here), then hand them to the device registry and the detectors, each entry numbered by its message's
   stream sequence (:func:`entry_seq`), so the detectors' checkpoints skip what they have already seen, as after a
   crash on one machine. Button presses first (:meth:`PartitionLoop._presses_first`): each pressed home's entries
   up to its press are fed and committed before the batch, whose feeding then skips them;
4. commit the devices' states in a transaction that passes the fencing check
   (:func:`gateway.cluster.leases.still_owner`), as the detectors' own commit does (their ``before_commit`` hook);
5. only then acknowledge the batch.

Whatever fails (the entries stream refusing, a lost lease, a crash), nothing of the batch is acknowledged. On a
failure the loop starts again from a consumer of its own, which delivers again from the oldest message stored, with
the detectors read again from their checkpoints; on a lost lease it ends (the worker learns it at its next tick), and
whoever owns the partition then takes up from the last acknowledged message.

A worker that dies after step 4 and before its acknowledgement reaches the servers has the batch delivered again:
the detectors skip it (their checkpoints cover it), and its entries, decided again, are dropped as duplicates by the
entries stream (or, cut otherwise or late, written again as the same points). Its readings' activity is then decided
from the devices' states after the batch (a motion seen twice is no change the second time), but the store has the
first decision: both readings stores merge a rewritten point's fields (InfluxDB's duplicate-point rule, the SQLite
store's json_patch), so a point keeps the activity mark its first write gave it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from analytics.alerts import AlertEvent
from analytics.detector import DetectorConfig
from gateway.admission import Admission
from gateway.clock import Clock
from gateway.cluster.device_states import DeviceStates
from gateway.cluster.entries import EntryStream, StoreLoop
from gateway.cluster.errors import LeaseLost
from gateway.cluster.leases import still_owner
from gateway.cluster.partition_thread import PartitionThread
from gateway.cluster.stream import (
    Delivery,
    JetStreamLink,
    PartitionFeed,
    home_of,
    hub_topic,
    partition_of,
    topic_of,
)
from gateway.contract import DEFAULT_LIMITS, Limits
from gateway.db.models import Device
from gateway.detect import DetectorConsumer
from gateway.device_table import DeviceTable
from gateway.heartbeats import HeartbeatFilter
from gateway.journal import Entry, NewEntry
from gateway.metrics import IngestMetrics, WorkerMetrics
from gateway.quotas import HomeQuotas, QuotaLimits
from gateway.reading_facts import ReadingFacts
from gateway.registry import DeviceRegistry
from gateway.stores.readings.base import ReadingStore
from gateway.worker import RegistryConsumer

__all__ = ["CLUSTER_SEQ_BASE", "SEQ_SLOTS", "PartitionContext", "PartitionLoop", "entry_seq"]

log = logging.getLogger(__name__)

# Entry numbers in cluster mode: above any journal's (a home's detector checkpoint from one machine must not cover
# the stream's first messages), and SEQ_SLOTS a message, for the entries one message can give (its own, a quota
# report, a clock report).
CLUSTER_SEQ_BASE = 1 << 52
SEQ_SLOTS = 16
TICK_S = 1.0  # wall seconds between telling the detectors the time when nothing arrives
SUMMARIES_S = 5.0  # wall seconds between writes of closed days' summaries


def entry_seq(stream_seq: int, slot: int = 0) -> int:
    """The journal sequence number of the ``slot``-th entry a stream message gave."""
    return CLUSTER_SEQ_BASE + stream_seq * SEQ_SLOTS + slot


@dataclass
class PartitionContext:
    """What every partition loop of a worker shares."""

    link: JetStreamLink
    entries: EntryStream
    sessions: sessionmaker[Session]
    clock: Clock
    store: ReadingStore
    devices: DeviceTable
    metrics: WorkerMetrics
    ingest_metrics: IngestMetrics
    worker_id: str
    partitions: int
    root: str = "telecare"
    limits: Limits = DEFAULT_LIMITS
    quota_limits: QuotaLimits = field(default_factory=QuotaLimits)
    detector_config: DetectorConfig | None = None
    on_alerts: Callable[[list[AlertEvent]], None] | None = None
    batch_max: int = 1000
    fetch_wait_s: float = 0.5  # how long a fetch waits for the first message
    stored_time: bool = True  # receipt time = when the stream stored the message (False: the clock's now)


class PartitionLoop(PartitionThread):
    """Handles one partition under one epoch, in a thread (:class:`~gateway.cluster.partition_thread.
    PartitionThread`), beside its readings store's :class:`~gateway.cluster.entries.StoreLoop`."""

    def __init__(self, context: PartitionContext, partition: int, epoch: int) -> None:
        super().__init__(context, partition, epoch)
        self.quotas = HomeQuotas(context.quota_limits, load_known=self._known_devices)  # kept across restarts
        self._ticked_at = self._summarised_at = self._touched_at = 0.0
        self._attempt = 0  # consumers opened: each start after a failure reads from a consumer of its own
        self.store_loop = StoreLoop(context, partition, epoch)  # the partition's readings store, at its own pace
        self._errors = context.metrics.consumer_errors.labels(f"partition-{partition}")
        self._fresh()

    # --- Life ------------------------------------------------------------------------------------------------------

    def start(self) -> None:
        super().start()
        self.store_loop.start()

    def signal_stop(self) -> None:
        super().signal_stop()
        self.store_loop.signal_stop()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Finish the batch in hand (committed and acknowledged, or neither), then stop."""
        self.store_loop.signal_stop()
        super().stop(timeout_s)
        self.store_loop.stop(timeout_s)

    def open_feed(self) -> PartitionFeed:
        feed = self.context.link.open_partition(self.partition, self.epoch, self._attempt)
        self._attempt += 1
        log.info("partition %d: consuming under epoch %d", self.partition, self.epoch)
        return feed

    def failed(self, error: Exception, delay_s: float) -> None:
        self._errors.inc()
        log.warning("partition %d: batch failed (%s); nothing acknowledged, starting again in %.1f s",
                    self.partition, error, delay_s, exc_info=True)
        self._fresh()

    # --- One batch ---------------------------------------------------------------------------------------------

    def consume(self, feed: PartitionFeed) -> int:
        """Fetch, handle, commit and acknowledge one batch; returns how many messages it took."""
        c = self.context
        deliveries = c.link.fetch(feed, c.batch_max, c.fetch_wait_s)
        if not deliveries:
            self._idle()
            return 0
        self._touched_at = time.monotonic()
        now_ms = c.clock.now_ms()
        self._follow_care()
        self._learn({home for d in deliveries if (home := home_of(d.subject)) is not None})
        admitted = self.admission.admit(
            [(self._topic(d.subject), d.payload, d.stored_ms if c.stored_time else now_ms) for d in deliveries],
            now_ms)
        entries = _numbered(admitted.entries, admitted.sources, deliveries)
        try:
            # The store's copy first, as first decided (see gateway.cluster.entries); the store loop writes it.
            c.entries.publish(self.partition, entries)
            self._presses_first(entries, admitted.urgent)
            for consumer in (self.registry, self.detect):
                consumer.handle(entries)
                self._keep_alive(deliveries)
            self._commit_states()
        except BaseException:
            self.admission.rolled_back()
            raise
        self.admission.committed(admitted)
        c.link.ack(deliveries)
        c.ingest_metrics.received.inc(len(deliveries))
        c.ingest_metrics.journaled.inc(len(entries))
        if len(deliveries) < c.batch_max:  # caught up: time passes for the homes that said nothing
            self._idle()
        return len(deliveries)

    def _presses_first(self, entries: Sequence[Entry], urgent: Sequence[int]) -> None:
        """The batch's button presses ahead of the rest of it, as one machine takes them ahead of its journal
        (:mod:`gateway.presses_first`): feeding a full batch (a backlog, after a takeover) takes seconds, and a press
        would wait for all of it. Each pressed home's entries up to its press are fed and committed now, through the
        same fencing check as every commit of the detectors; the batch's feeding skips them (the home's checkpoint
        covers them). A home's detectors see only its own readings, so they still take them in order. Nothing is
        acknowledged before the batch's end either way: a failure after this has the batch delivered again, and its
        presses found done, as after a crash.

        Only within the batch in hand: a press further on in the stream waits for the batches before it, whose
        messages are not decided yet (their devices' states and quotas are the partition's, batch by batch)."""
        upto: dict[str, int] = {}
        for index in urgent:
            home = entries[index].home
            if home is not None:
                upto[home] = index
        for home, last in upto.items():
            self.detect.catch_up(home, entries[:last + 1])

    def _topic(self, subject: str) -> str:
        """The topic to decide a message by. A home's messages belong on its own partition only: one on another
        (its hub published ``telecare-part/<P>/telecare/<home>/...`` itself, bypassing the mapping) is decided by
        the topic the hub published, which the contract refuses (a dead letter, ``bad_topic``), lest a hub put its
        own readings out of order on a partition whose owner does not hold its home's state."""
        home = home_of(subject)
        if home is None or partition_of(home, self.context.partitions) != self.partition:
            return hub_topic(subject)
        return topic_of(subject) or hub_topic(subject)

    def _idle(self) -> None:
        """Caught up (a backlog is old news: its readings must be seen before "now"): tell the detectors the time
        now and then, so a home gone quiet is judged while others still talk, and write the days they closed."""
        self._follow_care()
        now = time.monotonic()
        if now - self._ticked_at >= TICK_S:
            self._ticked_at = now
            self.detect.tick(self.context.clock.now_ms())
        if now - self._summarised_at >= SUMMARIES_S:
            self._summarised_at = now
            try:
                self.detect.flush_summaries(self.context.store)
            except LeaseLost:
                raise
            except Exception as e:  # the store away: the days wait in the detectors' state
                log.warning("partition %d: daily summaries not written (%s); retrying", self.partition, e)

    def _keep_alive(self, deliveries: Sequence[Delivery]) -> None:
        """A long batch tells the servers it is still at work, before its messages' ack_wait runs out."""
        if time.monotonic() - self._touched_at > self.context.link.options.ack_wait_s / 3:
            self.context.link.in_progress(deliveries)
            self._touched_at = time.monotonic()

    def _commit_states(self) -> None:
        """The devices' states the batch changed, in a transaction that passes the fencing check: every
        acknowledgement follows one, whatever the batch held."""
        with self.context.sessions.begin() as session:
            self.device_states.save(session, self.admission.facts.pending())
            self._fence(session, set())

    # --- State -----------------------------------------------------------------------------------------------------

    def _fresh(self) -> None:
        """Everything learned in memory forgotten: the detectors, devices' states and homes are read again from
        what was committed (a failed batch may have left them ahead of it)."""
        c = self.context
        self.admission = Admission(c.ingest_metrics, ReadingFacts(c.devices), root=c.root, limits=c.limits,
                                   quotas=self.quotas)
        self.detect = DetectorConsumer(c.sessions, c.clock, config=c.detector_config, on_alerts=c.on_alerts,
                                       devices=c.devices, before_commit=self._fence, owns=self._owns)
        self.registry = RegistryConsumer(DeviceRegistry(c.sessions), HeartbeatFilter())
        self.device_states = DeviceStates(c.sessions)
        self._ticked_at = self._summarised_at = time.monotonic()

    def _learn(self, homes: set[str]) -> None:
        """The committed devices' states and known devices of homes not seen since the loop (re)started."""
        learned = self.device_states.learn(homes)
        self.admission.facts.restore(learned.states)
        for home, names in learned.known.items():
            self.quotas.seed(home, names)

    def _follow_care(self) -> None:
        """Homes whose resident changed or was erased since their states were learned: forgotten from memory (the
        housekeeping deletes their rows), and learned again, as a new home's, at their next message."""
        changed = self.device_states.moved_on()
        if changed:
            self.admission.facts.forget(changed)
            log.info("partition %d: device states of %d home(s) forgotten: their care changed", self.partition,
                     len(changed))

    def _known_devices(self, home: str) -> list[str]:
        with self.context.sessions() as session:
            return list(session.scalars(select(Device.name).where(Device.home_id == home)))

    def _fence(self, session: Session, _homes: set[str]) -> None:
        still_owner(session, self.partition, self.context.worker_id, self.epoch)

    def _owns(self, home: str) -> bool:
        return partition_of(home, self.context.partitions) == self.partition


def _numbered(entries: Sequence[NewEntry], sources: Sequence[int], deliveries: Sequence[Delivery]) -> list[Entry]:
    """Entries numbered by their messages' stream sequences (:func:`entry_seq`), a slot each within a message."""
    slots: dict[int, int] = {}
    out = []
    for entry, source in zip(entries, sources, strict=True):
        slot = slots.get(source, 0)
        slots[source] = slot + 1
        out.append(Entry(entry_seq(deliveries[source].seq, slot), *entry))
    return out
