"""A lean InfluxDB line protocol encoder: points in, one line per point out (epoch milliseconds).

Built for the gateway's hot path (10,000 readings/s on two cores): a point's series (measurement and sorted,
escaped tags) and its field keys are escaped once and cached, so a steady stream of points costs one tuple, a
few f-strings and one join per point.

The rules, and why:

* Measurement: commas and spaces escaped. Tag keys, tag values and field keys: commas, equals signs and
  spaces escaped. A line break in any of them is written as the two characters ``\\n`` (``\\r`` likewise):
  line protocol has no way to carry it, and a raw one would split the line.
* A backslash is kept as it is, except one at the end of a name or just before a comma, equals sign or space:
  InfluxDB's parser cannot read that back faithfully (it would swallow the following separator and corrupt
  the rest of the line), so such a backslash is written as ``/``.
* Tags with an empty key or value are dropped (InfluxDB has no empty tag); tags are sorted by key, as InfluxDB
  recommends for the fastest writes.
* Booleans are ``true``/``false``. EVERY number is written as a float (``21`` -> ``21.0``, never ``21i``):
  zigbee2mqtt sends ``21`` and later ``21.5`` for the same field, and InfluxDB refuses the second with a
  field type conflict if the first was an integer. NaN and infinities are left out (line protocol cannot
  carry them).
* Texts are quoted, with ``"`` and ``\\`` escaped.
* A field or tag named ``time`` is left out: InfluxDB refuses it (and the whole point with it).
* A point left with no fields is skipped: line protocol has no line without fields.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable

from gateway.stores.readings.base import RESERVED_KEY, Point

__all__ = ["encode", "escape_field_key", "escape_measurement", "escape_string", "escape_tag"]

_MEASUREMENT_ESCAPES = str.maketrans({",": "\\,", " ": "\\ ", "\n": "\\n", "\r": "\\r"})
_KEY_ESCAPES = str.maketrans({",": "\\,", "=": "\\=", " ": "\\ ", "\n": "\\n", "\r": "\\r"})
# A backslash that InfluxDB would read as escaping what follows it (or that ends the text).
_AMBIGUOUS_BACKSLASH = re.compile(r"\\(?=[,= ]|$)")

# Caches: (measurement, *tag items) -> escaped "measurement,k=v,k=v"; field key -> escaped "key=" ("" = skip).
# Cleared when they grow past _CACHE_LIMIT (devices come and go; the cache must not grow without bound).
_CACHE_LIMIT = 100_000
_MAX_FLOAT_INT = int(sys.float_info.max)
_series_cache: dict[tuple, str] = {}
_field_key_cache: dict[str, str] = {}


def _fix_backslashes(text: str) -> str:
    return _AMBIGUOUS_BACKSLASH.sub("/", text) if "\\" in text else text


def escape_measurement(name: str) -> str:
    """The measurement as written in a line: commas and spaces escaped."""
    return _fix_backslashes(name).translate(_MEASUREMENT_ESCAPES)


def escape_tag(text: str) -> str:
    """A tag key, tag value or field key as written in a line: commas, equals signs and spaces escaped."""
    return _fix_backslashes(text).translate(_KEY_ESCAPES)


escape_field_key = escape_tag


def escape_string(text: str) -> str:
    """A text field value as written between its quotes: ``\\`` and ``"`` escaped."""
    if "\\" in text:
        text = text.replace("\\", "\\\\")
    if '"' in text:
        text = text.replace('"', '\\"')
    return text


def _series(key: tuple) -> str:
    measurement, *items = key
    parts = [escape_measurement(measurement)]
    for k, v in sorted(items):
        if k and v and k != RESERVED_KEY:
            parts.append(f"{escape_tag(str(k))}={escape_tag(str(v))}")
    line = ",".join(parts)
    if len(_series_cache) >= _CACHE_LIMIT:
        _series_cache.clear()
    _series_cache[key] = line
    return line


def _field_key(key: str) -> str:
    escaped = f"{escape_tag(key)}=" if key and key != RESERVED_KEY else ""
    if len(_field_key_cache) >= _CACHE_LIMIT:
        _field_key_cache.clear()
    _field_key_cache[key] = escaped
    return escaped


def encode(points: Iterable[Point]) -> list[str]:
    """One line of line protocol per point (time in milliseconds); points without fields are skipped."""
    lines: list[str] = []
    append = lines.append
    series_get = _series_cache.get
    key_get = _field_key_cache.get
    for point in points:
        fields = point.fields
        if not fields:
            continue
        key = (point.measurement, *point.tags.items())
        series = series_get(key)
        if series is None:
            series = _series(key)
        parts: list[str] = []
        add = parts.append
        for name, value in fields.items():
            k = key_get(name)  # the escaped key and "=", or "" for a field that cannot be stored
            if k is None:
                k = _field_key(name)
            if not k:
                continue
            # Dispatched on the exact type (the hot path of every write), which mypy does not narrow by: hence the
            # ignores on the lines that rely on it.
            kind = type(value)
            if kind is float:
                if value - value == 0.0:  # type: ignore[operator]  # finite: NaN - NaN and inf - inf are NaN
                    add(f"{k}{value!r}")
            elif kind is int:
                if -_MAX_FLOAT_INT <= value <= _MAX_FLOAT_INT:  # type: ignore[operator]  # beyond, no float holds it
                    add(f"{k}{float(value)!r}")
            elif kind is bool:
                add(k + ("true" if value else "false"))
            elif kind is str:
                add(f'{k}"{escape_string(value)}"')  # type: ignore[arg-type]
            else:
                _append_other(parts, k, value)
        if parts:
            append(f"{series} {','.join(parts)} {point.time_ms}")
    return lines


def _append_other(parts: list[str], key: str, value: object) -> None:
    """Subclasses of the four value types (rare: enums, numpy scalars registered as numbers ...)."""
    if isinstance(value, bool):
        parts.append(key + ("true" if value else "false"))
    elif isinstance(value, str):
        parts.append(f'{key}"{escape_string(str(value))}"')
    elif isinstance(value, int | float):
        try:
            number = float(value)
        except OverflowError:
            return
        if number - number == 0.0:
            parts.append(f"{key}{number!r}")
    # anything else (None, lists, dicts) is not a field value: left out
