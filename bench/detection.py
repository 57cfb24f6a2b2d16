"""Detection benchmark: how soon a fall is alerted, and how often a resident is alerted on for nothing.

    python bench/detection.py [--quick] [--datasets DIR] [--seed 1] [--cuts 40] [--json PATH]

Over simulated homes with an injected fall, and over the real recordings in ``../shared/datasets/`` with a fall
injected by cutting the recording at random moments (nothing is seen after the cut: the resident lies still),
for each detector in the same run:

* falls detected within 24 h (share), and the median, 90th percentile and mean time from the fall to the first
  person-safety alert raised at or after it (alerts already open at the fall do not count);
* false person-safety alerts and false ``inactivity`` alerts per resident-month (30 days), on uncut recordings and
  on simulated homes without incidents, after each home's learning period.

The detectors: the gateway's (``analytics.replay.replay``) and the fixed-threshold baseline most setups use, an
alert after N hours without any activity (12 h like legacy telecare units, and 4 h). Targets (issue 4): every
fall detected within 24 h, median under 1:30 and mean under 3:00, at most one false inactivity alert per
resident-month, beating the baseline on both counts.
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import statistics
import sys
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, tzinfo
from functools import partial
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analytics.activity import ActivityTracker
from analytics.alerts import DEVICE_HEALTH, AlertKind, Severity
from sensors_sim.events import Observation
from sensors_sim.generate import Simulation, homes_for, start_of
from sensors_sim.incidents import Fall
from sensors_sim.recordings import read_recording
from sensors_sim.scenario import DAY_MIN

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
MONTH_DAYS = 30.0  # a resident-month
WINDOW_MS = DAY_MS  # a fall counts as detected by an alert within 24 h of it
DEFAULT_DATASETS = Path(os.environ.get("TELECARE_DATASETS")
                        or Path(__file__).resolve().parents[2] / "shared" / "datasets")
# Falls by local time of day, to see night falls apart (the targets are over falls at any time of day).
BANDS = ("00-06", "06-12", "12-18", "18-24")
# A fall "while active": activity in the 15 minutes before it. Falls happen to people up and about; a cut while the
# resident sleeps or is out looks like sleep or an outing to any detector until the usual end of it.
ACTIVE_MS = 15 * 60_000
# The real recordings, one per resident. kasteren2010 house A is the same home and month as kasteren2008 house A
# (SOURCE.md), re-encoded: counted once, from the original release.
RECORDINGS = (
    "kasteren2008-houseA/kasterenSenseData.txt",
    "kasteren2010-tl-houses-ABC/houseB.sensors",
    "kasteren2010-tl-houses-ABC/houseC.sensors",
    "ordonez-uci-adl/OrdonezA_Sensors.txt",
    "ordonez-uci-adl/OrdonezB_Sensors.txt",
)
NOT_PERSON_SAFETY = frozenset({*(k.value for k in DEVICE_HEALTH), AlertKind.RETURNED.value})


class AlertLike(Protocol):
    """What scoring reads of an alert: ``analytics.replay.AlertRecord`` and :class:`Alert` both are."""

    @property
    def home(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def raised_at_ms(self) -> int: ...


# observations (time-ordered, several homes allowed), the homes' timezone, learning days -> alerts raised
Detector = Callable[[Sequence[Observation], tzinfo, float], Sequence[AlertLike]]


@dataclass(frozen=True, slots=True)
class Alert:
    """An alert of the baseline, shaped like ``analytics.replay.AlertRecord``."""

    home: str
    kind: str
    raised_at_ms: int
    cleared_at_ms: int | None
    message: str
    severity: int


# ------------------------------------------------------------------------------------------------------------
# the baseline


def fixed_threshold(observations: Iterable[Observation], tz: tzinfo, learn_days: float, *,
                    hours: float) -> list[Alert]:
    """An ``inactivity`` alert once a home has had no activity for ``hours``; activity clears it.

    Activity is what :class:`ActivityTracker` calls a change (motion, a pad or contact changing, a plug switching
    on, a button). As :func:`analytics.replay.replay`: alerts raised in a home's first ``learn_days`` are not
    reported (the condition still holds, so it is not raised again after), and at the end of the stream time runs
    on to the last observation + 24 h. The rule never learns: ``tz`` is not needed.
    """
    limit = round(hours * HOUR_MS)
    trackers: dict[str, ActivityTracker] = {}
    learned_at: dict[str, int] = {}  # a home's first observation + learn_days
    last_active: dict[str, int] = {}
    open_since: dict[str, int] = {}  # home -> raised_at of its open alert (reported or not)
    out: list[Alert] = []

    def raise_(home: str) -> None:
        at = last_active[home] + limit
        open_since[home] = at
        if at >= learned_at[home]:
            out.append(Alert(home, AlertKind.INACTIVITY.value, at, None,
                             f"no activity for {hours:g} h", int(Severity.URGENT)))

    def clear(home: str, at: int) -> None:
        raised = open_since.pop(home)
        for i in range(len(out) - 1, -1, -1):
            if out[i].home == home and out[i].raised_at_ms == raised and out[i].cleared_at_ms is None:
                a = out[i]
                out[i] = Alert(a.home, a.kind, a.raised_at_ms, at, a.message, a.severity)
                break

    last_ms: int | None = None
    for o in observations:
        last_ms = o.time_ms
        home = o.home
        if home not in trackers:
            trackers[home] = ActivityTracker()
            learned_at[home] = o.time_ms + round(learn_days * DAY_MS)
        if home in last_active and home not in open_since and o.time_ms >= last_active[home] + limit:
            raise_(home)
        if trackers[home].update(o.device, o.kind, o.value) is not None:
            if home in open_since:
                clear(home, o.time_ms)
            last_active[home] = o.time_ms
    if last_ms is not None:
        horizon = last_ms + DAY_MS
        for home, at in last_active.items():
            if home not in open_since and at + limit <= horizon:
                raise_(home)
    out.sort(key=lambda a: a.raised_at_ms)
    return out


def detectors() -> tuple[list[tuple[str, Detector]], str | None]:
    """The detectors to compare, and a note when the gateway's could not be loaded."""
    baselines: list[tuple[str, Detector]] = [(f"fixed {h} h", partial(_fixed, hours=h)) for h in (12, 4)]
    try:
        from analytics.replay import replay
    except ImportError as e:
        return baselines, f"analytics.replay not importable ({e}): measuring the baseline only"

    def gateway(observations: Sequence[Observation], tz: tzinfo, learn_days: float) -> list[AlertLike]:
        return list(replay(observations, tz, learn_days=learn_days))

    return [("telecare", gateway), *baselines], None


def _fixed(observations: Sequence[Observation], tz: tzinfo, learn_days: float, *, hours: float) -> list[Alert]:
    return fixed_threshold(observations, tz, learn_days, hours=hours)


def is_baseline(name: str) -> bool:
    return name.startswith("fixed ")


# ------------------------------------------------------------------------------------------------------------
# scoring


def is_person_safety(kind: str) -> bool:
    return kind not in NOT_PERSON_SAFETY


def first_detection(alerts: Iterable[AlertLike], home: str, fall_ms: int,
                    window_ms: int = WINDOW_MS) -> AlertLike | None:
    """The first person-safety alert of ``home`` raised at or after the fall and within ``window_ms`` of it."""
    hits = [a for a in alerts if a.home == home and is_person_safety(a.kind)
            and fall_ms <= a.raised_at_ms < fall_ms + window_ms]
    return min(hits, key=lambda a: a.raised_at_ms, default=None)


@dataclass
class FalseAlerts:
    person_safety: int = 0
    inactivity: int = 0
    days: float = 0.0  # resident-days watched after learning

    def per_month(self, count: int) -> float | None:
        return per_month(count, self.days)


def per_month(count: int, days: float) -> float | None:
    """Alerts per resident-month (30 days) over ``days`` resident-days; None when nothing was watched."""
    return count / days * MONTH_DAYS if days > 0 else None


def false_alerts(alerts: Iterable[AlertLike], windows: Mapping[str, tuple[int, int]]) -> FalseAlerts:
    """Person-safety alerts raised inside each home's window [after learning, last observation], as false ones.

    The window ends at the home's last observation: what a detector raises in the 24 h it is run on past the end
    of a recording is about the recording ending, not the resident.
    """
    out = FalseAlerts(days=sum((b - a) / DAY_MS for a, b in windows.values()))
    for a in alerts:
        window = windows.get(a.home)
        if window is None or not window[0] <= a.raised_at_ms <= window[1] or not is_person_safety(a.kind):
            continue
        out.person_safety += 1
        out.inactivity += a.kind == AlertKind.INACTIVITY.value
    return out


def watch_windows(observations: Sequence[Observation], learn_days: float) -> dict[str, tuple[int, int]]:
    """Each home's [first observation + learn_days, last observation]."""
    first: dict[str, int] = {}
    last: dict[str, int] = {}
    for o in observations:
        first.setdefault(o.home, o.time_ms)
        last[o.home] = o.time_ms
    return {h: (first[h] + round(learn_days * DAY_MS), last[h]) for h in first
            if first[h] + round(learn_days * DAY_MS) < last[h]}


def learn_days_for(span_days: float, default: float = 14.0) -> float:
    """Learning period of a recording: ``default``, or half of it when that is longer than half (Ordóñez)."""
    return min(default, span_days / 2)


def cut_moments(first_ms: int, last_ms: int, learn_days: float, count: int, rng: np.random.Generator) -> list[int]:
    """``count`` moments uniform over [first + learn_days, last − 24 h), sorted; none if that is empty."""
    a, b = first_ms + round(learn_days * DAY_MS), last_ms - DAY_MS
    if a >= b or count <= 0:
        return []
    return sorted(int(t) for t in rng.integers(a, b, size=count))


def cut(observations: Sequence[Observation], at_ms: int, times: Sequence[int] | None = None) -> Sequence[Observation]:
    """The recording as if the resident fell at ``at_ms``: the observations before it only."""
    if times is None:
        times = [o.time_ms for o in observations]
    return observations[:bisect.bisect_left(times, at_ms)]


def band(at_ms: int, tz: tzinfo) -> str:
    return BANDS[datetime.fromtimestamp(at_ms / 1000, tz).hour // 6]


def hm(ms: float | None) -> str:
    if ms is None:
        return "-"
    minutes = round(ms / 60_000)
    return f"{minutes // 60}:{minutes % 60:02d}"


def activity_times(observations: Iterable[Observation]) -> dict[str, list[int]]:
    """Each home's moments of activity (as the baseline sees it), in time order."""
    trackers: dict[str, ActivityTracker] = {}
    out: dict[str, list[int]] = {}
    for o in observations:
        if trackers.setdefault(o.home, ActivityTracker()).update(o.device, o.kind, o.value) is not None:
            out.setdefault(o.home, []).append(o.time_ms)
    return out


def was_active(times: Sequence[int], at_ms: int, within_ms: int = ACTIVE_MS) -> bool:
    """Whether there was activity in the ``within_ms`` before ``at_ms``: the resident was up and about."""
    i = bisect.bisect_left(times, at_ms)
    return i > 0 and at_ms - times[i - 1] <= within_ms


@dataclass
class Scores:
    """One detector on one data set (or several, merged)."""

    falls: int = 0
    delays_ms: list[int] = field(default_factory=list)
    first_kinds: Counter[str] = field(default_factory=Counter)
    # label (time-of-day band; "active" or "still") -> the time to alert of each fall with it, None if missed
    by: dict[str, list[int | None]] = field(default_factory=dict)
    false: FalseAlerts = field(default_factory=FalseAlerts)
    wall_s: float = 0.0

    def fall(self, alerts: Iterable[AlertLike], home: str, fall_ms: int, tz: tzinfo,
             active: bool | None = None) -> None:
        self.falls += 1
        hit = first_detection(alerts, home, fall_ms)
        delay = None if hit is None else hit.raised_at_ms - fall_ms
        if hit is not None and delay is not None:
            self.delays_ms.append(delay)
            self.first_kinds[hit.kind] += 1
        labels = [band(fall_ms, tz)] + ([] if active is None else ["active" if active else "still"])
        for label in labels:
            self.by.setdefault(label, []).append(delay)

    def merge(self, other: Scores) -> None:
        self.falls += other.falls
        self.delays_ms += other.delays_ms
        self.first_kinds.update(other.first_kinds)
        for label, delays in other.by.items():
            self.by.setdefault(label, []).extend(delays)
        self.false.person_safety += other.false.person_safety
        self.false.inactivity += other.false.inactivity
        self.false.days += other.false.days
        self.wall_s += other.wall_s

    @property
    def detected_share(self) -> float | None:
        return len(self.delays_ms) / self.falls if self.falls else None

    def delay(self, which: str, label: str | None = None) -> float | None:
        """median, p90 or mean of the times to alert of the detected falls (with ``label``), in ms."""
        d = self.delays_ms if label is None else [x for x in self.by.get(label, []) if x is not None]
        if not d:
            return None
        if which == "median":
            return float(statistics.median(d))
        return float(np.percentile(d, 90)) if which == "p90" else float(statistics.fmean(d))

    def subset(self, label: str) -> tuple[int, int]:
        """(detected, falls) with ``label``."""
        d = self.by.get(label, [])
        return sum(x is not None for x in d), len(d)

    def figures(self) -> dict[str, Any]:
        def h(ms: float | None) -> float | None:
            return None if ms is None else round(ms / HOUR_MS, 3)

        def part(label: str) -> dict[str, Any]:
            detected, falls = self.subset(label)
            return {"falls": falls, "detected": detected, "median_h": h(self.delay("median", label)),
                    "mean_h": h(self.delay("mean", label))}

        return {
            "falls": self.falls, "detected": len(self.delays_ms), "detected_share": self.detected_share,
            "median_h": h(self.delay("median")), "p90_h": h(self.delay("p90")), "mean_h": h(self.delay("mean")),
            "first_alert_kinds": dict(self.first_kinds.most_common()),
            "by_time_of_day": {b: part(b) for b in BANDS if b in self.by},
            "by_state": {a: part(a) for a in ("active", "still") if a in self.by},
            "resident_days": round(self.false.days, 2),
            "false_person_safety": self.false.person_safety, "false_inactivity": self.false.inactivity,
            "false_person_safety_per_month": self.false.per_month(self.false.person_safety),
            "false_inactivity_per_month": self.false.per_month(self.false.inactivity),
            "false_inactivity_per_day": self.false.inactivity / self.false.days if self.false.days else None,
            "wall_s": round(self.wall_s, 2),
        }


# ------------------------------------------------------------------------------------------------------------
# the data sets


@dataclass(frozen=True)
class SimSizes:
    falls: int = 40  # homes, one fall each
    history_days: int = 21  # days simulated before the fall's day
    quiet_homes: int = 20  # homes without incidents, for false alerts
    quiet_days: int = 60
    learn_days: float = 14.0


def run_sim(dets: Sequence[tuple[str, Detector]], sizes: SimSizes, seed: int) -> tuple[dict[str, Scores], str]:
    """Simulated homes (the simulator's default flat, Europe/London), one fall each at a uniform time of day."""
    start = start_of(date(2026, 1, 5))
    rng = np.random.default_rng([seed, 4])
    homes = homes_for(sizes.falls, None)
    # Where the resident is at that moment decides the room (asleep: the bedroom; out: outside).
    incidents = [Fall(home=h.id, day=sizes.history_days, at=float(rng.uniform(0, DAY_MIN))) for h in homes]
    sim = Simulation(homes, start, sizes.history_days + 2, seed=seed, incidents=incidents)  # ≥ 24 h after each fall
    falling = list(sim.observations())
    truth = [t for t in sim.truth if t.kind == "fall"]
    quiet = list(Simulation(homes_for(sizes.quiet_homes, None), start, sizes.quiet_days,
                            seed=seed + 1000).observations())
    tz = ZoneInfo(homes[0].timezone)
    windows = watch_windows(quiet, sizes.learn_days)
    rooms = Counter(t.room or "out" for t in truth)
    active = activity_times(falling)
    note = (f"{len(truth)} homes x 1 fall after {sizes.history_days} days (rooms: "
            f"{', '.join(f'{r} {n}' for r, n in rooms.most_common())}); false alerts: {len(windows)} homes x "
            f"{sizes.quiet_days} days, learning {sizes.learn_days:g} days; "
            f"{len(falling) + len(quiet):,} observations")
    out: dict[str, Scores] = {}
    for name, det in dets:
        scores = Scores()
        t0 = time.perf_counter()
        alerts = det(falling, tz, sizes.learn_days)
        for t in truth:
            scores.fall(alerts, t.home, t.start_ms, tz, was_active(active.get(t.home, []), t.start_ms))
        scores.false = false_alerts(det(quiet, tz, sizes.learn_days), windows)
        scores.wall_s = time.perf_counter() - t0
        out[name] = scores
    return out, note


def run_recording(path: Path, dets: Sequence[tuple[str, Detector]], cuts: int, seed: int,
                  learn_default: float) -> tuple[str, dict[str, Scores], str]:
    """A real recording: false alerts on it whole, and a fall at each of ``cuts`` random moments (cut there)."""
    rec = read_recording(path)
    obs = rec.observations
    tz = ZoneInfo(rec.timezone)
    first, last = obs[0].time_ms, obs[-1].time_ms
    span = (last - first) / DAY_MS
    learn = learn_days_for(span, learn_default)
    rng = np.random.default_rng([seed, zlib.crc32(rec.home.encode())])  # per home: the same whatever else runs
    moments = cut_moments(first, last, learn, cuts, rng)
    times = [o.time_ms for o in obs]
    windows = watch_windows(obs, learn)
    active = activity_times(obs).get(rec.home, [])
    note = (f"{rec.dataset}: {len(obs):,} observations over {span:.1f} days, learning {learn:.1f} days"
            f"{' (half the recording)' if learn < learn_default else ''}, {len(moments)} cuts")
    out: dict[str, Scores] = {}
    for name, det in dets:
        scores = Scores()
        t0 = time.perf_counter()
        scores.false = false_alerts(det(obs, tz, learn), windows)
        for at in moments:
            scores.fall(det(cut(obs, at, times), tz, learn), rec.home, at, tz, was_active(active, at))
        scores.wall_s = time.perf_counter() - t0
        out[name] = scores
    return rec.home, out, note


# ------------------------------------------------------------------------------------------------------------
# report

TARGET_MEDIAN_MS = 90 * 60_000
TARGET_MEAN_MS = 3 * HOUR_MS
TARGET_FALSE_PER_MONTH = 1.0


def table(title: str, scores: Mapping[str, Scores]) -> str:
    head = (f"  {'detector':<10} {'falls':>6} {'detected':>14} {'median':>7} {'p90':>6} {'mean':>6} "
            f"{'false safety/mo':>16} {'false inact/mo':>15} {'wall s':>7}")
    lines = [title, head]
    for name, s in scores.items():
        share = s.detected_share
        detected = f"{len(s.delays_ms)} ({share:.0%})" if share is not None else "-"
        fps, fin = s.false.per_month(s.false.person_safety), s.false.per_month(s.false.inactivity)
        lines.append(f"  {name:<10} {s.falls:>6} {detected:>14} {hm(s.delay('median')):>7} {hm(s.delay('p90')):>6} "
                     f"{hm(s.delay('mean')):>6} {_rate(fps, s.false.person_safety):>16} "
                     f"{_rate(fin, s.false.inactivity):>15} {s.wall_s:>7.1f}")
    for name, s in scores.items():
        if s.falls:
            kinds = ", ".join(f"{k} {n}" for k, n in s.first_kinds.most_common()) or "none"
            parts = "  ".join(f"{label} {'/'.join(map(str, s.subset(label)))} {hm(s.delay('median', label))}"
                              for label in (*BANDS, "active", "still") if label in s.by)
            lines.append(f"    {name}: first alert {kinds}; detected/falls, median: {parts}")
    return "\n".join(lines)


def _rate(per_mo: float | None, count: int) -> str:
    return "-" if per_mo is None else f"{per_mo:.2f} ({count})"


def verdict(scores: Mapping[str, Scores]) -> list[str]:
    """Each detector against the targets, and each non-baseline one against each baseline."""
    lines = []
    for name, s in scores.items():
        fin = s.false.per_month(s.false.inactivity)
        med, mean = s.delay("median"), s.delay("mean")
        checks = [
            ("all falls detected within 24 h", s.falls > 0 and len(s.delays_ms) == s.falls),
            ("median < 1:30", med is not None and med < TARGET_MEDIAN_MS),
            ("mean < 3:00", mean is not None and mean < TARGET_MEAN_MS),
            ("false inactivity <= 1/month", fin is not None and fin <= TARGET_FALSE_PER_MONTH),
        ]
        if not is_baseline(name):
            for base, b in scores.items():
                if is_baseline(base):
                    bmed, bfin = b.delay("median"), b.false.per_month(b.false.inactivity)
                    checks.append((f"faster than {base}", med is not None and (bmed is None or med < bmed)))
                    checks.append((f"fewer false alerts than {base}",
                                   fin is not None and bfin is not None and fin <= bfin))
        met = all(ok for _, ok in checks)
        lines.append(f"  {name}: {'MEETS the targets' if met else 'does NOT meet the targets'}: "
                     + "; ".join(f"{label} {'yes' if ok else 'NO'}" for label, ok in checks))
    return lines


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", type=Path, default=DEFAULT_DATASETS,
                    help="folder of the real recordings (default ../shared/datasets or $TELECARE_DATASETS)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--cuts", type=int, default=None, help="falls (cuts) per recording (default 40; quick 4)")
    ap.add_argument("--learn-days", type=float, default=14.0, help="learning period; recordings: at most half")
    ap.add_argument("--sim-falls", type=int, default=None, help="simulated homes with one fall (default 40)")
    ap.add_argument("--sim-history-days", type=int, default=None, help="days before the fall (default 21)")
    ap.add_argument("--sim-quiet-homes", type=int, default=None, help="homes without incidents (default 20)")
    ap.add_argument("--sim-quiet-days", type=int, default=None, help="their days (default 60)")
    ap.add_argument("--no-sim", action="store_true")
    ap.add_argument("--no-recordings", action="store_true")
    ap.add_argument("--baseline-only", action="store_true", help="skip the gateway's detector")
    ap.add_argument("--quick", action="store_true", help="a small run (smoke test): 3 falls, 4 cuts per recording")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    args = ap.parse_args(argv)
    quick = SimSizes(falls=3, history_days=15, quiet_homes=2, quiet_days=20)
    default = quick if args.quick else SimSizes()
    sizes = SimSizes(
        falls=args.sim_falls if args.sim_falls is not None else default.falls,
        history_days=args.sim_history_days if args.sim_history_days is not None else default.history_days,
        quiet_homes=args.sim_quiet_homes if args.sim_quiet_homes is not None else default.quiet_homes,
        quiet_days=args.sim_quiet_days if args.sim_quiet_days is not None else default.quiet_days,
        learn_days=args.learn_days)
    cuts = args.cuts if args.cuts is not None else (4 if args.quick else 40)

    started = time.perf_counter()
    dets, note = detectors()
    if args.baseline_only:
        dets = [d for d in dets if is_baseline(d[0])]
    print(f"detection benchmark: detectors {', '.join(n for n, _ in dets)}; seed {args.seed}")
    if note:
        print(f"  NOTE: {note}")
    results: dict[str, dict[str, Scores]] = {}
    notes: dict[str, str] = {}
    if not args.no_sim:
        results["sim"], notes["sim"] = run_sim(dets, sizes, args.seed)
    if not args.no_recordings:
        paths = [args.datasets / r for r in RECORDINGS if (args.datasets / r).is_file()]
        if not paths:
            print(f"  NOTE: no recordings under {args.datasets}: simulated homes only")
        for path in paths:
            home, scores, notes[path.stem] = run_recording(path, dets, cuts, args.seed, args.learn_days)
            results[home] = scores
            notes[home] = notes.pop(path.stem)

    print("  time to alert: from the fall (a recording's cut) to the first person-safety alert raised at or after "
          "it, over the falls detected within 24 h;")
    print("  false alerts: person-safety alerts after learning, per resident-month (30 days) (count). The "
          "recordings hold no\n  incidents, so every alert on them counts as false, though they include real "
          "episodes (out for the night, asleep, gaps).")
    for name, scores in results.items():
        print()
        print(table(f"{name}: {notes[name]}", scores))
    # Pooled: falls and resident-days add up. Simulated and real homes apart too: the simulated homes' many
    # resident-days would otherwise outweigh the real ones in the false-alert rate.
    groups: dict[str, dict[str, Scores]] = {}
    if "sim" in results:
        groups["sim"] = results["sim"]
    real = [scores for name, scores in results.items() if name != "sim"]
    for group, members in (("recordings", real), ("total", list(results.values()))):
        if not members or (group == "total" and len(groups) < 2):
            continue
        groups[group] = {n: Scores() for n, _ in dets}
        for scores in members:
            for det, one in scores.items():
                groups[group][det].merge(one)
        print()
        print(table(f"{group}: {', '.join(results) if group == 'total' else 'the recordings together'}",
                    groups[group]))
    print()
    print("verdict (targets: every fall within 24 h, median < 1:30, mean < 3:00, false inactivity <= 1 per "
          "resident-month, beating the baseline):")
    verdicts = {group: verdict(scores) for group, scores in groups.items()}
    for group, lines in verdicts.items():
        print(f" {group}:")
        for line in lines:
            print(line)
    wall = time.perf_counter() - started
    print(f"\nwall time {wall:.0f} s")
    figures: dict[str, Any] = {
        "settings": {"seed": args.seed, "cuts_per_recording": cuts, "learn_days": args.learn_days,
                     "sim": asdict(sizes) if not args.no_sim else None, "quick": args.quick},
        "note": note,
        "data_sets": {name: {"note": notes[name], **{d: s.figures() for d, s in scores.items()}}
                      for name, scores in results.items()},
        "groups": {group: {d: s.figures() for d, s in scores.items()} for group, scores in groups.items()},
        "verdict": verdicts,
        "wall_s": round(wall, 1),
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return figures


if __name__ == "__main__":
    main()
