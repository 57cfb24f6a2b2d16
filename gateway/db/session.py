"""Engines and sessions for the operational database (SQLite or PostgreSQL).

Nothing here runs at import: callers build the engine from their configuration and pass it on.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError
from sqlalchemy.orm import Session, sessionmaker

SQLITE_BUSY_TIMEOUT_MS = 10_000
# The drivers telecare is tested with, per database; the install hint for each one's Python package.
SUPPORTED_DRIVERS = {"sqlite": "pysqlite", "postgresql": "psycopg"}
INSTALL_HINTS = {"psycopg": "pip install 'telecare[postgres]' (in a clone: pip install -e '.[postgres]')"}
EXAMPLES = "sqlite:///var/telecare.db or postgresql://user:password@host:5432/telecare"


class DatabaseUrlError(ArgumentError, ValueError):
    """The operational database's URL cannot be used: malformed, an unsupported database or driver, a driver that
    is not installed, or a SQLite file whose directory cannot be written. The message says what to change.

    A SQLAlchemy error too, so every command that already turns database errors into a message shows this one."""


def check_database_url(url: str | URL) -> URL:
    """``url`` normalised (:func:`normalise_url`), or :class:`DatabaseUrlError` with a sentence saying why it
    cannot be used. Nothing is created or connected: the driver is only imported."""
    try:
        parsed = normalise_url(url)
    except ArgumentError:
        # The text is not repeated: a malformed URL may still hold a password.
        raise DatabaseUrlError(f"this is not a database URL; it should look like {EXAMPLES}") from None
    backend = parsed.get_backend_name()
    if backend not in SUPPORTED_DRIVERS:
        raise DatabaseUrlError(f"{backend!r} databases are not supported: use SQLite or PostgreSQL, e.g. {EXAMPLES}")
    driver = parsed.get_driver_name()
    if driver != SUPPORTED_DRIVERS[backend]:
        raise DatabaseUrlError(f"the driver {driver!r} is not supported for {backend}: write {backend}:// without a "
                               f"driver (telecare uses {SUPPORTED_DRIVERS[backend]})")
    try:
        parsed.get_dialect().import_dbapi()
    except (ModuleNotFoundError, NoSuchModuleError) as e:
        raise DatabaseUrlError(missing_driver_message(backend, getattr(e, "name", None) or driver)) from None
    return parsed


def missing_driver_message(backend: str, module: str) -> str:
    """One sentence for a database driver that is not installed, with the command that installs it."""
    hint = INSTALL_HINTS.get(module, f"pip install {module}")
    name = {"postgresql": "PostgreSQL"}.get(backend, backend)
    return f"the {name} driver ({module}) is not installed: {hint}"


def directory_problem(directory: Path) -> str | None:
    """Why ``directory`` cannot be created or written, or None. Side-effect free: it, or the nearest ancestor that
    exists, must be a directory and writable."""
    directory = directory.expanduser().absolute()
    existing = directory
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return (f"{existing} is not a directory" if existing == directory else
                f"{existing} is not a directory, so {directory} cannot be created")
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is not writable (by user {os.getuid()})"
    return None


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
    A URL that cannot be used (:func:`check_database_url`), or a SQLite directory that cannot be created, is a
    :class:`DatabaseUrlError` with a sentence.
    """
    parsed = check_database_url(url)
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
        directory = Path(database).expanduser().parent
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise DatabaseUrlError(f"cannot create {directory} for the SQLite database: {e.strerror}") from None
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
