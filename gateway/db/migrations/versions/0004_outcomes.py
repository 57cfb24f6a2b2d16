"""Outcomes: what the person who dealt with an alert found, and whether the detectors have learned from it; the
learned baseline stored as JSON beside the detectors' pickled state, for the API to read.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OUTCOME_PENDING = sa.text("outcome IS NOT NULL AND outcome_learned_at IS NULL")


def _time(name: str) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=True)


def upgrade() -> None:
    # batch_alter_table: SQLite cannot add several columns and an index in one ALTER; on PostgreSQL it is plain
    # ALTER TABLE ... ADD COLUMN (nullable, no default: no table rewrite).
    with op.batch_alter_table("alerts") as batch:
        batch.add_column(sa.Column("outcome", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("outcome_note", sa.Text(), nullable=True))
        batch.add_column(sa.Column("outcome_by", sa.String(length=200), nullable=True))
        batch.add_column(_time("outcome_at"))
        batch.add_column(_time("outcome_learned_at"))
        batch.add_column(sa.Column("outcome_learned", sa.String(length=32), nullable=True))
    op.create_index("ix_alerts_outcome_pending", "alerts", ["id"], sqlite_where=OUTCOME_PENDING,
                    postgresql_where=OUTCOME_PENDING)
    with op.batch_alter_table("detector_checkpoints") as batch:
        batch.add_column(sa.Column("baseline", sa.JSON(), nullable=True))
        batch.add_column(_time("baseline_at"))


def downgrade() -> None:
    with op.batch_alter_table("detector_checkpoints") as batch:
        batch.drop_column("baseline_at")
        batch.drop_column("baseline")
    op.drop_index("ix_alerts_outcome_pending", table_name="alerts", sqlite_where=OUTCOME_PENDING,
                  postgresql_where=OUTCOME_PENDING)
    with op.batch_alter_table("alerts") as batch:
        for name in ("outcome_learned", "outcome_learned_at", "outcome_at", "outcome_by", "outcome_note",
                     "outcome"):
            batch.drop_column(name)
