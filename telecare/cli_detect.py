"""``telecare analyse`` (a recording through the gateway's detectors, alerts out as JSON Lines) and ``telecare
baseline warm`` (a home's history through them, their learned state saved for the gateway)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import orjson
import typer

from analytics.replay import AlertRecord, Replay
from gateway import timezones
from sensors_sim.recordings import NeutralCsvError, read_csv

baseline_app = typer.Typer(help="Detectors' learned baselines.", no_args_is_help=True)


def _iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def alert_json(record: AlertRecord) -> bytes:
    return orjson.dumps({"home": record.home, "kind": record.kind, "raised_at": _iso(record.raised_at_ms),
                         "cleared_at": _iso(record.cleared_at_ms), "message": record.message,
                         "severity": record.severity, "subject": record.subject}) + b"\n"


def analyse(
    events: Annotated[Path, typer.Argument(help="Neutral CSV (docs/neutral-csv.md); several homes may share it.",
                                           exists=True, dir_okay=False)],
    tz: Annotated[str, typer.Option("--tz", help="The homes' time zone (IANA name): routines are learned in "
                                    "local time.")] = "Europe/London",
    learn_days: Annotated[float, typer.Option("--learn-days", min=0, help="Days at the start of each home "
                                              "used only for learning: no alerts are raised in them.")] = 14.0,
) -> None:
    """Replay a recording through the detectors in event time; write the alerts they raise as JSON Lines.

    One line per alert: home, kind (docs/alerts.md), raised_at, cleared_at (null while still open at the end,
    after 24 h past the last row), message, severity and subject (a device for device-health alerts).
    """
    zone = timezones.find_zone(tz)
    if zone is None:
        typer.echo(f"--tz: {timezones.UNKNOWN_ZONE.format(name=tz)}", err=True)
        raise typer.Exit(2)
    run = Replay(zone, learn_days=learn_days)
    try:
        for observation in read_csv(events):
            run.add(observation)
    except NeutralCsvError as e:
        typer.echo(str(e), err=True)
        raise typer.Exit(2) from None
    out = sys.stdout.buffer
    for record in run.finish():
        out.write(alert_json(record))
    out.flush()


@baseline_app.command("warm")
def warm(
    history: Annotated[Path, typer.Argument(help="Neutral CSV of the homes' history (e.g. from `telecare sim "
                                            "export --days 28`).", exists=True, dir_okay=False)],
    home: Annotated[list[str] | None, typer.Option("--home", help="Only this home (repeatable); default: every "
                                                   "home in the file.")] = None,
) -> None:
    """Learn homes' routines from their history and save the detectors' state, so that they start on a learned
    baseline. Run it with the gateway stopped: it replaces what the gateway had learned for those homes."""
    from gateway.db.session import make_engine, make_session_factory
    from gateway.detector_checkpoints import warm_baselines
    from telecare.cli_db import db_url_from_env, require_head

    url = db_url_from_env()
    require_head(url)
    sessions = make_session_factory(make_engine(url))
    try:
        fed = warm_baselines(sessions, read_csv(history), homes=set(home) if home else None)
    except NeutralCsvError as e:
        typer.echo(str(e), err=True)
        raise typer.Exit(2) from None
    if not fed:
        typer.echo("no observations of the homes asked for in the file", err=True)
        raise typer.Exit(2)
    for name, count in sorted(fed.items()):
        typer.echo(f"{name}: learned from {count:,} observations")
