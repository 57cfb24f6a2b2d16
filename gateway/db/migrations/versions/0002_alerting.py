"""Alerting: residents, absences, recipients, escalation chains, alerts, their timeline and outbox; detector
checkpoints.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN = sa.text("state != 'resolved'")


def _id() -> sa.Column:
    return sa.Column("id", sa.Integer(), nullable=False)


def _big_id() -> sa.Column:
    return sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False)


def _time(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "recipients",
        _id(),
        sa.Column("organisation_id", sa.Integer(), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("pushover_user_key", sa.String(length=64), nullable=False),
        sa.Column("pushover_device", sa.String(length=64), nullable=True),
        _time("created_at"),
        sa.ForeignKeyConstraint(["organisation_id"], ["organisations.id"],
                                name=op.f("fk_recipients_organisation_id_organisations"), ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recipients")),
    )
    op.create_index(op.f("ix_recipients_organisation_id"), "recipients", ["organisation_id"])
    op.create_table(
        "detector_checkpoints",
        sa.Column("home_id", sa.String(length=64), nullable=False),
        sa.Column("journal_seq", sa.BigInteger(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("state", sa.LargeBinary(), nullable=False),
        _time("saved_at"),
        sa.ForeignKeyConstraint(["home_id"], ["homes.id"], name=op.f("fk_detector_checkpoints_home_id_homes"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("home_id", name=op.f("pk_detector_checkpoints")),
    )
    op.create_table(
        "residents",
        _id(),
        sa.Column("home_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("notes", sa.Text(), nullable=True),
        _time("created_at"),
        sa.ForeignKeyConstraint(["home_id"], ["homes.id"], name=op.f("fk_residents_home_id_homes"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_residents")),
        sa.UniqueConstraint("home_id", name=op.f("uq_residents_home_id")),  # one resident per home
    )
    op.create_table(
        "absences",
        _id(),
        sa.Column("resident_id", sa.Integer(), nullable=False),
        _time("starts_at"),
        _time("ends_at", nullable=True),
        sa.Column("reason", sa.String(length=200), nullable=False),
        _time("created_at"),
        sa.ForeignKeyConstraint(["resident_id"], ["residents.id"], name=op.f("fk_absences_resident_id_residents"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_absences")),
    )
    op.create_index(op.f("ix_absences_resident_id"), "absences", ["resident_id"])
    op.create_table(
        "escalation_steps",
        _id(),
        sa.Column("resident_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("recipient_id", sa.Integer(), nullable=False),
        sa.Column("wait_min", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["recipient_id"], ["recipients.id"],
                                name=op.f("fk_escalation_steps_recipient_id_recipients")),
        sa.ForeignKeyConstraint(["resident_id"], ["residents.id"],
                                name=op.f("fk_escalation_steps_resident_id_residents"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_escalation_steps")),
        sa.UniqueConstraint("resident_id", "position", name=op.f("uq_escalation_steps_resident_id_position")),
    )
    op.create_index(op.f("ix_escalation_steps_recipient_id"), "escalation_steps", ["recipient_id"])
    op.create_table(
        "alerts",
        _id(),
        sa.Column("home_id", sa.String(length=64), nullable=False),
        sa.Column("resident_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("severity", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        _time("raised_at"),
        _time("updated_at"),
        sa.Column("repeat_count", sa.Integer(), nullable=False),
        _time("acknowledged_at", nullable=True),
        sa.Column("acknowledged_by", sa.String(length=200), nullable=True),
        _time("resolved_at", nullable=True),
        sa.Column("resolved_by", sa.String(length=200), nullable=True),
        sa.Column("resolution_note", sa.Text(), nullable=True),
        sa.Column("escalation_step", sa.Integer(), nullable=False),
        _time("next_escalation_at", nullable=True),
        sa.ForeignKeyConstraint(["home_id"], ["homes.id"], name=op.f("fk_alerts_home_id_homes"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["resident_id"], ["residents.id"], name=op.f("fk_alerts_resident_id_residents"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
    )
    op.create_index("ix_alerts_home_id_raised_at", "alerts", ["home_id", "raised_at"])
    op.create_index(op.f("ix_alerts_next_escalation_at"), "alerts", ["next_escalation_at"])
    op.create_index(op.f("ix_alerts_resident_id"), "alerts", ["resident_id"])
    op.create_index(op.f("ix_alerts_state"), "alerts", ["state"])
    # At most one open alert per (home, kind, subject): a partial unique index, on both backends.
    op.create_index("uq_alerts_open_key", "alerts", ["home_id", "kind", "subject"], unique=True,
                    sqlite_where=OPEN, postgresql_where=OPEN)
    op.create_table(
        "alert_log",
        _big_id(),
        sa.Column("alert_id", sa.Integer(), nullable=False),
        _time("at"),
        sa.Column("what", sa.String(length=32), nullable=False),
        sa.Column("who", sa.String(length=200), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["alert_id"], ["alerts.id"], name=op.f("fk_alert_log_alert_id_alerts"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_log")),
    )
    op.create_index("ix_alert_log_alert_id_at", "alert_log", ["alert_id", "at"])
    op.create_table(
        "notifications",
        _big_id(),
        sa.Column("alert_id", sa.Integer(), nullable=False),
        sa.Column("recipient_id", sa.Integer(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _time("next_attempt_at", nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("receipt", sa.String(length=64), nullable=True),
        sa.Column("receipt_state", sa.String(length=16), nullable=True),
        _time("receipt_checked_at", nullable=True),
        _time("sent_at", nullable=True),
        _time("created_at"),
        sa.ForeignKeyConstraint(["alert_id"], ["alerts.id"], name=op.f("fk_notifications_alert_id_alerts"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["recipient_id"], ["recipients.id"],
                                name=op.f("fk_notifications_recipient_id_recipients"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
    )
    op.create_index(op.f("ix_notifications_alert_id"), "notifications", ["alert_id"])
    op.create_index(op.f("ix_notifications_recipient_id"), "notifications", ["recipient_id"])
    op.create_index("ix_notifications_receipt_state", "notifications", ["receipt_state"])
    op.create_index("ix_notifications_state_next_attempt_at", "notifications", ["state", "next_attempt_at"])


def downgrade() -> None:
    op.drop_table("notifications")
    op.drop_table("alert_log")
    op.drop_index("uq_alerts_open_key", table_name="alerts", sqlite_where=OPEN, postgresql_where=OPEN)
    op.drop_table("alerts")
    op.drop_table("escalation_steps")
    op.drop_table("absences")
    op.drop_table("residents")
    op.drop_table("detector_checkpoints")
    op.drop_table("recipients")
