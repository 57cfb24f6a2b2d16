import pickle

import numpy as np
import pytest

from analytics.gaps import EDGES_MIN, GapModel


def test_before_any_history_the_default_holds() -> None:
    m = GapModel(default_min=180)
    assert m.threshold_min(600) == 180 and m.usual_min(600) is None and m.known(600) == 0


def test_the_learned_quantile_matches_numpy_to_a_bucket() -> None:
    rng = np.random.default_rng(4)
    gaps = rng.lognormal(mean=np.log(25), sigma=0.6, size=5000)
    m = GapModel(neighbours=0)
    for g in gaps:
        m.learn_one(14 * 60 + 10, float(g))
    exact = float(np.quantile(gaps, 0.99))
    learned = m.quantile_min(14 * 60, 0.99)
    assert learned is not None
    ratio = EDGES_MIN[1] / EDGES_MIN[0]  # one log bucket
    assert exact <= learned <= exact * ratio


def test_nights_and_days_learn_apart() -> None:
    m = GapModel(prior_weight=5)
    for _ in range(60):
        m.learn_one(23 * 60 + 45, 7.5 * 60)  # asleep: long gaps starting around midnight
        m.learn_one(10 * 60 + 15, 20)  # mornings: movement every 20 minutes
    assert m.threshold_min(23 * 60 + 45) > 8 * 60
    assert 20 < m.threshold_min(10 * 60 + 15) < 45
    assert m.usual_min(10 * 60) is not None and m.usual_min(10 * 60) <= 21


def test_few_gaps_lean_on_the_default_and_bounds_hold() -> None:
    m = GapModel(default_min=180, prior_weight=20, floor_min=30, ceiling_min=600)
    m.learn_one(600, 10)
    assert 150 < m.threshold_min(600) < 180, "one short gap barely moves the default"
    for _ in range(500):
        m.learn_one(600, 5)
    assert m.threshold_min(600) == 30, "never below the floor"
    for _ in range(500):
        m.learn_one(120, 2000)
    assert m.threshold_min(120) == 600, "never above the ceiling"


def test_neighbouring_half_hours_share_what_they_learned() -> None:
    m = GapModel(neighbours=1)
    m.learn_one(9 * 60 + 5, 40)
    assert m.known(9 * 60 + 35) == 1 and m.known(8 * 60 + 45) == 1 and m.known(10 * 60 + 5) == 0


def test_state_survives_a_checkpoint_and_bad_settings_are_refused() -> None:
    m = GapModel()
    m.learn_one(600, 42)
    restored = pickle.loads(pickle.dumps(m))
    assert restored.threshold_min(600) == m.threshold_min(600)
    with pytest.raises(ValueError):
        GapModel(quantile=1.0)
