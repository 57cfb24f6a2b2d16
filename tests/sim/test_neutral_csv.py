"""The neutral CSV: parsing each kind's values and times, errors naming the line, sorting, round trips."""

from __future__ import annotations

import io
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
    ("1,h,b,button,", "line 3: the action is empty"),
    ("1,,m,motion,1", "line 3: the home is empty"),
    ("1,h,m,motion", "line 3: expected 5 fields, found 4"),
])
def test_bad_rows_name_their_line(row: str, message: str) -> None:
    text = f"time,home,device,kind,value\n1,h,m,motion,1\n{row}\n"
    with pytest.raises(NeutralCsvError, match=message.replace("(", r"\(")):
        read_text(text)


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
]


@pytest.mark.parametrize("time_format", ["iso", "epoch_ms"])
def test_round_trip(tmp_path: Path, time_format: str) -> None:
    path = tmp_path / "out.csv"
    assert write_csv(SAMPLE, path, time_format=time_format) == len(SAMPLE)  # type: ignore[arg-type]
    assert list(read_csv(path, sort=False)) == SAMPLE
    assert list(read_csv(path)) == sorted(SAMPLE, key=lambda o: o.time_ms)


def test_written_text() -> None:
    assert to_csv_text(SAMPLE[:4]) == (
        "time,home,device,kind,value,room,role\n"
        "2024-03-01T00:00:00Z,acacia-12,hall_motion,motion,1,hall,room\n"
        "2024-03-01T00:00:00.001Z,acacia-12,front_door,contact,open,hall,front_door\n"
        "2024-03-01T00:00:00.001Z,acacia-12,front_door,contact,closed,hall,front_door\n"
        "2024-03-01T00:01:00Z,acacia-12,kettle_plug,plug,2000,kitchen,kettle\n"
    )
    assert to_csv_text([], time_format="epoch_ms") == "time,home,device,kind,value,room,role\n"


@pytest.mark.parametrize(("bad", "message"), [
    (Observation(1, "h", "m", "motion", "yes"), "observation 1 .*motion value must be a bool"),
    (Observation(1, "h", "p", "plug", True), "plug value must be a finite number"),
    (Observation(1, "h", "b", "button", ""), "button value must be a non-empty string"),
    (Observation(1, "h", "x", "teleporter", 1.0), "unknown kind 'teleporter'"),
    (Observation(1, "h", "m", "motion", True, None, "sofa"), "unknown role 'sofa'"),
])
def test_write_rejects_values_that_do_not_fit(bad: Observation, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        write_csv([bad], io.StringIO())
