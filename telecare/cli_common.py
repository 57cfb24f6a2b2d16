"""What the ``telecare`` commands share: failing with a message a person can act on, the settings, a session on the
operational database, and tables."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import typer
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from gateway.config import ConfigError, Settings, load_settings
from gateway.db.models import Organisation

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
    """The settings, checked (a bad database URL, a data directory that cannot be written ...: gateway.config), or
    the message and exit code 2."""
    try:
        return load_settings()
    except ConfigError as e:
        raise fail(str(e)) from None


def directories_or_exit(settings: Settings) -> None:
    """Create the directories a long-running process writes (data, spool) now, so one that cannot be made is a
    sentence at start, not a traceback from the thread that first writes there."""
    wanted = [settings.data_dir, *([settings.spool_dir] if settings.spool_dir else [])]
    for directory in wanted:
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise fail(f"cannot create {directory} (TELECARE_DATA_DIR / TELECARE_SPOOL_DIR): {e.strerror}") from None
        if not os.access(directory, os.W_OK | os.X_OK):
            raise fail(f"{directory} is not writable (TELECARE_DATA_DIR / TELECARE_SPOOL_DIR)")


class NotFound(ValueError):
    """Something named on the command line that does not exist (or is ambiguous): the message says what to do."""


def organisation_named(session: Session, name_or_id: str) -> Organisation:
    """The organisation with this id, or this name (case-insensitive); :class:`NotFound` says which exist."""
    wanted = name_or_id.strip()
    if wanted.isdigit():
        org = session.get(Organisation, int(wanted))
        if org is None:
            raise NotFound(f"no organisation {wanted}{_known_organisations(session)}")
        return org
    found = list(session.scalars(select(Organisation).where(func.lower(Organisation.name) == wanted.lower())))
    if not found:
        raise NotFound(f"no organisation named {wanted!r}{_known_organisations(session)} (telecare setup, or "
                       "telecare users add --organisation, creates one)")
    if len(found) > 1:
        raise NotFound(f"{len(found)} organisations are named {wanted!r} (ids "
                       f"{', '.join(str(o.id) for o in found)}): give the id")
    return found[0]


def _known_organisations(session: Session) -> str:
    names = [f"{name!r} ({org_id})" for org_id, name in
             session.execute(select(Organisation.id, Organisation.name).order_by(Organisation.id).limit(10))]
    return f"; there are {', '.join(names)}" if names else "; there are none yet"


def read_password(password_file: Path | None, *, env: str | None = None) -> str:
    """A new password: the first line of ``password_file`` ("-": standard input), else the variable ``env``, else
    prompted twice without echo. Never printed; its length is checked against the API's rules."""
    from api.security import MAX_PASSWORD_LEN, MIN_PASSWORD_LEN

    if password_file is not None:
        try:
            text = typer.get_text_stream("stdin").readline() if str(password_file) == "-" else \
                password_file.read_text(encoding="utf-8").splitlines()[0] if password_file.stat().st_size else ""
        except OSError as e:
            raise fail(f"cannot read the password file {password_file}: {e.strerror}") from None
        password = text.rstrip("\r\n")
    elif env and os.environ.get(env):
        password = os.environ[env]
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    if not MIN_PASSWORD_LEN <= len(password) <= MAX_PASSWORD_LEN:
        raise fail(f"the password must be {MIN_PASSWORD_LEN} to {MAX_PASSWORD_LEN} characters")
    return password


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
    refused = (NotFound, *refused)
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
