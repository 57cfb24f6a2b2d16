"""The pendant, and a button nobody has set up yet: both reach someone at once (issue 11, finding 5)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from analytics.alerts import Action, AlertEvent, AlertKind, Severity
from analytics.detector import HomeDetector
from analytics.localtime import MINUTE_MS
from analytics.watch.pendant import setting_up_needed, setting_up_urgency, unconfirmed_button

LONDON = ZoneInfo("Europe/London")
T = int(datetime(2026, 3, 10, 14, 0, tzinfo=LONDON).timestamp() * 1000)  # a Tuesday, 14:00 in London


def pendant_alerts(events: list[AlertEvent]) -> list[AlertEvent]:
    return [e for e in events if e.kind is AlertKind.PENDANT]


def home_with_activity() -> HomeDetector:
    detector = HomeDetector("h1", LONDON)
    detector.observe(T, "kitchen_pir", "motion", True, room="kitchen", role="room")
    return detector


def test_a_press_of_a_button_nobody_set_up_is_an_unconfirmed_pendant_emergency() -> None:
    detector = home_with_activity()
    [alert] = pendant_alerts(detector.observe(T + 2 * MINUTE_MS, "hall_button", "button", "single"))
    assert (alert.action, alert.severity, alert.subject, alert.at_ms) == (
        Action.RAISE, Severity.EMERGENCY, "", T + 2 * MINUTE_MS)
    assert alert.details == {"pressed_at": T + 2 * MINUTE_MS, "unconfirmed": True, "device": "hall_button"}
    assert alert.message == ("A button (hall_button) was pressed at 14:02 (last activity 14:00 in the kitchen). "
                             "It is not yet set up, so it may be the pendant: please check on the resident.")


def test_a_pendant_press_is_as_before() -> None:
    detector = home_with_activity()
    [alert] = pendant_alerts(detector.observe(T + MINUTE_MS, "pendant", "button", "single", role="pendant"))
    assert (alert.severity, alert.details) == (Severity.EMERGENCY, {"pressed_at": T + MINUTE_MS})
    assert alert.message == "Pendant pressed at 14:01 (last activity 14:00 in the kitchen)."


def test_a_button_in_a_room_without_a_role_and_one_given_a_door_role_are_unconfirmed_too() -> None:
    detector = HomeDetector("h1", LONDON)
    [alert] = pendant_alerts(detector.observe(T, "hall_button", "button", "double", room="hall"))
    assert alert.message.startswith("A button (hall_button, in the hall) was pressed at 14:00. It is not yet set up")
    assert alert.details["unconfirmed"] is True
    other = HomeDetector("h2", LONDON)
    [alert] = pendant_alerts(other.observe(T, "door_button", "button", "single", room="hall", role="front_door"))
    assert alert.severity is Severity.EMERGENCY and alert.details["unconfirmed"] is True
    assert "It is set up as 'front door', which is not a button's role, so it may be the pendant" in alert.message


def test_one_open_pendant_alert_whichever_button_is_pressed_next() -> None:
    """Presses while the alert is open are the same situation: the person dealing with it is not paged again."""
    detector = HomeDetector("h1", LONDON)
    assert len(pendant_alerts(detector.observe(T, "hall_button", "button", "single"))) == 1
    assert pendant_alerts(detector.observe(T + MINUTE_MS, "hall_button", "button", "single")) == []
    assert pendant_alerts(detector.observe(T + 2 * MINUTE_MS, "pendant", "button", "single", role="pendant")) == []
    assert pendant_alerts(detector.advance(T + 600 * MINUTE_MS)) == [], "never cleared by a detector"


def test_a_button_reporting_only_its_battery_or_another_kinds_action_is_no_press() -> None:
    detector = HomeDetector("h1", LONDON)
    assert pendant_alerts(detector.observe(T, "hall_button", "button", None, battery=80)) == []
    # An Aqara FP1 presence sensor also sends `action` (its regions): its kind is presence, never a button.
    assert pendant_alerts(detector.observe(T + MINUTE_MS, "fp1", "presence", True, room="bedroom")) == []


def test_the_unconfirmed_button_survives_a_checkpoint() -> None:
    detector = HomeDetector("h1", LONDON)
    detector.observe(T, "hall_button", "button", "single")
    restored = HomeDetector.load(detector.dump())
    assert restored.restarted == ()
    assert pendant_alerts(restored.observe(T + MINUTE_MS, "hall_button", "button", "single")) == []


@pytest.mark.parametrize(("kind", "room", "role", "needed", "urgency"), [
    ("button", None, None, "a button that is not set up", 0),
    ("button", "hall", None, "a button that is not set up", 0),
    ("button", "hall", "front_door", "a button that is not set up", 0),
    ("button", None, "pendant", None, 1),
    ("motion", None, None, "no room or role", 1),
    (None, None, None, "no room or role", 1),
    ("climate", "living room", None, None, 1),
    ("motion", "hall", "room", None, 1),
    ("contact", None, "front_door", None, 1),
])
def test_what_needs_setting_up(kind: str | None, room: str | None, role: str | None, needed: str | None,
                               urgency: int) -> None:
    reason = setting_up_needed(kind, room, role)
    assert (reason is None) == (needed is None)
    assert needed is None or (reason is not None and reason.startswith(needed))
    assert setting_up_urgency(kind, role) == urgency
    assert unconfirmed_button(kind, role) == (urgency == 0)
