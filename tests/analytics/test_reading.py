"""One reading into the detectors: the call the gateway and the replay share, and what a report without a change
does (it is a report: the device was heard)."""

from __future__ import annotations

import io
from datetime import date
from zoneinfo import ZoneInfo

import pytest

from analytics.activity import NOT_JUDGED, ActivityTracker, Judged, NotJudged, Value
from analytics.alerts import AlertEvent
from analytics.localtime import DAY_MS, HOUR_MS, MINUTE_MS
from analytics.reading import lux, observation_fields, observe_reading
from analytics.replay import Replay, feed
from sensors_sim.events import Observation
from sensors_sim.generate import start_of
from sensors_sim.recordings import read_csv

START = start_of(date(2026, 3, 2))


class Recorder:
    """Takes readings as a detector does and remembers each call, with the activity change: as the caller judged
    it, or (NOT_JUDGED) as the detector's tracker decides it."""

    def __init__(self) -> None:
        self.calls: list[tuple[object, ...]] = []
        self.tracker = ActivityTracker()

    def observe(self, time_ms: int, device: str, kind: str, value: Value | None = None, *, room: str | None = None,
                role: str | None = None, temperature: float | None = None, battery: float | None = None,
                battery_low: bool | None = None, illuminance: float | None = None,
                change: Judged = NOT_JUDGED) -> list[AlertEvent]:
        if isinstance(change, NotJudged):
            change = self.tracker.update(device, kind, value) if value is not None else None
        self.calls.append((time_ms, device, kind, value, room, role, temperature, battery, battery_low, illuminance,
                           change))
        return []


def call(kind: str | None, fields: dict[str, object]) -> tuple[object, ...]:
    recorder = Recorder()
    observe_reading(recorder, 5, "d", kind, fields, room="hall", role="room")
    [made] = recorder.calls
    return made[:10]  # without the activity change


@pytest.mark.parametrize(("kind", "fields", "value", "temperature"), [
    ("motion", {"occupancy": True, "temperature": 31.0}, True, None),  # a PIR's chip is not the room
    ("contact", {"contact": False}, False, None),
    ("presence", {"presence": True}, True, None),
    ("plug", {"power": 2000, "temperature": 45.0}, 2000, None),
    ("button", {"action": "single"}, "single", None),
    ("vibration", {"vibration": True}, True, None),
    ("leak", {"water_leak": True}, None, None),  # a leak is not a person's activity
    ("climate", {"temperature": 19.5, "humidity": 40}, None, 19.5),
])
def test_each_kind_gives_its_activity_value_and_only_a_climate_sensor_a_room_temperature(
        kind: str, fields: dict[str, object], value: object, temperature: float | None) -> None:
    assert call(kind, fields) == (5, "d", kind, value, "hall", "room", temperature, None, None, None)


def test_what_else_a_report_says_reaches_the_detector() -> None:
    fields = {"occupancy": False, "battery": 14, "battery_low": True, "illuminance": 300, "linkquality": 120}
    assert call("motion", fields)[3:] == (False, "hall", "room", None, 14.0, True, 300.0)
    assert call("motion", {"battery": 90})[2:4] == ("motion", None), "a battery report has no activity value"


def test_a_kind_not_described_is_inferred_and_a_report_revealing_none_still_counts() -> None:
    assert call(None, {"contact": True})[2:4] == ("contact", True)
    assert call(None, {"battery": 50, "linkquality": 9})[2:4] == ("unknown", None)


def test_light_in_lux_prefers_zigbee2mqtt_1s_lux_field_over_a_raw_illuminance() -> None:
    assert lux({"illuminance": 25000, "illuminance_lux": 316}) == 316.0
    assert lux({"illuminance": 316}) == 316.0
    assert lux({"illuminance": True}) is None and lux({}) is None


def test_a_csv_row_stands_for_the_fields_the_gateway_gets() -> None:
    assert observation_fields("presence", True, battery=80.0, linkquality=3) == {
        "presence": True, "battery": 80.0, "linkquality": 3}
    assert observation_fields("climate", 18.5) == {"temperature": 18.5}
    assert observation_fields("plug", 0.0, temperature=40.0) == {"power": 0.0, "temperature": 40.0}
    assert observation_fields("motion", None, battery_low=True, illuminance=3.0) == {
        "battery_low": True, "illuminance": 3.0}


def test_feed_makes_the_gateways_call_for_a_row() -> None:
    recorder = Recorder()
    row = Observation(7, "h", "hall_pir", "motion", None, "hall", "room", temperature=30.0, battery=12.0,
                      battery_low=True, illuminance=40.0, linkquality=200)
    feed(recorder, row)  # type: ignore[arg-type]
    assert recorder.calls == [(7, "hall_pir", "motion", None, "hall", "room", None, 12.0, True, 40.0, None)]


def reports_of(value: str, battery: str, days: int = 6) -> list[Observation]:
    """Days of a kitchen PIR seeing someone every 20 minutes from 08:00 to 22:00, and the hall PIR's rows every
    50 minutes, day and night, for the first three and a half days: each with ``value`` and ``battery``."""
    lines = ["time,home,device,kind,value,room,role,battery"]
    for day in range(days):
        for t in range(START + day * DAY_MS + 8 * HOUR_MS, START + day * DAY_MS + 22 * HOUR_MS, 20 * MINUTE_MS):
            lines.append(f"{t},h,kitchen_pir,motion,1,kitchen,room,")
            lines.append(f"{t + MINUTE_MS},h,kitchen_pir,motion,0,kitchen,room,")
    for t in range(START, START + 3 * DAY_MS + 12 * HOUR_MS, 50 * MINUTE_MS):
        lines.append(f"{t},h,hall_pir,motion,{value},hall,room,{battery}")
    return list(read_csv(io.StringIO("\n".join(lines) + "\n")))


@pytest.mark.parametrize(("value", "battery"), [("0", ""), ("", "80")], ids=["unchanged state", "battery only"])
def test_a_report_that_changes_nothing_keeps_a_device_heard_and_its_stopping_is_seen(value: str, battery: str) -> None:
    observations = reports_of(value, battery)
    stopped = observations[-1].time_ms
    run = Replay(ZoneInfo("Europe/London"), learn_days=0)
    for o in sorted(observations, key=lambda o: o.time_ms):
        run.add(o)
    silent = [r for r in run.finish() if r.kind == "sensor_silent"]
    assert [r.subject for r in silent] == ["hall_pir"], "its rows taught the detector it reports regularly"
    last_hall = max(o.time_ms for o in observations if o.device == "hall_pir")
    assert last_hall < silent[0].raised_at_ms <= last_hall + 3 * HOUR_MS < stopped
