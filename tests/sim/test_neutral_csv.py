"""The neutral CSV: parsing each kind's values and times, errors naming the line, sorting, round trips."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from sensors_sim.events import Observation
from sensors_sim.recordings.neutral_csv import (
    NeutralCsvError,
    format_time,
    parse_time,
    read_csv,
    to_csv_text,
    write_csv,
)

T0 = 1_709_251_200_000  # 2024-03-01T00:00:00Z


def read_text(text: str, **kwargs: bool) -> list[Observation]:
    return list(read_csv(io.StringIO(text), **kwargs))


def test_reads_every_kind_and_time_format() -> None:
    text = (
        "time,home,device,kind,value,room,role\n"
        "2024-03-01T00:00:00Z,h1,hall_motion,motion,1,hall,room\n"
        "2024-03-01T01:00:00.250+01:00,h1,hall_motion,motion,false,hall,room\n"
        "1709251201000,h1,front_door,contact,open,hall,front_door\n"
        "1709251202000,h1,front_door,contact,closed,hall,front_door\n"
        "1709251203000,h1,back_door,contact,0,,back_door\n"
        "1709251204000,h1,back_door,contact,1,,back_door\n"
        "1709251205000,h1,bed_pad,presence,TRUE,bedroom,bed\n"
        "1709251206000,h1,kettle_plug,plug,2150.5,kitchen,kettle\n"
        "1709251207000,h1,pendant,button,\"single, long\",,pendant\n"
        "1709251208000,h2,temp,climate,-3.25,,\n"
    )
    assert read_text(text) == [
        Observation(T0, "h1", "hall_motion", "motion", True, "hall", "room"),
        Observation(T0 + 250, "h1", "hall_motion", "motion", False, "hall", "room"),
        Observation(T0 + 1000, "h1", "front_door", "contact", False, "hall", "front_door"),
        Observation(T0 + 2000, "h1", "front_door", "contact", True, "hall", "front_door"),
        Observation(T0 + 3000, "h1", "back_door", "contact", False, None, "back_door"),
        Observation(T0 + 4000, "h1", "back_door", "contact", True, None, "back_door"),
        Observation(T0 + 5000, "h1", "bed_pad", "presence", True, "bedroom", "bed"),
        Observation(T0 + 6000, "h1", "kettle_plug", "plug", 2150.5, "kitchen", "kettle"),
        Observation(T0 + 7000, "h1", "pendant", "button", "single, long", None, "pendant"),
        Observation(T0 + 8000, "h2", "temp", "climate", -3.25, None, None),
    ]


def test_room_and_role_columns_are_optional_and_columns_go_by_header() -> None:
    assert read_text("kind,value,time,device,home\nmotion,1,2024-03-01T00:00:00Z,m,h\n") == [
        Observation(T0, "h", "m", "motion", True)]


def test_sorts_stably_by_time_and_streams_in_file_order_when_asked() -> None:
    text = ("time,home,device,kind,value\n"
            f"{T0 + 5},h,a,motion,1\n{T0},h,b,motion,1\n{T0 + 5},h,c,motion,1\n{T0},h,d,motion,0\n")
    assert [o.device for o in read_text(text)] == ["b", "d", "a", "c"]
    assert [o.device for o in read_text(text, sort=False)] == ["a", "b", "c", "d"]


def test_times() -> None:
    assert parse_time("1970-01-01T00:00:00Z") == 0
    assert parse_time("2024-03-01T00:00:00.123456Z") == T0 + 123  # sub-millisecond digits truncated
    assert parse_time("2024-03-01 01:00:00+01:00") == T0
    assert parse_time("-1000") == -1000
    assert format_time(T0) == "2024-03-01T00:00:00Z"
    assert format_time(T0 + 7) == "2024-03-01T00:00:00.007Z"
    with pytest.raises(ValueError, match="no 'Z' or UTC offset"):
        parse_time("2024-03-01T00:00:00")
    with pytest.raises(ValueError, match="neither ISO 8601 nor epoch milliseconds"):
        parse_time("yesterday")


@pytest.mark.parametrize(("row", "message"), [
    ("2024-03-01T00:00:00,h,m,motion,1", "line 3: time '2024-03-01T00:00:00' has no 'Z' or UTC offset"),
    ("1,h,m,motion,maybe", "line 3: value 'maybe' is not one of 1, 0, true, false"),
    ("1,h,d,contact,ajar", "line 3: value 'ajar' is not one of"),
    ("1,h,m,teleporter,1", "line 3: unknown kind 'teleporter'"),
    ("1,h,p,plug,lots", "line 3: value 'lots' is not a number"),
    ("1,h,p,plug,-5", "line 3: power '-5' is negative"),
    ("1,h,t,climate,nan", "line 3: value 'nan' is not a finite number"),
    ("1,h,b,button,", "line 3: the value is empty and the row reports nothing else (it may report temperature, "
                      "battery, battery_low, illuminance, linkquality instead)"),
    ("1,,m,motion,1", "line 3: the home is empty"),
    ("1,h,m,motion", "line 3: expected 5 fields, found 4"),
])
def test_bad_rows_name_their_line(row: str, message: str) -> None:
    text = f"time,home,device,kind,value\n1,h,m,motion,1\n{row}\n"
    with pytest.raises(NeutralCsvError, match=re.escape(message)):
        read_text(text)


def test_old_seven_and_five_column_files_read_as_before() -> None:
    seven = read_text("time,home,device,kind,value,room,role\n1,h,m,motion,1,hall,room\n2,h,t,climate,19.5,,\n")
    five = read_text("time,home,device,kind,value\n1,h,m,motion,1\n")
    assert seven == [Observation(1, "h", "m", "motion", True, "hall", "room"),
                     Observation(2, "h", "t", "climate", 19.5)]
    assert five == [Observation(1, "h", "m", "motion", True)]
    assert all((o.temperature, o.battery, o.battery_low, o.illuminance, o.linkquality) == (None,) * 5
               for o in seven + five)


REPORTS_HEADER = "time,home,device,kind,value,room,role,temperature,battery,battery_low,illuminance,linkquality\n"


def test_report_columns_carry_what_else_a_report_said() -> None:
    text = (REPORTS_HEADER
            + "1,h,hall_pir,motion,0,hall,room,,87,,120,143\n"  # an unchanged state re-sent, with battery and light
            + "2,h,hall_pir,motion,,hall,room,,86.5,,,\n"  # a battery report: no activity value
            + "3,h,bed_pad,presence,,bedroom,bed,,,TRUE,,\n"  # only battery_low
            + "4,h,kettle_plug,plug,0,kitchen,kettle,41.5,,,,200\n"  # a plug's own temperature
            + "5,h,lounge,climate,19.25,living room,,,99,false,,0\n"
            + "6,h,pendant,button,,,pendant,,,,,255\n")  # only link quality: heard, nothing more
    assert read_text(text) == [
        Observation(1, "h", "hall_pir", "motion", False, "hall", "room", battery=87.0, illuminance=120.0,
                    linkquality=143),
        Observation(2, "h", "hall_pir", "motion", None, "hall", "room", battery=86.5),
        Observation(3, "h", "bed_pad", "presence", None, "bedroom", "bed", battery_low=True),
        Observation(4, "h", "kettle_plug", "plug", 0.0, "kitchen", "kettle", temperature=41.5, linkquality=200),
        Observation(5, "h", "lounge", "climate", 19.25, "living room", battery=99.0, battery_low=False,
                    linkquality=0),
        Observation(6, "h", "pendant", "button", None, None, "pendant", linkquality=255),
    ]


def test_any_subset_of_report_columns_in_any_order() -> None:
    assert read_text("linkquality,time,battery,home,device,kind,value\n12,1,55,h,m,motion,\n") == [
        Observation(1, "h", "m", "motion", None, battery=55.0, linkquality=12)]
    assert read_text("time,home,device,kind,value,illuminance\n1,h,m,motion,1,0\n") == [
        Observation(1, "h", "m", "motion", True, illuminance=0.0)]


@pytest.mark.parametrize(("row", "message"), [
    ("3,h,m,motion,,,,,,", "line 3: the value is empty and the row reports nothing else"),
    ("3,h,m,motion,1,,abc,,,", "line 3: temperature 'abc' is not a number"),
    ("3,h,m,motion,1,,-61,,,", "line 3: temperature '-61' is outside -60-100 °C"),
    ("3,h,m,motion,1,,,101,,", "line 3: battery '101' is outside 0-100 %"),
    ("3,h,m,motion,1,,,-1,,", "line 3: battery '-1' is outside 0-100 %"),
    ("3,h,m,motion,1,,,nan,,", "line 3: battery 'nan' is not a finite number"),
    ("3,h,m,motion,1,,,,maybe,", "line 3: battery_low 'maybe' is not one of 1, 0, true, false"),
    ("3,h,m,motion,1,,,,,-5", "line 3: illuminance '-5' is outside 0 or more lx"),
    ("3,h,m,motion,1,,,,,, 1", "line 3: expected 10 fields, found 11"),
    ("3,h,t,climate,19,,19,,,", "line 3: a climate row's temperature is its value: leave the temperature column"),
])
def test_bad_report_cells_name_their_line(row: str, message: str) -> None:
    text = f"time,home,device,kind,value,room,temperature,battery,battery_low,illuminance\n1,h,m,motion,1,,,,,\n{row}\n"
    with pytest.raises(NeutralCsvError, match=re.escape(message)):
        read_text(text)


@pytest.mark.parametrize(("cell", "message"), [
    ("12.5", "linkquality '12.5' is not a whole number"),
    ("256", "linkquality '256' is outside 0-255"),
    ("-1", "linkquality '-1' is outside 0-255"),
])
def test_bad_link_quality(cell: str, message: str) -> None:
    with pytest.raises(NeutralCsvError, match=f"line 2: {message}"):
        read_text(f"time,home,device,kind,value,linkquality\n1,h,m,motion,1,{cell}\n")


def test_bad_role_and_bad_header() -> None:
    with pytest.raises(NeutralCsvError, match="line 2: unknown role 'sofa'"):
        read_text("time,home,device,kind,value,room,role\n1,h,m,presence,1,lounge,sofa\n")
    with pytest.raises(NeutralCsvError, match=r"line 1: bad header.*unknown: colour.*missing: value"):
        read_text("time,home,device,kind,colour\n")
    with pytest.raises(NeutralCsvError, match="line 1: the file is empty"):
        read_text("")


def test_error_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("time,home,device,kind,value\n\n1,h,m,motion,1\n1,h,m,motion,2\n")
    with pytest.raises(NeutralCsvError, match=r"bad\.csv, line 4: value '2'") as e:
        list(read_csv(path))
    assert e.value.line == 4


def test_blank_lines_and_a_byte_order_mark_are_fine(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_text("\ufefftime,home,device,kind,value\r\n\r\n1,h,m,motion,1\r\n", encoding="utf-8")
    assert list(read_csv(path)) == [Observation(1, "h", "m", "motion", True)]


SAMPLE = [
    Observation(T0, "acacia-12", "hall_motion", "motion", True, "hall", "room"),
    Observation(T0 + 1, "acacia-12", "front_door", "contact", False, "hall", "front_door"),
    Observation(T0 + 1, "acacia-12", "front_door", "contact", True, "hall", "front_door"),
    Observation(T0 + 60_000, "acacia-12", "kettle_plug", "plug", 2000.0, "kitchen", "kettle"),
    Observation(T0 + 60_001, "acacia-12", "kettle_plug", "plug", 0.1, "kitchen", "kettle"),
    Observation(T0 + 61_000, "acacia-12", "pendant", "button", 'double "quoted", with comma', None, "pendant"),
    Observation(T0 + 62_000, "elm-3", "living room, temp", "climate", 21.125, "living room", None),
    Observation(T0 + 63_000, "elm-3", "bed_pad", "presence", False, "bedroom", "bed"),
    Observation(-5, "elm-3", "old", "vibration", True),
    Observation(T0 + 64_000, "elm-3", "leak", "leak", False, "bathroom"),
    Observation(T0 + 65_000, "elm-3", "hall_pir", "motion", False, "hall", "room", battery=87.0, illuminance=12.5,
                linkquality=143),  # an unchanged state, re-sent with what else the sensor reports
    Observation(T0 + 66_000, "elm-3", "hall_pir", "motion", None, "hall", "room", battery=86.0, battery_low=False),
    Observation(T0 + 67_000, "elm-3", "kettle_plug", "plug", 0.0, "kitchen", "kettle", temperature=-0.5),
    Observation(T0 + 68_000, "elm-3", "bed_pad", "presence", None, "bedroom", "bed", linkquality=0),
]


@pytest.mark.parametrize("time_format", ["iso", "epoch_ms"])
def test_round_trip(tmp_path: Path, time_format: str) -> None:
    path = tmp_path / "out.csv"
    assert write_csv(SAMPLE, path, time_format=time_format) == len(SAMPLE)  # type: ignore[arg-type]
    assert list(read_csv(path, sort=False)) == SAMPLE
    assert list(read_csv(path)) == sorted(SAMPLE, key=lambda o: o.time_ms)


def test_written_text() -> None:
    assert to_csv_text([*SAMPLE[:4], *SAMPLE[-4:]]) == (
        REPORTS_HEADER
        + "2024-03-01T00:00:00Z,acacia-12,hall_motion,motion,1,hall,room,,,,,\n"
        "2024-03-01T00:00:00.001Z,acacia-12,front_door,contact,open,hall,front_door,,,,,\n"
        "2024-03-01T00:00:00.001Z,acacia-12,front_door,contact,closed,hall,front_door,,,,,\n"
        "2024-03-01T00:01:00Z,acacia-12,kettle_plug,plug,2000,kitchen,kettle,,,,,\n"
        "2024-03-01T00:01:05Z,elm-3,hall_pir,motion,0,hall,room,,87,,12.5,143\n"
        "2024-03-01T00:01:06Z,elm-3,hall_pir,motion,,hall,room,,86,0,,\n"
        "2024-03-01T00:01:07Z,elm-3,kettle_plug,plug,0,kitchen,kettle,-0.5,,,,\n"
        "2024-03-01T00:01:08Z,elm-3,bed_pad,presence,,bedroom,bed,,,,,0\n"
    )
    assert to_csv_text([], time_format="epoch_ms") == REPORTS_HEADER


@pytest.mark.parametrize(("bad", "message"), [
    (Observation(1, "h", "m", "motion", "yes"), "observation 1 .*motion value must be a bool"),
    (Observation(1, "h", "p", "plug", True), "plug value must be a finite number"),
    (Observation(1, "h", "b", "button", ""), "button value must be a non-empty string"),
    (Observation(1, "h", "x", "teleporter", 1.0), "unknown kind 'teleporter'"),
    (Observation(1, "h", "m", "motion", True, None, "sofa"), "unknown role 'sofa'"),
    (Observation(1, "h", "m", "motion", None), "observation 1 .*has no value and reports nothing else"),
    (Observation(1, "h", "t", "climate", 19.0, temperature=19.0), "climate observation's temperature is its value"),
    (Observation(1, "h", "m", "motion", None, battery=120.0), "battery '120' is outside 0-100 %"),
    (Observation(1, "h", "m", "motion", None, battery=float("nan")), "battery 'nan' is not a finite number"),
    (Observation(1, "h", "m", "motion", None, battery_low=1), "battery_low must be a bool"),  # type: ignore[arg-type]
    (Observation(1, "h", "m", "motion", None, illuminance=True), "illuminance must be a number"),
    (Observation(1, "h", "m", "motion", None, linkquality=9.5), "linkquality must be a whole number"),  # type: ignore[arg-type]
    (Observation(1, "h", "m", "motion", None, linkquality=300), "linkquality '300' is outside 0-255"),
])
def test_write_rejects_values_that_do_not_fit(bad: Observation, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        write_csv([bad], io.StringIO())
