"""Retention per organisation (issue 12): how long care records, the audit trail and dead letters are kept.

``care_record_retention_days``: alerts and readings, counted from the end of care (default 8 years, as UK councils
commonly keep care records). ``audit_retention_days``: the audit trail (default 8 years).
``dead_letter_retention_days``: None means the gateway's global ``dead_letter_max_age_days``.
``ended_care``: a resident's care that ended while the organisation kept the home (the resident removed), so that
its records are purged that long after it ended.

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
    op.create_table(
        "ended_care",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=False),
        sa.Column("home_id", sa.String(length=64), nullable=False),
        sa.Column("resident_id", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["home_id"], ["homes.id"], name=op.f("fk_ended_care_home_id_homes"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["organisation_id"], ["organisations.id"],
                                name=op.f("fk_ended_care_organisation_id_organisations"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ended_care")),
    )
    op.create_index(op.f("ix_ended_care_organisation_id"), "ended_care", ["organisation_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_ended_care_organisation_id"), table_name="ended_care")
    op.drop_table("ended_care")
    with op.batch_alter_table("organisations") as batch:
        batch.drop_column("dead_letter_retention_days")
        batch.drop_column("audit_retention_days")
        batch.drop_column("care_record_retention_days")
