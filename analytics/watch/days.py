"""The day in figures (:class:`analytics.summary.DaySummary`): what the API shows a coordinator, summed as it goes
and handed over as each local day closes (kept in the shared state until the caller takes it)."""

from __future__ import annotations

from typing import ClassVar

from analytics.elapsed import BED
from analytics.localtime import MINUTE_MS
from analytics.watch.base import BATHROOMS, Day, DetectorConfig, HomeState, Reading


class Days:
    name: ClassVar[str] = "days"
    version: ClassVar[int] = 1

    def __init__(self, config: DetectorConfig) -> None:
        self._bed_mark: int | None = None  # in bed since (or since the day began): not yet added to a day
        self._out_mark: int | None = None  # out since (or since the day began)

    def observe(self, home: HomeState, reading: Reading) -> None:
        t, day = reading.time_ms, home.day
        if self._out_mark is None and home.out_since_ms is not None:
            self._out_mark = home.out_since_ms
        elif self._out_mark is not None and home.out_since_ms is None:
            if day is not None:
                day.out_ms += max(0, t - self._out_mark)
            self._out_mark = None
        if reading.change is None:
            return
        was_in_bed, in_bed = reading.before.context == BED, home.context == BED
        if in_bed and not was_in_bed:
            self._bed_mark = t
        elif was_in_bed and not in_bed and self._bed_mark is not None:
            if day is not None:
                day.bed_ms += max(0, t - self._bed_mark)
            self._bed_mark = None
        if day is not None and not reading.before.away:
            self._count(home, day, reading, was_in_bed)

    def next_wake_ms(self, home: HomeState) -> int | None:
        return None  # the caller wakes the detector as each day ends

    def advance(self, home: HomeState, t: int) -> None:
        """Days close through :meth:`day_closed`."""

    def day_closed(self, home: HomeState, day: Day, closed_at: int) -> None:
        if self._bed_mark is not None:  # a night in bed counts on both sides of midnight
            day.bed_ms += max(0, closed_at - self._bed_mark)
            self._bed_mark = max(closed_at, self._bed_mark)
        if self._out_mark is not None:
            day.out_ms += max(0, closed_at - self._out_mark)
            self._out_mark = max(closed_at, self._out_mark)
        if not day.away:
            home.summaries.append(day.summary(home.home, home.local))

    def _count(self, home: HomeState, day: Day, reading: Reading, was_in_bed: bool) -> None:
        t, info, previous = reading.time_ms, reading.info, reading.before.activity_ms
        day.activity += 1
        day.first_ms = day.first_ms if day.first_ms is not None else t
        day.last_ms = t
        if (info.room or "").lower() in BATHROOMS:
            if day.last_bathroom_ms is None or t - day.last_bathroom_ms >= 15 * MINUTE_MS:
                day.bathroom_visits += 1
            day.last_bathroom_ms = t
        if home.is_meal(info):
            if day.last_meal_ms is None or t - day.last_meal_ms >= 60 * MINUTE_MS:
                day.meals += 1
            day.last_meal_ms = t
        minute = home.local.minute_of_day(t)
        if minute >= 23 * 60 or minute < 6 * 60:
            got_up = was_in_bed and home.context != BED
            quiet_then_about = not home.has_bed_pad and info.room != "bedroom" and previous is not None \
                and t - previous >= 60 * MINUTE_MS
            day.night_getups += got_up or quiet_then_about
