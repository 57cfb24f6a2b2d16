"""A resident's activity: timeline, daily summaries, learned baseline (docs/activity.md). Every view is audited.

Readings come through the gateway's readings-store port (InfluxDB or the embedded store); daily summaries are read
as the detectors stored them, never recomputed; the baseline is the JSON the detectors store beside their
checkpoint, never recomputed from readings and never unpickled. A readings store that cannot be reached is a 503;
the baseline does not need it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from analytics.activity import activity_value
from api.audit import VIEW
from api.deps import Clock, CurrentUser, PathId, SessionDep, StoreDep, audit, resident_for, resident_in_care
from api.errors import Invalid, NotFound, Unavailable
from api.pagination import PageDep
from api.schemas.activity import (
    BaselineOut,
    DailyOut,
    DayOut,
    Include,
    TimelineEvent,
    TimelinePage,
    clock,
)
from api.schemas.common import UtcDatetime
from gateway import timezones
from gateway.db.models import DetectorCheckpoint, Device, Home, Resident
from gateway.errors import StoreUnavailable
from gateway.stores.readings.base import (
    ACTIVITY_FIELD,
    DailySummary,
    FieldValue,
    Point,
    stored_activity,
)

log = logging.getLogger(__name__)

router = APIRouter(prefix="/residents/{resident_id}", tags=["activity"])

MAX_TIMELINE = timedelta(days=7)
DEFAULT_TIMELINE = timedelta(hours=24)
MAX_POINTS = 100_000  # a busy home sends about 2,000 readings a day: a week is well under
MAX_DAYS = 92
DEFAULT_DAYS = 30
COUNTS = ("activities", "bed_minutes", "out_minutes", "bathroom_visits", "meals", "night_getups")
TIMES = (("first_activity_min", "first_activity"), ("last_activity_min", "last_activity"), ("up_min", "up"))


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _unavailable(e: StoreUnavailable) -> Unavailable:
    # The message may name an internal host or file: it goes to the log, the client gets what to do.
    log.warning("readings store unavailable: %s", e)
    headers = {"Retry-After": str(max(1, round(e.retry_after)))} if e.retry_after else None
    return Unavailable("the readings store cannot be reached just now: try again in a minute (alerts and the "
                       "baseline do not depend on it)", headers=headers)


# --- timeline -------------------------------------------------------------------------------------------------


@router.get("/timeline", response_model=TimelinePage, summary="Events by room over a period (at most 7 days)")
def timeline(
    resident_id: PathId, principal: CurrentUser, session: SessionDep, store: StoreDep, page: PageDep, at: Clock,
    start: Annotated[UtcDatetime | None, Query(description="from (included); default: 24 h before end")] = None,
    end: Annotated[UtcDatetime | None, Query(
        description="to (excluded); default: now, or 24 h after start")] = None,
    room: Annotated[str | None, Query(max_length=64, description="only this room (case does not matter)")] = None,
    include: Annotated[Include, Query(
        description="activity: what the resident did (a change); all: every reading, each flagged")] = "activity",
) -> TimelinePage:
    resident, since = resident_in_care(principal, session, resident_id)
    if end is None:
        end = start + DEFAULT_TIMELINE if start is not None else at.astimezone(UTC)
    if start is None:
        start = end - DEFAULT_TIMELINE
    if end <= start:
        raise Invalid("end must be after start")
    if end - start > MAX_TIMELINE:
        raise Invalid(f"the period is {_span(end - start)} long; ask for at most 7 days at a time "
                      "(page through longer periods)")
    # Nothing from before the resident and the organisation's claim: the home's earlier readings are another
    # person's, or another organisation's.
    shown_from = start if since is None else max(start, since)
    points: list[Point] = []
    if since is not None and shown_from < end:
        try:
            points = store.timeline(resident.home_id, _ms(shown_from), _ms(end), limit=MAX_POINTS + 1,
                                    activity_only=include == "activity")
        except StoreUnavailable as e:
            raise _unavailable(e) from e
    if len(points) > MAX_POINTS:
        raise Invalid(f"more than {MAX_POINTS:,} readings in this period: ask for a shorter one")
    # A day is about 2,000 readings: all are sorted out, only the page's become events (building every one cost a
    # third of the request for the 50 shown).
    # The stored tags describe each device as it was; the database fills in only for points stored without them.
    described = all("kind" in p.tags and "room" in p.tags for p in points)
    shown = _shown(points, {} if described else _devices(session, resident.home_id), include=include, room=room)
    items = [_event(*row, include=include) for row in shown[page.offset:page.offset + page.limit]]
    following = page.offset + len(items)
    audit(session, principal, VIEW, "activity.timeline", resident.id,
          f"{start.isoformat()} to {end.isoformat()}" + (f", room {room}" if room else ""), at=at)
    return TimelinePage(items=items, total=len(shown), limit=page.limit, offset=page.offset,
                        next_offset=following if following < len(shown) else None, resident_id=resident.id,
                        timezone=resident.home.timezone, start=start, end=end, include=include)


Devices = dict[str, tuple[str | None, str | None, str | None]]  # name: (kind, room, role)
# A reading to show: (the point, its device, kind, room, role, the activity change stored with it).
_Shown = tuple[Point, str, str | None, str | None, str | None, str | None]


def timeline_events(points: Sequence[Point], devices: Devices, *, include: Include = "activity",
                    room: str | None = None) -> list[TimelineEvent]:
    """The readings as events, each with the activity change ingest decided for it and stored with it (the
    detectors took the same decision: gateway.reading_facts)."""
    return [_event(*row, include=include) for row in _shown(points, devices, include=include, room=room)]


def _shown(points: Sequence[Point], devices: Devices, *, include: Include, room: str | None) -> list[_Shown]:
    """The readings the timeline shows, in order, with what describes them (cheap: no event built yet)."""
    wanted_room = room.strip().casefold() if room else None
    out: list[_Shown] = []
    for p in points:
        change = stored_activity(p)
        if change is None and include == "activity":
            continue
        tags = p.tags
        device = tags.get("device", "")
        known_kind, known_room, known_role = devices.get(device, (None, None, None))
        # The tags are the device's description when the reading was stored; the database's is the fallback.
        where = tags.get("room") or known_room
        if wanted_room is not None and (where or "").casefold() != wanted_room:
            continue
        out.append((p, device, tags.get("kind") or known_kind, where, tags.get("role") or known_role, change))
    return out


def _event(p: Point, device: str, kind: str | None, where: str | None, role: str | None, change: str | None, *,
           include: Include) -> TimelineEvent:
    value = activity_value(kind, p.fields) if kind else None
    if value is None and kind == "climate":
        temperature = p.fields.get("temperature")
        value = temperature if isinstance(temperature, float | int) else None
    return TimelineEvent(
        time=datetime.fromtimestamp(p.time_ms / 1000, UTC), device=device, room=where, role=role, kind=kind,
        activity=change is not None, change=change, value=value,
        fields=_reported(p.fields) if include == "all" else None)


def _reported(fields: dict[str, FieldValue]) -> dict[str, FieldValue]:
    """The fields as the device reported them, without the activity the gateway stored beside them."""
    return {name: value for name, value in fields.items() if name != ACTIVITY_FIELD}


def _devices(session: Session, home: str) -> Devices:
    rows = session.execute(select(Device.name, Device.kind, Device.room, Device.role).where(Device.home_id == home))
    return {name: (kind, room, role) for name, kind, room, role in rows}


def _span(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours / 24:.1f} days" if hours >= 48 else f"{hours:.1f} hours"


# --- daily summaries ------------------------------------------------------------------------------------------


@router.get("/daily", response_model=DailyOut, response_model_by_alias=True,
            summary="Daily summaries over a period (at most 92 days)")
def daily(
    resident_id: PathId, principal: CurrentUser, session: SessionDep, store: StoreDep, at: Clock,
    first: Annotated[date | None, Query(alias="from", description="first day (local); default: 29 days before to")
                     ] = None,
    last: Annotated[date | None, Query(alias="to", description="last day, included; default: yesterday")] = None,
) -> DailyOut:
    resident, since = resident_in_care(principal, session, resident_id)
    zone = timezones.zone(resident.home.timezone, of=f"home {resident.home_id}")
    if last is None:
        # Yesterday is the last day closed; with only ``from``, up to a month from it (at most to yesterday).
        yesterday = at.astimezone(zone).date() - timedelta(days=1)
        last = yesterday if first is None else max(first, min(first + timedelta(days=DEFAULT_DAYS - 1), yesterday))
    if first is None:
        first = last - timedelta(days=DEFAULT_DAYS - 1)
    if last < first:
        raise Invalid("'to' must not be before 'from'")
    length = (last - first).days + 1
    if length > MAX_DAYS:
        raise Invalid(f"the period is {length} days long; ask for at most {MAX_DAYS} days at a time")
    # A day's summary mixes everything in it: only the days wholly inside the resident's care are shown.
    from_day = first if since is None else max(first, first_whole_day(since, zone))
    summaries: Sequence[DailySummary] = []
    if since is not None and from_day <= last:
        try:
            summaries = store.daily_summaries(resident.home_id, from_day, last)
        except StoreUnavailable as e:
            raise _unavailable(e) from e
    days = [day_out(s) for s in summaries if s.day >= from_day]
    have = {d.day for d in days}
    missing = [d for d in _days(first, last) if d not in have]
    audit(session, principal, VIEW, "activity.daily", resident.id, f"{first} to {last}", at=at)
    return DailyOut(resident_id=resident.id, timezone=resident.home.timezone, first_day=first, last_day=last,
                    days=days, missing_days=missing)


def first_whole_day(since: datetime, zone: ZoneInfo) -> date:
    """The first local day that starts at or after ``since``."""
    local = since.astimezone(zone)
    midnight = datetime.combine(local.date(), time.min, zone)
    return local.date() if local == midnight else local.date() + timedelta(days=1)


def day_out(summary: DailySummary) -> DayOut:
    v = summary.values
    fields: dict[str, object] = {name: round(v[name]) for name in COUNTS if name in v}
    for minutes, text in TIMES:
        if minutes in v:
            fields[minutes] = round(v[minutes])
            fields[text] = clock(v[minutes])
    if "night_getups" in v:
        fields["night_disturbed"] = v["night_getups"] > 0
    return DayOut(day=summary.day, **fields)  # type: ignore[arg-type]


def _days(first: date, last: date) -> Iterable[date]:
    return (first + timedelta(days=i) for i in range((last - first).days + 1))


# --- baseline -------------------------------------------------------------------------------------------------


@router.get("/baseline", response_model=BaselineOut, summary="What the resident's alerts are compared with")
def baseline(resident_id: PathId, principal: CurrentUser, session: SessionDep, at: Clock) -> BaselineOut:
    resident = resident_for(principal, session, resident_id)
    out = baseline_out(session, resident)
    audit(session, principal, VIEW, "activity.baseline", resident.id, at=at)
    return out


def baseline_out(session: Session, resident: Resident) -> BaselineOut:
    row = session.execute(select(DetectorCheckpoint.baseline, DetectorCheckpoint.baseline_at,
                                 DetectorCheckpoint.saved_at, DetectorCheckpoint.care_epoch, Home.care_epoch)
                          .join(Home, Home.id == DetectorCheckpoint.home_id)
                          .where(DetectorCheckpoint.home_id == resident.home_id)).one_or_none()
    # Learned under another epoch: another person's routine (or another organisation's), not this resident's.
    learned = row.baseline if row is not None and row[3] == row[4] else None
    if not isinstance(learned, dict):
        raise NotFound(f"nothing learned yet for resident {resident.id}: the detectors save what they learn once "
                       "the home's readings arrive (or warm it: telecare baseline warm)", code="no_baseline")
    assert row is not None
    try:
        times = {key: clock(learned.get(f"{key}_min")) for key in ("up_by", "not_up_after", "first_meal_by",
                                                                   "no_meals_after")}
        return BaselineOut.model_validate({
            **learned, **times, "resident_id": resident.id, "home_id": resident.home_id,
            "timezone": resident.home.timezone, "saved_at": row.saved_at, "baseline_at": row.baseline_at,
            "feedback": learned.get("feedback") or []})
    except (ValidationError, TypeError) as e:
        # Stored by a gateway of another version: the next hour's baseline replaces it.
        log.warning("home %s: its stored baseline does not read as one: %s", resident.home_id, e)
        raise NotFound(f"what was learned for resident {resident.id} cannot be shown yet; the detectors store it "
                       "again within the hour", code="no_baseline") from e
