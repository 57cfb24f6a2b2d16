"""bench/wilhelm_wahl.py: the Inactivity Score, its threshold learned per time of day, and its alerts."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime

import numpy as np
import pytest

from bench import wilhelm_wahl as ww
from bench.wilhelm_wahl import WilhelmWahl
from sensors_sim.events import Observation

MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR
MONDAY = int(datetime(2026, 1, 5, tzinfo=UTC).timestamp() * 1000)


def moves(t: int, device: str = "pir", home: str = "h") -> list[Observation]:
    """A PIR's motion and, a minute later, its timeout (not activity)."""
    return [Observation(t, home, device, "motion", True, "hall"), Observation(t + MINUTE, home, device, "motion",
                                                                              False, "hall")]


def routine_day(day: int, until_hour: float = 23.0) -> list[Observation]:
    """Motion every 10 minutes from 07:00 to ``until_hour``; nothing at night."""
    start = MONDAY + day * DAY + 7 * HOUR
    return [o for k in range(round((until_hour - 7) * 6)) for o in moves(start + k * 10 * MINUTE)]


def feed(detector: WilhelmWahl, rows: list[Observation]) -> WilhelmWahl:
    for o in sorted(rows, key=lambda o: o.time_ms):
        detector.add(o)
    return detector


def test_same_days_raise_nothing_and_a_stop_at_noon_is_alerted_when_the_score_passes_the_daily_maximum() -> None:
    rows = [o for day in range(9) for o in routine_day(day)] + routine_day(9, until_hour=12.0)
    alerts = feed(WilhelmWahl(UTC, learn_days=0.0), rows).finish()
    # Every weekday the same: the score never passes 1.1 x the earlier days' maxima. The first Saturday has no
    # weekend day before it, so no threshold (no alarm either), whatever its long night.
    # Day 9 stops after the motion at 11:50: around noon the earlier weekdays' highest score in ±1 h was 9 minutes
    # (a tick before each motion), so the threshold is 9.9 and the score passes it 10 minutes after the motion.
    last_motion = MONDAY + 9 * DAY + 11 * HOUR + 50 * MINUTE
    assert [(a.kind, a.raised_at_ms, a.cleared_at_ms) for a in alerts] == [("inactivity", last_motion + 10 * MINUTE,
                                                                             None)]


def test_alerts_while_learning_are_not_reported_nor_raised_again() -> None:
    rows = [o for day in range(3) for o in routine_day(day)] + routine_day(3, until_hour=12.0)
    learning = 3.0 + (11 * HOUR + 55 * MINUTE) / DAY  # the alert at 12:00 on day 3 falls inside it
    assert feed(WilhelmWahl(UTC, learn_days=learning), rows).finish() == []
    assert len(feed(WilhelmWahl(UTC, learn_days=0.0), rows).finish()) == 1


def test_activity_clears_the_alert_and_the_next_stillness_raises_a_new_one() -> None:
    day9 = MONDAY + 9 * DAY
    rows = ([o for day in range(9) for o in routine_day(day)] + routine_day(9, until_hour=12.0)
            + moves(day9 + 14 * HOUR) + moves(day9 + 14 * HOUR + 10 * MINUTE))
    alerts = feed(WilhelmWahl(UTC, learn_days=0.0), rows).finish()
    assert [(a.raised_at_ms, a.cleared_at_ms) for a in alerts] == [
        (day9 + 12 * HOUR, day9 + 14 * HOUR),
        (day9 + 14 * HOUR + 20 * MINUTE, None),
    ]


def test_a_longer_usual_quiet_at_that_time_of_day_raises_the_threshold() -> None:
    # Every weekday a 3 h nap from 13:00 to 16:00: a stop at 13:00 on day 9 is alerted only past 1.1 x 3 h.
    def napping(day: int) -> list[Observation]:
        return [o for o in routine_day(day) if not MONDAY + day * DAY + 13 * HOUR <= o.time_ms < MONDAY + day * DAY
                + 16 * HOUR]

    rows = [o for day in range(9) for o in napping(day)] + routine_day(9, until_hour=12.0 + 50 / 60)
    alerts = feed(WilhelmWahl(UTC, learn_days=0.0), rows).finish()
    last_motion = MONDAY + 9 * DAY + 12 * HOUR + 40 * MINUTE
    # Each nap's score peaks at 3:09 at 15:59 (from the motion at 12:50): from 14:59 to 16:59 every earlier
    # weekday's window holds it, so the threshold is 1.1 x 189 = 207.9 minutes, passed 208 minutes after 12:40
    # (before 14:59 the windows' maxima are lower, but so is the score).
    assert [a.raised_at_ms - last_motion for a in alerts] == [208 * MINUTE]


def test_an_uncertain_event_lowers_the_score_by_its_certainty_less_when_its_sensor_fired_just_before(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ww, "CERTAINTY", {"motion": 0.5})
    det = WilhelmWahl(UTC, learn_days=0.0)
    det.add(Observation(MONDAY, "h", "door", "contact", True))  # the home's first row: score 0 from here
    det.add(Observation(MONDAY + 60 * MINUTE, "h", "pir", "motion", True))  # first event of the PIR: w = 1
    assert det.homes["h"].score == pytest.approx(30.0)  # 60 minutes x (1 - 0.5)
    det.add(Observation(MONDAY + 61 * MINUTE, "h", "pir", "motion", False))
    # 90 minutes later, within its release time (6 h x (1 - 0.5) = 3 h): w = 0.5, the impact 0.25.
    det.add(Observation(MONDAY + 150 * MINUTE, "h", "pir", "motion", True))
    assert det.homes["h"].score == pytest.approx((30.0 + 90.0) * 0.75)
    det.add(Observation(MONDAY + 151 * MINUTE, "h", "door", "contact", False))  # contacts are certain: reset
    assert det.homes["h"].score == 0.0


def test_the_filtered_maximum_is_the_largest_daily_maximum_capped_at_the_upper_fence() -> None:
    rng = np.random.default_rng(1)
    maxima = rng.uniform(0, 100, (9, 40))
    maxima[2, :5] = 5000.0  # one outlying day
    maxima[rng.uniform(size=maxima.shape) < 0.2] = np.nan
    maxima[:, 7] = np.nan  # no day at all
    got = ww._filtered_maximum(maxima)
    assert np.isnan(got[7])
    keep = [i for i in range(40) if i != 7]
    q1, q3 = np.nanpercentile(maxima[:, keep], [25, 75], axis=0)
    assert np.allclose(got[keep], np.minimum(np.nanmax(maxima[:, keep], axis=0), q3 + 1.5 * (q3 - q1)))
    assert (got[:5] < 5000.0).all()


def test_a_copy_continues_as_the_original() -> None:
    rows = sorted([o for day in range(9) for o in routine_day(day)] + routine_day(9, until_hour=12.0),
                  key=lambda o: o.time_ms)
    half = len(rows) // 2
    det = feed(WilhelmWahl(UTC, learn_days=0.0), rows[:half])
    copy = pickle.loads(pickle.dumps(det))
    assert feed(copy, rows[half:]).finish() == feed(det, rows[half:]).finish() != []
