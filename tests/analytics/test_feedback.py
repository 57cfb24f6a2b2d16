"""Carers' outcomes close the loop: a false alarm widens that resident's limit there and then, within bounds; a real
incident never does; a correction takes it back; a replay's carer teaches the detectors the same way."""

from __future__ import annotations

from analytics.alerts import Action, AlertEvent, AlertKind, Outcome
from analytics.detector import HomeDetector
from analytics.localtime import DAY_MS, HOUR_MS, MINUTE_MS
from analytics.replay import Replay
from tests.analytics.test_detector import LONDON, START, at, quiet, simulate


def first_inactivity(detector: HomeDetector, t: int) -> AlertEvent:
    """Kitchen activity at ``t``, then stillness until the inactivity alert."""
    detector.observe(t, "kitchen_pir", "motion", True, room="kitchen", role="room")
    detector.observe(t + 30_000, "kitchen_pir", "motion", False, room="kitchen", role="room")
    events = quiet(detector, t + MINUTE_MS, t + 20 * HOUR_MS)
    return next(e for e in events if e.action is Action.RAISE and e.kind is AlertKind.INACTIVITY)


def test_a_false_alarm_widens_the_limit_there_and_the_baseline_says_so(snapshots: dict[int, bytes]) -> None:
    detector, t = at(snapshots, 14)
    alert = first_inactivity(detector, t)
    assert alert.details["place"] == "kitchen"
    limit = alert.details["limit_min"]
    detector.learn_outcome(AlertKind.INACTIVITY, Outcome.FALSE_ALARM, alert.at_ms, alert.details, alert_id=7)
    [change] = detector.baseline()["feedback"]
    assert change["alert_id"] == 7 and change["room"] == "kitchen" and change["context"] == alert.details["context"]
    assert change["limit_before_min"] < change["limit_after_min"] <= 2 * change["limit_before_min"]
    assert abs(change["limit_before_min"] - limit) <= 1

    again, t2 = at(snapshots, 14)  # the same afternoon, told the same: the next alert comes later
    again.learn_outcome(AlertKind.INACTIVITY, Outcome.FALSE_ALARM, alert.at_ms, alert.details)
    later = first_inactivity(again, t2)
    assert later.at_ms - t2 > alert.at_ms - t


def test_widening_is_bounded_however_many_false_alarms(snapshots: dict[int, bytes]) -> None:
    detector, t = at(snapshots, 14)
    alert = first_inactivity(detector, t)
    for _ in range(20):
        detector.learn_outcome("inactivity", "false_alarm", alert.at_ms, alert.details)
    changes = detector.baseline()["feedback"]
    assert len(changes) == 20
    assert changes[-1]["limit_after_min"] <= 2 * changes[0]["limit_before_min"] + 1


def test_real_incidents_never_widen_and_a_correction_takes_a_false_alarm_back(snapshots: dict[int, bytes]) -> None:
    detector, t = at(snapshots, 14)
    alert = first_inactivity(detector, t)
    for outcome in (Outcome.FALL, Outcome.UNWELL, Outcome.OUT, Outcome.SENSOR_PROBLEM, Outcome.OTHER):
        detector.learn_outcome(AlertKind.INACTIVITY, outcome, alert.at_ms, alert.details)
    assert detector.baseline()["feedback"] == []
    detector.learn_outcome(AlertKind.INACTIVITY, Outcome.FALSE_ALARM, alert.at_ms, alert.details)
    detector.learn_outcome(AlertKind.INACTIVITY, Outcome.FALSE_ALARM, alert.at_ms, alert.details, retract=True)
    widened, taken_back = detector.baseline()["feedback"]
    assert taken_back["limit_after_min"] == widened["limit_before_min"]


def test_a_false_not_up_moves_the_getting_up_deadline_later_within_bounds(snapshots: dict[int, bytes]) -> None:
    detector, _ = at(snapshots, 2)
    usual = detector.baseline()["not_up_after_min"]
    detector.learn_outcome(AlertKind.NOT_UP, Outcome.FALSE_ALARM, 0, {})
    assert detector.baseline()["not_up_after_min"] == usual + 30
    for _ in range(10):
        detector.learn_outcome(AlertKind.NOT_UP, Outcome.FALSE_ALARM, 0, {})
    assert detector.baseline()["not_up_after_min"] == usual + 120
    detector.learn_outcome(AlertKind.NOT_UP, Outcome.FALL, 0, {})
    assert detector.baseline()["not_up_after_min"] == usual + 120


def test_a_replays_carer_is_asked_at_each_raise_and_its_verdict_is_learned_as_the_alert_clears() -> None:
    observations, _ = simulate(24, seed=5)
    gap_from = START + 20 * DAY_MS + 14 * HOUR_MS  # an afternoon of stillness that ends: an alert that clears
    observations = [o for o in observations if not gap_from <= o.time_ms < gap_from + 8 * HOUR_MS]
    asked: list[tuple[str, str, int]] = []

    def carer(home: str, kind: str, raised_at_ms: int) -> str | None:
        asked.append((home, kind, raised_at_ms))
        return "false_alarm"

    run = Replay(LONDON, learn_days=14, carer=carer)
    for o in observations:
        run.add(o)
    alerts = run.finish()
    person = [a for a in alerts if a.subject == "" and a.kind != "returned"]
    assert person and [(a.home, a.kind, a.raised_at_ms) for a in person] == asked
    cleared_inactivity = [a for a in person if a.kind == "inactivity" and a.cleared_at_ms is not None]
    assert cleared_inactivity
    assert len(run.detectors["h1"].baseline()["feedback"]) == len(cleared_inactivity)
