"""How long since the last activity is unusual *for a stillness that began in this room*, at this time of day.

:class:`analytics.elapsed.ElapsedModel` learns, per half-hour of the local day and context, the longest the
resident went without activity each day. That mixes every room: at 15:00 the longest stillness of a day is usually
an hour in the armchair, so a fall in the kitchen at 15:00 waits for an armchair-sized limit. This model keeps the
same daily maxima apart by the *place* the stillness began (the room of the last activity, or its device when the
room is not known): after the kitchen or the bathroom stillness is short; after the living room or the bedroom it
can be long. A place's limit is a high quantile of its recent daily maxima around that half-hour, times a margin,
shrunk (in log minutes) towards the home's limit for the context in proportion to the days the place has shown
there: a room seen on two days says little.

Carers' false alarms widen a place's limit around the time of day the alert was about (:meth:`PlaceElapsed.widen`),
by ``widen_step`` each, never past ``widen_max``; real incidents never widen anything.

State is bounded whatever a hub sends: the last ``keep_days`` daily maxima per (context, place) as one byte each (a
bucket of ``EDGES_MIN``), at most ``MAX_PLACES`` places. Nothing here reads a clock; time comes with the gaps.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from analytics.elapsed import EDGES_MIN, SLOT_MS, SLOTS, stillness_by_slot
from analytics.localtime import MINUTE_MS

MAX_PLACES = 32  # rooms and devices are few; further names (a misbehaving hub) use the home-wide limit
ABSENT = 255  # no stillness from this place overlapped this half-hour on that day
HOME = ""  # the widening of stillness whose place is not known


class PlaceElapsed:
    def __init__(self, *, quantile: float = 0.97, margin: float = 3.0, neighbours: int = 1,
                 prior_days: float = 14.0, min_days: int = 3, keep_days: int = 28, widen_step: float = 1.25,
                 widen_max: float = 2.0, widen_slots: int = 2) -> None:
        self.quantile = quantile
        self.margin = margin
        self.neighbours = neighbours
        self.prior_days = prior_days
        self.min_days = min_days
        self.keep_days = keep_days
        self.widen_step = widen_step
        self.widen_max = widen_max
        self.widen_slots = widen_slots
        self.places: dict[str, int] = {}
        # (context, place index) -> [days kept, SLOTS] bucket of each day's longest stillness, ABSENT when none
        self.maxima: dict[tuple[int, int], npt.NDArray[np.uint8]] = {}
        self._today: dict[tuple[int, int], npt.NDArray[np.float64]] = {}  # the same for the day under way, in minutes
        self._day: int | None = None
        # (context, place index) -> limits (minutes) and days with data, per half-hour: derived as a day closes
        self.learned: dict[tuple[int, int], tuple[npt.NDArray[np.float64], npt.NDArray[np.intp]]] = {}
        # (context, place or HOME) -> factor per half-hour
        self.widened: dict[tuple[int, str], npt.NDArray[np.float64]] = {}

    # --- Learning ---------------------------------------------------------------------------------------------

    def learn_gap(self, context: int, place: str | None, start_local_ms: int, end_local_ms: int) -> bool:
        """A stillness that began at ``place`` has ended (local milliseconds). True when a day closed."""
        index = self._index(place)
        closed = False
        for day, slot, still in stillness_by_slot(start_local_ms, end_local_ms):
            if day != self._day:
                closed |= self._close_day()
                self._day = day
            if index is not None:
                today = self._today.setdefault((context, index), np.full(SLOTS, np.nan))
                if not still <= today[slot]:  # NaN (nothing yet) or longer
                    today[slot] = still
        return closed

    def widen(self, context: int, place: str | None, local_ms: int, *, narrow: bool = False) -> tuple[float, float]:
        """A carer said stillness that began at ``place`` and was alerted at ``local_ms`` was a false alarm: widen
        the limits there, around that half-hour (``narrow``: take one such widening back, never below 1). Returns
        the factor at that half-hour (before, after)."""
        key = (context, place if place in self.places else HOME)
        factors = self.widened.setdefault(key, np.ones(SLOTS))
        slot = int((local_ms // SLOT_MS) % SLOTS)
        before = float(factors[slot])
        around = [(slot + k) % SLOTS for k in range(-self.widen_slots, self.widen_slots + 1)]
        step = 1 / self.widen_step if narrow else self.widen_step
        factors[around] = np.clip(factors[around] * step, 1.0, self.widen_max)
        return before, float(factors[slot])

    # --- Questions --------------------------------------------------------------------------------------------

    def limit_min(self, context: int, place: str | None, local_ms: int, home_limit_min: float) -> float:
        """The limit (minutes) at this moment for stillness that began at ``place``: the place's learned limit,
        shrunk towards ``home_limit_min`` (the home's for the context) by how few days the place has shown."""
        slot = int((local_ms // SLOT_MS) % SLOTS)
        own = self._own_limit(context, place, slot, home_limit_min)
        return self._widened(context, place, slot, home_limit_min if own is None else own)

    def deadline_local(self, context: int, place: str | None, since_local_ms: int,
                       home_limits_min: npt.NDArray[np.float64], ceiling_min: float) -> int:
        """The first local moment at which stillness since ``since_local_ms`` passes the limit of its half-hour.

        Past the half-hours in which stillness from this place has ever been seen, the place's last limit still
        holds where it is the shorter: stillness from the kitchen never yet lasting into 16:00 says it is short,
        not that nothing is known (the home's limit would wait for an armchair's stillness)."""
        slot_abs = since_local_ms // SLOT_MS
        carried: float | None = None
        for k in range(slot_abs, slot_abs + 2 * SLOTS):
            start, slot = k * SLOT_MS, k % SLOTS
            home = float(home_limits_min[slot])
            own = self._own_limit(context, place, slot, home)
            carried = own if own is not None else carried
            limit = own if own is not None else min(home, carried if carried is not None else home)
            limit = min(self._widened(context, place, slot, limit), ceiling_min)
            candidate = max(start, since_local_ms + round(limit * MINUTE_MS))
            if candidate < start + SLOT_MS:
                return candidate
        return since_local_ms + round(ceiling_min * MINUTE_MS)

    def days(self, context: int, place: str) -> int:
        """Days with stillness from this place kept, in this context."""
        index = self.places.get(place)
        ring = self.maxima.get((context, index)) if index is not None else None
        return 0 if ring is None else int(((ring != ABSENT).any(axis=1)).sum())

    # --- Inside -----------------------------------------------------------------------------------------------

    def _own_limit(self, context: int, place: str | None, slot: int, home_limit_min: float) -> float | None:
        """The place's limit at this half-hour blended with the home's, or None when the place has too few days
        there to say anything."""
        index = self.places.get(place) if place is not None else None
        learned = self.learned.get((context, index)) if index is not None else None
        if learned is None or learned[1][slot] < self.min_days:
            return None
        limits, days = learned
        weight = float(days[slot]) / (float(days[slot]) + self.prior_days)
        return float(np.exp(weight * np.log(limits[slot]) + (1 - weight) * np.log(home_limit_min)))

    def _widened(self, context: int, place: str | None, slot: int, limit: float) -> float:
        factors = self.widened.get((context, place if place in self.places else HOME))
        return limit * float(factors[slot]) if factors is not None else limit

    def _index(self, place: str | None) -> int | None:
        if place is None:
            return None
        index = self.places.get(place)
        if index is None and len(self.places) < MAX_PLACES:
            index = self.places[place] = len(self.places)
        return index

    def _close_day(self) -> bool:
        if not self._today:
            return False
        for key, today in self._today.items():
            buckets = np.where(np.isnan(today), ABSENT,
                               np.minimum(np.searchsorted(EDGES_MIN, np.nan_to_num(today)), EDGES_MIN.size - 1))
            ring = self.maxima.get(key, np.empty((0, SLOTS), dtype=np.uint8))
            self.maxima[key] = np.vstack([ring, buckets.astype(np.uint8)])[-self.keep_days:]
        self._today = {}
        for key, ring in self.maxima.items():
            self.learned[key] = self._limits(ring)
        return True

    def _limits(self, ring: npt.NDArray[np.uint8]) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.intp]]:
        """Per half-hour: the quantile of the daily maxima there and in its neighbours, times the margin; and the
        days those rest on (days with stillness from this place there or in a neighbouring half-hour)."""
        shifted = [np.roll(ring, shift, axis=1) for shift in range(-self.neighbours, self.neighbours + 1)]
        pooled = np.concatenate(shifted)
        present = pooled != ABSENT
        days = np.logical_or.reduce([s != ABSENT for s in shifted]).sum(axis=0)
        limits = np.full(SLOTS, EDGES_MIN[-1])
        for slot in np.nonzero(present.any(axis=0))[0]:
            values = EDGES_MIN[pooled[present[:, slot], slot]]
            limits[slot] = np.quantile(values, self.quantile, method="higher")
        return limits * self.margin, days
