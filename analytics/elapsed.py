"""How long since the last activity is unusual *at this time of day*: the model behind inactivity alerts.

For each half-hour of the local day it learns, one day at a time, the longest the resident went without any
activity during that half-hour (at 03:00 that is the hours since going to bed; at 14:00 a few minutes). The
limit at a moment is a high quantile of those daily maxima around that half-hour, with a margin: exceeding it
means the present stillness is longer than anything usual at this hour. Asking "how long since?" at the moment
rather than "how long do gaps that start now last?" is what makes a morning lie-in end in an alert at the time
the resident is usually up, and a fall at 15:00 end in one within the hour.

Maxima are kept apart by context (out of bed and chair, in bed, in the chair), since pads say why someone is
still. Gaps are fed in event time as they end; nothing here reads a clock. State is numpy arrays: picklable.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import numpy.typing as npt

from analytics.localtime import DAY_MS, MINUTE_MS

UP, BED, CHAIR = 0, 1, 2
CONTEXTS = ("up", "bed", "chair")
SLOTS = 48
SLOT_MS = DAY_MS // SLOTS
# Stillness from 1 minute to 2 days on a log scale (8.7 % steps); a value is counted in the first edge above it.
EDGES_MIN = np.geomspace(1.0, 2 * 24 * 60, 96)


def stillness_by_slot(start_local_ms: int, end_local_ms: int) -> Iterator[tuple[int, int, float]]:
    """A stillness cut at the half-hours it spans: (local day, half-hour, minutes still by the end of that piece)."""
    piece_start = start_local_ms
    while piece_start < end_local_ms:
        slot_abs = piece_start // SLOT_MS
        piece_end = min((slot_abs + 1) * SLOT_MS, end_local_ms)
        yield slot_abs // SLOTS, slot_abs % SLOTS, (piece_end - start_local_ms) / MINUTE_MS
        piece_start = piece_end


class ElapsedModel:
    def __init__(self, defaults_min: npt.NDArray[np.float64], *, quantile: float = 0.97, margin: float = 1.3,
                 neighbours: int = 1, prior_days: float = 5.0, floor_min: float = 30.0,
                 ceiling_min: float = 16 * 60.0) -> None:
        if defaults_min.shape != (len(CONTEXTS), SLOTS):
            raise ValueError(f"defaults_min must have shape {(len(CONTEXTS), SLOTS)}")
        self.defaults_min = defaults_min.astype(float)
        self.quantile = quantile
        self.margin = margin
        self.neighbours = neighbours
        # Samples (days x pooled slots) it takes for what was learned to weigh as much as the default.
        self.prior_samples = prior_days * (2 * neighbours + 1)
        self.floor_min = floor_min
        self.ceiling_min = ceiling_min
        self.counts = np.zeros((len(CONTEXTS), SLOTS, EDGES_MIN.size), dtype=np.int32)
        self._day: int | None = None
        self._day_max = np.full((len(CONTEXTS), SLOTS), np.nan)
        self.limits_min = np.empty((len(CONTEXTS), SLOTS))
        self.usual_min = np.full((len(CONTEXTS), SLOTS), np.nan)
        self.days_learned = 0
        self._recompute()

    def set_defaults(self, defaults_min: npt.NDArray[np.float64]) -> None:
        self.defaults_min = defaults_min.astype(float)
        self._recompute()

    def learn_gap(self, context: int, start_local_ms: int, end_local_ms: int) -> bool:
        """A stretch without activity, in local milliseconds. Returns True when a day was closed (limits moved)."""
        closed = False
        for day, slot, still in stillness_by_slot(start_local_ms, end_local_ms):
            if day != self._day:
                closed |= self._close_day()
                self._day = day
            if not still <= self._day_max[context, slot]:  # NaN (nothing yet) or a longer stillness
                self._day_max[context, slot] = still
        return closed

    def limit_min(self, context: int, local_ms: int) -> float:
        return float(self.limits_min[context, (local_ms // SLOT_MS) % SLOTS])

    def usual(self, context: int, local_ms: int) -> float | None:
        """What a carer is told is usual here: the stillness 9 days in 10 stay within, or None before learning."""
        value = self.usual_min[context, (local_ms // SLOT_MS) % SLOTS]
        return None if np.isnan(value) else float(value)

    def deadline_local(self, context: int, since_local_ms: int) -> int:
        """The first local moment at which stillness since ``since_local_ms`` passes the limit of its half-hour."""
        slot_abs = since_local_ms // SLOT_MS
        for k in range(slot_abs, slot_abs + 2 * SLOTS):
            start = k * SLOT_MS
            candidate: int = max(start, since_local_ms + round(self.limits_min[context, k % SLOTS] * MINUTE_MS))
            if candidate < start + SLOT_MS:
                return candidate
        return since_local_ms + round(self.ceiling_min * MINUTE_MS)

    def _close_day(self) -> bool:
        seen = ~np.isnan(self._day_max)
        if not seen.any():
            return False
        buckets = np.minimum(np.searchsorted(EDGES_MIN, np.nan_to_num(self._day_max)), EDGES_MIN.size - 1)
        ctx, slot = np.nonzero(seen)
        np.add.at(self.counts, (ctx, slot, buckets[ctx, slot]), 1)
        self._day_max.fill(np.nan)
        self.days_learned += 1
        self._recompute()
        return True

    def _recompute(self) -> None:
        pooled = np.zeros_like(self.counts)
        for shift in range(-self.neighbours, self.neighbours + 1):
            pooled += np.roll(self.counts, shift, axis=1)
        total = pooled.sum(axis=2)
        cumulative = np.cumsum(pooled, axis=2)
        safe = np.maximum(total, 1)[..., None]
        learned = EDGES_MIN[np.minimum((cumulative < self.quantile * safe).sum(axis=2), EDGES_MIN.size - 1)]
        usual = EDGES_MIN[np.minimum((cumulative < 0.9 * safe).sum(axis=2), EDGES_MIN.size - 1)]
        weight = total / (total + self.prior_samples)
        blended = weight * learned * self.margin + (1 - weight) * self.defaults_min
        self.limits_min = np.clip(blended, self.floor_min, self.ceiling_min)
        self.usual_min = np.where(total > 0, usual, np.nan)
