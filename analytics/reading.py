"""One reading into the detectors: the same call whether it came over MQTT or from a neutral CSV row.

The gateway's detector consumer feeds the zigbee2mqtt fields of each state message; ``telecare analyse`` (and
baseline warming, and the benchmark) feed neutral-CSV rows, whose value and report columns are those fields
under other names (:func:`observation_fields`). Both go through :func:`observe_reading`, so what the detectors
make of a reading cannot drift between the live gateway and an analysis of the same readings exported.

What a reading says, apart from any activity value: its device was heard (every report counts for device
health, a battery or link-quality report and an unchanged state included), the battery, the light level, and
for a climate sensor the room's temperature. The temperature a plug or a PIR reports is its chip's, warmed by
its own electronics: it is carried, not taken for the room's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from analytics.activity import NOT_JUDGED, Judged, Value, activity_value
from analytics.alerts import AlertEvent
from analytics.devices import KINDS_BY_KEY, UNKNOWN_KIND, infer_kind

# The neutral CSV's report columns, named as zigbee2mqtt names the fields (docs/neutral-csv.md).
REPORT_FIELDS = ("temperature", "battery", "battery_low", "illuminance", "linkquality")


class Observer(Protocol):
    """What takes readings: :class:`analytics.detector.HomeDetector`."""

    def observe(self, time_ms: int, device: str, kind: str, value: Value | None = None, *, room: str | None = None,
                role: str | None = None, temperature: float | None = None, battery: float | None = None,
                battery_low: bool | None = None, illuminance: float | None = None,
                change: Judged = NOT_JUDGED) -> list[AlertEvent]: ...


def observe_reading(detector: Observer, time_ms: int, device: str, kind: str | None, fields: Mapping[str, object],
                    *, room: str | None = None, role: str | None = None, change: Judged = NOT_JUDGED
                    ) -> list[AlertEvent]:
    """One reading of ``device`` (its zigbee2mqtt fields) into ``detector``.

    ``kind``: the device's kind as described (the home's description, a CSV row), or None to infer it from the
    fields; a report that reveals none (battery only, from a device not yet described) is still a report.
    ``change``: the activity as the gateway decided it at ingest (gateway.reading_facts); NOT_JUDGED for the
    detector to decide it (the offline analysis).
    """
    kind = kind or infer_kind(fields) or UNKNOWN_KIND
    return detector.observe(time_ms, device, kind, activity_value(kind, fields), room=room, role=role,
                            temperature=number(fields.get("temperature")) if kind == "climate" else None,
                            battery=number(fields.get("battery")), battery_low=flag(fields.get("battery_low")),
                            illuminance=lux(fields), change=change)


def observation_fields(kind: str, value: Value | None, *, temperature: float | None = None,
                       battery: float | None = None, battery_low: bool | None = None,
                       illuminance: float | None = None, linkquality: int | None = None) -> dict[str, object]:
    """The zigbee2mqtt fields a neutral-CSV row stands for: its value under the field that identifies its kind
    (a motion row's ``occupancy``, a climate row's ``temperature``, a pad's ``presence`` as the gateway's
    contract names it), and each report column that is not empty."""
    fields: dict[str, object] = {}
    if value is not None:
        fields[KINDS_BY_KEY[kind].signature] = value
    for name, reported in (("temperature", temperature), ("battery", battery), ("battery_low", battery_low),
                           ("illuminance", illuminance), ("linkquality", linkquality)):
        if reported is not None:
            fields.setdefault(name, reported)  # a climate row's temperature is its value
    return fields


def number(value: object) -> float | None:
    """A reported number as a float; None for anything else (booleans, text, missing)."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def flag(value: object) -> bool | None:
    return value if isinstance(value, bool) else None


def lux(fields: Mapping[str, object]) -> float | None:
    """The light level in lux. zigbee2mqtt 1.x sent some sensors' raw ``illuminance`` beside ``illuminance_lux``;
    2.x sends lux as ``illuminance``: the ``_lux`` field wins when both are there."""
    value = number(fields.get("illuminance_lux"))
    return value if value is not None else number(fields.get("illuminance"))
