"""The caseload: the residents a caller may see, searched, filtered, sorted and paged in the database.

One function, :func:`caseload`, serves the dashboard's caseload page and the API's residents list. It runs two
queries whatever the caseload's size (the whole caseload's counts; one page of rows with the matching count), a
third only for a page past the end, each with the open alerts and the devices that need setting up aggregated in
SQL: no query per resident.

Its signature is stable: ``caseload(session, principal, query) -> CaseloadPage``, with
:class:`CaseloadQuery` (every field optional) and :class:`CaseloadPage` / :class:`CaseloadRow` as documented
below. :func:`open_alerts` loads the open alerts of one page's residents (one more query).

Definitions (docs/dashboard.md):

* **alert state** of a resident: ``urgent`` when an open alert is urgent or an emergency (severity ≥ 3),
  ``warning`` when alerts are open but none is urgent, ``none`` when no alert is open.
* **can't see**: an open ``hub_offline`` or ``cant_see`` alert, or the hub reported offline. Other device-health
  alerts (a silent sensor, a low battery) are open alerts, not blindness.
* **needs setting up**: a device of the home with neither room nor role, or a button not given the role pendant
  (``analytics.watch.pendant.setting_up_needed``, written here in SQL).
* **carer**: a recipient named in the resident's escalation chain (the model has no teams).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, exists, func, or_, select
from sqlalchemy.orm import Session

from analytics.alerts import AlertKind, Severity
from analytics.watch.pendant import NOT_CALLS_FOR_HELP, PENDANT_ROLE
from api.deps import Principal, visible_residents
from gateway.alerting.states import AlertState as LifecycleState
from gateway.db.models import Alert, Device, EscalationStep, Home, Resident

__all__ = [
    "MAX_LIMIT",
    "MAX_SEARCH_LEN",
    "UNSEEN_KINDS",
    "AlertFilter",
    "CaseloadPage",
    "CaseloadQuery",
    "CaseloadRow",
    "CaseloadSort",
    "CaseloadSummary",
    "caseload",
    "open_alerts",
]

MAX_LIMIT = 500
MAX_SEARCH_LEN = 100
UNSEEN_KINDS = (AlertKind.HUB_OFFLINE.value, AlertKind.CANT_SEE.value)
NO_ALERT = -1  # the "severity" of a resident without open alerts, below every real one


class AlertFilter(StrEnum):
    URGENT = "urgent"
    WARNING = "warning"
    NONE = "none"


class CaseloadSort(StrEnum):
    """``urgency``: the most severe open alert first, then homes that can't be seen, then the longest open alert,
    then by name. ``last_heard``: the home heard from longest ago (or never) first, ascending."""

    URGENCY = "urgency"
    NAME = "name"
    HOME = "home"
    LAST_HEARD = "last_heard"


@dataclass(frozen=True, slots=True)
class CaseloadQuery:
    """What to show. ``search`` matches the resident's name, the home's id or the home's name (case-insensitive,
    a substring). ``carer`` is a recipient id. ``descending`` reverses the sort's natural order. ``limit`` /
    ``offset`` page the result (the callers bound them: ``limit`` ≤ :data:`MAX_LIMIT`)."""

    search: str = ""
    alert_state: AlertFilter | None = None
    cant_see: bool = False
    needs_setting_up: bool = False
    carer: int | None = None
    sort: CaseloadSort = CaseloadSort.URGENCY
    descending: bool = False
    limit: int = 50
    offset: int = 0


@dataclass(frozen=True, slots=True)
class CaseloadRow:
    """One resident, with what the caseload shows about them. ``severity`` is the highest open alert's (None
    without one); ``timezone`` the home's IANA name, in which every time about the resident is shown."""

    resident_id: int
    name: str
    home_id: str
    home_name: str | None
    timezone: str
    severity: int | None
    open_alerts: int
    oldest_open_at: datetime | None
    cant_see: bool
    last_heard: datetime | None
    not_set_up: int
    buttons_not_set_up: int

    @property
    def alert_state(self) -> AlertFilter:
        if self.severity is None:
            return AlertFilter.NONE
        return AlertFilter.URGENT if self.severity >= Severity.URGENT else AlertFilter.WARNING


@dataclass(frozen=True, slots=True)
class CaseloadSummary:
    """Counts over the caller's whole caseload, whatever the filters (what each filter would find)."""

    residents: int = 0
    urgent: int = 0
    warning: int = 0
    open_alerts: int = 0
    cant_see: int = 0
    needs_setting_up: int = 0


@dataclass(frozen=True, slots=True)
class CaseloadPage:
    """``rows``: one page of the residents matching the query, in its order; ``total``: how many match."""

    rows: list[CaseloadRow]
    total: int
    summary: CaseloadSummary
    query: CaseloadQuery


def caseload(session: Session, principal: Principal, query: CaseloadQuery) -> CaseloadPage:
    """The residents ``principal`` may see (``api.deps.visible_residents``) that match ``query``: one page of
    them, how many match, and the whole caseload's counts. Two queries (three for a page past the end), whatever
    the number of residents."""
    base = _rows(principal)
    summary = _summary(session, base)
    matching = base.where(*_filters(query, base))
    # The matching count comes with the page (a window over the filtered rows); counted apart only for a page past
    # the end, which has no row to carry it.
    rows = session.execute(matching.add_columns(func.count().over().label("matching"))
                           .order_by(*_order(query, base)).limit(query.limit).offset(query.offset)).all()
    if rows:
        total = int(rows[0].matching)
    elif query.offset == 0:
        total = 0
    else:
        total = session.scalar(select(func.count()).select_from(matching.order_by(None).subquery())) or 0
    return CaseloadPage(rows=[_row(r) for r in rows], total=total, summary=summary, query=query)


def open_alerts(session: Session, principal: Principal, resident_ids: Sequence[int]) -> dict[int, list[Alert]]:
    """The open alerts of these residents raised in the caller's organisation, most severe (then oldest) first:
    one query. Residents the caller may not see must not be passed (take them from :func:`caseload`)."""
    if not resident_ids:
        return {}
    out: dict[int, list[Alert]] = {}
    for alert in session.scalars(select(Alert).where(
            Alert.resident_id.in_(list(resident_ids)), Alert.organisation_id == principal.organisation_id,
            Alert.state != LifecycleState.RESOLVED).order_by(Alert.severity.desc(), Alert.raised_at, Alert.id)):
        out.setdefault(alert.resident_id or 0, []).append(alert)
    return out


# --- the query -------------------------------------------------------------------------------------------------


def _needs_setting_up() -> ColumnElement[bool]:
    """``setting_up_needed(kind, room, role) is not None``, in SQL (NULL-safe: ``role NOT IN`` is unknown for a
    NULL role)."""
    return or_(_button_not_set_up(), and_(Device.role.is_(None), Device.room.is_(None)))


def _button_not_set_up() -> ColumnElement[bool]:
    calls_for_help = [PENDANT_ROLE, *sorted(NOT_CALLS_FOR_HELP)]
    return and_(Device.kind == "button", or_(Device.role.is_(None), Device.role.not_in(calls_for_help)))


def _rows(principal: Principal) -> Select[Any]:
    """Every visible resident with the aggregates the caseload shows, as one SELECT (filters and order added)."""
    alerts = (select(Alert.resident_id.label("resident_id"), func.max(Alert.severity).label("severity"),
                     func.count().label("open_alerts"), func.min(Alert.raised_at).label("oldest_open_at"),
                     func.max(case((Alert.kind.in_(UNSEEN_KINDS), 1), else_=0)).label("unseen"))
              .where(Alert.organisation_id == principal.organisation_id, Alert.state != LifecycleState.RESOLVED,
                     Alert.resident_id.is_not(None))
              .group_by(Alert.resident_id).subquery("open_alerts"))
    devices = (select(Device.home_id.label("home_id"), func.count().label("not_set_up"),
                      func.sum(case((_button_not_set_up(), 1), else_=0)).label("buttons"))
               .where(_needs_setting_up(), Device.home_id.in_(
                   select(Home.id).where(Home.organisation_id == principal.organisation_id)))
               .group_by(Device.home_id).subquery("not_set_up"))
    cant_see = or_(func.coalesce(alerts.c.unseen, 0) == 1, Home.hub_online.is_(False))
    return (visible_residents(principal)
            .with_only_columns(
                Resident.id, Resident.name, Home.id.label("home_id"), Home.name.label("home_name"), Home.timezone,
                func.coalesce(alerts.c.severity, NO_ALERT).label("severity"),
                func.coalesce(alerts.c.open_alerts, 0).label("open_alerts"), alerts.c.oldest_open_at,
                case((cant_see, 1), else_=0).label("cant_see"), Home.last_seen,
                func.coalesce(devices.c.not_set_up, 0).label("not_set_up"),
                func.coalesce(devices.c.buttons, 0).label("buttons"))
            .outerjoin(alerts, alerts.c.resident_id == Resident.id)
            .outerjoin(devices, devices.c.home_id == Home.id))


def _col(base: Select[Any], name: str) -> ColumnElement[Any]:
    """A column of the caseload's SELECT by its label (the expression itself, so WHERE can use it)."""
    for column in base.selected_columns:
        if column.key == name:
            return column.element if hasattr(column, "element") else column  # type: ignore[no-any-return]
    raise KeyError(name)


def _filters(query: CaseloadQuery, base: Select[Any]) -> list[ColumnElement[bool]]:
    severity = _col(base, "severity")
    out: list[ColumnElement[bool]] = []
    text = query.search.strip().lower()
    if text:
        out.append(or_(*(func.lower(column).contains(text, autoescape=True)
                         for column in (Resident.name, Home.id, func.coalesce(Home.name, "")))))
    if query.alert_state is AlertFilter.URGENT:
        out.append(severity >= int(Severity.URGENT))
    elif query.alert_state is AlertFilter.WARNING:
        out.append(and_(severity > NO_ALERT, severity < int(Severity.URGENT)))
    elif query.alert_state is AlertFilter.NONE:
        out.append(severity == NO_ALERT)
    if query.cant_see:
        out.append(_col(base, "cant_see") == 1)
    if query.needs_setting_up:
        out.append(_col(base, "not_set_up") > 0)
    if query.carer is not None:
        out.append(exists().where(EscalationStep.resident_id == Resident.id,
                                  EscalationStep.recipient_id == query.carer))
    return out


def _order(query: CaseloadQuery, base: Select[Any]) -> list[Any]:
    """The ORDER BY, always ending on the resident's id so that pages never overlap or skip a row."""
    if query.sort is CaseloadSort.NAME:
        keys: list[Any] = [func.lower(Resident.name), Home.id]
    elif query.sort is CaseloadSort.HOME:
        keys = [Home.id]
    elif query.sort is CaseloadSort.LAST_HEARD:
        # Never heard from comes before anything heard (the quietest first), in both SQL dialects.
        keys = [case((Home.last_seen.is_(None), 0), else_=1), Home.last_seen]
    else:
        oldest = _col(base, "oldest_open_at")
        keys = [-_col(base, "severity"), -_col(base, "cant_see"), -_col(base, "buttons"),
                case((oldest.is_(None), 1), else_=0), oldest, func.lower(Resident.name)]
    keys.append(Resident.id)
    return [k.desc() for k in keys] if query.descending else keys


def _summary(session: Session, base: Select[Any]) -> CaseloadSummary:
    sub = base.subquery()
    row = session.execute(select(
        func.count(), func.sum(case((sub.c.severity >= int(Severity.URGENT), 1), else_=0)),
        func.sum(case((and_(sub.c.severity > NO_ALERT, sub.c.severity < int(Severity.URGENT)), 1), else_=0)),
        func.sum(sub.c.open_alerts), func.sum(sub.c.cant_see),
        func.sum(case((sub.c.not_set_up > 0, 1), else_=0)))).one()
    residents, urgent, warning, alerts, unseen, setting_up = (int(v or 0) for v in row)
    return CaseloadSummary(residents=residents, urgent=urgent, warning=warning, open_alerts=alerts,
                           cant_see=unseen, needs_setting_up=setting_up)


def _row(r: Any) -> CaseloadRow:
    return CaseloadRow(
        resident_id=r.id, name=r.name, home_id=r.home_id, home_name=r.home_name, timezone=r.timezone,
        severity=None if r.severity == NO_ALERT else int(r.severity), open_alerts=int(r.open_alerts),
        oldest_open_at=r.oldest_open_at, cant_see=bool(r.cant_see), last_heard=r.last_seen,
        not_set_up=int(r.not_set_up), buttons_not_set_up=int(r.buttons))

