"""Cluster mode (issue 15): live workers and partition leases.

``cluster_workers``: one row per running gateway worker, alive while ``expires_at`` (the database's clock) is in
the future. ``partition_leases``: one row per partition of the readings stream, its owner until ``expires_at``, and
the fencing ``epoch`` increased at every change of owner. Created on every backend (the schema is one), used on
PostgreSQL only.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "cluster_workers",
        sa.Column("worker_id", sa.String(length=100), nullable=False),
        sa.Column("partition_count", sa.Integer(), nullable=False),
        sa.Column("joined_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("worker_id", name=op.f("pk_cluster_workers")),
    )
    op.create_table(
        "partition_leases",
        sa.Column("partition", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("owner", sa.String(length=100), nullable=True),
        sa.Column("epoch", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("partition", name=op.f("pk_partition_leases")),
    )


def downgrade() -> None:
    op.drop_table("partition_leases")
    op.drop_table("cluster_workers")
