"""Readers of real recordings: exact observations on invented snippets in each format (no dataset content is in
this repository), then the real datasets when they are present (``/work/shared/datasets`` or the directory
named by ``TELECARE_DATASETS``)."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest

from analytics.devices import KINDS_BY_KEY
from gateway.homes import parse_description
from sensors_sim.events import Observation
from sensors_sim.recordings import (
    Recording,
    RecordingFormatError,
    description,
    read_kasteren2008,
    read_kasteren2010,
    read_ordonez,
    read_recording,
)
from sensors_sim.recordings.homes import SensorMap
from sensors_sim.recordings.kasteren import HOUSES
from sensors_sim.recordings.neutral_csv import parse_time, read_csv, write_csv
from sensors_sim.recordings.ordonez import SENSORS


def ms(iso: str) -> int:
    return parse_time(iso)


# ------------------------------------------------------------------------------------------------------------
# van Kasteren 2008 text release (invented rows in its format; CRLF like the original)

K2008 = "\r\n".join([
    "Start time: Time sensor started firing",
    "",
    "Sensor IDs are: ",
    "    [ 1]    'Microwave'         ",
    "    [12]    'Frontdoor'         ",
    "    [14]    'ToiletFlush'       ",
    "    [24]    'Hall-Bedroom door' ",
    "",
    "Start time          \tEnd time            \tID\tVal",
    "--------------------\t--------------------\t--\t---",
    "29-Mar-2008 23:00:00\t29-Mar-2008 23:00:07\t12\t1",
    "30-Mar-2008 01:30:00\t30-Mar-2008 03:30:00\t24\t1",
    "30-Mar-2008 12:00:00\t30-Mar-2008 12:00:00\t14\t1",
    "30-Mar-2008 12:00:00\t30-Mar-2008 12:00:03\t3\t1",
    "",
    "Length: 4",
])


def test_kasteren2008_snippet_across_the_start_of_summer_time(tmp_path: Path) -> None:
    path = tmp_path / "kasterenSenseData.txt"
    path.write_bytes(K2008.encode("latin-1"))
    recording = read_kasteren2008(path)
    assert (recording.home, recording.timezone, recording.activations) == ("kasteren-2008-a", "Europe/Amsterdam", 4)
    front = ("kasteren-2008-a", "front_door", "contact")
    door = ("kasteren-2008-a", "hall_bedroom_door", "contact")
    flush = ("kasteren-2008-a", "toilet_flush", "contact")
    unknown = ("kasteren-2008-a", "sensor_3", "contact")
    assert list(recording) == [
        Observation(ms("2008-03-29T22:00:00Z"), *front, False, "hall", "front_door"),  # opened (CET, +01:00)
        Observation(ms("2008-03-29T22:00:07Z"), *front, True, "hall", "front_door"),  # closed
        Observation(ms("2008-03-30T00:30:00Z"), *door, False, "bedroom"),  # 01:30 CET
        Observation(ms("2008-03-30T01:30:00Z"), *door, True, "bedroom"),  # 03:30 CEST: one hour later, not two
        Observation(ms("2008-03-30T10:00:00Z"), *flush, False, "toilet"),  # zero length: open, then closed
        Observation(ms("2008-03-30T10:00:00Z"), *flush, True, "toilet"),
        Observation(ms("2008-03-30T10:00:00Z"), *unknown, False),  # an id missing from the legend
        Observation(ms("2008-03-30T10:00:03Z"), *unknown, True),
    ]
    assert {d.map.device: d.activations for d in recording.devices} == {
        "microwave_door": 0, "sensor_3": 1, "front_door": 1, "toilet_flush": 1, "hall_bedroom_door": 1}


def test_kasteren2008_options_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "kasterenSenseData.txt"
    path.write_text(K2008, encoding="latin-1")
    recording = read_kasteren2008(path, home="flat-7", tz="UTC")
    assert recording.observations[0] == Observation(ms("2008-03-29T23:00:00Z"), "flat-7", "front_door", "contact",
                                                    False, "hall", "front_door")
    path.write_text(K2008.replace("Length: 4", "Length: 5"), encoding="latin-1")
    with pytest.raises(RecordingFormatError, match="the footer says 5 rows but the file has 4"):
        read_kasteren2008(path)
    path.write_text(K2008.replace("30-Mar-2008 12:00:03", "30-Mxr-2008 12:00:03"), encoding="latin-1")
    with pytest.raises(RecordingFormatError, match=r"kasterenSenseData\.txt, line 14: bad row"):
        read_kasteren2008(path)
    path.write_text(K2008.replace("23:00:07", "22:59:07"), encoding="latin-1")
    with pytest.raises(RecordingFormatError, match="line 11: the activation ends before it starts"):
        read_kasteren2008(path)


# ------------------------------------------------------------------------------------------------------------
# van Kasteren 2010 as re-encoded by the TL project (wall-clock time stored as if it were UTC epoch seconds)

NAMES_B = "3\tfridge\n13\tpress bed links\n28\tPIR keuken\t\n7\tfrontdoor"  # no final newline, a trailing tab
# 2008-03-30 01:30:00 wall clock = 1206840600 "as UTC"; 2008-10-26 02:30:00 (the repeated hour) = 1224988200
SENSORS_B = "1206840600\t7200\t13\n1206840600\t0\t28\n1224988200\t1800\t3\n1224988200\t60\t99\n"


def test_kasteren2010_snippet_across_both_clock_changes(tmp_path: Path) -> None:
    (tmp_path / "houseB.sensor_names").write_text(NAMES_B)
    (tmp_path / "houseB.sensors").write_text(SENSORS_B)
    recording = read_kasteren2010(tmp_path / "houseB.sensors")
    assert (recording.home, recording.activations) == ("kasteren-2010-b", 4)
    home = "kasteren-2010-b"
    assert list(recording) == [
        Observation(ms("2008-03-30T00:30:00Z"), home, "bed_mat_left", "presence", True, "bedroom", "bed"),
        Observation(ms("2008-03-30T00:30:00Z"), home, "kitchen_motion", "motion", True, "kitchen", "room"),
        Observation(ms("2008-03-30T00:30:00Z"), home, "kitchen_motion", "motion", False, "kitchen", "room"),
        # 01:30 + 2 h of wall clock = 03:30 CEST: the TL durations are wall-clock differences
        Observation(ms("2008-03-30T01:30:00Z"), home, "bed_mat_left", "presence", False, "bedroom", "bed"),
        # 02:30 on 26 October happens twice: the first (summer time, +02:00) is taken
        Observation(ms("2008-10-26T00:30:00Z"), home, "fridge_door", "contact", False, "kitchen", "fridge"),
        Observation(ms("2008-10-26T00:30:00Z"), home, "sensor_99", "contact", False),
        Observation(ms("2008-10-26T00:31:00Z"), home, "sensor_99", "contact", True),
        # ... and 02:30 + 30 min of wall clock is 03:00 CET (+01:00), after the repeated hour
        Observation(ms("2008-10-26T02:00:00Z"), home, "fridge_door", "contact", True, "kitchen", "fridge"),
    ]
    devices = {d.map.device: (d.sensor, d.activations) for d in recording.devices}
    assert devices == {"fridge_door": ("3 fridge", 1), "front_door": ("7 frontdoor", 0),
                       "bed_mat_left": ("13 press bed links", 1), "kitchen_motion": ("28 PIR keuken", 1),
                       "sensor_99": ("99 (unnamed)", 1)}


def test_kasteren2010_options_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "houseC.sensors"
    path.write_text("1206840600\t5\t6\n")  # no names file: every sensor unnamed
    recording = read_kasteren2010(path, home="c-test", tz="Europe/London")
    # 01:30 on 30 March 2008 does not exist in London (01:00 GMT -> 02:00 BST): it takes the offset before
    assert next(iter(recording)) == Observation(ms("2008-03-30T01:30:00Z"), "c-test", "sensor_6", "contact", False)
    (tmp_path / "houseC.sensor_names").write_text("6\tmatt couch living room\t\n")
    assert next(iter(read_kasteren2010(path))).device == "couch_mat"
    path.write_text("1206840600\t5\t6\nnot a number\n")
    with pytest.raises(RecordingFormatError, match=r"houseC\.sensors, line 2: expected 'start <TAB> duration"):
        read_kasteren2010(path)
    other = tmp_path / "casa.sensors"
    other.write_text("")
    with pytest.raises(ValueError, match="pass house="):
        read_kasteren2010(other)
    assert read_kasteren2010(other, house="a").home == "kasteren-2010-a"


# ------------------------------------------------------------------------------------------------------------
# Ordóñez (variable numbers of tabs, rows out of order, local Spanish time)

ORDONEZ = "\r\n".join([
    "Start time          \tEnd time            \tLocation\tType\t\tPlace",
    "--------------------\t--------------------\t--------\t--------\t-----",
    "2012-10-28 04:00:00\t\t2012-10-28 04:30:00\t\tSeat\t\tPressure\tLiving",
    "2012-10-28 01:30:00\t\t2012-10-28 01:30:05\t\tMaindoor\tMagnetic\tEntrance",
    "2012-10-28 02:30:00\t2012-10-28 02:30:10\t\tMicrowave\t\tElectric\tKitchen",
    "2012-10-28 03:10:00\t\t2012-10-28 03:10:00\t\tBasin\t\tPIR\t\tBathroom\t",
    "2012-10-28 05:00:00\t2012-10-28 05:00:01\tLamp\tElectric\tHall",
])


def test_ordonez_snippet_sorted_across_the_end_of_summer_time(tmp_path: Path) -> None:
    path = tmp_path / "OrdonezB_Sensors.txt"
    path.write_bytes(ORDONEZ.encode("latin-1"))
    recording = read_ordonez(path)
    assert (recording.home, recording.timezone, recording.activations) == ("ordonez-b", "Europe/Madrid", 5)
    home = "ordonez-b"
    assert list(recording) == [
        Observation(ms("2012-10-27T23:30:00Z"), home, "front_door", "contact", False, "entrance", "front_door"),
        Observation(ms("2012-10-27T23:30:05Z"), home, "front_door", "contact", True, "entrance", "front_door"),
        Observation(ms("2012-10-28T00:30:00Z"), home, "microwave_plug", "plug", 800.0, "kitchen"),
        Observation(ms("2012-10-28T00:30:10Z"), home, "microwave_plug", "plug", 0.0, "kitchen"),
        Observation(ms("2012-10-28T02:10:00Z"), home, "basin_motion", "motion", True, "bathroom", "room"),
        Observation(ms("2012-10-28T02:10:00Z"), home, "basin_motion", "motion", False, "bathroom", "room"),
        Observation(ms("2012-10-28T03:00:00Z"), home, "seat_mat", "presence", True, "living room", "chair"),
        Observation(ms("2012-10-28T03:30:00Z"), home, "seat_mat", "presence", False, "living room", "chair"),
        # an unknown sensor gets a name, kind and room from its columns
        Observation(ms("2012-10-28T04:00:00Z"), home, "hall_lamp_electric", "plug", 500.0, "hall"),
        Observation(ms("2012-10-28T04:00:01Z"), home, "hall_lamp_electric", "plug", 0.0, "hall"),
    ]


def test_ordonez_errors(tmp_path: Path) -> None:
    path = tmp_path / "OrdonezA_Sensors.txt"
    path.write_text(ORDONEZ.replace("\tPIR\t", "\tSonar\t"), encoding="latin-1")
    with pytest.raises(RecordingFormatError, match="line 6: unknown sensor type 'Sonar'"):
        read_ordonez(path)
    path.write_text(ORDONEZ.replace("\tEntrance", ""), encoding="latin-1")
    with pytest.raises(RecordingFormatError, match="line 4: expected 5 tab-separated fields"):
        read_ordonez(path)


# ------------------------------------------------------------------------------------------------------------
# Home descriptions and the neutral CSV


def test_descriptions_parse_and_say_what_the_observations_say(tmp_path: Path) -> None:
    (tmp_path / "kasterenSenseData.txt").write_text(K2008, encoding="latin-1")
    (tmp_path / "houseB.sensor_names").write_text(NAMES_B)
    (tmp_path / "houseB.sensors").write_text(SENSORS_B)
    (tmp_path / "OrdonezA_Sensors.txt").write_text(ORDONEZ, encoding="latin-1")
    recordings = [read_recording(tmp_path / name)
                  for name in ("kasterenSenseData.txt", "houseB.sensors", "OrdonezA_Sensors.txt")]
    parsed = parse_description(description(*recordings))
    assert [h.id for h in parsed.homes] == ["kasteren-2008-a", "kasteren-2010-b", "ordonez-a"]
    assert recordings[1].home_description()["devices"][:2] == [
        {"name": "fridge_door", "room": "kitchen", "role": "fridge", "kind": "contact"},
        {"name": "front_door", "room": "hall", "role": "front_door", "kind": "contact"}]
    for recording, home in zip(recordings, parsed.homes, strict=True):
        assert parse_description(recording.description()).homes[0] == home
        assert home.timezone == recording.timezone
        described = {d.name: (d.kind, d.room, d.role) for d in home.devices}
        for o in recording:
            assert described[o.device] == (o.kind, o.room, o.role)


def test_recordings_round_trip_through_the_neutral_csv(tmp_path: Path) -> None:
    (tmp_path / "OrdonezA_Sensors.txt").write_text(ORDONEZ, encoding="latin-1")
    recording = read_ordonez(tmp_path / "OrdonezA_Sensors.txt")
    write_csv(recording, tmp_path / "out.csv")
    assert list(read_csv(tmp_path / "out.csv")) == list(recording)


def test_kasteren2010_house_a_sensor_4_is_the_cups_cupboard(tmp_path: Path) -> None:
    (tmp_path / "houseA.sensor_names").write_text("7\tCups cupboard\n8\tFridge\n")
    (tmp_path / "houseA.sensors").write_text("1206840600\t5\t4\n")
    recording = read_kasteren2010(tmp_path / "houseA.sensors")
    assert [(d.sensor, d.map.device, d.activations) for d in recording.devices] == [
        ("4 Cups cupboard", "cups_cupboard", 1), ("8 Fridge", "fridge_door", 0)]


def test_the_docs_show_every_mapping_row() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "recordings.md").read_text()

    def row(key: str, m: SensorMap) -> str:
        kind = f"{m.kind} ({m.watts:g} W)" if m.watts else m.kind
        return f"| {key} | `{m.device}` | {kind} | {m.room or '–'} | {m.role or '–'} |"

    rows = [row(k, m) for table in HOUSES.values() for k, m in table.items()]
    rows += [row(" / ".join(k), m) for k, m in SENSORS.items()]
    assert [r for r in rows if r not in doc] == []


def test_sensor_map_checks_itself() -> None:
    with pytest.raises(ValueError, match="unknown role 'sofa'"):
        SensorMap("x", "presence", role="sofa")
    with pytest.raises(ValueError, match="a plug needs nominal watts"):
        SensorMap("x", "plug")
    with pytest.raises(ValueError, match="has no on/off activation"):
        SensorMap("x", "climate")


def test_read_recording_refuses_unknown_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown recording format"):
        read_recording(tmp_path / "data.csv")


# ------------------------------------------------------------------------------------------------------------
# The real datasets (never copied here); skipped when absent


DATASETS = Path(os.environ.get("TELECARE_DATASETS") or Path(__file__).parents[3] / "shared" / "datasets")

# Activations per device, as SOURCE.md of each dataset counts them.
EXPECTED: dict[str, dict[str, int]] = {
    "kasteren2008-houseA/kasterenSenseData.txt": {
        "hall_bathroom_door": 260, "hall_toilet_door": 195, "toilet_flush": 146, "fridge_door": 144,
        "hall_bedroom_door": 120, "front_door": 100, "groceries_cupboard": 77, "plates_cupboard": 65,
        "pans_cupboard": 51, "cups_cupboard": 50, "freezer_door": 41, "microwave_door": 32, "dishwasher_door": 21,
        "washing_machine_door": 17},
    "kasteren2010-tl-houses-ABC/houseA.sensors": {
        "hall_bathroom_door": 240, "hall_toilet_door": 180, "hall_bedroom_door": 118, "front_door": 90,
        "fridge_door": 140, "groceries_cupboard": 65, "plates_cupboard": 62, "pans_cupboard": 50, "freezer_door": 36,
        "microwave_door": 30, "dishwasher_door": 19, "toilet_flush": 138, "washing_machine_door": 12,
        "cups_cupboard": 49},  # SOURCE.md: "unnamed sensor 4: 49" (RENUMBERED in kasteren.py)
    "kasteren2010-tl-houses-ABC/houseB.sensors": {
        "kitchen_motion": 7138, "bathroom_motion": 2606, "bedroom_motion": 1753, "bed_mat_left": 3431,
        "bed_mat_right": 1239, "dresser": 1301, "cutlery_drawer": 289, "stove_lid": 110, "toilet_door": 119,
        "bedroom_door": 93, "fridge_door": 85, "toaster": 30, "microwave_door": 30, "plates_cupboard": 25,
        "groceries_cupboard": 23, "sink_float": 96, "toilet_flush": 53, "sensor_20": 330, "sensor_22": 150,
        "sensor_4": 106, "sensor_24": 45, "sensor_25": 21, "sensor_23": 2, "front_door": 0},
    "kasteren2010-tl-houses-ABC/houseC.sensors": {
        "bed_mat_right": 18717, "couch_mat": 773, "bed_mat_left": 50, "bathroom_motion": 1565, "dresser_motion": 52,
        "bath_lift": 229, "sink_flush_top": 142, "toilet_flush_bottom": 52, "toilet_flush_top": 43,
        "fridge_door": 227, "cutlery_drawer": 202, "herbs_cabinet": 82, "cups_cabinet": 33, "microwave_door": 26,
        "pans_table": 18, "scraps_containers": 6, "keys": 147, "front_door": 139, "downstairs_toilet_door": 99,
        "bedroom_door": 76, "sensor_4": 22, "freezer_door": 0},
    "ordonez-uci-adl/OrdonezA_Sensors.txt": {
        "seat_mat": 81, "bed_mat": 15, "basin_motion": 70, "shower_motion": 14, "cooktop_motion": 13,
        "fridge_door": 56, "kitchen_cupboard": 34, "front_door": 31, "bathroom_cabinet": 16, "toilet_flush": 45,
        "microwave_plug": 20, "toaster_plug": 14},
    "ordonez-uci-adl/OrdonezB_Sensors.txt": {
        "living_room_door_motion": 814, "kitchen_door_motion": 558, "bedroom_door_motion": 362, "basin_motion": 125,
        "shower_motion": 12, "seat_mat": 113, "bed_mat": 30, "fridge_door": 107, "front_door": 78,
        "kitchen_cupboard": 20, "toilet_flush": 93, "microwave_plug": 22},
}
TOTALS = {"kasterenSenseData.txt": 1319, "houseA.sensors": 1229, "houseB.sensors": 19075, "houseC.sensors": 22700,
          "OrdonezA_Sensors.txt": 409, "OrdonezB_Sensors.txt": 2334}
# First activation start and last activation end in local time, as SOURCE.md gives them (to the minute).
SPANS = {"kasterenSenseData.txt": ("2008-02-25T00:20:14+01:00", "2008-03-23T19:04:47+01:00"),
         "houseA.sensors": ("2008-02-25T00:20:14+01:00", None),
         "OrdonezA_Sensors.txt": ("2011-11-28T02:27:59+01:00", "2011-12-12T07:22:21+01:00"),
         "OrdonezB_Sensors.txt": ("2012-11-11T21:14:21+01:00", None)}


@pytest.fixture(scope="module")
def recordings() -> dict[str, Recording]:
    if not DATASETS.is_dir():
        pytest.skip(f"the real datasets are not at {DATASETS} (set TELECARE_DATASETS)")
    missing = [name for name in EXPECTED if not (DATASETS / name).is_file()]
    if missing:
        pytest.skip(f"datasets missing under {DATASETS}: {', '.join(missing)}")
    return {name: read_recording(DATASETS / name) for name in EXPECTED}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_real_dataset(recordings: dict[str, Recording], name: str) -> None:
    recording = recordings[name]
    assert recording.activations == TOTALS[Path(name).name]
    assert len(recording) == 2 * recording.activations
    assert {d.map.device: d.activations for d in recording.devices} == EXPECTED[name]
    starts = Counter(o.device for o in recording if o.value in (True, 800.0) and o.kind != "contact")
    starts.update(o.device for o in recording if o.kind == "contact" and o.value is False)
    assert {k: v for k, v in EXPECTED[name].items() if v} == dict(starts)
    times = [o.time_ms for o in recording]
    assert times == sorted(times)
    assert all(o.kind in KINDS_BY_KEY and o.home == recording.home for o in recording)
    first, last = SPANS.get(Path(name).name, (None, None))
    if first:
        assert times[0] == ms(first)
    if last:
        assert times[-1] == ms(last)
    parse_description(recording.description(), name)


def test_real_datasets_in_one_description(recordings: dict[str, Recording]) -> None:
    homes = parse_description(description(*recordings.values())).homes
    assert [h.id for h in homes] == ["kasteren-2008-a", "kasteren-2010-a", "kasteren-2010-b", "kasteren-2010-c",
                                     "ordonez-a", "ordonez-b"]
