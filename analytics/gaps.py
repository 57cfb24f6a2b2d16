"""How long a resident usually goes without any activity, by time of day: the model behind inactivity alerts.

Each gap between two activities is learned one at a time (River style) into a histogram for the half-hour of
the local day it started in. Its threshold is a high quantile of the gaps that started in that half-hour and
its neighbours, with a margin, kept between a floor and a ceiling; until enough gaps are known it leans on a
default. State is a small numpy array: picklable, checkpointed with the detector.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

DAY_MIN = 24 * 60
# Gap lengths from 1 minute to 2 days on a log scale; a gap is counted in the first edge at or above it.
EDGES_MIN = np.geomspace(1.0, 2 * 24 * 60, 96)


class GapModel:
    def __init__(self, *, slots: int = 48, quantile: float = 0.99, margin: float = 1.25, neighbours: int = 1,
                 default_min: float = 180.0, floor_min: float = 30.0, ceiling_min: float = 16 * 60.0,
                 prior_weight: float = 20.0) -> None:
        if not 0.5 <= quantile < 1:
            raise ValueError("quantile must be in [0.5, 1)")
        self.slots = slots  # parts of the local day learned apart (48: half-hours; 1: time of day ignored)
        self.quantile = quantile
        self.margin = margin
        self.neighbours = neighbours
        self.default_min = default_min
        self.floor_min = floor_min
        self.ceiling_min = ceiling_min
        self.prior_weight = prior_weight  # gaps it takes for what was learned to count as much as the default
        self.counts: npt.NDArray[np.int64] = np.zeros((slots, EDGES_MIN.size), dtype=np.int64)

    def slot(self, minute_of_day: float) -> int:
        return int(minute_of_day * self.slots // DAY_MIN) % self.slots

    def learn_one(self, start_minute_of_day: float, gap_min: float) -> None:
        """A gap of ``gap_min`` minutes that began at ``start_minute_of_day`` (local time)."""
        bucket = min(int(np.searchsorted(EDGES_MIN, gap_min)), EDGES_MIN.size - 1)
        self.counts[self.slot(start_minute_of_day), bucket] += 1

    def known(self, start_minute_of_day: float) -> int:
        """How many gaps the threshold at this time of day rests on."""
        return int(self._pooled(self.slot(start_minute_of_day)).sum())

    def quantile_min(self, start_minute_of_day: float, q: float) -> float | None:
        """The ``q`` quantile of the learned gaps around this time of day (upper bucket edge), or None."""
        pooled = self._pooled(self.slot(start_minute_of_day))
        total = pooled.sum()
        if total == 0:
            return None
        index = int(np.searchsorted(np.cumsum(pooled), q * total))
        return float(EDGES_MIN[min(index, EDGES_MIN.size - 1)])

    def threshold_min(self, start_minute_of_day: float) -> float:
        """Minutes without activity after which a gap starting at this time of day is unusual."""
        learned = self.quantile_min(start_minute_of_day, self.quantile)
        n = self.known(start_minute_of_day)
        if learned is None:
            value = self.default_min
        else:
            weight = n / (n + self.prior_weight)
            value = weight * learned * self.margin + (1 - weight) * self.default_min
        return float(min(self.ceiling_min, max(self.floor_min, value)))

    def usual_min(self, start_minute_of_day: float) -> float | None:
        """What a carer is told is usual: the time within which 9 gaps in 10 end, at this time of day."""
        return self.quantile_min(start_minute_of_day, 0.9)

    def _pooled(self, slot: int) -> npt.NDArray[np.int64]:
        if self.slots == 1:
            only: npt.NDArray[np.int64] = self.counts[0]
            return only
        rows = [(slot + d) % self.slots for d in range(-self.neighbours, self.neighbours + 1)]
        pooled: npt.NDArray[np.int64] = self.counts[rows].sum(axis=0)
        return pooled
