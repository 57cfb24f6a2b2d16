"""The detection benchmark's data: the recordings, their two variants, and falls injected by cutting them.

* **Variants.** "as recorded": the recording's rows (state changes only, as most PIRs and contacts report).
  "hourly": besides, each motion sensor sends an unchanged report every hour (its current state: False while
  nothing moves) for the whole span of the recording, as many zigbee PIRs do, at a phase of its own.
* **A cut** (a fall at a moment): from then on the resident does nothing, while the devices go on reporting. Rows
  before the moment stay; after it, rows that are not activity stay (an unchanged state, a sensor's "no motion"
  timeout) and activity rows go, as :class:`analytics.activity.ActivityTracker` decides over the rows kept. The
  hourly reports are then added to the cut recording, so after a cut they carry the fallen resident's state.
"""

from __future__ import annotations

import bisect
import heapq
import os
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from analytics.activity import ActivityTracker, Value
from sensors_sim.events import Observation

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
AS_RECORDED = "as recorded"
HOURLY = "hourly"
VARIANTS = (AS_RECORDED, HOURLY)
DEFAULT_DATASETS = Path(os.environ.get("TELECARE_DATASETS")
                        or Path(__file__).resolve().parents[2] / "shared" / "datasets")
# The real recordings, one per resident. kasteren2010 house A is the same home and month as kasteren2008 house A
# (SOURCE.md), re-encoded: counted once, from the original release.
RECORDINGS = (
    "kasteren2008-houseA/kasterenSenseData.txt",
    "kasteren2010-tl-houses-ABC/houseB.sensors",
    "kasteren2010-tl-houses-ABC/houseC.sensors",
    "ordonez-uci-adl/OrdonezA_Sensors.txt",
    "ordonez-uci-adl/OrdonezB_Sensors.txt",
)
# A fall "while active": activity in the 15 minutes before it. Falls happen to people up and about; a cut while the
# resident sleeps or is out looks like sleep or an outing to any detector until the usual end of it.
ACTIVE_MS = 15 * 60_000

Key = tuple[str, str]  # (home, device)


def is_activity(before: Value | None, o: Observation) -> bool:
    """Whether ``o`` is activity after its device's last state ``before`` (None: none yet), as
    :class:`ActivityTracker` decides. A report without a value is not."""
    if o.value is None:
        return False
    tracker = ActivityTracker()
    if before is not None:
        tracker.update(o.device, o.kind, before)
    return tracker.update(o.device, o.kind, o.value) is not None


def last_states(rows: Iterable[Observation]) -> dict[Key, Value]:
    """Each device's last reported value."""
    return {(o.home, o.device): o.value for o in rows if o.value is not None}


def after_cut(rows: Iterable[Observation], states: dict[Key, Value]) -> Iterator[Observation]:
    """The rows after a cut that are not activity, given each device's state at the cut (updated as rows pass)."""
    for o in rows:
        key = (o.home, o.device)
        if is_activity(states.get(key), o):
            continue
        if o.value is not None:
            states[key] = o.value
        yield o


def cut(observations: Sequence[Observation], at_ms: int, times: Sequence[int] | None = None) -> list[Observation]:
    """The recording as if the resident fell at ``at_ms``: every row before it, and after it the rows that are not
    activity (device reports go on; the resident does nothing)."""
    if times is None:
        times = [o.time_ms for o in observations]
    i = bisect.bisect_left(times, at_ms)
    before = list(observations[:i])
    return before + list(after_cut(observations[i:], last_states(before)))


@dataclass(frozen=True, slots=True)
class Hourly:
    """The hourly reports of a recording's motion sensors over its span [start_ms, end_ms]."""

    start_ms: int
    end_ms: int
    motion: Mapping[Key, Observation]  # each motion sensor's first row (its home, room and role)

    @staticmethod
    def of(observations: Sequence[Observation]) -> Hourly:
        motion: dict[Key, Observation] = {}
        for o in observations:
            if o.kind == "motion":
                motion.setdefault((o.home, o.device), o)
        if not observations:
            return Hourly(0, -1, motion)
        return Hourly(observations[0].time_ms, observations[-1].time_ms, motion)

    def phase_ms(self, key: Key) -> int:
        """A device's own minute and second of the hour, stable across runs."""
        return zlib.crc32(f"{key[0]}/{key[1]}".encode()) % HOUR_MS

    def first_report(self, key: Key, from_ms: int) -> int:
        """The device's first report at or after ``from_ms`` (and not before the span's start)."""
        start = max(from_ms, self.start_ms)
        first = self.start_ms + self.phase_ms(key)
        return first if first >= start else first + -(-(start - first) // HOUR_MS) * HOUR_MS

    def merge(self, rows: Iterable[Observation], states: Mapping[Key, Value], from_ms: int | None = None,
              until_ms: int | None = None) -> Iterator[Observation]:
        """``rows`` (time-ordered, none before ``from_ms``) with the hourly reports in [from_ms, until_ms) (default:
        the whole span), each carrying its device's state then (``states``: at ``from_ms``; default False). A
        report at the same moment as a row comes after it."""
        start = self.start_ms if from_ms is None else from_ms
        end = self.end_ms + 1 if until_ms is None else min(until_ms, self.end_ms + 1)
        state = {k: states.get(k, False) for k in self.motion}
        due = [(self.first_report(k, start), k) for k in self.motion]
        due = [d for d in due if d[0] < end]
        heapq.heapify(due)
        for o in rows:
            while due and due[0][0] < o.time_ms:
                yield self._report(due, state, end)
            key = (o.home, o.device)
            if key in state and o.value is not None:
                state[key] = o.value
            yield o
        while due:
            yield self._report(due, state, end)

    def _report(self, due: list[tuple[int, Key]], state: Mapping[Key, Value], end: int) -> Observation:
        at, key = heapq.heappop(due)
        if at + HOUR_MS < end:
            heapq.heappush(due, (at + HOUR_MS, key))
        first = self.motion[key]
        return Observation(at, first.home, first.device, first.kind, state[key], first.room, first.role)


def variant_rows(observations: Sequence[Observation], variant: str, hourly: Hourly | None = None) -> list[Observation]:
    """The recording (or a cut of it) in ``variant``; ``hourly``: the uncut recording's (its span goes on past a
    cut)."""
    if variant == AS_RECORDED:
        return list(observations)
    return list((hourly or Hourly.of(observations)).merge(observations, {}))


def learn_days_for(span_days: float, default: float = 14.0) -> float:
    """Learning period of a recording: ``default``, or half of it when that is longer than half (Ordóñez)."""
    return min(default, span_days / 2)


def cut_moments(first_ms: int, last_ms: int, learn_days: float, count: int, rng: np.random.Generator) -> list[int]:
    """``count`` moments uniform over [first + learn_days, last − 24 h), sorted; none if that is empty."""
    a, b = first_ms + round(learn_days * DAY_MS), last_ms - DAY_MS
    if a >= b or count <= 0:
        return []
    return sorted(int(t) for t in rng.integers(a, b, size=count))


def watch_windows(observations: Sequence[Observation], learn_days: float) -> dict[str, tuple[int, int]]:
    """Each home's [first observation + learn_days, last observation]."""
    first: dict[str, int] = {}
    last: dict[str, int] = {}
    for o in observations:
        first.setdefault(o.home, o.time_ms)
        last[o.home] = o.time_ms
    return {h: (first[h] + round(learn_days * DAY_MS), last[h]) for h in first
            if first[h] + round(learn_days * DAY_MS) < last[h]}


def activity_times(observations: Iterable[Observation]) -> dict[str, list[int]]:
    """Each home's moments of activity (as :class:`ActivityTracker` sees it), in time order."""
    trackers: dict[str, ActivityTracker] = {}
    out: dict[str, list[int]] = {}
    for o in observations:
        if o.value is not None and trackers.setdefault(o.home, ActivityTracker()).update(
                o.device, o.kind, o.value) is not None:
            out.setdefault(o.home, []).append(o.time_ms)
    return out


def was_active(times: Sequence[int], at_ms: int, within_ms: int = ACTIVE_MS) -> bool:
    """Whether there was activity in the ``within_ms`` before ``at_ms``: the resident was up and about."""
    i = bisect.bisect_left(times, at_ms)
    return i > 0 and at_ms - times[i - 1] <= within_ms
