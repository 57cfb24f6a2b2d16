"""Wilhelm & Wahl 2024, the best published inactivity detector, as a baseline for ``bench/detection.py``.

S. Wilhelm and F. Wahl, "Emergency Detection in Smart Homes Using Inactivity Score for Handling Uncertain Sensor
Data", Sensors 24(20):6583, 2024 (doi:10.3390/s24206583). Written here from the method's description, in event
time, over the neutral CSV's observations; no code of the authors' is used. Of the paper itself only its abstract
and outline were at hand; the details below and the parameters follow the supplementary material the authors
published with it (github.com/WilhelmSebastian/IBED: its description of the method and its default parameters).

The method:

* **The Inactivity Score.** A home's score grows by one for every unit of time without activity. An activity
  event of sensor *s* with certainty *c* (the probability that a person caused it) multiplies the score by
  ``1 - impact``, with ``impact = c * w``: a certain event (c = 1) resets it to 0, an uncertain one only lowers it.
  ``w`` discounts a sensor that fires again soon after it last fired (a flickering sensor): ``w = min(1, dt / R)``
  with ``dt`` the time since that sensor's last event and the release time ``R = R_max * (1 - c)``; ``w = 1`` for
  a sensor's first event or when ``R`` is 0. Without noise (every event certain) the score is simply the time
  since the last activity.
* **The threshold, learned per time of day.** The score is kept for the last 30 days. At time *t* the threshold
  looks at each earlier day of the same kind (Monday to Friday, or Saturday and Sunday) in that history, up to
  yesterday, takes the highest score in the window of ±1 h around *t*'s clock time on that day, and combines
  those daily maxima: the largest of them, capped at the upper Tukey fence ``Q3 + 1.5 IQR`` (one outlying day,
  say an afternoon out, does not raise the threshold for every day), times a factor of 1.1.
* **The alarm:** the score above the threshold. No threshold (no earlier day of the kind yet) means no alarm.

Choices where the method left a detail open (the parameters are the authors' defaults: a 30-day history, ±1 h
windows, weekday/weekend days, the filtered maximum, ×1.1, R_max 6 h):

* **Activity** is what :class:`analytics.activity.ActivityTracker` calls a change (motion starting, a contact
  or pad changing, a plug switching on, a button): the paper feeds activity events, e.g. motion sensors' ON
  events. A report that changes nothing is no event. Every event is certain (c = 1: the recordings and the
  simulator label no uncertainty), so ``CERTAINTY`` by kind is 1; the release-time discount is implemented for
  other certainties. The paper's evaluation also thinned motion events with a rolling filter (one per hour) on
  its CASAS data; not done here, as with certain events it only makes the score reset less often.
* **Time** advances in ticks of one minute (the score is sampled on a one-minute grid; the paper's ticks are
  seconds): an alert is stamped at the first tick whose score is above its threshold, at most a minute late.
* **One alert per episode:** the paper's alarm is a per-tick flag; a carer would get one call, so an
  ``inactivity`` alert opens at the first alarm tick and clears at the next activity, and a new one can only open
  after that (the project's rule: one open alert per resident and kind).
* **A day's window before the first tick** of a home (its first day) gives no daily maximum, rather than a
  value of −1 that would pull the quartiles down.
* **Local time:** days and clock times are the home's (``tz``); the window on a day is found at that day's local
  midnight plus the clock time, so across a change of the clocks it is off by the hour, on that day only.
* As the other baselines: alerts in a home's first ``learn_days`` are learned from, not reported; ``finish``
  runs time on to the last observation plus a horizon (24 h).
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo

import numpy as np

from analytics.activity import ActivityTracker
from analytics.alerts import AlertKind, Severity
from analytics.replay import AlertRecord
from sensors_sim.events import Observation

TICK_MS = 60_000
DAY_MS = 86_400_000
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
# Every activity the neutral CSV carries is certain (see the module's docstring); by kind, for other data.
CERTAINTY: Mapping[str, float] = {}


@dataclass(frozen=True, slots=True)
class WilhelmWahlConfig:
    history_days: int = 30  # the score history the threshold looks at
    window_ms: int = 60 * 60_000  # ± this around the clock time on each earlier day
    factor: float = 1.1  # threshold = factor x min(max of the daily maxima, Q3 + 1.5 IQR)
    max_release_ms: int = 6 * 3_600_000  # R_max: how long an uncertain sensor's repeat counts for less
    weekday_weekend: bool = True  # compare Monday-Friday with Monday-Friday, Saturday-Sunday with the weekend
    chunk_ticks: int = 720  # ticks computed at once; must stay under a day minus two windows (see _chunk)


Alert = AlertRecord  # a baseline's alerts are shaped as the detectors' (what scoring reads)


@dataclass
class _Home:
    home: str
    base_ms: int  # tick 0: the first observation, down to the minute
    learned_at_ms: int
    tracker: ActivityTracker = field(default_factory=ActivityTracker)
    score: float = 0.0  # just after the last event, in ticks
    score_at_ms: int = 0  # the last event (or the base)
    last_event_of: dict[str, int] = field(default_factory=dict)  # sensor -> its last activity event
    # Events since the last computed tick: (time, score just after); the first is the state before them.
    pending: list[tuple[int, float]] = field(default_factory=list)
    scores: np.ndarray = field(default_factory=lambda: np.empty(0))  # per tick, from tick 0
    window_max: np.ndarray = field(default_factory=lambda: np.empty(0))  # max of scores over ± window, per tick
    midnights: dict[int, int] = field(default_factory=dict)  # local date ordinal -> its midnight, epoch ms
    open_alert: int | None = None  # index in the runner's alerts of this home's open alert (reported or not)
    open_raised_ms: int | None = None


class WilhelmWahl:
    """The detector over a stream of observations (several homes allowed), in event time: ``add`` each
    observation in time order, then ``finish``. Picklable: a copy continues exactly as the original would."""

    def __init__(self, tz: tzinfo, *, learn_days: float = 14.0, config: WilhelmWahlConfig | None = None) -> None:
        self.tz = tz
        self.learn_ms = round(learn_days * DAY_MS)
        self.config = config or WilhelmWahlConfig()
        self.homes: dict[str, _Home] = {}
        self.alerts: list[Alert | None] = []  # None: raised while learning, not reported
        self.last_ms: int | None = None

    def add(self, o: Observation) -> None:
        h = self.homes.get(o.home)
        if h is None:
            base = o.time_ms - o.time_ms % TICK_MS
            h = self.homes[o.home] = _Home(o.home, base, o.time_ms + self.learn_ms, score_at_ms=base)
            h.pending.append((base, 0.0))
        self._compute(h, o.time_ms, final=False)
        if o.value is not None and h.tracker.update(o.device, o.kind, o.value) is not None:
            self._event(h, o)
        self.last_ms = o.time_ms if self.last_ms is None else max(self.last_ms, o.time_ms)

    def finish(self, horizon_ms: int = DAY_MS) -> list[Alert]:
        """Runs every home on to the last observation + ``horizon_ms``; every alert reported, in order raised."""
        if self.last_ms is not None:
            for h in self.homes.values():
                self._compute(h, self.last_ms + horizon_ms + 1, final=True)
        return sorted((a for a in self.alerts if a is not None), key=lambda a: (a.raised_at_ms, a.home))

    # --------------------------------------------------------------------------------------------------------

    def _event(self, h: _Home, o: Observation) -> None:
        """An activity event: the score drops by its impact (an open alert clears at it: see ``_alarms``)."""
        certainty = CERTAINTY.get(o.kind, 1.0)
        weight = 1.0
        before = h.last_event_of.get(o.device)
        release_ms = self.config.max_release_ms * (1.0 - certainty)
        if before is not None and release_ms > 0 and o.time_ms - before < release_ms:
            weight = (o.time_ms - before) / release_ms
        score = h.score + (o.time_ms - h.score_at_ms) / TICK_MS
        h.score, h.score_at_ms = (1.0 - certainty * weight) * score, o.time_ms
        h.last_event_of[o.device] = o.time_ms
        h.pending.append((o.time_ms, h.score))

    def _compute(self, h: _Home, until_ms: int, *, final: bool) -> None:
        """Computes the ticks before ``until_ms``: whole chunks only, unless ``final`` (nothing comes after)."""
        while True:
            first = len(h.scores)
            last_needed = (until_ms - 1 - h.base_ms) // TICK_MS  # the last tick strictly before until_ms
            if last_needed < first:
                return
            end = first + self.config.chunk_ticks
            if last_needed + 1 < end:
                if not final:
                    return
                end = last_needed + 1
            self._chunk(h, first, end)

    def _chunk(self, h: _Home, first: int, end: int) -> None:
        """Ticks [first, end): their scores, thresholds and alarms.

        A threshold at tick i reads the window maxima of earlier days, at most i − (1 day − window − 1 h for a
        change of the clocks); those need scores up to one window later, all before ``first`` while a chunk is
        shorter than a day minus two windows and two hours."""
        ticks_ms = h.base_ms + np.arange(first, end, dtype=np.int64) * TICK_MS
        times = np.array([t for t, _ in h.pending], dtype=np.int64)
        after = np.array([s for _, s in h.pending])
        last = np.searchsorted(times, ticks_ms, side="right") - 1  # the last event at or before each tick
        scores = after[last] + (ticks_ms - times[last]) / TICK_MS
        threshold = self._thresholds(h, first, ticks_ms)
        h.scores = np.concatenate([h.scores, scores])
        self._extend_window_max(h)
        self._alarms(h, ticks_ms, scores > threshold)  # NaN threshold (none yet): never above
        # Keep the last event at or before the chunk's end and those after it.
        keep = max(0, bisect.bisect_right(h.pending, (int(ticks_ms[-1]), float("inf"))) - 1)
        h.pending = h.pending[keep:]

    def _extend_window_max(self, h: _Home) -> None:
        """``window_max[i]`` = max of scores over ticks [i − w, i + w], for every i whose window is complete."""
        w = self.config.window_ms // TICK_MS
        done, n = len(h.window_max), len(h.scores)
        upto = n - w  # ticks whose window ends at or before the last computed tick
        if upto <= done:
            return
        lo = max(0, done - w)
        padded = np.concatenate([np.full(max(0, w - done), -np.inf), h.scores[lo:upto + w]])
        new = np.lib.stride_tricks.sliding_window_view(padded, 2 * w + 1).max(axis=1)
        h.window_max = np.concatenate([h.window_max, new[:upto - done]])

    def _thresholds(self, h: _Home, first: int, ticks_ms: np.ndarray) -> np.ndarray:
        """Each tick's threshold from the earlier days' window maxima; NaN where there is none."""
        out = np.full(len(ticks_ms), np.nan)
        if not len(h.window_max):
            return out
        days, clock_ms = self._local(ticks_ms)
        base_day = self._local(np.array([h.base_ms], dtype=np.int64))[0][0]
        for day in np.unique(days).tolist():
            on_day = np.flatnonzero(days == day)
            refs = [d for d in range(max(base_day, day - self.config.history_days), day) if self._same_kind(d, day)]
            if not refs:
                continue
            midnights = np.array([self._midnight(h, d) for d in refs], dtype=np.int64)
            at = (midnights[:, None] + clock_ms[on_day][None, :] - h.base_ms) // TICK_MS  # (days, ticks)
            valid = (at >= 0) & (at < len(h.window_max))
            maxima = np.where(valid, h.window_max[np.clip(at, 0, len(h.window_max) - 1)], np.nan)
            out[on_day] = _filtered_maximum(maxima) * self.config.factor
        return out

    def _local(self, times_ms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Local date ordinals and clock times (ms since local midnight) of epoch times."""
        offsets = {int(t): self._offset_ms(int(t)) for t in (times_ms[0], times_ms[-1])}
        if len(set(offsets.values())) == 1:  # no change of the clocks in between: one offset for all
            local = times_ms + next(iter(offsets.values()))
        else:
            local = times_ms + np.array([self._offset_ms(int(t)) for t in times_ms], dtype=np.int64)
        return local // DAY_MS + _EPOCH_ORDINAL, local % DAY_MS

    def _offset_ms(self, t_ms: int) -> int:
        offset = datetime.fromtimestamp(t_ms / 1000, self.tz).utcoffset()
        return 0 if offset is None else int(offset.total_seconds() * 1000)

    def _same_kind(self, d: int, day: int) -> bool:
        if not self.config.weekday_weekend:
            return True
        return (date.fromordinal(d).weekday() >= 5) == (date.fromordinal(day).weekday() >= 5)

    def _midnight(self, h: _Home, d: int) -> int:
        ms = h.midnights.get(d)
        if ms is None:
            day = date.fromordinal(d)
            ms = h.midnights[d] = int(datetime(day.year, day.month, day.day, tzinfo=self.tz).timestamp() * 1000)
        return ms

    def _alarms(self, h: _Home, ticks_ms: np.ndarray, alarm: np.ndarray) -> None:
        """Opens an alert at the first alarm tick with none open; an open one clears at the next activity event."""
        events = [t for t, _ in h.pending[1:]]  # activity events after the state the chunk started from
        i, n = 0, len(ticks_ms)
        while i < n:
            if h.open_raised_ms is not None:
                k = bisect.bisect_right(events, h.open_raised_ms)
                if k == len(events) or events[k] > int(ticks_ms[-1]):
                    return  # still open at the chunk's end: an event in a later chunk clears it
                self._clear(h, events[k])
                i = int(np.searchsorted(ticks_ms, events[k], side="left"))  # the event counts at its own tick
                continue
            hits = np.flatnonzero(alarm[i:])
            if not len(hits):
                return
            i += int(hits[0])
            self._raise(h, int(ticks_ms[i]))
            i += 1

    def _raise(self, h: _Home, at_ms: int) -> None:
        h.open_raised_ms = at_ms
        h.open_alert = len(self.alerts)
        minutes = round(float(h.scores[(at_ms - h.base_ms) // TICK_MS]))
        self.alerts.append(Alert(h.home, AlertKind.INACTIVITY.value, at_ms, None,
                                 f"inactivity score {minutes} min above its learned threshold",
                                 int(Severity.URGENT)) if at_ms >= h.learned_at_ms else None)

    def _clear(self, h: _Home, at_ms: int) -> None:
        assert h.open_alert is not None
        a = self.alerts[h.open_alert]
        if a is not None:
            self.alerts[h.open_alert] = Alert(a.home, a.kind, a.raised_at_ms, at_ms, a.message, a.severity)
        h.open_alert = h.open_raised_ms = None


def _filtered_maximum(maxima: np.ndarray) -> np.ndarray:
    """Per column: the largest value, capped at Q3 + 1.5 IQR of the column's values (quartiles interpolated
    linearly, as numpy's default); NaN entries are no value, a column without any gives NaN."""
    ordered = np.sort(maxima, axis=0)  # NaN last
    count = np.sum(~np.isnan(maxima), axis=0)
    out = np.full(maxima.shape[1], np.nan)
    has = count > 0
    if not has.any():
        return out
    ordered, n = ordered[:, has], count[has]

    def quantile(q: float) -> np.ndarray:
        pos = q * (n - 1)
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, n - 1)
        low = np.take_along_axis(ordered, lo[None, :], axis=0)[0]
        high = np.take_along_axis(ordered, hi[None, :], axis=0)[0]
        return low + (high - low) * (pos - lo)

    q1, q3 = quantile(0.25), quantile(0.75)
    largest = np.take_along_axis(ordered, (n - 1)[None, :], axis=0)[0]
    out[has] = np.minimum(largest, q3 + 1.5 * (q3 - q1))
    return out
