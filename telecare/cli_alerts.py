"""``telecare alerts list|resolve|outcome``: find an alert's id, resolve it with what was found, or record what was
found on an alert that cleared by itself.

The same services as the API and the dashboard (the gateway's dispatcher tells whoever was alerted). Every error is
a one-line message and exit code 2.
"""

from __future__ import annotations

import getpass
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated

import typer
from sqlalchemy import select

from analytics.alerts import AlertKind, Outcome
from gateway import timezones
from gateway.alerting import service
from gateway.alerting.errors import AlertError
from gateway.alerting.outcomes import label, parse_outcome
from gateway.alerting.states import AlertState
from gateway.db.models import Alert, Home, Resident
from telecare.cli_common import db_session, fail, print_table

alerts_app = typer.Typer(no_args_is_help=True,
                         help="Alerts: `telecare alerts list`, `telecare alerts resolve ID --outcome ... --note ...`, "
                              "`telecare alerts outcome ID --outcome ...` (one that cleared by itself).")
OUTCOMES = ", ".join(o.value for o in Outcome)
MESSAGE_WIDTH = 70
# Mistakes a person can make: an unknown or already resolved alert, an open one given an outcome, an empty name.
REFUSED = (AlertError, ValueError)


def add_alert_commands(app: typer.Typer) -> None:
    app.add_typer(alerts_app, name="alerts")


def _outcome(text: str | None) -> Outcome | None:
    if text is None:
        return None
    try:
        return parse_outcome(text)
    except ValueError as e:
        raise fail(f"--outcome: {e}") from None


def _by(by: str | None) -> str:
    """Who did it, as the timeline and the carers' messages name them: by default the operator's login name."""
    if by is not None:
        if not by.strip():
            raise fail("--by: name who did it (it is written in the alert's timeline)")
        return by.strip()
    try:
        return f"{getpass.getuser()} (CLI)"
    except (KeyError, OSError):
        return "operator (CLI)"


def _clip(text: str, width: int = MESSAGE_WIDTH) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width - 1] + "…"


@alerts_app.command("list")
def alerts_list(
    all_: Annotated[bool, typer.Option("--all", help="Resolved alerts too (newest first)")] = False,
    awaiting_outcome: Annotated[bool, typer.Option(
        "--awaiting-outcome", help="Resolved alerts nobody has said the outcome of (e.g. cleared by themselves)")
    ] = False,
    home: Annotated[str | None, typer.Option(help="Only this home")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many")] = 50,
) -> None:
    """List open alerts, most severe first, with their ids (times in each home's time zone)."""
    query = (select(Alert, Resident.name, Home.timezone).join(Home, Home.id == Alert.home_id)
             .outerjoin(Resident, Resident.id == Alert.resident_id))
    if awaiting_outcome:
        query = query.where(Alert.state == AlertState.RESOLVED, Alert.outcome.is_(None),
                            Alert.kind != AlertKind.RETURNED)
    elif not all_:
        query = query.where(Alert.state != AlertState.RESOLVED)
    if home is not None:
        query = query.where(Alert.home_id == home)
    if all_ or awaiting_outcome:
        query = query.order_by(Alert.raised_at.desc(), Alert.id.desc())
    else:
        query = query.order_by(Alert.severity.desc(), Alert.raised_at, Alert.id)
    rows: list[Sequence[str]] = [("ID", "RAISED", "HOME", "RESIDENT", "KIND", "STATE", "OUTCOME", "MESSAGE")]
    with db_session(write=False) as session:
        for alert, resident, timezone in session.execute(query.limit(limit)):
            local = alert.raised_at.astimezone(timezones.zone(timezone, of=f"home {alert.home_id}"))
            raised = local.strftime("%Y-%m-%d %H:%M")
            kind = f"{alert.kind} [{alert.subject}]" if alert.subject else alert.kind
            cleared = alert.state == AlertState.RESOLVED and alert.resolved_by == service.AUTO
            state = "cleared" if cleared else alert.state
            rows.append((str(alert.id), raised, alert.home_id, resident or "-", kind, state, alert.outcome or "-",
                         _clip(alert.message)))
    print_table(rows, "no open alerts" if not (all_ or awaiting_outcome) else "no alerts")


@alerts_app.command("resolve")
def alerts_resolve(
    alert_id: Annotated[int, typer.Argument(help="The alert's id (telecare alerts list)")],
    note: Annotated[str, typer.Option(help="What was found and done")],
    outcome: Annotated[str | None, typer.Option(help=f"What was found: {OUTCOMES}")] = None,
    by: Annotated[str | None, typer.Option(help="Who resolved it (default: your login name)")] = None,
) -> None:
    """Resolve an alert with a note and what was found; everyone alerted is told."""
    found, who = _outcome(outcome), _by(by)
    if not note.strip():
        raise fail("--note: say what was found and done")
    with db_session(write=True, refused=REFUSED) as session:
        alert = service.resolve(session, alert_id, who, note.strip(), datetime.now(UTC), outcome=found)
        kind, home = alert.kind, alert.home_id
    said = f": {label(found)}" if found is not None else " (no outcome given: add it with `telecare alerts outcome`)"
    typer.echo(f"alert {alert_id} ({kind}, home {home}) resolved by {who}{said}; whoever was alerted is told")


@alerts_app.command("outcome")
def alerts_outcome(
    alert_id: Annotated[int, typer.Argument(help="The alert's id (telecare alerts list --awaiting-outcome)")],
    outcome: Annotated[str, typer.Option(help=f"What was found: {OUTCOMES}")],
    note: Annotated[str | None, typer.Option(help="What was found, in words")] = None,
    by: Annotated[str | None, typer.Option(help="Who found it (default: your login name)")] = None,
) -> None:
    """Record what was found on a resolved alert (one that cleared by itself), or correct it."""
    found, who = _outcome(outcome), _by(by)
    assert found is not None
    with db_session(write=True, refused=REFUSED) as session:
        alert = service.record_outcome(session, alert_id, found, who, (note or "").strip() or None,
                                       datetime.now(UTC))
        kind, home = alert.kind, alert.home_id
    typer.echo(f"alert {alert_id} ({kind}, home {home}): {label(found)}, recorded by {who}")
