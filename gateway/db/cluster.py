"""Cluster mode (issue 15): who is alive, and which worker owns which partition of the hub messages.

* :class:`ClusterWorker`: one row per running gateway worker, renewed on every heartbeat; a worker whose
  ``expires_at`` has passed (by the database's clock), or whose liveness lock is gone, counts as dead.
* :class:`PartitionLease`: one row per partition of the readings stream. ``owner`` holds it for as long as its
  :class:`ClusterWorker` row stands (the database's clock again, so clock skew between machines cannot give a
  partition two owners; and one row to renew, whatever the worker holds); ``epoch`` is the fencing token,
  increased every time the partition changes hands, so a worker whose lease was taken over cannot commit under its
  old one (``gateway.cluster.leases.still_owner``).
* :class:`ClusterDeviceState`: each device's kind and last activity value, from which a reading's activity change
  is decided (``gateway.reading_facts``). On one machine they live in the journal's file; in cluster mode here, so
  that they move with a partition from one worker to the next; each with the home's care epoch it was learned
  under, so that a former resident's are told apart and forgotten.
* :class:`ClusterStream`: the readings stream the workers last used, by its creation time. Detector checkpoints
  record the stream sequence they have seen; a stream deleted and made again starts its sequence afresh, and the
  workers reset those positions rather than skip the new stream's first messages.

Used on PostgreSQL only (cluster mode requires it), but created on every backend so that the schema is one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db.base import DEVICE_NAME_LEN, HOME_ID_LEN, SHORT_LEN, Base

__all__ = ["WORKER_ID_LEN", "ClusterDeviceState", "ClusterStream", "ClusterWorker", "PartitionLease"]

WORKER_ID_LEN = 100  # host name (clipped), process id and a random suffix: gateway.cluster.membership


class ClusterWorker(Base):
    """A gateway worker in cluster mode, alive while ``expires_at`` is in the future (the database's clock) and,
    when it has a ``liveness_key``, while it holds that PostgreSQL advisory lock (``gateway.cluster.membership``:
    a process that dies loses it with its connection, at once).

    ``partition_count`` is the number of partitions the worker was configured with: workers that disagree would
    split the stream differently, so a worker refuses to join a cluster configured otherwise."""

    __tablename__ = "cluster_workers"

    worker_id: Mapped[str] = mapped_column(String(WORKER_ID_LEN), primary_key=True)
    partition_count: Mapped[int] = mapped_column(Integer)
    joined_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    liveness_key: Mapped[int | None] = mapped_column(BigInteger)


class PartitionLease(Base):
    """Who owns one partition of the readings stream, and under which fencing epoch.

    ``owner`` None: free (never taken, or released on a clean stop). A lease whose owner is no longer alive (its
    :class:`ClusterWorker` row expired or gone) may be taken by another worker; until then only its owner releases
    it. The row is never deleted, so ``epoch`` only ever grows."""

    __tablename__ = "partition_leases"

    partition: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    owner: Mapped[str | None] = mapped_column(String(WORKER_ID_LEN))
    epoch: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    acquired_at: Mapped[datetime | None]


class ClusterDeviceState(Base):
    """A device's kind and last activity value (a boolean, a number or a text, as JSON) as the last committed batch
    of its partition left them. Written by the partition's owner, in a transaction that passed its fencing check;
    one row a device, so a home's hub adds at most its device quota."""

    __tablename__ = "cluster_device_states"

    home_id: Mapped[str] = mapped_column(String(HOME_ID_LEN), primary_key=True)
    device: Mapped[str] = mapped_column(String(DEVICE_NAME_LEN), primary_key=True)
    kind: Mapped[str | None] = mapped_column(String(SHORT_LEN))
    value: Mapped[Any] = mapped_column(JSON(none_as_null=True), nullable=True)
    # The home's care epoch (Home.care_epoch) the state was learned under: a state of another epoch is a former
    # resident's, deleted by the housekeeping (gateway.cluster.housekeeping) and never restored by a partition loop.
    care_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class ClusterStream(Base):
    """A JetStream stream the workers consume, and when the NATS servers created it (its identity: a stream
    deleted and made again under the same name has another)."""

    __tablename__ = "cluster_streams"

    name: Mapped[str] = mapped_column(String(SHORT_LEN), primary_key=True)
    created_at: Mapped[datetime]
