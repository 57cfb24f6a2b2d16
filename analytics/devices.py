"""Device kinds and payload fields, described by data.

The gateway uses these tables to validate zigbee2mqtt payloads and infer a device's kind; the simulator uses
them to publish the same payloads. Kind is inferred from the fields a device sends; a device's *role* (front
door, fridge, bed, kettle, pendant) is never guessed from its payload, it comes from the home's description.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ValueType(StrEnum):
    BOOL = "bool"
    NUMBER = "number"
    TEXT = "text"


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """A zigbee2mqtt state field we store. Fields not listed here are stored only if numeric or boolean."""

    name: str
    type: ValueType
    unit: str = ""
    minimum: float | None = None
    maximum: float | None = None


_FIELDS = (
    FieldSpec("occupancy", ValueType.BOOL),
    FieldSpec("presence", ValueType.BOOL),
    FieldSpec("contact", ValueType.BOOL),  # zigbee2mqtt: true means closed
    FieldSpec("vibration", ValueType.BOOL),
    FieldSpec("water_leak", ValueType.BOOL),
    FieldSpec("tamper", ValueType.BOOL),
    FieldSpec("battery_low", ValueType.BOOL),
    FieldSpec("state", ValueType.BOOL),  # "ON"/"OFF" on the wire, stored as a boolean
    FieldSpec("action", ValueType.TEXT),
    FieldSpec("temperature", ValueType.NUMBER, "°C", -60, 100),
    FieldSpec("humidity", ValueType.NUMBER, "%", 0, 100),
    FieldSpec("battery", ValueType.NUMBER, "%", 0, 100),
    FieldSpec("voltage", ValueType.NUMBER, "mV or V", 0),  # battery devices report mV, mains plugs V
    FieldSpec("power", ValueType.NUMBER, "W", 0),
    FieldSpec("energy", ValueType.NUMBER, "kWh", 0),
    FieldSpec("current", ValueType.NUMBER, "A", 0),
    FieldSpec("illuminance", ValueType.NUMBER, "lx", 0),
    FieldSpec("illuminance_lux", ValueType.NUMBER, "lx", 0),
    FieldSpec("pressure", ValueType.NUMBER, "hPa", 0),
    FieldSpec("linkquality", ValueType.NUMBER, "lqi", 0, 255),
)
FIELDS: dict[str, FieldSpec] = {f.name: f for f in _FIELDS}

# zigbee2mqtt's own bookkeeping fields: never stored as readings.
META_FIELDS = frozenset({"last_seen", "elapsed", "device", "update", "update_available"})


@dataclass(frozen=True, slots=True)
class DeviceKind:
    """One kind of device, recognised by the field that only it sends."""

    key: str
    signature: str  # the payload field that identifies this kind
    description: str
    activity_field: str | None  # the field whose change counts as a person's activity


# Order matters: the first kind whose signature field is in a payload wins (a plug also reports temperature).
DEVICE_KINDS: tuple[DeviceKind, ...] = (
    DeviceKind("presence", "presence", "pressure pad or presence sensor", "presence"),  # FP1 sends action too
    DeviceKind("button", "action", "pendant or wall button", "action"),
    DeviceKind("motion", "occupancy", "PIR motion sensor", "occupancy"),
    DeviceKind("contact", "contact", "door or window contact", "contact"),
    DeviceKind("plug", "power", "smart plug with power metering", "power"),
    DeviceKind("vibration", "vibration", "vibration sensor", "vibration"),
    DeviceKind("leak", "water_leak", "water leak sensor", None),
    DeviceKind("climate", "temperature", "temperature and humidity sensor", None),
)
KINDS_BY_KEY: dict[str, DeviceKind] = {k.key: k for k in DEVICE_KINDS}
UNKNOWN_KIND = "unknown"


def infer_kind(fields: object) -> str | None:
    """The kind a payload's fields reveal, or None when they reveal none (a battery-only report)."""
    for kind in DEVICE_KINDS:
        if kind.signature in fields:  # type: ignore[operator]
            return kind.key
    return None


# Roles a home's description may give a device; detectors key their rules on these, never on kinds alone.
ROLES = frozenset({"front_door", "back_door", "fridge", "bed", "chair", "kettle", "pendant", "room"})
