"""``telecare residents|recipients|chain|away ...``: who lives where, who is alerted, in what order, who is away.

Every error is a one-line message and exit code 2.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Annotated
from zoneinfo import ZoneInfo

import typer
from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.core import TyperGroup

from gateway import timezones
from gateway.alerting import people
from gateway.alerting.errors import PeopleError
from gateway.db.models import Absence, EscalationStep, Home, Organisation, Recipient, Resident
from gateway.notify.errors import DeliveryError
from gateway.notify.pushover import PushoverClient
from telecare.cli_common import db_session, fail, organisation_named, print_table, settings_or_exit
from telecare.cli_db import OrganisationOption, claim_by_operator


class _AwayGroup(TyperGroup):
    """``telecare away HOME ...`` means ``telecare away add HOME ...``; ``list`` and ``end`` are subcommands."""

    # typer passes its own Context (a subclass of the click it vendors), which is all this reads.
    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:  # type: ignore[override]
        if args and not args[0].startswith("-") and args[0] not in self.commands:
            args = ["add", *args]
        return super().parse_args(ctx, args)


residents_app = typer.Typer(help="Residents: the person living (alone) in each home.", no_args_is_help=True)
recipients_app = typer.Typer(help="Recipients: the people alerted, by Pushover.", no_args_is_help=True)
chain_app = typer.Typer(help="Escalation chains: who is alerted, in what order, after how long.",
                        no_args_is_help=True)
away_app = typer.Typer(cls=_AwayGroup, no_args_is_help=True,
                       help="Planned absences (holiday, hospital): `telecare away HOME --from ... --until ...`, "
                            "`telecare away list`, `telecare away end ID`.")


def add_people_commands(app: typer.Typer) -> None:
    app.add_typer(residents_app, name="residents")
    app.add_typer(recipients_app, name="recipients")
    app.add_typer(chain_app, name="chain")
    app.add_typer(away_app, name="away")


# --- plumbing ----------------------------------------------------------------------------------------------------


def _session(*, write: bool) -> AbstractContextManager[Session]:
    return db_session(write=write, refused=(PeopleError,))


_table = print_table


def _when(value: datetime | None, tz: ZoneInfo | None = None) -> str:
    if value is None:
        return "-"
    return value.astimezone(tz or UTC).strftime("%Y-%m-%d %H:%M")


def _parse_time(text: str, tz: ZoneInfo, option: str) -> datetime:
    """ISO 8601; without an offset it is the home's local time."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise fail(f"{option} {text!r}: not an ISO 8601 time (e.g. 2026-12-24 or 2026-12-24T10:00)") from None
    return value.replace(tzinfo=tz) if value.tzinfo is None else value


def _note(message: str) -> None:
    """Something the operator should know (not an error): on standard error, so the result line stays parseable."""
    typer.echo(f"note: {message}", err=True)


def _organisation_hint(session: Session) -> str:
    """``NAME`` in a suggested command, or the organisation's own name when there is only one."""
    names = list(session.scalars(select(Organisation.name).limit(2)))
    return repr(names[0]) if len(names) == 1 else "NAME"


def _chain_text(steps: list[EscalationStep]) -> str:
    return " → ".join(f"{s.recipient.name} ({s.wait_min} min)" for s in steps) or "no chain"


# --- residents ---------------------------------------------------------------------------------------------------


@residents_app.command("add")
def residents_add(
    home: Annotated[str, typer.Argument(help="The home's id (as in its MQTT topics)")],
    name: Annotated[str, typer.Option("--name", help="The resident's name, as carers know them")],
    notes: Annotated[str | None, typer.Option("--notes", help="Anything a carer should know")] = None,
    organisation: OrganisationOption = None,
) -> None:
    """Add the resident of a home (one per home). With --organisation, an unassigned home is claimed for it first,
    so the resident shows in the API and dashboard."""
    with _session(write=True) as session:
        found = session.get(Home, home)
        if organisation is not None and found is not None:
            _claim_for(session, found, organisation)
        resident = people.add_resident(session, home, name, notes)
        unassigned = found is not None and found.organisation_id is None
        hint = _organisation_hint(session) if unassigned else ""
    typer.echo(f"resident {resident.id}: {resident.name} in home {home}; "
               f"next: `telecare chain set {home} RECIPIENT_ID:WAIT_MIN ...`")
    if unassigned:
        _note(f"home {home} belongs to no organisation, so {resident.name} is not in the API or dashboard until it "
              f"is claimed: telecare homes claim {home} --organisation {hint}")


def _claim_for(session: Session, home: Home, organisation: str) -> None:
    """Claim an unassigned ``home`` for ``organisation``; one already its own is fine, another's is refused."""
    org = organisation_named(session, organisation)
    if home.organisation_id is None:
        claim_by_operator(session, home, org, datetime.now(UTC))
        typer.echo(f"home {home.id} claimed for {org.name}")
    elif home.organisation_id != org.id:
        raise PeopleError(f"home {home.id!r} is cared for by another organisation (id {home.organisation_id}), not "
                          f"{org.name}")


@residents_app.command("list")
def residents_list() -> None:
    """List the residents, their homes' time zones and escalation chains."""
    with _session(write=False) as session:
        rows: list[Sequence[str]] = [("ID", "HOME", "NAME", "ORGANISATION", "TIMEZONE", "CHAIN")]
        for resident, home, org_name in session.execute(
                select(Resident, Home, Organisation.name).join(Home, Home.id == Resident.home_id)
                .outerjoin(Organisation, Organisation.id == Home.organisation_id).order_by(Resident.id)):
            rows.append((str(resident.id), home.id, resident.name, org_name or "unassigned", home.timezone,
                         _chain_text(resident.steps)))
    _table(rows, "no residents yet: telecare residents add HOME --name NAME")


# --- recipients --------------------------------------------------------------------------------------------------


@recipients_app.command("add")
def recipients_add(
    name: Annotated[str, typer.Argument(help="Who they are, as the others will read it (\"Anne (daughter)\")")],
    pushover_user: Annotated[str, typer.Option("--pushover-user", help="Their Pushover user (or group) key")],
    device: Annotated[str | None, typer.Option("--device", help="Only this Pushover device of theirs")] = None,
    validate: Annotated[bool, typer.Option("--validate", help="Ask Pushover whether the key is valid")] = False,
    organisation: Annotated[str | None, typer.Option(
        "--organisation", help="The organisation (name or id) they alert for: needed to see and use them in the API "
                               "and dashboard")] = None,
) -> None:
    """Add someone to be alerted."""
    if validate:
        _validate(pushover_user)
    with _session(write=True) as session:
        org = organisation_named(session, organisation) if organisation is not None else None
        recipient = people.add_recipient(session, name, pushover_user, device, org.id if org else None)
        hint = "" if org else _organisation_hint(session)
    typer.echo(f"recipient {recipient.id}: {recipient.name}" + (f" ({org.name})" if org else ""))
    if org is None:
        _note(f"{recipient.name} belongs to no organisation, so the API and dashboard do not show them; add "
              f"--organisation {hint} when adding recipients")


def _validate(user_key: str) -> None:
    settings = settings_or_exit()
    if settings.pushover_token is None:
        raise fail("--validate needs TELECARE_PUSHOVER_TOKEN (the Pushover application token)")
    if not people.USER_KEY.fullmatch(user_key):
        raise fail(f"{user_key!r} is not a Pushover user key (30 letters and digits)")
    client = PushoverClient(settings.pushover_url, settings.pushover_token.get_secret_value(),
                            settings.pushover_timeout_s)
    try:
        valid = client.validate_user(user_key)
    except DeliveryError as e:
        raise fail(f"cannot validate the key with Pushover: {e.reason}") from None
    if not valid:
        raise fail("Pushover says this user key is invalid (or has no active device)")


@recipients_app.command("list")
def recipients_list() -> None:
    """List the recipients (keys shortened)."""
    with _session(write=False) as session:
        rows: list[Sequence[str]] = [("ID", "NAME", "ORGANISATION", "PUSHOVER USER", "DEVICE")]
        for r, org_name in session.execute(select(Recipient, Organisation.name).outerjoin(
                Organisation, Organisation.id == Recipient.organisation_id).order_by(Recipient.id)):
            rows.append((str(r.id), r.name, org_name or "none", r.pushover_user_key[:6] + "…",
                         r.pushover_device or "all"))
    _table(rows, "no recipients yet: telecare recipients add NAME --pushover-user KEY")


# --- chains ------------------------------------------------------------------------------------------------------


@chain_app.command("set")
def chain_set(
    home: Annotated[str, typer.Argument(help="The home's id")],
    steps: Annotated[list[str], typer.Argument(help="RECIPIENT_ID:WAIT_MIN, in order (e.g. 1:15 2:15 3:30)")],
) -> None:
    """Replace a resident's escalation chain: each step has WAIT_MIN minutes to acknowledge before the next."""
    try:
        parsed = [people.parse_step(s) for s in steps]
    except PeopleError as e:
        raise fail(str(e)) from None
    with _session(write=True) as session:
        _same_organisation(session, home, [recipient_id for recipient_id, _ in parsed])
        rows = people.set_chain(session, home, parsed)
        for row in rows:
            session.refresh(row, ["recipient"])
        text = _chain_text(rows)
    typer.echo(f"chain of home {home}: {text}")


def _same_organisation(session: Session, home_id: str, recipient_ids: list[int]) -> None:
    """A claimed home's chain alerts only its organisation's recipients (as the API requires): another
    organisation's is refused; one of none is allowed, with a note (it came from before organisations)."""
    found = session.get(Home, home_id)
    if found is None or found.organisation_id is None:
        return
    others = session.execute(select(Recipient.id, Recipient.name, Recipient.organisation_id)
                             .where(Recipient.id.in_(recipient_ids))).all()
    foreign = [f"{rid} ({name})" for rid, name, org_id in others if org_id not in (None, found.organisation_id)]
    if foreign:
        raise fail(f"recipient {', '.join(foreign)} belongs to another organisation than home {home_id}'s: a chain "
                   "alerts only the organisation's own recipients")
    loose = [f"{rid} ({name})" for rid, name, org_id in others if org_id is None]
    if loose:
        _note(f"recipient {', '.join(loose)} belongs to no organisation: the API and dashboard do not show them")


@chain_app.command("show")
def chain_show(home: Annotated[str, typer.Argument(help="The home's id")]) -> None:
    """Show a resident's escalation chain."""
    with _session(write=False) as session:
        resident = people.resident_for(session, home)
        typer.echo(f"{resident.name} ({home}): {_chain_text(resident.steps)}")


# --- absences ----------------------------------------------------------------------------------------------------


@away_app.command("add")
def away_add(
    home: Annotated[str, typer.Argument(help="The home's id")],
    reason: Annotated[str, typer.Option("--reason", help="Holiday, hospital ...")],
    starts: Annotated[str | None, typer.Option("--from", help="ISO 8601, home's local time unless an offset is "
                                                              "given (default: now)")] = None,
    until: Annotated[str | None, typer.Option("--until", help="ISO 8601 (default: until `away end`)")] = None,
) -> None:
    """Record a planned absence: no inactivity alerts while the resident is away."""
    with _session(write=True) as session:
        h = session.get(Home, home)
        tz = timezones.zone(h.timezone if h is not None else None, of=f"home {home}")
        start = _parse_time(starts, tz, "--from") if starts else datetime.now(UTC)
        end = _parse_time(until, tz, "--until") if until else None
        absence = people.add_absence(session, home, start, end, reason)
    typer.echo(f"absence {absence.id}: home {home} away from {_when(start, tz)} until "
               f"{_when(end, tz) if end else 'further notice'} ({tz.key}): {absence.reason}")


@away_app.command("list")
def away_list(
    home: Annotated[str | None, typer.Argument(help="Only this home")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Include absences that are over")] = False,
) -> None:
    """List current and planned absences."""
    now = datetime.now(UTC)
    with _session(write=False) as session:
        query = (select(Absence, Resident, Home).join(Resident, Resident.id == Absence.resident_id)
                 .join(Home, Home.id == Resident.home_id).order_by(Absence.starts_at))
        if home is not None:
            query = query.where(Home.id == home)
        rows: list[Sequence[str]] = [("ID", "HOME", "RESIDENT", "FROM", "UNTIL", "REASON")]
        for absence, resident, h in session.execute(query):
            if not all_ and absence.ends_at is not None and absence.ends_at <= now:
                continue
            tz = timezones.zone(h.timezone, of=f"home {h.id}")
            rows.append((str(absence.id), h.id, resident.name, _when(absence.starts_at, tz),
                         _when(absence.ends_at, tz) if absence.ends_at else "open-ended", absence.reason))
    _table(rows, "no absences" + ("" if all_ else " now or planned (--all shows past ones)"))


@away_app.command("end")
def away_end(absence_id: Annotated[int, typer.Argument(min=1, help="The absence's id (telecare away list)")]
             ) -> None:
    """End an absence now (the resident is back)."""
    with _session(write=True) as session:
        absence = people.end_absence(session, absence_id, datetime.now(UTC))
    typer.echo(f"absence {absence.id} ended at {_when(absence.ends_at)} UTC")

