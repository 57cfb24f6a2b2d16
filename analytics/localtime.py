"""The resident's local time, from event times: detectors learn by time of day in the home's own zone.

A tzinfo is passed in (the caller builds it from the home's zone name), so nothing here reads a clock or a file.
Offsets are looked up once per hour of event time and kept, as conversions are on the detectors' hot path.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS


class LocalTime:
    def __init__(self, tz: tzinfo) -> None:
        self.tz = tz
        self._offsets: dict[int, int] = {}

    def offset_ms(self, time_ms: int) -> int:
        hour = time_ms // HOUR_MS
        offset = self._offsets.get(hour)
        if offset is None:
            if len(self._offsets) > 4096:
                self._offsets.clear()
            delta = datetime.fromtimestamp(hour * 3600, UTC).astimezone(self.tz).utcoffset()
            offset = self._offsets[hour] = int(delta.total_seconds() * 1000) if delta else 0
        return offset

    def local_ms(self, time_ms: int) -> int:
        """Milliseconds since 1970-01-01 00:00 *local*: day and time-of-day arithmetic without datetimes."""
        return time_ms + self.offset_ms(time_ms)

    def utc_ms(self, local_ms: int) -> int:
        """The inverse of :meth:`local_ms` (around a change of offset, the offset before it is used)."""
        return local_ms - self.offset_ms(local_ms - self.offset_ms(local_ms))

    def day(self, time_ms: int) -> int:
        return self.local_ms(time_ms) // DAY_MS

    def minute_of_day(self, time_ms: int) -> float:
        return (self.local_ms(time_ms) % DAY_MS) / MINUTE_MS

    def clock(self, time_ms: int, *, since_ms: int | None = None) -> str:
        """``14:02``; ``yesterday 22:40`` or ``3 Dec 22:40`` when that is not the day of ``since_ms``."""
        local = self.local_ms(time_ms)
        minutes = (local % DAY_MS) // MINUTE_MS
        text = f"{minutes // 60:02d}:{minutes % 60:02d}"
        if since_ms is None:
            return text
        days = self.day(since_ms) - local // DAY_MS
        if days == 0:
            return text
        if days == 1:
            return f"yesterday {text}"
        date = datetime.fromtimestamp(local / 1000, UTC)
        return f"{date.day} {date:%b} {text}"


def duration(minutes: float) -> str:
    """``1 h 20 min``, ``45 min``, ``2 days 3 h``: how a carer reads a length of time."""
    total = max(0, round(minutes))
    days, rest = divmod(total, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days} day{'s' if days > 1 else ''}" + (f" {hours} h" if hours else "")
    if hours:
        return f"{hours} h" + (f" {mins} min" if mins else "")
    return f"{mins} min"


def iso(time_ms: int) -> str:
    """``2026-03-01T14:02:00Z``: an event time for data (JSON) rather than for people."""
    return datetime.fromtimestamp(time_ms / 1000, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
