"""A simulation scenario: the homes, their devices and each resident's routine, as a YAML file per scenario.

The routine is a set of probability distributions, not a script, so that every simulated day differs the way a
real person's days do and the detectors learn a baseline with a realistic spread. Devices carry the friendly
names, rooms and roles of a home description (``docs/homes.md``): :func:`to_home_description` writes the very
file ``telecare homes import`` loads, so the gateway knows what the simulator publishes. Times of day are minutes
after local midnight in the home's timezone; a bedtime after midnight is written as more than 1440.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from sensors_sim.devices import KINDS_BY_KEY, ROLES

HALL, KITCHEN, LIVING_ROOM, BEDROOM, BATHROOM = "hall", "kitchen", "living room", "bedroom", "bathroom"
ROOMS: tuple[str, ...] = (HALL, KITCHEN, LIVING_ROOM, BEDROOM, BATHROOM)  # the routine walks these, by name
DAY_MIN = 24 * 60


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Normal(_Model):
    """A normal distribution in minutes: a time of day (after local midnight) or a duration."""

    mean: float = Field(ge=0, le=DAY_MIN + 6 * 60)
    sd: float = Field(ge=0, le=180)


class Window(_Model):
    """A span of the day (minutes after local midnight) in which something starts, uniformly."""

    start: float = Field(ge=0, le=DAY_MIN)
    end: float = Field(ge=0, le=DAY_MIN)

    @model_validator(mode="after")
    def _ordered(self) -> Window:
        if self.end <= self.start:
            raise ValueError(f"window end {self.end} must be after its start {self.start}")
        return self


class Sleep(_Model):
    """Getting up and going to bed; weekends (Saturday, Sunday) run later for most people, retired or not."""

    wake_weekday: Normal = Normal(mean=7 * 60, sd=25)
    wake_weekend: Normal = Normal(mean=7 * 60 + 50, sd=30)
    bed_weekday: Normal = Normal(mean=22 * 60 + 15, sd=25)
    bed_weekend: Normal = Normal(mean=22 * 60 + 45, sd=30)


class Meal(_Model):
    """A meal prepared in the kitchen: when it starts, how long it takes, and the appliances it touches."""

    window: Window
    duration_min: float = Field(gt=0, le=180)
    kettle_probability: float = Field(ge=0, le=1)
    fridge_opens: float = Field(ge=0, le=20, description="mean (Poisson) number of fridge openings; at least one")


class Meals(_Model):
    breakfast: Meal = Meal(window=Window(start=7 * 60, end=9 * 60 + 30), duration_min=15, kettle_probability=0.9,
                           fridge_opens=1.5)
    lunch: Meal = Meal(window=Window(start=12 * 60, end=13 * 60 + 30), duration_min=20, kettle_probability=0.6,
                       fridge_opens=2.0)
    dinner: Meal = Meal(window=Window(start=17 * 60, end=19 * 60), duration_min=35, kettle_probability=0.4,
                        fridge_opens=3.0)


class Bathroom(_Model):
    """Toilet visits as Poisson counts: by day (awake hours) and by night (out of bed, back to bed)."""

    day_rate: float = Field(5.0, ge=0, le=30)
    night_rate: float = Field(1.2, ge=0, le=10)
    duration_min: float = Field(4.0, gt=0, le=60)


class Naps(_Model):
    """An afternoon doze in the chair: still on the chair pad, hardly any motion."""

    probability: float = Field(0.5, ge=0, le=1)
    window: Window = Window(start=13 * 60 + 30, end=16 * 60)
    duration: Normal = Normal(mean=45, sd=15)


class Outings(_Model):
    """Time out of the house (shops, day centre): the front door opens, then nothing moves until the return."""

    days_per_week: float = Field(3.0, ge=0, le=7)
    window: Window = Window(start=9 * 60 + 30, end=14 * 60 + 30)
    duration: Normal = Normal(mean=120, sd=40)


class Visitors(_Model):
    """Visits (family, carers): the door is answered, and two people move where one used to."""

    per_week: float = Field(2.0, ge=0, le=50)
    window: Window = Window(start=10 * 60, end=18 * 60)
    duration: Normal = Normal(mean=60, sd=20)


class Routine(_Model):
    """One resident's habits. The defaults describe an older person living alone, mostly at home."""

    sleep: Sleep = Sleep()
    meals: Meals = Meals()
    bathroom: Bathroom = Bathroom()
    naps: Naps = Naps()
    outings: Outings = Outings()
    visitors: Visitors = Visitors()
    wanders_per_hour: float = Field(1.0, ge=0, le=20, description="short trips to another room while up")


class SimDevice(_Model):
    name: str = Field(min_length=1, max_length=128)
    kind: str
    room: str | None = None
    role: str | None = None
    ieee_address: str | None = None

    @model_validator(mode="after")
    def _known(self) -> SimDevice:
        if self.kind not in KINDS_BY_KEY:
            raise ValueError(f"unknown kind {self.kind!r}; valid kinds: {', '.join(sorted(KINDS_BY_KEY))}")
        if self.role is not None and self.role not in ROLES:
            raise ValueError(f"unknown role {self.role!r}; valid roles: {', '.join(sorted(ROLES))}")
        if self.room is not None and self.room not in ROOMS:
            raise ValueError(f"unknown room {self.room!r}; the simulator's rooms are {', '.join(ROOMS)}")
        return self


class SimHome(_Model):
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    name: str = Field(min_length=1, max_length=200)
    timezone: str = "Europe/London"
    resident: str = "Resident"
    devices: list[SimDevice]
    routine: Routine = Routine()

    @model_validator(mode="after")
    def _unique(self) -> SimHome:
        names = [d.name for d in self.devices]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"device names appear twice: {', '.join(duplicates)}")
        return self


class Scenario(_Model):
    name: str = "default"
    seed: int = 0
    days: int = Field(30, ge=1, le=3660)
    homes: list[SimHome] = Field(min_length=1)
    incidents: list[dict[str, Any]] = Field(default_factory=list, description="see sensors_sim.incidents")
    faults: list[dict[str, Any]] = Field(default_factory=list, description="see sensors_sim.faults")

    @model_validator(mode="after")
    def _incidents_valid(self) -> Scenario:
        from sensors_sim.faults import parse_faults  # both build on this module
        from sensors_sim.incidents import parse_incidents

        known = {h.id for h in self.homes}
        for event in [*parse_incidents(self.incidents), *parse_faults(self.faults)]:
            if event.home not in known:
                raise ValueError(f"{event.kind} names home {event.home!r}, not in this scenario")
        return self


def default_home(home_id: str = "sim-home-1", climate: Literal["per_room", "one"] = "per_room") -> SimHome:
    """A flat with the usual telecare kit: a PIR per room, doors, fridge, pads, kettle plug, pendant."""
    devices = [SimDevice(name=f"{room.replace(' ', '_')}_pir", kind="motion", room=room, role="room")
               for room in ROOMS]
    devices += [
        SimDevice(name="front_door", kind="contact", room=HALL, role="front_door"),
        SimDevice(name="back_door", kind="contact", room=KITCHEN, role="back_door"),
        SimDevice(name="fridge_door", kind="contact", room=KITCHEN, role="fridge"),
        SimDevice(name="bed_pad", kind="presence", room=BEDROOM, role="bed"),
        SimDevice(name="chair_pad", kind="presence", room=LIVING_ROOM, role="chair"),
        SimDevice(name="kettle_plug", kind="plug", room=KITCHEN, role="kettle"),
        SimDevice(name="pendant", kind="button", role="pendant"),
    ]
    climate_rooms = ROOMS if climate == "per_room" else (LIVING_ROOM,)
    devices += [SimDevice(name=f"{room.replace(' ', '_')}_climate", kind="climate", room=room)
                for room in climate_rooms]
    devices = [d.model_copy(update={"ieee_address": _ieee(home_id, d.name)}) for d in devices]
    return SimHome(id=home_id, name=f"Simulated home {home_id}", devices=devices)


def default_scenario() -> Scenario:
    return Scenario(homes=[default_home()])


def _ieee(home_id: str, name: str) -> str:
    """A stable made-up IEEE address, so that a re-run simulates the same hardware."""
    return "0x" + hashlib.sha256(f"{home_id}/{name}".encode()).hexdigest()[:16]


def parse_scenario(data: Any) -> Scenario:
    return Scenario.model_validate(data)


def load_scenario(path: Path | str) -> Scenario:
    return parse_scenario(yaml.safe_load(Path(path).read_text(encoding="utf-8")))


def to_home_description(home: SimHome) -> dict[str, Any]:
    """The home description (``docs/homes.md``) of one simulated home, as ``gateway.homes`` reads it."""
    devices = []
    for d in home.devices:
        entry: dict[str, Any] = {"name": d.name, "kind": d.kind}
        if d.room is not None:
            entry["room"] = d.room
        if d.role is not None:
            entry["role"] = d.role
        if d.ieee_address is not None:
            entry["ieee_address"] = d.ieee_address
        devices.append(entry)
    return {"version": 1, "homes": [{"id": home.id, "name": home.name, "timezone": home.timezone,
                                     "resident": {"name": home.resident}, "devices": devices}]}
