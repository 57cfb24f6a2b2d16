"""Incidents a scenario can inject into a home, and the ground truth of what was injected.

An incident is a pydantic model, so it can sit in a scenario file: ``kind``, the ``home`` it happens in, when it
starts (``day``: days after the first simulated day, counted in the home's local dates; ``at``: minutes after local
midnight, as everywhere in the scenario) and its parameters. Incidents change the resident's timeline (``list[Step]``
from :func:`sensors_sim.routine.simulate_days`) *before* the sensors see it, so that the hardware model (PIR blind
time and timeout, heartbeats ...) applies to the changed behaviour exactly as to the normal one. Two are not about
the resident's movements: a pendant press is handed to :func:`sensors_sim.sensors.observe` as ``presses``, and a cold
home rewrites the climate observations after ``observe``.

Use::

    plan = apply_incidents(home, steps, incidents, rng)
    observations = plan.finish(observe(home, plan.steps, rng, presses=plan.presses))
    write_truth_jsonl(plan.truth, "truth.jsonl")

or :func:`simulate_with_incidents`, which does the same. Pure: the random generator is passed in, times are
simulated epoch milliseconds, and nothing reads a clock.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, TextIO
from zoneinfo import ZoneInfo

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from sensors_sim.events import Observation
from sensors_sim.routine import Activity, Step, merge_steps, simulate_days
from sensors_sim.scenario import BEDROOM, DAY_MIN, HALL, KITCHEN, LIVING_ROOM, ROOMS, SimHome
from sensors_sim.sensors import Hardware, iso_ms, observe

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
_MEAL = frozenset({Activity.COOKING, Activity.KETTLE, Activity.FRIDGE})
# The resident lies still: routine.py has no "lying" activity, and OUT is the one the sensors see nothing of
# (no motion, no pad, no door) wherever the step's room is. The step keeps the room the resident lies in.
_STILL = Activity.OUT

Room = Literal["hall", "kitchen", "living room", "bedroom", "bathroom"]
assert set(Room.__args__) == set(ROOMS)  # type: ignore[attr-defined]


class _Incident(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    home: str = Field(min_length=1)
    day: int = Field(0, ge=0, le=3660, description="days after the first simulated day (local dates)")


class Fall(_Incident):
    """The resident falls at ``at`` and lies still in ``room`` (default: where they are) for ``duration_min``."""

    kind: Literal["fall"] = "fall"
    at: float = Field(ge=0, lt=DAY_MIN, description="minutes after local midnight")
    room: Room | None = None
    duration_min: float | None = Field(None, gt=0, description="default: until the end of the simulation")
    twitches_per_hour: float = Field(0.0, ge=0, le=60, description="small movements the room's PIR may catch")


class LongLie(_Incident):
    """Not up by the usual time: the resident stays in bed ``hours`` past the moment they would have got up."""

    kind: Literal["long_lie"] = "long_lie"
    hours: float = Field(3.0, gt=0, le=24)


class Illness(_Incident):
    """Activity declines from ``day`` on, reaching ``severity`` after ``ramp_days`` and staying there.

    At severity s: a minute or more of moving about is dropped with probability s (the resident stays in the chair),
    time in the chair becomes dozing with probability s, meals are skipped with probability s, the resident gets
    up up to s x 150 minutes later and goes to bed up to s x 90 minutes earlier.
    """

    kind: Literal["illness"] = "illness"
    ramp_days: float = Field(4.0, gt=0, le=60)
    severity: float = Field(0.7, gt=0, le=1)


class NightWandering(_Incident):
    """The front door opens in the small hours: out for ``out_min`` minutes, or (0) just standing at the door."""

    kind: Literal["night_wandering"] = "night_wandering"
    at: float = Field(150.0, ge=0, lt=DAY_MIN, description="when the door opens, minutes after local midnight")
    out_min: float = Field(10.0, ge=0, le=12 * 60)


class NoMeals(_Incident):
    """Fridge and kettle untouched all (local) day: every meal is skipped; the resident sits instead."""

    kind: Literal["no_meals"] = "no_meals"


class ColdHome(_Incident):
    """Room temperatures fall to ``to_c`` over ``fall_hours`` from ``at`` (heating off), and rise back after."""

    kind: Literal["cold_home"] = "cold_home"
    at: float = Field(0.0, ge=0, lt=DAY_MIN)
    to_c: float = Field(14.0, ge=-10, le=30)
    fall_hours: float = Field(6.0, gt=0, le=72)
    duration_hours: float | None = Field(None, gt=0, description="until the heating is back; default: never")
    rooms: list[Room] | None = Field(None, description="default: every room")


class Pendant(_Incident):
    """The pendant is pressed ``presses`` times, ``every_s`` seconds apart, from ``at``."""

    kind: Literal["pendant"] = "pendant"
    at: float = Field(ge=0, lt=DAY_MIN)
    presses: int = Field(1, ge=1, le=20)
    every_s: float = Field(20.0, gt=0, le=3600)


Incident = Annotated[Fall | LongLie | Illness | NightWandering | NoMeals | ColdHome | Pendant,
                     Field(discriminator="kind")]
_INCIDENTS: TypeAdapter[list[Incident]] = TypeAdapter(list[Incident])


def parse_incidents(data: Any) -> list[Incident]:
    """A scenario's ``incidents:`` list (dicts from YAML) as models; raises pydantic's ValidationError."""
    return _INCIDENTS.validate_python(data or [])


# ------------------------------------------------------------------------------------------------------------
# ground truth


@dataclass(frozen=True, slots=True)
class GroundTruth:
    """What was injected: an incident or a fault, from ``start_ms`` to ``end_ms`` (None: to the end)."""

    home: str
    kind: str
    start_ms: int
    end_ms: int | None
    room: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"home": self.home, "kind": self.kind, "start": iso_ms(self.start_ms), "start_ms": self.start_ms,
                "end": None if self.end_ms is None else iso_ms(self.end_ms), "end_ms": self.end_ms,
                "room": self.room, "details": self.details}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GroundTruth:
        return cls(home=data["home"], kind=data["kind"], start_ms=int(data["start_ms"]),
                   end_ms=None if data.get("end_ms") is None else int(data["end_ms"]), room=data.get("room"),
                   details=dict(data.get("details") or {}))


def write_truth_jsonl(records: Iterable[GroundTruth], file: TextIO | Path | str) -> None:
    """One JSON object a line: home, kind, start/end (ISO 8601 UTC) with start_ms/end_ms, room, details."""
    lines = "".join(json.dumps(r.to_json(), ensure_ascii=False, sort_keys=True) + "\n" for r in records)
    if isinstance(file, Path | str):
        Path(file).write_text(lines, encoding="utf-8")
    else:
        file.write(lines)


def read_truth_jsonl(file: TextIO | Path | str) -> list[GroundTruth]:
    text = Path(file).read_text(encoding="utf-8") if isinstance(file, Path | str) else file.read()
    return [GroundTruth.from_json(json.loads(line)) for line in text.splitlines() if line.strip()]


# ------------------------------------------------------------------------------------------------------------
# applying incidents


@dataclass(frozen=True, slots=True)
class _Chill:
    start_ms: int
    end_ms: int | None
    to_c: float
    fall_ms: int
    rooms: frozenset[str] | None


@dataclass(frozen=True, slots=True)
class IncidentPlan:
    """A home's timeline with its incidents applied, the pendant presses, the ground truth, and what is left to do
    to the observations (:meth:`finish`)."""

    steps: list[Step]
    presses: list[int]
    truth: list[GroundTruth]
    chills: tuple[_Chill, ...] = ()

    def finish(self, observations: Sequence[Observation]) -> list[Observation]:
        """The observations of :attr:`steps` with what happens after the sensors applied (a cold home)."""
        return [_chill(o, self.chills) if o.kind == "climate" and self.chills else o for o in observations]


def apply_after(observations: Sequence[Observation], plan: IncidentPlan) -> list[Observation]:
    return plan.finish(observations)


def local_ms(home: SimHome, first_ms: int, day: int, minutes: float) -> int:
    """Epoch ms of ``minutes`` after local midnight, ``day`` local dates after the one ``first_ms`` falls in."""
    zone = ZoneInfo(home.timezone)
    date = datetime.fromtimestamp(first_ms / 1000, zone).date() + timedelta(days=day)
    return int((datetime.combine(date, time(), zone) + timedelta(minutes=minutes)).timestamp() * 1000)


def apply_incidents(home: SimHome, steps: Sequence[Step], incidents: Iterable[Incident],
                    rng: np.random.Generator) -> IncidentPlan:
    """Apply the incidents of ``home`` (those of other homes are ignored) to its whole timeline, in order of start.

    Days are counted from the local date of the timeline's first step. An incident that starts outside the
    timeline raises ValueError, so a scenario does not silently lose what it was written to test. To simulate a
    day at a time, use :class:`IncidentRunner`.
    """
    if not steps:
        raise ValueError("an empty timeline has no room for incidents")
    return IncidentRunner(home, incidents, steps[0].start_ms).apply(steps, rng, strict=True)


class IncidentRunner:
    """A home's incidents applied to its timeline a chunk (say a day) at a time, chunks in order.

    ``first_ms``: the start of the whole simulation, from which days are counted. Each chunk gets what of each
    incident falls in it (a fall lasting past midnight goes on in the next day's chunk, an illness keeps its
    ramp); an incident's ground truth comes with the chunk its start falls in. The runner remembers what one chunk
    decides for the next (the room a fall happened in).
    """

    def __init__(self, home: SimHome, incidents: Iterable[Incident], first_ms: int) -> None:
        self.home = home
        self.first_ms = first_ms
        mine = [i for i in incidents if i.home == home.id]
        self._incidents = sorted(mine, key=lambda i: self._start(i))
        self._fall_rooms: dict[int, str | None] = {}

    def _start(self, inc: Incident) -> int:
        return local_ms(self.home, self.first_ms, inc.day, getattr(inc, "at", 0.0))

    def apply(self, steps: Sequence[Step], rng: np.random.Generator, strict: bool = False) -> IncidentPlan:
        """The chunk ``steps`` with the incidents applied. ``strict``: an incident starting outside it is an error."""
        timeline = list(steps)
        if not timeline:
            return IncidentPlan([], [], [])
        home, c0, c1 = self.home, timeline[0].start_ms, timeline[-1].end_ms
        presses: list[int] = []
        truth: list[GroundTruth] = []
        chills: list[_Chill] = []
        for index, inc in enumerate(self._incidents):
            start = self._start(inc)
            if strict and not c0 <= start < c1:
                raise ValueError(f"{inc.kind} on day {inc.day} of home {home.id} is outside the simulated span")
            if start >= c1:
                continue
            record: GroundTruth | None = None
            if isinstance(inc, Fall):
                if index not in self._fall_rooms:
                    self._fall_rooms[index] = inc.room if inc.room is not None else _at(timeline, start).room
                timeline, record = _fall(home.id, inc, timeline, start, self._fall_rooms[index], rng)
            elif isinstance(inc, LongLie):
                timeline, record = _long_lie(home, inc, timeline, self.first_ms, strict)
            elif isinstance(inc, Illness):
                timeline, record = _illness(home, inc, timeline, self.first_ms, start, rng)
            elif isinstance(inc, NightWandering):
                timeline, record = _night_wandering(home.id, inc, timeline, start)
            elif isinstance(inc, NoMeals):
                end = local_ms(home, self.first_ms, inc.day + 1, 0)
                timeline = merge_steps([Step(s.start_ms, s.end_ms, LIVING_ROOM, Activity.SEATED)
                                   if s.activity in _MEAL and start <= s.start_ms < end else s for s in timeline])
                record = GroundTruth(home.id, inc.kind, start, end, KITCHEN)
            elif isinstance(inc, ColdHome):
                chill_end = None if inc.duration_hours is None else start + round(inc.duration_hours * HOUR_MS)
                rooms = None if inc.rooms is None else frozenset(inc.rooms)
                chills.append(_Chill(start, chill_end, inc.to_c, round(inc.fall_hours * HOUR_MS), rooms))
                record = GroundTruth(home.id, inc.kind, start, chill_end, None,
                                     {"to_c": inc.to_c, "fall_hours": inc.fall_hours,
                                      "rooms": None if inc.rooms is None else list(inc.rooms)})
            else:
                assert isinstance(inc, Pendant)
                times = [start + round(k * inc.every_s * 1000) for k in range(inc.presses)]
                presses += [t for t in times if c0 <= t < c1]
                record = GroundTruth(home.id, inc.kind, start, times[-1], _at(timeline, start).room,
                                     {"presses": inc.presses})
            if record is not None and c0 <= record.start_ms < c1:
                truth.append(record)
        return IncidentPlan(timeline, sorted(presses), truth, tuple(chills))


def simulate_with_incidents(home: SimHome, start_ms: int, days: int, incidents: Iterable[Incident],
                            rng: np.random.Generator,
                            hardware: Hardware | None = None) -> tuple[list[Observation], list[GroundTruth]]:
    """simulate_days, apply_incidents, observe, finish: a home's observations and the incidents' ground truth."""
    plan = apply_incidents(home, simulate_days(home, home.routine, start_ms, days, rng), incidents, rng)
    return plan.finish(observe(home, plan.steps, rng, hardware, presses=plan.presses)), plan.truth


# ------------------------------------------------------------------------------------------------------------
# the incidents, one by one


def _fall(home_id: str, inc: Fall, steps: list[Step], start: int, room: str | None,
          rng: np.random.Generator) -> tuple[list[Step], GroundTruth]:
    end = None if inc.duration_min is None else start + round(inc.duration_min * MINUTE_MS)
    record = GroundTruth(home_id, inc.kind, start, end, room,
                         {"duration_min": inc.duration_min, "twitches_per_hour": inc.twitches_per_hour})
    a = max(start, steps[0].start_ms)
    b = steps[-1].end_ms if end is None else min(end, steps[-1].end_ms)
    if a >= b:
        return steps, record
    count = rng.poisson(inc.twitches_per_hour * (b - a) / HOUR_MS) if room is not None else 0
    lying: list[Step] = []
    t = a
    for twitch in sorted(rng.integers(a + 1000, max(a + 1001, b - 1000), size=count).tolist()):
        if twitch < t + 1000 or twitch + 1000 > b:
            continue
        lying += [Step(t, twitch, room, _STILL), Step(twitch, twitch + 1000, room, Activity.MOVING)]
        t = twitch + 1000
    lying.append(Step(t, b, room, _STILL))
    return _overwrite(steps, a, b, lying), record


def _long_lie(home: SimHome, inc: LongLie, steps: list[Step], first: int,
              strict: bool) -> tuple[list[Step], GroundTruth | None]:
    midnight = local_ms(home, first, inc.day, 0)
    wake = _wake(steps, midnight)
    if wake is None and not strict:
        return steps, None  # that morning is in another chunk
    if wake is None:
        raise ValueError(f"long_lie on day {inc.day} of home {home.id}: no getting up that morning to delay")
    end = min(steps[-1].end_ms, wake + round(inc.hours * HOUR_MS))
    record = GroundTruth(home.id, inc.kind, wake, end, BEDROOM, {"hours": inc.hours})
    return _overwrite(steps, wake, end, [Step(wake, end, BEDROOM, Activity.ASLEEP)]), record


def _illness(home: SimHome, inc: Illness, steps: list[Step], first: int, start: int,
             rng: np.random.Generator) -> tuple[list[Step], GroundTruth]:
    ramp = inc.ramp_days * DAY_MS

    def level(t: int) -> float:
        return 0.0 if t < start else inc.severity * min(1.0, (t - start) / ramp)

    out: list[Step] = []
    skipping = False  # inside a skipped meal
    for i, s in enumerate(steps):
        f = level(s.start_ms)
        if s.activity in _MEAL:
            if i == 0 or steps[i - 1].activity not in _MEAL:
                skipping = f > 0 and rng.random() < f
            if skipping:
                s = Step(s.start_ms, s.end_ms, LIVING_ROOM, Activity.SEATED)
        elif f > 0 and s.activity is Activity.MOVING and s.end_ms - s.start_ms >= MINUTE_MS:
            if rng.random() < f:
                s = Step(s.start_ms, s.end_ms, LIVING_ROOM, Activity.SEATED)
        elif f > 0 and s.activity is Activity.SEATED and rng.random() < f:
            s = Step(s.start_ms, s.end_ms, s.room, Activity.NAPPING)
        out.append(s)
    out = merge_steps(out)
    last = out[-1].end_ms
    day = inc.day
    while (midnight := local_ms(home, first, day, 0)) < last:
        f = level(midnight + DAY_MS // 2)
        wake = _wake(out, midnight)
        if f > 0 and wake is not None:
            later = min(last, wake + round(f * 150 * MINUTE_MS))
            out = _overwrite(out, wake, later, [Step(wake, later, BEDROOM, Activity.ASLEEP)])
        bed = _bedtime(out, midnight)
        if f > 0 and bed is not None:
            earlier = max(midnight + 12 * HOUR_MS, bed - round(f * 90 * MINUTE_MS))
            if earlier < bed:
                out = _overwrite(out, earlier, bed, [Step(earlier, bed, BEDROOM, Activity.ASLEEP)])
        day += 1
    record = GroundTruth(home.id, inc.kind, start, None, None,
                         {"ramp_days": inc.ramp_days, "severity": inc.severity})
    return out, record


def _night_wandering(home_id: str, inc: NightWandering, steps: list[Step],
                     start: int) -> tuple[list[Step], GroundTruth]:
    door = 20_000
    if inc.out_min > 0:  # out through the door, back through it
        back = start + door + round(inc.out_min * MINUTE_MS)
        closed = back + door
        parts = [Step(start, start + door, HALL, Activity.DOOR), Step(start + door, back, None, Activity.OUT),
                 Step(back, closed, HALL, Activity.DOOR)]
    else:  # stands in the open doorway for a minute
        closed = start + 3 * door
        parts = [Step(start, closed, HALL, Activity.DOOR)]
    wander = [Step(start - 2 * MINUTE_MS, start - MINUTE_MS, BEDROOM, Activity.MOVING),
              Step(start - MINUTE_MS, start, HALL, Activity.MOVING)]
    wander += parts
    wander += [Step(closed, closed + MINUTE_MS, HALL, Activity.MOVING),
               Step(closed + MINUTE_MS, closed + 2 * MINUTE_MS, BEDROOM, Activity.MOVING)]
    record = GroundTruth(home_id, inc.kind, start, closed, HALL, {"out_min": inc.out_min})
    a, b = max(steps[0].start_ms, wander[0].start_ms), min(steps[-1].end_ms, wander[-1].end_ms)
    if a >= b:  # all in another chunk
        return steps, record
    wander = [Step(max(a, w.start_ms), min(b, w.end_ms), w.room, w.activity) for w in wander
              if w.end_ms > a and w.start_ms < b]
    return _overwrite(steps, a, b, wander), record


def _chill(o: Observation, chills: tuple[_Chill, ...]) -> Observation:
    value = float(o.value)  # type: ignore[arg-type]
    for c in chills:
        if o.time_ms < c.start_ms or (c.rooms is not None and o.room not in c.rooms):
            continue
        depth = min(1.0, (o.time_ms - c.start_ms) / c.fall_ms)  # 0: heating on, 1: fully cold
        if c.end_ms is not None and o.time_ms >= c.end_ms:
            depth = max(0.0, min(1.0, (c.end_ms - c.start_ms) / c.fall_ms) - (o.time_ms - c.end_ms) / c.fall_ms)
        # towards to_c, keeping a fifth of the reading's own wiggle around the room's usual level
        value = value + depth * (c.to_c - value) + depth * 0.2 * (value - 19.5)
    return Observation(o.time_ms, o.home, o.device, o.kind, round(value, 1), o.room, o.role)


# ------------------------------------------------------------------------------------------------------------
# timeline surgery


def _at(steps: Sequence[Step], t: int) -> Step:
    for s in steps:
        if s.start_ms <= t < s.end_ms:
            return s
    return steps[-1]


def _wake(steps: Sequence[Step], midnight: int) -> int | None:
    """Getting up that morning: the end of the last sleep that ends between midnight and 14:00."""
    ends = [s.end_ms for s in steps if s.activity is Activity.ASLEEP and midnight < s.end_ms < midnight + 14 * HOUR_MS
            and s.end_ms < steps[-1].end_ms]
    return max(ends) if ends else None


def _bedtime(steps: Sequence[Step], midnight: int) -> int | None:
    """Going to bed that evening: the start of the first sleep that starts between 17:00 and 04:00."""
    starts = [s.start_ms for s in steps if s.activity is Activity.ASLEEP
              and midnight + 17 * HOUR_MS <= s.start_ms < midnight + 28 * HOUR_MS]
    return min(starts) if starts else None


def _overwrite(steps: Sequence[Step], a: int, b: int, new: list[Step]) -> list[Step]:
    """The timeline with [a, b) replaced by ``new`` (contiguous steps covering exactly [a, b))."""
    out: list[Step] = []
    for s in steps:
        if s.end_ms <= a:
            out.append(s)
        elif s.start_ms < a:
            out.append(Step(s.start_ms, a, s.room, s.activity))
    out += new
    for s in steps:
        if s.start_ms >= b:
            out.append(s)
        elif s.end_ms > b:
            out.append(Step(b, s.end_ms, s.room, s.activity))
    return merge_steps([s for s in out if s.end_ms > s.start_ms])


