"""Cluster mode (issue 15): each device's kind and last activity value, and the readings stream's identity.

``cluster_device_states``: what a reading's activity change is decided from (``gateway.reading_facts``). On one
machine it lives in the journal's file; in cluster mode a partition moves between workers, and its devices' states
with it. ``cluster_streams``: the readings stream the workers last used, by its creation time, so that a stream
made again (its sequence numbers starting afresh) resets the detectors' positions. Created on every backend (the
schema is one), used on PostgreSQL only.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "cluster_device_states",
        sa.Column("home_id", sa.String(length=64), nullable=False),
        sa.Column("device", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=True),
        sa.Column("value", sa.JSON(none_as_null=True), nullable=True),
        sa.PrimaryKeyConstraint("home_id", "device", name=op.f("pk_cluster_device_states")),
    )
    op.create_table(
        "cluster_streams",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_cluster_streams")),
    )


def downgrade() -> None:
    op.drop_table("cluster_streams")
    op.drop_table("cluster_device_states")
