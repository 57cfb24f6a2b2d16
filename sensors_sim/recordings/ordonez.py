"""Reader for the Ordóñez, de Toledo and Sanchis recordings (UCI "ADLs Recognition Using Binary Sensors", users A
and B): ``OrdonezX_Sensors.txt`` rows ``Start time  End time  Location  Type  Place`` separated by one or more
tabs, times ``YYYY-MM-DD HH:MM:SS`` in local Spanish time (default ``tz`` Europe/Madrid).

Each row is an activation interval, read as two observations (``docs/recordings.md``): magnetic contacts open
(``False``) at the start, PIRs and pressure mats ``True``; the "Electric" appliance sensors become plugs drawing a
nominal power while on (the dataset records only on/off, not watts).
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from sensors_sim.events import Observation
from sensors_sim.recordings.homes import (
    RecordedDevice,
    Recording,
    SensorMap,
    check_unique_names,
    interval_observations,
    local_to_utc_ms,
    sort_by_time,
)
from sensors_sim.recordings.kasteren import RecordingFormatError

DEFAULT_TZ = "Europe/Madrid"

# Type column -> kind. A toilet flush sensor is a contact, as in the van Kasteren homes (docs/recordings.md).
TYPE_KINDS: dict[str, str] = {
    "Magnetic": "contact",
    "PIR": "motion",
    "Pressure": "presence",
    "Flush": "contact",
    "Electric": "plug",
}
# Place column -> room.
PLACE_ROOMS: dict[str, str] = {
    "Bathroom": "bathroom",
    "Kitchen": "kitchen",
    "Living": "living room",
    "Bedroom": "bedroom",
    "Entrance": "entrance",
}
# Nominal power of the "Electric" sensors' appliances while on; anything else with that type gets the default.
ELECTRIC_WATTS: dict[str, float] = {"Microwave": 800.0, "Toaster": 800.0}
DEFAULT_ELECTRIC_WATTS = 500.0

# (Location, Type, Place) -> device, for both homes. Users A and B share the format and most sensors; B's PIRs
# "Door" watch the doorways of the living room, kitchen and bedroom.
SENSORS: dict[tuple[str, str, str], SensorMap] = {
    ("Bed", "Pressure", "Bedroom"): SensorMap("bed_mat", "presence", "bedroom", "bed"),
    ("Seat", "Pressure", "Living"): SensorMap("seat_mat", "presence", "living room", "chair"),
    ("Basin", "PIR", "Bathroom"): SensorMap("basin_motion", "motion", "bathroom", "room"),
    ("Shower", "PIR", "Bathroom"): SensorMap("shower_motion", "motion", "bathroom", "room"),
    ("Cooktop", "PIR", "Kitchen"): SensorMap("cooktop_motion", "motion", "kitchen", "room"),
    ("Door", "PIR", "Living"): SensorMap("living_room_door_motion", "motion", "living room", "room"),
    ("Door", "PIR", "Kitchen"): SensorMap("kitchen_door_motion", "motion", "kitchen", "room"),
    ("Door", "PIR", "Bedroom"): SensorMap("bedroom_door_motion", "motion", "bedroom", "room"),
    ("Door", "PIR", "Bathroom"): SensorMap("bathroom_door_motion", "motion", "bathroom", "room"),
    ("Maindoor", "Magnetic", "Entrance"): SensorMap("front_door", "contact", "entrance", "front_door"),
    ("Fridge", "Magnetic", "Kitchen"): SensorMap("fridge_door", "contact", "kitchen", "fridge"),
    ("Cupboard", "Magnetic", "Kitchen"): SensorMap("kitchen_cupboard", "contact", "kitchen"),
    ("Cabinet", "Magnetic", "Bathroom"): SensorMap("bathroom_cabinet", "contact", "bathroom"),
    ("Toilet", "Flush", "Bathroom"): SensorMap("toilet_flush", "contact", "bathroom"),
    ("Microwave", "Electric", "Kitchen"): SensorMap("microwave_plug", "plug", "kitchen",
                                                    watts=ELECTRIC_WATTS["Microwave"]),
    ("Toaster", "Electric", "Kitchen"): SensorMap("toaster_plug", "plug", "kitchen", watts=ELECTRIC_WATTS["Toaster"]),
}
check_unique_names(SENSORS.values(), "Ordóñez")
HOME_NAMES = {"a": "Ordóñez user A (4-room house, Spain)", "b": "Ordóñez user B (5-room house, Spain)"}


def sensor_map(location: str, type_: str, place: str) -> SensorMap:
    """The device for a (Location, Type, Place) sensor: from :data:`SENSORS`, else derived from the columns."""
    found = SENSORS.get((location, type_, place))
    if found is not None:
        return found
    kind = TYPE_KINDS.get(type_)
    if kind is None:
        raise ValueError(f"unknown sensor type {type_!r}; known: {', '.join(TYPE_KINDS)}")
    room = PLACE_ROOMS.get(place, place.lower() or None)
    slug = "_".join(re.findall(r"[a-z0-9]+", f"{place} {location} {type_}".lower()))
    watts = ELECTRIC_WATTS.get(location, DEFAULT_ELECTRIC_WATTS) if kind == "plug" else None
    return SensorMap(slug, kind, room, watts=watts)


def read_ordonez(path: str | Path, *, home: str | None = None, tz: str = DEFAULT_TZ) -> Recording:
    """Read ``OrdonezA_Sensors.txt`` or ``OrdonezB_Sensors.txt`` (two header lines, then one row per activation).

    ``home`` defaults to ``ordonez-a`` / ``ordonez-b`` from the file name. Rows out of time order (user B has
    four) are fine: the observations are sorted by time, stably.
    """
    path = Path(path)
    found = re.match(r"ordonez([a-z])_", path.name.lower())
    letter = found.group(1) if found else None
    zone = ZoneInfo(tz)
    maps: dict[tuple[str, str, str], SensorMap] = {}
    counts: Counter[tuple[str, str, str]] = Counter()
    observations: list[Observation] = []
    home_id = home or (f"ordonez-{letter}" if letter else "ordonez")
    rows = 0
    with open(path, encoding="latin-1") as f:
        for number, line in enumerate(f, 1):
            fields = [x.strip() for x in line.split("\t") if x.strip()]
            if not fields or (number <= 2 and (fields[0].startswith("Start time") or fields[0].startswith("---"))):
                continue
            if len(fields) != 5:
                raise RecordingFormatError(str(path), number, f"expected 5 tab-separated fields (start, end, "
                                           f"location, type, place), found {len(fields)}: {line.strip()!r}")
            start_text, end_text, location, type_, place = fields
            try:
                start, end = datetime.fromisoformat(start_text), datetime.fromisoformat(end_text)
                key = (location, type_, place)
                sensor = maps.get(key) or maps.setdefault(key, sensor_map(*key))
            except ValueError as e:
                raise RecordingFormatError(str(path), number, str(e)) from None
            if start.tzinfo is not None or end.tzinfo is not None:
                raise RecordingFormatError(str(path), number, "expected local times without an offset")
            if end < start:
                raise RecordingFormatError(str(path), number, "the activation ends before it starts")
            counts[key] += 1
            rows += 1
            observations.extend(interval_observations(home_id, sensor, local_to_utc_ms(start, zone),
                                                      local_to_utc_ms(end, zone)))
    check_unique_names(maps.values(), str(path))
    devices = [RecordedDevice("/".join(key), m, counts[key]) for key, m in sorted(maps.items())]
    name = HOME_NAMES.get(letter or "", f"Ordóñez ({path.name})")
    return Recording(home_id, name, tz, f"Ordóñez {path.name}", devices, rows, sort_by_time(observations))
