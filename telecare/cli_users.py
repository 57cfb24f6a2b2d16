"""``telecare users list`` and ``telecare users reset-password``: the people who log in, from the command line.

``users add`` lives with the API command (telecare/cli_api.py); these join it under ``telecare users``. Nothing
secret is shown: no password hashes, no tokens. Errors are one line on stderr and exit code 2.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy import func, select

from gateway.db.models import AuditEntry, AuthToken, Organisation, User
from telecare.cli_common import NotFound, db_session, organisation_named, print_table, read_password
from telecare.cli_db import OPERATOR

PasswordFile = Annotated[Path | None, typer.Option(
    "--password-file", help="Read the new password from the first line of this file (- for standard input); "
                            "else it is prompted for, without echo", dir_okay=False)]


def add_user_commands(users_app: typer.Typer) -> None:
    users_app.command("list")(users_list)
    users_app.command("reset-password")(users_reset_password)


def users_list(
    organisation: Annotated[str | None, typer.Option("--organisation", help="Only this organisation's (name or id)"
                                                     )] = None,
) -> None:
    """List who can log in: email, name, role, organisation, whether active, and how many sessions are open."""
    now = datetime.now(UTC)
    with db_session(write=False) as session:
        sessions_open = (select(AuthToken.user_id, func.count().label("n"))
                         .where(AuthToken.revoked_at.is_(None), AuthToken.expires_at > now)
                         .group_by(AuthToken.user_id).subquery())
        query = (select(User, Organisation.name, func.coalesce(sessions_open.c.n, 0))
                 .join(Organisation, Organisation.id == User.organisation_id)
                 .outerjoin(sessions_open, sessions_open.c.user_id == User.id)
                 .order_by(Organisation.name, User.email))
        if organisation is not None:
            query = query.where(User.organisation_id == organisation_named(session, organisation).id)
        rows: list[Sequence[str]] = [("ID", "EMAIL", "NAME", "ROLE", "ORGANISATION", "ACTIVE", "SESSIONS")]
        for user, org_name, open_sessions in session.execute(query):
            rows.append((str(user.id), user.email, user.name, user.role, org_name, "yes" if user.active else "no",
                         str(open_sessions)))
    print_table(rows, "no users yet: telecare setup (or telecare users add EMAIL --name NAME --organisation ORG)")


def users_reset_password(
    email: Annotated[str, typer.Argument(help="The user's email (their login name)")],
    password_file: PasswordFile = None,
) -> None:
    """Give a user a new password (prompted twice, never echoed) and sign them out everywhere: every login token
    of theirs is revoked. Recorded in the organisation's audit trail."""
    from api.security import hash_password, normalise_email, revoke_all_tokens

    email = normalise_email(email)
    with db_session(write=False) as session:  # found before the prompt: no typing a password for nobody
        if session.scalar(select(User.id).where(User.email == email)) is None:
            raise NotFound(f"no user {email}: see telecare users list")
    password = read_password(password_file)
    new_hash = hash_password(password)
    now = datetime.now(UTC)
    with db_session(write=True) as session:
        user = session.scalar(select(User).where(User.email == email))
        if user is None:
            raise NotFound(f"no user {email}: see telecare users list")
        open_tokens = session.scalar(select(func.count()).select_from(AuthToken).where(
            AuthToken.user_id == user.id, AuthToken.revoked_at.is_(None), AuthToken.expires_at > now)) or 0
        user.password_hash = new_hash
        revoke_all_tokens(session, user.id, now)
        session.add(AuditEntry(organisation_id=user.organisation_id, at=now, actor=OPERATOR,
                               action="password_change", resource="user",
                               detail=f"password of {email} (user {user.id}) reset by the operator; signed out"))
        active = user.active
    typer.echo(f"password of {email} reset; {open_tokens} open session{'s' * (open_tokens != 1)} signed out")
    if not active:
        typer.echo(f"note: {email} is deactivated: they still cannot log in until an admin reactivates them",
                   err=True)
