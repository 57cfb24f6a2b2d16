"""Where the resident is and what they do, day after day: a timeline of :class:`Step` for the sensors to see.

Pure and deterministic: the random generator is passed in, time is simulated epoch milliseconds, and nothing is
read from a clock. Days are planned on a minute grid in the home's local time, by painting the day's blocks in
order of precedence (sleep, then wanders, naps, meals, visitors, toilet visits, outings, the morning and evening
routine, night visits: a later block wins where two overlap). The grid's runs then become steps, with their
boundaries moved by up to a minute so that nothing happens on the minute, short actions (opening the fridge or
the door, switching the kettle on) cut down to seconds, and a few seconds in the hall between two rooms.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

import numpy as np

from sensors_sim.scenario import BATHROOM, BEDROOM, DAY_MIN, HALL, KITCHEN, LIVING_ROOM, ROOMS, Normal, Routine, SimHome

MINUTE_MS = 60_000


class Activity(StrEnum):
    ASLEEP = "asleep"  # in bed
    SEATED = "seated"  # in the chair, awake: fidgets now and then
    NAPPING = "napping"  # dozing in the chair
    MOVING = "moving"  # up and about in a room
    TOILET = "toilet"
    COOKING = "cooking"
    KETTLE = "kettle"  # switching the kettle on; it boils by itself
    FRIDGE = "fridge"  # the fridge door is open for this step
    DOOR = "door"  # the front door is open for this step: leaving, coming back, answering it
    VISITED = "visited"  # sitting with a visitor, who moves about too
    OUT = "out"  # out of the house; room is None


@dataclass(frozen=True, slots=True)
class Step:
    """The resident is in ``room`` (None: out) doing ``activity`` from ``start_ms`` until ``end_ms``."""

    start_ms: int
    end_ms: int
    room: str | None
    activity: Activity


_ACTS = list(Activity)
_CODE = {a: i for i, a in enumerate(_ACTS)}
_ROOM = {r: i for i, r in enumerate(ROOMS)}
_OUT = len(ROOMS)
_SHORT_S = {Activity.KETTLE: (15, 40), Activity.FRIDGE: (10, 60), Activity.DOOR: (8, 30)}  # seconds, uniform
_WANDER_ROOMS = (KITCHEN, BEDROOM, HALL, LIVING_ROOM)


class _Day:
    """The minute grid of the whole simulated span: an activity code and a room code per minute."""

    def __init__(self, minutes: int) -> None:
        self.n = minutes
        self.act = np.full(minutes, _CODE[Activity.SEATED], dtype=np.int8)
        self.room = np.full(minutes, _ROOM[LIVING_ROOM], dtype=np.int8)

    def paint(self, start: float, end: float, activity: Activity, room: str | None) -> None:
        a, b = max(0, round(start)), min(self.n, round(end))
        if a < b:
            self.act[a:b] = _CODE[activity]
            self.room[a:b] = _OUT if room is None else _ROOM[room]


def simulate_days(home: SimHome, routine: Routine, start_ms: int, days: int,
                  rng: np.random.Generator) -> list[Step]:
    """The resident's timeline from ``start_ms`` to local midnight ``days`` days after the day it falls in.

    Steps are contiguous and ordered; the first starts at ``start_ms``. On a daylight-saving change the grid's
    day is 24 hours long, so that day ends an hour early or late: the resident does not notice.
    """
    zone = ZoneInfo(home.timezone)
    first = datetime.fromtimestamp(start_ms / 1000, zone).date()
    dates = [first + timedelta(days=d) for d in range(days + 1)]
    midnights = np.array([int(datetime.combine(d, time(), zone).timestamp() * 1000) for d in dates], np.int64)
    grid = _Day(days * DAY_MIN)
    weekend = [d.weekday() >= 5 for d in dates]
    sleep = routine.sleep
    wake = [d * DAY_MIN + _normal(rng, sleep.wake_weekend if weekend[d] else sleep.wake_weekday, 4 * 60, 12 * 60)
            for d in range(days + 1)]
    bed = [max(wake[d] + 10 * 60, d * DAY_MIN + _normal(rng, sleep.bed_weekend if weekend[d] else sleep.bed_weekday,
                                                        19 * 60, DAY_MIN + 3 * 60))
           for d in range(days + 1)]
    for d in range(days + 1):
        grid.paint(bed[d - 1] if d else 0, wake[d], Activity.ASLEEP, BEDROOM)
        if d < days:
            _plan_day(grid, routine, rng, d * DAY_MIN, wake[d], bed[d])
    for d in range(days):
        _night_visits(grid, routine, rng, bed[d - 1] if d else 0, wake[d])
    _night_visits(grid, routine, rng, bed[days - 1], wake[days])
    steps = _steps(grid, midnights, rng)
    return _clip(steps, start_ms)


def _plan_day(grid: _Day, routine: Routine, rng: np.random.Generator, day: float, wake: float, bed: float) -> None:
    for _ in range(rng.poisson(routine.wanders_per_hour * (bed - wake) / 60)):
        t = rng.uniform(wake, bed)
        grid.paint(t, t + rng.uniform(2, 6), Activity.MOVING, _WANDER_ROOMS[rng.integers(len(_WANDER_ROOMS))])
    naps = routine.naps
    if rng.random() < naps.probability:
        t = day + rng.uniform(naps.window.start, naps.window.end)
        grid.paint(t, t + _normal(rng, naps.duration, 10, 180), Activity.NAPPING, LIVING_ROOM)
    for meal in (routine.meals.breakfast, routine.meals.lunch, routine.meals.dinner):
        t = max(wake + 20, day + rng.uniform(meal.window.start, meal.window.end))
        length = max(3, round(meal.duration_min * rng.uniform(0.7, 1.3)))
        grid.paint(t, t + length, Activity.COOKING, KITCHEN)
        slots = rng.permutation(length)
        if rng.random() < meal.kettle_probability:
            grid.paint(t + 1, t + 2, Activity.KETTLE, KITCHEN)
            slots = slots[slots != 1]
        for slot in slots[: max(1, rng.poisson(meal.fridge_opens))]:
            grid.paint(t + slot, t + slot + 1, Activity.FRIDGE, KITCHEN)
    visitors = routine.visitors
    for _ in range(rng.poisson(visitors.per_week / 7)):
        t = day + rng.uniform(visitors.window.start, visitors.window.end)
        end = t + 1 + _normal(rng, visitors.duration, 10, 240)
        grid.paint(t, end, Activity.VISITED, LIVING_ROOM)
        grid.paint(t, t + 1, Activity.DOOR, HALL)
        grid.paint(end, end + 1, Activity.DOOR, HALL)
    for _ in range(rng.poisson(routine.bathroom.day_rate)):
        t = rng.uniform(wake + 30, bed - 20)
        grid.paint(t, t + _toilet_minutes(routine, rng), Activity.TOILET, BATHROOM)
    outings = routine.outings
    if rng.random() < outings.days_per_week / 7:
        t = day + rng.uniform(outings.window.start, outings.window.end)
        end = t + _normal(rng, outings.duration, 15, 8 * 60)
        grid.paint(t - 4, t - 1, Activity.MOVING, HALL)
        grid.paint(t - 1, t, Activity.DOOR, HALL)
        grid.paint(t, end, Activity.OUT, None)
        grid.paint(end, end + 1, Activity.DOOR, HALL)
        grid.paint(end + 1, end + 3, Activity.MOVING, HALL)
    grid.paint(wake, wake + 2, Activity.MOVING, BEDROOM)  # getting up
    grid.paint(wake + 2, wake + 10, Activity.TOILET, BATHROOM)
    grid.paint(wake + 10, wake + 18, Activity.MOVING, BEDROOM)  # dressing
    grid.paint(bed - 15, bed - 5, Activity.TOILET, BATHROOM)
    grid.paint(bed - 5, bed, Activity.MOVING, BEDROOM)


def _night_visits(grid: _Day, routine: Routine, rng: np.random.Generator, bed: float, wake: float) -> None:
    if wake - bed < 90:
        return
    for _ in range(rng.poisson(routine.bathroom.night_rate)):
        t = rng.uniform(bed + 30, wake - 30)
        length = _toilet_minutes(routine, rng)
        grid.paint(t, t + 1, Activity.MOVING, BEDROOM)
        grid.paint(t + 1, t + 1 + length, Activity.TOILET, BATHROOM)
        grid.paint(t + 1 + length, t + 2 + length, Activity.MOVING, BEDROOM)


def _toilet_minutes(routine: Routine, rng: np.random.Generator) -> float:
    mean = routine.bathroom.duration_min
    return float(np.clip(rng.normal(mean, mean / 3), 1, 4 * mean))


def _normal(rng: np.random.Generator, dist: Normal, low: float, high: float) -> float:
    return float(np.clip(rng.normal(dist.mean, dist.sd), low, high))


def _steps(grid: _Day, midnights: np.ndarray, rng: np.random.Generator) -> list[Step]:
    """Runs of the grid become steps; short actions shrink to seconds; a few seconds in the hall between rooms."""
    key = grid.act.astype(np.int16) * 16 + grid.room
    cuts = np.flatnonzero(np.diff(key)) + 1
    starts = np.concatenate(([0], cuts))
    edges = np.concatenate((starts, [grid.n]))
    ms = midnights[edges // DAY_MIN] + (edges % DAY_MIN) * MINUTE_MS
    ms[1:-1] += rng.integers(0, MINUTE_MS, size=len(ms) - 2)  # keeps every run longer than 0 ms
    # A 23-hour day (clocks going forward) maps its last hour past the next midnight: those runs collapse.
    np.maximum.accumulate(ms, out=ms)
    acts = [_ACTS[c] for c in grid.act[starts]]
    rooms = [None if r == _OUT else ROOMS[r] for r in grid.room[starts]]
    out: list[Step] = []
    for i, (activity, room) in enumerate(zip(acts, rooms, strict=True)):
        a, b = int(ms[i]), int(ms[i + 1])
        if b <= a:
            continue
        before = rooms[i - 1] if i else None
        if room not in (None, HALL) and before not in (None, HALL) and before != room and b - a > 40_000:
            hall = a + int(rng.integers(8_000, 20_000))
            out.append(Step(a, hall, HALL, Activity.MOVING))
            a = hall
        if activity in _SHORT_S:
            low, high = _SHORT_S[activity]
            short = min(b - a, int(rng.uniform(low, high) * 1000))
            rest = Activity.MOVING if activity is Activity.DOOR else Activity.COOKING
            leaving = i + 1 < len(acts) and acts[i + 1] is Activity.OUT
            if short < b - a and leaving:
                out += [Step(a, b - short, room, rest), Step(b - short, b, room, activity)]
            elif short < b - a:
                out += [Step(a, a + short, room, activity), Step(a + short, b, room, rest)]
            else:
                out.append(Step(a, b, room, activity))
        else:
            out.append(Step(a, b, room, activity))
    return merge_steps(out)


def merge_steps(steps: Sequence[Step]) -> list[Step]:
    """Adjacent steps in the same room doing the same thing, as one."""
    merged: list[Step] = []
    for s in steps:
        if merged and merged[-1].room == s.room and merged[-1].activity is s.activity:
            merged[-1] = Step(merged[-1].start_ms, s.end_ms, s.room, s.activity)
        else:
            merged.append(s)
    return merged


def _clip(steps: list[Step], start_ms: int) -> list[Step]:
    kept = [s for s in steps if s.end_ms > start_ms]
    if kept and kept[0].start_ms < start_ms:
        kept[0] = Step(start_ms, kept[0].end_ms, kept[0].room, kept[0].activity)
    return kept
