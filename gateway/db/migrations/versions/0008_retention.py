"""Retention per organisation (issue 12): how long care records, the audit trail and dead letters are kept.

``care_record_retention_days``: alerts and readings, counted from the end of care (default 8 years, as UK councils
commonly keep care records). ``audit_retention_days``: the audit trail (default 8 years).
``dead_letter_retention_days``: None means the gateway's global ``dead_letter_max_age_days``.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("organisations") as batch:
        batch.add_column(sa.Column("care_record_retention_days", sa.Integer(), nullable=False,
                                   server_default="2922"))
        batch.add_column(sa.Column("audit_retention_days", sa.Integer(), nullable=False, server_default="2922"))
        batch.add_column(sa.Column("dead_letter_retention_days", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("organisations") as batch:
        batch.drop_column("dead_letter_retention_days")
        batch.drop_column("audit_retention_days")
        batch.drop_column("care_record_retention_days")
