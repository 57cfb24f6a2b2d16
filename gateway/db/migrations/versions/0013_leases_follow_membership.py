"""Cluster mode: a partition lease stands while its owner is alive; it has no expiry of its own.

A worker used to renew every lease it held on each heartbeat, updating the lease rows that its own commits lock for
their fencing check, so renewals queued behind those commits and, on a loaded machine, timed out: leases lapsed and
partitions moved for nothing. Now the heartbeat renews the worker's ``cluster_workers`` row only, and a lease is
taken over once its owner's row has expired (``gateway.cluster.leases``). Leases held when this runs stand for as
long as their owners' rows do, as before.

``cluster_workers.liveness_key``: the PostgreSQL advisory lock a worker holds on a connection of its own while it
runs. A process that dies loses it with that connection at once, so the others count it dead at their next tick
rather than when its row expires (``gateway.cluster.membership``). NULL: judged by the row's expiry alone.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("partition_leases") as batch:
        batch.drop_column("expires_at")
    with op.batch_alter_table("cluster_workers") as batch:
        batch.add_column(sa.Column("liveness_key", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("cluster_workers") as batch:
        batch.drop_column("liveness_key")
    with op.batch_alter_table("partition_leases") as batch:
        batch.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
    # Held leases as expired: their owners, if alive, renew them at their next heartbeat (the older code renews an
    # expired lease nobody took); a dead owner's are free to take. NULL would keep a dead owner's for ever.
    op.execute("UPDATE partition_leases SET expires_at = CURRENT_TIMESTAMP WHERE owner IS NOT NULL")
