"""Device and hub faults a scenario can inject into a home's observation stream, with their ground truth.

Faults act on the observations (after :func:`sensors_sim.sensors.observe` and any incidents), because they are
about the hardware, not the resident: the resident goes on living, and what the gateway would have seen goes
missing.

* ``sensor_silent``: one device stops reporting at a moment (unplugged, out of range, dead) for ``duration_min``
  or for good: its observations are removed, heartbeats included.
* ``battery_flat``: one device's battery fades to 0 % over ``fade_days`` before the moment it goes flat, then the
  device is silent. Observations carry no battery level: :meth:`Faulted.battery_cap` says what the battery may
  be at most at a time, for the payload builder (:class:`sensors_sim.sensors.Radio`) to apply.
* ``hub_offline``: the hub loses its broker connection at a moment and is back ``duration_min`` later. Every
  observation of the home in between is **lost**: zigbee2mqtt does not queue messages while it cannot reach the
  broker (``docs/mqtt-contract.md``), and the simulated devices buffer nothing. The hub's state changes are
  :class:`HubEvent` records for the publisher to send on ``telecare/<home>/bridge/state``: an unclean loss
  (power cut, network down) is announced by the broker as the hub's last will about 1.5 keepalives later (90 s
  by default); a clean stop (``clean: true``) by the hub itself at once.

Days and times of day are as for incidents (:mod:`sensors_sim.incidents`). Pure: no clock, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from sensors_sim.events import Observation
from sensors_sim.incidents import DAY_MS, MINUTE_MS, GroundTruth, local_ms
from sensors_sim.scenario import DAY_MIN, SimHome
from sensors_sim.sensors import Radio, payload

LAST_WILL_DELAY_MS = 90_000  # the broker's last will: ~1.5 x a 60 s keepalive after the connection died


class _Fault(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    home: str = Field(min_length=1)
    day: int = Field(0, ge=0, le=3660, description="days after the first simulated day (local dates)")
    at: float = Field(0.0, ge=0, lt=DAY_MIN, description="minutes after local midnight")


class SensorSilent(_Fault):
    """``device`` stops reporting at ``at`` for ``duration_min`` (default: for good)."""

    kind: Literal["sensor_silent"] = "sensor_silent"
    device: str = Field(min_length=1)
    duration_min: float | None = Field(None, gt=0)


class BatteryFlat(_Fault):
    """``device``'s battery is flat at ``at`` (then silent for good), fading to 0 % over ``fade_days`` before."""

    kind: Literal["battery_flat"] = "battery_flat"
    device: str = Field(min_length=1)
    fade_days: float = Field(3.0, ge=0, le=365)
    fade_from: float = Field(20.0, gt=0, le=100, description="battery %, at most, when the fade starts")


class HubOffline(_Fault):
    """The hub is cut off from the broker at ``at`` and back ``duration_min`` later."""

    kind: Literal["hub_offline"] = "hub_offline"
    duration_min: float = Field(30.0, gt=0)
    clean: bool = Field(False, description="a clean stop (no last will) rather than a lost connection")


Fault = Annotated[SensorSilent | BatteryFlat | HubOffline, Field(discriminator="kind")]
_FAULTS: TypeAdapter[list[Fault]] = TypeAdapter(list[Fault])


def parse_faults(data: Any) -> list[Fault]:
    """A scenario's ``faults:`` list (dicts from YAML) as models; raises pydantic's ValidationError."""
    return _FAULTS.validate_python(data or [])


@dataclass(frozen=True, slots=True)
class HubEvent:
    """A change of the hub's state, to publish (retained, QoS 1) on ``telecare/<home>/bridge/state``.

    ``last_will``: sent by the broker on the hub's behalf (the hub is gone), not by the hub.
    """

    time_ms: int
    home: str
    online: bool
    last_will: bool = False


@dataclass(frozen=True, slots=True)
class _Fade:
    start_ms: int
    flat_ms: int
    fade_from: float


@dataclass(frozen=True, slots=True)
class Faulted:
    """A home's observations with its faults applied, the hub's state changes, and the faults' ground truth."""

    observations: list[Observation]
    hub_events: list[HubEvent]
    truth: list[GroundTruth]
    fades: dict[str, _Fade]

    def battery_cap(self, device: str, time_ms: int) -> float | None:
        """The most ``device``'s battery can hold at ``time_ms`` (percent), or None: no battery fault."""
        fade = self.fades.get(device)
        if fade is None or time_ms < fade.start_ms:
            return None
        if time_ms >= fade.flat_ms:
            return 0.0
        return fade.fade_from * (fade.flat_ms - time_ms) / (fade.flat_ms - fade.start_ms)


def apply_faults(home: SimHome, start_ms: int, end_ms: int, observations: Sequence[Observation],
                 faults: Iterable[Fault]) -> Faulted:
    """Apply the faults of ``home`` (those of other homes are ignored) to its observations.

    ``start_ms``/``end_ms``: the whole simulated span (the day count starts at the local date of ``start_ms``).
    The hub events begin with the hub online at ``start_ms``. A fault outside the span or naming an unknown device
    raises ValueError. ``observations`` may be any part of the span (a day at a time): what is removed depends only
    on each observation's time, and the hub events and ground truth, which are the whole span's, are the same for
    every part (take them once).
    """
    names = {d.name for d in home.devices}
    gone: list[tuple[str | None, int, int]] = []  # (device or None = all, from, to): observations removed
    outages: list[tuple[int, int, bool]] = []  # (from, back, clean)
    truth: list[GroundTruth] = []
    fades: dict[str, _Fade] = {}
    mine = sorted((f for f in faults if f.home == home.id), key=lambda f: (f.day, f.at))
    for fault in mine:
        at = local_ms(home, start_ms, fault.day, fault.at)
        if not start_ms <= at < end_ms:
            raise ValueError(f"{fault.kind} on day {fault.day} of home {home.id} is outside the simulated span")
        if isinstance(fault, SensorSilent | BatteryFlat) and fault.device not in names:
            raise ValueError(f"{fault.kind}: home {home.id} has no device {fault.device!r}")
        if isinstance(fault, SensorSilent):
            end = None if fault.duration_min is None else at + round(fault.duration_min * MINUTE_MS)
            gone.append((fault.device, at, end_ms if end is None else end))
            truth.append(GroundTruth(home.id, fault.kind, at, end, _room(home, fault.device),
                                     {"device": fault.device}))
        elif isinstance(fault, BatteryFlat):
            gone.append((fault.device, at, end_ms))
            fade_start = max(start_ms, at - round(fault.fade_days * DAY_MS))
            fades[fault.device] = _Fade(fade_start, at, fault.fade_from)
            truth.append(GroundTruth(home.id, fault.kind, at, None, _room(home, fault.device),
                                     {"device": fault.device, "fade_start_ms": fade_start}))
        else:
            back = at + round(fault.duration_min * MINUTE_MS)
            gone.append((None, at, back))
            outages.append((at, back, fault.clean))
            truth.append(GroundTruth(home.id, fault.kind, at, back if back < end_ms else None, None,
                                     {"clean": fault.clean, "duration_min": fault.duration_min}))
    kept = [o for o in observations
            if not any((device is None or device == o.device) and a <= o.time_ms < b for device, a, b in gone)]
    return Faulted(kept, _hub_events(home.id, start_ms, end_ms, outages), truth, fades)


def payloads(observations: Iterable[Observation], radio: Radio,
             faulted: Faulted) -> list[tuple[Observation, dict[str, object]]]:
    """:func:`sensors_sim.sensors.payloads` with the battery faults applied (battery capped by the fade)."""
    out: list[tuple[Observation, dict[str, object]]] = []
    for o in observations:
        battery, link = radio.report(o.device)
        cap = faulted.battery_cap(o.device, o.time_ms)
        if battery is not None and cap is not None:
            battery = min(battery, cap)
        out.append((o, payload(o, battery, link)))
    return out


def _hub_events(home: str, start_ms: int, end_ms: int, outages: list[tuple[int, int, bool]]) -> list[HubEvent]:
    """Online at the start; overlapping outages merged into one (announced as the first of them was)."""
    events = [HubEvent(start_ms, home, True)]
    merged: list[list[Any]] = []
    for at, back, clean in sorted(outages):
        if merged and at <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], back)
        else:
            merged.append([at, back, clean])
    for at, back, clean in merged:
        seen = at if clean else at + LAST_WILL_DELAY_MS
        if seen < min(back, end_ms):  # an outage shorter than the will's delay goes unnoticed
            events.append(HubEvent(seen, home, False, last_will=not clean))
            if back < end_ms:
                events.append(HubEvent(back, home, True))
    return events


def _room(home: SimHome, device: str) -> str | None:
    return next(d.room for d in home.devices if d.name == device)
