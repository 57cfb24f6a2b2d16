"""Alembic environment: run by ``gateway.db.migrate``, which passes the engine in ``config.attributes``."""

from __future__ import annotations

from typing import Any, Literal

from alembic import context

import gateway.db.models  # noqa: F401  (its import registers every table on Base.metadata)
from gateway.db.base import Base, UTCDateTime

config = context.config
MIGRATION_LOCK_ID = 0x7E1E_CA7E  # any constant: the PostgreSQL advisory lock that serialises migrations
target_metadata = Base.metadata


def render_item(type_: str, obj: Any, autogen_context: Any) -> str | Literal[False]:
    """Migrations stay free of the app's types: UTCDateTime is stored as a timezone-aware DateTime."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def run_migrations_online() -> None:
    engine = config.attributes.get("engine")
    if engine is None:
        raise RuntimeError("run migrations with `telecare db upgrade` (gateway.db.migrate), not alembic")
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=True,  # SQLite cannot ALTER most things; batch mode copies the table
            compare_type=True,
            render_item=render_item,
        )
        with context.begin_transaction():
            if connection.dialect.name == "postgresql":
                # Processes starting together (gateway, API) migrate one after the other; the lock is held
                # until the migration's transaction ends, and the next one then finds the database at head.
                connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_ID})")
            context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("offline (--sql) migrations are not supported")
run_migrations_online()
