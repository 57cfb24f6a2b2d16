"""Partition leases in the operational database (PostgreSQL): who owns each partition, and under which epoch.

A lease is a :class:`~gateway.db.cluster.PartitionLease` row naming its owner. It stands for as long as its owner
is alive, that is while the owner's :class:`~gateway.db.cluster.ClusterWorker` row has not expired
(:mod:`gateway.cluster.membership`): a worker stays alive, and keeps every lease it holds, by renewing that one row.
The heartbeat never touches the lease rows, so it never waits for them: the fencing check below locks a lease row
in every commit of the partition's work, and renewals that had to update those rows queued behind the commits (and,
on a loaded machine, timed out, so that leases lapsed and partitions moved for nothing).

Every time is the database's (``now()``), never a worker's, so clock skew between machines cannot make two workers
believe they own one partition. ``now()`` is the start of the transaction: a transaction that waited judges others'
leases as of then (later takeovers, never earlier), so the error is always on the safe side.

The fencing ``epoch`` grows every time a partition changes hands. A worker processes a partition under the epoch
it acquired it with and calls :func:`still_owner` inside the transaction that commits what it did; if the lease was
taken over meanwhile (the worker was paused, or lost the database for longer than its TTL), that transaction fails
and the messages are never acknowledged, so the new owner's redelivered copy is the one that counts.

Every function runs in the caller's transaction (a :class:`~sqlalchemy.orm.Session`); the caller commits.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Update, func, or_, select, text, update
from sqlalchemy.orm import Session

from gateway.cluster.errors import LeaseLost
from gateway.cluster.membership import live_worker_ids
from gateway.db.cluster import PartitionLease
from gateway.db.upserts import insert_ignore

__all__ = ["FENCE_HOLD_LIMIT_S", "acquire", "ensure_partitions", "held", "owners", "release", "still_owner"]

# How long a transaction that passed the fencing check may then sit idle before PostgreSQL ends its session. The
# check locks the lease row until the commit, and others skip locked rows when acquiring (they never wait), so a
# worker stopped (SIGSTOP) between its check and its commit would keep the partition from moving for as long as it
# is stopped; with this limit the server cuts it off, its commit fails, and the partition moves once its owner's
# membership has expired. Well under the TTL (9 s); a normal commit follows its check within milliseconds.
FENCE_HOLD_LIMIT_S = 5.0


def ensure_partitions(session: Session, count: int) -> None:
    """A (free) lease row for each of partitions ``0 .. count-1`` that has none; existing rows are left alone."""
    if count < 1:
        raise ValueError(f"the stream has at least one partition (got {count})")
    rows = [{"partition": partition, "epoch": 0} for partition in range(count)]
    insert_ignore(session, PartitionLease.__table__, rows, ["partition"])


def held(session: Session, worker_id: str) -> dict[int, int]:
    """The partitions ``worker_id`` holds, with their epochs: those nobody took from it, whether or not it was
    alive all along (a lapse nobody used is no change of hands: nobody else processed the partition meanwhile,
    taking it would have changed the epoch, so the worker may go on under the same one). Reads without locking."""
    rows = session.execute(select(PartitionLease.partition, PartitionLease.epoch)
                           .where(PartitionLease.owner == worker_id))
    return {partition: epoch for partition, epoch in rows}


def owners(session: Session) -> dict[int, str]:
    """The owner of every partition whose owner is alive; free partitions and those of dead workers are left out."""
    rows = session.execute(select(PartitionLease.partition, PartitionLease.owner)
                           .where(PartitionLease.owner.in_(live_worker_ids())))
    return {partition: owner for partition, owner in rows if owner is not None}


def acquire(session: Session, worker_id: str, partitions: Iterable[int]) -> dict[int, int]:
    """Take those of ``partitions`` that are free or whose owner is no longer alive; what was taken, with the new
    epochs (each one more than the partition's last). The lease stands while ``worker_id`` stays alive.

    Which partitions to ask for (a fair share) is :func:`gateway.cluster.assignment.plan_for`'s decision. Rows
    locked by another transaction (being taken by another worker, or fenced by their owner's commit) are skipped
    rather than waited for: the next tick tries again. Two workers acquiring at once never both get a partition:
    the row lock makes the second see the first's lease."""
    wanted = sorted(set(partitions))
    if not wanted:
        return {}
    takeable = session.scalars(
        select(PartitionLease.partition)
        .where(PartitionLease.partition.in_(wanted),
               or_(PartitionLease.owner.is_(None), PartitionLease.owner.not_in(live_worker_ids())))
        .order_by(PartitionLease.partition)
        .with_for_update(skip_locked=True)).all()
    if not takeable:
        return {}
    rows = session.execute(_update_leases().where(PartitionLease.partition.in_(takeable))
                           .values(owner=worker_id, epoch=PartitionLease.epoch + 1, acquired_at=func.now())
                           .returning(PartitionLease.partition, PartitionLease.epoch))
    return {partition: epoch for partition, epoch in rows}


def release(session: Session, worker_id: str, partitions: Iterable[int] | None = None) -> frozenset[int]:
    """Give up ``partitions`` (all of the worker's when None), so another worker may take them at once rather than
    once this worker is judged dead; the partitions that were released (those ``worker_id`` still held).

    The caller stops processing them first, or accepts that its commits on them now fail :func:`still_owner`."""
    condition = PartitionLease.owner == worker_id
    if partitions is not None:
        wanted = sorted(set(partitions))
        if not wanted:
            return frozenset()
        condition = condition & PartitionLease.partition.in_(wanted)
    rows = session.scalars(_update_leases().where(condition).values(owner=None, acquired_at=None)
                           .returning(PartitionLease.partition))
    return frozenset(rows)


def still_owner(session: Session, partition: int, worker_id: str, epoch: int) -> None:
    """The fencing check: raise :class:`~gateway.cluster.errors.LeaseLost` unless ``worker_id`` still owns
    ``partition`` under ``epoch``. Call it inside the transaction that commits the partition's work, just before
    committing.

    The lease row stays locked (``FOR SHARE``) until that transaction ends, so nobody can take the partition over
    between the check and the commit: either the commit lands before the takeover, or the takeover happened first
    and this raises. A lease whose owner lapsed but that nobody took is still the owner's (see :func:`held`).
    The transaction may then sit idle for :data:`FENCE_HOLD_LIMIT_S` at most (see there)."""
    session.execute(text("SELECT set_config('idle_in_transaction_session_timeout', :limit, true)"),
                    {"limit": f"{round(FENCE_HOLD_LIMIT_S * 1000)}ms"})
    row = session.execute(select(PartitionLease.owner, PartitionLease.epoch)
                          .where(PartitionLease.partition == partition).with_for_update(read=True)).one_or_none()
    if row is None:
        raise LeaseLost(partition, worker_id, epoch, owner=None, current_epoch=None)
    owner, current_epoch = row
    if owner != worker_id or current_epoch != epoch:
        raise LeaseLost(partition, worker_id, epoch, owner=owner, current_epoch=current_epoch)


def _update_leases() -> Update:
    # The session holds no lease objects to keep in step: rows are only ever read back with RETURNING.
    return update(PartitionLease).execution_options(synchronize_session=False)
