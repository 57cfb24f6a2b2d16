"""The line protocol encoder, line by line, and a round trip of its escapes through a reference parser."""

from __future__ import annotations

import math
import re
from enum import IntEnum, StrEnum

import pytest

from gateway.stores.readings import lineprotocol
from gateway.stores.readings.base import Point
from gateway.stores.readings.lineprotocol import encode

T = 1_700_000_000_123


def one(measurement: str, tags: dict[str, str], fields: dict, time_ms: int = T) -> str:
    lines = encode([Point(measurement, tags, fields, time_ms)])
    assert len(lines) == 1
    return lines[0]


@pytest.fixture(autouse=True)
def empty_caches():
    lineprotocol._series_cache.clear()
    lineprotocol._field_key_cache.clear()


# --- the format ------------------------------------------------------------------------------------
def test_typical_reading() -> None:
    line = one("reading", {"home": "h1", "device": "0x00158d0001a2b3c4", "kind": "motion", "room": "hall"},
               {"occupancy": True, "illuminance": 120, "battery": 87.5, "linkquality": 255})
    assert line == ("reading,device=0x00158d0001a2b3c4,home=h1,kind=motion,room=hall "
                    "occupancy=true,illuminance=120.0,battery=87.5,linkquality=255.0 1700000000123")


def test_tags_are_sorted_by_key_and_empty_values_dropped() -> None:
    tags = {"role": "", "home": "h", "room": "kitchen", "device": "d", "kind": ""}
    assert one("reading", tags, {"x": 1.5}) == "reading,device=d,home=h,room=kitchen x=1.5 1700000000123"
    assert one("hub", {"home": "h"}, {"online": False}) == "hub,home=h online=false 1700000000123"
    assert one("m", {}, {"x": 1.5}) == "m x=1.5 1700000000123"


def test_every_number_is_a_float_never_an_integer() -> None:
    line = one("m", {}, {"a": 21, "b": 21.5, "c": 0, "d": -3, "e": 10**17, "f": 1e-7, "g": -0.0})
    assert line == "m a=21.0,b=21.5,c=0.0,d=-3.0,e=1e+17,f=1e-07,g=-0.0 1700000000123"
    assert not re.search(r"=-?\d+i\b", line)


def test_numbers_read_back_exactly() -> None:
    values = [0.1, 1 / 3, 2.0**-1074, 1.7976931348623157e308, 123456789.123456789, 21]
    line = one("m", {}, {f"v{i}": v for i, v in enumerate(values)})
    fields = line.split(" ")[1].split(",")
    assert [float(f.split("=")[1]) for f in fields] == [float(v) for v in values]


def test_booleans() -> None:
    assert one("m", {}, {"on": True, "off": False}) == "m on=true,off=false 1700000000123"


def test_texts_are_quoted_with_quotes_and_backslashes_escaped() -> None:
    assert one("m", {}, {"action": "single"}) == 'm action="single" 1700000000123'
    assert one("m", {}, {"t": 'a "b" c\\d'}) == 'm t="a \\"b\\" c\\\\d" 1700000000123'
    assert one("m", {}, {"t": "comma, equals= space"}) == 'm t="comma, equals= space" 1700000000123'
    assert one("m", {}, {"t": ""}) == 'm t="" 1700000000123'


def test_measurement_escapes_commas_and_spaces_only() -> None:
    assert one("my measure,x=y", {}, {"v": 1.0}) == "my\\ measure\\,x=y v=1.0 1700000000123"


def test_tag_keys_values_and_field_keys_escape_commas_equals_spaces() -> None:
    line = one("m", {"a b": "c,d=e", "home": "x y"}, {"f,g=h i": 1.0})
    assert line == "m,a\\ b=c\\,d\\=e,home=x\\ y f\\,g\\=h\\ i=1.0 1700000000123"


def test_line_breaks_cannot_split_a_line() -> None:
    line = one("m", {"device": "a\nb\rc"}, {"k\n": 1.0})
    assert "\n" not in line and "\r" not in line
    assert line == "m,device=a\\nb\\rc k\\n=1.0 1700000000123"


def test_backslashes_are_kept_unless_they_would_escape_a_separator() -> None:
    assert one("m", {"device": "a\\b"}, {"v": 1.0}) == "m,device=a\\b v=1.0 1700000000123"
    # At the end, or before a comma, equals sign or space, a backslash would swallow the separator.
    assert one("m", {"device": "a\\"}, {"v": 1.0}) == "m,device=a/ v=1.0 1700000000123"
    assert one("m", {"device": "a\\,b"}, {"v": 1.0}) == "m,device=a/\\,b v=1.0 1700000000123"
    assert one("m", {"device": "a\\ b"}, {"k\\": 1.0}) == "m,device=a/\\ b k/=1.0 1700000000123"


def test_time_is_in_milliseconds_as_given() -> None:
    assert one("m", {}, {"v": 1.0}, 0).endswith(" 0")
    assert one("m", {}, {"v": 1.0}, 1).endswith(" 1")


def test_points_without_storable_fields_are_skipped() -> None:
    points = [
        Point("m", {"home": "h"}, {}, T),
        Point("m", {"home": "h"}, {"nan": math.nan, "inf": math.inf, "minf": -math.inf}, T),
        Point("m", {"home": "h"}, {"none": None, "list": [1]}, T),  # type: ignore[dict-item]
        Point("m", {"home": "h"}, {"v": 1.0}, T),
    ]
    assert encode(points) == ["m,home=h v=1.0 1700000000123"]


def test_non_finite_floats_and_huge_integers_are_left_out() -> None:
    assert one("m", {}, {"a": math.nan, "b": 2.5, "c": 10**400}) == "m b=2.5 1700000000123"


def test_time_is_not_a_storable_field_or_tag_key() -> None:
    assert one("m", {"time": "x", "home": "h"}, {"time": 5, "v": 1.0}) == "m,home=h v=1.0 1700000000123"


def test_subclasses_of_the_value_types() -> None:
    class Level(IntEnum):
        HIGH = 3

    class Word(StrEnum):
        SINGLE = "single"

    class Flag(int):
        pass

    line = one("m", {}, {"l": Level.HIGH, "w": Word.SINGLE, "f": Flag(2)})
    assert line == 'm l=3.0,w="single",f=2.0 1700000000123'


def test_many_points_in_order_and_the_cache_gives_the_same_lines() -> None:
    points = [Point("reading", {"home": "h", "device": f"d{i % 3}"}, {"v": i}, T + i) for i in range(10)]
    first = encode(points)
    assert first == encode(points)
    assert first[4] == "reading,device=d1,home=h v=4.0 1700000000127"
    assert len(first) == 10


def test_caches_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lineprotocol, "_CACHE_LIMIT", 5)
    points = [Point("reading", {"home": "h", "device": f"d{i}"}, {f"f{i}": 1.0}, T) for i in range(20)]
    lines = encode(points)
    assert lines[19] == "reading,device=d19,home=h f19=1.0 1700000000123"
    assert len(lineprotocol._series_cache) <= 5 and len(lineprotocol._field_key_cache) <= 5


# --- round trip through a reference parser ---------------------------------------------------------
def _split_unescaped(text: str, sep: str) -> list[str]:
    """Split on ``sep`` unless escaped (as InfluxDB's scanner reads: a backslash escapes the next char)."""
    parts, current, i = [], [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            current.append(text[i : i + 2])
            i += 2
            continue
        if ch == sep:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    parts.append("".join(current))
    return parts


def _unescape(text: str, specials: str) -> str:
    # As InfluxDB does: only "\<special>" is an escape; any other backslash is literal.
    for ch in specials:
        text = text.replace("\\" + ch, ch)
    return text


def _scan_to(text: str, i: int, stop: str) -> int:
    """Index of the first ``stop`` at or after ``i`` not escaped by a backslash."""
    while text[i] != stop:
        i += 2 if text[i] == "\\" else 1
    return i


def parse(line: str) -> Point:
    """A minimal line protocol parser following InfluxDB's rules, for these tests only."""
    series = _split_unescaped(line, " ")[0]
    fields_text, _, time_text = line[len(series) + 1 :].rpartition(" ")
    measurement, *tag_parts = _split_unescaped(series, ",")
    tags = {}
    for part in tag_parts:
        key, value = _split_unescaped(part, "=")
        tags[_unescape(key, ",= ")] = _unescape(value, ",= ")
    fields: dict[str, object] = {}
    i = 0
    while i < len(fields_text):
        equals = _scan_to(fields_text, i, "=")
        key = _unescape(fields_text[i:equals], ",= ")
        j = equals + 1
        if fields_text[j] == '"':  # a text: up to the closing quote; \" and \\ are its only escapes
            end = _scan_to(fields_text, j + 1, '"')
            fields[key] = re.sub(r'\\(["\\])', r"\1", fields_text[j + 1 : end])
            i = end + 2
        else:
            end = fields_text.find(",", j)
            end = len(fields_text) if end < 0 else end
            raw = fields_text[j:end]
            fields[key] = True if raw == "true" else False if raw == "false" else float(raw)
            i = end + 1
    return Point(_unescape(measurement, ", "), tags, fields, int(time_text))


@pytest.mark.parametrize(
    "text",
    ["plain", "two words", "a,b", "a=b", "a,b=c d", " leading", "trailing ", "=", ",", "  ", "x\\y",
     "caf\u00e9 \u2615", "quote\"inside", "\\\\double", "\u00fcber=1,2 3"],
)
def test_escapes_round_trip(text: str) -> None:
    tags = {"home": "h", "device": text, text: "v"}
    fields = {text: 1.5, "t": f'{text} "quoted" \\ {text}', "b": True}
    point = Point(f"m {text},", tags, fields, T)
    assert parse(one(point.measurement, tags, fields)) == point


def test_parser_reads_a_line_with_every_value_type() -> None:
    line = one("reading", {"home": "h", "device": "d"}, {"a": 1, "b": True, "c": "x,y=z w", "d": -0.5})
    assert parse(line) == Point("reading", {"device": "d", "home": "h"},
                                {"a": 1.0, "b": True, "c": "x,y=z w", "d": -0.5}, T)
