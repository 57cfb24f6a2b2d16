"""Initial schema: organisations, homes and devices discovered over MQTT, dead letters.

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "organisations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organisations")),
    )
    op.create_table(
        "homes",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("organisation_id", sa.Integer(), nullable=True),
        sa.Column("timezone", sa.String(length=64), server_default="Europe/London", nullable=False),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=True),
        sa.Column("hub_online", sa.Boolean(), nullable=True),
        sa.Column("hub_changed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["organisation_id"], ["organisations.id"],
                                name=op.f("fk_homes_organisation_id_organisations"), ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_homes")),
    )
    op.create_index(op.f("ix_homes_organisation_id"), "homes", ["organisation_id"])
    op.create_table(
        "devices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("home_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("ieee_address", sa.String(length=32), nullable=True),
        sa.Column("model", sa.String(length=100), nullable=True),
        sa.Column("vendor", sa.String(length=100), nullable=True),
        sa.Column("description", sa.String(length=255), nullable=True),
        sa.Column("power_source", sa.String(length=32), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=True),
        sa.Column("room", sa.String(length=64), nullable=True),
        sa.Column("role", sa.String(length=32), nullable=True),
        sa.Column("battery", sa.Float(), nullable=True),
        sa.Column("linkquality", sa.Integer(), nullable=True),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=True),
        sa.Column("available", sa.Boolean(), nullable=True),
        sa.Column("availability_changed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sends_last_seen", sa.Boolean(), nullable=True),
        sa.ForeignKeyConstraint(["home_id"], ["homes.id"], name=op.f("fk_devices_home_id_homes"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_devices")),
        # Also the index for "the devices of a home".
        sa.UniqueConstraint("home_id", "name", name=op.f("uq_devices_home_id_name")),
    )
    op.create_table(
        "dead_letters",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("journal_seq", sa.BigInteger(), nullable=True),
        # Not a foreign key: a dead letter's home may not exist.
        sa.Column("home_id", sa.String(length=64), nullable=True),
        sa.Column("device", sa.String(length=255), nullable=True),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dead_letters")),
        sa.UniqueConstraint("journal_seq", "received_at",
                            name=op.f("uq_dead_letters_journal_seq_received_at")),
    )
    op.create_index(op.f("ix_dead_letters_received_at"), "dead_letters", ["received_at"])
    op.create_index("ix_dead_letters_reason_received_at", "dead_letters", ["reason", "received_at"])
    op.create_index("ix_dead_letters_home_id_received_at", "dead_letters", ["home_id", "received_at"])


def downgrade() -> None:
    op.drop_table("dead_letters")
    op.drop_table("devices")
    op.drop_index(op.f("ix_homes_organisation_id"), table_name="homes")
    op.drop_table("homes")
    op.drop_table("organisations")
