"""Readers for T.L.M. van Kasteren's recordings: the 2008 text release of house A and the 2010 houses A, B and C
as re-encoded by the "TL" project (``docs/recordings.md``).

Each sensor row is an activation interval. An activation becomes two observations: activated at its start and
deactivated at its end. A reed switch fires while its door, lid or cupboard is OPEN, so a contact is ``False``
(open) at the start and ``True`` (closed) at the end; a PIR or pressure mat is ``True`` then ``False``.
Times are local Dutch wall-clock time without an offset: give ``tz`` (default Europe/Amsterdam).
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import datetime, timedelta
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

DEFAULT_TZ = "Europe/Amsterdam"

# Mapping tables: the dataset's sensor name (normalised: lower case, letters and digits only) -> the device.
# Doors between the hall and a room are placed in the room they lead to; the front door in the hall. A toilet
# flush (a float switch in the cistern) is a contact: its hardware is a reed/float switch, wired to a door
# contact in a zigbee home, and "activated" means the float dropped (contact open) while the cistern refills.
# Mercury tilt switches ("kwik") on drawers and lids are contacts too (open while tilted open).
HOUSE_A: dict[str, SensorMap] = {
    "microwave": SensorMap("microwave_door", "contact", "kitchen"),
    "halltoiletdoor": SensorMap("hall_toilet_door", "contact", "toilet"),
    "hallbathroomdoor": SensorMap("hall_bathroom_door", "contact", "bathroom"),
    "cupscupboard": SensorMap("cups_cupboard", "contact", "kitchen"),
    "fridge": SensorMap("fridge_door", "contact", "kitchen", "fridge"),
    "platescupboard": SensorMap("plates_cupboard", "contact", "kitchen"),
    "frontdoor": SensorMap("front_door", "contact", "hall", "front_door"),
    "dishwasher": SensorMap("dishwasher_door", "contact", "kitchen"),
    "toiletflush": SensorMap("toilet_flush", "contact", "toilet"),
    "freezer": SensorMap("freezer_door", "contact", "kitchen"),
    "panscupboard": SensorMap("pans_cupboard", "contact", "kitchen"),
    "washingmachine": SensorMap("washing_machine_door", "contact"),
    "groceriescupboard": SensorMap("groceries_cupboard", "contact", "kitchen"),
    "hallbedroomdoor": SensorMap("hall_bedroom_door", "contact", "bedroom"),
}
HOUSE_B: dict[str, SensorMap] = {
    "toiletdoor": SensorMap("toilet_door", "contact", "toilet"),
    "fridge": SensorMap("fridge_door", "contact", "kitchen", "fridge"),
    "cupboardgroceries": SensorMap("groceries_cupboard", "contact", "kitchen"),
    "toiletflush": SensorMap("toilet_flush", "contact", "toilet"),
    "frontdoor": SensorMap("front_door", "contact", "hall", "front_door"),
    "cupboardplates": SensorMap("plates_cupboard", "contact", "kitchen"),
    "bedroomdoor": SensorMap("bedroom_door", "contact", "bedroom"),
    "pressbedrechts": SensorMap("bed_mat_right", "presence", "bedroom", "bed"),
    "pressbedlinks": SensorMap("bed_mat_left", "presence", "bedroom", "bed"),
    "kwikcutlarydrawer": SensorMap("cutlery_drawer", "contact", "kitchen"),
    "kwikstovelid": SensorMap("stove_lid", "contact", "kitchen"),
    "pirslaapkamer": SensorMap("bedroom_motion", "motion", "bedroom", "room"),
    "kwikdresser": SensorMap("dresser", "contact"),
    "pirbadkamer": SensorMap("bathroom_motion", "motion", "bathroom", "room"),
    "gootsteenfloat": SensorMap("sink_float", "contact", "kitchen"),
    "toaster": SensorMap("toaster", "contact", "kitchen"),
    "magnetron": SensorMap("microwave_door", "contact", "kitchen"),
    "pirkeuken": SensorMap("kitchen_motion", "motion", "kitchen", "room"),
}
HOUSE_C: dict[str, SensorMap] = {
    "matbedrightpressuremat": SensorMap("bed_mat_right", "presence", "bedroom", "bed"),
    "mattcouchlivingroom": SensorMap("couch_mat", "presence", "living room", "chair"),
    "freezerdrove": SensorMap("freezer_door", "contact", "kitchen"),
    "toiletflushtopflush": SensorMap("toilet_flush_top", "contact"),
    "toiletflushbottomflush": SensorMap("toilet_flush_bottom", "contact"),
    "keys": SensorMap("keys", "contact"),
    "bathliftleft": SensorMap("bath_lift", "contact", "bathroom"),
    "cutlerydrawermercurysensor": SensorMap("cutlery_drawer", "contact", "kitchen"),
    "tablepansreed": SensorMap("pans_table", "contact", "kitchen"),
    "microwavereed": SensorMap("microwave_door", "contact", "kitchen"),
    "tablescrapscontainersreed": SensorMap("scraps_containers", "contact", "kitchen"),
    "cabinetsignsherbreed": SensorMap("herbs_cabinet", "contact", "kitchen"),
    "doordownstairstoilet": SensorMap("downstairs_toilet_door", "contact", "downstairs toilet"),
    "cabinetcupsbowltunareed": SensorMap("cups_cabinet", "contact", "kitchen"),
    "frontdoorreed": SensorMap("front_door", "contact", "hall", "front_door"),
    "bedroomdoor": SensorMap("bedroom_door", "contact", "bedroom"),
    "refrigeratorreed": SensorMap("fridge_door", "contact", "kitchen", "fridge"),
    "bathtubpir": SensorMap("bathroom_motion", "motion", "bathroom", "room"),
    "dresserpir": SensorMap("dresser_motion", "motion", role="room"),  # room not stated
    "sinktopflush": SensorMap("sink_flush_top", "contact"),
    "bedmatleftpressuremat": SensorMap("bed_mat_left", "presence", "bedroom", "bed"),
}
HOUSES: dict[str, dict[str, SensorMap]] = {"a": HOUSE_A, "b": HOUSE_B, "c": HOUSE_C}
for _letter, _table in HOUSES.items():
    check_unique_names(_table.values(), f"van Kasteren house {_letter.upper()}")
# Sensors the TL re-encoding numbers differently from its own .sensor_names: house -> {id in the data: name id}.
# House A's unnamed sensor 4 is the 2008 release's "Cups cupboard" (id 7, which has no rows in the TL file):
# all 49 of its activations start at the same second as one of the 2008 release's Cups cupboard activations.
RENUMBERED: dict[str, dict[int, int]] = {"a": {4: 7}}
HOUSE_NAMES = {
    "a": "van Kasteren house A (Amsterdam, 3-room apartment)",
    "b": "van Kasteren house B (2-room apartment)",
    "c": "van Kasteren house C (6-room house)",
}

_MONTHS = {m: i for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1)}
_LEGEND = re.compile(r"^\s*\[\s*(\d+)\s*\]\s*'(.*?)'\s*$")
_EPOCH_NAIVE = datetime(1970, 1, 1)


class RecordingFormatError(ValueError):
    """A recording file that does not have the expected format; the message names the file and line."""

    def __init__(self, source: str, line: int, message: str) -> None:
        self.source, self.line = source, line
        super().__init__(f"{source}, line {line}: {message}")


def normalise(name: str) -> str:
    """The mapping-table key of a sensor name: lower case, letters and digits only."""
    return "".join(c for c in name.lower() if c.isalnum())


def sensor_map(table: dict[str, SensorMap], sensor_id: int, name: str | None) -> SensorMap:
    """The device for a sensor: from the table by name; an unnamed or unknown sensor is a contact (most are)."""
    if name is not None:
        found = table.get(normalise(name))
        if found is not None:
            return found
        slug = "_".join(re.findall(r"[a-z0-9]+", name.lower()))
        return SensorMap(slug or f"sensor_{sensor_id}", "contact")
    return SensorMap(f"sensor_{sensor_id}", "contact")


def _build(home: str, name: str, tz: str, dataset: str, table: dict[str, SensorMap], names: dict[int, str],
           rows: list[tuple[int, int, int]]) -> Recording:
    """A recording from (sensor id, start ms, end ms) rows: devices for every named sensor and every one seen."""
    counts = Counter(sensor_id for sensor_id, _, _ in rows)
    maps = {i: sensor_map(table, i, names.get(i)) for i in sorted(set(names) | set(counts))}
    check_unique_names(maps.values(), dataset)
    observations: list[Observation] = []
    for sensor_id, start_ms, end_ms in rows:
        observations.extend(interval_observations(home, maps[sensor_id], start_ms, end_ms))
    devices = [RecordedDevice(f"{i} {names.get(i, '(unnamed)')}", m, counts[i]) for i, m in maps.items()]
    return Recording(home, name, tz, dataset, devices, len(rows), sort_by_time(observations))


# ------------------------------------------------------------------------------------------------------------
# 2008: kasterenSenseData.txt


def _parse_2008_time(text: str) -> datetime:
    """``25-Feb-2008 09:33:47`` (English month abbreviations, whatever the locale)."""
    date, clock = text.split()
    day, month, year = date.split("-")
    hour, minute, second = clock.split(":")
    return datetime(int(year), _MONTHS[month.lower()], int(day), int(hour), int(minute), int(second))


def read_kasteren2008(path: str | Path, *, home: str = "kasteren-2008-a", tz: str = DEFAULT_TZ) -> Recording:
    """Read ``kasterenSenseData.txt`` (UbiComp'08 house A): a legend of sensor ids, then tab-separated rows
    ``start <TAB> end <TAB> id <TAB> 1`` and a ``Length: N`` footer, which is checked."""
    path = Path(path)
    zone = ZoneInfo(tz)
    names: dict[int, str] = {}
    rows: list[tuple[int, int, int]] = []
    in_data = False
    footer: int | None = None
    with open(path, encoding="latin-1", newline=None) as f:
        for number, line in enumerate(f, 1):
            text = line.strip()
            if not in_data:
                legend = _LEGEND.match(line)
                if legend:
                    names[int(legend.group(1))] = legend.group(2).strip()
                elif text.startswith("Start time") and "\t" in line:
                    in_data = True
                continue
            if not text or set(text) <= {"-", "\t", " "}:
                continue
            if text.startswith("Length:"):
                footer = int(text.removeprefix("Length:"))
                continue
            fields = text.split("\t")
            if len(fields) != 4:
                raise RecordingFormatError(str(path), number, f"expected 4 tab-separated fields, found {len(fields)}")
            try:
                start, end = _parse_2008_time(fields[0]), _parse_2008_time(fields[1])
                sensor_id = int(fields[2])
            except (ValueError, KeyError) as e:
                raise RecordingFormatError(str(path), number, f"bad row {text!r}: {e}") from None
            if end < start:
                raise RecordingFormatError(str(path), number, "the activation ends before it starts")
            rows.append((sensor_id, local_to_utc_ms(start, zone), local_to_utc_ms(end, zone)))
    if not in_data:
        raise RecordingFormatError(str(path), 1, "no 'Start time <TAB> End time ...' header: not a 2008 file")
    if footer is not None and footer != len(rows):
        raise RecordingFormatError(str(path), number, f"the footer says {footer} rows but the file has {len(rows)}")
    return _build(home, HOUSE_NAMES["a"], tz, f"van Kasteren 2008 house A ({path.name})", HOUSE_A, names, rows)


# ------------------------------------------------------------------------------------------------------------
# 2010: houseX.sensors and houseX.sensor_names


def read_sensor_names(path: str | Path) -> dict[int, str]:
    """``id <TAB> name`` lines (the TL project's ``.sensor_names``)."""
    names: dict[int, str] = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            sensor_id, _, name = line.strip("\r\n").partition("\t")
            try:
                names[int(sensor_id)] = name.strip()
            except ValueError:
                raise RecordingFormatError(str(path), number, f"expected 'id <TAB> name', found {line!r}") from None
    return names


def read_kasteren2010(path: str | Path, *, names_path: str | Path | None = None, home: str | None = None,
                      tz: str = DEFAULT_TZ, house: str | None = None) -> Recording:
    """Read a TL-project ``houseX.sensors`` file: ``start <TAB> duration <TAB> id``, whole seconds.

    The start is the local wall-clock time encoded as if it were UTC epoch seconds (house A's first row,
    1203898814, is 25-Feb-2008 00:20:14 in the 2008 release), so it is decoded as a naive wall-clock time and
    then placed in ``tz``. The end is the start's wall-clock time plus the duration. ``names_path`` defaults to
    the ``.sensor_names`` file beside it; ``house`` (a, b or c: which mapping table) and ``home`` (default
    ``kasteren-2010-<house>``) default from the file name.
    """
    path = Path(path)
    letter = (house or path.stem.removeprefix("house")).lower()
    if letter not in HOUSES:
        raise ValueError(f"{path}: cannot tell the house (a, b or c) from the file name; pass house=")
    names_file = Path(names_path) if names_path is not None else path.with_suffix(".sensor_names")
    names = read_sensor_names(names_file) if names_file.exists() else {}
    zone = ZoneInfo(tz)
    rows: list[tuple[int, int, int]] = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            text = line.strip()
            if not text:
                continue
            fields = text.split("\t")
            try:
                start_s, duration_s, sensor_id = (int(x) for x in fields)
            except ValueError:
                raise RecordingFormatError(str(path), number,
                                           f"expected 'start <TAB> duration <TAB> id' integers, found {text!r}") \
                    from None
            if duration_s < 0:
                raise RecordingFormatError(str(path), number, f"negative duration {duration_s}")
            start = _EPOCH_NAIVE + timedelta(seconds=start_s)
            end = start + timedelta(seconds=duration_s)
            rows.append((sensor_id, local_to_utc_ms(start, zone), local_to_utc_ms(end, zone)))
    seen = {sensor_id for sensor_id, _, _ in rows}
    for data_id, name_id in RENUMBERED.get(letter, {}).items():
        if data_id in seen and data_id not in names and name_id in names and name_id not in seen:
            names[data_id] = names.pop(name_id)
    return _build(home or f"kasteren-2010-{letter}", HOUSE_NAMES[letter], tz,
                  f"van Kasteren 2010 house {letter.upper()} ({path.name})", HOUSES[letter], names, rows)
