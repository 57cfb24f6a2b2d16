"""bench/detection.py: cutting a recording, scoring detections and false alerts, the fixed-threshold baseline,
and a quick run of the whole benchmark."""

from __future__ import annotations

import json
from datetime import UTC
from pathlib import Path

import numpy as np
import pytest

from bench import detection as bench
from bench.detection import DAY_MS, HOUR_MS, Alert, fixed_threshold
from sensors_sim.events import Observation

T0 = 1_764_000_000_000


def motion(t: int, value: bool = True, home: str = "h", device: str = "pir") -> Observation:
    return Observation(t, home, device, "motion", value, "kitchen", "room")


def alert(at: int, kind: str = "inactivity", home: str = "h") -> Alert:
    return Alert(home, kind, at, None, "", 3)


def test_a_cut_keeps_only_what_came_before_it() -> None:
    obs = [motion(T0), motion(T0 + 10), motion(T0 + 10, False), motion(T0 + 20)]
    assert bench.cut(obs, T0 + 10) == obs[:1]
    assert bench.cut(obs, T0 + 11) == obs[:3]
    assert bench.cut(obs, T0) == []
    assert bench.cut(obs, T0 + 21) == obs


def test_cut_moments_are_seeded_and_inside_the_evaluation_period() -> None:
    last = T0 + 20 * DAY_MS
    moments = bench.cut_moments(T0, last, 7.0, 50, np.random.default_rng(3))
    assert moments == sorted(moments) and len(moments) == 50
    assert all(T0 + 7 * DAY_MS <= m < last - DAY_MS for m in moments)
    assert moments == bench.cut_moments(T0, last, 7.0, 50, np.random.default_rng(3))
    assert bench.cut_moments(T0, T0 + 8 * DAY_MS, 7.0, 5, np.random.default_rng(3)) == []  # no room left


def test_a_fall_is_while_active_after_activity_in_the_15_minutes_before_it() -> None:
    times = bench.activity_times([motion(T0), motion(T0 + 60_000, False), motion(T0 + HOUR_MS)])["h"]
    assert times == [T0, T0 + HOUR_MS]
    assert bench.was_active(times, T0 + 15 * 60_000) and not bench.was_active(times, T0 + 16 * 60_000)
    assert not bench.was_active(times, T0)  # activity at the same moment is not before it


def test_short_recordings_learn_for_half_their_length() -> None:
    assert bench.learn_days_for(28.0) == 14.0
    assert bench.learn_days_for(14.2) == pytest.approx(7.1)


def test_the_first_person_safety_alert_at_or_after_the_fall_within_24_h_detects_it() -> None:
    fall = T0 + 10 * HOUR_MS
    alerts = [
        alert(fall - 1),  # open before the fall: does not count
        alert(fall + 5, "sensor_silent"),  # device health
        alert(fall + 6, "returned"),  # a notice
        alert(fall + 7, home="other"),
        alert(fall + 3 * HOUR_MS, "not_up"),
        alert(fall + HOUR_MS, "inactivity"),
    ]
    hit = bench.first_detection(alerts, "h", fall)
    assert hit is not None and (hit.kind, hit.raised_at_ms) == ("inactivity", fall + HOUR_MS)
    assert bench.first_detection([alert(fall)], "h", fall) is not None  # at the fall itself
    assert bench.first_detection([alert(fall + DAY_MS)], "h", fall) is None  # 24 h after: too late
    assert bench.first_detection([alert(fall + DAY_MS - 1, "pendant")], "h", fall) is not None


def test_scores_keep_the_delays_and_the_first_kind() -> None:
    s = bench.Scores()
    s.fall([alert(T0 + HOUR_MS)], "h", T0, UTC)
    s.fall([alert(T0 + 3 * HOUR_MS, "not_up")], "h", T0, UTC)
    s.fall([], "h", T0, UTC)
    assert (s.falls, s.delays_ms, s.detected_share) == (3, [HOUR_MS, 3 * HOUR_MS], pytest.approx(2 / 3))
    assert s.delay("median") == 2 * HOUR_MS and s.delay("mean") == 2 * HOUR_MS
    assert s.first_kinds == {"inactivity": 1, "not_up": 1}
    assert bench.hm(s.delay("p90")) == "2:48" and bench.hm(90 * 60_000) == "1:30"


def test_false_alerts_per_resident_month() -> None:
    windows = {"h": (T0, T0 + 30 * DAY_MS), "g": (T0, T0 + 15 * DAY_MS)}
    alerts = [alert(T0 - 1), alert(T0 + DAY_MS), alert(T0 + 2 * DAY_MS, "not_up"),
              alert(T0 + 3 * DAY_MS, "low_battery"), alert(T0 + 31 * DAY_MS), alert(T0 + DAY_MS, home="g"),
              alert(T0 + DAY_MS, home="unwatched")]
    f = bench.false_alerts(alerts, windows)
    assert (f.person_safety, f.inactivity, f.days) == (3, 2, 45.0)
    assert f.per_month(f.inactivity) == pytest.approx(2 / 45 * 30)
    assert bench.per_month(1, 30.0) == 1.0 and bench.per_month(0, 0.0) is None
    obs = [motion(T0), motion(T0 + 20 * DAY_MS), motion(T0 + DAY_MS, home="g")]
    assert bench.watch_windows(obs, 14.0) == {"h": (T0 + 14 * DAY_MS, T0 + 20 * DAY_MS)}  # g never leaves learning


def test_the_baseline_alerts_after_n_hours_without_a_change() -> None:
    obs = [
        motion(T0), motion(T0 + 60_000, False),  # the PIR's timeout: not activity
        motion(T0 + 2 * HOUR_MS, False),  # a re-published state: not activity
        motion(T0 + 5 * HOUR_MS),  # 5 h after: the 4 h alert is cleared
        Observation(T0 + 6 * HOUR_MS, "h", "kitchen_climate", "climate", 19.0, "kitchen"),
    ]
    alerts = fixed_threshold(obs, UTC, 0.0, hours=4)
    assert [(a.kind, a.raised_at_ms, a.cleared_at_ms) for a in alerts] == [
        ("inactivity", T0 + 4 * HOUR_MS, T0 + 5 * HOUR_MS),
        ("inactivity", T0 + 9 * HOUR_MS, None),  # the end: run on to the last observation + 24 h
    ]
    assert fixed_threshold(obs, UTC, 0.0, hours=31) == []  # past the horizon
    # Learning: the first alert is not reported, and not raised again while its condition lasts.
    assert [a.raised_at_ms for a in fixed_threshold(obs, UTC, 0.3, hours=4)] == [T0 + 9 * HOUR_MS]
    two = sorted([*obs, motion(T0 + HOUR_MS, home="g")], key=lambda o: o.time_ms)
    assert {a.home for a in fixed_threshold(two, UTC, 0.0, hours=4)} == {"h", "g"}


def test_the_baseline_counts_contacts_pads_and_plugs_but_learns_a_contact_first() -> None:
    obs = [
        Observation(T0, "h", "door", "contact", True),  # first state: only learned, else an alert at T0 + 1 h
        Observation(T0 + HOUR_MS, "h", "pad", "presence", True),
        Observation(T0 + 3 * HOUR_MS // 2, "h", "door", "contact", False),
        Observation(T0 + 3 * HOUR_MS, "h", "kettle", "plug", 1500.0),
    ]
    assert [a.raised_at_ms for a in fixed_threshold(obs, UTC, 0.0, hours=1)] == [T0 + 5 * HOUR_MS // 2,
                                                                                T0 + 4 * HOUR_MS]


def test_a_quick_run_writes_its_figures(tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    datasets = bench.DEFAULT_DATASETS
    have_recordings = any((datasets / r).is_file() for r in bench.RECORDINGS)
    args = ["--quick", "--baseline-only", "--json", str(out), "--datasets", str(datasets)]
    figures = bench.main(args if have_recordings else [*args, "--no-recordings"])
    written = json.loads(out.read_text(encoding="utf-8"))
    sim = written["data_sets"]["sim"]["fixed 4 h"]
    assert sim["falls"] == 3 and sim["resident_days"] > 0
    assert sum(p["falls"] for p in sim["by_time_of_day"].values()) == 3
    assert figures["verdict"] == written["verdict"]
    if not have_recordings:
        pytest.skip(f"no recordings under {datasets}: simulated homes only")
    assert len(written["data_sets"]) == 1 + len(bench.RECORDINGS)
    assert written["groups"].keys() == {"sim", "recordings", "total"}
    assert written["groups"]["recordings"].keys() == {"fixed 12 h", "fixed 4 h"}
    assert written["groups"]["recordings"]["fixed 12 h"]["falls"] == 4 * len(bench.RECORDINGS)
    assert written["groups"]["total"]["fixed 12 h"]["falls"] == 3 + 4 * len(bench.RECORDINGS)
