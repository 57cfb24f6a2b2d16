"""What one home's watchers share: a small home state, the alerts it has open, and the protocol each watcher follows.

A watcher (:mod:`analytics.watch.stillness`, :mod:`analytics.watch.routine` ...) keeps only what it learns and
decides about; everything several of them need (the time, the last activity and where, whether the resident is
in bed or out, today's figures, which alerts are open) lives once, in :class:`HomeState`, and is passed to every
call. That keeps each watcher picklable on its own, so a checkpoint can version them apart.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any, ClassVar, Protocol

from analytics.activity import Change
from analytics.alerts import Action, AlertEvent, AlertKind, Severity
from analytics.elapsed import UP
from analytics.localtime import MINUTE_MS, LocalTime
from analytics.summary import DaySummary

OUTSIDE_DOORS = frozenset({"front_door", "back_door"})
BATHROOMS = frozenset({"bathroom", "toilet", "wc"})
MEAL_ROLES = frozenset({"fridge", "kettle"})
STILLNESS = (AlertKind.INACTIVITY, AlertKind.NOT_UP)  # one situation: the first raised holds the other back
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


@dataclass(frozen=True)
class DetectorConfig:
    """Thresholds that are policy rather than learned; documented in ``docs/alerts.md``."""

    day_start_min: float = 4 * 60  # a local day's routine (getting up, meals) is counted from 04:00
    not_up_default_min: float = 10 * 60
    first_meal_default_min: float = 12 * 60
    night_start_min: float = 23 * 60
    night_end_min: float = 5 * 60
    night_exit_usual_share: float = 0.25  # door used on more nights than this while learning: not unusual
    night_exit_grace_min: float = 30  # not back inside by then: the alert becomes urgent
    out_return_min: float = 5  # door activity this long after the last one is a return, not the same leaving
    long_absence_default_min: float = 10 * 60
    absence_return_quiet_min: float = 60  # activity after this much stillness in a planned absence: back home
    cold_below_c: float = 16.0  # UK public-health advice: below 16 °C indoors raises the risk to older people
    cold_clear_c: float = 17.0
    cold_for_min: float = 60
    low_battery_pct: float = 15
    battery_ok_pct: float = 25
    decline_recent_days: int = 7
    decline_baseline_days: int = 28
    decline_ratio: float = 0.5
    decline_clear_ratio: float = 0.7
    decline_min_daily: float = 10  # homes this quiet on a usual day are not judged on their counts
    inactivity_quantile: float = 0.97
    inactivity_margin: float = 2.0
    inactivity_prior_days: float = 5.0
    inactivity_floor_min: float = 30
    inactivity_ceiling_min: float = 16 * 60
    place_margin: float = 3.0  # a room's own limit: its usual longest stillness there and then, times this
    place_prior_days: float = 14.0  # days of a room's own stillness that weigh as much as the home's limit
    silence_min_gaps: int = 10


@dataclass
class Device:
    kind: str
    room: str | None
    role: str | None


@dataclass
class Open:
    severity: Severity
    emitted: bool


@dataclass
class Day:
    """What today (local day) has seen so far: for the routines' checks and learning, and its summary."""

    index: int
    up_ms: int | None = None
    meal_ms: int | None = None
    went_out: bool = False
    night_door: bool = False  # a door to outside used in the night window
    activity: int = 0
    away: bool = False
    partial: bool = False  # first seen after its routine began: not judged on getting up or meals
    first_ms: int | None = None
    last_ms: int | None = None
    bed_ms: int = 0
    out_ms: int = 0
    bathroom_visits: int = 0
    meals: int = 0
    night_getups: int = 0
    last_bathroom_ms: int | None = None
    last_meal_ms: int | None = None

    def summary(self, home: str, local: LocalTime) -> DaySummary:
        values: dict[str, float] = {"activities": self.activity, "bed_minutes": round(self.bed_ms / MINUTE_MS),
                                    "out_minutes": round(self.out_ms / MINUTE_MS),
                                    "bathroom_visits": self.bathroom_visits, "meals": self.meals,
                                    "night_getups": self.night_getups}
        for name, ms in (("first_activity_min", self.first_ms), ("last_activity_min", self.last_ms),
                         ("up_min", self.up_ms)):
            if ms is not None:  # minutes after this day's midnight (past 1440 for the small hours after it)
                values[name] = round(local.minute_of_day(ms) + (local.day(ms) - self.index) * 1440)
        return DaySummary(home, date.fromordinal(_EPOCH_ORDINAL + self.index), values)


@dataclass(frozen=True)
class Before:
    """The home as it was just before a reading: what a watcher learns from when that reading ends something."""

    activity_ms: int | None  # the last activity before this reading
    room: str | None
    device: str | None  # the device of that activity
    context: int
    out_since_ms: int | None
    away: bool  # within a planned absence (after any return this reading made)


@dataclass(frozen=True)
class Reading:
    """One report from a device, and the activity it is (``change``), if any."""

    time_ms: int
    device: str
    info: Device
    change: Change | None
    before: Before
    temperature: float | None = None
    battery: float | None = None
    battery_low: bool | None = None
    illuminance: float | None = None


@dataclass
class HomeState:
    """What every watcher of one home reads; the watchers named in the comments are the ones that write it."""

    home: str
    local: LocalTime
    config: DetectorConfig
    quiet_until_ms: int = 0  # alerts arising before this are learned from, not raised (offline analysis)
    now_ms: int | None = None
    last_activity_ms: int | None = None
    last_room: str | None = None
    last_device: str | None = None
    last_report_ms: int | None = None  # any report from any device
    context: int = UP  # in bed, in the chair or up (the pads)
    out_since_ms: int | None = None  # outings: a door to outside, then nothing inside yet
    visible_since_ms: int = 0  # health: stillness before this moment was not seen and is not learned
    blind_since_ms: int | None = None  # health: the home cannot be seen (hub offline, unavailable, can't see)
    blind_reason: str | None = None
    silent: frozenset[str] = frozenset()  # health: devices that stopped reporting
    devices: dict[str, Device] = field(default_factory=dict)
    has_bed_pad: bool = False
    has_meal_sensors: bool = False
    lights: dict[str, float] = field(default_factory=dict)  # the last illuminance (lux) from each device
    absences: list[tuple[int, int | None]] = field(default_factory=list)
    returned_ms: dict[int, int] = field(default_factory=dict)  # absence start -> when the resident was seen back
    day: Day | None = None
    summaries: list[DaySummary] = field(default_factory=list)  # closed days not yet taken by the caller
    open: dict[tuple[AlertKind, str], Open] = field(default_factory=dict)
    out: list[AlertEvent] = field(default_factory=list)

    # --- Alerts ---------------------------------------------------------------------------------------------------

    def raise_(self, kind: AlertKind, at: int, severity: Severity, message: str, *, subject: str = "",
               **details: Any) -> None:
        key = (kind, subject)
        current = self.open.get(key)
        if current is not None and current.severity >= severity:
            return
        emitted = at >= self.quiet_until_ms if current is None else current.emitted
        self.open[key] = Open(severity, emitted)
        if emitted:
            self.out.append(AlertEvent(Action.RAISE, kind, self.home, at, severity, message, subject, details))

    def clear(self, kind: AlertKind, at: int, message: str, *, subject: str = "", quietly: bool = False) -> None:
        current = self.open.pop((kind, subject), None)
        if current is None or not current.emitted:
            return
        details = {"quiet": True} if quietly else {}
        self.out.append(AlertEvent(Action.CLEAR, kind, self.home, at, current.severity, message, subject, details))

    def notice(self, kind: AlertKind, at: int, message: str, **details: Any) -> None:
        if at >= self.quiet_until_ms:
            self.out.append(AlertEvent(Action.NOTICE, kind, self.home, at, Severity.INFO, message, "", details))

    def is_open(self, *kinds: AlertKind, subject: str = "") -> bool:
        return any((kind, subject) in self.open for kind in kinds)

    def take(self) -> list[AlertEvent]:
        out, self.out = self.out, []
        return out

    # --- Planned absences -----------------------------------------------------------------------------------------

    def away(self, t: int) -> tuple[int, int | None] | None:
        for start, end in self.absences:
            if start <= t and (end is None or t < end) and start not in self.returned_ms:
                return (start, end)
        return None

    def returned(self, t: int, away: tuple[int, int | None]) -> bool:
        """Activity at ``t`` in a planned absence: the resident is back if it follows an hour's quiet."""
        start = away[0]
        last = max(start, self.last_activity_ms or start)
        if t - last < self.config.absence_return_quiet_min * MINUTE_MS:
            return False
        self.returned_ms[start] = t
        self.out_since_ms = None
        self.visible_since_ms = t  # what happened while away is not the resident's usual stillness
        self.notice(AlertKind.RETURNED, t, f"Back home: activity at {self.clock(t)} during the planned absence "
                    f"that began {self.clock(start, t)}. Alerts are on again.", absence_start=start)
        return True

    # --- Facts and wording ----------------------------------------------------------------------------------------

    def is_meal(self, info: Device) -> bool:
        return info.role in MEAL_ROLES or (info.room == "kitchen" and info.kind in ("contact", "plug"))

    def is_night(self, t: int) -> bool:
        minute = self.local.minute_of_day(t)
        return minute >= self.config.night_start_min or minute < self.config.night_end_min

    def clock(self, t: int, since: int | None = None) -> str:
        return self.local.clock(t, since_ms=since)

    def room_text(self) -> str:
        return f", last in the {self.last_room}" if self.last_room else ""

    def last_seen_text(self, t: int, before: int | None, room: str | None) -> str:
        if before is None or room is None:
            return ""
        return f" (last activity {self.clock(before, t)} in the {room})"

    def silent_note(self) -> str:
        """Names the devices not reporting, since they may be why nothing was seen."""
        if not self.silent:
            return ""
        names = ", ".join(describe(d, self.devices.get(d)).lower() for d in sorted(self.silent)[:3])
        return f" Not reporting: {names}."


class Watcher(Protocol):
    """One concern of a home's watch. Its own state only; the shared state comes with every call.

    ``version`` is bumped when the watcher's state changes shape: a checkpoint then restores the other watchers
    and starts this one afresh (learning again)."""

    name: ClassVar[str]
    version: ClassVar[int]

    def observe(self, home: HomeState, reading: Reading) -> None:
        """A device reported (``home`` already says what this reading changed: the last activity, context)."""

    def advance(self, home: HomeState, t: int) -> None:
        """Time has moved on to ``t``: raise what has fallen due, stamped when it arose."""

    def next_wake_ms(self, home: HomeState) -> int | None:
        """The earliest moment an alert of this watcher could arise with nothing more heard."""

    def day_closed(self, home: HomeState, day: Day, closed_at: int) -> None:
        """A local day is over: learn from it."""


def first_due(candidates: Iterable[int | None]) -> int | None:
    due = [c for c in candidates if c is not None]
    return min(due) if due else None


def hhmm(minutes: float) -> str:
    m = round(minutes) % 1440
    return f"{m // 60:02d}:{m % 60:02d}"


def device_name(device: str) -> str:
    return device.replace("_", " ")


def place(room: str | None, device: str) -> str:
    return f"the {room}" if room else device_name(device)


_KIND_WORDS = {"motion": "motion sensor", "contact": "door sensor", "presence": "pressure pad", "plug": "smart plug",
               "button": "button", "climate": "temperature sensor", "vibration": "vibration sensor",
               "leak": "leak sensor"}
_ROLE_WORDS = {"front_door": "front door", "back_door": "back door", "bed": "bed", "chair": "chair",
               "fridge": "fridge", "kettle": "kettle", "pendant": "pendant"}


def describe(device: str, info: Device | None) -> str:
    """``The bathroom motion sensor (bathroom_pir)``: what a carer can find in the home."""
    if info is None:
        return f"Device {device}"
    what = _KIND_WORDS.get(info.kind, "device")
    where = _ROLE_WORDS.get(info.role or "") or info.room
    return f"The {where} {what} ({device})" if where else f"The {what} {device}"
