"""The resident's timeline: its shape, and the statistics of 30 simulated days against the configured routine."""

from __future__ import annotations

import itertools
import statistics
from collections import defaultdict
from datetime import UTC, date, datetime

import numpy as np
import pytest

from sensors_sim.routine import Activity, Step, simulate_days
from sensors_sim.scenario import HALL, ROOMS, default_home

HOME = default_home()  # Europe/London: in January local time is UTC
ROUTINE = HOME.routine
START = int(datetime(2025, 1, 6, tzinfo=UTC).timestamp() * 1000)  # a Monday
DAYS = 30
DAY_MS = 86_400_000
SEED = 2025


@pytest.fixture(scope="module")
def steps() -> list[Step]:
    return simulate_days(HOME, ROUTINE, START, DAYS, np.random.default_rng(SEED))


def _day(t: int) -> date:
    return datetime.fromtimestamp(t / 1000, UTC).date()


def _minutes(t: int) -> float:
    return (t % DAY_MS) / 60_000


def _wake_times(steps: list[Step]) -> dict[date, float]:
    """Getting up: the end of the last sleep of the morning."""
    wake: dict[date, float] = {}
    for s in steps:
        if s.activity is Activity.ASLEEP and 3 * 60 < _minutes(s.end_ms) < 13 * 60:
            wake[_day(s.end_ms)] = _minutes(s.end_ms)
    return wake


def _around(steps: list[Step], i: int, direction: int) -> list[Step]:
    """The two steps before (-1) or after (+1) step i, skipping the seconds spent crossing the hall."""
    found: list[Step] = []
    j = i + direction
    while 0 <= j < len(steps) and len(found) < 2:
        if not (steps[j].room == HALL and steps[j].activity is Activity.MOVING):
            found.append(steps[j])
        j += direction
    return found


def _is_night_visit(steps: list[Step], i: int) -> bool:
    out_of_bed = [(s.room, s.activity) for s in _around(steps, i, -1)]
    back_to_bed = [(s.room, s.activity) for s in _around(steps, i, +1)]
    pattern = [("bedroom", Activity.MOVING), ("bedroom", Activity.ASLEEP)]
    return out_of_bed == pattern and back_to_bed == pattern


def test_the_timeline_is_contiguous_and_covers_the_days(steps: list[Step]) -> None:
    assert steps[0].start_ms == START and steps[-1].end_ms == START + DAYS * DAY_MS
    assert all(a.end_ms == b.start_ms for a, b in itertools.pairwise(steps))
    assert all(s.end_ms > s.start_ms for s in steps)
    assert all((s.room is None) == (s.activity is Activity.OUT) for s in steps)
    assert {s.room for s in steps} == {*ROOMS, None}


def test_a_start_mid_day_is_clipped() -> None:
    noon = START + DAY_MS // 2
    steps = simulate_days(HOME, ROUTINE, noon, 2, np.random.default_rng(1))
    assert steps[0].start_ms == noon and steps[-1].end_ms == START + 2 * DAY_MS


def test_wake_times_spread_as_configured_and_weekends_start_later(steps: list[Step]) -> None:
    wake = _wake_times(steps)
    assert len(wake) == DAYS
    weekday = [m for d, m in wake.items() if d.weekday() < 5]
    weekend = [m for d, m in wake.items() if d.weekday() >= 5]
    configured = ROUTINE.sleep.wake_weekday
    assert abs(statistics.mean(weekday) - configured.mean) < 3 * configured.sd / len(weekday) ** 0.5 + 1
    assert 0.6 * configured.sd < statistics.stdev(weekday) < 1.5 * configured.sd
    assert statistics.mean(weekend) - statistics.mean(weekday) > 20


def test_bed_times_follow_the_configuration(steps: list[Step]) -> None:
    beds = [_minutes(s.start_ms) for i, s in enumerate(steps)
            if s.activity is Activity.ASLEEP and _minutes(s.start_ms) > 19 * 60
            and _around(steps, i, -1)[1].room != "bedroom"]
    configured = ROUTINE.sleep.bed_weekday
    assert len(beds) >= DAYS - 3
    assert abs(statistics.median(beds) - configured.mean) < 30


def test_bathroom_visits_by_day_and_by_night(steps: list[Step]) -> None:
    day_visits: dict[date, int] = defaultdict(int)
    night_visits = 0
    for i, s in enumerate(steps):
        if s.activity is Activity.TOILET:
            assert s.room == "bathroom"
            if _is_night_visit(steps, i):
                night_visits += 1
            else:
                day_visits[_day(s.start_ms)] += 1
    per_day = statistics.mean(day_visits[d] for d in {_day(START + k * DAY_MS) for k in range(DAYS)})
    # Poisson(day_rate) during the day, plus washing when getting up and before bed; a few lost to outings.
    expected = ROUTINE.bathroom.day_rate + 2
    assert expected - 1.5 < per_day < expected + 1
    assert min(day_visits.values()) >= 2
    expected_nights = ROUTINE.bathroom.night_rate * DAYS
    assert 0.6 * expected_nights < night_visits < 1.4 * expected_nights


def test_meals_use_the_kitchen_kettle_and_fridge(steps: list[Step]) -> None:
    kitchen_days = {_day(s.start_ms) for s in steps if s.activity is Activity.COOKING}
    assert len(kitchen_days) == DAYS
    kettles = [s for s in steps if s.activity is Activity.KETTLE]
    meals = ROUTINE.meals
    expected = DAYS * (meals.breakfast.kettle_probability + meals.lunch.kettle_probability
                       + meals.dinner.kettle_probability)
    assert 0.6 * expected < len(kettles) < 1.2 * expected  # lunch is lost to some outings
    assert all(s.room == "kitchen" and s.end_ms - s.start_ms <= 40_000 for s in kettles)
    fridge = [s for s in steps if s.activity is Activity.FRIDGE]
    assert len(fridge) >= 3 * DAYS * 0.8
    assert all(s.end_ms - s.start_ms <= 60_000 for s in fridge)


def test_outings_leave_and_return_through_the_front_door(steps: list[Step]) -> None:
    outings = [i for i, s in enumerate(steps) if s.activity is Activity.OUT]
    expected = ROUTINE.outings.days_per_week / 7 * DAYS
    assert 0.5 * expected < len(outings) < 1.5 * expected
    for i in outings:
        assert steps[i - 1].activity is Activity.DOOR and steps[i + 1].activity is Activity.DOOR
        assert steps[i - 1].room == steps[i + 1].room == HALL


def test_naps_and_visitors_happen(steps: list[Step]) -> None:
    nap_days = {_day(s.start_ms) for s in steps if s.activity is Activity.NAPPING}
    assert 0.25 * DAYS < len(nap_days) < 0.75 * DAYS
    assert any(s.activity is Activity.VISITED for s in steps)


def test_the_same_seed_gives_the_same_days_and_another_seed_other_days(steps: list[Step]) -> None:
    assert simulate_days(HOME, ROUTINE, START, DAYS, np.random.default_rng(SEED)) == steps
    assert simulate_days(HOME, ROUTINE, START, DAYS, np.random.default_rng(SEED + 1)) != steps
