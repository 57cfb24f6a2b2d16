"""A hub past a per-home quota (issue 11, finding 2): one device-health alert while the gateway keeps refusing, cleared
once it has behaved (kept within its quotas, its clock right) for an hour."""

from __future__ import annotations

import pickle

from analytics.alerts import DEVICE_HEALTH, Action, AlertKind, Severity
from analytics.detector import HomeDetector
from analytics.localtime import HOUR_MS, MINUTE_MS
from analytics.watch.health import Health
from tests.analytics.test_detector import LONDON

START = 1_767_571_200_000  # Monday 2026-01-05 00:00 in London
WHAT = "the hub reported more than 50 new device names within an hour"


def test_one_alert_while_the_hub_keeps_going_past_its_quotas_cleared_after_an_hour_within_them() -> None:
    detector = HomeDetector("h1", LONDON)
    [raised] = detector.hub_misbehaving(START + 10 * MINUTE_MS, WHAT)
    assert (raised.action, raised.kind, raised.subject, raised.severity) == (
        Action.RAISE, AlertKind.HUB_MISBEHAVING, "hub", Severity.WARNING)
    assert raised.kind in DEVICE_HEALTH
    assert raised.message.startswith(f"Hub misbehaving: {WHAT}. Since 00:10")
    assert detector.hub_misbehaving(START + 70 * MINUTE_MS, WHAT) == [], "one alert, however many reports"
    last = START + 70 * MINUTE_MS
    assert detector.next_wake_ms() is not None and detector.next_wake_ms() <= last + 2 * HOUR_MS  # type: ignore[operator]
    assert detector.advance(last + 2 * HOUR_MS - 1) == []
    [cleared] = detector.advance(last + 2 * HOUR_MS + 5 * MINUTE_MS)
    assert (cleared.action, cleared.kind, cleared.at_ms) == (Action.CLEAR, AlertKind.HUB_MISBEHAVING,
                                                             last + 2 * HOUR_MS)
    assert "nothing refused or re-timed since 01:10" in cleared.message
    [again] = detector.hub_misbehaving(last + 3 * HOUR_MS, WHAT)
    assert again.action is Action.RAISE, "a new bout is a new alert"


def test_it_survives_a_checkpoint_and_checkpoints_from_before_it_load_as_they_are() -> None:
    detector = HomeDetector("h1", LONDON)
    detector.hub_misbehaving(START, WHAT)
    restored = HomeDetector.load(detector.dump())
    assert restored.restarted == () and restored.health.misbehaving_ms == START
    assert [e.action for e in restored.advance(START + 2 * HOUR_MS)] == [Action.CLEAR]

    old = Health(detector.config)  # as pickled before the field existed: nothing in its __dict__
    assert "misbehaving_ms" not in vars(old)
    loaded = pickle.loads(pickle.dumps(old))
    assert loaded.misbehaving_ms is None and loaded.next_wake_ms(detector.state) is None
