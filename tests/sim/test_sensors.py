"""The simulated hardware: PIR timeout and blind time, contacts, pads, the kettle, and zigbee2mqtt payloads."""

from __future__ import annotations

import itertools
import re
from collections import defaultdict
from datetime import UTC, datetime

import numpy as np
import orjson
import pytest

from analytics.devices import infer_kind
from gateway.contract import Kind, Message, parse
from sensors_sim.events import Observation
from sensors_sim.routine import Activity, Step, simulate_days
from sensors_sim.scenario import default_home
from sensors_sim.sensors import Hardware, Radio, iso_ms, observe, payload, payloads

HOME = default_home()
START = int(datetime(2025, 1, 6, tzinfo=UTC).timestamp() * 1000)
DAYS = 30
SEED = 7
QUIET = Hardware(heartbeat_s=1e9)  # no heartbeats: only what the resident causes
S = 1000


@pytest.fixture(scope="module")
def steps() -> list[Step]:
    return simulate_days(HOME, HOME.routine, START, DAYS, np.random.default_rng(SEED))


@pytest.fixture(scope="module")
def observations(steps: list[Step]) -> list[Observation]:
    return observe(HOME, steps, np.random.default_rng(SEED))


def _script(*parts: tuple[int, str | None, Activity]) -> list[Step]:
    """Steps from (seconds, room, activity) pairs, back to back from START."""
    out, t = [], START
    for seconds, room, activity in parts:
        out.append(Step(t, t + seconds * S, room, activity))
        t += seconds * S
    return out


def _of(observations: list[Observation], device: str) -> list[tuple[int, object]]:
    return [(o.time_ms - START, o.value) for o in observations if o.device == device]


def test_a_pir_reports_motion_once_a_blind_time_and_clears_after_the_timeout() -> None:
    steps = _script((300, "kitchen", Activity.MOVING), (3600, None, Activity.OUT))
    reports = _of(observe(HOME, steps, np.random.default_rng(1), QUIET), "kitchen_pir")
    trues = [t for t, v in reports if v is True]
    assert [v for _, v in reports] == [True] * len(trues) + [False]
    assert trues[0] < 1.5 * S and len(trues) == 5  # 5 minutes of motion: one report a minute, not one a second
    assert all(b - a == 60 * S for a, b in itertools.pairwise(trues))
    assert reports[-1][0] == trues[-1] + 90 * S


def test_motion_within_the_blind_time_neither_reports_nor_extends_the_timeout() -> None:
    steps = _script((1, "hall", Activity.MOVING), (29, None, Activity.OUT), (1, "hall", Activity.MOVING),
                    (170, None, Activity.OUT), (1, "hall", Activity.MOVING), (600, None, Activity.OUT))
    reports = _of(observe(HOME, steps, np.random.default_rng(1), QUIET), "hall_pir")
    assert [v for _, v in reports] == [True, False, True, False]
    first, cleared, second, _ = (t for t, _ in reports)
    assert cleared == first + 90 * S  # the motion at 30 s fell in the blind time
    assert 201 * S <= second <= 202 * S  # the third motion, at 201 s, is past the blind time


def test_pirs_do_not_flood(steps: list[Step]) -> None:
    reports = observe(HOME, steps, np.random.default_rng(SEED), QUIET)
    by_device: dict[str, list[Observation]] = defaultdict(list)
    for o in reports:
        if o.kind == "motion":
            by_device[o.device].append(o)
    for device, seen in by_device.items():
        assert len(seen) / DAYS < 600, device
        trues = [o.time_ms for o in seen if o.value is True]
        assert min(b - a for a, b in itertools.pairwise(trues)) >= 60 * S
        assert seen[-1].value is False


def test_the_front_door_opens_and_closes_when_going_out() -> None:
    steps = _script((120, "hall", Activity.MOVING), (15, "hall", Activity.DOOR), (3600, None, Activity.OUT),
                    (15, "hall", Activity.DOOR), (120, "hall", Activity.MOVING))
    door = _of(observe(HOME, steps, np.random.default_rng(1), QUIET), "front_door")
    assert [v for _, v in door] == [False, True, False, True]  # contact true = closed
    assert 120 * S <= door[0][0] < door[1][0] <= 135 * S


def test_contacts_follow_the_timeline(steps: list[Step], observations: list[Observation]) -> None:
    fridge_steps = [s for s in steps if s.activity is Activity.FRIDGE]
    fridge = [o for o in observations if o.device == "fridge_door"]
    opened = [b for a, b in itertools.pairwise(fridge) if a.value is True and b.value is False]
    assert len(opened) == len(fridge_steps)
    for step, o in zip(fridge_steps, opened, strict=True):
        assert step.start_ms <= o.time_ms < step.end_ms
    assert {o.value for o in observations if o.device == "back_door"} == {True}  # heartbeats only: still closed


def test_the_kettle_rises_then_falls(steps: list[Step], observations: list[Observation]) -> None:
    kettle = [o for o in observations if o.device == "kettle_plug"]
    boils = [s for s in steps if s.activity is Activity.KETTLE]
    assert len(kettle) == 2 * len(boils) > 0
    for step, on, off in zip(boils, kettle[::2], kettle[1::2], strict=True):
        assert isinstance(on.value, float) and isinstance(off.value, float)
        assert step.start_ms < on.time_ms < step.end_ms and on.value > 1500
        assert off.value == 0 and 100 * S < off.time_ms - on.time_ms < 300 * S


def test_the_pads_see_bed_and_chair() -> None:
    steps = _script((3600, "bedroom", Activity.ASLEEP), (120, "bedroom", Activity.MOVING),
                    (600, "living room", Activity.SEATED), (60, "kitchen", Activity.MOVING))
    observed = observe(HOME, steps, np.random.default_rng(1), QUIET)
    assert [v for _, v in _of(observed, "bed_pad")] == [False]  # in bed from the start: only getting up shows
    chair = _of(observed, "chair_pad")
    assert [v for _, v in chair] == [True, False] and 3720 * S < chair[0][0] < 3725 * S


def test_the_pendant_is_pressed_only_when_told(observations: list[Observation]) -> None:
    assert not [o for o in observations if o.device == "pendant"]
    steps = _script((600, "living room", Activity.SEATED))
    pressed = observe(HOME, steps, np.random.default_rng(1), presses=[START + 60 * S])
    assert [(o.time_ms, o.value) for o in pressed if o.device == "pendant"] == [(START + 60 * S, "single")]


def test_temperatures_every_few_minutes_drifting_slowly(observations: list[Observation]) -> None:
    readings = [o for o in observations if o.device == "bedroom_climate"]
    gaps = [b.time_ms - a.time_ms for a, b in itertools.pairwise(readings)]
    assert min(gaps) >= 300 * S and max(gaps) <= 600 * S
    values = [float(o.value) for o in readings]  # type: ignore[arg-type]
    assert min(values) > 12 and max(values) < 26
    assert max(abs(b - a) for a, b in itertools.pairwise(values)) < 0.6


def test_heartbeats_keep_quiet_devices_heard(observations: list[Observation]) -> None:
    for device in ("back_door", "bathroom_pir", "bed_pad"):
        times = [o.time_ms for o in observations if o.device == device]
        assert max(b - a for a, b in itertools.pairwise(times)) <= 3300 * S


def test_the_same_seed_gives_the_same_observations(steps: list[Step], observations: list[Observation]) -> None:
    assert observe(HOME, steps, np.random.default_rng(SEED)) == observations
    assert observe(HOME, steps, np.random.default_rng(SEED + 1)) != observations
    again = simulate_days(HOME, HOME.routine, START, 3, np.random.default_rng(SEED + 1))
    assert observe(HOME, again, np.random.default_rng(SEED + 1)) != observations


def test_payloads_parse_as_their_kind(observations: list[Observation]) -> None:
    seen_kinds = set()
    for o, body in payloads(observations, Radio(HOME, np.random.default_rng(1))):
        message = parse(f"telecare/{o.home}/{o.device}", orjson.dumps(body), o.time_ms + 50, o.time_ms + 50)
        assert isinstance(message, Message) and message.kind is Kind.STATE, (o, body, message)
        assert message.time_ms == o.time_ms and message.timed_by_device
        assert infer_kind(message.body) == o.kind
        seen_kinds.add(o.kind)
    assert seen_kinds == {"motion", "contact", "presence", "plug", "climate"}


@pytest.mark.parametrize("kind, value, field, wire", [
    ("motion", True, "occupancy", True),
    ("contact", True, "contact", True),  # closed
    ("contact", False, "contact", False),  # open
    ("presence", True, "pressure", True),
    ("plug", 2031.5, "power", 2031.5),
    ("button", "single", "action", "single"),
    ("climate", 19.4, "temperature", 19.4),
])
def test_payload_fields(kind: str, value: object, field: str, wire: object) -> None:
    o = Observation(1736934067318, "home-a", "device", kind, value)  # type: ignore[arg-type]
    body = payload(o, None if kind == "plug" else 87.4, 142)
    assert body[field] == wire and body["linkquality"] == 142
    assert body["last_seen"] == "2025-01-15T09:41:07.318Z"
    assert list(body) == sorted(body)
    if kind == "plug":
        assert body["state"] == "ON" and "battery" not in body
    else:
        assert body["battery"] == 87
    if kind == "motion":
        assert isinstance(body["illuminance"], int)
    if kind == "climate":
        assert 0 <= body["humidity"] <= 100  # type: ignore[operator]


def test_batteries_drain_and_links_jitter() -> None:
    radio = Radio(HOME, np.random.default_rng(3))
    reports = [radio.report("hall_pir") for _ in range(1000)]
    batteries = [b for b, _ in reports]
    assert all(b is not None for b in batteries)
    assert batteries == sorted(batteries, reverse=True) and batteries[0] - batteries[-1] > 1  # type: ignore[operator]
    links = {q for _, q in reports}
    assert len(links) > 5 and all(0 <= q <= 255 for q in links)
    assert radio.report("kettle_plug")[0] is None


def test_last_seen_is_iso_8601_utc_with_milliseconds() -> None:
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", iso_ms(START + 5))
    assert iso_ms(START + 5) == "2025-01-06T00:00:00.005Z"
