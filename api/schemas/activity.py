"""A resident's activity: the timeline of events by room, the daily summaries, the learned baseline."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, Field

from api.pagination import Page

Include = Literal["activity", "all"]
FieldValue = bool | float | str


def clock(minutes: float | None) -> str | None:
    """Local minutes after midnight as ``HH:MM``; past midnight (the small hours after the day) gets ``+1``."""
    if minutes is None:
        return None
    total = round(minutes)
    days, rest = divmod(total, 1440)
    text = f"{rest // 60:02d}:{rest % 60:02d}"
    return text if days == 0 else f"{text} ({days:+d} day)"


class TimelineEvent(BaseModel):
    time: datetime = Field(description="event time (the device's last_seen), UTC")
    device: str
    room: str | None
    role: str | None = Field(description="front_door, fridge, bed, kettle, pendant ... from the home's description")
    kind: str | None = Field(description="motion, contact, presence, plug, button, climate ...")
    activity: bool = Field(description="whether this reading is a person's activity (a change: docs/activity.md)")
    change: str | None = Field(
        description="what changed: motion, opened, closed, occupied, vacated, power_on, pressed, vibration; "
                    "null when nothing a person did")
    value: FieldValue | None = Field(
        description="the reading's telling value: occupancy, contact (true = closed), pressure, power (W), "
                    "action, or temperature (°C) for a climate sensor")
    fields: dict[str, FieldValue] | None = Field(
        None, description="every field as stored (battery, linkquality ...); with include=all only")


class TimelinePage(Page[TimelineEvent]):
    resident_id: int
    timezone: str = Field(description="the home's time zone: rooms' days and nights are in it")
    start: datetime
    end: datetime
    include: Include


class DayOut(BaseModel):
    """One closed day, as the detectors summarised it (values: analytics/summary.py). Minutes of day are local
    minutes after midnight; past 1440 means the small hours after the day."""

    day: date = Field(description="the resident's local calendar day")
    activities: int | None = Field(None, description="activity events at home")
    first_activity_min: int | None = None
    first_activity: str | None = Field(None, description="HH:MM local")
    last_activity_min: int | None = None
    last_activity: str | None = Field(None, description="HH:MM local")
    up_min: int | None = Field(None, description="getting up: first activity outside the bedroom after 04:00")
    up: str | None = Field(None, description="HH:MM local")
    bed_minutes: int | None = Field(None, description="time in bed (bed pad occupied)")
    out_minutes: int | None = Field(None, description="time out of the home")
    bathroom_visits: int | None = None
    meals: int | None = Field(None, description="kitchen sessions an hour or more apart")
    night_getups: int | None = Field(None, description="times up at night (23:00-06:00)")
    night_disturbed: bool | None = Field(None, description="at least one get-up at night")


class DailyOut(BaseModel):
    resident_id: int
    timezone: str
    first_day: date = Field(serialization_alias="from")
    last_day: date = Field(serialization_alias="to")
    days: list[DayOut] = Field(description="the days with a summary, in order")
    missing_days: list[date] = Field(
        description="days of the period without a summary: not closed yet (today), or nothing was received")


class StillnessOut(BaseModel):
    limit_min: list[float | None] = Field(
        description="per half-hour: stillness past this raises an inactivity alert (null: no limit)")
    usual_min: list[float | None] = Field(description="per half-hour: the usual longest stillness (null: unknown)")


class FeedbackChangeOut(BaseModel):
    """One change that carers' false-alarm feedback made: a limit moved, within bounds, at those half-hours."""

    at: datetime = Field(description="when the feedback was taken in")
    alert_id: int | None = Field(description="the alert the carer marked a false alarm (null: not known)")
    kind: str = Field(description="the alert's kind, e.g. inactivity")
    context: str = Field(description="up, bed or chair")
    room: str | None = Field(description="the room the limit is for (null: every room)")
    half_hours: list[str] = Field(description="the half-hours of the day (local) whose limit moved")
    limit_before_min: float
    limit_after_min: float


class BaselineOut(BaseModel):
    """What the resident's alerts are compared with, as the detectors last stored it (data, not their state)."""

    resident_id: int
    home_id: str
    timezone: str
    saved_at: datetime = Field(description="when the detectors last saved what they learned")
    baseline_at: datetime | None = Field(None, description="the detectors' time when this baseline was taken")
    days_learned: int
    half_hours: list[str] = Field(description="the half-hours the stillness lists are indexed by, local time")
    stillness: dict[str, StillnessOut] = Field(description="per context: up, bed, chair")
    up_by_min: float | None = Field(None, description="usually up by (9 days in 10); null before 5 days learned")
    up_by: str | None = None
    not_up_after_min: float | None = Field(None, description="not up by then raises not_up")
    not_up_after: str | None = None
    first_meal_by_min: float | None = None
    first_meal_by: str | None = None
    no_meals_after_min: float | None = Field(None, description="null when the home has no kitchen sensors")
    no_meals_after: str | None = None
    activities_per_day: float | None = Field(None, description="the usual day's activity events (median)")
    feedback: list[FeedbackChangeOut] = Field(
        default_factory=list, description="what carers' false-alarm feedback changed, oldest first (empty: none yet)")
