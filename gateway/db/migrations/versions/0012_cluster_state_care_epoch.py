"""Cluster mode: each device state records the home's care epoch it was learned under.

A home's device states are its resident's (docs/production.md, "Retention and privacy"): when the person cared for
changes or is erased (``homes.care_epoch`` moves on), they go. On one machine the worker asks ingest through the
journal; in cluster mode the worker holding the housekeeping role deletes every ``cluster_device_states`` row whose
``care_epoch`` is not its home's (``gateway.cluster.housekeeping.forget_past_care_states``), and a partition loop
uses only rows of its home's current epoch. Rows from before this revision read 0 (a new home's): those of homes
under a care are forgotten once, as one machine forgets states it first sees under a care.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("cluster_device_states") as batch:
        batch.add_column(sa.Column("care_epoch", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("cluster_device_states") as batch:
        batch.drop_column("care_epoch")
