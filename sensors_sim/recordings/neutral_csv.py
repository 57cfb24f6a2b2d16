"""The neutral CSV: observations of any source (simulator, real recordings) as ``time,home,device,kind,value``
with optional ``room,role`` columns. The format is specified in ``docs/neutral-csv.md``.

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

from analytics.devices import KINDS_BY_KEY, ROLES
from sensors_sim.events import Observation, Value

COLUMNS = ("time", "home", "device", "kind", "value", "room", "role")
REQUIRED_COLUMNS = COLUMNS[:5]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_MS = timedelta(milliseconds=1)

# Accepted spellings of boolean values (matched as written, then lower-cased). Contact: True = closed, as
# zigbee2mqtt's ``contact: true``.
_BOOL_WORDS = {"1": True, "0": False, "true": True, "false": False}
_CONTACT_WORDS = {**_BOOL_WORDS, "closed": True, "open": False}
BOOL_KINDS = frozenset({"motion", "presence", "vibration", "leak"})
NUMBER_KINDS = frozenset({"plug", "climate"})
TEXT_KINDS = frozenset({"button"})

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
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"value {text!r} is not a number") from None
        if not math.isfinite(value):
            raise ValueError(f"value {text!r} is not a finite number")
        if kind == "plug" and value < 0:
            raise ValueError(f"power {text!r} is negative")
        return value

    return parse


def _parse_text(text: str) -> str:
    if not text:
        raise ValueError("the action is empty")
    return text


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
        number = float(value)
        return str(int(number)) if number.is_integer() and abs(number) < 1e15 else repr(number)
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
                              f"{','.join(REQUIRED_COLUMNS)} and optionally room,role, each once"
                              + (f" (unknown: {', '.join(unknown)})" if unknown else "")
                              + (f" (missing: {', '.join(missing)})" if missing else ""))
    width = len(columns)
    i_time, i_home, i_device, i_kind, i_value = (columns.index(c) for c in REQUIRED_COLUMNS)
    i_room = columns.index("room") if "room" in columns else None
    i_role = columns.index("role") if "role" in columns else None
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
            yield Observation(time_ms, home, device_name, kind, parse_value(row[i_value]), room, role)
    except NeutralCsvError:
        raise
    except ValueError as e:
        raise NeutralCsvError(name, line, str(e)) from None
    except csv.Error as e:
        raise NeutralCsvError(name, reader.line_num, f"malformed CSV: {e}") from None


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
    """Write observations (in the order given) with all seven columns; returns the number of rows written.

    ``time_format="iso"`` writes UTC ISO 8601 (``2008-02-24T23:20:14Z``), ``"epoch_ms"`` epoch milliseconds.
    Raises ValueError for an observation whose value does not fit its kind, or an unknown kind or role.
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
            value = format_value(o.kind, o.value)
        except ValueError as e:
            raise ValueError(f"observation {count} ({o.home}/{o.device}): {e}") from None
        writer.writerow((as_text(o.time_ms), o.home, o.device, o.kind, value, o.room or "", o.role or ""))
    return count


def to_csv_text(observations: Iterable[Observation], **kwargs: Literal["iso", "epoch_ms"]) -> str:
    """The neutral CSV of ``observations`` as a string (for tests and small exports)."""
    buffer = io.StringIO()
    write_csv(observations, buffer, **kwargs)
    return buffer.getvalue()
