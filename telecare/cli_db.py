"""``telecare db ...`` and ``telecare homes ...``: the operational database from the command line, and who a home
belongs to (``claim-code``, ``claim``: :mod:`gateway.claims`)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from analytics.watch.pendant import setting_up_needed, unconfirmed_button
from gateway.claims import ClaimError, claim_home, issue_claim_code
from gateway.config import ConfigError, load_settings
from gateway.db import migrate
from gateway.db.models import AuditEntry, Device, Home, Organisation
from gateway.db.session import make_engine, make_session_factory
from gateway.homes import HomesFileError, import_homes, load_description
from telecare.cli_common import NotFound, db_session, organisation_named

OPERATOR = "operator (telecare CLI)"  # the audit trail's actor for what the operator does on the command line
OrganisationOption = Annotated[str | None, typer.Option(
    "--organisation", help="The organisation (name or id) that cares for it: an unassigned home is claimed for it, "
                           "so it shows in the API and dashboard")]

db_app = typer.Typer(help="The operational database (homes, devices, dead letters): migrations.",
                     no_args_is_help=True)
homes_app = typer.Typer(help="Homes and their devices: import descriptions, list what is known, claim codes and "
                        "assignments to organisations.",
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
    try:
        current = migrate.current_revision(url)
    except SQLAlchemyError as e:
        raise _fail(f"cannot read the revision of {_safe(url)}: {_error(e)}") from None
    typer.echo(f"{_safe(url)}: {current or 'not initialised'} (newest: {migrate.head_revision()})")


@db_app.command("revision", hidden=True)
def db_revision(message: Annotated[str, typer.Argument(help="What the migration changes")]) -> None:
    """For developers: autogenerate a migration from changes to gateway/db/models.py."""
    path = migrate.revision(message)
    typer.echo(f"wrote {path}; review it, then test it on SQLite and PostgreSQL")


@db_app.command("purge")
def db_purge(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count what would be removed, remove nothing")] = False,
) -> None:
    """Remove what is past each organisation's retention now (the gateway's worker does it every hour): care
    records whose care ended longer ago than the organisation keeps them, old audit entries and dead letters, and
    expired login tokens. Prints what was removed per organisation."""
    from gateway.clock import WallClock
    from gateway.purge import RetentionPurge
    from gateway.stores.readings import reading_store_for

    try:
        settings = load_settings()
    except ConfigError as e:
        raise _fail(str(e), 2) from None
    url = settings.database_url
    require_head(url)
    engine = make_engine(url)
    store = None if dry_run else reading_store_for(settings)
    try:
        purge = RetentionPurge(make_session_factory(engine), WallClock(), store,
                               dead_letter_max_age_days=settings.dead_letter_max_age_days)
        purged = purge.purge(dry_run=dry_run)
    except SQLAlchemyError as e:
        raise _fail(f"cannot purge {_safe(url)}: {_error(e)}") from None
    finally:
        if store is not None:
            store.close()
        engine.dispose()
    if dry_run:
        typer.echo("dry run, nothing removed; would remove:")
    for org in purged.organisations:
        typer.echo(org.summary())
    typer.echo(f"everyone: {purged.tokens} expired login tokens, {purged.login_throttle} login-throttle counts "
               "past their window")
    if any(org.readings_pending for org in purged.organisations):
        raise typer.Exit(1)


@homes_app.command("import")
def homes_import(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True,
                                         help="A home description (YAML; see docs/homes.md)")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate and report, change nothing")] = False,
    organisation: OrganisationOption = None,
) -> None:
    """Create or update homes and their devices' rooms and roles from a description file; with --organisation,
    the unassigned ones are claimed for that organisation."""
    try:
        description = load_description(file)
    except HomesFileError as e:
        raise _fail(str(e)) from None
    url = db_url_from_env()
    require_head(url)
    engine = make_engine(url)
    claimed: list[str] = []
    try:
        with make_session_factory(engine)() as session:
            report = import_homes(session, description)
            ids = [h.id for h in description.homes]
            if organisation is not None:
                claimed = _claim_imported(session, ids, organisation)
            unassigned = list(session.scalars(select(Home.id).where(Home.id.in_(ids), Home.organisation_id.is_(None))))
            if dry_run:
                session.rollback()
            else:
                session.commit()
    finally:
        engine.dispose()
    typer.echo(("dry run, nothing changed\n" if dry_run else "") + report.summary())
    if claimed:
        typer.echo(claimed[0] + ", ".join(claimed[1:]))
    if unassigned:
        typer.echo(f"unassigned, so not in the API or dashboard until claimed: {', '.join(unassigned)} (add "
                   "--organisation NAME, or telecare homes claim HOME --organisation NAME)")


def _claim_imported(session: Session, home_ids: list[str], organisation: str) -> list[str]:
    """Claim the described homes that are unassigned; those already the organisation's are left as they are, and
    one claimed by another organisation stops the import (nothing is changed). Returns the heading ("claimed for
    ORG: ") and the homes claimed, or nothing."""
    try:
        org = organisation_named(session, organisation)
    except NotFound as e:
        session.rollback()
        raise _fail(str(e), 2) from None
    claimed = []
    at = datetime.now(UTC)
    for home in session.scalars(select(Home).where(Home.id.in_(home_ids)).order_by(Home.id)):
        if home.organisation_id == org.id:
            continue
        if home.organisation_id is not None:
            session.rollback()
            raise _fail(f"home {home.id!r} is cared for by another organisation, {_organisation_name(session, home)}"
                        f"; nothing was imported. It must release it first (POST /homes/{home.id}/release)", 2)
        claim_by_operator(session, home, org, at)
        claimed.append(home.id)
    return [f"claimed for {org.name}: ", *claimed] if claimed else []


def _organisation_name(session: Session, home: Home) -> str:
    org = session.get(Organisation, home.organisation_id) if home.organisation_id is not None else None
    return f"organisation {org.id} ({org.name})" if org is not None else "unassigned"


def claim_by_operator(session: Session, home: Home, org: Organisation, at: datetime) -> None:
    """Claim ``home`` for ``org`` on the operator's word, with the audit entry that says so. The caller commits."""
    claim_home(session, home, org.id, at)
    session.add(AuditEntry(organisation_id=org.id, at=at, actor=OPERATOR, action="claim", resource="home",
                           detail=f"home {home.id!r} ({home.name or 'no name'}) assigned by the operator"))


@homes_app.command("list")
def homes_list() -> None:
    """List the homes: imported or discovered, claimed or not, their hub and devices, and how many of those still
    need setting up (a button without the role pendant is named: its presses page as a possible pendant)."""
    url = db_url_from_env()
    require_head(url)
    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as session:
            counts = (select(Device.home_id, func.count().label("n")).group_by(Device.home_id).subquery())
            rows = session.execute(
                select(Home, func.coalesce(counts.c.n, 0), Organisation.name)
                .outerjoin(counts, counts.c.home_id == Home.id)
                .outerjoin(Organisation, Organisation.id == Home.organisation_id)
                .order_by(Home.id)).all()
            unset = _not_set_up(session)
    finally:
        engine.dispose()
    if not rows:
        typer.echo("no homes yet: import a description (telecare homes import FILE) or start the gateway")
        return
    table = [("HOME", "NAME", "ORGANISATION", "TIMEZONE", "HUB", "DEVICES", "NOT SET UP", "LAST SEEN (UTC)")]
    for home, devices, org_name in rows:
        hub = {True: "online", False: "offline", None: "-"}[home.hub_online]
        names, buttons = unset.get(home.id, ([], []))
        not_set_up = f"{len(names)} ({len(buttons)} button{'s' * (len(buttons) != 1)})" if buttons \
            else str(len(names))
        table.append((home.id, home.name or "-",
                      org_name if home.organisation_id is not None else "unassigned",
                      home.timezone, hub, str(devices), not_set_up, _when(home.last_seen)))
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        typer.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    # A button not set up is the urgent one: each press pages the resident's chain as a possible pendant.
    for home_id, (_, buttons) in sorted(unset.items()):
        if buttons:
            typer.echo(f"{home_id}: button(s) not set up: {', '.join(buttons)}. Each press is raised as a possible "
                       f"pendant press (an emergency) until the button is given the role pendant (telecare homes "
                       f"import, or PATCH /homes/{home_id}/devices/ID).")
    if any(home.organisation_id is None for home, _, _ in rows):
        typer.echo("unassigned homes are not in the API or dashboard: telecare homes claim HOME --organisation NAME "
                   "(or telecare setup)")
    if unset:
        typer.echo("NOT SET UP: devices with no room or role, and buttons without the role pendant "
                   "(GET /devices/needs-setting-up lists them; docs/homes.md says how to describe them).")


def _not_set_up(session: Session) -> dict[str, tuple[list[str], list[str]]]:
    """Per home, the devices that need setting up and, of those, the buttons not set up (names, sorted)."""
    out: dict[str, tuple[list[str], list[str]]] = {}
    # Only devices without a role, or buttons (a button may have the wrong one), can need setting up.
    candidates = session.execute(select(Device.home_id, Device.name, Device.kind, Device.room, Device.role)
                                 .where(Device.role.is_(None) | (Device.kind == "button"))
                                 .order_by(Device.home_id, Device.name))
    for home_id, name, kind, room, role in candidates:
        if setting_up_needed(kind, room, role) is None:
            continue
        names, buttons = out.setdefault(home_id, ([], []))
        names.append(name)
        if unconfirmed_button(kind, role):
            buttons.append(name)
    return out


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value is not None else "never"


@homes_app.command("claim-code")
def homes_claim_code(home: Annotated[str, typer.Argument(help="The home's id")]) -> None:
    """Issue a new claim code for an unassigned home (replacing any earlier one), printed once: give it to the
    organisation that will care for the home, which claims it with POST /homes/{id}/claim."""
    with db_session(write=True, refused=(ClaimError,)) as session:
        found = _unassigned(session, home)
        code = issue_claim_code(found)
    typer.echo(code)
    typer.echo(f"the claim code of home {home!r}, shown once (only its hash is kept); it works once", err=True)


@homes_app.command("claim")
def homes_claim(
    home: Annotated[str, typer.Argument(help="The home's id")],
    organisation: Annotated[str, typer.Option("--organisation", help="The organisation's name or id")],
) -> None:
    """Assign an unassigned home to an organisation (the operator's word instead of the home's claim code)."""
    with db_session(write=True, refused=(ClaimError,)) as session:
        org = organisation_named(session, organisation)
        found = session.get(Home, home)
        if found is not None and found.organisation_id == org.id:
            typer.echo(f"home {home!r} is cared for by {org.name} (organisation {org.id}) already")
            return
        found = _unassigned(session, home)
        claim_by_operator(session, found, org, datetime.now(UTC))
    typer.echo(f"home {home!r} is now cared for by {org.name} (organisation {org.id})")



def _unassigned(session: Session, home_id: str) -> Home:
    home = session.scalar(select(Home).where(Home.id == home_id).with_for_update())
    if home is None:
        raise ClaimError(f"no home {home_id!r}: import its description (telecare homes import) or start the "
                         "gateway so it is discovered")
    if home.organisation_id is not None:
        raise ClaimError(f"home {home_id!r} is claimed by {_organisation_name(session, home)}: it must release it "
                         f"first (POST /homes/{home_id}/release)")
    return home
