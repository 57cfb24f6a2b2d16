"""The neutral CSV: observations of any source (simulator, real recordings) as ``time,home,device,kind,value``
with optional ``room,role`` columns and optional report columns (``temperature,battery,battery_low,illuminance,
linkquality``: what else a report said, so a report that changes nothing is carried too). The format is
specified in ``docs/neutral-csv.md``.

:func:`read_csv` sorts each file by time (stably), which needs the whole file in memory (about 1,000,000 rows
take about 190 MB); pass ``sort=False`` to stream a file already in time order with constant memory.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from operator import attrgetter
from pathlib import Path
from typing import IO, Literal

from sensors_sim.devices import KINDS, KINDS_BY_KEY, REPORT_FIELDS, REPORTS, REPORTS_BY_NAME, ROLES, ValueType
from sensors_sim.events import Observation, Value

COLUMNS = ("time", "home", "device", "kind", "value", "room", "role", *REPORT_FIELDS)
REQUIRED_COLUMNS = COLUMNS[:5]
REPORT_COLUMNS = REPORT_FIELDS  # temperature, battery, battery_low, illuminance, linkquality

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_MS = timedelta(milliseconds=1)

# Accepted spellings of boolean values (matched as written, then lower-cased). Contact: True = closed, as
# zigbee2mqtt's ``contact: true``.
_BOOL_WORDS = {"1": True, "0": False, "true": True, "false": False}
_CONTACT_WORDS = {**_BOOL_WORDS, "closed": True, "open": False}
# Each kind's value as its table describes it (sensors_sim/devices.py); contact has its own words above.
BOOL_KINDS = frozenset(k.key for k in KINDS if k.value_type is ValueType.BOOL and k.key != "contact")
NUMBER_KINDS = frozenset(k.key for k in KINDS if k.value_type is ValueType.NUMBER)
TEXT_KINDS = frozenset(k.key for k in KINDS if k.value_type is ValueType.TEXT)

PathOrFile = str | Path | IO[str]


class NeutralCsvError(ValueError):
    """A neutral CSV file that cannot be read; the message names the file and line."""

    def __init__(self, source: str, line: int, message: str) -> None:
        self.source, self.line = source, line
        super().__init__(f"{source}, line {line}: {message}")


# ------------------------------------------------------------------------------------------------------------
# Values and times


def parse_time(text: str) -> int:
    """Epoch milliseconds UTC from ISO 8601 with ``Z`` or an offset, or from epoch milliseconds (digits).

    Sub-millisecond digits are truncated (towards the past). Raises ValueError for anything else, including an
    ISO time without ``Z`` or offset (local to where?).
    """
    if text.isdigit() or (text[:1] == "-" and text[1:].isdigit()):
        return int(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"time {text!r} is neither ISO 8601 nor epoch milliseconds") from None
    if moment.tzinfo is None:
        raise ValueError(f"time {text!r} has no 'Z' or UTC offset")
    return (moment - EPOCH) // ONE_MS


def format_time(time_ms: int) -> str:
    """``2008-02-24T23:20:14Z``, or with ``.123`` milliseconds when they are not zero."""
    moment = EPOCH + timedelta(milliseconds=time_ms)
    spec = "seconds" if time_ms % 1000 == 0 else "milliseconds"
    return moment.isoformat(timespec=spec).replace("+00:00", "Z")


def _parse_bool(words: dict[str, bool]) -> Callable[[str], bool]:
    def parse(text: str) -> bool:
        value = words.get(text)
        if value is None:
            value = words.get(text.strip().lower())
            if value is None:
                raise ValueError(f"value {text!r} is not one of {', '.join(words)}")
        return value

    return parse


def _parse_number(kind: str) -> Callable[[str], float]:
    spec = KINDS_BY_KEY[kind]

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"value {text!r} is not a number") from None
        if not math.isfinite(value):
            raise ValueError(f"value {text!r} is not a finite number")
        if spec.minimum is not None and value < spec.minimum:
            below = "negative" if spec.minimum == 0 else f"below {spec.minimum:g}"
            raise ValueError(f"{spec.signature} {text!r} is {below}")
        return value

    return parse


def _parse_text(text: str) -> str:
    if not text:
        raise ValueError("the action is empty")
    return text


def _parse_reported_number(name: str) -> Callable[[str], float]:
    """A report column's number, within the range the gateway's contract accepts for that field."""
    spec = REPORTS_BY_NAME[name]

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"{name} {text!r} is not a number") from None
        if not math.isfinite(value):
            raise ValueError(f"{name} {text!r} is not a finite number")
        if (spec.minimum is not None and value < spec.minimum) or (spec.maximum is not None and value > spec.maximum):
            raise ValueError(f"{name} {text!r} is outside {_range(spec.minimum, spec.maximum)} {spec.unit}")
        return value

    return parse


def _range(low: float | None, high: float | None) -> str:
    def show(x: float) -> str:
        return str(int(x)) if float(x).is_integer() else repr(x)

    if high is None:
        return f"{show(low)} or more" if low is not None else "any"
    return f"{show(low)}-{show(high)}" if low is not None else f"{show(high)} or less"


def _parse_battery_low(text: str) -> bool:
    value = _BOOL_WORDS.get(text.strip().lower())
    if value is None:
        raise ValueError(f"battery_low {text!r} is not one of {', '.join(_BOOL_WORDS)}")
    return value


_LINK = REPORTS_BY_NAME["linkquality"]
_LINK_LOW, _LINK_HIGH = int(_LINK.minimum or 0), int(_LINK.maximum or 255)


def _parse_linkquality(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"linkquality {text!r} is not a whole number") from None
    if not _LINK_LOW <= value <= _LINK_HIGH:
        raise ValueError(f"linkquality {text!r} is outside {_range(_LINK.minimum, _LINK.maximum)}")
    return value


# Each report column's parser, in REPORT_COLUMNS order.
REPORT_PARSERS: dict[str, Callable[[str], float | bool | int]] = {
    r.name: _parse_battery_low if r.type is ValueType.BOOL else _parse_linkquality if r.whole
    else _parse_reported_number(r.name) for r in REPORTS}
assert tuple(REPORT_PARSERS) == REPORT_COLUMNS


def value_parser(kind: str) -> Callable[[str], Value]:
    """The function turning a CSV value of ``kind`` into an observation value; KeyError for unknown kinds."""
    if kind == "contact":
        return _parse_bool(_CONTACT_WORDS)
    if kind in BOOL_KINDS:
        return _parse_bool(_BOOL_WORDS)
    if kind in NUMBER_KINDS:
        return _parse_number(kind)
    if kind in TEXT_KINDS:
        return _parse_text
    raise KeyError(kind)


def format_value(kind: str, value: Value) -> str:
    """The CSV text of a value: contact ``closed``/``open``, other booleans ``1``/``0``, numbers shortest."""
    if kind == "contact" or kind in BOOL_KINDS:
        if not isinstance(value, bool):
            raise ValueError(f"a {kind} value must be a bool, not {value!r}")
        if kind == "contact":
            return "closed" if value else "open"
        return "1" if value else "0"
    if kind in NUMBER_KINDS:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ValueError(f"a {kind} value must be a finite number, not {value!r}")
        return _shortest(float(value))
    if kind in TEXT_KINDS:
        if not isinstance(value, str) or not value:
            raise ValueError(f"a {kind} value must be a non-empty string, not {value!r}")
        return value
    raise ValueError(f"unknown kind {kind!r}; valid kinds: {', '.join(sorted(KINDS_BY_KEY))}")


# ------------------------------------------------------------------------------------------------------------
# Reading


def read_csv(source: PathOrFile, *, sort: bool = True) -> Iterator[Observation]:
    """Observations of a neutral CSV file (a path or an open text file), in time order.

    ``sort=True`` (the default) reads the whole file, then sorts it by time, stably (rows at the same time keep
    their file order); a file already in order is not re-sorted. ``sort=False`` streams rows in file order with
    constant memory. Raises :class:`NeutralCsvError` naming the line of the first bad row.
    """
    if isinstance(source, str | Path):
        with open(source, newline="", encoding="utf-8-sig") as f:
            yield from _read(f, str(source), sort)
    else:
        yield from _read(source, str(getattr(source, "name", "<stream>")), sort)


def _read(f: IO[str], name: str, sort: bool) -> Iterator[Observation]:
    rows = _parse(f, name)
    if not sort:
        yield from rows
        return
    observations = list(rows)
    times = [o.time_ms for o in observations]
    if any(a > b for a, b in pairwise(times)):
        observations.sort(key=attrgetter("time_ms"))
    yield from observations


def _parse(f: IO[str], name: str) -> Iterator[Observation]:
    reader = csv.reader(f)
    try:
        header = next(reader, None)
    except csv.Error as e:
        raise NeutralCsvError(name, reader.line_num, f"malformed CSV: {e}") from None
    if header is None:
        raise NeutralCsvError(name, 1, "the file is empty; it needs the header " + ",".join(REQUIRED_COLUMNS))
    columns = [c.strip().lower() for c in header]
    unknown = [c for c in columns if c not in COLUMNS]
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if unknown or missing or len(set(columns)) != len(columns):
        raise NeutralCsvError(name, 1, f"bad header {','.join(header)!r}: the columns are "
                              f"{','.join(REQUIRED_COLUMNS)} and optionally room,role,{','.join(REPORT_COLUMNS)}, "
                              "each once"
                              + (f" (unknown: {', '.join(unknown)})" if unknown else "")
                              + (f" (missing: {', '.join(missing)})" if missing else ""))
    width = len(columns)
    i_time, i_home, i_device, i_kind, i_value = (columns.index(c) for c in REQUIRED_COLUMNS)
    i_room = columns.index("room") if "room" in columns else None
    i_role = columns.index("role") if "role" in columns else None
    # The report columns present: (index in the row, parser, place among the observation's report fields, the
    # values already parsed: battery levels, link qualities and light levels repeat).
    reports: list[tuple[int, Callable[[str], float | bool | int], int, dict[str, float | bool | int]]] = [
        (columns.index(c), REPORT_PARSERS[c], j, {}) for j, c in enumerate(REPORT_COLUMNS) if c in columns]
    # Everything but time and value repeats: validate each distinct device once and share its strings.
    devices: dict[tuple[str, ...], tuple[str, str, str, str | None, str | None, Callable[[str], Value]]] = {}
    line = 1
    try:
        for row in reader:
            line = reader.line_num
            if len(row) != width:
                if not row or row == [""]:
                    continue  # a blank line
                raise NeutralCsvError(name, line, f"expected {width} fields, found {len(row)}")
            key = (row[i_home], row[i_device], row[i_kind],
                   row[i_room] if i_room is not None else "", row[i_role] if i_role is not None else "")
            device = devices.get(key)
            if device is None:
                device = devices[key] = _device(key)
            home, device_name, kind, room, role, parse_value = device
            text = row[i_time]
            time_ms = int(text) if text.isdigit() else parse_time(text.strip())
            text = row[i_value]
            value = parse_value(text) if text else None  # empty: a report without an activity value
            if not reports:
                if value is None:
                    raise ValueError(_SAYS_NOTHING)
                yield Observation(time_ms, home, device_name, kind, value, room, role)
                continue
            reported: list[float | bool | int | None] = [None] * len(REPORT_COLUMNS)
            for index, parse, j, seen in reports:
                if cell := row[index]:
                    known = seen.get(cell)
                    if known is None:
                        known = parse(cell)
                        if len(seen) < _SEEN_MAX:
                            seen[cell] = known
                    reported[j] = known
            if value is None and reported == _NOTHING_REPORTED:
                raise ValueError(_SAYS_NOTHING)
            if kind == "climate" and reported[0] is not None:
                raise ValueError("a climate row's temperature is its value: leave the temperature column empty")
            yield Observation(time_ms, home, device_name, kind, value, room, role, *reported)  # type: ignore[arg-type]
    except NeutralCsvError:
        raise
    except ValueError as e:
        raise NeutralCsvError(name, line, str(e)) from None
    except csv.Error as e:
        raise NeutralCsvError(name, reader.line_num, f"malformed CSV: {e}") from None


_NOTHING_REPORTED = [None] * len(REPORT_COLUMNS)
_SEEN_MAX = 10_000  # distinct texts remembered per report column: bounded memory whatever the file
_SAYS_NOTHING = (f"the value is empty and the row reports nothing else (it may report {', '.join(REPORT_COLUMNS)} "
                 "instead)")


def _device(key: tuple[str, ...]) -> tuple[str, str, str, str | None, str | None, Callable[[str], Value]]:
    home, device, kind, room, role = (part.strip() for part in key)
    if not home:
        raise ValueError("the home is empty")
    if not device:
        raise ValueError("the device is empty")
    if kind not in KINDS_BY_KEY:
        raise ValueError(f"unknown kind {kind!r}; valid kinds: {', '.join(sorted(KINDS_BY_KEY))}")
    if role and role not in ROLES:
        raise ValueError(f"unknown role {role!r}; valid roles: {', '.join(sorted(ROLES))}")
    return home, device, kind, room or None, role or None, value_parser(kind)


# ------------------------------------------------------------------------------------------------------------
# Writing


def write_csv(observations: Iterable[Observation], target: PathOrFile, *,
              time_format: Literal["iso", "epoch_ms"] = "iso") -> int:
    """Write observations (in the order given) with all twelve columns; returns the number of rows written.

    ``time_format="iso"`` writes UTC ISO 8601 (``2008-02-24T23:20:14Z``), ``"epoch_ms"`` epoch milliseconds.
    Raises ValueError for an observation whose value does not fit its kind, a reported field out of its range,
    an observation that reports nothing, or an unknown kind or role.
    """
    if time_format not in ("iso", "epoch_ms"):
        raise ValueError(f"time_format must be 'iso' or 'epoch_ms', not {time_format!r}")
    if isinstance(target, str | Path):
        with open(target, "w", newline="", encoding="utf-8") as f:
            return _write(observations, f, time_format)
    return _write(observations, target, time_format)


def _write(observations: Iterable[Observation], f: IO[str], time_format: str) -> int:
    writer = csv.writer(f, lineterminator="\n")
    writer.writerow(COLUMNS)
    as_text: Callable[[int], str] = format_time if time_format == "iso" else str
    count = 0
    for count, o in enumerate(observations, 1):
        if o.role is not None and o.role not in ROLES:
            raise ValueError(f"observation {count}: unknown role {o.role!r}")
        try:
            value = "" if o.value is None else format_value(o.kind, o.value)
            reported = _format_reported(o)
        except ValueError as e:
            raise ValueError(f"observation {count} ({o.home}/{o.device}): {e}") from None
        writer.writerow((as_text(o.time_ms), o.home, o.device, o.kind, value, o.room or "", o.role or "",
                         *reported))
    return count


def _format_reported(o: Observation) -> tuple[str, ...]:
    """The report columns' text, checked as the reader will check it, so that what is written reads back."""
    fields = (o.temperature, o.battery, o.battery_low, o.illuminance, o.linkquality)
    if o.value is None and all(field is None for field in fields):
        raise ValueError("it has no value and reports nothing else")
    if o.temperature is not None and o.kind == "climate":
        raise ValueError("a climate observation's temperature is its value, not a separate temperature")
    texts = []
    for name, field in zip(REPORT_COLUMNS, fields, strict=True):
        if field is None:
            texts.append("")
            continue
        if name == "battery_low":
            if not isinstance(field, bool):
                raise ValueError(f"battery_low must be a bool, not {field!r}")
            text = "1" if field else "0"
        elif isinstance(field, bool) or not isinstance(field, int | float):
            raise ValueError(f"{name} must be a number, not {field!r}")
        elif name == "linkquality":
            if not isinstance(field, int):
                raise ValueError(f"linkquality must be a whole number, not {field!r}")
            text = str(field)
        else:
            text = _shortest(float(field)) if math.isfinite(field) else str(field)
        REPORT_PARSERS[name](text)  # raises for a value out of range
        texts.append(text)
    return tuple(texts)


def _shortest(number: float) -> str:
    return str(int(number)) if number.is_integer() and abs(number) < 1e15 else repr(number)


def to_csv_text(observations: Iterable[Observation], **kwargs: Literal["iso", "epoch_ms"]) -> str:
    """The neutral CSV of ``observations`` as a string (for tests and small exports)."""
    buffer = io.StringIO()
    write_csv(observations, buffer, **kwargs)
    return buffer.getvalue()
