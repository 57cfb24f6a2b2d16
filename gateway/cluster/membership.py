"""Which workers are alive: a :class:`~gateway.db.cluster.ClusterWorker` row per worker, renewed on every tick.

A worker is alive while its row's ``expires_at`` (the database's clock) is in the future, and its partition leases
(:mod:`gateway.cluster.leases`) stand exactly as long: renewing this one row is the heartbeat that keeps them all.
So the survivors share out a dead worker's partitions as soon as they may take them, and a heartbeat never waits
for a lease row that a commit of the worker's own partitions holds locked.
"""

from __future__ import annotations

import os
import secrets
import socket
from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement, Delete, Select, delete, func, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from gateway.alerting.guards import advisory_lock_holders
from gateway.cluster.errors import ClusterConfigError
from gateway.db.cluster import WORKER_ID_LEN, ClusterWorker

__all__ = ["FORGET_AFTER", "expiry", "forget_dead", "join", "leave", "live_worker_ids", "live_workers",
           "new_liveness_key", "new_worker_id", "renew"]

# Rows of workers dead this long are deleted (every restart is a new worker id, so they would pile up). Long enough
# for an operator looking into a failover to still see who was there.
FORGET_AFTER = timedelta(hours=1)


def expiry(ttl: float) -> ColumnElement[Any]:
    """``now() + ttl`` on the database's clock."""
    if ttl <= 0:
        raise ValueError(f"a worker stays alive a positive number of seconds (got {ttl})")
    return func.now() + timedelta(seconds=ttl)


def new_worker_id() -> str:
    """An id for this worker process, unique across restarts: host name, process id and a random suffix.

    A restarted worker must not inherit its previous incarnation's leases (that one may only be paused, and would
    pass the fencing check under the same id and epoch), so the id is never reused."""
    suffix = f"-{os.getpid()}-{secrets.token_hex(4)}"
    return socket.gethostname()[:WORKER_ID_LEN - len(suffix)] + suffix


def join(session: Session, worker_id: str, partition_count: int, ttl: float, liveness_key: int | None = None) -> None:
    """Enter the cluster (alive for ``ttl`` seconds, and while holding ``liveness_key``'s lock if given: see
    :func:`live_worker_ids`), or :class:`ClusterConfigError` if a live worker splits the stream into a different
    number of partitions (the two would read different subjects)."""
    others = session.execute(
        select(ClusterWorker.worker_id, ClusterWorker.partition_count)
        .where(ClusterWorker.expires_at > func.now(), ClusterWorker.worker_id != worker_id,
               ClusterWorker.partition_count != partition_count)
        .order_by(ClusterWorker.worker_id).limit(1)).first()
    if others is not None:
        other, count = others
        raise ClusterConfigError(f"this worker is configured with {partition_count} partitions but worker {other} "
                                 f"runs with {count}: every worker (and the NATS servers' partition mapping) must "
                                 f"use the same number")
    renew(session, worker_id, partition_count, ttl, liveness_key)


def renew(session: Session, worker_id: str, partition_count: int, ttl: float, liveness_key: int | None = None) -> None:
    """Stay alive for ``ttl`` more seconds (rejoining if the row was forgotten during a long pause)."""
    statement = insert(ClusterWorker).values(worker_id=worker_id, partition_count=partition_count, joined_at=func.now(),
                                             expires_at=expiry(ttl), liveness_key=liveness_key)
    session.execute(statement.on_conflict_do_update(
        index_elements=[ClusterWorker.worker_id],
        set_={"expires_at": statement.excluded.expires_at, "liveness_key": statement.excluded.liveness_key}))


def new_liveness_key() -> int:
    """A worker's own advisory lock key: random, positive, 62 bits (apart from the roles' fixed keys by chance
    about one in 10^18)."""
    return secrets.randbits(62)


def live_worker_ids() -> Select[str]:
    """The ids of the workers alive now, as a query to run or to use in another: a worker's row has not expired
    (the database's clock), and if it has a liveness key, the lock is held. A worker's process holds that lock on a
    connection of its own for as long as it runs (:class:`~gateway.cluster.keeper.LeaseKeeper`), so when it dies
    (a crash, ``kill -9``) PostgreSQL ends the connection and the lock at once, and the others take its
    partitions at their next tick rather than when its row expires. A process paused, or a machine gone without
    closing its connections, keeps the lock until the row's expiry (or TCP keepalives) tells."""
    return select(ClusterWorker.worker_id).where(
        ClusterWorker.expires_at > func.now(),
        or_(ClusterWorker.liveness_key.is_(None), advisory_lock_holders(ClusterWorker.liveness_key).exists()))


def live_workers(session: Session) -> frozenset[str]:
    """The ids of the workers alive now (by the database's clock)."""
    return frozenset(session.scalars(live_worker_ids()))


def leave(session: Session, worker_id: str) -> None:
    """Leave the cluster on a clean stop: the others stop counting this worker at once."""
    session.execute(_delete_workers().where(ClusterWorker.worker_id == worker_id))


def forget_dead(session: Session) -> None:
    """Delete the rows of workers dead for :data:`FORGET_AFTER`."""
    session.execute(_delete_workers().where(ClusterWorker.expires_at < func.now() - FORGET_AFTER))


def _delete_workers() -> Delete:
    # The session holds no worker objects to keep in step.
    return delete(ClusterWorker).execution_options(synchronize_session=False)
