"""The readings store port: what the gateway writes and what the API reads, whatever the database.

Two adapters serve it: :class:`~gateway.stores.readings.influx.InfluxReadingStore` (InfluxDB 2.x) and
:class:`~gateway.stores.readings.sqlite.SqliteReadingStore` (the embedded default). Both pass the same
behavioural tests (``tests/stores/contract.py``), so what is written here holds for either:

* A point's identity is (measurement, home, device, time_ms). Writing a point again with the same identity
  overwrites it field by field, as InfluxDB does: the stored fields become the union of the old and the new,
  the new value winning where both have a field. A redelivered message therefore rewrites, never duplicates.
* Every number is stored and returned as a float (``21`` reads back as ``21.0``): zigbee2mqtt sends ``21``
  and later ``21.5`` for the same field, and InfluxDB would refuse the second as a field type conflict.
  Booleans stay booleans and texts stay texts. Non-finite floats (NaN, infinities) are not stored.
* Tags with an empty value are not stored (InfluxDB has no empty tag). A point without fields is skipped.
* A reading that showed activity carries the change in the text field :data:`ACTIVITY_FIELD`, as ingest decided
  it (``gateway.reading_facts``); the API and the dashboard read it there and never decide it again. A hub cannot
  forge it: the contract keeps no text field of a name it does not know (``gateway.contract.state_fields``).
* Daily summaries are keyed by (home, day); writing one again overwrites it value by value.
* :meth:`ReadingStore.delete_range` removes everything of one home stamped in a period: its points of every
  measurement, and its daily summaries, a summary being stamped at midnight UTC of its day (as InfluxDB keeps
  it). Retention and erasure use it (``gateway/purge.py``); deleting a period already empty is no error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Protocol

__all__ = ["ACTIVITY_FIELD", "DailySummary", "FieldValue", "Point", "ReadingStore", "stored_activity", "stored_fields",
           "stored_summary_values"]

FieldValue = bool | int | float | str
RESERVED_KEY = "time"  # InfluxDB refuses a tag or field of that name (and the point with it)
ACTIVITY_FIELD = "telecare_activity"  # named so that no zigbee2mqtt device's own field can clash with it


@dataclass(slots=True)
class Point:
    """One point: a device's report (``reading``), its availability, or its hub's state (``hub``)."""

    measurement: str  # "reading", "availability", "hub"
    tags: dict[str, str]  # at least home and device (hub: home only); kind, room, role when known
    fields: dict[str, FieldValue]
    time_ms: int  # event time, epoch milliseconds UTC


def stored_activity(point: Point) -> str | None:
    """The activity change a stored reading showed (analytics.activity.Change's value), or None."""
    change = point.fields.get(ACTIVITY_FIELD)
    return change if isinstance(change, str) else None


@dataclass(slots=True)
class DailySummary:
    """One resident's day as the detectors closed it; stored as computed, never recomputed per request."""

    home: str
    day: date  # the resident's local calendar day
    values: dict[str, float]  # e.g. first_activity_min, bed_minutes, bathroom_visits, meals, out_minutes


class ReadingStore(Protocol):
    """Where readings go, and the reads the API needs. Safe to write from one thread and read from others."""

    def write(self, points: Sequence[Point]) -> None:
        """Store the points (idempotently: see the module docstring).

        Raises :class:`gateway.errors.StoreUnavailable` when the store cannot take them now (retry later) and
        :class:`gateway.errors.PointsRejected` when it refuses the data itself (retrying cannot help).
        """
        ...

    def timeline(
        self, home: str, start_ms: int, end_ms: int, *, device: str | None = None, limit: int = 10_000,
        activity_only: bool = False,
    ) -> list[Point]:
        """The ``reading`` points of one home with ``start_ms <= time_ms < end_ms``, at most ``limit`` of
        them, ordered by time then device: one Point per point written, with all its tags and fields.
        ``activity_only``: only the points that carry :data:`ACTIVITY_FIELD` (about one reading in eight: the
        store leaves out the rest, so the API does not parse them).

        Raises :class:`gateway.errors.StoreUnavailable` when the store cannot be reached.
        """
        ...

    def write_daily_summaries(self, summaries: Sequence[DailySummary]) -> None:
        """Store the summaries, overwriting those of the same (home, day). Raises as :meth:`write`."""
        ...

    def daily_summaries(self, home: str, first_day: date, last_day: date) -> list[DailySummary]:
        """The home's summaries from ``first_day`` to ``last_day``, both included, ordered by day."""
        ...

    def delete_range(self, home: str, start_ms: int, end_ms: int) -> None:
        """Delete every point of ``home`` with ``start_ms <= time_ms < end_ms`` (readings, availability, hub) and
        its daily summaries whose day starts (midnight UTC) in that period. Other homes are untouched.

        Raises :class:`gateway.errors.StoreUnavailable` when the store cannot be reached (nothing is assumed
        deleted: the caller tries again later).
        """
        ...

    def close(self) -> None:
        """Release connections. The store is not used afterwards."""
        ...


def stored_fields(fields: dict[str, FieldValue]) -> dict[str, FieldValue]:
    """The fields as every store keeps them: numbers as floats; NaN, infinities, values of other types and
    fields named ``time`` or ``""`` left out. (The line protocol encoder applies the same rules inline.)"""
    out: dict[str, FieldValue] = {}
    for name, value in fields.items():
        if not name or name == RESERVED_KEY:
            continue
        if isinstance(value, bool):
            out[name] = bool(value)
        elif isinstance(value, str):
            out[name] = str(value)
        elif isinstance(value, int | float):
            try:
                number = float(value)
            except OverflowError:
                continue
            if number - number == 0.0:  # finite
                out[name] = number
    return out


def stored_summary_values(values: dict[str, float]) -> dict[str, float]:
    """A summary's values as every store keeps them: floats (booleans as 0.0/1.0), finite ones only."""
    out: dict[str, float] = {}
    for name, value in values.items():
        if not name or name == RESERVED_KEY or isinstance(value, str):
            continue
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError):
            continue
        if number - number == 0.0:
            out[name] = number
    return out
