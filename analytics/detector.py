"""One home's detectors: everything that turns its sensors' readings into alerts, learned one event at a time.

The gateway and ``telecare analyse`` feed the same object: :meth:`HomeDetector.observe` for each reading (in
event time), :meth:`HomeDetector.hub` for the hub going off or on line, and :meth:`HomeDetector.advance` to
tell it the time when nothing arrives; :meth:`HomeDetector.next_wake_ms` says when it next needs to be told.
Every alert is stamped with the moment its condition arose (a threshold crossed), not when someone looked.
It never reads a clock and holds only picklable state, which the gateway checkpoints in its database.

What it knows of the resident, from the readings alone:

* **where they are**: in bed or in the chair (pads), out (a door to outside, then nothing inside), or up;
* **how still is unusual**, by time of day and context (:mod:`analytics.elapsed`);
* **when they usually get up and first eat** (:mod:`analytics.firsts`), how long they usually stay out
  (:mod:`analytics.gaps`), how busy their days are, and which devices report regularly
  (:mod:`analytics.silence`).

When the home cannot be seen (hub offline, or every regularly reporting device silent), stillness is "can't
see", a device-health alert, never inactivity. A planned absence silences the person's alerts until the
resident is seen back.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, tzinfo
from typing import Any

import numpy as np

from analytics.activity import ActivityTracker, Change, Value
from analytics.alerts import HUB_SUBJECT, Action, AlertEvent, AlertKind, Severity
from analytics.elapsed import BED, CHAIR, CONTEXTS, SLOTS, UP, ElapsedModel
from analytics.firsts import FirstOfDay
from analytics.gaps import GapModel
from analytics.localtime import DAY_MS, MINUTE_MS, LocalTime, duration
from analytics.silence import SilenceWatch
from analytics.summary import DaySummary

OUTSIDE_DOORS = frozenset({"front_door", "back_door"})
BATHROOMS = frozenset({"bathroom", "toilet", "wc"})
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
MEAL_ROLES = frozenset({"fridge", "kettle"})
PERSON = frozenset(AlertKind) - {AlertKind.HUB_OFFLINE, AlertKind.CANT_SEE, AlertKind.SENSOR_SILENT,
                                 AlertKind.LOW_BATTERY, AlertKind.RETURNED}
STILLNESS = (AlertKind.INACTIVITY, AlertKind.NOT_UP)  # one situation: the first raised holds the other back


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
    silence_min_gaps: int = 10


def _defaults(has_bed_pad: bool) -> np.ndarray:
    """Stillness limits before anything is learned: generous, so a new home does not cry wolf in week one."""
    hours = (np.arange(SLOTS) + 0.5) / 2
    night = (hours >= 22) | (hours < 8)
    up = np.where(night, 90.0 if has_bed_pad else 10 * 60.0, 3 * 60.0)  # out of bed at night: up briefly
    bed = np.where(night, 12 * 60.0, 4 * 60.0)
    chair = np.where(night, 8 * 60.0, 4 * 60.0)
    return np.stack([up, bed, chair])


@dataclass
class _Open:
    severity: Severity
    emitted: bool


@dataclass
class _Device:
    kind: str
    room: str | None
    role: str | None


@dataclass
class _Day:
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


@dataclass
class HomeDetector:
    home: str
    tz: tzinfo
    config: DetectorConfig = field(default_factory=DetectorConfig)
    quiet_until_ms: int = 0  # alerts arising before this are learned from, not raised (offline analysis)

    def __post_init__(self) -> None:
        c = self.config
        self.local = LocalTime(self.tz)
        self.tracker = ActivityTracker()
        self.silence = SilenceWatch(min_gaps=c.silence_min_gaps)
        self.devices: dict[str, _Device] = {}
        self.has_bed_pad = False
        self.has_meal_sensors = False
        self.stillness = self._elapsed_model()
        self.up_time = FirstOfDay(default_min=c.not_up_default_min, quantile=0.97, margin_min=60)
        self.meal_time = FirstOfDay(default_min=c.first_meal_default_min, quantile=0.97, margin_min=90,
                                    ceiling_min=15 * 60)
        self.absence = GapModel(slots=24, quantile=0.97, margin=1.5, default_min=c.long_absence_default_min,
                                floor_min=2 * 60, ceiling_min=24 * 60, prior_weight=5)
        self.daily_counts: list[int] = []
        self.nights_learned = 0
        self.nights_with_exit = 0
        self.now_ms: int | None = None
        self.last_activity_ms: int | None = None
        self.last_room: str | None = None
        self.last_device: str | None = None
        self.context = UP
        self.out_since_ms: int | None = None  # a door to outside, then nothing inside yet
        self.last_door_ms: int | None = None
        self.return_doors_until_ms = 0
        self.night_exit_ms: int | None = None
        self.hub_offline_ms: int | None = None
        self.cant_see_ms: int | None = None
        self.visible_since_ms = 0
        self.cold_since: dict[str, int] = {}
        self.temperatures: dict[str, float] = {}
        self.low_battery: set[str] = set()
        self.absences: list[tuple[int, int | None]] = []
        self.returned_ms: dict[int, int] = {}  # absence start -> when the resident was seen back
        self.day: _Day | None = None
        self.summaries: list[DaySummary] = []  # closed days not yet taken by the caller (checkpointed with us)
        self._bed_mark: int | None = None  # in bed since (or since the day began): not yet added to a day
        self._out_mark: int | None = None
        self.open: dict[tuple[AlertKind, str], _Open] = {}
        self._stillness_deadline: int | None = None
        self._out: list[AlertEvent] = []

    def _elapsed_model(self) -> ElapsedModel:
        c = self.config
        return ElapsedModel(_defaults(self.has_bed_pad), quantile=c.inactivity_quantile,
                            margin=c.inactivity_margin, prior_days=c.inactivity_prior_days,
                            floor_min=c.inactivity_floor_min, ceiling_min=c.inactivity_ceiling_min)

    # --- What the caller tells it -------------------------------------------------------------------------------

    def observe(self, time_ms: int, device: str, kind: str, value: Value | None = None, *, room: str | None = None,
                role: str | None = None, temperature: float | None = None, battery: float | None = None,
                battery_low: bool | None = None) -> list[AlertEvent]:
        """One reading from ``device``: its activity value (None for a report without one), and what else it said."""
        self._advance(time_ms)
        t = max(time_ms, self.now_ms or time_ms)
        info = self.devices.get(device)
        if info is None or (info.kind, info.room, info.role) != (kind, room, role):
            info = self.devices[device] = _Device(kind, room, role)
            self.has_meal_sensors = any(self._is_meal(d) for d in self.devices.values())
            if role == "bed" and not self.has_bed_pad:
                self.has_bed_pad = True
                self.stillness.set_defaults(_defaults(True))
        if self.silence.report(device, t) is not None or self.cant_see_ms is not None:
            self._seen_again(t, device)
        if battery is not None or battery_low is not None:
            self._battery(t, device, battery, battery_low)
        if temperature is not None:
            self._temperature(t, device, temperature, room)
        if value is not None:
            change = self.tracker.update(device, kind, value)
            if change is not None:
                self._activity(t, device, info, change)
        return self._take()

    def hub(self, time_ms: int, online: bool) -> list[AlertEvent]:
        """The home's hub (zigbee2mqtt bridge state) went on or off line."""
        self._advance(time_ms)
        t = max(time_ms, self.now_ms or time_ms)
        if not online and self.hub_offline_ms is None:
            self.hub_offline_ms = t
            self._raise(AlertKind.HUB_OFFLINE, t, Severity.WARNING,
                        f"The home hub went offline at {self._clock(t)}: nothing in the home can be seen, so "
                        "inactivity cannot be checked until it is back.", subject=HUB_SUBJECT)
        elif online and self.hub_offline_ms is not None:
            since = self.hub_offline_ms
            self.hub_offline_ms = None
            self._visible_again(t)
            self._clear(AlertKind.HUB_OFFLINE, t, f"The home hub is back online at {self._clock(t)}, after "
                        f"{duration((t - since) / MINUTE_MS)}.", subject=HUB_SUBJECT)
        return self._take()

    def set_absences(self, absences: Iterable[tuple[int, int | None]]) -> None:
        """Planned absences (holiday, hospital) as (start, end or None) epoch milliseconds."""
        self.absences = sorted(absences)
        self._stillness_deadline = None

    def advance(self, now_ms: int) -> list[AlertEvent]:
        """Time has moved on to ``now_ms`` with nothing else heard."""
        self._advance(now_ms)
        return self._take()

    def next_wake_ms(self) -> int | None:
        """The earliest moment an alert could arise with nothing more heard (the caller wakes us then)."""
        candidates = [self._stillness_due(), self._not_up_due(), self._meal_due(), self._absence_due(),
                      self.silence.next_wake_ms()]
        if self.now_ms is not None:
            candidates.append(self.local.utc_ms((self.local.day(self.now_ms) + 1) * DAY_MS))
        if self.night_exit_ms is not None and (AlertKind.NIGHT_EXIT, "") in self.open \
                and self.open[(AlertKind.NIGHT_EXIT, "")].severity < Severity.URGENT:
            candidates.append(self.night_exit_ms + round(self.config.night_exit_grace_min * MINUTE_MS))
        candidates += [since + round(self.config.cold_for_min * MINUTE_MS) for since in self.cold_since.values()]
        due = [c for c in candidates if c is not None]
        return min(due) if due else None

    def baseline(self) -> dict[str, Any]:
        """What this resident's alerts are compared with, for people to read (the API's baseline view).

        Per half-hour of the local day and context: the usual stillness and the limit past which stillness is
        an alert (minutes); the usual times of getting up and the first meal; the usual day's activity."""
        model = self.stillness
        per_context = {
            name: {"limit_min": [round(float(v), 1) for v in model.limits_min[i]],
                   "usual_min": [None if np.isnan(v) else round(float(v), 1) for v in model.usual_min[i]]}
            for i, name in enumerate(CONTEXTS)}
        counts = self.daily_counts
        return {
            "days_learned": model.days_learned,
            "half_hours": [f"{h // 2:02d}:{30 * (h % 2):02d}" for h in range(SLOTS)],
            "stillness": per_context,
            "up_by_min": self.up_time.usual_min() if self.up_time.days >= 5 else None,
            "not_up_after_min": self.up_time.deadline_min(),
            "first_meal_by_min": self.meal_time.usual_min() if self.meal_time.days >= 5 else None,
            "no_meals_after_min": self.meal_time.deadline_min() if self.has_meal_sensors else None,
            "activities_per_day": float(np.median(counts)) if counts else None,
        }

    # --- Time passing -------------------------------------------------------------------------------------------

    def _advance(self, now_ms: int) -> None:
        if self.now_ms is not None and now_ms <= self.now_ms:
            return
        # Walk through whatever falls due before now, in order, so each alert is stamped when it arose.
        while True:
            due = self.next_wake_ms()
            if due is None or due > now_ms:
                break
            before = (due, len(self.open))
            self._at(max(due, self.now_ms or due))
            if (self.next_wake_ms(), len(self.open)) == before:  # nothing moved: go no further than now
                break
        self._at(now_ms)

    def _at(self, t: int) -> None:
        if self.now_ms is None:
            self.now_ms = t
        if t > self.now_ms:
            self.now_ms = t
        self._roll_day(t)
        self._check_silence(t)
        if self._blind():
            return
        away = self._away(t)
        if not away:
            self._check_stillness(t)
            self._check_not_up(t)
            self._check_meals(t)
            self._check_absence(t)
            self._check_night_exit(t)
        self._check_cold(t)

    # --- Activity -----------------------------------------------------------------------------------------------

    def _activity(self, t: int, device: str, info: _Device, change: Change) -> None:
        c = self.config
        away = self._away(t)
        if away is not None and self._returned(t, away):
            away = None
        door = info.role in OUTSIDE_DOORS
        previous, previous_room = self.last_activity_ms, self.last_room
        if previous is not None and not away and not self._blind() and self.out_since_ms is None:
            start = max(previous, self.visible_since_ms)
            if t > start and self.stillness.learn_gap(self.context, self.local.local_ms(start),
                                                      self.local.local_ms(t)):
                self._stillness_deadline = None
        if door:
            self._door(t)
        elif self.out_since_ms is not None:
            self._back_inside(t, learn=previous is not None and not away)
        self.last_activity_ms, self.last_room, self.last_device = t, info.room, device
        self._stillness_deadline = None
        was_in_bed = self.context == BED
        if info.role == "bed" and change in (Change.OCCUPIED, Change.VACATED):
            self.context = BED if change is Change.OCCUPIED else UP
        elif info.role == "chair" and change in (Change.OCCUPIED, Change.VACATED):
            self.context = CHAIR if change is Change.OCCUPIED else UP
        elif not door and info.room != "bedroom" and self.context == BED and info.kind != "presence":
            self.context = UP  # moving about elsewhere: the bed pad is behind (or someone else is in bed)
        for kind in STILLNESS:
            self._clear(kind, t, self._resumed_message(t, info))
        if info.role == "pendant" and change is Change.PRESSED:
            self._raise(AlertKind.PENDANT, t, Severity.EMERGENCY,
                        f"Pendant pressed at {self._clock(t)}{self._last_seen_text(t, previous, previous_room)}.",
                        pressed_at=t)
        self._bed_changed(t, was_in_bed)
        day = self.day
        if day is None or away:
            return
        self._count(day, t, info, previous, was_in_bed)
        minute = self.local.minute_of_day(t)
        after_start = minute >= c.day_start_min or self.local.day(t) > day.index
        if day.up_ms is None and after_start and info.room != "bedroom" and info.role != "bed":
            day.up_ms = t
        if day.meal_ms is None and after_start and self._is_meal(info):
            day.meal_ms = t
            self._clear(AlertKind.NO_MEALS, t, f"Kitchen activity at {self._clock(t)} ({_name(device)}).")

    def _count(self, day: _Day, t: int, info: _Device, previous: int | None, was_in_bed: bool) -> None:
        """The day's summary figures."""
        day.activity += 1
        day.first_ms = day.first_ms if day.first_ms is not None else t
        day.last_ms = t
        if (info.room or "").lower() in BATHROOMS:
            if day.last_bathroom_ms is None or t - day.last_bathroom_ms >= 15 * MINUTE_MS:
                day.bathroom_visits += 1
            day.last_bathroom_ms = t
        if self._is_meal(info):
            if day.last_meal_ms is None or t - day.last_meal_ms >= 60 * MINUTE_MS:
                day.meals += 1
            day.last_meal_ms = t
        minute = self.local.minute_of_day(t)
        if minute >= 23 * 60 or minute < 6 * 60:
            got_up = was_in_bed and self.context != BED
            quiet_then_about = not self.has_bed_pad and info.room != "bedroom" and previous is not None \
                and t - previous >= 60 * MINUTE_MS
            day.night_getups += got_up or quiet_then_about

    def _bed_changed(self, t: int, was_in_bed: bool) -> None:
        in_bed = self.context == BED
        if in_bed and not was_in_bed:
            self._bed_mark = t
        elif was_in_bed and not in_bed and self._bed_mark is not None:
            if self.day is not None:
                self.day.bed_ms += max(0, t - self._bed_mark)
            self._bed_mark = None

    def _door(self, t: int) -> None:
        c = self.config
        if self.out_since_ms is not None and self.last_door_ms is not None \
                and t - self.last_door_ms >= c.out_return_min * MINUTE_MS:
            self._back_inside(t, learn=True)  # the door again after a while out: the return
            self.return_doors_until_ms = t + round(c.out_return_min * MINUTE_MS)
        elif t >= self.return_doors_until_ms and self.out_since_ms is None:
            self.out_since_ms = self._out_mark = t
            if self._is_night(t) and self.day is not None and not self._away(t):
                self._night_exit(t)
        self.last_door_ms = t

    def _back_inside(self, t: int, *, learn: bool) -> None:
        since = self.out_since_ms
        assert since is not None
        self.out_since_ms = None
        if self.day is not None and self._out_mark is not None:
            self.day.out_ms += max(0, t - self._out_mark)
        self._out_mark = None
        self._stillness_deadline = None
        if self.day is not None:
            self.day.went_out = True
        if learn and (AlertKind.LONG_ABSENCE, "") not in self.open:
            self.absence.learn_one(self.local.minute_of_day(since), (t - since) / MINUTE_MS)
        away_text = f"Back at {self._clock(t)} after {duration((t - since) / MINUTE_MS)} out."
        self._clear(AlertKind.LONG_ABSENCE, t, away_text)
        if self.night_exit_ms is not None:
            self.night_exit_ms = None
            self._clear(AlertKind.NIGHT_EXIT, t, away_text)

    def _is_meal(self, info: _Device) -> bool:
        return info.role in MEAL_ROLES or (info.room == "kitchen" and info.kind in ("contact", "plug"))

    # --- Person-safety checks -----------------------------------------------------------------------------------

    def _stillness_due(self) -> int | None:
        if self.last_activity_ms is None or self.out_since_ms is not None or self._blind() \
                or any(k in self.open for k in ((AlertKind.INACTIVITY, ""), (AlertKind.NOT_UP, ""))):
            return None
        if self.silence.latest_watched_ms <= self.last_activity_ms and self.silence.any_watched():
            return None  # nothing at all heard since: wait to see whether it is stillness or a silent home
        if self._stillness_deadline is None:
            since = max(self.last_activity_ms, self.visible_since_ms)
            local = self.stillness.deadline_local(self.context, self.local.local_ms(since))
            self._stillness_deadline = self.local.utc_ms(local)
        return self._stillness_deadline

    def _check_stillness(self, t: int) -> None:
        due = self._stillness_due()
        if due is None or due > t or self.last_activity_ms is None:
            return
        since = max(self.last_activity_ms, self.visible_since_ms)
        local_due = self.local.local_ms(due)
        usual = self.stillness.usual(self.context, local_due)
        where = {BED: " The bed pad says in bed.", CHAIR: " The chair pad says in the chair."}.get(self.context, "")
        usual_text = (f" Usually there is activity within {duration(usual)} at this time of day."
                      if usual is not None else " No usual pattern learned yet at this time of day.")
        started = "Nothing seen" if since > self.last_activity_ms else "No activity"
        self._raise(AlertKind.INACTIVITY, due, Severity.URGENT,
                    f"{started} since {self._clock(since, due)}{self._room_text()}.{where}{usual_text}"
                    f"{self._silent_note(due)}",
                    since=since, limit_min=round(self.stillness.limit_min(self.context, local_due)),
                    usual_min=usual, context=CONTEXTS[self.context], room=self.last_room)

    def _not_up_due(self) -> int | None:
        day = self.day
        if day is None or day.up_ms is not None or day.away or day.partial or self.out_since_ms is not None \
                or self._blind() \
                or any(k in self.open for k in ((AlertKind.INACTIVITY, ""), (AlertKind.NOT_UP, ""))):
            return None
        return self.local.utc_ms(day.index * DAY_MS + round(self.up_time.deadline_min() * MINUTE_MS))

    def _check_not_up(self, t: int) -> None:
        due = self._not_up_due()
        if due is None or due > t:
            return
        usual = self.up_time.usual_min()
        usual_text = f" Usually up by {_hhmm(usual)}." if usual is not None and self.up_time.days >= 5 else ""
        last = self.last_activity_ms
        seen = f" Last activity {self._clock(last, due)}{self._room_text()}." if last is not None else ""
        self._raise(AlertKind.NOT_UP, due, Severity.URGENT,
                    f"Not up yet at {self._clock(due)}: no activity outside the bedroom this morning.{seen}"
                    f"{usual_text}{self._silent_note(due)}", usual_min=usual)

    def _meal_due(self) -> int | None:
        day = self.day
        if day is None or not self.has_meal_sensors or day.meal_ms is not None or day.up_ms is None \
                or day.went_out or day.away or day.partial or self.out_since_ms is not None or self._blind():
            return None
        return self.local.utc_ms(day.index * DAY_MS + round(self.meal_time.deadline_min() * MINUTE_MS))

    def _check_meals(self, t: int) -> None:
        due = self._meal_due()
        if due is None or due > t or (AlertKind.NO_MEALS, "") in self.open:
            return
        usual = self.meal_time.usual_min()
        usual_text = f" Usually by {_hhmm(usual)}." if usual is not None and self.meal_time.days >= 5 else ""
        self._raise(AlertKind.NO_MEALS, due, Severity.WARNING,
                    f"No kitchen activity (fridge, kettle, cupboards) today by {self._clock(due)}, though up since "
                    f"{self._clock(self.day.up_ms) if self.day and self.day.up_ms else '?'}.{usual_text}",
                    usual_min=usual)

    def _absence_due(self) -> int | None:
        since = self.out_since_ms
        if since is None or (AlertKind.LONG_ABSENCE, "") in self.open or self._blind():
            return None
        limit = self.absence.threshold_min(self.local.minute_of_day(since))
        return since + round(limit * MINUTE_MS)

    def _check_absence(self, t: int) -> None:
        due = self._absence_due()
        if due is None or due > t or self.out_since_ms is None:
            return
        since = self.out_since_ms
        usual = self.absence.usual_min(self.local.minute_of_day(since))
        usual_text = (f" When going out at this time of day, usually back within {duration(usual)}."
                      if usual is not None else "")
        self._raise(AlertKind.LONG_ABSENCE, due, Severity.WARNING,
                    f"Out since {self._clock(since, due)} (front door), {duration((due - since) / MINUTE_MS)} ago, "
                    f"and no activity inside since.{usual_text}", since=since, usual_min=usual)

    def _night_exit(self, t: int) -> None:
        c = self.config
        if self.day is not None:
            self.day.night_door = True
        if self.nights_learned >= 7 and self.nights_with_exit / self.nights_learned > c.night_exit_usual_share:
            return
        self.night_exit_ms = t
        self._raise(AlertKind.NIGHT_EXIT, t, Severity.WARNING,
                    f"Front door opened at {self._clock(t)}, at night"
                    f"{self._last_seen_text(t, self.last_activity_ms, self.last_room)}.", opened_at=t)
        if self.day is not None:
            self.day.went_out = True

    def _check_night_exit(self, t: int) -> None:
        opened = self.night_exit_ms
        key = (AlertKind.NIGHT_EXIT, "")
        if opened is None or key not in self.open or self.open[key].severity >= Severity.URGENT:
            return
        due = opened + round(self.config.night_exit_grace_min * MINUTE_MS)
        if due <= t and self.out_since_ms is not None:
            self._raise(AlertKind.NIGHT_EXIT, due, Severity.URGENT,
                        f"Front door opened at {self._clock(opened)}, at night, and nobody has been seen inside "
                        f"since ({duration((due - opened) / MINUTE_MS)}).", opened_at=opened)

    def _temperature(self, t: int, device: str, celsius: float, room: str | None) -> None:
        c = self.config
        self.temperatures[device] = celsius
        if celsius < c.cold_below_c:
            self.cold_since.setdefault(device, t)
        elif celsius >= c.cold_clear_c:
            self.cold_since.pop(device, None)
        if not self.cold_since and (AlertKind.COLD_HOME, "") in self.open:
            self._clear(AlertKind.COLD_HOME, t, f"Warm again at {self._clock(t)}: {_place(room, device)} "
                        f"{celsius:.1f} °C.")

    def _check_cold(self, t: int) -> None:
        c = self.config
        due = [(since, d) for d, since in self.cold_since.items()
               if since + round(c.cold_for_min * MINUTE_MS) <= t]
        if not due or (AlertKind.COLD_HOME, "") in self.open:
            return
        since, device = min(due)
        info = self.devices.get(device)
        at = since + round(c.cold_for_min * MINUTE_MS)
        self._raise(AlertKind.COLD_HOME, at, Severity.WARNING,
                    f"{_place(info.room if info else None, device).capitalize()} at "
                    f"{self.temperatures[device]:.1f} °C, below {c.cold_below_c:g} °C since {self._clock(since, at)}.",
                    device=device, celsius=self.temperatures[device])

    # --- The day closing: learning routines -----------------------------------------------------------------------

    def _roll_day(self, t: int) -> None:
        index = self.local.day(t)
        day = self.day
        if day is not None and day.index == index:
            return
        if day is not None:
            end = self.local.utc_ms((day.index + 1) * DAY_MS)
            if self._bed_mark is not None:  # a night in bed counts on both sides of midnight
                day.bed_ms += max(0, end - self._bed_mark)
                self._bed_mark = max(end, self._bed_mark)
            if self._out_mark is not None:
                day.out_ms += max(0, end - self._out_mark)
                self._out_mark = max(end, self._out_mark)
            self._close_day(day, end)
        joined_late = (day is None or day.index < index - 1) and \
            self.local.minute_of_day(t) > self.config.day_start_min
        self.day = _Day(index=index, away=self._away(self.local.utc_ms(index * DAY_MS)) is not None,
                        partial=joined_late)

    def _close_day(self, day: _Day, closed_at: int) -> None:
        c = self.config
        if not day.away:
            self.summaries.append(day.summary(self.home, self.local))
        if day.away or day.partial:
            return
        if day.up_ms is not None:
            self.up_time.learn(self.local.minute_of_day(day.up_ms) + (self.local.day(day.up_ms) - day.index) * 1440)
        if day.meal_ms is not None and not day.went_out:
            self.meal_time.learn(self.local.minute_of_day(day.meal_ms))
        self.nights_learned += 1
        self.nights_with_exit += day.night_door
        self.daily_counts.append(day.activity)
        del self.daily_counts[:-(c.decline_recent_days + c.decline_baseline_days)]
        self._check_decline(closed_at)

    def _check_decline(self, t: int) -> None:
        c = self.config
        counts = self.daily_counts
        if len(counts) < c.decline_recent_days + 14:
            return
        recent = float(np.mean(counts[-c.decline_recent_days:]))
        baseline = float(np.median(counts[:-c.decline_recent_days]))
        if baseline < c.decline_min_daily:
            return
        ratio = recent / baseline
        key = (AlertKind.ACTIVITY_DECLINE, "")
        if ratio < c.decline_ratio and key not in self.open:
            self._raise(AlertKind.ACTIVITY_DECLINE, t, Severity.WARNING,
                        f"Less active over the last {c.decline_recent_days} days: {recent:.0f} activities a day, "
                        f"{ratio:.0%} of the usual {baseline:.0f}.", recent=recent, baseline=baseline)
        elif ratio >= c.decline_clear_ratio and key in self.open:
            self._clear(AlertKind.ACTIVITY_DECLINE, t, f"Activity back to {ratio:.0%} of usual "
                        f"({recent:.0f} a day over the last {c.decline_recent_days} days).")

    # --- Device health ------------------------------------------------------------------------------------------

    def _check_silence(self, t: int) -> None:
        for s in self.silence.advance(t):
            if self.hub_offline_ms is None and self.cant_see_ms is None:
                info = self.devices.get(s.device)
                self._raise(AlertKind.SENSOR_SILENT, s.silent_at_ms, Severity.LOW,
                            f"{_describe(s.device, info)} has not reported since "
                            f"{self._clock(s.last_report_ms, s.silent_at_ms)}; it usually reports at least every "
                            f"{duration(s.limit_min / self.silence.margin)}.", subject=s.device,
                            last_report=s.last_report_ms)
        if self.cant_see_ms is None and self.hub_offline_ms is None and self.silence.all_silent():
            last = max(self.silence.last_reports().values())
            at = max(self.silence.silent_since_ms(), self.now_ms or t)
            self.cant_see_ms = at
            for device in list(self.silence.silent()):  # one home-wide alert rather than one per device
                self._clear(AlertKind.SENSOR_SILENT, at, "Covered by the home-wide alert.", subject=device,
                            quietly=True)
            self._raise(AlertKind.CANT_SEE, at, Severity.WARNING,
                        f"Can't see the home: no device has reported since {self._clock(last, at)}, though they "
                        "usually report regularly. Inactivity cannot be checked until they do.",
                        subject=HUB_SUBJECT, last_report=last)

    def _seen_again(self, t: int, device: str) -> None:
        if self.cant_see_ms is not None:
            if self.silence.all_silent():
                return  # a device that never reports regularly says little about the rest
            since = self.cant_see_ms
            self.cant_see_ms = None
            self._visible_again(t)
            self._clear(AlertKind.CANT_SEE, t, f"Devices reporting again from {self._clock(t)} after "
                        f"{duration((t - since) / MINUTE_MS)} unseen.", subject=HUB_SUBJECT)
            for silent in self.silence.silent():  # still quiet once the rest are back: those are faulty
                if silent != device:
                    self._raise(AlertKind.SENSOR_SILENT, t, Severity.LOW,
                                f"{_describe(silent, self.devices.get(silent))} has not reported since the home "
                                "came back into view.", subject=silent)
        else:
            info = self.devices.get(device)
            self._clear(AlertKind.SENSOR_SILENT, t, f"{_describe(device, info)} reporting again at "
                        f"{self._clock(t)}.", subject=device)

    def _visible_again(self, t: int) -> None:
        """Stillness is counted afresh from when the home can be seen again: nobody knows what happened before."""
        self.visible_since_ms = t
        self._stillness_deadline = None

    def _battery(self, t: int, device: str, percent: float | None, low: bool | None) -> None:
        c = self.config
        is_low = (percent is not None and percent <= c.low_battery_pct) or (percent is None and low is True)
        is_ok = (percent is not None and percent >= c.battery_ok_pct) or (percent is None and low is False)
        info = self.devices.get(device)
        if is_low and device not in self.low_battery:
            self.low_battery.add(device)
            level = f" ({percent:.0f} %)" if percent is not None else ""
            self._raise(AlertKind.LOW_BATTERY, t, Severity.LOW,
                        f"{_describe(device, info)} battery is low{level}: replace it within days.",
                        subject=device, battery=percent)
        elif is_ok and device in self.low_battery:
            self.low_battery.discard(device)
            self._clear(AlertKind.LOW_BATTERY, t, f"{_describe(device, info)} battery replaced.", subject=device)

    # --- Planned absences ---------------------------------------------------------------------------------------

    def _away(self, t: int) -> tuple[int, int | None] | None:
        for start, end in self.absences:
            if start <= t and (end is None or t < end) and start not in self.returned_ms:
                return (start, end)
        return None

    def _returned(self, t: int, away: tuple[int, int | None]) -> bool:
        start = away[0]
        last = max(start, self.last_activity_ms or start)
        if t - last < self.config.absence_return_quiet_min * MINUTE_MS:
            return False
        self.returned_ms[start] = t
        self.out_since_ms = None
        self._visible_again(t)
        self._notice(AlertKind.RETURNED, t, f"Back home: activity at {self._clock(t)} during the planned absence "
                     f"that began {self._clock(start, t)}. Alerts are on again.", absence_start=start)
        return True

    # --- Alert bookkeeping ----------------------------------------------------------------------------------------

    def _raise(self, kind: AlertKind, at: int, severity: Severity, message: str, *, subject: str = "",
               **details: Any) -> None:
        key = (kind, subject)
        current = self.open.get(key)
        if current is not None and current.severity >= severity:
            return
        emitted = at >= self.quiet_until_ms if current is None else current.emitted
        self.open[key] = _Open(severity, emitted)
        if emitted:
            self._out.append(AlertEvent(Action.RAISE, kind, self.home, at, severity, message, subject, details))

    def _clear(self, kind: AlertKind, at: int, message: str, *, subject: str = "", quietly: bool = False) -> None:
        current = self.open.pop((kind, subject), None)
        if current is not None and current.emitted and not quietly:
            self._out.append(AlertEvent(Action.CLEAR, kind, self.home, at, current.severity, message, subject))
        elif current is not None and current.emitted:
            self._out.append(AlertEvent(Action.CLEAR, kind, self.home, at, current.severity, message, subject,
                                        {"quiet": True}))

    def _notice(self, kind: AlertKind, at: int, message: str, **details: Any) -> None:
        if at >= self.quiet_until_ms:
            self._out.append(AlertEvent(Action.NOTICE, kind, self.home, at, Severity.INFO, message, "", details))

    def _take(self) -> list[AlertEvent]:
        out, self._out = self._out, []
        return out

    # --- Wording ------------------------------------------------------------------------------------------------

    def _blind(self) -> bool:
        return self.hub_offline_ms is not None or self.cant_see_ms is not None

    def _is_night(self, t: int) -> bool:
        minute = self.local.minute_of_day(t)
        c = self.config
        return minute >= c.night_start_min or minute < c.night_end_min

    def _clock(self, t: int, since: int | None = None) -> str:
        return self.local.clock(t, since_ms=since)

    def _room_text(self) -> str:
        return f", last in the {self.last_room}" if self.last_room else ""

    def _last_seen_text(self, t: int, before: int | None, room: str | None) -> str:
        if before is None or room is None:
            return ""
        return f" (last activity {self._clock(before, t)} in the {room})"

    def _resumed_message(self, t: int, info: _Device) -> str:
        where = f" in the {info.room}" if info.room else ""
        return f"Activity again at {self._clock(t)}{where}."

    def _silent_note(self, t: int) -> str:
        silent = sorted(self.silence.silent())
        if not silent:
            return ""
        names = ", ".join(_describe(d, self.devices.get(d)).lower() for d in silent[:3])
        return f" Not reporting: {names}."


def _hhmm(minutes: float) -> str:
    m = round(minutes) % 1440
    return f"{m // 60:02d}:{m % 60:02d}"


def _name(device: str) -> str:
    return device.replace("_", " ")


def _place(room: str | None, device: str) -> str:
    return f"the {room}" if room else _name(device)


def _describe(device: str, info: _Device | None) -> str:
    """``The bathroom motion sensor (bathroom_pir)``: what a carer can find in the home."""
    kinds = {"motion": "motion sensor", "contact": "door sensor", "presence": "pressure pad", "plug": "smart plug",
             "button": "button", "climate": "temperature sensor", "vibration": "vibration sensor",
             "leak": "leak sensor"}
    if info is None:
        return f"Device {device}"
    what = kinds.get(info.kind, "device")
    role = {"front_door": "front door", "back_door": "back door", "bed": "bed", "chair": "chair",
            "fridge": "fridge", "kettle": "kettle", "pendant": "pendant"}.get(info.role or "")
    where = role or info.room
    return f"The {where} {what} ({device})" if where else f"The {what} {device}"
