"""The hub messages on NATS JetStream, as the cluster worker sees them: a synchronous facade over nats-py.

The NATS servers' mapping puts every hub message on ``telecare-part.<P>.telecare.<home>.<rest>`` (docs/nats/README.md).
The durable hand-off is nats-server's own MQTT stream ``$MQTT_msgs`` (nats-server 2.9.10, server/mqtt.go): for every
QoS 1 PUBLISH (a hub's last will and retained messages included) the server stores a copy on
``$MQTT.msgs.<mapped subject>`` and sends the PUBACK only once that stream acknowledged it. So what a hub was
PUBACKed is there, whoever leads which stream; a stream of our own would receive it without the PUBACK waiting for it
(and lose it during its leader's election, or when full: tests/cluster/test_durability.py). QoS 0 messages have no
copy there and never reach the workers: hubs publish at QoS 1 (docs/scale-out.md, "What a hub must be set to").

* **Interest retention.** ``$MQTT_msgs`` keeps a message until every consumer whose filter matches it acknowledged it,
  and stores nothing that no consumer is interested in. So every partition has a consumer at all times: a worker
  starting makes one for each partition without any (a placeholder, ``part-<P>-e0``) before anything else, and the
  stream itself when no hub has connected yet (nats-server makes it at the first MQTT connection, with the same
  configuration, and adopts one that exists). The disk bound is JetStream's own (``max_file_store`` on the servers):
  when the stream cannot store, there is no PUBACK and the hub keeps the message.
* **One pull consumer per partition and owner:** ``part-<P>-e<epoch>``, filtered on ``$MQTT.msgs.telecare-part.<P>.>``,
  explicit acknowledgement, from the oldest message stored. A worker that gains a partition first makes its own
  consumer, then deletes the others of the partition: deleting first would drop the messages only the old consumer was
  interested in. The new consumer starts at the oldest message still stored; what the old owner acknowledged after it
  was made is delivered again, and skipped by the detectors' checkpoints (the store rewrites the same points). An old
  owner that was only paused then finds its consumer gone: it can neither take messages from the new owner's consumer
  (its fetches name its own), nor commit anything (:func:`gateway.cluster.leases.still_owner`). Consumers of an older
  epoch left behind (a placeholder made by a worker starting during a takeover) are deleted by the owner
  (:meth:`JetStreamLink.tidy`): nothing would ever acknowledge their messages.
* **Replicas:** the stream's, as nats-server sets them (three in a cluster of three); the consumers inherit them.

nats-py is asyncio and the worker is threaded: :class:`JetStreamLink` runs one event loop in a thread of its own, and
its methods submit coroutines to it and wait for their results.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Awaitable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple, TypeVar
from urllib.parse import urlsplit

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import NoServersError
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import APIError, NotFoundError

from gateway.cluster.errors import ClusterConfigError

__all__ = ["MQTT_STREAM", "READINGS_STREAM", "Delivery", "JetStreamLink", "PartitionFeed", "StreamOptions",
           "consumer_name", "home_of", "hub_topic", "partition_filter", "partition_of", "subject_partition", "topic_of"]

log = logging.getLogger(__name__)

MQTT_STREAM = "$MQTT_msgs"  # nats-server 2.9's stream of MQTT QoS 1 messages (server/mqtt.go, mqttStreamName)
MQTT_SUBJECT_PREFIX = "$MQTT.msgs."  # ... and its subjects' prefix (mqttStreamSubjectPrefix)
READINGS_STREAM = MQTT_STREAM  # the stream the workers read
PARTITION_PREFIX = "telecare-part"
PLACEHOLDER_EPOCH = 0  # lease epochs start at 1: a consumer of epoch 0 is owned by nobody yet
CALL_MARGIN_S = 5.0  # a call into the event loop waits this much longer than the NATS request it makes

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class StreamOptions:
    """The stream the workers read and their consumers. ``ack_wait_s``: how long a message delivered to a consumer waits
    for its acknowledgement before the consumer delivers it again (a worker extends it for a long batch);
    ``max_ack_pending``: the most messages a consumer hands out unacknowledged."""

    name: str = MQTT_STREAM
    partitions: int = 16
    ack_wait_s: float = 30.0
    max_ack_pending: int = 20_000
    request_timeout_s: float = 10.0


class Delivery(NamedTuple):
    """One message of the stream as a partition's consumer delivered it."""

    subject: str
    payload: bytes
    seq: int  # the stream sequence: the same for every delivery of the message, and growing within a partition
    stored_ms: int  # when the stream stored it (the servers' clock)
    message: Msg  # for the acknowledgement


class PartitionFeed(NamedTuple):
    partition: int
    consumer: str
    subscription: JetStreamContext.PullSubscription


def partition_filter(partition: int) -> str:
    """The subjects of one partition's hub messages in ``$MQTT_msgs``."""
    return f"{MQTT_SUBJECT_PREFIX}{PARTITION_PREFIX}.{partition}.>"


def partition_of(home: str, partitions: int) -> int:
    """The partition the NATS servers' mapping ``partition(N,1)`` gives a home: FNV-1a (32 bit) of its id, modulo
    the count (nats-server's server/accounts.go, ``getHashPartition``)."""
    digest = 0x811C9DC5
    for byte in home.encode():
        digest = ((digest ^ byte) * 0x01000193) & 0xFFFFFFFF
    return digest % partitions


def _unprefixed(subject: str) -> str:
    """A partition subject without ``$MQTT_msgs``' prefix: as the hub's publish was mapped."""
    return subject[len(MQTT_SUBJECT_PREFIX):] if subject.startswith(MQTT_SUBJECT_PREFIX) else subject


def home_of(subject: str) -> str | None:
    """The home id of a partition subject (``[$MQTT.msgs.]telecare-part.<P>.telecare.<home>.<rest>``), None if it
    has none."""
    parts = _unprefixed(subject).split(".", 4)
    return parts[3] if len(parts) >= 5 and parts[0] == PARTITION_PREFIX and parts[2] == "telecare" else None


def subject_partition(subject: str) -> int | None:
    """The partition a subject is on (``[$MQTT.msgs.]telecare-part.<P>. ...``), None if it is not a partition's."""
    prefix, _, rest = _unprefixed(subject).partition(".")
    partition = rest.partition(".")[0]
    return int(partition) if prefix == PARTITION_PREFIX and partition.isdigit() else None


def consumer_name(partition: int, epoch: int, attempt: int = 0) -> str:
    """``part-<P>-e<epoch>``; ``-r<attempt>`` after it for the consumer that replaces it after a failed batch."""
    return f"part-{partition}-e{epoch}" + (f"-r{attempt}" if attempt else "")


def _consumer_epoch(name: str, partition: int) -> int | None:
    """The epoch of one of ``partition``'s consumers by its name, None for another partition's or another's."""
    prefix = f"part-{partition}-e"
    epoch = name[len(prefix):].partition("-r")[0]
    return int(epoch) if name.startswith(prefix) and epoch.isdigit() else None


def topic_of(subject: str) -> str | None:
    """The MQTT topic a hub published, from its partition subject: ``$MQTT.msgs.telecare-part.2.telecare.h1.a./.b``
    is ``telecare/h1/a//b`` (nats-server turns each ``/`` into ``.`` and an empty level into a ``/`` token). None for
    a subject that is not a partition's."""
    prefix, _, rest = _unprefixed(subject).partition(".")
    _partition, _, rest = rest.partition(".")
    if prefix != PARTITION_PREFIX or not rest:
        return None
    return _as_topic(rest)


def hub_topic(subject: str) -> str:
    """The MQTT topic a hub published to reach ``subject`` as it is, unmapped: a hub that publishes
    ``telecare-part/5/telecare/<home>/x`` itself bypasses the mapping."""
    return _as_topic(_unprefixed(subject))


def _as_topic(subject: str) -> str:
    return "/".join("" if token == "/" else token for token in subject.split("."))


class JetStreamLink:
    """The worker's connection to the NATS servers: ``$MQTT_msgs``, and one pull consumer per owned partition.

    Thread-safe: every call runs on the link's event loop; several partition threads may call at once."""

    def __init__(self, servers: Sequence[str], options: StreamOptions | None = None, *, name: str = "telecare-worker"
                 ) -> None:
        if not servers:
            raise ValueError("cluster mode needs at least one NATS server URL")
        self.servers = list(servers)
        self.options = options or StreamOptions()
        self.name = name
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="nats", daemon=True)
        self._client: Client | None = None
        self._js: JetStreamContext | None = None
        self.created: datetime | None = None  # when the stream was created (its identity)

    @property
    def replicas(self) -> int:
        return 3 if len(self.servers) >= 3 else 1

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.is_connected

    # --- Life ------------------------------------------------------------------------------------------------------

    def start(self, timeout_s: float = 20.0) -> None:
        """Connect, and make sure of the stream and the partitions' consumers (:meth:`ensure_stream`).
        :class:`ConnectionError` (a sentence) when no server
        answers within ``timeout_s``; once connected, a lost connection is retried for ever."""
        if not self._thread.is_alive():
            self._thread.start()
        try:
            self._call(asyncio.wait_for(self._connect(), timeout_s), timeout_s + CALL_MARGIN_S)
        except (TimeoutError, OSError, NoServersError) as e:
            raise ConnectionError(f"no NATS server of {', '.join(_without_password(u) for u in self.servers)} "
                                  f"answered within {timeout_s:.0f} s ({type(e).__name__})") from None
        self.ensure_stream()

    def close(self) -> None:
        if self._client is not None:
            try:
                self._call(self._client.close(), self.options.request_timeout_s)
            except Exception as e:  # closing anyway: unacknowledged messages are delivered again
                log.warning("NATS connection not closed cleanly: %s", e)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    async def _connect(self) -> None:
        async def disconnected() -> None:
            log.warning("NATS: disconnected; reconnecting")

        async def reconnected() -> None:
            log.info("NATS: reconnected to %s", self._client.connected_url if self._client else "?")

        async def error(e: Exception) -> None:
            log.warning("NATS: %s", e)

        self._client = await nats.connect(servers=self.servers, name=self.name, connect_timeout=2,
                                          max_reconnect_attempts=-1, reconnect_time_wait=0.5,
                                          allow_reconnect=True, disconnected_cb=disconnected,
                                          reconnected_cb=reconnected, error_cb=error)
        self._js = self._client.jetstream(timeout=self.options.request_timeout_s)

    # --- The stream --------------------------------------------------------------------------------------------------

    def stream_config(self) -> StreamConfig:
        """``$MQTT_msgs`` as nats-server 2.9.10 makes it (server/mqtt.go, mqttCreateAccountSessionManager): the
        servers adopt it as it is when a worker made it first."""
        return StreamConfig(name=self.options.name, subjects=[f"{MQTT_SUBJECT_PREFIX}>"],
                            retention=RetentionPolicy.INTEREST, storage=StorageType.FILE, num_replicas=self.replicas)

    def ensure_stream(self) -> None:
        """Make sure ``$MQTT_msgs`` exists and every partition has a consumer, before any hub message can be stored
        (interest retention stores nothing no consumer wants); :class:`ClusterConfigError` (a sentence) when the
        servers refuse, or have a ``$MQTT_msgs`` this worker cannot rely on (another nats-server version)."""
        try:
            self._call(self._ensure_stream(), (self.options.partitions + 2) * self.options.request_timeout_s)
        except APIError as e:
            raise ClusterConfigError(
                f"the NATS servers refused the MQTT messages stream {self.options.name} or a consumer of it "
                f"({self.replicas} replica(s), interest retention): {e.description or e}") from None

    async def _ensure_stream(self) -> None:
        js = self._jetstream()
        config = self.stream_config()
        try:
            info = await js.stream_info(self.options.name)
        except NotFoundError:
            info = await js.add_stream(config)  # no hub has connected yet: as the first one's server would
            log.info("NATS: stream %s created before any hub connected (%d replica(s))", config.name,
                     config.num_replicas)
        current = info.config
        if current.retention != RetentionPolicy.INTEREST or current.subjects != config.subjects:
            raise ClusterConfigError(
                f"the NATS servers' {config.name} stream has retention {current.retention} and subjects "
                f"{current.subjects}, not interest on {config.subjects}: the workers need nats-server 2.9's MQTT "
                "messages stream (docs/nats/README.md, \"What a PUBACK means\")")
        self.created = info.created
        await self._placeholders()

    async def _placeholders(self) -> None:
        """A consumer (``part-<P>-e0``) for each partition that has none, so nothing published before the partition
        is owned is dropped; its owner replaces it."""
        js = self._jetstream()
        names = [info.name for info in await js.consumers_info(self.options.name)]
        for partition in range(self.options.partitions):
            if not any(_consumer_epoch(name, partition) is not None for name in names):
                await js.add_consumer(self.options.name, self._consumer_config(partition, PLACEHOLDER_EPOCH))

    def _consumer_config(self, partition: int, epoch: int) -> ConsumerConfig:
        o = self.options
        name = consumer_name(partition, epoch)
        return ConsumerConfig(name=name, durable_name=name, filter_subject=partition_filter(partition),
                              deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.EXPLICIT, ack_wait=o.ack_wait_s,
                              max_ack_pending=o.max_ack_pending, max_deliver=-1)

    def stream_backlog(self) -> tuple[int, int]:
        """What the stream holds now, not yet acknowledged by every consumer: (messages, bytes)."""
        async def state() -> tuple[int, int]:
            info = (await self._jetstream().stream_info(self.options.name)).state
            return info.messages, info.bytes

        return self._call(state(), self.options.request_timeout_s)

    def storage_share(self) -> float | None:
        """The share of the account's JetStream storage in use; None when the account has no limit of its own (the
        servers' ``max_file_store`` is not visible to a client then)."""
        async def share() -> float | None:
            info = await self._jetstream().account_info()
            limit = info.limits.max_storage
            return info.storage / limit if limit and limit > 0 else None

        return self._call(share(), self.options.request_timeout_s)

    # --- Partitions ------------------------------------------------------------------------------------------------

    def open_partition(self, partition: int, epoch: int, attempt: int = 0) -> PartitionFeed:
        """This owner's consumer of ``partition``, made before any other consumer of it is deleted (see the module's
        notes). ``attempt``: how many times the owner started again after a failed batch; each attempt has a
        consumer of its own, which delivers again from the oldest message stored, in order (the one before may
        have handed out messages it will only deliver again after ``ack_wait``)."""
        return self._call(self._open_partition(partition, epoch, attempt), 3 * self.options.request_timeout_s)

    async def _open_partition(self, partition: int, epoch: int, attempt: int) -> PartitionFeed:
        js = self._jetstream()
        name = consumer_name(partition, epoch, attempt)
        config = self._consumer_config(partition, epoch)
        config.name = config.durable_name = name
        await js.add_consumer(self.options.name, config)
        for info in await js.consumers_info(self.options.name):
            if info.name != name and _consumer_epoch(info.name, partition) is not None:
                with contextlib.suppress(NotFoundError):  # deleted meanwhile
                    await js.delete_consumer(self.options.name, info.name)
        subscription = await js.pull_subscribe_bind(durable=name, stream=self.options.name)
        return PartitionFeed(partition, name, subscription)

    def tidy(self, owned: Mapping[int, int]) -> list[str]:
        """Delete the consumers of owned partitions older than the owner's epoch (a placeholder a starting worker
        made during a takeover); returns their names. Only once the owner's own consumer exists (deleting the older
        one first would drop the messages only it wanted), and only older ones: whatever this worker believes, a
        consumer of a later epoch is a newer owner's."""
        async def tidy() -> list[str]:
            js = self._jetstream()
            names = [info.name for info in await js.consumers_info(self.options.name)]
            deleted = []
            for partition, epoch in owned.items():
                epochs = {name: _consumer_epoch(name, partition) for name in names}
                if epoch not in epochs.values():
                    continue  # the owner's consumer is not made yet
                for name, found in epochs.items():
                    if found is not None and found < epoch:
                        with contextlib.suppress(NotFoundError):
                            await js.delete_consumer(self.options.name, name)
                            deleted.append(name)
            return deleted

        return self._call(tidy(), self.options.request_timeout_s * 2)

    def fetch(self, feed: PartitionFeed, batch: int, timeout_s: float) -> list[Delivery]:
        """Up to ``batch`` messages, oldest first; waits at most ``timeout_s`` for the first (then: none)."""
        return self._call(self._fetch(feed, batch, timeout_s), timeout_s + CALL_MARGIN_S)

    async def _fetch(self, feed: PartitionFeed, batch: int, timeout_s: float) -> list[Delivery]:
        try:
            messages = await feed.subscription.fetch(batch, timeout=timeout_s)
        except (TimeoutError, NatsTimeout):  # nats-py raises either when nothing came in time
            return []
        out = []
        for m in messages:
            meta = m.metadata
            out.append(Delivery(m.subject, m.data, meta.sequence.stream,
                                int(meta.timestamp.timestamp() * 1000), m))
        return out

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        """Acknowledge ``deliveries`` (their work committed), and wait until the acknowledgements left for the server.
        One lost on the way is delivered again: its work is then found done."""
        async def ack() -> None:
            for d in deliveries:
                await d.message.ack()
            await self._nats().flush(timeout=round(self.options.request_timeout_s))

        self._call(ack(), self.options.request_timeout_s)

    def in_progress(self, deliveries: Sequence[Delivery]) -> None:
        """Still working on ``deliveries``: their ``ack_wait`` starts again (a long batch is not delivered twice)."""
        async def touch() -> None:
            for d in deliveries:
                await d.message.in_progress()

        self._call(touch(), self.options.request_timeout_s)

    def close_partition(self, feed: PartitionFeed) -> None:
        """Stop reading ``feed``. Its consumer stays: the partition's next owner deletes it and starts its own."""
        try:
            self._call(feed.subscription.unsubscribe(), self.options.request_timeout_s)
        except Exception as e:  # the connection is going anyway
            log.info("NATS: partition %d's subscription not closed cleanly: %s", feed.partition, e)

    # --- For the other streams of the worker (gateway.cluster.entries) --------------------------------------------

    def call(self, work: Awaitable[T], timeout_s: float | None) -> T:
        """Run ``work`` on the link's event loop and wait for its result."""
        return self._call(work, timeout_s)

    def jetstream(self) -> JetStreamContext:
        """The JetStream context, for coroutines run by :meth:`call`."""
        return self._jetstream()

    # --- Inside ------------------------------------------------------------------------------------------------------

    def _nats(self) -> Client:
        if self._client is None:
            raise RuntimeError("the NATS link is not started")
        return self._client

    def _jetstream(self) -> JetStreamContext:
        if self._js is None:
            raise RuntimeError("the NATS link is not started")
        return self._js

    def _call(self, work: Awaitable[T], timeout_s: float | None) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(_awaited(work), self._loop)
        try:
            return future.result(timeout_s)
        except TimeoutError:
            future.cancel()
            raise


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    return url if parts.password is None else url.replace(f":{parts.password}@", ":***@")


async def _awaited(work: Awaitable[T]) -> T:
    return await work

