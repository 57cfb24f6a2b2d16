"""Privacy (issue 12): a resident's data exported for a subject access request, a resident erased, and the
organisation's retention settings (which ``gateway/purge.py`` applies). docs/api.md, "Privacy".

The export and the erasure cover the resident's *care period* with the caller's organisation: from the later of
the resident's creation and the organisation's current claim on the home, to now. Readings before it are another
person's, or another organisation's.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from api.audit import ERASE, EXPORT, UPDATE, audit
from api.deps import Admin, Clock, PathId, Principal, SessionDep, Staff, get_store, resident_for
from api.errors import Conflict, Invalid, Unavailable
from api.routers.alerts import alert_out, care_record_fields
from api.schemas.alerts import AlertDetailOut, NotificationOut, TimelineEntry
from api.schemas.audit import AuditOut
from api.schemas.people import AbsenceOut, HomeBrief
from api.schemas.privacy import (
    CarePeriod,
    ChainStepExport,
    DailySummaryExport,
    ErasureIn,
    ErasureOut,
    ResidentExport,
    RetentionOut,
    RetentionUpdate,
    SubjectAccessExport,
)
from gateway.alerting.states import AlertState
from gateway.db.models import (
    Absence,
    Alert,
    AlertLog,
    AuditEntry,
    DetectorCheckpoint,
    Notification,
    Organisation,
    Recipient,
    Resident,
)
from gateway.errors import StoreUnavailable
from gateway.purge import care_start
from gateway.stores.readings.base import Point, ReadingStore

__all__ = ["care_period", "router"]

log = logging.getLogger(__name__)
router = APIRouter(tags=["privacy"])

StoreDep = Annotated[ReadingStore, Depends(get_store)]
READINGS_WINDOW = timedelta(days=1)  # the readings export reads a day at a time ...
READINGS_BATCH = 10_000  # ... at most this many points per read
OTHER_RECIPIENT = "(a recipient of another organisation)"
NO_EXPORT = ("the readings store cannot be reached just now, so the resident's readings cannot be exported: try "
             "again in a minute")
NO_ERASURE = ("the readings store could not delete the resident's readings, so nothing was erased: it is away (try "
              "again in a minute), or it has no delete API (VictoriaMetrics: see docs/production.md)")


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def care_period(session: Session, principal: Principal, resident: Resident, now: datetime) -> tuple[datetime,
                                                                                                     datetime]:
    """From the later of the resident's creation and the organisation's current claim on the home, to now."""
    start = care_start(session, resident, principal.organisation_id)
    return start, max(start, now.astimezone(UTC))


# --- subject access export -------------------------------------------------------------------------------------


@router.get("/residents/{resident_id}/export", response_model=SubjectAccessExport,
            summary="Everything held about a resident, for a subject access request (admins and coordinators)")
def export_resident(resident_id: PathId, principal: Staff, session: SessionDep, store: StoreDep,
                    at: Clock) -> SubjectAccessExport:
    resident = resident_for(principal, session, resident_id)
    start, end = care_period(session, principal, resident, at)
    try:
        summaries = store.daily_summaries(resident.home_id, start.date(), end.date())
    except StoreUnavailable as e:
        raise Unavailable(NO_EXPORT, headers=_retry(e)) from e
    absences = session.scalars(select(Absence).where(Absence.resident_id == resident.id)
                               .order_by(Absence.starts_at, Absence.id))
    chain = [ChainStepExport(position=s.position, recipient_name=_recipient_name(s.recipient, principal),
                             wait_min=s.wait_min) for s in resident.steps]
    audit_rows = session.scalars(select(AuditEntry).where(
        AuditEntry.organisation_id == principal.organisation_id, AuditEntry.resident_id == resident.id)
        .order_by(AuditEntry.at, AuditEntry.id))
    out = SubjectAccessExport(
        exported_at=at, organisation_id=principal.organisation_id,
        resident=ResidentExport(id=resident.id, name=resident.name, notes=resident.notes,
                                created_at=resident.created_at, home=HomeBrief.model_validate(resident.home)),
        care_period=CarePeriod(start=start, end=end),
        absences=[AbsenceOut.model_validate(a) for a in absences],
        escalation_chain=chain,
        alerts=_alerts(session, principal, resident),
        daily_summaries=[DailySummaryExport(day=s.day, values=s.values) for s in summaries],
        readings=f"/residents/{resident.id}/export/readings",
        audit=[AuditOut.model_validate(row) for row in audit_rows])
    audit(session, principal, EXPORT, "resident", resident.id, "subject access export", at=at)
    return out


def _recipient_name(recipient: Recipient, principal: Principal) -> str:
    return recipient.name if recipient.organisation_id == principal.organisation_id else OTHER_RECIPIENT


def _alerts(session: Session, principal: Principal, resident: Resident) -> list[AlertDetailOut]:
    alerts = list(session.scalars(select(Alert).where(
        Alert.resident_id == resident.id, Alert.organisation_id == principal.organisation_id)
        .order_by(Alert.raised_at, Alert.id)))
    ids = [a.id for a in alerts]
    timelines: dict[int, list[TimelineEntry]] = {i: [] for i in ids}
    for entry in session.scalars(select(AlertLog).where(AlertLog.alert_id.in_(ids))
                                 .order_by(AlertLog.at, AlertLog.id)):
        timelines[entry.alert_id].append(TimelineEntry.model_validate(entry))
    notifications: dict[int, list[NotificationOut]] = {i: [] for i in ids}
    for n, recipient in session.execute(
            select(Notification, Recipient).join(Recipient, Recipient.id == Notification.recipient_id)
            .where(Notification.alert_id.in_(ids)).order_by(Notification.created_at, Notification.id)):
        fields = {k: getattr(n, k) for k in NotificationOut.model_fields if k != "recipient_name"}
        notifications[n.alert_id].append(NotificationOut.model_validate(
            {**fields, "recipient_name": _recipient_name(recipient, principal)}))
    care = care_record_fields(session, ids)  # the care team's notes and who went round belong to the record too
    return [AlertDetailOut(**alert_out(a).model_dump(), timeline=timelines[a.id], notifications=notifications[a.id],
                           **care[a.id])
            for a in alerts]


@router.get("/residents/{resident_id}/export/readings", response_class=StreamingResponse,
            summary="A resident's readings over the care period, as JSON Lines (admins and coordinators)",
            responses={200: {"content": {"application/x-ndjson": {}},
                             "description": "One point a line, oldest first; streamed"}})
def export_readings(request: Request, resident_id: PathId, principal: Staff, session: SessionDep,
                    store: StoreDep, at: Clock) -> StreamingResponse:
    resident = resident_for(principal, session, resident_id)
    start, end = care_period(session, principal, resident, at)
    home = resident.home_id
    try:
        first = store.timeline(home, _ms(start), _window_stop(_ms(start), _ms(end) + 1), limit=READINGS_BATCH)
    except StoreUnavailable as e:  # told now, while an error can still be a status code
        raise Unavailable(NO_EXPORT, headers=_retry(e)) from e
    audit(session, principal, EXPORT, "activity.readings", resident.id,
          f"{start.isoformat()} to {end.isoformat()}", at=at)
    lines = (json.dumps(point, ensure_ascii=False) + "\n"
             for point in _points(store, home, _ms(start), _ms(end) + 1, first))
    stamp = f"{resident.id}-{request.app.state.now():%Y%m%dT%H%M%SZ}"
    return StreamingResponse(lines, media_type="application/x-ndjson",
                             headers={"Content-Disposition": f'attachment; filename="readings-{stamp}.jsonl"',
                                      "Cache-Control": "no-store"})


def _points(store: ReadingStore, home: str, start_ms: int, end_ms: int, first: list[Point]
            ) -> Iterator[dict[str, Any]]:
    """The home's readings in [start, end), a day (or a batch) per read; ``first`` is the first day's read."""
    cursor, window_stop, batch = start_ms, _window_stop(start_ms, end_ms), first
    after: tuple[int, str] | None = None  # the last point given, when a batch was full
    while True:
        given = 0
        for p in batch:
            key = (p.time_ms, p.tags.get("device", ""))
            if after is not None and key <= after:
                continue
            given += 1
            yield {"time": datetime.fromtimestamp(p.time_ms / 1000, UTC).isoformat(), "time_ms": p.time_ms,
                   "device": p.tags.get("device"), "tags": p.tags, "fields": p.fields}
        if len(batch) >= READINGS_BATCH:  # more in this window: go on from the last point given
            last = batch[-1]
            after = (last.time_ms, last.tags.get("device", ""))
            cursor = last.time_ms if given else last.time_ms + 1  # a full batch of one instant: step past it
        else:
            after, cursor = None, window_stop
            if cursor >= end_ms:
                return
            window_stop = _window_stop(cursor, end_ms)
        batch = store.timeline(home, cursor, window_stop, limit=READINGS_BATCH)


def _window_stop(cursor_ms: int, end_ms: int) -> int:
    return min(cursor_ms + int(READINGS_WINDOW.total_seconds() * 1000), end_ms)


def _retry(e: StoreUnavailable) -> dict[str, str] | None:
    # The store's own message may name an internal host: it goes to the log, the client gets what to do.
    log.warning("readings store: %s", e)
    return {"Retry-After": str(max(1, round(e.retry_after)))} if e.retry_after else None


# --- erasure -------------------------------------------------------------------------------------------------


@router.post("/residents/{resident_id}/erase", response_model=ErasureOut,
             summary="Erase a resident and their data (admins; cannot be undone)")
def erase_resident(resident_id: PathId, body: ErasureIn, principal: Admin, session: SessionDep,
                   store: StoreDep, at: Clock) -> ErasureOut:
    resident = resident_for(principal, session, resident_id)
    if body.confirm != resident.name:
        raise Invalid(f"'confirm' must be the resident's name exactly as stored (see GET /residents/{resident.id}): "
                      "erasure cannot be undone")
    still_open = session.scalar(select(func.count()).select_from(Alert).where(
        Alert.resident_id == resident.id, Alert.state != AlertState.RESOLVED)) or 0
    if still_open:
        raise Conflict(f"resident {resident.id} has {still_open} open alert(s): acknowledge and resolve them first "
                       f"(GET /alerts?resident_id={resident.id}&open=true); an alert nobody has dealt with is never "
                       "erased", code="open_alerts")
    start, end = care_period(session, principal, resident, at)
    try:
        # First, while nothing else is gone: a store away leaves the resident whole, to be erased again later.
        store.delete_range(resident.home_id, _ms(start), _ms(end) + 1)
    except StoreUnavailable as e:
        raise Unavailable(NO_ERASURE, headers=_retry(e)) from e
    alerts = _count_deleted(session.execute(delete(Alert).where(Alert.resident_id == resident.id)))
    absences = session.scalar(select(func.count()).select_from(Absence).where(
        Absence.resident_id == resident.id)) or 0
    scrubbed = _count_deleted(session.execute(
        update(AuditEntry).where(AuditEntry.resident_id == resident.id).values(resident_id=None, detail="")))
    # What the detectors learned is the resident's routine: gone, and a new epoch so none of it is restored.
    session.execute(delete(DetectorCheckpoint).where(DetectorCheckpoint.home_id == resident.home_id))
    resident.home.care_epoch = (resident.home.care_epoch or 0) + 1
    session.delete(resident)  # its absences and chain with it
    audit(session, principal, ERASE, "resident", resident_id,
          f"resident {resident_id} erased by {principal.name}: {alerts} alerts, {absences} absences, readings "
          f"{start.isoformat()} to {end.isoformat()}; {scrubbed} audit entries scrubbed", at=at)
    session.flush()
    return ErasureOut(resident_id=resident_id, erased_at=at, alerts=alerts, absences=absences,
                      audit_entries_scrubbed=scrubbed, readings_from=start, readings_to=end)


def _count_deleted(result: Any) -> int:
    return int(result.rowcount or 0)


# --- retention settings ---------------------------------------------------------------------------------------


@router.get("/organisation/retention", response_model=RetentionOut,
            summary="How long the organisation keeps care records, the audit trail and dead letters (admins)")
def get_retention(request: Request, principal: Admin, session: SessionDep) -> RetentionOut:
    return _retention_out(request, session.get_one(Organisation, principal.organisation_id))


@router.patch("/organisation/retention", response_model=RetentionOut,
              summary="Change how long the organisation keeps its data (admins)")
def update_retention(request: Request, body: RetentionUpdate, principal: Admin, session: SessionDep,
                     at: Clock) -> RetentionOut:
    organisation = session.get_one(Organisation, principal.organisation_id)
    changes = body.model_dump(exclude_unset=True)
    for name in ("care_record_retention_days", "audit_retention_days"):
        if name in changes and changes[name] is None:
            raise Invalid(f"{name} cannot be null: send a number of days (1 to 36,525)")
    described = []
    for name, value in sorted(changes.items()):
        described.append(f"{name} {getattr(organisation, name)} → {value}")
        setattr(organisation, name, value)
    audit(session, principal, UPDATE, "retention", None, "; ".join(described), at=at)
    session.flush()
    return _retention_out(request, organisation)


def _retention_out(request: Request, organisation: Organisation) -> RetentionOut:
    return RetentionOut(care_record_retention_days=organisation.care_record_retention_days,
                        audit_retention_days=organisation.audit_retention_days,
                        dead_letter_retention_days=organisation.dead_letter_retention_days,
                        dead_letter_default_days=request.app.state.settings.dead_letter_max_age_days)

