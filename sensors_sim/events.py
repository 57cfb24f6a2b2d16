"""What the simulator and the recording readers produce: sensor observations in event time.

An :class:`Observation` is one row of the neutral CSV (``docs/neutral-csv.md``): the same thing whether it
came from a simulated resident or a real recording, so the publisher, ``telecare sim export`` and
``telecare analyse`` all take the same stream.
"""

from __future__ import annotations

from dataclasses import dataclass

Value = bool | float | str


@dataclass(frozen=True, slots=True)
class Observation:
    time_ms: int  # event time, epoch milliseconds UTC
    home: str
    device: str  # the zigbee2mqtt friendly name
    kind: str  # a key of analytics.devices.KINDS_BY_KEY: motion, contact, presence, plug, button, climate ...
    value: Value  # motion/presence: occupied; contact: True = closed; plug: watts; button: action; climate: °C
    room: str | None = None
    role: str | None = None  # analytics.devices.ROLES: front_door, fridge, bed, kettle, pendant ...
