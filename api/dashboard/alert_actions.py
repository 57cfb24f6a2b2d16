"""What a carer or coordinator does to an alert from its resident's page: acknowledge, resolve with what was
found, record (or correct) the outcome of an alert that cleared by itself, add a note, say "I'm going round" (or
name who is), and clear who is going round.

Each calls the same service as the JSON API's ``POST /alerts/{id}/acknowledge``, ``/resolve``, ``/outcome``,
``/notes`` and ``PUT``/``DELETE /alerts/{id}/attendance`` (:mod:`gateway.alerting.service`,
:mod:`gateway.alerting.care_record`) and writes the same audit rows; every post must come from this origin with
the session's CSRF token (``common.form_principal``). What the services refuse (a resolved alert, too many
notes, an arrival in the past) comes back as a notice on the page, never as JSON in the carer's face.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Form
from fastapi.responses import Response
from pydantic import ValidationError

from api.audit import ACKNOWLEDGE, CREATE, DELETE, OUTCOME, RESOLVE, UPDATE
from api.dashboard.common import FormPrincipal, back
from api.deps import Clock, PathId, SessionDep, audit
from api.routers.alerts import alert_for
from api.schemas.alerts import AttendanceIn, NoteIn
from gateway.alerting import care_record, outcomes, service
from gateway.alerting.errors import CareRecordInvalid, CareRecordRefused, NobodyGoingRound, NotesFull

router = APIRouter(prefix="/dashboard", include_in_schema=False)
MAX_ARRIVING_IN = int(care_record.EXPECTED_HORIZON.total_seconds()) // 60  # minutes: the most the service takes


@router.post("/alerts/{alert_id}/acknowledge")
def acknowledge(alert_id: PathId, principal: FormPrincipal, session: SessionDep, at: Clock) -> Response:
    alert = alert_for(principal, session, alert_id, to_change=True)
    service.acknowledge(session, alert.id, principal.name, None, at, recipient_id=principal.recipient_id)
    audit(session, principal, ACKNOWLEDGE, "alert", alert.resident_id, f"alert {alert.id}", at=at)
    return back(alert, "acknowledged")


@router.post("/alerts/{alert_id}/resolve")
def resolve(alert_id: PathId, principal: FormPrincipal, session: SessionDep, at: Clock,
            note: Annotated[str, Form(min_length=1, max_length=2000)],
            outcome: Annotated[str, Form(max_length=32)] = "") -> Response:
    alert = alert_for(principal, session, alert_id, to_change=True)
    try:
        found = outcomes.parse_outcome(outcome) if outcome.strip() else None
    except ValueError:
        return back(alert, "not_resolved")
    service.resolve(session, alert.id, principal.name, note.strip() or "resolved", at, outcome=found,
                    recipient_id=principal.recipient_id)
    audit(session, principal, RESOLVE, "alert", alert.resident_id,
          f"alert {alert.id}" + (f": {found.value}" if found else ""), at=at)
    return back(alert, "resolved")


@router.post("/alerts/{alert_id}/outcome")
def record_outcome(alert_id: PathId, principal: FormPrincipal, session: SessionDep, at: Clock,
                   outcome: Annotated[str, Form(max_length=32)],
                   note: Annotated[str, Form(max_length=2000)] = "") -> Response:
    """What was found, on an alert that cleared by itself (or a correction)."""
    alert = alert_for(principal, session, alert_id, to_change=True)
    try:
        found = outcomes.parse_outcome(outcome)
    except ValueError:
        return back(alert, "not_recorded")
    service.record_outcome(session, alert.id, found, principal.name, note.strip() or None, at)
    audit(session, principal, OUTCOME, "alert", alert.resident_id, f"alert {alert.id}: {found.value}", at=at)
    return back(alert, f"recorded_{found.value}")


@router.post("/alerts/{alert_id}/notes")
def note(alert_id: PathId, principal: FormPrincipal, session: SessionDep, at: Clock,
         text: Annotated[str, Form(max_length=2000)] = "") -> Response:
    """A note on the alert, by the signed-in user, now (the API's ``POST /alerts/{id}/notes``)."""
    alert = alert_for(principal, session, alert_id, to_change=True)
    try:
        body = NoteIn(text=text)
    except ValidationError:
        return back(alert, "not_noted")
    try:
        care_record.add_note(session, alert.id, body.text, by=principal.name, by_user_id=principal.user_id, now=at)
    except NotesFull:
        return back(alert, "notes_full")
    except CareRecordInvalid:
        return back(alert, "not_noted")
    audit(session, principal, CREATE, "alert note", alert.resident_id, f"alert {alert.id}", at=at)
    return back(alert, "noted")


@router.post("/alerts/{alert_id}/going-round")
def going_round(alert_id: PathId, principal: FormPrincipal, session: SessionDep, at: Clock,
                arriving_in: Annotated[str, Form(max_length=8)] = "",
                name: Annotated[str, Form(max_length=200)] = "") -> Response:
    """"I'm going round" (the signed-in user), or someone named is; optionally arriving in so many minutes."""
    alert = alert_for(principal, session, alert_id, to_change=True)
    minutes = int(arriving_in) if arriving_in.isascii() and arriving_in.isdigit() else None
    if (arriving_in and minutes is None) or (minutes is not None and not 0 < minutes <= MAX_ARRIVING_IN):
        return back(alert, "not_going_round")
    try:
        body = AttendanceIn(name=name.strip() or None,
                            expected_at=at + timedelta(minutes=minutes) if minutes is not None else None)
    except ValidationError:
        return back(alert, "not_going_round")
    try:
        row = care_record.set_attendance(session, alert.id, by=principal.name, by_user_id=principal.user_id, now=at,
                                         name=body.name, expected_at=body.expected_at)
    except (CareRecordRefused, CareRecordInvalid):
        return back(alert, "not_going_round")
    audit(session, principal, UPDATE, "alert attendance", alert.resident_id, f"alert {alert.id}: {row.name}", at=at)
    return back(alert, "going_round")


@router.post("/alerts/{alert_id}/going-round/clear")
def not_going_round(alert_id: PathId, principal: FormPrincipal, session: SessionDep, at: Clock) -> Response:
    """Nobody is going round any more (they arrived and are done, or are not going): the record is kept."""
    alert = alert_for(principal, session, alert_id, to_change=True)
    try:
        row = care_record.clear_attendance(session, alert.id, by=principal.name, now=at)
    except NobodyGoingRound:
        return back(alert, "nobody_going_round")
    audit(session, principal, DELETE, "alert attendance", alert.resident_id, f"alert {alert.id}: {row.name}", at=at)
    return back(alert, "going_round_cleared")
