"""Residents: their home and time zone, escalation chain and planned absences. Every read and change is audited."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response, status
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from api.audit import CREATE, DELETE, LIST, UPDATE, VIEW, audit, audit_many
from api.caseload import AlertFilter, CaseloadQuery, CaseloadRow, CaseloadSort, caseload
from api.deps import Clock, CurrentUser, PathId, Principal, SessionDep, Staff, resident_for
from api.errors import Conflict, Invalid, NotFound
from api.pagination import Page, PageDep, paginate
from api.schemas.common import INT32_MAX
from api.schemas.people import (
    AbsenceEnd,
    AbsenceIn,
    AbsenceOut,
    CaseloadSearch,
    CaseloadSummaryOut,
    ChainIn,
    ChainStepOut,
    HomeBrief,
    ResidentIn,
    ResidentListItem,
    ResidentOut,
    ResidentPage,
    ResidentUpdate,
)
from gateway.alerting import people
from gateway.claims import new_care
from gateway.db.models import Absence, EscalationStep, Home, Recipient, Resident
from gateway.purge import record_care_end

router = APIRouter(prefix="/residents", tags=["residents"])

# Filters that only narrow: "false" would read as "only those that can be seen", which they do not do.
ONLY_TRUE = "true only narrows the list; leave it out for everyone"


def resident_out(resident: Resident) -> ResidentOut:
    return ResidentOut(
        id=resident.id, name=resident.name, notes=resident.notes, created_at=resident.created_at,
        home=HomeBrief.model_validate(resident.home),
        chain=[ChainStepOut(position=s.position, recipient_id=s.recipient_id, recipient_name=s.recipient.name,
                            wait_min=s.wait_min) for s in resident.steps])


def _loaded(principal: Principal, session: Session, resident_id: int) -> Resident:
    resident = resident_for(principal, session, resident_id)
    session.refresh(resident, ["steps"])  # the chain may just have been replaced
    return resident


@router.get("", response_model=ResidentPage,
            summary="Your caseload: the residents you may see, searched, filtered, sorted and paged")
def list_residents(
    principal: CurrentUser, session: SessionDep, page: PageDep, at: Clock,
    q: Annotated[CaseloadSearch | None, Query(description=(
        "part of the resident's name, the home's id or the home's name (any case)"))] = None,
    alert_state: Annotated[AlertFilter | None, Query(description=(
        "urgent: an open alert is urgent or an emergency; warning: alerts open, none urgent; none: no open alert"
    ))] = None,
    cant_see: Annotated[bool | None, Query(description=(
        "true: only the homes that can't be seen (an open hub_offline or cant_see alert, or the hub offline)"))] = None,
    needs_setting_up: Annotated[bool | None, Query(description=(
        "true: only the homes with devices not set up (no room nor role, or a button not given its role)"))] = None,
    carer: Annotated[int | None, Query(ge=1, le=INT32_MAX, description=(
        "a recipient's id: only the residents whose chain names them (their round)"))] = None,
    sort: Annotated[CaseloadSort, Query(description=(
        "name; home (its id); urgency (the most severe open alert first, then can't see, then the longest open); "
        "last_heard (the home heard from longest ago first)"))] = CaseloadSort.NAME,
    order: Annotated[Literal["asc", "desc"], Query(description="desc reverses the sort")] = "asc",
) -> ResidentPage:
    if cant_see is False or needs_setting_up is False:
        raise Invalid(f"{'cant_see' if cant_see is False else 'needs_setting_up'}=false: {ONLY_TRUE}")
    if carer is not None and session.scalar(select(Recipient.id).where(
            Recipient.id == carer, Recipient.organisation_id == principal.organisation_id)) is None:
        raise Invalid(f"carer={carer}: no recipient {carer} in your organisation (GET /recipients lists them)")
    result = caseload(session, principal, CaseloadQuery(
        search=q or "", alert_state=alert_state, cant_see=bool(cant_see), needs_setting_up=bool(needs_setting_up),
        carer=carer, sort=sort, descending=order == "desc", limit=page.limit, offset=page.offset))
    residents = {r.id: r for r in session.scalars(
        select(Resident).where(Resident.id.in_([row.resident_id for row in result.rows])).options(
            selectinload(Resident.home), selectinload(Resident.steps).selectinload(EscalationStep.recipient)))}
    items = [_list_item(residents[row.resident_id], row) for row in result.rows if row.resident_id in residents]
    audit_many(session, principal, LIST, "resident", [item.id for item in items], at=at)
    listed = page.page(items, result.total)
    return ResidentPage(**listed.model_dump(exclude={"items"}), items=items,
                        summary=CaseloadSummaryOut.model_validate(result.summary))


def _list_item(resident: Resident, row: CaseloadRow) -> ResidentListItem:
    return ResidentListItem(
        **resident_out(resident).model_dump(), alert_state=row.alert_state.value, severity=row.severity,
        open_alerts=row.open_alerts, oldest_open_at=row.oldest_open_at, cant_see=row.cant_see,
        last_heard=row.last_heard, devices_not_set_up=row.not_set_up, buttons_not_set_up=row.buttons_not_set_up)


@router.post("", response_model=ResidentOut, status_code=status.HTTP_201_CREATED,
             summary="Add the resident of a home of your organisation")
def create_resident(body: ResidentIn, principal: Staff, session: SessionDep, at: Clock) -> ResidentOut:
    home = session.get(Home, body.home_id)
    if home is None or home.organisation_id != principal.organisation_id:
        raise Invalid(f"no home {body.home_id!r} in your organisation: claim it first (POST /homes/{{id}}/claim)")
    existing = session.scalar(select(Resident).where(Resident.home_id == home.id))
    if existing is not None:
        raise Conflict(f"home {home.id!r} already has a resident (id {existing.id})")
    resident = people.add_resident(session, home.id, body.name, body.notes)
    resident.created_at = at  # the API's clock: their readings are shown from here on
    if body.timezone:
        home.timezone = body.timezone
    audit(session, principal, CREATE, "resident", resident.id, at=at)
    return resident_out(_loaded(principal, session, resident.id))


@router.get("/{resident_id}", response_model=ResidentOut, summary="One resident, with home and chain")
def get_resident(resident_id: PathId, principal: CurrentUser, session: SessionDep, at: Clock) -> ResidentOut:
    resident = resident_for(principal, session, resident_id)
    audit(session, principal, VIEW, "resident", resident.id, at=at)
    return resident_out(resident)


@router.patch("/{resident_id}", response_model=ResidentOut, summary="Change name, notes or time zone")
def update_resident(resident_id: PathId, body: ResidentUpdate, principal: Staff, session: SessionDep,
                    at: Clock) -> ResidentOut:
    resident = resident_for(principal, session, resident_id)
    changes = body.model_dump(exclude_unset=True)
    if changes.get("name") is not None:
        resident.name = changes["name"]
    if "notes" in changes:
        resident.notes = changes["notes"]
    if changes.get("timezone") is not None:
        resident.home.timezone = changes["timezone"]
    audit(session, principal, UPDATE, "resident", resident.id, ", ".join(sorted(changes)), at=at)
    session.flush()
    return resident_out(resident)


@router.delete("/{resident_id}", status_code=status.HTTP_204_NO_CONTENT,
               summary="Remove a resident (their alerts stay, without the link)")
def delete_resident(resident_id: PathId, principal: Staff, session: SessionDep, at: Clock) -> Response:
    resident = resident_for(principal, session, resident_id)
    audit(session, principal, DELETE, "resident", resident.id, resident.name, at=at)
    record_care_end(session, resident, principal.organisation_id, at)  # their records: kept for the retention
    new_care(resident.home)  # whoever comes next is not judged by this resident's routine
    session.delete(resident)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.put("/{resident_id}/chain", response_model=ResidentOut,
            summary="Replace the escalation chain: who is alerted, in order, and how long each has")
def set_chain(resident_id: PathId, body: ChainIn, principal: Staff, session: SessionDep, at: Clock) -> ResidentOut:
    resident = resident_for(principal, session, resident_id)
    ids = [step.recipient_id for step in body.steps]
    known = set(session.scalars(select(Recipient.id).where(
        Recipient.id.in_(ids), Recipient.organisation_id == principal.organisation_id)))
    missing = [str(i) for i in ids if i not in known]
    if missing:
        raise Invalid(f"no recipient {', '.join(missing)} in your organisation: see GET /recipients")
    people.set_chain(session, resident.home_id, [(s.recipient_id, s.wait_min) for s in body.steps])
    detail = " → ".join(f"{s.recipient_id}:{s.wait_min}" for s in body.steps)
    audit(session, principal, UPDATE, "chain", resident.id, detail, at=at)
    return resident_out(_loaded(principal, session, resident.id))


@router.get("/{resident_id}/absences", response_model=Page[AbsenceOut], summary="Planned absences, latest first")
def list_absences(resident_id: PathId, principal: CurrentUser, session: SessionDep, page: PageDep,
                  at: Clock) -> Page[AbsenceOut]:
    resident = resident_for(principal, session, resident_id)
    stmt = select(Absence).where(Absence.resident_id == resident.id).order_by(Absence.starts_at.desc(),
                                                                              Absence.id.desc())
    audit(session, principal, LIST, "absences", resident.id, at=at)
    return paginate(session, stmt, page, AbsenceOut.model_validate)


@router.post("/{resident_id}/absences", response_model=AbsenceOut, status_code=status.HTTP_201_CREATED,
             summary="Plan an absence (holiday, hospital): no inactivity alerts meanwhile")
def create_absence(resident_id: PathId, body: AbsenceIn, principal: Staff, session: SessionDep,
                   at: Clock) -> AbsenceOut:
    resident = resident_for(principal, session, resident_id)
    absence = people.add_absence(session, resident.home_id, body.starts_at, body.ends_at, body.reason)
    audit(session, principal, CREATE, "absence", resident.id, f"absence {absence.id}", at=at)
    return AbsenceOut.model_validate(absence)


@router.post("/{resident_id}/absences/{absence_id}/end", response_model=AbsenceOut,
             summary="End an absence (back early, or an open-ended one is over)")
def end_absence(resident_id: PathId, absence_id: PathId, principal: Staff, session: SessionDep, at: Clock,
                body: AbsenceEnd | None = None) -> AbsenceOut:
    resident = resident_for(principal, session, resident_id)
    absence = session.get(Absence, absence_id)
    if absence is None or absence.resident_id != resident.id:
        raise NotFound(f"resident {resident.id} has no absence {absence_id}")
    when = body.at if body is not None and body.at is not None else at
    if absence.ends_at is not None and absence.ends_at <= when:
        raise Conflict(f"absence {absence_id} ended already ({absence.ends_at:%Y-%m-%d %H:%M} UTC)")
    people.end_absence(session, absence.id, when)
    audit(session, principal, UPDATE, "absence", resident.id, f"absence {absence.id} ended", at=at)
    return AbsenceOut.model_validate(absence)
