"""The devices the simulator emulates and the neutral CSV carries, described as data.

It follows zigbee2mqtt's documented exposes (https://www.zigbee2mqtt.io/guide/usage/exposes.html and each
device's page): a kind is known by the field only it sends (a PIR's ``occupancy``, a plug's ``power``), and a
report says what else it knows under zigbee2mqtt's names (``battery``, ``battery_low``, ``illuminance``,
``linkquality``). The simulator imports no other package, so that it emulates hubs from that documented
contract, not from the gateway's reading of it; the gateway keeps its own device table, and
``tests/sim/test_device_contract.py`` holds the two equal on everything the simulator writes: kind keys, each
kind's identifying field, roles, report fields and their ranges, the neutral CSV's columns.

A device's *role* (front door, fridge, bed, kettle, pendant) is never in its payload: it comes from the home's
description (``docs/homes.md``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum


class ValueType(StrEnum):
    BOOL = "bool"
    NUMBER = "number"
    TEXT = "text"


@dataclass(frozen=True, slots=True)
class SimKind:
    """One kind of device: the field that identifies it and the type of the one value a neutral CSV row holds."""

    key: str
    signature: str  # the zigbee2mqtt field only this kind sends (a pad's ``presence``, as the gateway names it)
    value_type: ValueType
    minimum: float | None = None  # the lowest value a neutral CSV row may hold (a plug draws no negative watts)


KINDS: tuple[SimKind, ...] = (
    SimKind("presence", "presence", ValueType.BOOL),  # a pad publishes a binary ``pressure``: someone is on it
    SimKind("button", "action", ValueType.TEXT),
    SimKind("motion", "occupancy", ValueType.BOOL),
    SimKind("contact", "contact", ValueType.BOOL),  # zigbee2mqtt: true means closed
    SimKind("plug", "power", ValueType.NUMBER, minimum=0),
    SimKind("vibration", "vibration", ValueType.BOOL),  # recordings only: the simulator publishes none
    SimKind("leak", "water_leak", ValueType.BOOL),  # recordings only
    SimKind("climate", "temperature", ValueType.NUMBER),
)
KINDS_BY_KEY: dict[str, SimKind] = {k.key: k for k in KINDS}

# Roles a home's description may give a device (docs/homes.md).
ROLES = frozenset({"front_door", "back_door", "fridge", "bed", "chair", "kettle", "pendant", "room"})


@dataclass(frozen=True, slots=True)
class ReportField:
    """What else a report says besides its activity value: a neutral CSV report column, named as zigbee2mqtt
    names the field, with the range the gateway accepts."""

    name: str
    type: ValueType
    unit: str = ""
    minimum: float | None = None
    maximum: float | None = None
    whole: bool = False  # a whole number (link quality)


REPORTS: tuple[ReportField, ...] = (
    ReportField("temperature", ValueType.NUMBER, "°C", -60, 100),  # a plug's or PIR's chip, not the room's
    ReportField("battery", ValueType.NUMBER, "%", 0, 100),
    ReportField("battery_low", ValueType.BOOL),
    ReportField("illuminance", ValueType.NUMBER, "lx", 0),
    ReportField("linkquality", ValueType.NUMBER, "lqi", 0, 255, whole=True),
)
REPORTS_BY_NAME: dict[str, ReportField] = {r.name: r for r in REPORTS}
REPORT_FIELDS: tuple[str, ...] = tuple(r.name for r in REPORTS)  # the neutral CSV's report columns, in order


# ------------------------------------------------------------------------------------------------------------
# Reading a payload's report fields


def number(value: object) -> float | None:
    """A reported number as a float; None for anything else (booleans, text, missing)."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def flag(value: object) -> bool | None:
    """A reported boolean; None for anything else."""
    return value if isinstance(value, bool) else None


def lux(fields: Mapping[str, object]) -> float | None:
    """The light level in lux. zigbee2mqtt 1.x sent some sensors' raw ``illuminance`` beside ``illuminance_lux``;
    2.x sends lux as ``illuminance``: the ``_lux`` field wins when both are there."""
    value = number(fields.get("illuminance_lux"))
    return value if value is not None else number(fields.get("illuminance"))
