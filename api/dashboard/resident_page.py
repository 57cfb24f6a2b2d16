"""A resident's page: open alerts with the care team's record on each (notes, who is going round, what was found),
today's activity, the last four weeks, and the alerts before.

Open alerts are read on their own (there is one per kind and device at most), never cut off by the history's
limit, so a resident with an open alert never reads "no alerts". Every time is the resident's local time, labelled
with the zone. The notes and going-round rows of every alert shown are read in two queries.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from analytics.watch.pendant import setting_up_needed, setting_up_urgency
from api.dashboard.charts import Mark, daily_bars, day_timeline
from api.dashboard.common import (
    NOTICES,
    OUTCOME_CHOICES,
    PagePrincipal,
    alert_view,
    home_zone,
    templates,
    when,
    zone_label,
)
from api.deps import Clock, PathId, SessionDep, audit, get_store, resident_in_care
from api.routers.activity import first_whole_day
from gateway.alerting.states import AlertState
from gateway.db.care_record import AlertAttendance, AlertNote
from gateway.db.models import Alert, Device, Home
from gateway.errors import StoreUnavailable
from gateway.stores.readings.base import ReadingStore, stored_activity

router = APIRouter(prefix="/dashboard", include_in_schema=False)
CHART_DAYS = 28
HISTORY = 20  # resolved alerts shown under "Recent alerts"
ARRIVING_IN = (10, 20, 30, 45, 60, 90)  # minutes a carer going round may say they will take
# The four daily figures: (summary field, chart title, divisor, unit).
DAILY = (("activities", "Activities a day", 1.0, ""), ("bed_minutes", "Time in bed", 60.0, " h"),
         ("out_minutes", "Time out", 60.0, " h"), ("bathroom_visits", "Bathroom visits", 1.0, ""))


@router.get("/residents/{resident_id}", response_class=HTMLResponse)
def resident_page(request: Request, resident_id: PathId, principal: PagePrincipal, session: SessionDep, at: Clock,
                  notice: str | None = None) -> Response:
    # since: nothing from before the resident and the claim is shown
    resident, since = resident_in_care(principal, session, resident_id)
    home = session.get(Home, resident.home_id)
    zone = home_zone(home)
    mine = (Alert.resident_id == resident.id, Alert.organisation_id == principal.organisation_id)
    open_alerts = list(session.scalars(select(Alert).where(*mine, Alert.state != AlertState.RESOLVED)
                                       .order_by(Alert.severity.desc(), Alert.raised_at, Alert.id)))
    history = list(session.scalars(select(Alert).where(*mine, Alert.state == AlertState.RESOLVED)
                                   .order_by(Alert.raised_at.desc(), Alert.id.desc()).limit(HISTORY)))
    shown = {a.id: alert_view(a, zone, at) for a in open_alerts + history}
    _add_care_record(session, shown, zone, at)
    local_now = at.astimezone(zone)
    store: ReadingStore = get_store(request)
    context: dict[str, Any] = {
        "who": principal.name, "notice": NOTICES.get(notice or ""), "days": CHART_DAYS,
        "resident": {"id": resident.id, "name": resident.name, "home": resident.home_id,
                     "home_name": home.name if home else None, "timezone": str(zone),
                     "zone_label": zone_label(local_now, zone), "local_now": when(at, zone, at)},
        "open_alerts": [shown[a.id] for a in open_alerts], "history": [shown[a.id] for a in history],
        "outcomes": OUTCOME_CHOICES, "arriving_in": ARRIVING_IN, "user_id": principal.user_id,
        "today_chart": "", "day_charts": [], "day_table": None, "store_error": None,
        "not_set_up": _not_set_up(session, resident.home_id),
    }
    try:
        context["today_chart"] = _today(store, resident.home_id, zone, local_now.date(), at, since)
        context["day_charts"], context["day_table"] = _weeks(store, resident.home_id, local_now.date(), zone, since)
    except StoreUnavailable as e:
        context["store_error"] = f"Activity cannot be shown now: the readings store is unavailable ({e})."
    audit(session, principal, "view", "resident", resident.id, "dashboard", at=at)
    return templates.TemplateResponse(request, "resident.html", context)


def _add_care_record(session: Session, shown: dict[int, dict[str, Any]], zone: ZoneInfo, at: datetime) -> None:
    """Each shown alert's notes (oldest first) and who went or is going round: two queries for all of them."""
    if not shown:
        return
    ids = list(shown)
    for note in session.scalars(select(AlertNote).where(AlertNote.alert_id.in_(ids))
                                .order_by(AlertNote.at, AlertNote.id)):
        shown[note.alert_id]["notes"].append({"author": note.author, "at": when(note.at, zone, at),
                                              "text": note.text})
    for row in session.scalars(select(AlertAttendance).where(AlertAttendance.alert_id.in_(ids))
                               .order_by(AlertAttendance.said_at, AlertAttendance.id)):
        shown[row.alert_id]["going_round"].append({
            "name": row.name, "user_id": row.user_id, "said_at": when(row.said_at, zone, at),
            "expected_at": when(row.expected_at, zone, at) if row.expected_at else None,
            "recorded_by": row.recorded_by if row.recorded_by != row.name else None,
            "current": row.cleared_at is None,
            "cleared": f"{when(row.cleared_at, zone, at)} by {row.cleared_by}" if row.cleared_at else None})
    for view in shown.values():
        view["attending"] = next((g for g in reversed(view["going_round"]) if g["current"]), None)


def _not_set_up(session: Session, home_id: str) -> list[dict[str, Any]]:
    """The home's devices that still need setting up, a button not set up first (``urgent``)."""
    out: list[dict[str, Any]] = []
    # Only devices without a role, or buttons (a button may have the wrong one), can need setting up.
    for device in session.scalars(select(Device).where(Device.home_id == home_id,
                                                       Device.role.is_(None) | (Device.kind == "button"))
                                  .order_by(Device.name)):
        reason = setting_up_needed(device.kind, device.room, device.role)
        if reason is not None:
            out.append({"name": device.name, "kind": device.kind, "room": device.room, "role": device.role,
                        "reason": reason, "urgent": setting_up_urgency(device.kind, device.role) == 0})
    out.sort(key=lambda d: not d["urgent"])  # stable: by name within each
    return out


def _today(store: ReadingStore, home: str, zone: ZoneInfo, day: date, at: datetime, since: datetime | None) -> str:
    start = datetime.combine(day, datetime.min.time(), zone)
    start_ms = int(start.timestamp() * 1000)
    from_ms = start_ms if since is None else max(start_ms, int(since.timestamp() * 1000))
    end_ms = int(at.timestamp() * 1000) + 1
    points = (store.timeline(home, from_ms, end_ms, limit=50_000, activity_only=True)
              if since is not None and from_ms < end_ms else [])
    marks, rooms = [], set()
    for p in points:
        change = stored_activity(p)  # as ingest decided it, and the detectors took it (gateway.reading_facts)
        if change is None:
            continue
        room = p.tags.get("room") or p.tags.get("device", "?")
        rooms.add(room)
        marks.append(Mark((p.time_ms - start_ms) / 60_000, room, f"{change} ({p.tags.get('device', '')})"))
    now_minute = (at.timestamp() * 1000 - start_ms) / 60_000
    return day_timeline(marks, sorted(rooms), now_minute=now_minute, zone=zone_label(at.astimezone(zone), zone))


def _weeks(store: ReadingStore, home: str, today: date, zone: ZoneInfo, since: datetime | None,
           ) -> tuple[list[str], dict[str, Any]]:
    """The four daily charts of the last weeks, and the same figures as a table (a row a day, newest first)."""
    first = today - timedelta(days=CHART_DAYS - 1)
    shown_from = first_whole_day(since, zone) if since is not None else today + timedelta(days=1)
    by_day = {s.day: s.values for s in store.daily_summaries(home, max(first, shown_from), today)
              if s.day >= shown_from} if shown_from <= today else {}
    days = [first + timedelta(days=i) for i in range(CHART_DAYS)]

    def series(name: str, scale: float) -> list[float | None]:
        return [round(by_day[d][name] / scale, 1) if d in by_day and name in by_day[d] else None for d in days]

    columns = [(title, unit, series(name, scale)) for name, title, scale, unit in DAILY]
    charts = [daily_bars(days, values, label=title, unit=unit, today=today) for title, unit, values in columns]
    table = {"heads": [title + (f" ({unit.strip()})" if unit else "") for title, unit, _ in columns],
             "rows": [(f"{day:%a %d %b}" + (" (today: figures at midnight)" if day == today else ""),
                       [values[i] for _, _, values in columns]) for i, day in reversed(list(enumerate(days)))]}
    return charts, table
