"""The home's hardware: what each device reports, and when, as the resident goes through their timeline.

Real sensors do not sample; they report changes, and zigbee2mqtt adds its own messages. A PIR (Aqara
RTCGQ11LM) reports motion, then ignores motion for its blind time (about 60 s); zigbee2mqtt publishes
``occupancy: true`` for each report and ``occupancy: false`` by itself ``occupancy_timeout`` (90 s) after the
last one. So continuous motion gives a report a minute, not one a second, and the end of occupancy comes 90 s
after the last report, not when the person left. Contacts report each change (``true`` = closed), pads each
change of pressure, the kettle's plug each change of power, the pendant each press. Battery devices re-send
their state about every 50 minutes (Xiaomi's heartbeat), so a device in an unused room is not silent.
Pure: the random generator is passed in and times are the timeline's.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import numpy as np

from sensors_sim.events import Observation, Value
from sensors_sim.routine import Activity, Step
from sensors_sim.scenario import SimDevice, SimHome

_CONTINUOUS = frozenset({Activity.MOVING, Activity.TOILET, Activity.COOKING, Activity.KETTLE, Activity.FRIDGE,
                         Activity.DOOR})
_FIDGETS_PER_S = {Activity.SEATED: 1 / 240, Activity.VISITED: 1 / 45, Activity.NAPPING: 1 / 1800,
                  Activity.ASLEEP: 1 / 3600}
_PAD = {"bed": frozenset({Activity.ASLEEP}), "chair": frozenset({Activity.SEATED, Activity.NAPPING,
                                                                 Activity.VISITED})}
_BASE_C = {"hall": 18.5, "kitchen": 19.5, "living room": 20.5, "bedroom": 18.0, "bathroom": 20.0}


@dataclass(frozen=True, slots=True)
class Hardware:
    """Device timings. Defaults: zigbee2mqtt's ``occupancy_timeout`` and the RTCGQ11LM's blind time."""

    pir_timeout_s: float = 90.0
    pir_blind_s: float = 60.0
    heartbeat_s: float = 3000.0  # battery devices re-send their state, with some jitter
    kettle_w: float = 2000.0
    kettle_boil_s: float = 180.0
    climate_every_s: tuple[float, float] = (300.0, 600.0)


def observe(home: SimHome, steps: Sequence[Step], rng: np.random.Generator, hardware: Hardware | None = None,
            presses: Iterable[int] = ()) -> list[Observation]:
    """Every device's reports over the timeline, ordered by time. ``presses``: pendant presses (incidents)."""
    if not steps:
        return []
    hardware = hardware or Hardware()
    start, end = steps[0].start_ms, steps[-1].end_ms
    offset = datetime.fromtimestamp(start / 1000, ZoneInfo(home.timezone)).utcoffset()
    offset_h = offset.total_seconds() / 3600 if offset is not None else 0.0  # local time for day and night
    out: list[Observation] = []
    for device in home.devices:
        changes: list[tuple[int, Value]]
        if device.kind == "motion":
            changes = _pir(_motion(steps, device.room, rng), hardware)
        elif device.kind == "contact":
            changes = _contact(steps, device.role, rng)
        elif device.kind == "presence":
            changes = _pad(steps, _PAD.get(device.role or "", frozenset()), rng)
        elif device.kind == "plug":
            changes = _kettle(steps, hardware, rng) if device.role == "kettle" else []
        elif device.kind == "climate":
            changes = _climate(device.room, start, end, offset_h, hardware, rng)
        elif device.kind == "button":
            changes = [(t, "single") for t in presses if start <= t < end] if device.role == "pendant" else []
        else:
            changes = []
        if device.kind in ("motion", "contact", "presence"):
            changes = _heartbeats(changes, _initial(device, steps[0]), start, end, hardware.heartbeat_s, rng)
        out += [Observation(t, home.id, device.name, device.kind, v, device.room, device.role) for t, v in changes]
    out.sort(key=lambda o: o.time_ms)
    return out


def _initial(device: SimDevice, first: Step) -> Value:
    """The state a device is in when the simulation starts: doors closed, rooms empty, pads as the resident is."""
    if device.kind == "presence":
        return first.activity in _PAD.get(device.role or "", frozenset())
    return device.kind == "contact"


def _motion(steps: Sequence[Step], room: str | None, rng: np.random.Generator) -> list[tuple[int, int]]:
    """Spans of motion in one room (a fidget is a span of zero length), in order."""
    spans: list[tuple[int, int]] = []
    for s in steps:
        if s.room != room:
            continue
        if s.activity in _CONTINUOUS:
            spans.append((min(s.end_ms, s.start_ms + int(rng.integers(0, 1500))), s.end_ms))
        elif s.activity in _FIDGETS_PER_S:
            count = rng.poisson((s.end_ms - s.start_ms) / 1000 * _FIDGETS_PER_S[s.activity])
            spans += [(t, t) for t in sorted(rng.integers(s.start_ms, s.end_ms, size=count).tolist())]
    return spans


def _pir(spans: list[tuple[int, int]], hw: Hardware) -> list[tuple[int, Value]]:
    """Reports after each blind time while there is motion; ``false`` a timeout after the last report."""
    blind, timeout = int(hw.pir_blind_s * 1000), int(hw.pir_timeout_s * 1000)
    out: list[tuple[int, Value]] = []
    last: int | None = None
    for a, b in spans:
        t = a if last is None else max(a, last + blind)
        while t <= b:
            if last is not None and t > last + timeout:
                out.append((last + timeout, False))
            out.append((t, True))
            last = t
            t += blind
    if last is not None:
        out.append((last + timeout, False))
    return out


def _contact(steps: Sequence[Step], role: str | None, rng: np.random.Generator) -> list[tuple[int, Value]]:
    activity = {"front_door": Activity.DOOR, "fridge": Activity.FRIDGE}.get(role or "")
    out: list[tuple[int, Value]] = []
    for s in steps:
        if s.activity is activity:
            opened = s.start_ms + int(rng.integers(0, 2000))
            closed = max(opened + 500, s.end_ms - int(rng.integers(0, 2000)))
            out += [(opened, False), (closed, True)]
    return out


def _pad(steps: Sequence[Step], occupied: frozenset[Activity], rng: np.random.Generator) -> list[tuple[int, Value]]:
    out: list[tuple[int, Value]] = []
    sitting = bool(steps) and steps[0].activity in occupied
    for s in steps:
        if (s.activity in occupied) != sitting:
            sitting = not sitting
            t = s.start_ms + int(rng.integers(500, 3000))
            out.append((max(t, out[-1][0] + 1) if out else t, sitting))
    return out


def _kettle(steps: Sequence[Step], hw: Hardware, rng: np.random.Generator) -> list[tuple[int, Value]]:
    out: list[tuple[int, Value]] = []
    for s in steps:
        if s.activity is Activity.KETTLE:
            on = max(s.start_ms + int(rng.integers(1000, 5000)), out[-1][0] + 1 if out else 0)
            out.append((on, round(float(rng.normal(hw.kettle_w, 0.03 * hw.kettle_w)), 1)))
            out.append((on + int(rng.normal(hw.kettle_boil_s, 20) * 1000), 0.0))
    return out


def _climate(room: str | None, start: int, end: int, utc_offset_h: float, hw: Hardware,
             rng: np.random.Generator) -> list[tuple[int, Value]]:
    """A room's base temperature, warmer by day (heating, cooking), with a slow random drift."""
    base = _BASE_C.get(room or "", 19.5) + rng.normal(0, 0.5)
    low, high = hw.climate_every_s
    count = int((end - start) / 1000 / low) + 2
    gaps = rng.uniform(low, high, count) * 1000
    times = (start + rng.uniform(0, high) * 1000 + np.concatenate(([0.0], np.cumsum(gaps[:-1])))).astype(np.int64)
    times = times[times < end]
    drift = np.empty(len(times))
    level = 0.0
    for i, step in enumerate(rng.normal(0, 0.05, len(times)).tolist()):
        level = 0.98 * level + step
        drift[i] = level
    hour = (times / 3_600_000 + utc_offset_h) % 24
    day = 1.2 * np.maximum(0.0, np.sin(np.pi * (hour - 6) / 16))
    return list(zip(times.tolist(), np.round(base + day + drift, 1).tolist(), strict=True))


def _heartbeats(changes: list[tuple[int, Value]], initial: Value, start: int, end: int, every_s: float,
                rng: np.random.Generator) -> list[tuple[int, Value]]:
    """Interleave the periodic re-sends of the current state with the changes."""
    out: list[tuple[int, Value]] = []
    value, i = initial, 0
    t = start + int(rng.uniform(0, every_s) * 1000)
    while t < end:
        while i < len(changes) and changes[i][0] <= t:
            out.append(changes[i])
            value = changes[i][1]
            i += 1
        out.append((t, value))
        t += int(every_s * rng.uniform(0.9, 1.1) * 1000)
    return out + changes[i:]


# ------------------------------------------------------------------------------------------------------------
# zigbee2mqtt payloads


class Radio:
    """Each device's battery (draining a little with every report) and link quality (jittering around a mean)."""

    DRAIN_PER_REPORT = 0.002  # percent: a PIR with ~150 reports a day lasts about a year

    def __init__(self, home: SimHome | None, rng: np.random.Generator) -> None:
        """``home`` None: devices are met as they report (a replayed recording)."""
        self._rng = rng
        self._battery: dict[str, float | None] = {}
        self._link: dict[str, float] = {}
        for d in home.devices if home else ():
            self._meet(d.name, d.kind)

    def _meet(self, device: str, kind: str) -> None:
        self._battery[device] = None if kind == "plug" else float(self._rng.uniform(60, 100))
        self._link[device] = float(self._rng.uniform(60, 200))

    def report(self, device: str, kind: str = "") -> tuple[float | None, int]:
        if device not in self._link:
            self._meet(device, kind)
        battery = self._battery[device]
        if battery is not None:
            self._battery[device] = battery = max(0.0, battery - self.DRAIN_PER_REPORT)
        link = min(255, max(0, round(self._link[device] + self._rng.normal(0, 8))))
        return battery, link


def payloads(observations: Iterable[Observation], radio: Radio) -> list[tuple[Observation, dict[str, object]]]:
    """Each observation with the JSON object its hub would publish on ``telecare/<home>/<device>``."""
    return [(o, payload(o, *radio.report(o.device, o.kind))) for o in observations]


def payload(observation: Observation, battery: float | None, linkquality: int) -> dict[str, object]:
    """The zigbee2mqtt state message for one report (keys sorted, as zigbee2mqtt 2.x sends them)."""
    o = observation
    body: dict[str, object] = {"last_seen": iso_ms(o.time_ms), "linkquality": linkquality}
    if battery is not None:
        body["battery"] = round(battery)
        body["voltage"] = round(2700 + 4 * battery)  # mV: a CR2032/CR2450 from about 3.1 V down to 2.7 V
    if o.kind == "motion":
        body.update(occupancy=bool(o.value), illuminance=_daylight_lux(o.time_ms))
    elif o.kind == "contact":
        body["contact"] = bool(o.value)  # true = closed
    elif o.kind == "presence":
        body.update(pressure=bool(o.value), battery_low=battery is not None and battery < 10)  # Tuya C3007 pad
    elif o.kind == "plug":
        watts = float(o.value)  # type: ignore[arg-type]
        body.update(state="ON", power=watts, voltage=236, current=round(watts / 236, 2))
    elif o.kind == "button":
        body["action"] = str(o.value)
    elif o.kind == "climate":
        celsius = float(o.value)  # type: ignore[arg-type]
        body.update(temperature=celsius, humidity=round(min(95.0, max(20.0, 50 - 2 * (celsius - 20))), 1))
    else:
        raise ValueError(f"no payload for device kind {o.kind!r}")
    return dict(sorted(body.items()))


def iso_ms(time_ms: int) -> str:
    """zigbee2mqtt's ``last_seen: ISO_8601``: UTC with milliseconds and Z, e.g. 2025-01-15T09:41:07.318Z."""
    return datetime.fromtimestamp(time_ms // 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{time_ms % 1000:03d}Z"


def _daylight_lux(time_ms: int) -> int:
    hour = (time_ms / 3_600_000) % 24
    return max(5, round(300 * math.sin(math.pi * (hour - 6) / 12))) if 6 < hour < 18 else 5
