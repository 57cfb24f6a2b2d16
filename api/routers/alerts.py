"""Alerts: filter, read with their full timeline, acknowledge, resolve with a note and an outcome, record the
outcome of an alert that cleared by itself; the care team's record on it (notes, who is going round).

Acknowledging and resolving go through :mod:`gateway.alerting.service`, in the request's transaction: the chain
stops for everyone and the others are told, exactly as when a carer acknowledges in Pushover. The gateway's
dispatcher sends those messages (it polls the outbox). Notes and who is going round go through
:mod:`gateway.alerting.care_record`, as the dashboard's forms do. The services' refusals become 404/409/422 in
:mod:`api.errors`; the routes here check access and write the audit trail.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Query, status
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from analytics.alerts import AlertKind, Outcome
from api.audit import ACKNOWLEDGE, CREATE, DELETE, LIST, OUTCOME, RESOLVE, UPDATE, VIEW, audit, audit_many
from api.deps import Clock, CurrentUser, PathId, Principal, SessionDep, visible_resident_ids
from api.errors import Conflict, NotFound
from api.pagination import Page, PageDep, paginate
from api.schemas.alerts import (
    AcknowledgeIn,
    AlertDetailOut,
    AlertOut,
    AttendanceIn,
    AttendanceOut,
    CareRecordOut,
    NoteIn,
    NoteOut,
    NotificationOut,
    OutcomeIn,
    ResolveIn,
    State,
    TimelineEntry,
)
from api.schemas.common import INT32_MAX, HomeId, UtcDatetime
from gateway.alerting import care_record, service
from gateway.alerting.policy import severity_name
from gateway.alerting.states import AlertState
from gateway.db.care_record import AlertAttendance, AlertNote
from gateway.db.models import Alert, AlertLog, Home, Notification, Recipient

router = APIRouter(prefix="/alerts", tags=["alerts"])

def visible_alerts(principal: Principal) -> Select[Alert]:
    """The alerts raised while the caller's organisation cared for the home (stamped when raised), whoever cares
    for it now: staff see them all; a carer those of the residents they care for."""
    stmt = select(Alert).where(Alert.organisation_id == principal.organisation_id)
    if principal.is_staff:
        return stmt
    return stmt.where(Alert.resident_id.in_(visible_resident_ids(principal)))


def alert_for(principal: Principal, session: Session, alert_id: int, *, to_change: bool = False) -> Alert:
    """The alert, if the caller may see it; ``to_change``: and act on it, which needs the home to be the
    organisation's still (409 otherwise: its history stays readable, but the home is someone else's to handle)."""
    alert = session.scalar(visible_alerts(principal).where(Alert.id == alert_id))
    if alert is None:
        raise NotFound(f"no alert {alert_id} that you may see")
    if to_change and session.scalar(select(Home.organisation_id).where(Home.id == alert.home_id)) \
            != principal.organisation_id:
        raise Conflict(f"alert {alert_id} was raised at a home your organisation no longer cares for: it can be "
                       "read, not changed")
    return alert


def alert_out(alert: Alert) -> AlertOut:
    return AlertOut.model_validate({**_fields(alert), "severity_name": severity_name(alert.severity)})


def _fields(alert: Alert) -> dict[str, object]:
    return {name: getattr(alert, name) for name in AlertOut.model_fields if name != "severity_name"}


def _detail(session: Session, alert: Alert) -> AlertDetailOut:
    timeline = session.scalars(select(AlertLog).where(AlertLog.alert_id == alert.id)
                               .order_by(AlertLog.at, AlertLog.id))
    notifications = session.execute(
        select(Notification, Recipient.name).join(Recipient, Recipient.id == Notification.recipient_id)
        .where(Notification.alert_id == alert.id).order_by(Notification.created_at, Notification.id))
    return AlertDetailOut(
        **alert_out(alert).model_dump(),
        timeline=[TimelineEntry.model_validate(entry) for entry in timeline],
        notifications=[NotificationOut.model_validate({**{k: getattr(n, k) for k in NotificationOut.model_fields
                                                          if k != "recipient_name"}, "recipient_name": name})
                       for n, name in notifications],
        **care_record_fields(session, [alert.id])[alert.id])


def care_record_fields(session: Session, alert_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """The care team's record of each alert, as :class:`AlertDetailOut`'s ``attendance``, ``attendance_history``
    and ``notes``: two queries for any number of alerts (a resident's export)."""
    out: dict[int, dict[str, Any]] = {i: {"attendance": None, "attendance_history": [], "notes": []}
                                      for i in alert_ids}
    for row in session.scalars(select(AlertAttendance).where(AlertAttendance.alert_id.in_(list(alert_ids)))
                               .order_by(AlertAttendance.said_at, AlertAttendance.id)):
        attendance = AttendanceOut.model_validate(row)
        out[row.alert_id]["attendance_history"].append(attendance)
        if attendance.cleared_at is None:
            out[row.alert_id]["attendance"] = attendance
    for note in session.scalars(select(AlertNote).where(AlertNote.alert_id.in_(list(alert_ids)))
                                .order_by(AlertNote.at, AlertNote.id)):
        out[note.alert_id]["notes"].append(NoteOut.model_validate(note))
    return out


def _record(session: Session, alert: Alert) -> CareRecordOut:
    return CareRecordOut.model_validate({
        **{name: getattr(alert, name) for name in ("state", "outcome", "outcome_note", "outcome_by", "outcome_at",
                                                   "resolved_at", "resolved_by", "resolution_note")},
        "alert_id": alert.id, **care_record_fields(session, [alert.id])[alert.id]})


@router.get("", response_model=Page[AlertOut], summary="Alerts, newest first, filtered")
def list_alerts(
    principal: CurrentUser, session: SessionDep, page: PageDep, at: Clock,
    state: Annotated[list[State] | None, Query(description="one or more states")] = None,
    open: Annotated[bool | None, Query(description="true: not resolved; false: resolved")] = None,
    kind: Annotated[list[AlertKind] | None, Query(description="one or more kinds (docs/alerts.md)")] = None,
    outcome: Annotated[list[Outcome] | None, Query(description="one or more outcomes recorded")] = None,
    has_outcome: Annotated[bool | None, Query(
        description="false: no outcome recorded yet (with open=false: resolved alerts awaiting theirs)")] = None,
    resident_id: Annotated[int | None, Query(ge=1, le=INT32_MAX)] = None,
    home_id: Annotated[HomeId | None, Query(description="one home")] = None,
    since: Annotated[UtcDatetime | None, Query(description="raised at or after (ISO 8601 with offset)")] = None,
    until: Annotated[UtcDatetime | None, Query(description="raised before (ISO 8601 with offset)")] = None,
) -> Page[AlertOut]:
    stmt = visible_alerts(principal)
    if state:
        stmt = stmt.where(Alert.state.in_(state))
    if open is not None:
        stmt = stmt.where(Alert.state != AlertState.RESOLVED if open else Alert.state == AlertState.RESOLVED)
    if kind:
        stmt = stmt.where(Alert.kind.in_([str(k) for k in kind]))
    if outcome:
        stmt = stmt.where(Alert.outcome.in_([o.value for o in outcome]))
    if has_outcome is not None:
        # A notice (back from an absence) is not an alert: nobody owes it an outcome.
        stmt = stmt.where(Alert.outcome.is_not(None) if has_outcome
                          else (Alert.outcome.is_(None) & (Alert.kind != AlertKind.RETURNED)))
    if resident_id is not None:
        stmt = stmt.where(Alert.resident_id == resident_id)
    if home_id is not None:
        stmt = stmt.where(Alert.home_id == home_id)
    if since is not None:
        stmt = stmt.where(Alert.raised_at >= since)
    if until is not None:
        stmt = stmt.where(Alert.raised_at < until)
    result = paginate(session, stmt.order_by(Alert.raised_at.desc(), Alert.id.desc()), page, alert_out)
    audit_many(session, principal, LIST, "alerts", [a.resident_id for a in result.items], at=at)
    return result


@router.get("/{alert_id}", response_model=AlertDetailOut,
            summary="One alert with its timeline (escalations) and notifications")
def get_alert(alert_id: PathId, principal: CurrentUser, session: SessionDep, at: Clock) -> AlertDetailOut:
    alert = alert_for(principal, session, alert_id)
    audit(session, principal, VIEW, "alert", alert.resident_id, f"alert {alert.id}", at=at)
    return _detail(session, alert)


@router.post("/{alert_id}/acknowledge", response_model=AlertDetailOut,
             summary="Say you are dealing with it: the chain stops, the others are told")
def acknowledge(alert_id: PathId, principal: CurrentUser, session: SessionDep, at: Clock,
                body: AcknowledgeIn | None = None) -> AlertDetailOut:
    alert = alert_for(principal, session, alert_id, to_change=True)
    note = body.note if body is not None else None
    alert = service.acknowledge(session, alert.id, principal.name, note, at, recipient_id=principal.recipient_id)
    audit(session, principal, ACKNOWLEDGE, "alert", alert.resident_id, f"alert {alert.id}", at=at)
    session.flush()
    return _detail(session, alert)


@router.post("/{alert_id}/resolve", response_model=AlertDetailOut,
             summary="Close it with a note and the outcome (what was found): everyone alerted is told")
def resolve(alert_id: PathId, body: ResolveIn, principal: CurrentUser, session: SessionDep,
            at: Clock) -> AlertDetailOut:
    alert = alert_for(principal, session, alert_id, to_change=True)
    alert = service.resolve(session, alert.id, principal.name, body.note, at, outcome=body.outcome,
                            recipient_id=principal.recipient_id)
    detail = f"alert {alert.id}" + (f": {body.outcome.value}" if body.outcome else "")
    audit(session, principal, RESOLVE, "alert", alert.resident_id, detail, at=at)
    session.flush()
    return _detail(session, alert)


@router.post("/{alert_id}/outcome", response_model=AlertDetailOut,
             summary="Record what was found on a resolved alert (one that cleared by itself), or correct it")
def record_outcome(alert_id: PathId, body: OutcomeIn, principal: CurrentUser, session: SessionDep,
                   at: Clock) -> AlertDetailOut:
    alert = alert_for(principal, session, alert_id, to_change=True)
    alert = service.record_outcome(session, alert.id, body.outcome, principal.name, body.note, at)
    audit(session, principal, OUTCOME, "alert", alert.resident_id, f"alert {alert.id}: {body.outcome.value}", at=at)
    session.flush()
    return _detail(session, alert)



# --- The care team's record: notes, who is going round ----------------------------------------------------------------


@router.get("/{alert_id}/record", response_model=CareRecordOut,
            summary="The care team's record: the outcome, who is (and was) going round, and the notes")
def get_record(alert_id: PathId, principal: CurrentUser, session: SessionDep, at: Clock) -> CareRecordOut:
    alert = alert_for(principal, session, alert_id)
    audit(session, principal, VIEW, "alert record", alert.resident_id, f"alert {alert.id}", at=at)
    return _record(session, alert)


@router.get("/{alert_id}/notes", response_model=list[NoteOut], summary="The notes on an alert, oldest first")
def list_notes(alert_id: PathId, principal: CurrentUser, session: SessionDep, at: Clock) -> list[NoteOut]:
    alert = alert_for(principal, session, alert_id)
    audit(session, principal, VIEW, "alert notes", alert.resident_id, f"alert {alert.id}", at=at)
    return list(care_record_fields(session, [alert.id])[alert.id]["notes"])


@router.post("/{alert_id}/notes", response_model=NoteOut, status_code=status.HTTP_201_CREATED,
             summary="Add a note: what was found, done or arranged (notes are kept as written)")
def add_note(alert_id: PathId, body: NoteIn, principal: CurrentUser, session: SessionDep, at: Clock) -> NoteOut:
    alert = alert_for(principal, session, alert_id, to_change=True)
    note = care_record.add_note(session, alert.id, body.text, by=principal.name, by_user_id=principal.user_id,
                                now=at)
    audit(session, principal, CREATE, "alert note", alert.resident_id, f"alert {alert.id}", at=at)
    session.flush()
    return NoteOut.model_validate(note)


@router.put("/{alert_id}/attendance", response_model=AttendanceOut,
            summary="Say who is going round (a user, someone named, or yourself) and when they expect to arrive")
def set_attendance(alert_id: PathId, principal: CurrentUser, session: SessionDep, at: Clock,
                   body: AttendanceIn | None = None) -> AttendanceOut:
    body = body or AttendanceIn()
    alert = alert_for(principal, session, alert_id, to_change=True)
    row = care_record.set_attendance(session, alert.id, by=principal.name, by_user_id=principal.user_id, now=at,
                                     name=body.name, user_id=body.user_id, expected_at=body.expected_at)
    audit(session, principal, UPDATE, "alert attendance", alert.resident_id, f"alert {alert.id}: {row.name}", at=at)
    session.flush()
    return AttendanceOut.model_validate(row)


@router.delete("/{alert_id}/attendance", response_model=AttendanceOut,
               summary="Clear who is going round (they are there and done, or not going): the record is kept")
def clear_attendance(alert_id: PathId, principal: CurrentUser, session: SessionDep, at: Clock) -> AttendanceOut:
    alert = alert_for(principal, session, alert_id, to_change=True)
    row = care_record.clear_attendance(session, alert.id, by=principal.name, now=at)
    audit(session, principal, DELETE, "alert attendance", alert.resident_id, f"alert {alert.id}: {row.name}", at=at)
    session.flush()
    return AttendanceOut.model_validate(row)
