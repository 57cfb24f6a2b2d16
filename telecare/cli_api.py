"""``telecare api`` (serve the API) and ``telecare users add`` (an organisation's first admin, or anyone after).

Errors are one line on stderr and exit code 2.
"""

from __future__ import annotations

import os
import re
import sys
from typing import TYPE_CHECKING, Annotated

import typer
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from gateway.db import migrate
from gateway.db.models import Organisation, User
from gateway.db.session import make_engine, make_session_factory
from telecare.cli_common import fail, logging_set_up, settings_or_exit

if TYPE_CHECKING:
    from fastapi import FastAPI

WORKERS_ENV = "TELECARE_API_WORKERS"  # set by serve_api for api.security; not a setting of its own

ROLES = ("admin", "coordinator", "carer")
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")

users_app = typer.Typer(help="People who log in to the API (admins, coordinators, carers).", no_args_is_help=True)


def add_api_commands(app: typer.Typer) -> None:
    app.command("api")(api)
    app.add_typer(users_app, name="users")


def api(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on")] = 8000,
    workers: Annotated[int, typer.Option(
        min=1, max=64, help="Server processes (PostgreSQL only): about one per core; docs/benchmarks.md, API")] = 1,
    log_level: Annotated[str, typer.Option(help="debug, info, warning ...")] = "info",
) -> None:
    """Serve the API (OpenAPI docs at /docs), after migrating the operational database."""
    # The API's own lines (and the gateway modules') take TELECARE_LOG_FORMAT; uvicorn keeps its own handlers for
    # its startup and access lines (docs/production.md, "Logs").
    with logging_set_up(log_level):
        settings = settings_or_exit()
        if workers > 1 and not settings.database_url.startswith("postgresql"):
            raise fail(f"--workers {workers} needs PostgreSQL (TELECARE_DB_URL=postgresql+psycopg://...): SQLite "
                       "takes one writer at a time, and the API keeps its login throttle in the process there; "
                       "serve SQLite with one process")
        try:
            migrate.upgrade(settings.database_url)
        except SQLAlchemyError as e:
            raise fail(f"cannot migrate the operational database: {type(e).__name__}: {getattr(e, 'orig', e)}"
                       ) from None
        serve_api(host, port, workers=workers, log_level=log_level.lower())


def serve_api(host: str, port: int, *, workers: int = 1, log_level: str = "info") -> None:
    """The API under uvicorn: in this process, or in ``workers`` processes sharing the port.

    Several processes share nothing but the database: each has its own connection pool, readings store and
    claim-code throttle (the login throttle is in the database on PostgreSQL). Each is told how many there
    are (``TELECARE_API_WORKERS``), so the password hashing they allow at once still adds up to half the cores."""
    import uvicorn

    os.environ[WORKERS_ENV] = str(workers)  # inherited by the worker processes
    if workers == 1:
        from api.app import create_app

        uvicorn.run(create_app(settings_or_exit()), host=host, port=port, log_level=log_level)
        return
    # Each worker process imports the application afresh, so it is named rather than passed.
    uvicorn.run("telecare.cli_api:app_from_environment", factory=True, host=host, port=port, workers=workers,
                log_level=log_level)


def app_from_environment() -> FastAPI:
    """The API from the environment's settings: what each of several server processes builds."""
    from api.app import create_app

    return create_app(settings_or_exit())


@users_app.command("add")
def users_add(
    email: Annotated[str, typer.Argument(help="The login name")],
    name: Annotated[str, typer.Option("--name", help="The person's name, as others see it")],
    organisation: Annotated[str, typer.Option("--organisation", help="Created if it does not exist")],
    role: Annotated[str, typer.Option("--role", help="admin, coordinator or carer")] = "admin",
    password_stdin: Annotated[bool, typer.Option("--password-stdin",
                                                 help="Read the password from stdin (else prompted)")] = False,
) -> None:
    """Add a user to an organisation (creating it): the way to create the first admin."""
    from api.security import MAX_PASSWORD_LEN, MIN_PASSWORD_LEN, hash_password, normalise_email

    email = normalise_email(email)
    if not EMAIL.fullmatch(email) or len(email) > 254:
        raise fail(f"{email!r} is not an email address")
    if role not in ROLES:
        raise fail(f"unknown role {role!r}: one of {', '.join(ROLES)}")
    name, organisation = name.strip(), organisation.strip()
    if not name or len(name) > 200:
        raise fail("--name must be 1 to 200 characters")
    if not organisation or len(organisation) > 200:
        raise fail("--organisation must be 1 to 200 characters")
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    if not MIN_PASSWORD_LEN <= len(password) <= MAX_PASSWORD_LEN:
        raise fail(f"the password must be {MIN_PASSWORD_LEN} to {MAX_PASSWORD_LEN} characters")

    url = settings_or_exit().database_url
    try:
        current = migrate.current_revision(url)
    except SQLAlchemyError as e:
        raise fail(f"cannot open the operational database: {type(e).__name__}: {getattr(e, 'orig', e)}") from None
    if current != migrate.head_revision():
        raise fail("the operational database is not at the newest schema; run `telecare db upgrade` first")
    engine = make_engine(url)
    try:
        with make_session_factory(engine).begin() as session:
            if session.scalar(select(User.id).where(User.email == email)) is not None:
                raise fail(f"a user with the email {email} exists already")
            orgs = session.scalars(select(Organisation).where(
                func.lower(Organisation.name) == organisation.lower())).all()
            if len(orgs) > 1:
                raise fail(f"several organisations are named {organisation!r}: ids "
                            f"{', '.join(str(o.id) for o in orgs)}")
            created = not orgs
            org = orgs[0] if orgs else Organisation(name=organisation)
            session.add(org)
            session.flush()
            user = User(organisation_id=org.id, email=email, name=name, role=role,
                        password_hash=hash_password(password), active=True)
            session.add(user)
            session.flush()
            user_id, org_id, org_name = user.id, org.id, org.name
    except SQLAlchemyError as e:
        raise fail(f"database error: {type(e).__name__}: {getattr(e, 'orig', e)}") from None
    finally:
        engine.dispose()
    typer.echo(f"{'created organisation ' + repr(org_name) + f' (id {org_id}); ' if created else ''}"
               f"added {role} {email} (user {user_id}) to {org_name!r}")
