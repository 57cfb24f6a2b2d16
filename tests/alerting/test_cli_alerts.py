"""``telecare alerts list|resolve|outcome``: finding an alert, resolving it with what was found, the outcome of one
that cleared by itself; bad input is a sentence and exit code 2, never a traceback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from analytics.alerts import Action, AlertKind, Severity
from gateway.db.models import AlertLog, Notification
from telecare.cli_alerts import add_alert_commands
from tests.alerting.conftest import Clock, World
from tests.alerting.helpers import alert, apply, event

app = typer.Typer()
add_alert_commands(app)  # as telecare/cli.py registers them


@pytest.fixture
def telecare(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setenv("TELECARE_DB_URL", db_url)
    yield CliRunner()


def run(runner: CliRunner, *args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    return result.output


@pytest.fixture
def raised(sessions: sessionmaker[Session], clock: Clock, world: World, telecare: CliRunner) -> dict[str, int]:
    """An urgent inactivity alert, open; a low battery, open; a not_up that cleared by itself."""
    [inactivity] = apply(sessions, clock, event(clock=clock))
    [battery] = apply(sessions, clock, event(kind=AlertKind.LOW_BATTERY, severity=Severity.LOW, subject="hall_pir",
                                             clock=clock, message="Battery at 8%"))
    [not_up] = apply(sessions, clock, event(kind=AlertKind.NOT_UP, severity=Severity.WARNING, clock=clock,
                                            message="Not up by 09:00"))
    clock.advance(minutes=10)
    apply(sessions, clock, event(Action.CLEAR, AlertKind.NOT_UP, clock=clock, message="Up at 09:10"))
    apply(sessions, clock, event(Action.NOTICE, AlertKind.RETURNED, Severity.INFO, clock=clock,
                                 message="Back home"))  # a notice: nobody owes it an outcome
    return {"inactivity": inactivity, "battery": battery, "not_up": not_up}


def test_list_shows_open_alerts_with_their_ids(telecare: CliRunner, raised: dict[str, int]) -> None:
    out = run(telecare, "alerts", "list")
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["ID", "RAISED", "HOME"]
    assert lines[1].split()[0] == str(raised["inactivity"]), "the most severe first"
    assert "Mrs Jones" in lines[1] and "low_battery [hall_pir]" in lines[2] and "Battery at 8%" in lines[2]
    assert "not_up" not in out, "resolved: not listed"
    awaiting = run(telecare, "alerts", "list", "--awaiting-outcome")
    assert awaiting.splitlines()[1].split()[0] == str(raised["not_up"]) and "cleared" in awaiting
    assert len(awaiting.splitlines()) == 2, "the notice is not waiting for an outcome"
    assert len(run(telecare, "alerts", "list", "--all").splitlines()) == 5
    assert run(telecare, "alerts", "list", "--home", "elsewhere") == "no open alerts\n"


def test_resolve_with_an_outcome_and_a_note(telecare: CliRunner, raised: dict[str, int],
                                            sessions: sessionmaker[Session]) -> None:
    alert_id = raised["inactivity"]
    out = run(telecare, "alerts", "resolve", str(alert_id), "--outcome", "false_alarm", "--note",
              "Asleep in her chair", "--by", "Night operator")
    assert f"alert {alert_id} (inactivity, home h1) resolved by Night operator: False alarm" in out
    a = alert(sessions, alert_id)
    assert (a.state, a.resolved_by, a.resolution_note, a.outcome, a.outcome_by) == (
        "resolved", "Night operator", "Asleep in her chair", "false_alarm", "Night operator")
    with sessions() as s:  # the chain stops: the first step's message, not sent yet, will not be
        assert s.scalars(select(Notification.state).where(Notification.alert_id == alert_id)).all() == ["cancelled"]
    out = run(telecare, "alerts", "resolve", str(raised["battery"]), "--note", "battery changed")
    assert "(no outcome given: add it with `telecare alerts outcome`)" in out
    assert alert(sessions, raised["battery"]).resolved_by.endswith("(CLI)")  # type: ignore[union-attr]


def test_the_outcome_of_an_alert_that_cleared_by_itself(telecare: CliRunner, raised: dict[str, int],
                                                        sessions: sessionmaker[Session]) -> None:
    alert_id = raised["not_up"]
    out = run(telecare, "alerts", "outcome", str(alert_id), "--outcome", "false_alarm", "--note", "Lie-in",
              "--by", "Anne")
    assert f"alert {alert_id} (not_up, home h1): False alarm: the resident was fine, recorded by Anne" in out
    run(telecare, "alerts", "outcome", str(alert_id), "--outcome", "UNWELL", "--by", "Anne")
    a = alert(sessions, alert_id)
    assert (a.outcome, a.outcome_note, a.resolved_by) == ("unwell", None, "auto")
    with sessions() as s:
        whats = s.scalars(select(AlertLog.what).where(AlertLog.alert_id == alert_id).order_by(AlertLog.id)).all()
    assert whats[-2:] == ["outcome", "outcome corrected"]
    assert run(telecare, "alerts", "list", "--awaiting-outcome") == "no alerts\n"


@pytest.mark.parametrize(("args", "message"), [
    (("resolve", "{inactivity}", "--outcome", "fine", "--note", "x"),
     "--outcome: unknown outcome 'fine': it is one of false_alarm, fall, unwell, out, sensor_problem, other"),
    (("resolve", "4242", "--note", "x"), "no alert 4242"),
    (("resolve", "{not_up}", "--note", "x", "--outcome", "fall"), "resolved already"),
    (("resolve", "{inactivity}", "--note", "  "), "--note: say what was found"),
    (("resolve", "{inactivity}", "--note", "x", "--by", " "), "--by: name who did it"),
    (("outcome", "{inactivity}", "--outcome", "fall"), "still open (raised): resolve it"),
    (("outcome", "{not_up}", "--outcome", "earthquake"), "unknown outcome 'earthquake'"),
    (("outcome", "4242", "--outcome", "fall"), "no alert 4242"),
])
def test_bad_input_is_a_sentence(telecare: CliRunner, raised: dict[str, int], sessions: sessionmaker[Session],
                                 args: tuple[str, ...], message: str) -> None:
    out = run(telecare, "alerts", *(a.format(**raised) for a in args), code=2)
    assert message in out
    assert alert(sessions, raised["inactivity"]).state == "raised"
    assert alert(sessions, raised["not_up"]).outcome is None


def test_a_missing_option_is_a_usage_error(telecare: CliRunner, raised: dict[str, int]) -> None:
    assert "--outcome" in run(telecare, "alerts", "outcome", str(raised["not_up"]), code=2)
    assert "--note" in run(telecare, "alerts", "resolve", str(raised["inactivity"]), code=2)
