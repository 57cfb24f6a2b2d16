"""Overlapping planned absences are refused, naming the one in the way (issue 14, finding 4): from the CLI, and
from :mod:`gateway.alerting.people` that the API uses too."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from gateway.alerting import people
from gateway.db.migrate import upgrade
from gateway.db.models import Absence, Home
from gateway.db.session import make_engine, make_session_factory
from telecare.cli import app


@pytest.fixture
def sessions(db_url: str) -> Iterator[sessionmaker[Session]]:
    upgrade(db_url)
    engine = make_engine(db_url)
    factory = make_session_factory(engine)
    with factory.begin() as s:
        s.add(Home(id="h1", timezone="Europe/London"))
        s.flush()
        people.add_resident(s, "h1", "Mrs Jones")
    yield factory
    engine.dispose()


@pytest.fixture
def telecare(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("TELECARE_")]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TELECARE_DB_URL", db_url)
    yield CliRunner()


def run(runner: CliRunner, *args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == code, (result.output, result.stderr)
    return result.output + result.stderr


def test_an_overlapping_absence_is_refused_naming_the_other(telecare: CliRunner,
                                                            sessions: sessionmaker[Session]) -> None:
    run(telecare, "away", "h1", "--from", "2030-07-01T10:00", "--until", "2030-07-14", "--reason", "holiday")
    holiday = ("overlaps absence 1: from 2030-07-01 10:00 until 2030-07-14 00:00 (Europe/London), 'holiday': end or "
               "change that one first")
    for start, until in (("2030-07-05", "2030-07-20"),  # overlaps the end
                         ("2030-06-20", "2030-07-02"),  # overlaps the start
                         ("2030-07-03", "2030-07-04"),  # inside
                         ("2030-06-01", "2030-08-01")):  # around
        assert holiday in run(telecare, "away", "h1", "--from", start, "--until", until, "--reason", "hospital",
                              code=2)
    assert holiday in run(telecare, "away", "h1", "--from", "2030-06-01", "--reason", "hospital", code=2)
    # Back to back is not an overlap: one ends as the next starts.
    run(telecare, "away", "h1", "--from", "2030-07-14", "--until", "2030-07-20", "--reason", "respite")
    run(telecare, "away", "h1", "--from", "2030-06-01", "--until", "2030-07-01T10:00", "--reason", "visit")
    # An open-ended absence is in the way of everything after its start, until it is ended.
    run(telecare, "away", "h1", "--from", "2030-09-01", "--reason", "hospital")
    out = run(telecare, "away", "h1", "--from", "2031-01-01", "--until", "2031-01-05", "--reason", "x", code=2)
    assert "overlaps absence 4: from 2030-09-01 00:00 open-ended (Europe/London), 'hospital'" in out
    with sessions() as s:
        assert len(s.scalars(select(Absence)).all()) == 4


def test_an_absence_ended_early_makes_room(telecare: CliRunner, sessions: sessionmaker[Session]) -> None:
    run(telecare, "away", "h1", "--from", "2020-01-01", "--reason", "hospital")  # open-ended, begun long ago
    assert "overlaps absence 1" in run(telecare, "away", "h1", "--reason", "holiday", code=2)
    run(telecare, "away", "end", "1")
    run(telecare, "away", "h1", "--reason", "holiday")  # from now: the ended one is over


def test_the_rule_is_the_peoples_so_the_api_has_it_too(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s:
        people.add_absence(s, "h1", datetime(2030, 7, 1, tzinfo=UTC), datetime(2030, 7, 14, tzinfo=UTC), "holiday")
    with sessions() as s, pytest.raises(people.AbsenceOverlap) as raised:
        people.add_absence(s, "h1", datetime(2030, 7, 13, tzinfo=UTC), None, "hospital")
    assert raised.value.conflicting.reason == "holiday"
    assert isinstance(raised.value, people.PeopleError)  # the API's 4xx with the message, the CLI's exit code 2
    with sessions() as s:
        resident = people.resident_for(s, "h1")
        absence = s.scalars(select(Absence)).one()
        # The absence itself is ignored when it is the one being changed.
        people.check_no_overlap(s, resident, absence.starts_at, None, ignore_id=absence.id)


@pytest.mark.parametrize(("args", "message"), [
    (("away", "end", "0"), "Input should be greater than or equal to 1"),
    (("away", "end", "many"), "Input should be a valid integer"),
])
def test_numeric_options_are_checked(telecare: CliRunner, sessions: sessionmaker[Session], args: tuple[str, ...],
                                     message: str) -> None:
    out = run(telecare, *args, code=2)
    assert message in " ".join(out.replace("│", " ").split())  # typer wraps its message in a box
