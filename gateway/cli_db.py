"""``telecare db ...`` and ``telecare homes ...``: the operational database from the command line."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from gateway.config import ConfigError, load_settings
from gateway.db import migrate
from gateway.db.models import Device, Home
from gateway.db.session import make_engine, make_session_factory
from gateway.homes import HomesFileError, import_homes, load_description

db_app = typer.Typer(help="The operational database (homes, devices, dead letters): migrations.",
                     no_args_is_help=True)
homes_app = typer.Typer(help="Homes and their devices: import descriptions, list what is known.",
                        no_args_is_help=True)


def db_url_from_env() -> str:
    """The operational database URL from the shared settings (``TELECARE_DB_URL``, else in the data dir)."""
    try:
        return load_settings().database_url
    except ConfigError as e:
        raise _fail(str(e), 2) from None


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(code)


def require_head(url: str) -> None:
    try:
        current = migrate.current_revision(url)
    except SQLAlchemyError as e:
        raise _fail(f"cannot open the database {_safe(url)}: {_error(e)}") from None
    head = migrate.head_revision()
    if current != head:
        state = "is not initialised" if current is None else f"is at revision {current}, not {head}"
        raise _fail(f"the database {_safe(url)} {state}; run `telecare db upgrade` first")


def _error(e: SQLAlchemyError) -> str:
    """The driver's own message when there is one (it says what is wrong: host, password, file)."""
    return f"{type(e).__name__}: {str(getattr(e, 'orig', None) or e).strip()}"


def _safe(url: str) -> str:
    """The URL without its password, for messages."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable URL>"


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create the database or migrate it to the newest schema (safe to run again)."""
    url = db_url_from_env()
    try:
        migrate.upgrade(url)
    except SQLAlchemyError as e:
        raise _fail(f"cannot migrate {_safe(url)}: {_error(e)}") from None
    typer.echo(f"{_safe(url)} is at revision {migrate.head_revision()}")


@db_app.command("current")
def db_current() -> None:
    """Show the database's schema revision and the newest this telecare knows."""
    url = db_url_from_env()
    current = migrate.current_revision(url)
    typer.echo(f"{_safe(url)}: {current or 'not initialised'} (newest: {migrate.head_revision()})")


@db_app.command("revision", hidden=True)
def db_revision(message: Annotated[str, typer.Argument(help="What the migration changes")]) -> None:
    """For developers: autogenerate a migration from changes to gateway/db/models.py."""
    path = migrate.revision(message)
    typer.echo(f"wrote {path}; review it, then test it on SQLite and PostgreSQL")


@homes_app.command("import")
def homes_import(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True,
                                         help="A home description (YAML; see docs/homes.md)")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate and report, change nothing")] = False,
) -> None:
    """Create or update homes and their devices' rooms and roles from a description file."""
    try:
        description = load_description(file)
    except HomesFileError as e:
        raise _fail(str(e)) from None
    url = db_url_from_env()
    require_head(url)
    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as session:
            report = import_homes(session, description)
            if dry_run:
                session.rollback()
            else:
                session.commit()
    finally:
        engine.dispose()
    typer.echo(("dry run, nothing changed\n" if dry_run else "") + report.summary())


@homes_app.command("list")
def homes_list() -> None:
    """List the homes: imported or discovered, claimed or not, their hub and devices."""
    url = db_url_from_env()
    require_head(url)
    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as session:
            counts = (select(Device.home_id, func.count().label("n")).group_by(Device.home_id).subquery())
            rows = session.execute(
                select(Home, func.coalesce(counts.c.n, 0)).outerjoin(counts, counts.c.home_id == Home.id)
                .order_by(Home.id)).all()
    finally:
        engine.dispose()
    if not rows:
        typer.echo("no homes yet: import a description (telecare homes import FILE) or start the gateway")
        return
    table = [("HOME", "NAME", "ORGANISATION", "TIMEZONE", "HUB", "DEVICES", "LAST SEEN (UTC)")]
    for home, devices in rows:
        hub = {True: "online", False: "offline", None: "-"}[home.hub_online]
        table.append((home.id, home.name or "-",
                      str(home.organisation_id) if home.organisation_id is not None else "unassigned",
                      home.timezone, hub, str(devices), _when(home.last_seen)))
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        typer.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value is not None else "never"
