"""Can't see that fails safe (issue 10): device-health evidence, never silence alone, and never a person-safety
alert held back by it."""

from __future__ import annotations

import pytest

from analytics.alerts import Action, AlertEvent, AlertKind
from analytics.detector import HomeDetector
from analytics.localtime import DAY_MS, HOUR_MS, MINUTE_MS
from analytics.silence import SilenceWatch
from analytics.watch.stillness import Stillness
from tests.analytics.test_detector import LONDON

START = 1_767_571_200_000  # Monday 2026-01-05 00:00 in London (UTC in winter)
ROOMS = {"kitchen_pir": "kitchen", "living_room_pir": "living room", "hall_pir": "hall"}
Row = tuple[int, str, str, object, str]


def day_rows(day: int, *, hourly: tuple[str, ...] = (), until_ms: int | None = None) -> list[Row]:
    """One ordinary day of change-only PIRs (motion every 20 min from 07:00, bed at 22:30), plus an unchanged
    report every hour from each device in ``hourly``; human activity stops at ``until_ms`` (a fall)."""
    base = START + day * DAY_MS
    rows: list[Row] = []
    rooms = list(ROOMS)
    for i, minute in enumerate(range(7 * 60, 22 * 60 + 30, 20)):
        t = base + minute * MINUTE_MS
        if until_ms is not None and t >= until_ms:
            break
        device = rooms[i % len(rooms)]
        rows += [(t, device, "motion", True, ROOMS[device]), (t + MINUTE_MS, device, "motion", False, ROOMS[device])]
    if until_ms is None or base + 22 * HOUR_MS + 30 * MINUTE_MS < until_ms:
        t = base + 22 * HOUR_MS + 30 * MINUTE_MS
        rows += [(t, "bedroom_pir", "motion", True, "bedroom"), (t + MINUTE_MS, "bedroom_pir", "motion", False,
                                                                  "bedroom")]
    for hour in range(24):
        t = base + hour * HOUR_MS + 7 * MINUTE_MS
        for device in hourly:
            if device.endswith("climate"):
                rows.append((t, device, "climate", 20.5, "living room"))
            else:
                rows.append((t, device, "motion", False, ROOMS.get(device, "bedroom")))
    return sorted(rows, key=lambda r: r[0])


def feed(detector: HomeDetector, rows: list[Row]) -> list[AlertEvent]:
    events: list[AlertEvent] = []
    for t, device, kind, value, room in rows:
        if kind == "climate":
            events += detector.observe(t, device, kind, None, room=room, temperature=float(value))  # type: ignore[arg-type]
        else:
            events += detector.observe(t, device, kind, value, room=room, role="room")  # type: ignore[arg-type]
    return events


def learned(days: int = 14, hourly: tuple[str, ...] = ()) -> HomeDetector:
    detector = HomeDetector("h1", LONDON)
    for day in range(days):
        feed(detector, day_rows(day, hourly=hourly))
    return detector


def raised(events: list[AlertEvent], kind: AlertKind) -> list[AlertEvent]:
    return [e for e in events if e.action is Action.RAISE and e.kind is kind]


def test_a_fall_in_a_home_of_change_only_devices_is_inactivity_never_cant_see() -> None:
    detector = learned()
    fall = START + 14 * DAY_MS + 15 * HOUR_MS
    events = feed(detector, day_rows(14, until_ms=fall)) + detector.advance(fall + 30 * HOUR_MS)
    [alert] = raised(events, AlertKind.INACTIVITY)
    assert fall < alert.at_ms <= fall + 90 * MINUTE_MS
    assert not raised(events, AlertKind.CANT_SEE) and not raised(events, AlertKind.SENSOR_SILENT)
    assert not detector.health.silence.any_watched(), "reporting only on change is not reporting periodically"


def test_hourly_reporters_through_a_lie_are_no_cant_see_and_inactivity_comes_at_the_limit() -> None:
    hourly = ("kitchen_pir", "living_room_pir", "hall_pir", "bedroom_pir", "living_room_climate")
    detector = learned(hourly=hourly)
    assert all(detector.health.silence.watched(d) for d in hourly), "they report while nothing moves"
    fall = START + 14 * DAY_MS + 15 * HOUR_MS
    events = feed(detector, day_rows(14, hourly=hourly, until_ms=fall))
    events += feed(detector, day_rows(15, hourly=hourly, until_ms=fall))  # 33 h into the lie: past failure 3's 26 h
    events += detector.advance(fall + 33 * HOUR_MS)
    [alert] = raised(events, AlertKind.INACTIVITY)
    assert fall < alert.at_ms <= fall + 90 * MINUTE_MS and "blind" not in alert.details
    assert not raised(events, AlertKind.CANT_SEE) and not raised(events, AlertKind.SENSOR_SILENT)


def test_a_stale_cant_see_clears_as_soon_as_any_device_reports_and_is_not_raised_again() -> None:
    detector = learned(hourly=("living_room_climate",))
    assert detector.health.silence.watched("living_room_climate")
    night = START + 14 * DAY_MS
    events = detector.advance(night + 6 * HOUR_MS)  # the power is cut at midnight: nothing reports
    [cant] = raised(events, AlertKind.CANT_SEE)
    assert cant.details["reason"] == "silent"
    days = feed(detector, day_rows(14))  # the multi-sensor stays dead; the motion sensors see the morning
    assert (Action.CLEAR, AlertKind.CANT_SEE) in [(e.action, e.kind) for e in days]
    assert days[0].action is Action.CLEAR and days[0].kind is AlertKind.CANT_SEE, "the first report ends it"
    [dead] = raised(days, AlertKind.SENSOR_SILENT)
    assert dead.subject == "living_room_climate"
    for day in range(15, 23):  # failure 2: eight days of motion, hundreds of reports
        days += feed(detector, day_rows(day))
    assert not raised(days, AlertKind.CANT_SEE)
    assert (AlertKind.CANT_SEE, "hub") not in detector.open


def test_a_dead_device_stops_counting_but_keeps_its_own_alert_and_is_learned_again_if_back() -> None:
    detector = learned(hourly=("living_room_climate", "hall_climate"))
    events: list[AlertEvent] = []
    for day in range(14, 18):
        events += feed(detector, [r for r in day_rows(day, hourly=("living_room_climate", "hall_climate"))
                                  if r[1] != "hall_climate"])  # the hall's multi-sensor was taken away
    [silent] = raised(events, AlertKind.SENSOR_SILENT)
    assert silent.subject == "hall_climate" and not raised(events, AlertKind.CANT_SEE)
    watch = detector.health.silence
    assert not watch.watched("hall_climate") and watch.watched("living_room_climate")
    assert (AlertKind.SENSOR_SILENT, "hall_climate") in detector.open, "its own alert stays open"
    back = feed(detector, [(START + 18 * DAY_MS, "hall_climate", "climate", 20.0, "hall")])
    assert [(e.action, e.kind) for e in back] == [(Action.CLEAR, AlertKind.SENSOR_SILENT)]
    assert not watch.watched("hall_climate"), "back after days: its rhythm is learned again"


def test_inactivity_is_raised_while_the_hub_is_offline_worded_with_what_is_not_known() -> None:
    detector = learned()
    t = START + 14 * DAY_MS + 15 * HOUR_MS
    feed(detector, [r for r in day_rows(14) if r[0] < t])
    events = detector.hub(t + 10 * MINUTE_MS, online=False) + detector.advance(t + 12 * HOUR_MS)
    [alert] = raised(events, AlertKind.INACTIVITY)
    assert alert.at_ms <= t + 90 * MINUTE_MS and alert.details["blind"] is True
    assert alert.message.startswith("No sensor has reported since 14:41 (the home hub is offline): the resident "
                                    "may be still, or the sensors have stopped. No activity since 14:40")


def test_routine_alerts_are_not_held_back_by_a_home_that_cannot_be_seen() -> None:
    detector = learned()
    events = detector.hub(START + 14 * DAY_MS + HOUR_MS, online=False)
    events += detector.advance(START + 14 * DAY_MS + 14 * HOUR_MS)
    [alert] = [e for e in events if e.action is Action.RAISE and e.subject == ""]
    assert alert.kind in (AlertKind.NOT_UP, AlertKind.INACTIVITY) and alert.details.get("blind") is True


def test_every_activity_device_unavailable_is_cant_see_and_one_back_clears_it() -> None:
    detector = learned()
    t = START + 14 * DAY_MS + 15 * HOUR_MS
    feed(detector, [r for r in day_rows(14) if r[0] < t])
    events: list[AlertEvent] = []
    for i, device in enumerate(["kitchen_pir", "living_room_pir", "hall_pir", "bedroom_pir"]):
        events += detector.availability(t + i * MINUTE_MS, device, online=False)
    [cant] = raised(events, AlertKind.CANT_SEE)
    assert cant.at_ms == t + 3 * MINUTE_MS and cant.details["reason"] == "unavailable"
    events = detector.advance(t + 4 * HOUR_MS)
    [alert] = raised(events, AlertKind.INACTIVITY)
    assert alert.details["blind_reason"] == "unavailable" and "reports the sensors unavailable" in alert.message
    back = detector.availability(t + 5 * HOUR_MS, "hall_pir", online=True)
    assert [(e.action, e.kind) for e in back] == [(Action.CLEAR, AlertKind.CANT_SEE)]


def test_some_devices_unavailable_is_not_cant_see() -> None:
    detector = learned(days=3)
    t = START + 3 * DAY_MS + 10 * HOUR_MS
    events = detector.availability(t, "kitchen_pir", online=False)
    events += detector.availability(t, "hall_pir", online=False)
    assert not raised(events, AlertKind.CANT_SEE)


def test_a_device_busy_only_while_people_are_about_is_not_periodic_one_reporting_through_nights_is() -> None:
    watch = SilenceWatch(min_gaps=10)
    t = START
    for _ in range(5 * 24 * 4):  # every 15 minutes for five days, the home never still: busy, not periodic
        watch.report("busy", t, still_since_ms=None)
        watch.report("heartbeat", t, still_since_ms=t - 3 * HOUR_MS if (t // HOUR_MS) % 24 < 6 else None)
        t += 15 * MINUTE_MS
    assert not watch.watched("busy") and watch.watched("heartbeat")


def test_a_checkpoint_restores_each_part_and_starts_afresh_only_the_one_whose_version_changed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    detector = learned()
    blob = detector.dump()
    same = HomeDetector.load(blob, "h1", LONDON)
    assert same.restarted == () and same.baseline() == detector.baseline()
    assert same.now_ms == detector.now_ms and same.devices == detector.devices
    monkeypatch.setattr(Stillness, "version", Stillness.version + 1)
    bumped = HomeDetector.load(blob, "h1", LONDON)
    assert bumped.restarted == ("stillness",)
    assert bumped.stillness.days_learned == 0 and detector.stillness.days_learned >= 10
    assert bumped.routine.up_time.days == detector.routine.up_time.days >= 10, "the others keep what they learned"
    assert bumped.now_ms == detector.now_ms
