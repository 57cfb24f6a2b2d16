"""Which workers are alive: a :class:`~gateway.db.cluster.ClusterWorker` row per worker, renewed on every tick.

The simplest mechanism that is sound with the leases: the same database, the same clock (``now()``), the same TTL.
A worker is alive while its row's ``expires_at`` is in the future; it renews the row in the transaction that renews
its leases, so a worker counts as alive exactly as long as its leases stand, and the survivors share out a dead
worker's partitions as soon as they may take them.
"""

from __future__ import annotations

import os
import secrets
import socket
from datetime import timedelta

from sqlalchemy import Delete, delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from gateway.cluster.errors import ClusterConfigError
from gateway.cluster.leases import expiry
from gateway.db.cluster import WORKER_ID_LEN, ClusterWorker

__all__ = ["FORGET_AFTER", "forget_dead", "join", "leave", "live_workers", "new_worker_id", "renew"]

# Rows of workers dead this long are deleted (every restart is a new worker id, so they would pile up). Long enough
# for an operator looking into a failover to still see who was there.
FORGET_AFTER = timedelta(hours=1)


def new_worker_id() -> str:
    """An id for this worker process, unique across restarts: host name, process id and a random suffix.

    A restarted worker must not inherit its previous incarnation's leases (that one may only be paused, and would
    pass the fencing check under the same id and epoch), so the id is never reused."""
    suffix = f"-{os.getpid()}-{secrets.token_hex(4)}"
    return socket.gethostname()[:WORKER_ID_LEN - len(suffix)] + suffix


def join(session: Session, worker_id: str, partition_count: int, ttl: float) -> None:
    """Enter the cluster (alive for ``ttl`` seconds), or :class:`ClusterConfigError` if a live worker splits the
    stream into a different number of partitions (the two would read different subjects)."""
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
    renew(session, worker_id, partition_count, ttl)


def renew(session: Session, worker_id: str, partition_count: int, ttl: float) -> None:
    """Stay alive for ``ttl`` more seconds (rejoining if the row was forgotten during a long pause)."""
    statement = insert(ClusterWorker).values(worker_id=worker_id, partition_count=partition_count, joined_at=func.now(),
                                        expires_at=expiry(ttl))
    session.execute(statement.on_conflict_do_update(index_elements=[ClusterWorker.worker_id],
                                                    set_={"expires_at": statement.excluded.expires_at}))


def live_workers(session: Session) -> frozenset[str]:
    """The ids of the workers alive now (by the database's clock)."""
    return frozenset(session.scalars(select(ClusterWorker.worker_id).where(ClusterWorker.expires_at > func.now())))


def leave(session: Session, worker_id: str) -> None:
    """Leave the cluster on a clean stop: the others stop counting this worker at once."""
    session.execute(_delete_workers().where(ClusterWorker.worker_id == worker_id))


def forget_dead(session: Session) -> None:
    """Delete the rows of workers dead for :data:`FORGET_AFTER`."""
    session.execute(_delete_workers().where(ClusterWorker.expires_at < func.now() - FORGET_AFTER))


def _delete_workers() -> Delete:
    # The session holds no worker objects to keep in step.
    return delete(ClusterWorker).execution_options(synchronize_session=False)
