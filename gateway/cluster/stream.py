"""The readings stream on NATS JetStream, as the cluster worker sees it: a synchronous facade over nats-py.

The NATS servers' mapping puts every hub message on ``telecare-part.<P>.telecare.<home>.<rest>`` (docs/nats/README.md).
One stream captures every partition subject; it is the durable hand-off that the local journal is on one machine.

* **Work-queue retention, bounded by bytes, discard new.** A message stays until its partition's owner acknowledges
  it (after the readings store, the registry and the detectors committed it), so the stream holds exactly the
  backlog. When that backlog fills ``max_bytes`` the servers refuse new messages rather than drop old ones (a hub's
  PUBACK does not say so: docs/nats/README.md), and the metrics show the stream full.
* **Replicas:** three when at least three servers are configured, else one.
* **One pull consumer per partition and owner:** ``part-<P>-e<epoch>``, filtered on the partition's subjects, explicit
  acknowledgement. A worker that gains a partition deletes whatever consumer the partition had and creates its own,
  which starts at the oldest message not acknowledged (work queue: acknowledged ones are gone), at once, without
  waiting for the old owner's ``ack_wait``. An old owner that was only paused then finds its consumer gone: it can
  neither take messages from the new owner's consumer (its fetches name its own), nor acknowledge anything (its
  commits fail the fencing check anyway, :func:`gateway.cluster.leases.still_owner`). The new owner so reads the
  partition in order from its last acknowledged message.

nats-py is asyncio and the worker is threaded: :class:`JetStreamLink` runs one event loop in a thread of its own, and
its methods submit coroutines to it and wait for their results.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Awaitable, Sequence
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
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import APIError, NotFoundError

from gateway.cluster.errors import ClusterConfigError

__all__ = ["READINGS_STREAM", "Delivery", "JetStreamLink", "PartitionFeed", "StreamOptions", "consumer_name",
           "home_of", "partition_filter", "partition_of", "topic_of"]

log = logging.getLogger(__name__)

READINGS_STREAM = "TELECARE_READINGS"
PARTITION_PREFIX = "telecare-part"
GIB = 1024 ** 3
CALL_MARGIN_S = 5.0  # a call into the event loop waits this much longer than the NATS request it makes

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class StreamOptions:
    """The readings stream and its consumers. ``ack_wait_s``: how long a message delivered to a consumer waits
    for its acknowledgement before the consumer delivers it again (a worker extends it for a long batch);
    ``max_ack_pending``: the most messages a consumer hands out unacknowledged."""

    name: str = READINGS_STREAM
    partitions: int = 16
    max_bytes: int = 10 * GIB
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
    """The subjects of one partition's hub messages."""
    return f"{PARTITION_PREFIX}.{partition}.telecare.>"


def partition_of(home: str, partitions: int) -> int:
    """The partition the NATS servers' mapping ``partition(N,1)`` gives a home: FNV-1a (32 bit) of its id, modulo
    the count (nats-server's server/accounts.go, ``getHashPartition``)."""
    digest = 0x811C9DC5
    for byte in home.encode():
        digest = ((digest ^ byte) * 0x01000193) & 0xFFFFFFFF
    return digest % partitions


def home_of(subject: str) -> str | None:
    """The home id of a partition subject (``telecare-part.<P>.telecare.<home>.<rest>``), None if it has none."""
    parts = subject.split(".", 4)
    return parts[3] if len(parts) >= 5 and parts[2] == "telecare" else None


def consumer_name(partition: int, epoch: int) -> str:
    return f"part-{partition}-e{epoch}"


def topic_of(subject: str) -> str | None:
    """The MQTT topic a hub published, from its partition subject: ``telecare-part.2.telecare.h1.a./.b`` is
    ``telecare/h1/a//b`` (nats-server turns each ``/`` into ``.`` and an empty level into a ``/`` token). None for a
    subject that is not a partition's."""
    prefix, _, rest = subject.partition(".")
    _partition, _, rest = rest.partition(".")
    if prefix != PARTITION_PREFIX or not rest:
        return None
    return "/".join("" if token == "/" else token for token in rest.split("."))


class JetStreamLink:
    """The worker's connection to the NATS servers: the readings stream, and one pull consumer per owned partition.

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
        self.created: datetime | None = None  # when the servers created the readings stream (its identity)

    @property
    def replicas(self) -> int:
        return 3 if len(self.servers) >= 3 else 1

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.is_connected

    # --- Life ------------------------------------------------------------------------------------------------------

    def start(self, timeout_s: float = 20.0) -> None:
        """Connect and create or update the readings stream. :class:`ConnectionError` (a sentence) when no server
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
        o = self.options
        return StreamConfig(name=o.name, subjects=[f"{PARTITION_PREFIX}.*.telecare.>"],
                            retention=RetentionPolicy.WORK_QUEUE, storage=StorageType.FILE,
                            num_replicas=self.replicas, max_bytes=o.max_bytes, discard=DiscardPolicy.NEW)

    def ensure_stream(self) -> None:
        """Create the readings stream, or bring an existing one to this configuration (idempotent);
        :class:`ClusterConfigError` (a sentence) when the servers refuse (an existing stream of another retention,
        subjects another stream already captures, too little JetStream storage for ``max_bytes`` ...)."""
        try:
            self._call(self._ensure_stream(), self.options.request_timeout_s)
        except APIError as e:
            raise ClusterConfigError(
                f"the NATS servers refused the readings stream {self.options.name} ({self.replicas} replica(s), "
                f"{self.options.max_bytes} bytes, work-queue retention): {e.description or e}") from None

    async def _ensure_stream(self) -> None:
        js = self._jetstream()
        config = self.stream_config()
        try:
            info = await js.stream_info(self.options.name)
        except NotFoundError:
            info = await js.add_stream(config)
            log.info("NATS: readings stream %s created (%d replica(s))", config.name, config.num_replicas)
        self.created = info.created
        current = info.config
        if (current.subjects, current.num_replicas, current.max_bytes, current.discard) != (
                config.subjects, config.num_replicas, config.max_bytes, config.discard):
            await js.update_stream(config)
            log.info("NATS: readings stream %s updated (%d replica(s))", config.name, config.num_replicas)

    def stream_backlog(self) -> tuple[int, int]:
        """What the stream holds now, not yet acknowledged: (messages, bytes)."""
        async def state() -> tuple[int, int]:
            info = (await self._jetstream().stream_info(self.options.name)).state
            return info.messages, info.bytes

        return self._call(state(), self.options.request_timeout_s)

    # --- Partitions ------------------------------------------------------------------------------------------------

    def open_partition(self, partition: int, epoch: int) -> PartitionFeed:
        """This owner's consumer of ``partition``: any other consumer of it deleted, a new one from the oldest
        message not acknowledged (see the module's notes)."""
        return self._call(self._open_partition(partition, epoch), 3 * self.options.request_timeout_s)

    async def _open_partition(self, partition: int, epoch: int) -> PartitionFeed:
        js = self._jetstream()
        o = self.options
        name = consumer_name(partition, epoch)
        prefix = f"part-{partition}-e"
        for info in await js.consumers_info(o.name):
            if info.name.startswith(prefix):
                with contextlib.suppress(NotFoundError):  # deleted meanwhile
                    await js.delete_consumer(o.name, info.name)
        config = ConsumerConfig(name=name, durable_name=name, filter_subject=partition_filter(partition),
                                deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.EXPLICIT,
                                ack_wait=o.ack_wait_s, max_ack_pending=o.max_ack_pending, max_deliver=-1)
        await js.add_consumer(o.name, config)
        subscription = await js.pull_subscribe_bind(durable=name, stream=o.name)
        return PartitionFeed(partition, name, subscription)

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

