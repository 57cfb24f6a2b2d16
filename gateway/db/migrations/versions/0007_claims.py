"""Data belongs to the organisation that cared for the home: claim periods, alerts stamped, claim codes, epochs.

``home_claims``: the periods during which an organisation cared for a home (``released_at`` None: current); an
organisation reads a home's readings, dead letters and baselines only inside its own periods. Every home that has
an organisation gets a current claim from its first sighting (the best start known).
``alerts.organisation_id``: the organisation that cared for the home when the alert was raised, backfilled from
the home's current organisation (the only one known).
``homes.claim_code_hash``: the sha256 of the code that proves a claim. ``homes.care_epoch`` and
``detector_checkpoints.care_epoch``: bumped when the person cared for changes; a checkpoint of another epoch is
another person's routine.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "home_claims",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("home_id", sa.String(length=64), nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["home_id"], ["homes.id"], name=op.f("fk_home_claims_home_id_homes"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["organisation_id"], ["organisations.id"],
                                name=op.f("fk_home_claims_organisation_id_organisations"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_home_claims")),
    )
    op.create_index("ix_home_claims_home_id_claimed_at", "home_claims", ["home_id", "claimed_at"])
    op.create_index(op.f("ix_home_claims_organisation_id"), "home_claims", ["organisation_id"])
    # A home never seen over MQTT (imported, then claimed) has no first_seen: its claim starts at the epoch, which
    # loses nothing (it has no data from before).
    # (Bound rather than a literal: SQLite keeps times as text, PostgreSQL as timestamptz.)
    op.execute(sa.text("INSERT INTO home_claims (home_id, organisation_id, claimed_at) "
                       "SELECT id, organisation_id, COALESCE(first_seen, :origin) "
                       "FROM homes WHERE organisation_id IS NOT NULL")
               .bindparams(sa.bindparam("origin", datetime(1970, 1, 1, tzinfo=UTC),
                                        type_=sa.DateTime(timezone=True))))
    with op.batch_alter_table("homes") as batch:
        batch.add_column(sa.Column("claim_code_hash", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("care_epoch", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("detector_checkpoints") as batch:
        batch.add_column(sa.Column("care_epoch", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("alerts") as batch:
        batch.add_column(sa.Column("organisation_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(op.f("fk_alerts_organisation_id_organisations"), "organisations",
                                 ["organisation_id"], ["id"], ondelete="SET NULL")
        batch.create_index(op.f("ix_alerts_organisation_id"), ["organisation_id"])
    op.execute("UPDATE alerts SET organisation_id = "
               "(SELECT homes.organisation_id FROM homes WHERE homes.id = alerts.home_id)")


def downgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.drop_index(op.f("ix_alerts_organisation_id"))
        batch.drop_constraint(op.f("fk_alerts_organisation_id_organisations"), type_="foreignkey")
        batch.drop_column("organisation_id")
    with op.batch_alter_table("detector_checkpoints") as batch:
        batch.drop_column("care_epoch")
    with op.batch_alter_table("homes") as batch:
        batch.drop_column("care_epoch")
        batch.drop_column("claim_code_hash")
    op.drop_index(op.f("ix_home_claims_organisation_id"), table_name="home_claims")
    op.drop_index("ix_home_claims_home_id_claimed_at", table_name="home_claims")
    op.drop_table("home_claims")
