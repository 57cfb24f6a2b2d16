"""Engines and sessions for the operational database (SQLite or PostgreSQL).

Nothing here runs at import: callers build the engine from their configuration and pass it on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker

SQLITE_BUSY_TIMEOUT_MS = 10_000


def normalise_url(url: str | URL) -> URL:
    """``postgresql://`` and ``postgres://`` mean psycopg 3 (``postgresql+psycopg://``); others are kept."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def make_engine(url: str | URL, **kwargs: Any) -> Engine:
    """An engine for ``url``.

    SQLite: WAL journal, foreign keys enforced, a busy timeout, and real transactions (SQLAlchemy emits
    ``BEGIN IMMEDIATE`` itself, so a transaction's reads and writes see one snapshot). Immediate, because several
    threads and processes write (registry, detectors, dispatcher, CLI): a deferred transaction that read and
    then writes fails at once with "database is locked" if another wrote meanwhile, whatever the busy timeout;
    an immediate one waits its turn. The file's directory is created.
    PostgreSQL: psycopg 3, connections checked before use.
    """
    parsed = normalise_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, **kwargs)
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(parsed, **kwargs)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded objects usable after commit (the CLI prints them)."""
    return sessionmaker(engine, expire_on_commit=False)


READ_ONLY = "telecare_read_only"  # an execution option: this connection's transactions only read


def read_only_sessions(sessions: sessionmaker[Session]) -> sessionmaker[Session]:
    """Sessions of the same database for transactions that only read.

    SQLite: they begin deferred, so they never wait for the write lock (in WAL mode readers and the writer do not
    block each other), where every other transaction begins immediate and waits its turn behind the detectors'
    and the registry's. Writing in one fails. PostgreSQL: the same as ``sessions``."""
    bind = sessions.kw["bind"]
    return sessionmaker(bind.execution_options(**{READ_ONLY: True}), expire_on_commit=False)


def _sqlite_engine(url: URL, **kwargs: Any) -> Engine:
    database = url.database or ""
    in_memory = database in ("", ":memory:") or database.startswith("file::memory:")
    if not in_memory:
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module (it does not BEGIN before a SELECT).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            if not in_memory:
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN" if connection.get_execution_options().get(READ_ONLY) else
                                   "BEGIN IMMEDIATE")

    return engine
