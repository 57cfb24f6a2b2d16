"""Alembic, configured in code: migrations ship inside the package, so no ``alembic.ini`` is needed.

``upgrade(url)`` brings a database to the newest schema. Developers add a migration with ``revision(message)``
(``telecare db revision "..."``), which autogenerates it against a scratch SQLite database at head.
"""

from __future__ import annotations

import fcntl
import re
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from gateway.db.session import make_engine

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_ALEMBIC = threading.Lock()  # alembic.context is a module-level proxy: one command at a time per process


def alembic_config(engine: Engine | None = None) -> Config:
    """An Alembic configuration for this package's migrations; ``engine`` is what ``env.py`` connects with."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    config.set_main_option("truncate_slug_length", "40")
    config.attributes["engine"] = engine
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the database at ``url`` to ``revision`` (the newest by default).

    Safe to run repeatedly, and from several processes at once: they take turns (a lock file beside a SQLite
    database, an advisory lock on PostgreSQL). Alembic keeps its context in module globals, so threads of one
    process take turns too.
    """
    engine = make_engine(url)
    try:
        with _ALEMBIC, _sqlite_lock(engine):
            command.upgrade(alembic_config(engine), revision)
    finally:
        engine.dispose()


def current_revision(url: str) -> str | None:
    """The revision the database at ``url`` is at, or None for a database never migrated."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "no migrations found"
    return head


def revision(message: str, url: str | None = None) -> Path:
    """Autogenerate a migration from the models' changes; returns the new file (review it before committing).

    Without ``url`` it compares against a scratch SQLite database migrated to head.
    """
    with tempfile.TemporaryDirectory() as scratch:
        url = url or f"sqlite:///{Path(scratch) / 'head.db'}"
        upgrade(url)
        engine = make_engine(url)
        try:
            config = alembic_config(engine)
            with _ALEMBIC:
                script = command.revision(config, message=message, autogenerate=True,
                                          rev_id=_next_rev_id(config))
        finally:
            engine.dispose()
    assert script is not None and not isinstance(script, list)
    return Path(script.path)


@contextmanager
def _sqlite_lock(engine: Engine) -> Iterator[None]:
    """SQLite cannot take its write lock before Alembic reads the current revision; a file lock can."""
    database = engine.url.database or ""
    in_memory = database in ("", ":memory:") or database.startswith("file:")
    if engine.url.get_backend_name() != "sqlite" or in_memory:
        yield
        return
    with open(f"{database}.migrate-lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _next_rev_id(config: Config) -> str:
    """Revisions are numbered 0001, 0002 ... so the files sort in the order they apply."""
    numbers = [int(s.revision) for s in ScriptDirectory.from_config(config).walk_revisions()
               if re.fullmatch(r"\d+", s.revision)]
    return f"{max(numbers, default=0) + 1:04d}"
