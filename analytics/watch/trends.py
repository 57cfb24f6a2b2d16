"""Trends over weeks: ``activity_decline`` when the last week's daily activity falls well below the usual."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from analytics.alerts import AlertKind, Severity
from analytics.watch.base import Day, DetectorConfig, HomeState, Reading


class Trends:
    name: ClassVar[str] = "trends"
    version: ClassVar[int] = 1

    def __init__(self, config: DetectorConfig) -> None:
        self.config = config
        self.daily_counts: list[int] = []

    def activities_per_day(self) -> float | None:
        return float(np.median(self.daily_counts)) if self.daily_counts else None

    def observe(self, home: HomeState, reading: Reading) -> None:
        """The day's count is kept with the day (:class:`analytics.watch.base.Day`)."""

    def next_wake_ms(self, home: HomeState) -> int | None:
        return None  # judged as each day closes

    def advance(self, home: HomeState, t: int) -> None:
        """Judged as each day closes."""

    def day_closed(self, home: HomeState, day: Day, closed_at: int) -> None:
        c = self.config
        if day.away or day.partial:
            return
        self.daily_counts.append(day.activity)
        del self.daily_counts[:-(c.decline_recent_days + c.decline_baseline_days)]
        self._check_decline(home, closed_at)

    def _check_decline(self, home: HomeState, t: int) -> None:
        c = self.config
        counts = self.daily_counts
        if len(counts) < c.decline_recent_days + 14:
            return
        recent = float(np.mean(counts[-c.decline_recent_days:]))
        baseline = float(np.median(counts[:-c.decline_recent_days]))
        if baseline < c.decline_min_daily:
            return
        ratio = recent / baseline
        is_open = home.is_open(AlertKind.ACTIVITY_DECLINE)
        if ratio < c.decline_ratio and not is_open:
            home.raise_(AlertKind.ACTIVITY_DECLINE, t, Severity.WARNING,
                        f"Less active over the last {c.decline_recent_days} days: {recent:.0f} activities a day, "
                        f"{ratio:.0%} of the usual {baseline:.0f}.", recent=recent, baseline=baseline)
        elif ratio >= c.decline_clear_ratio and is_open:
            home.clear(AlertKind.ACTIVITY_DECLINE, t, f"Activity back to {ratio:.0%} of usual "
                       f"({recent:.0f} a day over the last {c.decline_recent_days} days).")
