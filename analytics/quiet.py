"""How long a quiet period *here, now* may normally last: a survival model of the resident's stillness.

A quiet period starts with an activity and ends with the next one. Where and when it started says much about how
long it may last: after the bathroom's motion sensor at 15:00 the next activity usually comes within minutes;
after the bed pad says "in bed" at 23:00, within hours. For each period that lasted at least ``MIN_LEARNED_MIN``
the model keeps when it started (minute of the local day), where (the room, or the device when the room is
unknown), the context (up, in bed, in the chair: :mod:`analytics.elapsed`) and how long it lasted.

For a period under way it estimates the survival function S(x) = P(the period lasts longer than x | it has lasted
``MIN_LEARNED_MIN`` and began here, at this time of day). Learned periods are weighted by how close their start
was in time of day (a Gaussian kernel), blending four levels, each shrunk towards the one below by a pseudo-count:
this place near this time, this place at any time, this context near this time, and a generous default for a
home not yet learned. The limit is where S falls below a per-resident bound: the chance per period that keeps
false alerts within ``budget_per_month`` for a resident with this many quiet periods a month. A bound that small
lies past what weeks of data can show, so the tail beyond where S falls to ``tail_from`` is taken as exponential
with the mean excess the data show there (peaks over a threshold), rather than a fixed margin.

Carers' feedback widens limits where they said an alert was a false alarm (:meth:`QuietModel.widen`), within
bounds; real incidents never widen them. Time comes with the data; nothing here reads a clock. State is numpy
arrays and small dicts, bounded in size (``max_periods``, ``keep_days``, ``MAX_PLACES``): picklable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from analytics.localtime import DAY_MS, MINUTE_MS

MIN_LEARNED_MIN = 10.0  # shorter periods say nothing about the tail, and are most of them
GRID_MIN = np.geomspace(MIN_LEARNED_MIN, 48 * 60.0, 80)
DAY_MIN = 1440.0
MAX_PLACES = 64  # rooms and devices are few; a misbehaving hub's thousands of names share one place
OTHER_PLACE = "?"
QUARTER_MIN = 15


@dataclass(frozen=True)
class QuietSettings:
    """Policy, documented in ``docs/alerts.md`` and measured in ``docs/benchmarks.md``."""

    budget_per_month: float = 1.0  # false stillness alerts a resident-month the bound aims at
    max_alpha: float = 0.05  # the bound is never looser than this, however few periods a home has
    tail_from: float = 0.2  # S below this is extrapolated (exponential tail, mean excess)
    kernel_min: float = 60.0  # time-of-day kernel's standard deviation
    place_time_prior: float = 4.0  # pseudo-counts of each level towards the one below
    place_prior: float = 4.0
    context_prior: float = 2.0
    floor_min: float = 20.0
    ceiling_min: float = 16 * 60.0
    max_periods: int = 3000
    keep_days: int = 42
    widen_step: float = 1.25  # each false alarm a carer reports widens that place and time's limit by this
    widen_max: float = 2.0  # and never beyond this factor
    widen_span_min: float = 60.0  # around the alert's start time of day


class QuietModel:
    def __init__(self, settings: QuietSettings | None = None) -> None:
        self.settings = settings or QuietSettings()
        self.places: dict[str, int] = {}
        self.start_min = np.zeros(0, dtype=np.float32)
        self.length_min = np.zeros(0, dtype=np.float32)
        self.place = np.zeros(0, dtype=np.int16)
        self.context = np.zeros(0, dtype=np.int8)
        self.day = np.zeros(0, dtype=np.int32)
        # (context, place index, quarter-hour of the day) -> factor from carers' false alarms
        self.widened: dict[tuple[int, int, int], float] = {}
        self._cache: dict[tuple[int, int, int, int], float] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_cache"] = {}  # derived: not worth a checkpoint's bytes
        return state

    # --- Learning ---------------------------------------------------------------------------------------------

    def learn(self, context: int, place: str, start_local_ms: int, end_local_ms: int) -> None:
        """A quiet period that has ended, in local milliseconds (periods shorter than MIN_LEARNED_MIN are not kept)."""
        length = (end_local_ms - start_local_ms) / MINUTE_MS
        if length < MIN_LEARNED_MIN:
            return
        s = self.settings
        day = start_local_ms // DAY_MS
        keep = self.day > day - s.keep_days
        keep[: max(0, keep.size - s.max_periods + 1)] = False
        self.start_min = np.append(self.start_min[keep], np.float32((start_local_ms / MINUTE_MS) % DAY_MIN))
        self.length_min = np.append(self.length_min[keep], np.float32(length))
        self.place = np.append(self.place[keep], np.int16(self._place_index(place, add=True)))
        self.context = np.append(self.context[keep], np.int8(context))
        self.day = np.append(self.day[keep], np.int32(day))
        self._cache.clear()

    def widen(self, context: int, place: str | None, start_local_ms: int) -> tuple[float, float]:
        """A carer said an alert on a period that began here was a false alarm: widen the limits of periods that
        begin at this place within ``widen_span_min`` of that time of day. Returns the factor (before, after)."""
        s = self.settings
        index = self._place_index(place, add=True)
        centre = (start_local_ms / MINUTE_MS) % DAY_MIN
        span = round(s.widen_span_min / QUARTER_MIN)
        before = self.widened.get((context, index, int(centre // QUARTER_MIN)), 1.0)
        for k in range(-span, span + 1):
            quarter = int((centre // QUARTER_MIN + k) % (DAY_MIN // QUARTER_MIN))
            key = (context, index, quarter)
            self.widened[key] = min(s.widen_max, self.widened.get(key, 1.0) * s.widen_step)
        self._cache.clear()
        return before, self.widened[(context, index, int(centre // QUARTER_MIN))]

    # --- Questions --------------------------------------------------------------------------------------------

    def limit_min(self, context: int, place: str | None, start_local_ms: int, default_min: float) -> float:
        """How long a quiet period that began at ``start_local_ms`` (local) at ``place`` may last before it is
        unusual, in minutes; ``default_min`` is the limit for a home that has learned nothing yet."""
        index = self._place_index(place)
        quarter = int(((start_local_ms / MINUTE_MS) % DAY_MIN) // QUARTER_MIN)
        key = (context, index, quarter, round(default_min))
        limit = self._cache.get(key)
        if limit is None:
            s = self.settings
            limit = self._learned_limit(context, index, quarter * QUARTER_MIN + QUARTER_MIN / 2, default_min)
            limit = float(np.clip(limit * self.widened.get((context, index, quarter), 1.0), s.floor_min,
                                  s.ceiling_min))
            self._cache[key] = limit
        return limit

    def usual_min(self, context: int, place: str | None, start_local_ms: int) -> float | None:
        """What a carer is told is usual: the length 9 in 10 learned periods like this one stay within (of those
        lasting MIN_LEARNED_MIN at least), or None before anything like it was learned."""
        index = self._place_index(place)
        weights = self._weights(context, index, (start_local_ms / MINUTE_MS) % DAY_MIN)
        if weights.sum() < 1.0:
            return None
        order = np.argsort(self.length_min)
        cumulative = np.cumsum(weights[order])
        return float(self.length_min[order][np.searchsorted(cumulative, 0.9 * cumulative[-1])])

    def per_period_alpha(self) -> float:
        """The bound on S: the chance per quiet period that keeps false alerts within the monthly budget."""
        s = self.settings
        if self.day.size < 2:
            return s.max_alpha
        days = max(float(self.day[-1] - self.day.min() + 1), 1.0)
        per_month = self.length_min.size / days * 30
        return min(s.max_alpha, s.budget_per_month / max(per_month, 1.0))

    def _learned_limit(self, context: int, index: int, start_min: float, default_min: float) -> float:
        """Each level's own limit, shrunk towards the level below in proportion to how much it has learned (in
        log minutes: a few long periods elsewhere must not set the limit of a place where stillness is short)."""
        s = self.settings
        near = self._near(start_min)
        same_context = self.context == context
        here = same_context & (self.place == index)
        limit = default_min
        for weights, prior in ((near * same_context, s.context_prior), (here.astype(float), s.place_prior),
                               (near * here, s.place_time_prior)):
            learned = float(weights.sum())
            if learned >= 1.0:
                own = self._tail_limit(weights)
                limit = float(np.exp((learned * np.log(own) + prior * np.log(limit)) / (learned + prior)))
        return limit

    def _tail_limit(self, weights: np.ndarray) -> float:
        """Where these periods' survival falls below the bound: empirical down to ``tail_from``, then an
        exponential tail with the mean excess the periods show past it (peaks over a threshold)."""
        survival = (weights @ (self.length_min[:, None] > GRID_MIN[None, :])) / float(weights.sum())
        i = min(int(np.searchsorted(-survival, -self.settings.tail_from)), GRID_MIN.size - 2)
        x_q = float(GRID_MIN[i])
        over = self.length_min > x_q
        tail = float(weights[over].sum())
        if tail <= 0:
            return x_q
        mean_excess = float(weights[over] @ (self.length_min[over] - x_q)) / tail
        s_q = tail / float(weights.sum())
        return x_q + mean_excess * float(np.log(max(s_q / self.per_period_alpha(), 1.0)))

    def _weights(self, context: int, index: int, start_min: float) -> np.ndarray:
        return self._near(start_min) * ((self.context == context) & (self.place == index))

    def _near(self, start_min: float) -> np.ndarray:
        d = np.abs(self.start_min - start_min)
        d = np.minimum(d, DAY_MIN - d)
        return np.exp(-0.5 * (d / self.settings.kernel_min) ** 2)

    def _place_index(self, place: str | None, *, add: bool = False) -> int:
        name = place or OTHER_PLACE
        index = self.places.get(name)
        if index is None:
            if not add:
                return self.places.get(OTHER_PLACE, -1)
            name = name if len(self.places) < MAX_PLACES - 1 else OTHER_PLACE
            index = self.places.setdefault(name, len(self.places))
        return index
