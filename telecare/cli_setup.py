"""``telecare setup``: the first run. Creates (or migrates) the operational database, the organisation and its
first admin, claims the homes the gateway discovered or descriptions imported (all unassigned ones, or those named
with ``--home``), and says what to do next.

Run twice, it changes nothing that exists (an existing admin keeps their password) and says so; it claims homes
that appeared since. Errors are one line on stderr and exit code 2, and nothing is changed.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import urlsplit

import typer
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from gateway.db import migrate
from gateway.db.models import Home, Organisation, User
from telecare.cli_api import EMAIL
from telecare.cli_common import NotFound, db_session, fail, read_password, settings_or_exit
from telecare.cli_db import claim_by_operator
from telecare.cli_users import PasswordFile

PASSWORD_ENV = "TELECARE_ADMIN_PASSWORD"  # for scripted installs; a file (--password-file) is better still
MAX_NAME_LEN = 200


@dataclass
class _Plan:
    """What setup finds before changing anything."""

    organisation: Organisation | None = None
    admin: User | None = None
    to_claim: list[str] = field(default_factory=list)
    already_ours: list[str] = field(default_factory=list)
    homes_known: int = 0
    others: int = 0  # homes of other organisations, left alone


def setup(
    organisation: Annotated[str, typer.Option("--organisation", prompt="Organisation (care provider) name",
                                              help="The organisation: created, or found by name")],
    email: Annotated[str, typer.Option("--email", prompt="First admin's email (their login)",
                                       help="The first admin's email, their login name")],
    name: Annotated[str, typer.Option("--name", prompt="First admin's name", help="The admin's name")],
    home: Annotated[list[str] | None, typer.Option(
        "--home", help="Claim this home (repeat for several); default: every unassigned home")] = None,
    password_file: PasswordFile = None,
    api_url: Annotated[str, typer.Option("--api-url", help="Where the API will be reached, for the next steps"
                                         )] = "http://127.0.0.1:8000",
) -> None:
    """First run: create your organisation and its first admin, claim the homes, and say what to do next.

    Creates or migrates the database too. The admin's password is prompted for (never echoed), or read from
    --password-file or TELECARE_ADMIN_PASSWORD. Safe to run again: what exists is kept, new homes are claimed."""
    from api.security import normalise_email

    email, name, organisation = normalise_email(email), name.strip(), organisation.strip()
    _check_names(email, name, organisation)
    if urlsplit(api_url).scheme not in ("http", "https") or not urlsplit(api_url).hostname:
        raise fail(f"--api-url {api_url!r} must be an http:// or https:// URL, e.g. https://telecare.example.org")
    url = settings_or_exit().database_url
    try:
        migrate.upgrade(url)
    except SQLAlchemyError as e:
        raise fail(f"cannot create or migrate the operational database: {type(e).__name__}: "
                   f"{getattr(e, 'orig', e)}") from None
    with db_session(write=False) as session:  # look first: nothing is asked or changed for a mistake
        plan = _plan(session, organisation, email, home or [])
    password = None if plan.admin is not None else read_password(password_file, env=PASSWORD_ENV)
    with db_session(write=True) as session:
        # Planned again in the writing transaction: another setup or claim may have run meanwhile.
        plan = _plan(session, organisation, email, home or [])
        org_created, org = _apply(session, plan, organisation, email, name, password)
        org_id, org_name = org.id, org.name
        admin_id = plan.admin.id if plan.admin is not None else session.scalar(
            select(User.id).where(User.email == email))
    _report(plan, org_created, org_id, org_name, email, admin_id)
    _next_steps(org_name, email, api_url, homes=plan.homes_known + len(plan.to_claim))


def _check_names(email: str, name: str, organisation: str) -> None:
    if not EMAIL.fullmatch(email) or len(email) > 254:
        raise fail(f"{email!r} is not an email address")
    if not name or len(name) > MAX_NAME_LEN:
        raise fail(f"--name must be 1 to {MAX_NAME_LEN} characters")
    if not organisation or len(organisation) > MAX_NAME_LEN:
        raise fail(f"--organisation must be 1 to {MAX_NAME_LEN} characters")


def _plan(session: Session, organisation: str, email: str, homes: list[str]) -> _Plan:
    plan = _Plan()
    orgs = list(session.scalars(select(Organisation).where(func.lower(Organisation.name) == organisation.lower())))
    if len(orgs) > 1:
        raise NotFound(f"{len(orgs)} organisations are named {organisation!r} (ids "
                       f"{', '.join(str(o.id) for o in orgs)}): rename one in the dashboard, or use another name")
    plan.organisation = orgs[0] if orgs else None
    plan.admin = session.scalar(select(User).where(User.email == email))
    if plan.admin is not None and (plan.organisation is None or plan.admin.organisation_id != plan.organisation.id):
        theirs = session.get(Organisation, plan.admin.organisation_id)
        raise NotFound(f"{email} is a user of another organisation ({theirs.name if theirs else '?'}), not "
                       f"{organisation!r}: give another email, or the organisation's exact name")
    org_id = plan.organisation.id if plan.organisation is not None else None
    wanted = sorted(set(homes))
    query = select(Home).order_by(Home.id)
    found = {h.id: h for h in session.scalars(query.where(Home.id.in_(wanted)) if wanted else query)}
    missing = [h for h in wanted if h not in found]
    if missing:
        raise NotFound(f"no home {', '.join(map(repr, missing))}: start the gateway so the hubs are discovered, or "
                       "import their descriptions (telecare homes import FILE); telecare homes list shows them")
    for h in found.values():
        if h.organisation_id is None:
            plan.to_claim.append(h.id)
        elif h.organisation_id == org_id:
            plan.already_ours.append(h.id)
        elif wanted:  # named, but another organisation's: refused; with no --home it is simply not ours
            raise NotFound(f"home {h.id!r} is cared for by another organisation (id {h.organisation_id}): it must "
                           f"release it first (POST /homes/{h.id}/release)")
        else:
            plan.others += 1
    plan.homes_known = len(plan.already_ours)
    return plan


def _apply(session: Session, plan: _Plan, organisation: str, email: str, name: str,
           password: str | None) -> tuple[bool, Organisation]:
    from api.security import hash_password

    org, created = plan.organisation, plan.organisation is None
    if org is None:
        org = Organisation(name=organisation)
        session.add(org)
        session.flush()
    if plan.admin is None:
        if password is None:  # the admin vanished between looking and writing: ask again rather than guess
            raise NotFound(f"{email} changed while setting up; run telecare setup again")
        session.add(User(organisation_id=org.id, email=email, name=name, role="admin",
                         password_hash=hash_password(password), active=True))
    at = datetime.now(UTC)
    for home in session.scalars(select(Home).where(Home.id.in_(plan.to_claim)).order_by(Home.id)):
        claim_by_operator(session, home, org, at)
    session.flush()
    return created, org


def _report(plan: _Plan, org_created: bool, org_id: int, org_name: str, email: str, admin_id: int | None) -> None:
    typer.echo(f"organisation {org_name!r} (id {org_id}): {'created' if org_created else 'exists already'}")
    if plan.admin is None:
        typer.echo(f"admin {email} (user {admin_id}): created")
    else:
        role = "" if plan.admin.role == "admin" else f", a {plan.admin.role}, not an admin"
        typer.echo(f"user {email} (user {admin_id}): exists already{role}; password unchanged "
                   f"(telecare users reset-password {email} sets a new one)")
    if plan.to_claim:
        typer.echo(f"homes claimed for {org_name}: {', '.join(plan.to_claim)}")
    if plan.already_ours:
        typer.echo(f"homes already {org_name}'s: {', '.join(plan.already_ours)}")
    if not plan.to_claim and not plan.already_ours:
        typer.echo("no unassigned homes to claim")
    if plan.others:
        typer.echo(f"{plan.others} home{'s' * (plan.others != 1)} of other organisations left as they are")


def _next_steps(org_name: str, email: str, api_url: str, *, homes: int) -> None:
    org = shlex.quote(org_name)
    steps = []
    if homes == 0:
        steps.append("bring in the homes: import their descriptions (telecare homes import FILE --organisation "
                     f"{org}), or start the gateway so the hubs are discovered and run telecare setup again")
    steps += [
        "start the gateway, which receives the hubs' readings and raises alerts: telecare gateway",
        f"start the API and dashboard: telecare api, then open {api_url.rstrip('/')}/dashboard and log in as "
        f"{email}",
        f"add the people who are alerted: telecare recipients add NAME --pushover-user KEY --organisation {org}",
        f"add each home's resident: telecare residents add HOME --name NAME --organisation {org}",
        "set each resident's escalation chain: telecare chain set HOME RECIPIENT_ID:WAIT_MIN ... "
        "(telecare recipients list shows the ids)",
    ]
    typer.echo("next:")
    for number, step in enumerate(steps, 1):
        typer.echo(f"  {number}. {step}")

