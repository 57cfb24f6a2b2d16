"""Detection benchmark: how soon a fall is alerted, and how often a resident is alerted on for nothing.

    python bench/detection.py [--quick] [--feedback] [--exact] [--datasets DIR] [--seed 1] [--cuts 40]
                              [--variants "as recorded,hourly"] [--jobs 2] [--json PATH]

Over simulated homes with an injected fall, and over the real recordings in ``../shared/datasets/`` with a fall
injected by cutting the recording at random moments (after the cut the resident does nothing, while the devices
go on reporting), each recording in two variants: as recorded (state changes only) and with an hourly unchanged
report from each motion sensor (``bench/detection_data.py``). For each detector, in the same run:

* falls alerted within 24 h, and the median and mean time from the fall to the first person-safety alert raised
  at or after it (alerts already open at the fall do not count), over all falls and over the falls while the
  resident was up and about (activity in the 15 minutes before);
* false ``inactivity`` and ``not_up`` alerts per resident-month (30 days), on the uncut recordings and on
  simulated homes without incidents, after each home's learning period.

The detectors: the gateway's (``analytics.replay.Replay``, "telecare"), with ``--feedback`` also the gateway's
taught by a simulated carer who marks every alert raised before the fall as a false alarm, Wilhelm & Wahl 2024
(``bench/wilhelm_wahl.py``, the best published method), and the fixed rules most setups use: an alert after
12 h (legacy telecare) or 4 h without activity. Each cut is evaluated on a copy of the detector taken at the cut
(``bench/detection_eval.py``); ``--exact`` replays every cut from the start instead. The targets (issue 10), per
data set and variant: every fall alerted within 24 h; falls while up and about: median <= 1:00; all falls:
median <= 1:30 and mean <= 3:00; at most one false inactivity or not_up alert per resident-month; the simulated
homes at least as good as the last recorded figures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import zlib
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.detection_data import (
    DAY_MS,
    DEFAULT_DATASETS,
    RECORDINGS,
    VARIANTS,
    activity_times,
    cut_moments,
    learn_days_for,
    was_active,
    watch_windows,
)
from bench.detection_eval import DetectorSpec, SimulatedCarer, detectors, evaluate, run
from bench.detection_scores import (
    SIM_TODAY_FALSE_INACTIVITY_PER_MONTH,
    SIM_TODAY_MEAN_MIN,
    SIM_TODAY_MEDIAN_MIN,
    Scores,
    checks,
    false_alerts,
    hm,
    meets,
    summary,
    table,
    verdict_line,
)
from sensors_sim.generate import Simulation, homes_for, start_of
from sensors_sim.incidents import Fall
from sensors_sim.recordings import read_recording
from sensors_sim.scenario import DAY_MIN

SIM = "sim"  # the simulated homes, in one variant: their devices already re-send their state (about every 50 min)
AS_SIMULATED = "as simulated"


@dataclass(frozen=True)
class SimSizes:
    falls: int = 40  # homes, one fall each
    history_days: int = 21  # days simulated before the fall's day
    quiet_homes: int = 20  # homes without incidents, for false alerts
    quiet_days: int = 60
    learn_days: float = 14.0


SIM_PARTS = ("falls", "quiet")  # the simulated homes' two halves, run in two workers side by side


@dataclass(frozen=True)
class Task:
    """One data set in one variant, run in a worker process (the detectors are made there)."""

    path: Path | None  # a recording, or None: the simulated homes
    variant: str
    seed: int
    cuts: int
    learn_days: float
    sizes: SimSizes
    feedback: bool
    baseline_only: bool
    exact: bool
    sim_parts: tuple[str, ...] = SIM_PARTS


@dataclass
class Result:
    name: str
    variant: str
    scores: dict[str, Scores]
    note: str

    def merge(self, other: Result) -> None:
        """Adds another part of the same data set and variant (the simulated homes' falls and quiet homes)."""
        for name, s in other.scores.items():
            self.scores.setdefault(name, Scores()).merge(s)
        self.note = "; ".join(n for n in (self.note, other.note) if n)


def run_task(task: Task) -> Result:
    specs, _ = detectors(feedback=task.feedback, baseline_only=task.baseline_only)
    if task.path is None:
        scores, note = run_sim(specs, task.sizes, task.seed, task.sim_parts)
        return Result(SIM, AS_SIMULATED, scores, note)
    home, scores, note = run_recording(task.path, task.variant, specs, task.cuts, task.seed, task.learn_days,
                                       exact=task.exact)
    return Result(home, task.variant, scores, note)


def run_sim(specs: Sequence[DetectorSpec], sizes: SimSizes, seed: int,
            parts: Sequence[str] = SIM_PARTS) -> tuple[dict[str, Scores], str]:
    """Simulated homes (the simulator's default flat, Europe/London): "falls", one fall each at a uniform time of
    day; "quiet", homes without incidents, for false alerts."""
    start = start_of(date(2026, 1, 5))
    out: dict[str, Scores] = {spec.name: Scores() for spec in specs}
    notes = []
    if "falls" in parts:
        rng = np.random.default_rng([seed, 4])
        homes = homes_for(sizes.falls, None)
        tz = ZoneInfo(homes[0].timezone)
        # Where the resident is at that moment decides the room (asleep: the bedroom; out: outside).
        incidents = [Fall(home=h.id, day=sizes.history_days, at=float(rng.uniform(0, DAY_MIN))) for h in homes]
        sim = Simulation(homes, start, sizes.history_days + 2, seed=seed, incidents=incidents)  # ≥ 24 h after
        falling = list(sim.observations())
        truth = [t for t in sim.truth if t.kind == "fall"]
        rooms = Counter(t.room or "out" for t in truth)
        active = activity_times(falling)
        carer = SimulatedCarer({t.home: t.start_ms for t in truth})
        notes.append(f"{len(truth)} homes x 1 fall after {sizes.history_days} days, {sizes.learn_days:g} of them "
                     f"learning (rooms: {', '.join(f'{r} {n}' for r, n in rooms.most_common())}), "
                     f"{len(falling):,} observations")
        for spec in specs:
            t0 = time.perf_counter()
            alerts = run(spec, falling, tz, sizes.learn_days, carer)
            for t in truth:
                out[spec.name].fall(alerts, t.home, t.start_ms, tz, was_active(active.get(t.home, []), t.start_ms))
            out[spec.name].wall_s += time.perf_counter() - t0
    if "quiet" in parts:
        homes = homes_for(sizes.quiet_homes, None)
        quiet = list(Simulation(homes, start, sizes.quiet_days, seed=seed + 1000).observations())
        windows = watch_windows(quiet, sizes.learn_days)
        notes.append(f"false alerts: {len(windows)} homes x {sizes.quiet_days} days, {sizes.learn_days:g} of them "
                     f"learning, {len(quiet):,} observations")
        for spec in specs:
            t0 = time.perf_counter()
            alerts = run(spec, quiet, ZoneInfo(homes[0].timezone), sizes.learn_days, SimulatedCarer())
            out[spec.name].false = false_alerts(alerts, windows)
            out[spec.name].wall_s += time.perf_counter() - t0
    return out, "; ".join(notes)


def run_recording(path: Path, variant: str, specs: Sequence[DetectorSpec], cuts: int, seed: int,
                  learn_default: float, *, exact: bool = False) -> tuple[str, dict[str, Scores], str]:
    """A real recording in ``variant``: false alerts on it whole, and a fall at each of ``cuts`` random moments."""
    rec = read_recording(path)
    obs = rec.observations
    tz = ZoneInfo(rec.timezone)
    first, last = obs[0].time_ms, obs[-1].time_ms
    span = (last - first) / DAY_MS
    learn = learn_days_for(span, learn_default)
    rng = np.random.default_rng([seed, zlib.crc32(rec.home.encode())])  # per home: the same whatever else runs
    moments = cut_moments(first, last, learn, cuts, rng)
    windows = watch_windows(obs, learn)
    active = activity_times(obs).get(rec.home, [])
    motion = len({o.device for o in obs if o.kind == "motion"})
    note = (f"{rec.dataset}, {variant}: {len(obs):,} observations over {span:.1f} days, {motion} motion sensors, "
            f"learning {learn:.1f} days{' (half the recording)' if learn < learn_default else ''}, "
            f"{len(moments)} cuts")
    out: dict[str, Scores] = {}
    for spec in specs:
        scores = Scores()
        t0 = time.perf_counter()
        runs = evaluate(spec, obs, variant, moments, tz, learn, exact=exact)
        scores.false = false_alerts(runs.whole, windows)
        for at, alerts in zip(moments, runs.cuts, strict=True):
            scores.fall(alerts, rec.home, at, tz, was_active(active, at))
        scores.wall_s = time.perf_counter() - t0
        out[spec.name] = scores
    return rec.home, out, note


# ------------------------------------------------------------------------------------------------------------


def _args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", type=Path, default=DEFAULT_DATASETS,
                    help="folder of the real recordings (default ../shared/datasets or $TELECARE_DATASETS)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--cuts", type=int, default=None, help="falls (cuts) per recording (default 40; quick 4)")
    ap.add_argument("--learn-days", type=float, default=14.0, help="learning period; recordings: at most half")
    ap.add_argument("--variants", default=",".join(VARIANTS),
                    help=f"of the recordings, comma-separated (default: {','.join(VARIANTS)})")
    ap.add_argument("--sim-falls", type=int, default=None, help="simulated homes with one fall (default 40)")
    ap.add_argument("--sim-history-days", type=int, default=None, help="days before the fall (default 21)")
    ap.add_argument("--sim-quiet-homes", type=int, default=None, help="homes without incidents (default 20)")
    ap.add_argument("--sim-quiet-days", type=int, default=None, help="their days (default 60)")
    ap.add_argument("--no-sim", action="store_true")
    ap.add_argument("--no-recordings", action="store_true")
    ap.add_argument("--baseline-only", action="store_true", help="skip the gateway's detector")
    ap.add_argument("--feedback", action="store_true",
                    help="also the gateway's detector taught by a carer who marks alerts before the fall false")
    ap.add_argument("--exact", action="store_true", help="replay each cut from the start (slow) instead of a copy")
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="worker processes")
    ap.add_argument("--quick", action="store_true", help="a small run (smoke test): 3 falls, 4 cuts per recording")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    args = ap.parse_args(argv)
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if unknown := [v for v in args.variants if v not in VARIANTS]:
        ap.error(f"unknown variants {unknown}: choose from {list(VARIANTS)}")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = _args(argv)
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
    specs, notes = detectors(feedback=args.feedback, baseline_only=args.baseline_only)
    print(f"detection benchmark: detectors {', '.join(s.name for s in specs)}; seed {args.seed}; "
          f"{'exact replays' if args.exact else 'cuts on copies'}; {args.jobs} worker(s)")
    for note in notes:
        print(f"  NOTE: {note}")
    tasks = []
    common = dict(seed=args.seed, cuts=cuts, learn_days=args.learn_days, sizes=sizes, feedback=args.feedback,
                  baseline_only=args.baseline_only, exact=args.exact)
    if not args.no_sim:  # in two parts when two workers can take them side by side: the longest tasks
        parts = [(p,) for p in SIM_PARTS] if args.jobs > 1 else [SIM_PARTS]
        tasks += [Task(path=None, variant=AS_SIMULATED, sim_parts=p, **common) for p in parts]  # type: ignore[arg-type]
    if not args.no_recordings:
        paths = [args.datasets / r for r in RECORDINGS if (args.datasets / r).is_file()]
        if not paths:
            print(f"  NOTE: no recordings under {args.datasets}: simulated homes only")
        tasks += [Task(path=p, variant=v, **common) for p in paths for v in args.variants]  # type: ignore[arg-type]
    if args.jobs > 1 and len(tasks) > 1:
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            parts = list(pool.map(run_task, tasks))
    else:
        parts = [run_task(t) for t in tasks]
    results: list[Result] = []
    for part in parts:
        same = [r for r in results if (r.name, r.variant) == (part.name, part.variant)]
        if same:
            same[0].merge(part)
        else:
            results.append(part)
    return report(results, specs, notes, args, sizes, cuts, time.perf_counter() - started)


def report(results: list[Result], specs: Sequence[DetectorSpec], notes: list[str], args: argparse.Namespace,
           sizes: SimSizes, cuts: int, wall: float) -> dict[str, Any]:
    print("  time to alert: from the fall (a recording's cut) to the first person-safety alert raised at or after "
          "it, over the falls alerted within 24 h;\n  active: falls with activity in the 15 minutes before. False "
          "alerts a resident-month (30 days) (count), after learning. The\n  recordings hold no incidents, so "
          "every alert on them counts as false, though they include real episodes (out for the\n  night, asleep, "
          "gaps).")
    for r in results:
        print()
        print(table(f"{r.name}: {r.note}", r.scores))
    # Pooled per variant: falls and resident-days add up (the simulated homes apart: their many resident-days
    # would otherwise outweigh the real ones in the false-alert rate).
    pooled: dict[str, dict[str, Scores]] = {}
    for r in results:
        if r.variant == AS_SIMULATED:
            continue
        group = pooled.setdefault(r.variant, {s.name: Scores() for s in specs})
        for name, one in r.scores.items():
            group[name].merge(one)
    for variant, scores in pooled.items():
        print()
        print(table(f"recordings together, {variant}", scores))
    rows = [(r.name, r.variant, name, s, r.variant == AS_SIMULATED) for r in results for name, s in r.scores.items()]
    rows += [("recordings", variant, name, s, False) for variant, scores in pooled.items()
             for name, s in scores.items()]
    print("\nthe gateway's detectors against the targets:")
    for data_set, variant, name, s, simulated in rows:
        if any(sp.name == name and not sp.baseline for sp in specs):
            print(verdict_line(f"{data_set}, {variant}, {name}", s, simulated=simulated))
    print()
    print("targets per data set and variant: every fall within 24 h (24h), falls while up and about median <= 1:00 "
          "(active),\n  median <= 1:30, mean <= 3:00, false inactivity+not_up <= 1 a resident-month (false); the "
          f"simulated homes also\n  median <= {hm(SIM_TODAY_MEDIAN_MIN * 60_000)}, mean <= "
          f"{hm(SIM_TODAY_MEAN_MIN * 60_000)}, false inactivity <= {SIM_TODAY_FALSE_INACTIVITY_PER_MONTH} a month "
          "(sim-*, the figures of 2026-12-02)")
    print(summary(rows))
    print(f"\nwall time {wall:.0f} s")
    figures: dict[str, Any] = {
        "settings": {"seed": args.seed, "cuts_per_recording": cuts, "learn_days": args.learn_days,
                     "variants": args.variants, "sim": asdict(sizes) if not args.no_sim else None,
                     "quick": args.quick, "feedback": args.feedback, "exact": args.exact},
        "notes": notes,
        "data_sets": {},
        "groups": {f"recordings, {variant}": {d: s.figures() for d, s in scores.items()}
                   for variant, scores in pooled.items()},
        "verdict": {f"{data_set}, {variant}": {} for data_set, variant, *_ in rows},
        "wall_s": round(wall, 1),
    }
    for r in results:
        figures["data_sets"].setdefault(r.name, {})[r.variant] = {
            "note": r.note, **{d: s.figures() for d, s in r.scores.items()}}
    for data_set, variant, name, s, simulated in rows:
        figures["verdict"][f"{data_set}, {variant}"][name] = {
            "meets": meets(s, simulated=simulated),
            "targets": {label: ok for _, label, ok in checks(s, simulated=simulated)}}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return figures


if __name__ == "__main__":
    main()
