"""Device and hub faults remove exactly what they should, and say so in the hub's state and the ground truth."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
from pydantic import ValidationError

from sensors_sim.events import Observation
from sensors_sim.faults import LAST_WILL_DELAY_MS, HubEvent, apply_faults, parse_faults, payloads
from sensors_sim.routine import simulate_days
from sensors_sim.scenario import default_home
from sensors_sim.sensors import Radio, observe

HOME = default_home()  # Europe/London: in January local time is UTC
START = int(datetime(2025, 1, 6, tzinfo=UTC).timestamp() * 1000)
DAYS = 3
END = START + DAYS * 86_400_000
MIN = 60_000
HOUR = 60 * MIN


@pytest.fixture(scope="module")
def observations() -> list[Observation]:
    rng = np.random.default_rng(5)
    return observe(HOME, simulate_days(HOME, HOME.routine, START, DAYS, rng), rng)


def _faults(*faults: dict):
    return parse_faults([{"home": HOME.id, **f} for f in faults])


def test_a_silent_sensor_loses_exactly_its_observations_in_the_window(observations: list[Observation]) -> None:
    a, b = START + 86_400_000 + 8 * HOUR, START + 86_400_000 + 20 * HOUR
    faulted = apply_faults(HOME, START, END, observations,
                           _faults({"kind": "sensor_silent", "device": "kitchen_pir", "day": 1, "at": 480,
                                    "duration_min": 720}))
    gone = [o for o in observations if o.device == "kitchen_pir" and a <= o.time_ms < b]
    assert gone
    assert faulted.observations == [o for o in observations if o not in gone]
    [truth] = faulted.truth
    assert (truth.kind, truth.start_ms, truth.end_ms, truth.room) == ("sensor_silent", a, b, "kitchen")
    assert faulted.hub_events == [HubEvent(START, HOME.id, True)]


def test_a_sensor_silent_for_good(observations: list[Observation]) -> None:
    at = START + 2 * HOUR
    faulted = apply_faults(HOME, START, END, observations,
                           _faults({"kind": "sensor_silent", "device": "bed_pad", "at": 120}))
    assert faulted.truth[0].end_ms is None
    assert not [o for o in faulted.observations if o.device == "bed_pad" and o.time_ms >= at]
    assert [o for o in faulted.observations if o.device == "bed_pad"]


def test_a_flat_battery_fades_to_zero_then_the_device_is_silent(observations: list[Observation]) -> None:
    flat = START + 2 * 86_400_000 + 12 * HOUR
    faulted = apply_faults(HOME, START, END, observations,
                           _faults({"kind": "battery_flat", "device": "hall_pir", "day": 2, "at": 720,
                                    "fade_days": 1, "fade_from": 20}))
    assert faulted.observations == [o for o in observations if not (o.device == "hall_pir" and o.time_ms >= flat)]
    [truth] = faulted.truth
    assert (truth.kind, truth.start_ms, truth.end_ms) == ("battery_flat", flat, None)
    assert truth.details["fade_start_ms"] == flat - 86_400_000
    assert faulted.battery_cap("hall_pir", flat - 86_400_001) is None
    assert faulted.battery_cap("hall_pir", flat - 43_200_000) == pytest.approx(10)
    assert faulted.battery_cap("hall_pir", flat) == 0
    assert faulted.battery_cap("kitchen_pir", flat) is None
    sent = [(o.time_ms, p["battery"]) for o, p in payloads(faulted.observations, Radio(HOME, np.random.default_rng(1)),
                                                            faulted) if o.device == "hall_pir"]
    fading = [b for t, b in sent if t >= flat - 86_400_000]
    assert fading == sorted(fading, reverse=True) and fading[0] <= 20 and fading[-1] <= 1
    assert all(b > 20 for t, b in sent if t < flat - 86_400_000)


def test_a_hub_outage_loses_everything_and_the_broker_sends_the_last_will(observations: list[Observation]) -> None:
    a, b = START + 86_400_000 + 9 * HOUR, START + 86_400_000 + 11 * HOUR
    faulted = apply_faults(HOME, START, END, observations,
                           _faults({"kind": "hub_offline", "day": 1, "at": 540, "duration_min": 120}))
    assert faulted.observations == [o for o in observations if not a <= o.time_ms < b]
    assert len(faulted.observations) < len(observations)
    assert faulted.hub_events == [HubEvent(START, HOME.id, True),
                                  HubEvent(a + LAST_WILL_DELAY_MS, HOME.id, False, True), HubEvent(b, HOME.id, True)]
    [truth] = faulted.truth
    assert (truth.kind, truth.start_ms, truth.end_ms, truth.room) == ("hub_offline", a, b, None)


def test_hub_outages_clean_short_overlapping_and_unending(observations: list[Observation]) -> None:
    faulted = apply_faults(HOME, START, END, observations, _faults(
        {"kind": "hub_offline", "at": 60, "duration_min": 30, "clean": True},
        {"kind": "hub_offline", "at": 180, "duration_min": 1},  # shorter than the will's delay: unnoticed
        {"kind": "hub_offline", "day": 1, "at": 300, "duration_min": 120},
        {"kind": "hub_offline", "day": 1, "at": 360, "duration_min": 120},
        {"kind": "hub_offline", "day": 2, "at": 1380, "duration_min": 600},
    ))
    day1 = START + 86_400_000
    assert faulted.hub_events == [
        HubEvent(START, HOME.id, True),
        HubEvent(START + HOUR, HOME.id, False, False), HubEvent(START + 90 * MIN, HOME.id, True),
        HubEvent(day1 + 5 * HOUR + LAST_WILL_DELAY_MS, HOME.id, False, True), HubEvent(day1 + 8 * HOUR, HOME.id, True),
        HubEvent(END - HOUR + LAST_WILL_DELAY_MS, HOME.id, False, True),
    ]
    assert not [o for o in faulted.observations if START + 3 * HOUR <= o.time_ms < START + 3 * HOUR + MIN]
    assert [t.end_ms for t in faulted.truth][-1] is None


def test_faults_are_checked(observations: list[Observation]) -> None:
    with pytest.raises(ValueError, match="no device"):
        apply_faults(HOME, START, END, observations, _faults({"kind": "sensor_silent", "device": "toaster"}))
    with pytest.raises(ValueError, match="outside"):
        apply_faults(HOME, START, END, observations, _faults({"kind": "hub_offline", "day": 9}))
    with pytest.raises(ValidationError):
        _faults({"kind": "hub_offline", "duration_min": -1})
    other = parse_faults([{"kind": "hub_offline", "home": "elsewhere"}])
    assert apply_faults(HOME, START, END, observations, other).observations == observations
