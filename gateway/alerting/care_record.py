"""The care team's record on an alert: notes, and who is going round (and when they expect to arrive).

What a carer or coordinator writes through the API or the dashboard. Like :mod:`gateway.alerting.service`, each
function works within the caller's transaction (the caller commits, and writes its own audit row) and locks the
alert's row, so two people saying at once that they are going round cannot both be current. Refusals are
:mod:`gateway.alerting.errors`, worded for the person who asked. The rows themselves and their queries are
:mod:`gateway.db.care_record`.

Going round and clearing it are lines of the alert's timeline too, beside the escalations, so the whole story
reads in order; a note is not (it is the record itself).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.alerting.errors import (
    AttendanceRefused,
    CareRecordInvalid,
    ExpectedTimeRefused,
    NobodyGoingRound,
    NotesFull,
    WhoIsGoingUnknown,
)
from gateway.alerting.outbox import timeline
from gateway.alerting.service import locked_alert
from gateway.alerting.states import AlertState
from gateway.db.care_record import AlertAttendance, AlertNote, attendance_count, current_attendance, note_count
from gateway.db.models import NAME_LEN, Alert, User

__all__ = ["EXPECTED_HORIZON", "EXPECTED_SLACK", "MAX_ATTENDANCE_PER_ALERT", "MAX_NOTES_PER_ALERT", "add_note",
           "clear_attendance", "set_attendance"]

# What one alert's record may hold: a person writes a few notes; thousands are a script gone wrong.
MAX_NOTES_PER_ALERT = 500
MAX_ATTENDANCE_PER_ALERT = 100
# An expected arrival is ahead: a little behind the clock is a slow typist, more is a wrong date.
EXPECTED_SLACK = timedelta(minutes=5)
EXPECTED_HORIZON = timedelta(hours=24)


def add_note(session: Session, alert_id: int, text: str, *, by: str, by_user_id: int | None,
             now: datetime) -> AlertNote:
    """A note by ``by`` (their account ``by_user_id``, None for an API key), now. Notes may be added to a resolved
    alert too (a follow-up). Raises :class:`AlertNotFound`, :class:`NotesFull`, or :class:`CareRecordInvalid`
    for an empty note."""
    if not text.strip():
        raise CareRecordInvalid("a note needs some text: say what was found, done or arranged")
    alert = locked_alert(session, alert_id)
    count = note_count(session, alert.id)
    if count >= MAX_NOTES_PER_ALERT:
        raise NotesFull(f"alert {alert.id} has {count} notes, the most one alert keeps: write a summary in its "
                        "outcome note instead")
    note = AlertNote(alert_id=alert.id, at=now, author=_name(by), author_user_id=by_user_id, text=text)
    session.add(note)
    session.flush()
    return note


def set_attendance(session: Session, alert_id: int, *, by: str, by_user_id: int | None, now: datetime,
                   name: str | None = None, user_id: int | None = None,
                   expected_at: datetime | None = None) -> AlertAttendance:
    """Someone is going round, as ``by`` says: the person ``name``d (a neighbour), the user ``user_id`` of the
    alert's organisation, or, when neither is given, ``by`` themselves (their account ``by_user_id``). Whoever was
    going round before is cleared (their row is kept). Raises :class:`AlertNotFound`, :class:`AttendanceRefused`
    (the alert is resolved, or its record is full), :class:`WhoIsGoingUnknown` or :class:`ExpectedTimeRefused`."""
    alert = locked_alert(session, alert_id)
    if alert.state == AlertState.RESOLVED:
        raise AttendanceRefused(f"alert {alert.id} is resolved: nobody needs to go round for it (add a note to say "
                                "who went)")
    going, going_user_id = _going(session, alert, by, by_user_id, name, user_id)
    _check_expected(expected_at, now)
    rows = attendance_count(session, alert.id)
    if rows >= MAX_ATTENDANCE_PER_ALERT:
        raise AttendanceRefused(f"alert {alert.id} has had {rows} people going round, the most one alert keeps")
    current = current_attendance(session, alert.id)
    if current is not None:
        _clear(current, by, now)
        session.flush()  # the one current attendance per alert is checked by a unique index
    row = AlertAttendance(alert_id=alert.id, name=going[:NAME_LEN], user_id=going_user_id, said_at=now,
                          expected_at=expected_at, recorded_by=_name(by), recorded_by_user_id=by_user_id)
    session.add(row)
    expected = f", expected {expected_at.isoformat()}" if expected_at else ""
    timeline(session, alert, now, "attending", f"{going} is going round{expected}", who=by)
    session.flush()
    return row


def clear_attendance(session: Session, alert_id: int, *, by: str, now: datetime) -> AlertAttendance:
    """Nobody is going round any more (they arrived and are done, or are not going): the row is kept, cleared by
    ``by``. Raises :class:`AlertNotFound` or :class:`NobodyGoingRound`."""
    alert = locked_alert(session, alert_id)
    current = current_attendance(session, alert.id)
    if current is None:
        raise NobodyGoingRound(f"nobody is going round for alert {alert.id}: there is nothing to clear")
    _clear(current, by, now)
    timeline(session, alert, now, "attendance_cleared", f"{current.name} is no longer going round", who=by)
    session.flush()
    return current


def _going(session: Session, alert: Alert, by: str, by_user_id: int | None, name: str | None,
           user_id: int | None) -> tuple[str, int | None]:
    """Who is going round, as (name, user id): the person named, the user given, or whoever says so."""
    if name is not None and user_id is not None:
        raise WhoIsGoingUnknown("say who is going round once: a user of the organisation, or someone by name, "
                                "not both")
    if name is not None:
        if not name.strip():
            raise WhoIsGoingUnknown("say who is going round: the name is empty")
        return name, None
    if user_id is None:
        if by_user_id is None:
            raise WhoIsGoingUnknown(f"say who is going round (a user of the organisation, or someone by name): "
                                    f"{by} has no user account, so cannot go round themselves")
        return by, by_user_id
    user = session.scalar(select(User).where(User.id == user_id, User.organisation_id == alert.organisation_id))
    if user is None or not user.active:
        raise WhoIsGoingUnknown(f"no active user {user_id} in your organisation: name one of its users, or the "
                                "person going round")
    return user.name, user.id


def _check_expected(expected_at: datetime | None, now: datetime) -> None:
    if expected_at is None:
        return
    said, it_is = f"{expected_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC", f"{now.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
    if expected_at < now - EXPECTED_SLACK:
        raise ExpectedTimeRefused(f"the expected arrival, {said}, is in the past (it is now {it_is}): say when "
                                  "they expect to arrive, or leave it out")
    if expected_at > now + EXPECTED_HORIZON:
        raise ExpectedTimeRefused(f"the expected arrival, {said}, is more than a day ahead: is the date right?")


def _clear(current: AlertAttendance, by: str, now: datetime) -> None:
    current.cleared_at, current.cleared_by = now, _name(by)


def _name(by: str) -> str:
    by = by.strip()
    if not by:
        raise ValueError("who writes on the alert's record must be named")
    return by[:NAME_LEN]
