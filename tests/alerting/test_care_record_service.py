"""The care team's record service: notes, who is going round, and what it refuses (SQLite and PostgreSQL).

The API's and the dashboard's tests (tests/api/test_alert_notes.py, test_dashboard_care_record.py) check the
same through HTTP, with the audit trail; these check the service on its own, as both call it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from gateway.alerting import care_record
from gateway.alerting.errors import (
    AlertNotFound,
    AttendanceRefused,
    CareRecordInvalid,
    CareRecordRefused,
    ExpectedTimeRefused,
    NobodyGoingRound,
    NotesFull,
    WhoIsGoingUnknown,
)
from gateway.alerting.service import resolve
from gateway.db.care_record import AlertAttendance, AlertNote
from gateway.db.models import Home, Organisation, User
from tests.alerting.conftest import HOME, Clock, World
from tests.alerting.helpers import apply, event, timeline


@dataclass
class Team:
    """The organisation caring for the home, its carer Cora, a former carer Fay, and another organisation's Bea."""

    alert_id: int
    cora: int
    fay: int
    bea: int


def _user(s: Session, organisation_id: int, name: str, *, active: bool = True) -> int:
    user = User(organisation_id=organisation_id, email=f"{name.lower()}@example.org", name=name, role="carer",
                password_hash="x", active=active)
    s.add(user)
    s.flush()
    return user.id


@pytest.fixture
def team(sessions: sessionmaker[Session], clock: Clock, world: World) -> Team:
    with sessions.begin() as s:
        council, other = Organisation(name="Northshire Council"), Organisation(name="Southshire Council")
        s.add_all([council, other])
        s.flush()
        home = s.get(Home, HOME)
        assert home is not None
        home.organisation_id = council.id
        users = (_user(s, council.id, "Cora"), _user(s, council.id, "Fay", active=False), _user(s, other.id, "Bea"))
    [alert_id] = apply(sessions, clock, event(clock=clock))
    return Team(alert_id, *users)


def test_a_note_is_kept_as_written_with_its_author(sessions: sessionmaker[Session], clock: Clock,
                                                   team: Team) -> None:
    now = clock.advance(minutes=5)
    with sessions.begin() as s:
        note = care_record.add_note(s, team.alert_id, "Rang her daughter", by="Cora", by_user_id=team.cora, now=now)
        assert note.id is not None
    with sessions() as s:
        [kept] = s.scalars(select(AlertNote)).all()
        assert (kept.alert_id, kept.at, kept.author, kept.author_user_id, kept.text) == (
            team.alert_id, now, "Cora", team.cora, "Rang her daughter")
    assert "note" not in {what for what, _, _ in timeline(sessions, team.alert_id)}


def test_notes_stop_at_the_most_one_alert_keeps(sessions: sessionmaker[Session], clock: Clock, team: Team,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(care_record, "MAX_NOTES_PER_ALERT", 2)
    with sessions.begin() as s:
        for text in ("one", "two"):
            care_record.add_note(s, team.alert_id, text, by="Cora", by_user_id=team.cora, now=clock.now())
    with sessions.begin() as s, pytest.raises(NotesFull, match="2 notes, the most one alert keeps"):
        care_record.add_note(s, team.alert_id, "three", by="Cora", by_user_id=team.cora, now=clock.now())
    with sessions.begin() as s, pytest.raises(CareRecordInvalid, match="a note needs some text"):
        care_record.add_note(s, team.alert_id, "  ", by="Cora", by_user_id=team.cora, now=clock.now())
    with sessions.begin() as s, pytest.raises(AlertNotFound, match="no alert 999999"):
        care_record.add_note(s, 999999, "hi", by="Cora", by_user_id=team.cora, now=clock.now())
    with sessions() as s:
        assert [n.text for n in s.scalars(select(AlertNote).order_by(AlertNote.id))] == ["one", "two"]


def test_going_round_replaces_whoever_was_going_and_clearing_keeps_the_record(
        sessions: sessionmaker[Session], clock: Clock, team: Team) -> None:
    said = clock.advance(minutes=2)
    with sessions.begin() as s:  # nobody named: the one who says it
        care_record.set_attendance(s, team.alert_id, by="Cora", by_user_id=team.cora, now=said,
                                   expected_at=said + timedelta(minutes=20))
    later = clock.advance(minutes=3)
    with sessions.begin() as s:  # Cora hands it to a neighbour
        row = care_record.set_attendance(s, team.alert_id, by="Cora", by_user_id=team.cora, now=later, name="Mr Patel")
        assert (row.name, row.user_id, row.recorded_by, row.expected_at) == ("Mr Patel", None, "Cora", None)
    done = clock.advance(minutes=10)
    with sessions.begin() as s:
        cleared = care_record.clear_attendance(s, team.alert_id, by="Cora", now=done)
        assert (cleared.name, cleared.cleared_at, cleared.cleared_by) == ("Mr Patel", done, "Cora")
    with sessions() as s:
        rows = s.scalars(select(AlertAttendance).order_by(AlertAttendance.id)).all()
        assert [(r.name, r.user_id, r.cleared_at, r.cleared_by) for r in rows] == [
            ("Cora", team.cora, later, "Cora"), ("Mr Patel", None, done, "Cora")]
    expected = (said + timedelta(minutes=20)).isoformat()
    assert timeline(sessions, team.alert_id)[-3:] == [
        ("attending", "Cora", f"Cora is going round, expected {expected}"),
        ("attending", "Cora", "Mr Patel is going round"),
        ("attendance_cleared", "Cora", "Mr Patel is no longer going round")]
    with sessions.begin() as s, pytest.raises(NobodyGoingRound, match="nobody is going round for alert"):
        care_record.clear_attendance(s, team.alert_id, by="Cora", now=done)


def test_a_user_of_the_organisation_can_be_named_as_going_round(sessions: sessionmaker[Session], clock: Clock,
                                                                team: Team) -> None:
    with sessions.begin() as s:  # an API key (no account) names Cora
        row = care_record.set_attendance(s, team.alert_id, by="API key Call centre", by_user_id=None,
                                         now=clock.now(), user_id=team.cora)
        assert (row.name, row.user_id, row.recorded_by, row.recorded_by_user_id) == (
            "Cora", team.cora, "API key Call centre", None)


@pytest.mark.parametrize(("who", "refused"), [
    ({"by_user_id": None}, "say who is going round"),  # an API key, saying nobody
    ({"user_id": "bea"}, "no active user"),  # another organisation's
    ({"user_id": "fay"}, "no active user"),  # no longer active
    ({"user_id": 999999}, "no active user"),
    ({"name": " "}, "the name is empty"),
    ({"name": "Bob", "user_id": "cora"}, "not both"),
])
def test_who_is_going_round_must_be_someone(sessions: sessionmaker[Session], clock: Clock, team: Team,
                                            who: dict[str, object], refused: str) -> None:
    kwargs: dict[str, object] = {"by_user_id": team.cora, **who}
    if isinstance(kwargs.get("user_id"), str):
        kwargs["user_id"] = getattr(team, str(kwargs["user_id"]))
    with sessions.begin() as s, pytest.raises(WhoIsGoingUnknown, match=refused):
        care_record.set_attendance(s, team.alert_id, by="Cora", now=clock.now(), **kwargs)  # type: ignore[arg-type]
    with sessions() as s:
        assert s.scalars(select(AlertAttendance)).all() == []


@pytest.mark.parametrize(("ahead", "refused"), [
    (timedelta(minutes=-6), "is in the past"),
    (timedelta(hours=24, minutes=1), "more than a day ahead"),
])
def test_an_expected_arrival_is_soon(sessions: sessionmaker[Session], clock: Clock, team: Team,
                                     ahead: timedelta, refused: str) -> None:
    now = clock.now()
    with sessions.begin() as s, pytest.raises(ExpectedTimeRefused, match=refused):
        care_record.set_attendance(s, team.alert_id, by="Cora", by_user_id=team.cora, now=now,
                                   expected_at=now + ahead)
    with sessions.begin() as s:  # a slow typist, or a day ahead at most: taken
        care_record.set_attendance(s, team.alert_id, by="Cora", by_user_id=team.cora, now=now,
                                   expected_at=now - timedelta(minutes=4))
        care_record.set_attendance(s, team.alert_id, by="Cora", by_user_id=team.cora, now=now,
                                   expected_at=now + timedelta(hours=24))


def test_nobody_goes_round_for_a_resolved_alert_nor_past_the_most_it_keeps(
        sessions: sessionmaker[Session], clock: Clock, team: Team, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(care_record, "MAX_ATTENDANCE_PER_ALERT", 2)
    with sessions.begin() as s:
        for name in ("Ann", "Ben"):
            care_record.set_attendance(s, team.alert_id, by="Cora", by_user_id=team.cora, now=clock.now(), name=name)
    with sessions.begin() as s, pytest.raises(AttendanceRefused, match="2 people going round"):
        care_record.set_attendance(s, team.alert_id, by="Cora", by_user_id=team.cora, now=clock.now(), name="Cy")
    with sessions.begin() as s:
        resolve(s, team.alert_id, "Cora", "She was in the garden", clock.advance(minutes=30))
    with sessions.begin() as s, pytest.raises(AttendanceRefused, match="is resolved") as refused:
        care_record.set_attendance(s, team.alert_id, by="Cora", by_user_id=team.cora, now=clock.now(), name="Cy")
    assert isinstance(refused.value, CareRecordRefused)
    with sessions.begin() as s:  # a follow-up note, and clearing who went, are still taken
        care_record.add_note(s, team.alert_id, "Daughter told", by="Cora", by_user_id=team.cora, now=clock.now())
        assert care_record.clear_attendance(s, team.alert_id, by="Cora", now=clock.now()).name == "Ben"
