"""The decided entries of a partition, handed to its readings store on a stream of their own, so the store never
holds up the detectors (on one machine the journal gives each consumer its own position; here the stream does).

The partition loop (:mod:`gateway.cluster.partition`) decides a batch (kinds, activity), publishes its entries to
``telecare-entries.<P>`` before the registry and the detectors see them, and acknowledges the hub messages only after
those committed. A :class:`StoreLoop` per owned partition, started and stopped with the partition's loop, consumes
them and writes the readings store, holding its batch and retrying with back-off while the store is away: the
detectors go on meanwhile, and the entries wait in the stream.

* **Work-queue retention, file storage, the replicas of** ``$MQTT_msgs``: an entry stays until the store loop wrote it.
  The disk bound is JetStream's (``max_file_store``); past it a publish fails, the batch is not acknowledged, and the
  hub messages wait in ``$MQTT_msgs``.
* **Published first, de-duplicated.** Entries are published before the registry and the detectors commit, so the
  store receives the batch as it was first decided: a batch decided again after a failure (its activity decided from
  the devices' states after it) is a duplicate, dropped by JetStream's duplicate window (``Nats-Msg-Id``: the
  partition and the first and last entry numbers of each message). A batch delivered again cut otherwise, or after
  the window, is written again: the same points (a point's identity is its measurement, tags and event time, and
  both readings stores keep a point's first activity mark).
* **One consumer per partition and owner** (``store-<P>-e<epoch>``). A work-queue stream allows one consumer per
  subject: a new owner deletes the old one first, then makes its own (waiting up to ``HANDOVER_WAIT_S`` for the
  deletion to apply), which starts at the oldest entry not written. Both after the fencing check, as the
  partition's consumer.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Sequence

import orjson
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import APIError, NotFoundError

from gateway.backoff import Backoff
from gateway.cluster.errors import ClusterConfigError
from gateway.cluster.partition_thread import PartitionThread
from gateway.cluster.stream import Delivery, JetStreamLink, PartitionFeed
from gateway.journal import Entry
from gateway.writer import StoreWriter

__all__ = ["ENTRIES_STREAM", "EntryStream", "StoreLoop", "entries_subject"]

log = logging.getLogger(__name__)

ENTRIES_STREAM = "TELECARE_ENTRIES"
ENTRIES_PREFIX = "telecare-entries"
CHUNK_BYTES = 512 * 1024  # a message's entries at most: under nats-server's default max_payload (1 MB)
DUPLICATE_WINDOW_S = 300.0  # a batch decided again within this is dropped as a duplicate
STORE_RETRY = Backoff(first_s=0.5, cap_s=30.0)
WORK_QUEUE_CONSUMER_NOT_UNIQUE = 10100  # nats-server's JSConsumerWQConsumerNotUniqueErr
HANDOVER_WAIT_S = 2.0  # how long a new owner's store consumer waits for the old one's deletion to apply
HANDOVER_POLL_S = 0.1


def entries_subject(partition: int) -> str:
    return f"{ENTRIES_PREFIX}.{partition}"


def store_consumer_name(partition: int, epoch: int) -> str:
    return f"store-{partition}-e{epoch}"


class EntryStream:
    """The entries stream on the worker's NATS link."""

    def __init__(self, link: JetStreamLink, name: str = ENTRIES_STREAM) -> None:
        self.link = link
        self.name = name

    def ensure(self) -> None:
        """Create the stream or bring it to this configuration; :class:`ClusterConfigError` (a sentence) when the
        servers refuse."""
        config = StreamConfig(name=self.name, subjects=[f"{ENTRIES_PREFIX}.*"], retention=RetentionPolicy.WORK_QUEUE,
                              storage=StorageType.FILE, num_replicas=self.link.replicas,
                              duplicate_window=DUPLICATE_WINDOW_S)

        async def ensure() -> None:
            js = self.link.jetstream()
            try:
                current = (await js.stream_info(self.name)).config
            except NotFoundError:
                await js.add_stream(config)
                return
            if (current.subjects, current.num_replicas, current.duplicate_window) != (
                    config.subjects, config.num_replicas, config.duplicate_window):
                await js.update_stream(config)

        try:
            self.link.call(ensure(), self.link.options.request_timeout_s)
        except APIError as e:
            raise ClusterConfigError(f"the NATS servers refused the entries stream {self.name} ({self.link.replicas} "
                                     f"replica(s), work-queue retention): {e.description or e}") from None

    def publish(self, partition: int, entries: Sequence[Entry]) -> None:
        """Store ``entries`` in the stream (JetStream acknowledged each message), in order."""
        async def publish() -> None:
            js = self.link.jetstream()
            for chunk in _chunks(entries):
                msg_id = f"{partition}:{chunk[0].seq}:{chunk[-1].seq}"
                await js.publish(entries_subject(partition), orjson.dumps([list(e) for e in chunk]),
                                 stream=self.name, headers={"Nats-Msg-Id": msg_id})

        if entries:
            self.link.call(publish(), 2 * self.link.options.request_timeout_s)

    def backlog(self) -> int:
        """Entries not written to the readings store yet (all partitions)."""
        async def count() -> int:
            return int((await self.link.jetstream().stream_info(self.name)).state.messages)

        return self.link.call(count(), self.link.options.request_timeout_s)

    def open(self, partition: int, epoch: int) -> PartitionFeed:
        """This owner's consumer of the partition's entries: the others deleted first (a work queue allows one)."""
        async def open_feed() -> PartitionFeed:
            js = self.link.jetstream()
            name = store_consumer_name(partition, epoch)
            for info in await js.consumers_info(self.name):
                if info.name.startswith(f"store-{partition}-e") and info.name != name:
                    with contextlib.suppress(NotFoundError):
                        await js.delete_consumer(self.name, info.name)
            o = self.link.options
            config = ConsumerConfig(
                name=name, durable_name=name, filter_subject=entries_subject(partition),
                deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.EXPLICIT, ack_wait=o.ack_wait_s,
                max_ack_pending=o.max_ack_pending, max_deliver=-1)
            for attempt in itertools.count(1):
                try:
                    await js.add_consumer(self.name, config)
                    break
                except APIError as e:
                    # The deleted consumer is still there until the stream's replicas applied the deletion, and
                    # until then a work queue refuses a second consumer of the subject: wait for it, briefly.
                    if e.err_code != WORK_QUEUE_CONSUMER_NOT_UNIQUE or attempt * HANDOVER_POLL_S >= HANDOVER_WAIT_S:
                        raise
                    await asyncio.sleep(HANDOVER_POLL_S)
            return PartitionFeed(partition, name, await js.pull_subscribe_bind(durable=name, stream=self.name))

        return self.link.call(open_feed(), 3 * self.link.options.request_timeout_s)


def _chunks(entries: Sequence[Entry]) -> list[list[Entry]]:
    out: list[list[Entry]] = [[]]
    size = 0
    for e in entries:
        encoded = len(orjson.dumps(list(e)))
        if out[-1] and size + encoded > CHUNK_BYTES:
            out.append([])
            size = 0
        out[-1].append(e)
        size += encoded
    return out


def decoded(deliveries: Sequence[Delivery]) -> list[Entry]:
    return [Entry(*fields) for d in deliveries for fields in orjson.loads(d.payload)]


class _NoBacklog:
    """The writer's backlog gauge: the stream's backlog is the worker's ``telecare_stream_messages``."""

    def lag(self, consumer: str) -> int:
        return 0


class StoreLoop(PartitionThread):
    """Writes one partition's entries to the readings store, under one fencing epoch, in a thread. Its consumer is
    replaced as the partition's own is (:class:`~gateway.cluster.partition_thread.PartitionThread`); an old owner
    that slips in between writes the same points again and acknowledges entries already decided: harmless."""

    role = "store"
    _writer: StoreWriter  # made at each start (open_feed)
    retry = STORE_RETRY

    def open_feed(self) -> PartitionFeed:
        c = self.context
        self._writer = StoreWriter(c.store, _NoBacklog(), c.metrics, c.clock, c.devices)  # fresh at each start
        return c.entries.open(self.partition, self.epoch)

    def consume(self, feed: PartitionFeed) -> int:
        c = self.context
        deliveries = c.link.fetch(feed, max(1, c.batch_max // 10), c.fetch_wait_s)
        if deliveries:
            self._write(deliveries)
            c.link.ack(deliveries)
        return len(deliveries)

    def _write(self, deliveries: Sequence[Delivery]) -> None:
        """Write the batch, retrying with back-off while the store is away (the entries wait, told in progress so
        they are not delivered again meanwhile); gives up only when stopped."""
        entries = decoded(deliveries)
        failures = 0
        touched = time.monotonic()
        while True:
            try:
                self._writer.handle(entries)
                return
            except Exception as e:
                failures += 1
                delay = STORE_RETRY.delay_s(failures)
                log.warning("partition %d: readings not stored (%s); retrying in %.1f s", self.partition, e, delay)
                if self._stop.wait(delay):
                    raise
                if time.monotonic() - touched > self.context.link.options.ack_wait_s / 3:
                    self.context.link.in_progress(deliveries)
                    touched = time.monotonic()
