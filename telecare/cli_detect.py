"""``telecare analyse`` (a recording through the gateway's detectors, alerts out as JSON Lines) and ``telecare
baseline warm`` (a home's history through them, their learned state saved for the gateway).

Both show a bar on a terminal (telecare/progress.py) and end with a summary line on standard error; standard
output carries only the alerts (``analyse``) or what each home learned from (``baseline warm``).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import orjson
import typer

from analytics.replay import AlertRecord, Replay
from gateway import timezones
from sensors_sim.events import Observation
from sensors_sim.generate import DAY_MS
from sensors_sim.recordings import NeutralCsvError, read_csv
from telecare.cli_common import fail
from telecare.progress import count_rows, moment, on_terminal, plural, progress_bar

baseline_app = typer.Typer(help="Detectors' learned baselines.", no_args_is_help=True)
EXIT_GATEWAY_RUNNING = 1  # right command, wrong moment: stop the gateway and run it again


def _iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def alert_json(record: AlertRecord) -> bytes:
    return orjson.dumps({"home": record.home, "kind": record.kind, "raised_at": _iso(record.raised_at_ms),
                         "cleared_at": _iso(record.cleared_at_ms), "message": record.message,
                         "severity": record.severity, "subject": record.subject}) + b"\n"


@dataclass
class Spans:
    """How much of each home a file holds: first and last reading, and how many, as they stream past."""

    first: dict[str, int] = field(default_factory=dict)
    last: dict[str, int] = field(default_factory=dict)
    readings: int = 0

    def watch(self, observations: Iterable[Observation]) -> Iterator[Observation]:
        first, last = self.first, self.last
        for o in observations:
            if o.home not in first:
                first[o.home] = o.time_ms
            last[o.home] = o.time_ms  # in time order (read_csv sorts)
            self.readings += 1
            yield o

    def days(self, home: str) -> float:
        return (self.last[home] - self.first[home]) / DAY_MS

    def overall_days(self) -> float:
        return (max(self.last.values()) - min(self.first.values())) / DAY_MS if self.first else 0.0


def _days(value: float) -> str:
    return f"{value:,.1f} day{'' if value == 1 else 's'}"


def _read(path: Path, spans: Spans, description: str) -> Iterator[Observation]:
    """The file's observations, watched by ``spans`` and a bar; a bad row is a sentence and exit code 2."""
    total = count_rows(path) if on_terminal() else None
    with progress_bar(description, total) as bar:
        try:
            yield from bar.tap(spans.watch(read_csv(path)),
                               status=lambda o, n: f"{moment(o.time_ms)} · {plural(n, 'reading')}")
        except NeutralCsvError as e:
            raise fail(str(e)) from None


def learning_verdict(spans: Spans, learn_days: float, path: Path) -> list[str]:
    """Warnings about homes too short to be analysed; exit code 2 with the reason when no home is long enough."""
    if not spans.first:
        raise fail(f"{path}: no readings in the file: nothing to analyse")
    short = sorted(h for h in spans.first if spans.days(h) < learn_days)
    if len(short) < len(spans.first):
        return [f"home {h}: {_days(spans.days(h))} of readings, all within the {learn_days:g}-day learning period "
                "(--learn-days): no alerts could be raised for it" for h in short]
    held = ", ".join(f"{h} has {_days(spans.days(h))}" for h in short[:5]) + (", ..." if len(short) > 5 else "")
    raise fail(f"{path}: too short to analyse: the first {learn_days:g} days of each home are for learning its "
               f"routine (--learn-days), and {held}, so no alert could be raised. Give a longer recording, or a "
               "smaller --learn-days (a routine learned from fewer days raises more false alarms).")


def analyse(
    events: Annotated[Path, typer.Argument(help="Neutral CSV (docs/neutral-csv.md); several homes may share it.",
                                           exists=True, dir_okay=False)],
    tz: Annotated[str, typer.Option("--tz", help="The homes' time zone (IANA name): routines are learned in "
                                    "local time.")] = "Europe/London",
    learn_days: Annotated[float, typer.Option("--learn-days", help="Days at the start of each home used only for "
                                              "learning (0 or more): no alerts are raised in them.")] = 14.0,
) -> None:
    """Replay a recording through the detectors in event time; write the alerts they raise as JSON Lines.

    One line per alert: home, kind (docs/alerts.md), raised_at, cleared_at (null while still open at the end,
    after 24 h past the last row), message, severity and subject (a device for device-health alerts). A summary
    line goes to standard error. A file no home of which outlasts the learning period is refused (exit code 2):
    nothing could have been alerted.
    """
    if not math.isfinite(learn_days) or learn_days < 0:
        raise fail(f"--learn-days {learn_days:g}: give 0 or more days")
    zone = timezones.find_zone(tz)
    if zone is None:
        raise fail(f"--tz: {timezones.UNKNOWN_ZONE.format(name=tz)}")
    began = time.monotonic()
    run = Replay(zone, learn_days=learn_days)
    spans = Spans()
    for observation in _read(events, spans, "analysing"):
        run.add(observation)
    for warning in learning_verdict(spans, learn_days, events):
        typer.echo(warning, err=True)
    records = run.finish()
    out = sys.stdout.buffer
    for record in records:
        out.write(alert_json(record))
    out.flush()
    typer.echo(f"analysed {plural(len(spans.first), 'home')}, {_days(spans.overall_days())}, "
               f"{plural(spans.readings, 'reading')} in {time.monotonic() - began:,.1f} s: "
               f"{plural(len(records), 'alert')}", err=True)


def refuse_if_gateway_runs() -> None:
    """``baseline warm`` beside a running gateway would be undone at its next checkpoint: refused, and why."""
    from telecare.cli_common import settings_or_exit
    from telecare.gateway_lock import gateway_holder, lock_path

    journal = settings_or_exit().journal_path
    try:
        holder = gateway_holder(journal)
    except OSError as e:
        raise fail(f"cannot tell whether the gateway is running ({lock_path(journal)}: {e.strerror or e})") from None
    if holder is not None:
        raise fail(f"the gateway is running ({holder}, lock {lock_path(journal)}): stop it first. Its detectors "
                   "would overwrite the warmed baselines with what they had learned at their next checkpoint.",
                   EXIT_GATEWAY_RUNNING)


@baseline_app.command("warm")
def warm(
    history: Annotated[Path, typer.Argument(help="Neutral CSV of the homes' history (e.g. from `telecare sim "
                                            "export --days 28`).", exists=True, dir_okay=False)],
    home: Annotated[list[str] | None, typer.Option("--home", help="Only this home (repeatable); default: every "
                                                   "home in the file.")] = None,
) -> None:
    """Learn homes' routines from their history and save the detectors' state, so that they start on a learned
    baseline. The gateway must be stopped (it is refused while one runs on this data directory): it replaces what
    the gateway had learned for those homes."""
    from gateway.db.session import make_engine, make_session_factory
    from gateway.detector_checkpoints import warm_baselines
    from telecare.cli_db import db_url_from_env, require_head

    url = db_url_from_env()
    require_head(url)
    refuse_if_gateway_runs()
    sessions = make_session_factory(make_engine(url))
    began = time.monotonic()
    spans = Spans()
    fed = warm_baselines(sessions, _read(history, spans, "learning"), homes=set(home) if home else None)
    if not fed:
        raise fail("no observations of the homes asked for in the file")
    for name, count in sorted(fed.items()):
        typer.echo(f"{name}: learned from {count:,} observations over {_days(spans.days(name))}")
    typer.echo(f"warmed the baselines of {plural(len(fed), 'home')} from {plural(sum(fed.values()), 'reading')} in "
               f"{time.monotonic() - began:,.1f} s", err=True)
