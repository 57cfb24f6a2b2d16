"""The care team's record on an alert (issue 14): notes, and who is going round.

``alert_notes``: append-only notes on an alert, with their author and time. ``alert_attendance``: who said they
are going round, when, and when they expect to arrive; at most one current (``cleared_at`` NULL) per alert.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_CURRENT = sa.text("cleared_at IS NULL")


def upgrade() -> None:
    op.create_table(
        "alert_notes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("alert_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("author", sa.String(length=200), nullable=False),
        sa.Column("author_user_id", sa.Integer(), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["alert_id"], ["alerts.id"], name=op.f("fk_alert_notes_alert_id_alerts"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["author_user_id"], ["users.id"], name=op.f("fk_alert_notes_author_user_id_users"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_notes")),
    )
    op.create_index("ix_alert_notes_alert_id_at", "alert_notes", ["alert_id", "at"])
    op.create_index(op.f("ix_alert_notes_author_user_id"), "alert_notes", ["author_user_id"])
    op.create_table(
        "alert_attendance",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("alert_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("said_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expected_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("recorded_by", sa.String(length=200), nullable=False),
        sa.Column("recorded_by_user_id", sa.Integer(), nullable=True),
        sa.Column("cleared_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cleared_by", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(["alert_id"], ["alerts.id"], name=op.f("fk_alert_attendance_alert_id_alerts"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_alert_attendance_user_id_users"),
                                ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["recorded_by_user_id"], ["users.id"],
                                name=op.f("fk_alert_attendance_recorded_by_user_id_users"), ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_attendance")),
    )
    op.create_index("ix_alert_attendance_alert_id_said_at", "alert_attendance", ["alert_id", "said_at"])
    op.create_index(op.f("ix_alert_attendance_user_id"), "alert_attendance", ["user_id"])
    op.create_index("uq_alert_attendance_current", "alert_attendance", ["alert_id"], unique=True,
                    sqlite_where=_CURRENT, postgresql_where=_CURRENT)


def downgrade() -> None:
    op.drop_index("uq_alert_attendance_current", table_name="alert_attendance")
    op.drop_index(op.f("ix_alert_attendance_user_id"), table_name="alert_attendance")
    op.drop_index("ix_alert_attendance_alert_id_said_at", table_name="alert_attendance")
    op.drop_table("alert_attendance")
    op.drop_index(op.f("ix_alert_notes_author_user_id"), table_name="alert_notes")
    op.drop_index("ix_alert_notes_alert_id_at", table_name="alert_notes")
    op.drop_table("alert_notes")
