"""What every recording reader returns: a :class:`Recording`, the home's devices and its observations, and the
home description (``docs/homes.md``) that ``telecare homes import`` loads so a replayed home has rooms and roles.

Also the pieces the readers share: a sensor mapping row (:class:`SensorMap`), turning an activation interval
into two observations, and local wall-clock time to UTC.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from operator import attrgetter
from typing import Any
from zoneinfo import ZoneInfo

from sensors_sim.devices import KINDS_BY_KEY, ROLES
from sensors_sim.events import Observation, Value

_EPOCH_NAIVE = datetime(1970, 1, 1)
_ONE_MS = timedelta(milliseconds=1)

# What an activation (a sensor "firing") means for each kind, and its end. Reed switches fire when the door or
# lid opens (the magnet moves away), so an activation is contact OPEN (False, zigbee2mqtt's contact: false).
ACTIVE_VALUES: dict[str, tuple[Value, Value]] = {
    "contact": (False, True),
    "motion": (True, False),
    "presence": (True, False),
    "vibration": (True, False),
    "leak": (True, False),
}


@dataclass(frozen=True, slots=True)
class SensorMap:
    """How one recorded sensor appears as a contract device (a row of a reader's mapping table)."""

    device: str  # the friendly name it gets
    kind: str  # a key of sensors_sim.devices.KINDS_BY_KEY
    room: str | None = None
    role: str | None = None
    watts: float | None = None  # plug kind only: the nominal power while the appliance is on

    def __post_init__(self) -> None:
        if self.kind not in KINDS_BY_KEY:
            raise ValueError(f"{self.device}: unknown kind {self.kind!r}")
        if self.role is not None and self.role not in ROLES:
            raise ValueError(f"{self.device}: unknown role {self.role!r}")
        if (self.kind == "plug") != (self.watts is not None):
            raise ValueError(f"{self.device}: a plug needs nominal watts, and only a plug has them")
        if self.kind not in ACTIVE_VALUES and self.kind != "plug":
            raise ValueError(f"{self.device}: kind {self.kind!r} has no on/off activation")

    @property
    def active(self) -> tuple[Value, Value]:
        """The values at the start and at the end of an activation."""
        if self.kind == "plug":
            return float(self.watts or 0.0), 0.0
        return ACTIVE_VALUES[self.kind]


@dataclass(frozen=True, slots=True)
class RecordedDevice:
    """A device of a recorded home: its mapping and the sensor it came from."""

    sensor: str  # the sensor as the dataset names it (id and name)
    map: SensorMap
    activations: int = 0


@dataclass
class Recording:
    """A real recording read into the contract: iterate it for its observations, in time order."""

    home: str
    name: str  # a display name for the home description
    timezone: str  # the home's IANA timezone (the recording's local time)
    dataset: str  # which dataset and file
    devices: list[RecordedDevice]
    activations: int  # intervals read (rows of the file)
    observations: list[Observation] = field(repr=False)

    def __iter__(self) -> Iterator[Observation]:
        return iter(self.observations)

    def __len__(self) -> int:
        return len(self.observations)

    def home_description(self) -> dict[str, Any]:
        """This home as one entry of a description file's ``homes:`` list."""
        devices = []
        for d in self.devices:
            spec: dict[str, Any] = {"name": d.map.device}
            if d.map.room is not None:
                spec["room"] = d.map.room
            if d.map.role is not None:
                spec["role"] = d.map.role
            spec["kind"] = d.map.kind
            devices.append(spec)
        return {"id": self.home, "name": self.name, "timezone": self.timezone, "devices": devices}

    def description(self) -> dict[str, Any]:
        """A whole description file for this home (``gateway.homes.parse_description`` accepts it)."""
        return description(self)


def description(*recordings: Recording) -> dict[str, Any]:
    """One description file for several recorded homes."""
    return {"version": 1, "homes": [r.home_description() for r in recordings]}


def local_to_utc_ms(wall: datetime, tz: ZoneInfo) -> int:
    """Epoch milliseconds UTC of a naive local wall-clock time in ``tz``.

    An ambiguous time (the repeated hour in autumn) is taken as its first occurrence (summer time); a time that
    does not exist (the skipped hour in spring) is taken with the offset before the change, i.e. an hour later
    in winter time, as :mod:`zoneinfo` does with ``fold=0``.
    """
    offset = wall.replace(tzinfo=tz).utcoffset()
    assert offset is not None
    return (wall - _EPOCH_NAIVE - offset) // _ONE_MS


def interval_observations(home: str, sensor: SensorMap, start_ms: int, end_ms: int) -> tuple[Observation, ...]:
    """An activation interval as two observations: activated at its start, deactivated at its end."""
    on, off = sensor.active
    return (Observation(start_ms, home, sensor.device, sensor.kind, on, sensor.room, sensor.role),
            Observation(end_ms, home, sensor.device, sensor.kind, off, sensor.room, sensor.role))


def sort_by_time(observations: Iterable[Observation]) -> list[Observation]:
    """A stable sort by event time: at the same millisecond, observations keep the order they were made in."""
    return sorted(observations, key=attrgetter("time_ms"))


def check_unique_names(maps: Iterable[SensorMap], dataset: str) -> None:
    names = [m.device for m in maps]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"{dataset}: mapping gives several sensors the device name(s) {', '.join(twice)}")
