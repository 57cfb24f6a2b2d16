"""Stillness limits kept apart by the place a stillness began: short after the kitchen, long after the armchair."""

from __future__ import annotations

import pickle

import numpy as np

from analytics.elapsed import UP
from analytics.localtime import DAY_MS, HOUR_MS, MINUTE_MS
from analytics.place_elapsed import MAX_PLACES, PlaceElapsed

HOME_LIMIT = 180.0


def learn(model: PlaceElapsed, days: int, periods: list[tuple[str, float, float]], first_day: int = 0) -> None:
    """Each day, each (place, start hour, minutes) stillness, with some jitter; then one more day to close the last."""
    rng = np.random.default_rng(3)
    for day in range(first_day, first_day + days + 1):
        for place, hour, minutes in periods:
            start = day * DAY_MS + round((hour + rng.uniform(-0.3, 0.3)) * HOUR_MS)
            model.learn_gap(UP, place, start, start + round(minutes * rng.uniform(0.7, 1.2) * MINUTE_MS))


def at(day: int, hour: float) -> int:
    return day * DAY_MS + round(hour * HOUR_MS)


def test_a_room_where_stillness_is_short_gets_a_short_limit_and_the_armchair_a_long_one() -> None:
    model = PlaceElapsed()
    learn(model, 28, [("kitchen", 15, 12), ("living room", 15.5, 100)])
    kitchen = model.limit_min(UP, "kitchen", at(40, 15), HOME_LIMIT)
    living = model.limit_min(UP, "living room", at(40, 17), HOME_LIMIT)  # 90 minutes into its usual stillness
    assert kitchen < HOME_LIMIT / 2 < HOME_LIMIT < living


def test_a_place_with_few_days_keeps_the_home_limit() -> None:
    model = PlaceElapsed()
    learn(model, 2, [("kitchen", 15, 12)])
    assert model.limit_min(UP, "kitchen", at(20, 15), HOME_LIMIT) == HOME_LIMIT
    assert model.limit_min(UP, "hall", at(20, 15), HOME_LIMIT) == HOME_LIMIT  # never seen
    assert model.limit_min(UP, None, at(20, 15), HOME_LIMIT) == HOME_LIMIT


def test_more_days_weigh_more() -> None:
    few, many = PlaceElapsed(), PlaceElapsed()
    learn(few, 4, [("kitchen", 15, 12)])
    learn(many, 20, [("kitchen", 15, 12)])
    assert many.limit_min(UP, "kitchen", at(30, 15), HOME_LIMIT) < few.limit_min(UP, "kitchen", at(30, 15),
                                                                                  HOME_LIMIT) < HOME_LIMIT


def test_the_deadline_walks_half_hours_with_their_limits() -> None:
    model = PlaceElapsed()
    learn(model, 28, [("kitchen", 15, 12)])
    home_limits = np.full(48, HOME_LIMIT)
    since = at(40, 15)
    deadline = model.deadline_local(UP, "kitchen", since, home_limits, 16 * 60)
    assert 20 * MINUTE_MS < deadline - since < HOME_LIMIT / 2 * MINUTE_MS
    assert model.deadline_local(UP, "hall", since, home_limits, 16 * 60) - since == HOME_LIMIT * MINUTE_MS


def test_a_false_alarm_widens_that_place_around_that_time_within_bounds() -> None:
    model = PlaceElapsed()
    learn(model, 14, [("kitchen", 15, 12), ("kitchen", 9, 12)])
    before = model.limit_min(UP, "kitchen", at(20, 15), HOME_LIMIT)
    morning = model.limit_min(UP, "kitchen", at(20, 9), HOME_LIMIT)
    steps = [model.widen(UP, "kitchen", at(20, 15)) for _ in range(6)]
    assert steps[0] == (1.0, 1.25) and steps[-1][1] == 2.0
    assert model.limit_min(UP, "kitchen", at(20, 15), HOME_LIMIT) == 2.0 * before
    assert model.limit_min(UP, "kitchen", at(20, 9), HOME_LIMIT) == morning  # another time of day
    model.widen(UP, "kitchen", at(20, 15), narrow=True)
    assert model.limit_min(UP, "kitchen", at(20, 15), HOME_LIMIT) == 1.6 * before
    for _ in range(10):
        model.widen(UP, "kitchen", at(20, 15), narrow=True)
    assert model.limit_min(UP, "kitchen", at(20, 15), HOME_LIMIT) == before  # never narrower than learned


def test_state_stays_bounded_whatever_a_hub_sends() -> None:
    model = PlaceElapsed(keep_days=5)
    for i in range(200):
        start = i * 6 * HOUR_MS
        model.learn_gap(UP, f"device-{i}", start, start + 20 * MINUTE_MS)
    assert len(model.places) == MAX_PLACES
    assert all(ring.shape[0] <= 5 and ring.dtype == np.uint8 for ring in model.maxima.values())
    assert len(pickle.dumps(model)) < 100_000
