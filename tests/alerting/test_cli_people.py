"""``telecare residents|recipients|chain|away``: happy paths, and bad input as a message with exit code 2."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from bench.pushover_server import PushoverServer
from gateway.db.models import Absence, EscalationStep, Home
from telecare.cli_people import add_people_commands
from tests.alerting.conftest import ANNE_KEY, BOB_KEY

pytest_plugins = ["tests.conftest_pushover"]

# The sub-apps as `telecare` registers them (telecare/cli.py calls add_people_commands too).
app = typer.Typer()
add_people_commands(app)


@pytest.fixture
def telecare(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.chdir(tmp_path)  # no stray .env
    for name in ("TELECARE_PUSHOVER_TOKEN", "TELECARE_PUSHOVER_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TELECARE_DB_URL", db_url)
    yield CliRunner()


def run(runner: CliRunner, *args: str, code: int = 0, env: dict[str, str] | None = None) -> str:
    result = runner.invoke(app, list(args), env=env)
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.output


@pytest.fixture
def home(sessions: sessionmaker[Session], telecare: CliRunner) -> str:
    with sessions.begin() as s:
        s.add(Home(id="h1", timezone="Europe/London"))
    return "h1"


def test_setting_up_a_resident_and_chain(telecare: CliRunner, home: str, sessions: sessionmaker[Session]) -> None:
    assert "resident 1: Mrs Jones in home h1" in run(telecare, "residents", "add", "h1", "--name", "Mrs Jones")
    assert "recipient 1: Anne" in run(telecare, "recipients", "add", "Anne", "--pushover-user", ANNE_KEY)
    assert "recipient 2: Bob" in run(telecare, "recipients", "add", "Bob", "--pushover-user", BOB_KEY)
    out = run(telecare, "chain", "set", "h1", "1:15", "2:30")
    assert "Anne (15 min) → Bob (30 min)" in out
    run(telecare, "chain", "set", "h1", "2:10", "1:20")  # replaced, positions reused
    assert "Bob (10 min) → Anne (20 min)" in run(telecare, "residents", "list")
    assert "anne00…" in run(telecare, "recipients", "list")
    with sessions() as s:
        steps = s.scalars(select(EscalationStep).order_by(EscalationStep.position)).all()
        assert [(st.position, st.recipient_id, st.wait_min) for st in steps] == [(1, 2, 10), (2, 1, 20)]


def test_away(telecare: CliRunner, home: str, sessions: sessionmaker[Session]) -> None:
    run(telecare, "residents", "add", "h1", "--name", "Mrs Jones")
    out = run(telecare, "away", "h1", "--from", "2030-07-01T10:00", "--until", "2030-07-14", "--reason", "holiday")
    assert "absence 1: home h1 away from 2030-07-01 10:00 until 2030-07-14 00:00 (Europe/London): holiday" in out
    # From now until before the holiday (absences may not overlap), and open-ended after it.
    run(telecare, "away", "add", "h1", "--until", "2030-06-01", "--reason", "hospital")
    run(telecare, "away", "add", "h1", "--from", "2030-08-01", "--reason", "respite")
    listed = run(telecare, "away", "list")
    assert "holiday" in listed and "open-ended" in listed
    with sessions() as s:
        holiday = s.get(Absence, 1)
        assert holiday is not None and holiday.starts_at.hour == 9  # 10:00 BST is 09:00 UTC
    assert "absence 2 ended" in run(telecare, "away", "end", "2")
    assert "hospital" not in run(telecare, "away", "list")
    assert "hospital" in run(telecare, "away", "list", "--all")


@pytest.mark.parametrize(("args", "message"), [
    (("residents", "add", "nowhere", "--name", "X"), "no home 'nowhere'"),
    (("recipients", "add", "Anne", "--pushover-user", "short"), "not a Pushover user key"),
    (("recipients", "add", "Anne", "--pushover-user", ANNE_KEY, "--validate"), "needs TELECARE_PUSHOVER_TOKEN"),
    (("chain", "set", "h1", "1-15"), "a step is RECIPIENT_ID:WAIT_MIN"),
    (("chain", "set", "h1", "1:0"), "the wait must be 1 to 1440 minutes"),
    (("chain", "set", "h1", "9:15"), "no recipient 9"),
    (("chain", "set", "h1", "1:15", "1:15"), "only once"),
    (("chain", "set", "h2", "1:15"), "home 'h2' has no resident"),
    (("away", "h1", "--from", "tomorrow", "--reason", "x"), "--from 'tomorrow': not an ISO 8601 time"),
    (("away", "h1", "--from", "2030-07-02", "--until", "2030-07-01", "--reason", "x"), "must end after it starts"),
    (("away", "end", "99"), "no absence 99"),
    (("residents", "add", "h1", "--name", "Someone else"), "already has a resident: Mrs Jones"),
])
def test_bad_input_is_a_message_and_exit_2(telecare: CliRunner, home: str, sessions: sessionmaker[Session],
                                           args: tuple[str, ...], message: str) -> None:
    with sessions.begin() as s:
        s.add(Home(id="h2"))
    run(telecare, "residents", "add", "h1", "--name", "Mrs Jones")
    run(telecare, "recipients", "add", "Anne", "--pushover-user", ANNE_KEY)
    out = run(telecare, *args, code=2)
    assert message in out and "Traceback" not in out


def test_an_unmigrated_database_is_a_message(telecare: CliRunner) -> None:
    assert "run `telecare db upgrade` first" in run(telecare, "residents", "list", code=2)


def test_validate_asks_pushover(telecare: CliRunner, home: str, pushover: PushoverServer) -> None:
    env = {"TELECARE_PUSHOVER_TOKEN": "a" * 30, "TELECARE_PUSHOVER_URL": pushover.url}
    out = run(telecare, "recipients", "add", "Anne", "--pushover-user", ANNE_KEY, "--validate", code=2, env=env)
    assert "Pushover says this user key is invalid" in out
    pushover.users.add(ANNE_KEY)
    assert "recipient 1: Anne" in run(telecare, "recipients", "add", "Anne", "--pushover-user", ANNE_KEY,
                                      "--validate", env=env)
    env["TELECARE_PUSHOVER_TOKEN"] = "b" * 30
    out = run(telecare, "recipients", "add", "Bob", "--pushover-user", BOB_KEY, "--validate", code=2, env=env)
    assert "cannot validate the key with Pushover: application token is invalid" in out
