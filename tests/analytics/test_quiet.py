"""The survival model of quiet periods behind inactivity alerts: where and when a stillness began decides its limit."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from analytics.elapsed import BED, UP
from analytics.localtime import DAY_MS, HOUR_MS, MINUTE_MS
from analytics.quiet import MAX_PLACES, QuietModel, QuietSettings

DEFAULT_MIN = 180.0


def learn_days(model: QuietModel, days: int, periods: list[tuple[int, str, float, float]],
               rng: np.random.Generator | None = None) -> None:
    """Each day, each (context, place, start hour, minutes) period, with a little jitter."""
    rng = rng or np.random.default_rng(1)
    for day in range(days):
        for context, place, hour, minutes in periods:
            start = day * DAY_MS + round(hour * HOUR_MS + rng.uniform(-20, 20) * MINUTE_MS)
            length = minutes * rng.uniform(0.7, 1.3)
            model.learn(context, place, start, start + round(length * MINUTE_MS))


def at(day: int, hour: float) -> int:
    return day * DAY_MS + round(hour * HOUR_MS)


def test_a_place_where_stillness_is_short_gets_a_short_limit_and_one_where_it_is_long_a_long_one() -> None:
    model = QuietModel()
    learn_days(model, 14, [(UP, "bathroom", 15, 12), (UP, "bathroom", 9, 14), (UP, "living room", 15, 120),
                           (UP, "living room", 20, 150), (UP, "kitchen", 12, 15)])
    bathroom = model.limit_min(UP, "bathroom", at(20, 15), DEFAULT_MIN)
    living = model.limit_min(UP, "living room", at(20, 15), DEFAULT_MIN)
    assert bathroom < 60 < 150 < living
    assert bathroom < DEFAULT_MIN  # learned: faster than the default for a new home


def test_a_new_home_uses_the_default_limit() -> None:
    model = QuietModel()
    assert model.limit_min(UP, "kitchen", at(0, 15), DEFAULT_MIN) == pytest.approx(DEFAULT_MIN, rel=0.1)
    assert model.usual_min(UP, "kitchen", at(0, 15)) is None


def test_time_of_day_matters_for_the_same_place() -> None:
    model = QuietModel()
    learn_days(model, 14, [(UP, "kitchen", 15, 12), (UP, "kitchen", 22, 400)])
    assert model.limit_min(UP, "kitchen", at(20, 15), DEFAULT_MIN) < model.limit_min(UP, "kitchen", at(20, 22),
                                                                                      DEFAULT_MIN)


def test_contexts_are_kept_apart() -> None:
    model = QuietModel()
    learn_days(model, 14, [(BED, "bedroom", 23, 480), (UP, "bedroom", 23, 15)])
    assert model.limit_min(UP, "bedroom", at(20, 23), 90.0) < 120 < 480 < model.limit_min(BED, "bedroom",
                                                                                          at(20, 23), 720.0)


def test_the_bound_tightens_with_the_number_of_periods_a_month() -> None:
    few, many = QuietModel(), QuietModel()
    learn_days(few, 14, [(UP, "hall", 10, 20)])
    learn_days(many, 14, [(UP, "hall", h, 20) for h in range(8, 22)])
    assert many.per_period_alpha() < few.per_period_alpha() <= QuietSettings().max_alpha
    assert many.per_period_alpha() == pytest.approx(1.0 / (14 * 30), rel=0.1)


def test_periods_shorter_than_ten_minutes_are_not_kept() -> None:
    model = QuietModel()
    model.learn(UP, "hall", 0, 9 * MINUTE_MS)
    assert model.length_min.size == 0


def test_a_false_alarm_widens_that_place_and_time_within_bounds_only() -> None:
    model = QuietModel()
    learn_days(model, 14, [(UP, "kitchen", 15, 15), (UP, "kitchen", 9, 15)])
    before = model.limit_min(UP, "kitchen", at(20, 15), DEFAULT_MIN)
    morning = model.limit_min(UP, "kitchen", at(20, 9), DEFAULT_MIN)
    factors = [model.widen(UP, "kitchen", at(20, 15)) for _ in range(10)]
    assert factors[0] == (1.0, 1.25)
    assert factors[-1][1] == QuietSettings().widen_max
    assert model.limit_min(UP, "kitchen", at(20, 15), DEFAULT_MIN) == pytest.approx(2 * before, rel=0.05)
    assert model.limit_min(UP, "kitchen", at(20, 9), DEFAULT_MIN) == morning  # another time of day: unchanged
    assert model.limit_min(UP, "hall", at(20, 15), DEFAULT_MIN) <= QuietSettings().ceiling_min


def test_state_stays_bounded_whatever_a_hub_sends() -> None:
    model = QuietModel(QuietSettings(max_periods=500, keep_days=7))
    for i in range(5000):
        model.learn(UP, f"device-{i}", i * 30 * MINUTE_MS, i * 30 * MINUTE_MS + 15 * MINUTE_MS)
    assert model.length_min.size <= 500
    assert len(model.places) == MAX_PLACES
    assert model.day.min() > model.day.max() - 7


def test_pickles_without_its_cache() -> None:
    model = QuietModel()
    learn_days(model, 7, [(UP, "kitchen", 15, 15)])
    limit = model.limit_min(UP, "kitchen", at(10, 15), DEFAULT_MIN)
    assert model._cache
    copy = pickle.loads(pickle.dumps(model))
    assert copy._cache == {}
    assert copy.limit_min(UP, "kitchen", at(10, 15), DEFAULT_MIN) == limit


def test_usual_is_what_nine_in_ten_similar_periods_stay_within() -> None:
    model = QuietModel()
    learn_days(model, 20, [(UP, "living room", 15, 100)])
    usual = model.usual_min(UP, "living room", at(30, 15))
    assert usual is not None and 100 <= usual <= 130
