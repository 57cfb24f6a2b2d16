"""Rows that may already exist: INSERT ... ON CONFLICT DO NOTHING on SQLite and PostgreSQL, and the one place that
creates home rows (homes are discovered by the registry, but a detector's event or a replay may reach a home
first)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from gateway.db.models import Home

# Each dialect's INSERT, both with on_conflict_do_nothing (typed apart, so the map is typed by what is used).
_INSERTS: dict[str, Callable[[Any], Any]] = {"sqlite": sqlite_insert, "postgresql": postgresql_insert}


def insert_ignore(session: Session, table: Any, rows: list[dict[str, Any]], conflict: list[str]) -> None:
    """INSERT ... ON CONFLICT DO NOTHING, on SQLite and PostgreSQL."""
    assert isinstance(table, Table)
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    dialect_insert = _INSERTS.get(dialect)
    if dialect_insert is None:  # pragma: no cover - only SQLite and PostgreSQL are supported
        raise NotImplementedError(f"the operational database does not support {dialect}")
    # executemany of one statement: compiled once and cached (a multi-row VALUES is compiled per row count).
    session.execute(dialect_insert(table).on_conflict_do_nothing(index_elements=conflict), rows)


def ensure_homes(session: Session, homes: Iterable[str], first_seen: datetime | None = None) -> None:
    """A row for each of ``homes`` that has none, first seen ``first_seen``; existing rows are left as they are."""
    insert_ignore(session, Home.__table__, [{"id": h, "first_seen": first_seen} for h in sorted(set(homes))], ["id"])
