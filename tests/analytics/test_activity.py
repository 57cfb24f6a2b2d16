import pickle

import pytest

from analytics.activity import ActivityTracker, Change, activity_value


def test_a_resent_occupancy_is_not_new_motion() -> None:
    t = ActivityTracker()
    assert t.update("pir", "motion", True) is Change.MOTION
    assert t.update("pir", "motion", True) is None  # the cached state again, with a battery report
    assert t.update("pir", "motion", False) is None
    assert t.update("pir", "motion", True) is Change.MOTION


def test_contacts_count_each_change_and_true_means_closed() -> None:
    t = ActivityTracker()
    assert t.update("front_door", "contact", True) is None  # first state: learned only
    assert t.update("front_door", "contact", False) is Change.OPENED
    assert t.update("front_door", "contact", False) is None
    assert t.update("front_door", "contact", True) is Change.CLOSED


def test_pads_count_sitting_down_and_getting_up() -> None:
    t = ActivityTracker()
    assert t.update("bed_pad", "presence", True) is Change.OCCUPIED
    assert t.update("bed_pad", "presence", True) is None
    assert t.update("bed_pad", "presence", False) is Change.VACATED
    assert t.update("chair_pad", "presence", False) is None


def test_an_appliance_counts_when_its_power_rises_through_the_threshold() -> None:
    t = ActivityTracker(power_on_w=20)
    assert t.update("kettle", "plug", 0.4) is None  # standby
    assert t.update("kettle", "plug", 2150.0) is Change.POWER_ON
    assert t.update("kettle", "plug", 2080.0) is None
    assert t.update("kettle", "plug", 0.0) is None
    assert t.update("kettle", "plug", 30.0) is Change.POWER_ON


def test_buttons_vibration_and_climate() -> None:
    t = ActivityTracker()
    assert t.update("pendant", "button", "single") is Change.PRESSED
    assert t.update("pendant", "button", "") is None
    assert t.update("sofa", "vibration", True) is Change.VIBRATION
    assert t.update("lounge", "climate", 19.5) is None


@pytest.mark.parametrize(("kind", "fields", "value"), [
    ("motion", {"occupancy": True, "battery": 90}, True),
    ("motion", {"battery": 90}, None),  # a battery-only report says nothing about the person
    ("contact", {"contact": False}, False),
    ("plug", {"power": 12.5, "state": True}, 12.5),
    ("button", {"action": "double"}, "double"),
    ("climate", {"temperature": 21.0}, None),
    ("unknown", {"occupancy": True}, None),
])
def test_the_activity_value_of_a_payload(kind: str, fields: dict, value: object) -> None:
    assert activity_value(kind, fields) == value


def test_tracker_state_survives_a_checkpoint() -> None:
    t = ActivityTracker()
    t.update("pir", "motion", True)
    restored = pickle.loads(pickle.dumps(t))
    assert restored.update("pir", "motion", True) is None
