"""A thread that consumes one partition's feed under one fencing epoch: the partition's loop
(:class:`gateway.cluster.partition.PartitionLoop`) and its readings store's (:class:`gateway.cluster.entries.
StoreLoop`) share this life.

Until stopped, it checks that the worker still owns the partition under its epoch (in a transaction of its own),
opens its feed and consumes it. A lost lease ends it for good (the worker learns it at its next tick); any other
failure closes the feed and starts again after a back-off, from a feed that delivers again whatever was not
acknowledged.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from gateway.backoff import Backoff
from gateway.cluster.errors import LeaseLost
from gateway.cluster.leases import still_owner
from gateway.cluster.stream import PartitionFeed

if TYPE_CHECKING:
    from gateway.cluster.partition import PartitionContext

__all__ = ["PartitionThread"]

log = logging.getLogger(__name__)


class PartitionThread:
    """:meth:`start`, :meth:`signal_stop`, :meth:`stop`; :attr:`ended` once it stopped for good. Subclasses say how
    to open the feed (:meth:`open_feed`), what one round of consuming is (:meth:`consume`) and what a failure costs
    them (:meth:`failed`)."""

    role = "partition"  # in the thread's name and the logs
    retry = Backoff(first_s=0.5, cap_s=30.0)  # wall seconds before starting again after a failure

    def __init__(self, context: PartitionContext, partition: int, epoch: int) -> None:
        self.context = context
        self.partition = partition
        self.epoch = epoch
        self.lease_lost: LeaseLost | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self.run, name=f"{self.role}-{partition}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def signal_stop(self) -> None:
        """Stop after the round in hand, without waiting for it."""
        self._stop.set()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Finish the round in hand, then stop."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout_s)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def ended(self) -> bool:
        return self._stop.is_set() or self.lease_lost is not None or not self._thread.is_alive()

    def open_feed(self) -> PartitionFeed:
        raise NotImplementedError

    def consume(self, feed: PartitionFeed) -> int:
        """One round: how many messages it took (a round that took some ends a run of failures)."""
        raise NotImplementedError

    def failed(self, error: Exception, delay_s: float) -> None:
        """A round failed with ``error``; the thread starts again in ``delay_s``."""
        log.warning("%s %d: %s; starting again in %.1f s", self.role, self.partition, error, delay_s)

    def run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            feed: PartitionFeed | None = None
            try:
                with self.context.sessions.begin() as session:
                    # Only the partition's owner replaces its consumers: checked just before, in a transaction of
                    # its own. Holding the lease row's lock while NATS answered (seconds, during a server's
                    # failover) held up the keeper's renewals, and partitions moved for nothing. An old owner paused
                    # between the check and the call may still replace the new owner's consumer: the new owner's
                    # next fetch fails and it starts again from a fresh one, while the old owner can commit (so
                    # acknowledge) nothing.
                    still_owner(session, self.partition, self.context.worker_id, self.epoch)
                feed = self.open_feed()
                while not self._stop.is_set():
                    if self.consume(feed):
                        failures = 0
            except LeaseLost as e:
                self.lease_lost = e
                log.warning("%s %d: %s; stopped, nothing of the round acknowledged", self.role, self.partition, e)
                return
            except Exception as e:
                failures += 1
                delay = self.retry.delay_s(failures)
                self.failed(e, delay)
                self._stop.wait(delay)
            finally:
                if feed is not None:
                    self.context.link.close_partition(feed)
