"""The local time something first happens each day (getting up, the first meal), and when its absence is unusual."""

from __future__ import annotations

import numpy as np


class FirstOfDay:
    def __init__(self, *, default_min: float, margin_min: float = 45.0, quantile: float = 0.95,
                 min_days: int = 5, ceiling_min: float = 14 * 60.0, keep_days: int = 60) -> None:
        self.default_min = default_min
        self.margin_min = margin_min
        self.quantile = quantile
        self.min_days = min_days
        self.ceiling_min = ceiling_min
        self._values = np.full(keep_days, np.nan)
        self._next = 0
        self._deadline = default_min

    def learn(self, minute_of_day: float) -> None:
        self._values[self._next % self._values.size] = minute_of_day
        self._next += 1
        if self.days >= self.min_days:  # once a day: cheap enough to keep the deadline ready
            late = float(np.nanquantile(self._values, self.quantile)) + self.margin_min
            self._deadline = min(self.ceiling_min, late)

    @property
    def days(self) -> int:
        return min(self._next, self._values.size)

    def usual_min(self) -> float | None:
        """By when it has happened on 9 days in 10."""
        return float(np.nanquantile(self._values, 0.9)) if self.days else None

    def deadline_min(self) -> float:
        """Minutes after local midnight after which its not having happened today is unusual."""
        return self._deadline
