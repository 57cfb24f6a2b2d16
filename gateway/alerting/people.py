"""Residents, recipients, escalation chains and planned absences: the records the CLI (and later the API) edit.

Each function works in the caller's transaction and raises :class:`~gateway.alerting.errors.PeopleError` with a
message fit for an operator.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from gateway import timezones
from gateway.alerting.errors import PeopleError
from gateway.db.models import Absence, EscalationStep, Home, Recipient, Resident

__all__ = ["AbsenceOverlap", "absences_for", "add_absence", "add_recipient", "add_resident", "check_no_overlap",
           "end_absence", "parse_step", "resident_for", "set_chain"]


class AbsenceOverlap(PeopleError):
    """A planned absence that overlaps another of the same resident's; the message names that one (its id, dates
    and reason). The API answers it with 409 Conflict, the CLI with exit code 2."""

    def __init__(self, message: str, conflicting: Absence) -> None:
        super().__init__(message)
        self.conflicting = conflicting

# Pushover user and group keys: 30 characters, letters and digits (https://pushover.net/api#identifiers).
USER_KEY = re.compile(r"[A-Za-z0-9]{30}")
MAX_WAIT_MIN = 24 * 60


def resident_for(session: Session, home_id: str) -> Resident:
    if session.get(Home, home_id) is None:
        raise PeopleError(f"no home {home_id!r}: import its description (telecare homes import) or start the "
                          "gateway so it is discovered")
    resident = session.scalar(select(Resident).where(Resident.home_id == home_id))
    if resident is None:
        raise PeopleError(f"home {home_id!r} has no resident: add one with `telecare residents add {home_id}`")
    return resident


def add_resident(session: Session, home_id: str, name: str, notes: str | None = None) -> Resident:
    home = session.get(Home, home_id)
    if home is None:
        raise PeopleError(f"no home {home_id!r}: import its description (telecare homes import) or start the "
                          "gateway so it is discovered")
    existing = session.scalar(select(Resident).where(Resident.home_id == home_id))
    if existing is not None:
        raise PeopleError(f"home {home_id!r} already has a resident: {existing.name} (id {existing.id})")
    if not name.strip():
        raise PeopleError("the resident's name must not be empty")
    resident = Resident(home_id=home_id, name=name.strip(), notes=notes)
    session.add(resident)
    home.care_epoch = (home.care_epoch or 0) + 1  # a new person: the detectors learn their routine afresh
    session.flush()
    return resident


def add_recipient(session: Session, name: str, user_key: str, device: str | None = None,
                  organisation_id: int | None = None) -> Recipient:
    if not name.strip():
        raise PeopleError("the recipient's name must not be empty")
    if not USER_KEY.fullmatch(user_key):
        raise PeopleError(f"{user_key!r} is not a Pushover user key (30 letters and digits)")
    recipient = Recipient(name=name.strip(), pushover_user_key=user_key, pushover_device=device or None,
                          organisation_id=organisation_id)
    session.add(recipient)
    session.flush()
    return recipient


def parse_step(text: str) -> tuple[int, int]:
    """``"3:15"`` → recipient 3, 15 minutes to acknowledge before the next step is alerted."""
    match = re.fullmatch(r"\s*(\d+)\s*:\s*(\d+)\s*", text)
    if match is None:
        raise PeopleError(f"{text!r}: a step is RECIPIENT_ID:WAIT_MIN, e.g. 3:15")
    recipient_id, wait_min = int(match[1]), int(match[2])
    if not 1 <= wait_min <= MAX_WAIT_MIN:
        raise PeopleError(f"{text!r}: the wait must be 1 to {MAX_WAIT_MIN} minutes")
    return recipient_id, wait_min


def set_chain(session: Session, home_id: str, steps: Sequence[tuple[int, int]]) -> list[EscalationStep]:
    """Replace the resident's chain with ``(recipient_id, wait_min)`` steps, in order."""
    resident = resident_for(session, home_id)
    if not steps:
        raise PeopleError("a chain needs at least one step")
    ids = [recipient_id for recipient_id, _ in steps]
    if len(set(ids)) != len(ids):
        raise PeopleError("a recipient may appear only once in a chain")
    known = set(session.scalars(select(Recipient.id).where(Recipient.id.in_(ids))))
    missing = [str(i) for i in ids if i not in known]
    if missing:
        raise PeopleError(f"no recipient {', '.join(missing)}: see `telecare recipients list`")
    # Delete first, in its own statement: the new rows reuse the positions (unique per resident).
    session.execute(delete(EscalationStep).where(EscalationStep.resident_id == resident.id))
    session.expire(resident, ["steps"])
    rows = [EscalationStep(resident_id=resident.id, position=i, recipient_id=recipient_id, wait_min=wait_min)
            for i, (recipient_id, wait_min) in enumerate(steps, 1)]
    session.add_all(rows)
    session.flush()
    return rows


def add_absence(session: Session, home_id: str, starts_at: datetime, ends_at: datetime | None,
                reason: str) -> Absence:
    resident = resident_for(session, home_id)
    if ends_at is not None and ends_at <= starts_at:
        raise PeopleError("an absence must end after it starts")
    if not reason.strip():
        raise PeopleError("say why the resident is away (--reason)")
    check_no_overlap(session, resident, starts_at, ends_at)
    absence = Absence(resident_id=resident.id, starts_at=starts_at, ends_at=ends_at, reason=reason.strip())
    session.add(absence)
    session.flush()
    return absence


def check_no_overlap(session: Session, resident: Resident, starts_at: datetime, ends_at: datetime | None,
                     *, ignore_id: int | None = None) -> None:
    """:class:`AbsenceOverlap` if ``[starts_at, ends_at)`` (None: open-ended) overlaps another of the resident's
    absences (``ignore_id``: the one being changed). Two absences at once would make ending one ambiguous, and an
    open-ended one hides the other's end; one that ends when the next starts does not overlap."""
    query = select(Absence).where(Absence.resident_id == resident.id).order_by(Absence.starts_at)
    if ends_at is not None:
        query = query.where(Absence.starts_at < ends_at)
    query = query.where(Absence.ends_at.is_(None) | (Absence.ends_at > starts_at))
    if ignore_id is not None:
        query = query.where(Absence.id != ignore_id)
    other = session.scalars(query.limit(1)).first()
    if other is None:
        return
    home = session.get(Home, resident.home_id)
    tz = timezones.zone(home.timezone if home is not None else None, of=f"home {resident.home_id}")
    until = f"until {other.ends_at.astimezone(tz):%Y-%m-%d %H:%M}" if other.ends_at else "open-ended"
    raise AbsenceOverlap(
        f"this absence overlaps absence {other.id}: from {other.starts_at.astimezone(tz):%Y-%m-%d %H:%M} {until} "
        f"({tz.key}), {other.reason!r}: end or change that one first", other)


def end_absence(session: Session, absence_id: int, at: datetime) -> Absence:
    """End an absence at ``at`` (the resident came back early, or an open-ended one is over)."""
    absence = session.get(Absence, absence_id)
    if absence is None:
        raise PeopleError(f"no absence {absence_id}: see `telecare away list`")
    if absence.ends_at is not None and absence.ends_at <= at:
        raise PeopleError(f"absence {absence_id} ended already ({absence.ends_at:%Y-%m-%d %H:%M} UTC)")
    if at <= absence.starts_at:
        # Not begun yet: ending it now means it never happens; keep the record, with no length.
        at = absence.starts_at
    absence.ends_at = at
    return absence


def absences_for(session: Session, home_id: str) -> list[tuple[int, int | None]]:
    """The home's resident's planned absences as ``(start_ms, end_ms or None)`` epoch-ms intervals, in order, for
    the detectors (no alerts about inactivity while someone is away on purpose)."""
    rows = session.execute(
        select(Absence.starts_at, Absence.ends_at).join(Resident, Resident.id == Absence.resident_id)
        .where(Resident.home_id == home_id).order_by(Absence.starts_at))
    return [(_ms(start), None if end is None else _ms(end)) for start, end in rows]


def _ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)
