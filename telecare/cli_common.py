"""What the ``telecare`` commands share: failing with a message a person can act on, the settings, a session on the
operational database, and tables."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import typer
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from gateway.config import ConfigError, Settings, load_settings

EXIT_BAD = 2  # bad input or configuration: the message says what to change


def fail(message: str, code: int = EXIT_BAD) -> typer.Exit:
    """Print ``message`` on standard error; raise what this returns."""
    typer.echo(message, err=True)
    return typer.Exit(code)


@contextmanager
def logging_set_up(level: str = "INFO", *, console: bool = False) -> Iterator[None]:
    """Log lines on stderr while the command runs: console lines, or JSON lines for a collector when
    TELECARE_LOG_FORMAT=json (docs/production.md, "Logs"); ``console`` for the commands a person watches (the
    demo) whatever it says. A bad level or format is a sentence and exit code 2. Undone when the command returns,
    so a command run in-process (tests) leaves the caller's logging as it was."""
    from gateway import logs

    try:
        json = not console and logs.format_from_env() == "json"
        logs.configure(level, json=json)
    except ValueError as e:
        raise fail(str(e)) from None
    try:
        yield
    finally:
        logs.unconfigure()


def settings_or_exit() -> Settings:
    try:
        return load_settings()
    except ConfigError as e:
        raise fail(str(e)) from None


@contextmanager
def db_session(*, write: bool, refused: tuple[type[Exception], ...] = ()) -> Iterator[Session]:
    """A session on the migrated operational database; committed if ``write`` and all went well. An exception of
    a type in ``refused`` is the person's mistake (unknown id, bad value): its message, and exit code 2."""
    from gateway.db import migrate
    from gateway.db.session import make_engine, make_session_factory

    url = settings_or_exit().database_url
    try:
        current, head = migrate.current_revision(url), migrate.head_revision()
    except SQLAlchemyError as e:
        raise fail(f"cannot open the operational database: {type(e).__name__}: {getattr(e, 'orig', e)}") from None
    if current != head:
        raise fail("the operational database is not at the newest schema; run `telecare db upgrade` first")
    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as session:
            try:
                yield session
                if write:
                    session.commit()
            except refused as e:
                session.rollback()
                raise fail(str(e)) from None
            except SQLAlchemyError as e:
                session.rollback()
                raise fail(f"database error: {type(e).__name__}: {getattr(e, 'orig', e)}") from None
    finally:
        engine.dispose()


def print_table(rows: Sequence[Sequence[str]], empty: str) -> None:
    """Columns padded to their widest cell; ``empty`` when there is only the heading."""
    if len(rows) <= 1:
        typer.echo(empty)
        return
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        typer.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
