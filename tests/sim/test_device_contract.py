"""The simulator's device table and the gateway's agree on everything the simulator writes.

The simulator imports no other package (pyproject.toml's import contracts): it keeps its own table of the
devices it emulates (``sensors_sim/devices.py``), as ``analytics/devices.py`` is the gateway's. These tests are
what holds the two equal: kind keys, each kind's identifying field and value, roles, the report fields and their
ranges, the neutral CSV's columns, and a row of every kind read the way the gateway reads the report it stands
for. (The simulated stream as a whole, published and exported, is tests/gateway/test_csv_round_trip.py's.)
"""

from __future__ import annotations

import dataclasses
import inspect
import io

import orjson
import pytest

import analytics.devices as gateway_devices
import analytics.reading as gateway_reading
import sensors_sim.devices as sim_devices
from analytics.replay import feed
from gateway.contract import Message, parse
from sensors_sim.events import Observation
from sensors_sim.recordings.neutral_csv import COLUMNS, read_csv, to_csv_text


class Recorder:
    """Takes readings as a detector does and remembers each call, whatever the detector's signature grows."""

    def __init__(self) -> None:
        self.calls: list[tuple[tuple[object, ...], dict[str, object]]] = []

    def observe(self, *args: object, **kwargs: object) -> list[object]:
        self.calls.append((args, kwargs))
        return []


T = 1_736_934_067_000  # 2025-01-15T09:41:07Z
SAMPLE = {sim_devices.ValueType.BOOL: True, sim_devices.ValueType.NUMBER: 12.5,
          sim_devices.ValueType.TEXT: "single"}


def test_the_same_kinds() -> None:
    assert set(sim_devices.KINDS_BY_KEY) == set(gateway_devices.KINDS_BY_KEY)


@pytest.mark.parametrize("kind", sorted(sim_devices.KINDS_BY_KEY))
def test_each_kind_is_known_by_the_same_field_holding_the_same_type(kind: str) -> None:
    sim = sim_devices.KINDS_BY_KEY[kind]
    gateway = gateway_devices.KINDS_BY_KEY[kind]
    assert sim.signature == gateway.signature
    field = gateway_devices.FIELDS[gateway.signature]
    assert sim.value_type.value == field.type.value
    if sim.minimum is not None:  # the neutral CSV holds no value the gateway would reject
        assert field.minimum is not None and sim.minimum >= field.minimum
    assert gateway_devices.infer_kind({sim.signature: SAMPLE[sim.value_type]}) == kind


def test_the_same_roles() -> None:
    assert sim_devices.ROLES == gateway_devices.ROLES


def test_the_same_report_fields_in_the_same_order_with_the_same_ranges() -> None:
    assert sim_devices.REPORT_FIELDS == gateway_reading.REPORT_FIELDS
    for report in sim_devices.REPORTS:
        field = gateway_devices.FIELDS[report.name]
        assert (report.type.value, report.unit, report.minimum, report.maximum) == (
            field.type.value, field.unit, field.minimum, field.maximum), report.name


def test_the_neutral_csv_columns_are_the_rows_the_analysis_reads() -> None:
    """What sensors_sim writes is what ``telecare analyse`` feeds: an observation's fields after the role, and
    the report fields :func:`analytics.reading.observation_fields` takes, are the CSV's report columns."""
    assert ("time", "home", "device", "kind", "value", "room", "role", *gateway_reading.REPORT_FIELDS) == COLUMNS
    observation_fields = [f.name for f in dataclasses.fields(Observation)]
    assert tuple(observation_fields[observation_fields.index("role") + 1:]) == gateway_reading.REPORT_FIELDS
    taken = inspect.signature(gateway_reading.observation_fields).parameters
    assert tuple(name for name, p in taken.items() if p.kind is p.KEYWORD_ONLY) == gateway_reading.REPORT_FIELDS


@pytest.mark.parametrize("kind", sorted(sim_devices.KINDS_BY_KEY))
def test_a_row_of_each_kind_reaches_the_detectors_as_its_report_through_the_gateway(kind: str) -> None:
    """A neutral CSV row written and read by sensors_sim, fed as ``telecare analyse`` feeds it, makes the call the
    gateway makes for the zigbee2mqtt report the row stands for (the kind inferred from its identifying field)."""
    sim = sim_devices.KINDS_BY_KEY[kind]
    value = SAMPLE[sim.value_type]
    reports: dict[str, object] = {"temperature": None if kind == "climate" else 24.5, "battery": 87.0,
                                  "battery_low": False, "illuminance": 120.0, "linkquality": 142}
    written = Observation(T, "h", "d", kind, value, "hall", "room", **reports)  # type: ignore[arg-type]
    (row,) = read_csv(io.StringIO(to_csv_text([written])))
    assert row == written
    offline, live = Recorder(), Recorder()
    feed(offline, row)  # type: ignore[arg-type]
    report = {sim.signature: value, **{name: v for name, v in reports.items() if v is not None}}
    message = parse("telecare/h/d", orjson.dumps(report), T, T)
    assert isinstance(message, Message) and message.device == "d", message
    gateway_reading.observe_reading(live, message.time_ms, message.device, None, message.body, room="hall",
                                    role="room")
    assert offline.calls == live.calls


@pytest.mark.parametrize("fields", [
    {"illuminance": 25000, "illuminance_lux": 316, "battery": 80, "battery_low": True, "linkquality": 7},
    {"illuminance": 316, "battery": True, "battery_low": 1, "temperature": "warm"},
    {},
])
def test_the_simulator_reads_a_reports_fields_as_the_gateway_does(fields: dict[str, object]) -> None:
    assert sim_devices.lux(fields) == gateway_reading.lux(fields)
    for name, value in fields.items():
        assert sim_devices.number(value) == gateway_reading.number(value), name
        assert sim_devices.flag(value) == gateway_reading.flag(value), name
