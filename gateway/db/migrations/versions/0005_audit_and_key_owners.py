"""The audit trail's client address and folded repeats; API keys owned by an active admin.

``audit_log.client_address``: where the request came from. ``audit_log.occurrences``: how many events one row
stands for (repeated denials and failed logins within a minute are folded into one row).
``api_keys.owner_id``: the admin answerable for the key, its creator until reassigned; a key works only while
its owner is an active admin of the organisation. Existing keys are owned by their creator (a key whose creator
was deleted has none, and stops working until an admin reassigns it).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("audit_log") as batch:
        batch.add_column(sa.Column("client_address", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("occurrences", sa.Integer(), nullable=False, server_default="1"))
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("owner_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(op.f("fk_api_keys_owner_id_users"), "users", ["owner_id"], ["id"],
                                 ondelete="SET NULL")
        batch.create_index(op.f("ix_api_keys_owner_id"), ["owner_id"])
    op.execute("UPDATE api_keys SET owner_id = created_by")


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_index(op.f("ix_api_keys_owner_id"))
        batch.drop_constraint(op.f("fk_api_keys_owner_id_users"), type_="foreignkey")
        batch.drop_column("owner_id")
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_column("occurrences")
        batch.drop_column("client_address")
