"""Incidents: each changes the sensor stream the way it should, and its ground truth says where and when."""

from __future__ import annotations

import io
import statistics
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from sensors_sim.events import Observation
from sensors_sim.incidents import (
    HOUR_MS,
    MINUTE_MS,
    GroundTruth,
    IncidentRunner,
    apply_incidents,
    local_ms,
    parse_incidents,
    read_truth_jsonl,
    simulate_with_incidents,
    write_truth_jsonl,
)
from sensors_sim.routine import simulate_days
from sensors_sim.scenario import default_home
from sensors_sim.sensors import observe

HOME = default_home()  # Europe/London: in January local time is UTC
START = int(datetime(2025, 1, 6, tzinfo=UTC).timestamp() * 1000)  # a Monday
DAY_MS = 24 * HOUR_MS
DAYS = 3
SEED = 11
PIR_TIMEOUT_MS = 90_000


def _run(*incidents: dict, days: int = DAYS, seed: int = SEED) -> tuple[list[Observation], list[GroundTruth]]:
    parsed = parse_incidents([{"home": HOME.id, **i} for i in incidents])
    return simulate_with_incidents(HOME, START, days, parsed, np.random.default_rng(seed))


def _at(day: int, minutes: float) -> int:
    return START + day * DAY_MS + round(minutes * MINUTE_MS)


def _opened(observations: list[Observation], role: str, a: int, b: int) -> list[int]:
    """When a contact changed to open (heartbeats re-send the state: they are not openings)."""
    out, closed = [], True
    for o in observations:
        if o.role == role:
            if closed and o.value is False and a <= o.time_ms < b:
                out.append(o.time_ms)
            closed = o.value is True
    return out


def test_after_a_fall_nothing_moves_anywhere() -> None:
    observations, [truth] = _run({"kind": "fall", "day": 1, "at": 600, "room": "kitchen"})
    start = _at(1, 600)
    assert (truth.kind, truth.start_ms, truth.end_ms, truth.room) == ("fall", start, None, "kitchen")
    after = [o for o in observations if o.time_ms >= start + PIR_TIMEOUT_MS]
    assert after, "devices keep reporting (heartbeats, climate): the home is not silent"
    assert not [o for o in after if o.kind in ("motion", "presence") and o.value is True]
    assert not [o for o in after if o.kind == "contact" and o.value is False]
    assert not [o for o in after if o.kind in ("plug", "button")]
    before = [o for o in observations if o.kind == "motion" and o.value is True and o.time_ms < start]
    assert len(before) > 100


def test_a_fall_with_twitches_shows_only_in_its_room_and_ends() -> None:
    observations, [truth] = _run({"kind": "fall", "day": 1, "at": 600, "room": "living room", "duration_min": 300,
                                  "twitches_per_hour": 4})
    start, end = _at(1, 600), _at(1, 900)
    assert truth.end_ms == end and truth.details["twitches_per_hour"] == 4
    during = [o for o in observations if o.kind == "motion" and o.value is True
              and start + PIR_TIMEOUT_MS <= o.time_ms < end]
    assert during and {o.device for o in during} == {"living_room_pir"}
    assert any(o.kind == "motion" and o.value is True and o.time_ms >= end for o in observations)


def test_a_long_lie_keeps_the_bed_pad_occupied_past_the_usual_wake_time() -> None:
    rng = np.random.default_rng(SEED)
    steps = simulate_days(HOME, HOME.routine, START, DAYS, rng)
    plan = apply_incidents(HOME, steps, parse_incidents([{"kind": "long_lie", "home": HOME.id, "day": 1,
                                                          "hours": 3}]), rng)
    [truth] = plan.truth
    wake = truth.start_ms
    assert 4 * HOUR_MS < wake - _at(1, 0) < 12 * HOUR_MS and truth.end_ms == wake + 3 * HOUR_MS
    usual = observe(HOME, steps, np.random.default_rng(1))
    assert [o.value for o in usual if o.device == "bed_pad" and wake <= o.time_ms < wake + 5000] == [False]
    late = observe(HOME, plan.steps, np.random.default_rng(1))
    pad = [o for o in late if o.device == "bed_pad" and o.time_ms < wake + 3 * HOUR_MS]
    assert pad[-1].value is True
    assert not [o for o in pad if o.time_ms >= wake and o.value is False]
    assert next(o.value for o in late if o.device == "bed_pad" and o.time_ms >= truth.end_ms) is False


def _per_day(observations: list[Observation], keep) -> Counter[int]:
    return Counter((o.time_ms - START) // DAY_MS for o in observations if keep(o))


def test_illness_makes_activity_decline_day_by_day() -> None:
    days = 7
    moves = lambda o: o.kind == "motion" and o.value is True  # noqa: E731
    base = _per_day(_run(days=days)[0], moves)
    observations, [truth] = _run({"kind": "illness", "day": 1, "ramp_days": 2, "severity": 0.8}, days=days)
    ill = _per_day(observations, moves)
    assert truth.start_ms == _at(1, 0) and truth.end_ms is None
    assert ill[0] == pytest.approx(base[0], rel=0.25)  # before it starts
    late = statistics.mean(ill[d] for d in range(3, days))
    assert late < 0.7 * statistics.mean(base[d] for d in range(3, days))
    assert late < 0.7 * ill[0]
    fridge = _per_day(observations, lambda o: o.role == "fridge" and o.value is False)
    assert sum(fridge[d] for d in range(3, days)) < 0.6 * sum(_per_day(_run(days=days)[0], lambda o: o.role ==
                                                                       "fridge" and o.value is False)[d]
                                                              for d in range(3, days))


@pytest.mark.parametrize("out_min", [0, 25])
def test_night_wandering_opens_the_front_door_in_the_small_hours(out_min: float) -> None:
    observations, [truth] = _run({"kind": "night_wandering", "day": 1, "at": 150, "out_min": out_min})
    opened = _opened(observations, "front_door", _at(1, 120), _at(1, 240))
    assert len(opened) == (2 if out_min else 1)
    assert opened[0] - truth.start_ms < 2000 and truth.room == "hall"
    closes = [o.time_ms for o in observations if o.role == "front_door" and o.value is True
              and opened[-1] < o.time_ms <= truth.end_ms]
    assert closes, "the door is closed again by the end of the incident"
    hall = [o for o in observations if o.device == "hall_pir" and o.value is True
            and truth.start_ms - 2 * MINUTE_MS <= o.time_ms <= truth.end_ms + MINUTE_MS]
    assert hall


def test_no_meals_leaves_fridge_and_kettle_untouched_all_day() -> None:
    observations, [truth] = _run({"kind": "no_meals", "day": 1})
    assert (truth.start_ms, truth.end_ms) == (_at(1, 0), _at(2, 0))
    day1 = [o for o in observations if _at(1, 0) <= o.time_ms < _at(2, 0)]
    assert not [o for o in day1 if o.role == "kettle"]
    assert not [o for o in day1 if o.role == "fridge" and o.value is False]
    for day in (0, 2):
        assert _opened(observations, "fridge", _at(day, 0), _at(day + 1, 0))


def test_a_cold_home_falls_under_the_threshold_and_recovers() -> None:
    observations, [truth] = _run({"kind": "cold_home", "day": 0, "at": 600, "to_c": 14, "fall_hours": 4,
                                  "duration_hours": 24})
    start = _at(0, 600)
    assert truth.end_ms == start + 24 * HOUR_MS
    climate = [o for o in observations if o.kind == "climate"]
    assert all(o.value > 16 for o in climate if o.time_ms < start)
    cold = [o.value for o in climate if start + 4 * HOUR_MS <= o.time_ms < start + 24 * HOUR_MS]
    assert cold and all(13 <= v < 15 for v in cold)
    assert all(o.value > 16 for o in climate if o.time_ms >= start + 28 * HOUR_MS)


def test_a_cold_home_can_be_one_room() -> None:
    observations, _ = _run({"kind": "cold_home", "day": 0, "at": 0, "fall_hours": 1, "rooms": ["bedroom"]})
    late = [o for o in observations if o.kind == "climate" and o.time_ms > START + 2 * HOUR_MS]
    assert all((o.value < 15) == (o.room == "bedroom") for o in late)


def test_a_pendant_press_is_a_button_observation_at_the_press_time() -> None:
    observations, [truth] = _run({"kind": "pendant", "day": 2, "at": 14 * 60 + 5, "presses": 3, "every_s": 30})
    presses = [o for o in observations if o.kind == "button"]
    assert [o.time_ms for o in presses] == [_at(2, 845) + k * 30_000 for k in range(3)]
    assert {(o.device, o.value, o.role) for o in presses} == {("pendant", "single", "pendant")}
    assert (truth.start_ms, truth.end_ms) == (presses[0].time_ms, presses[-1].time_ms)


def test_ground_truth_round_trips_through_json_lines(tmp_path: Path) -> None:
    _, truth = _run({"kind": "fall", "day": 2, "at": 600.5, "room": "hall"}, {"kind": "pendant", "day": 1, "at": 30},
                    {"kind": "cold_home", "day": 0, "at": 60, "rooms": ["kitchen"]})
    assert [t.kind for t in truth] == ["cold_home", "pendant", "fall"]  # in order of start
    path = tmp_path / "truth.jsonl"
    write_truth_jsonl(truth, path)
    assert read_truth_jsonl(path) == truth
    buffer = io.StringIO()
    write_truth_jsonl(truth, buffer)
    assert read_truth_jsonl(io.StringIO(buffer.getvalue())) == truth
    first = path.read_text(encoding="utf-8").splitlines()[-1]
    assert '"start": "2025-01-08T10:00:30.000Z"' in first and '"end": null' in first and '"room": "hall"' in first


def test_incidents_are_deterministic_under_a_seed() -> None:
    incidents = ({"kind": "illness", "day": 0, "ramp_days": 1}, {"kind": "fall", "day": 2, "at": 500,
                                                                   "twitches_per_hour": 3})
    assert _run(*incidents) == _run(*incidents)
    assert _run(*incidents)[0] != _run(*incidents, seed=SEED + 1)[0]


def test_other_homes_incidents_are_ignored_and_bad_ones_refused() -> None:
    rng = np.random.default_rng(SEED)
    steps = simulate_days(HOME, HOME.routine, START, 1, rng)
    other = parse_incidents([{"kind": "no_meals", "home": "elsewhere", "day": 0}])
    assert apply_incidents(HOME, steps, other, rng).steps == steps
    with pytest.raises(ValueError, match="outside the simulated span"):
        apply_incidents(HOME, steps, parse_incidents([{"kind": "no_meals", "home": HOME.id, "day": 5}]), rng)
    with pytest.raises(ValidationError):
        parse_incidents([{"kind": "earthquake", "home": HOME.id}])
    with pytest.raises(ValidationError):
        parse_incidents([{"kind": "fall", "home": HOME.id, "at": 60, "room": "garage"}])


def test_days_and_times_are_local() -> None:
    summer = default_home()  # Europe/London is UTC+1 in July
    first = int(datetime(2025, 7, 7, 12, tzinfo=UTC).timestamp() * 1000)
    assert local_ms(summer, first, 1, 150) == int(datetime(2025, 7, 8, 1, 30, tzinfo=UTC).timestamp() * 1000)


def test_a_day_at_a_time_the_incidents_carry_over_midnight() -> None:
    incidents = parse_incidents([
        {"kind": "fall", "home": HOME.id, "day": 1, "at": 20 * 60, "twitches_per_hour": 1},
        {"kind": "illness", "home": HOME.id, "day": 0, "ramp_days": 1, "severity": 0.5},
        {"kind": "cold_home", "home": HOME.id, "day": 0, "at": 23 * 60, "fall_hours": 2},
        {"kind": "pendant", "home": HOME.id, "day": 2, "at": 60},
    ])
    runner = IncidentRunner(HOME, incidents, START)
    rng = np.random.default_rng(SEED)
    observations: list[Observation] = []
    truth: list[GroundTruth] = []
    start = START
    for _ in range(DAYS):  # as sensors_sim.generate does: one day of a home at a time, one generator
        plan = runner.apply(simulate_days(HOME, HOME.routine, start, 1, rng), rng)
        observations += plan.finish(observe(HOME, plan.steps, rng, presses=plan.presses))
        truth += plan.truth
        start = plan.steps[-1].end_ms
    assert [(t.kind, t.start_ms) for t in truth] == [("illness", START), ("cold_home", _at(0, 1380)),
                                                    ("fall", _at(1, 1200)), ("pendant", _at(2, 60))]
    fall = truth[2]
    moved = {o.device for o in observations if o.kind == "motion" and o.value is True
             and o.time_ms >= fall.start_ms + PIR_TIMEOUT_MS}
    assert moved <= {f"{fall.room.replace(' ', '_')}_pir"} if fall.room else not moved
    assert all(o.value < 15 for o in observations if o.kind == "climate" and o.time_ms >= _at(1, 60))
    assert [o.time_ms for o in observations if o.kind == "button"] == [_at(2, 60)]
