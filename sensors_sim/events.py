"""What the simulator and the recording readers produce: sensor observations in event time.

An :class:`Observation` is one row of the neutral CSV (``docs/neutral-csv.md``): the same thing whether it
came from a simulated resident or a real recording, so the publisher, ``telecare sim export`` and
``telecare analyse`` all take the same stream. It is one report of a device: its activity value, if the report
has one, and what else the report said (battery, light, link quality), which a detector uses even when nothing
changed (the device was heard).
"""

from __future__ import annotations

from dataclasses import dataclass

Value = bool | float | str


@dataclass(frozen=True, slots=True)
class Observation:
    time_ms: int  # event time, epoch milliseconds UTC
    home: str
    device: str  # the zigbee2mqtt friendly name
    kind: str  # a key of sensors_sim.devices.KINDS_BY_KEY: motion, contact, presence, plug, button, climate ...
    # motion/presence: occupied; contact: True = closed; plug: watts; button: action; climate: °C. None: a report
    # without one (a battery report, say), which then carries at least one of the fields below.
    value: Value | None
    room: str | None = None
    role: str | None = None  # sensors_sim.devices.ROLES: front_door, fridge, bed, kettle, pendant ...
    # What else the report said, as zigbee2mqtt names it; None: not reported.
    temperature: float | None = None  # °C, from a device that is not a climate sensor (a climate sensor's is value)
    battery: float | None = None  # percent
    battery_low: bool | None = None
    illuminance: float | None = None  # lux
    linkquality: int | None = None  # 0-255
