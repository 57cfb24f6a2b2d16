"""bench/detection_data.py: a cut stops the resident, not the devices; the hourly variant's reports."""

from __future__ import annotations

import numpy as np
import pytest

from bench import detection_data as data
from bench.detection_data import DAY_MS, HOUR_MS, Hourly
from sensors_sim.events import Observation

T0 = 1_764_000_000_000


def motion(t: int, value: bool = True, home: str = "h", device: str = "pir") -> Observation:
    return Observation(t, home, device, "motion", value, "kitchen", "room")


def test_a_cut_keeps_what_came_before_and_after_it_only_what_is_not_activity() -> None:
    obs = [motion(T0), motion(T0 + 10), motion(T0 + 10, False), motion(T0 + 20), motion(T0 + 30, False)]
    # At T0 + 10: the PIR already reports motion, so its repeat is no activity, nor its timeout; new motion is.
    assert data.cut(obs, T0 + 10) == [obs[0], obs[1], obs[2], obs[4]]
    assert data.cut(obs, T0 + 11) == [obs[0], obs[1], obs[2], obs[4]]
    assert data.cut(obs, T0) == [obs[2], obs[4]]  # every motion is activity; "no motion" reports are not
    assert data.cut(obs, T0 + 31) == obs


def test_after_a_cut_a_contact_that_changed_back_is_kept_and_a_battery_report_too() -> None:
    door = [Observation(T0, "h", "door", "contact", True), Observation(T0 + 5, "h", "door", "contact", False),
            Observation(T0 + 6, "h", "door", "contact", True), Observation(T0 + 7, "h", "door", "contact", True),
            Observation(T0 + 8, "h", "door", "contact", None, battery=80.0)]
    # From T0 + 5 the door does not move: its opening goes, its "closed" (the state it kept) and the rest stay.
    assert data.cut(door, T0 + 5) == [door[0], door[2], door[3], door[4]]


def test_the_first_state_of_a_pad_counts_as_activity_and_goes_after_a_cut() -> None:
    pad = [motion(T0), Observation(T0 + 10, "h", "chair", "presence", True)]
    assert data.cut(pad, T0 + 5) == [pad[0]]


def test_each_motion_sensor_reports_its_state_every_hour_at_its_own_phase_for_the_whole_span() -> None:
    obs = [Observation(T0, "h", "door", "contact", True), motion(T0 + 30 * 60_000, device="pir"),
           motion(T0 + 31 * 60_000, False, device="pir"), motion(T0 + 3 * HOUR_MS, device="hall"),
           Observation(T0 + 5 * HOUR_MS, "h", "door", "contact", False)]
    rows = data.variant_rows(obs, data.HOURLY)
    assert data.variant_rows(obs, data.AS_RECORDED) == obs
    assert [o for o in rows if o in obs] == obs  # the recording's rows, in order
    reports = [o for o in rows if o not in obs or rows.count(o) > obs.count(o)]
    hourly = Hourly.of(obs)
    for device in ("pir", "hall"):
        mine = [o for o in reports if o.device == device]
        phase = hourly.phase_ms(("h", device))
        assert [o.time_ms for o in mine] == [T0 + phase + k * HOUR_MS for k in range(6) if phase + k * HOUR_MS
                                              <= 5 * HOUR_MS]
        assert all(o.kind == "motion" and o.room == "kitchen" for o in mine)
    assert hourly.phase_ms(("h", "pir")) != hourly.phase_ms(("h", "hall"))
    # The value is the state then: False before any motion and after the timeout; the hall's stays True.
    for o in reports:
        expected = (o.device == "hall" and o.time_ms >= T0 + 3 * HOUR_MS) or (
            o.device == "pir" and T0 + 30 * 60_000 <= o.time_ms < T0 + 31 * 60_000)
        assert o.value is expected
    assert [o.time_ms for o in rows] == sorted(o.time_ms for o in rows)


def test_hourly_reports_go_on_after_a_cut_with_the_fallen_residents_state() -> None:
    obs = [motion(T0), motion(T0 + 60_000, False)] + [
        o for k in range(1, 30) for o in (motion(T0 + k * HOUR_MS), motion(T0 + k * HOUR_MS + 60_000, False))]
    at = T0 + 10 * HOUR_MS + 30_000  # while the PIR reports motion
    rows = data.variant_rows(data.cut(obs, at), data.HOURLY, Hourly.of(obs))
    after = [o for o in rows if o.time_ms >= at]
    assert after[0] == motion(T0 + 10 * HOUR_MS + 60_000, False)  # the PIR's timeout, as recorded
    # Then the recorded timeouts (unchanged: no motion) and a report an hour till the end, all saying no motion.
    assert all(o.value is False for o in after)
    reports = [o.time_ms for o in after if o not in obs]
    first = Hourly.of(obs).first_report(("h", "pir"), at)
    assert reports == list(range(first, obs[-1].time_ms + 1, HOUR_MS)) and len(reports) >= 18
    assert [o for o in after if o in obs] == [o for o in obs if o.time_ms >= at and o.value is False]


def test_a_report_at_the_moment_of_a_row_comes_after_it() -> None:
    obs = [motion(T0), motion(T0 + 5 * HOUR_MS)]
    hourly = Hourly.of(obs)
    at = hourly.first_report(("h", "pir"), T0) + HOUR_MS
    same = [motion(T0), motion(at, False), motion(T0 + 5 * HOUR_MS)]
    rows = list(Hourly.of(same).merge(same, {}))
    i = rows.index(same[1])
    assert rows[i + 1].time_ms == at and rows[i + 1].value is False


def test_cut_moments_are_seeded_and_inside_the_evaluation_period() -> None:
    last = T0 + 20 * DAY_MS
    moments = data.cut_moments(T0, last, 7.0, 50, np.random.default_rng(3))
    assert moments == sorted(moments) and len(moments) == 50
    assert all(T0 + 7 * DAY_MS <= m < last - DAY_MS for m in moments)
    assert moments == data.cut_moments(T0, last, 7.0, 50, np.random.default_rng(3))
    assert data.cut_moments(T0, T0 + 8 * DAY_MS, 7.0, 5, np.random.default_rng(3)) == []  # no room left


def test_a_fall_is_while_active_after_activity_in_the_15_minutes_before_it() -> None:
    times = data.activity_times([motion(T0), motion(T0 + 60_000, False), motion(T0 + HOUR_MS)])["h"]
    assert times == [T0, T0 + HOUR_MS]
    assert data.was_active(times, T0 + 15 * 60_000) and not data.was_active(times, T0 + 16 * 60_000)
    assert not data.was_active(times, T0)  # activity at the same moment is not before it


def test_short_recordings_learn_for_half_their_length() -> None:
    assert data.learn_days_for(28.0) == 14.0
    assert data.learn_days_for(14.2) == pytest.approx(7.1)


def test_watch_windows_start_after_learning() -> None:
    obs = [motion(T0), motion(T0 + 20 * DAY_MS), motion(T0 + DAY_MS, home="g")]
    assert data.watch_windows(obs, 14.0) == {"h": (T0 + 14 * DAY_MS, T0 + 20 * DAY_MS)}  # g never leaves learning
