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
  subject: a new owner deletes the old one first, then makes its own, which starts at the oldest entry not written.
  Both under the fencing check, as the partition's consumer.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import orjson
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import APIError, NotFoundError

from gateway.backoff import Backoff
from gateway.cluster.errors import ClusterConfigError, LeaseLost
from gateway.cluster.leases import still_owner
from gateway.cluster.stream import Delivery, JetStreamLink, PartitionFeed
from gateway.journal import Entry
from gateway.writer import StoreWriter

if TYPE_CHECKING:
    from gateway.cluster.partition import PartitionContext

__all__ = ["ENTRIES_STREAM", "EntryStream", "StoreLoop", "entries_subject"]

log = logging.getLogger(__name__)

ENTRIES_STREAM = "TELECARE_ENTRIES"
ENTRIES_PREFIX = "telecare-entries"
CHUNK_BYTES = 512 * 1024  # a message's entries at most: under nats-server's default max_payload (1 MB)
DUPLICATE_WINDOW_S = 300.0  # a batch decided again within this is dropped as a duplicate
STORE_RETRY = Backoff(first_s=0.5, cap_s=30.0)


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
            await js.add_consumer(self.name, ConsumerConfig(
                name=name, durable_name=name, filter_subject=entries_subject(partition),
                deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.EXPLICIT, ack_wait=o.ack_wait_s,
                max_ack_pending=o.max_ack_pending, max_deliver=-1))
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


class StoreLoop:
    """Writes one partition's entries to the readings store, under one fencing epoch, in a thread."""

    def __init__(self, context: PartitionContext, partition: int, epoch: int) -> None:
        self.context = context
        self.partition = partition
        self.epoch = epoch
        self.lease_lost: LeaseLost | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self.run, name=f"store-{partition}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def signal_stop(self) -> None:
        self._stop.set()

    def stop(self, timeout_s: float = 30.0) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout_s)

    def run(self) -> None:
        c = self.context
        failures = 0
        while not self._stop.is_set():
            feed: PartitionFeed | None = None
            try:
                with c.sessions.begin() as session:  # only the owner replaces the partition's store consumer
                    still_owner(session, self.partition, c.worker_id, self.epoch)
                # Outside the check's transaction, as the partition's own consumer (gateway.cluster.partition): the
                # lease row's lock is not held while NATS answers. An old owner that slips in between writes the
                # same points again and acknowledges entries already decided: harmless.
                feed = c.entries.open(self.partition, self.epoch)
                writer = StoreWriter(c.store, _NoBacklog(), c.metrics, c.clock, c.devices)
                while not self._stop.is_set():
                    deliveries = c.link.fetch(feed, max(1, c.batch_max // 10), c.fetch_wait_s)
                    if deliveries:
                        self._write(writer, deliveries)
                        c.link.ack(deliveries)
                        failures = 0
            except LeaseLost as e:
                self.lease_lost = e
                log.warning("partition %d's store: %s; stopped", self.partition, e)
                return
            except Exception as e:
                failures += 1
                delay = STORE_RETRY.delay_s(failures)
                log.warning("partition %d's store: %s; starting again in %.1f s", self.partition, e, delay)
                self._stop.wait(delay)
            finally:
                if feed is not None:
                    c.link.close_partition(feed)

    def _write(self, writer: StoreWriter, deliveries: Sequence[Delivery]) -> None:
        """Write the batch, retrying with back-off while the store is away (the entries wait, told in progress so
        they are not delivered again meanwhile); gives up only when stopped."""
        entries = decoded(deliveries)
        failures = 0
        touched = time.monotonic()
        while True:
            try:
                writer.handle(entries)
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
