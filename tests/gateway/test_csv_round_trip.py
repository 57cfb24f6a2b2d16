"""One simulated stream, two ways: published to the gateway's detector consumer, and exported to the neutral CSV
for ``telecare analyse``. They must raise the same alerts, device health included (issue 10, failure mode 4)."""

from __future__ import annotations

import heapq
import io
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import orjson
import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from analytics.alerts import Action, AlertEvent
from analytics.reading import observe_reading
from analytics.replay import feed
from gateway.clock import SimulatedClock
from gateway.contract import Kind, Message, parse
from gateway.db.models import Alert
from gateway.detect import DetectorConsumer
from gateway.device_table import DeviceInfo, DeviceTable
from gateway.journal import Entry
from gateway.reading_facts import ReadingFacts
from sensors_sim.faults import parse_faults
from sensors_sim.generate import Simulation, reported, start_of
from sensors_sim.incidents import parse_incidents
from sensors_sim.publish import device_messages, hub_messages, with_clock
from sensors_sim.recordings import read_csv, write_csv
from sensors_sim.recordings.neutral_csv import to_csv_text
from sensors_sim.scenario import Scenario, default_home
from sensors_sim.sensors import Radio
from telecare.cli import app
from tests.analytics.test_reading import Recorder

HOME = "h1"
DAYS = 6
SEED = 3
START = start_of(date(2026, 1, 5))
runner = CliRunner()

# A battery fading flat (battery_low, then the PIR silent for good), a climate sensor silent for five hours, and
# on the last day a fall: device health and person safety.
FAULTS = [{"kind": "battery_flat", "home": HOME, "device": "hall_pir", "day": 4, "at": 12 * 60, "fade_days": 2},
          {"kind": "sensor_silent", "home": HOME, "device": "kitchen_climate", "day": 3, "at": 9 * 60,
           "duration_min": 300}]
INCIDENTS = [{"kind": "fall", "home": HOME, "day": 5, "at": 15 * 60}]


def simulation() -> Simulation:
    return Simulation([default_home(HOME)], START, DAYS, SEED, parse_incidents(INCIDENTS), parse_faults(FAULTS))


def test_each_exported_row_makes_the_call_its_published_message_makes() -> None:
    sim = simulation()
    observations = list(sim.observations())
    published = device_messages(observations, Radio(None, np.random.default_rng(SEED)), battery_cap=sim.battery_cap)
    exported = reported(observations, Radio(None, np.random.default_rng(SEED)), sim.battery_cap)
    rows = list(read_csv(io.StringIO(to_csv_text(exported)), sort=False))
    assert len(rows) == len(observations)
    # What the gateway knows from the description; ingest judges each reading's kind and activity with it.
    facts = ReadingFacts(DeviceTable(devices={(HOME, d.name): DeviceInfo(d.kind, d.room, d.role)
                                              for d in default_home(HOME).devices}))
    live, offline = Recorder(), Recorder()
    for message, row in zip(published, rows, strict=True):
        parsed = parse(message.topic, message.payload, message.time_ms, message.time_ms)
        assert isinstance(parsed, Message) and parsed.home is not None and parsed.device is not None
        kind, change = facts.judge(parsed.home, parsed.device, parsed.body)
        observe_reading(live, parsed.time_ms, parsed.device, kind, parsed.body, room=row.room, role=row.role,
                        change=change)
        feed(offline, row)  # type: ignore[arg-type]
    assert offline.calls == live.calls, "ingest's activity is the offline analysis' activity"
    assert sum(c[10] is not None for c in live.calls) > 1000
    assert any(c[7] is not None and c[7] <= 15 for c in live.calls), "the faded battery is in both"
    assert any(c[9] is not None for c in live.calls), "and the PIRs' light levels"


def through_the_gateway(sessions: sessionmaker[Session]) -> tuple[list[AlertEvent], int]:
    """What `telecare sim run --seed SEED` publishes, parsed as ingest parses it, through the detector consumer.
    Returns the alert events it committed and the time of the last reading."""
    sim = simulation()
    devices = device_messages(sim.observations(), Radio(None, np.random.default_rng(SEED)),
                              battery_cap=sim.battery_cap)  # as telecare.cli_sim._publish builds it
    messages = with_clock(heapq.merge(devices, hub_messages(sim.hub_events()), key=lambda m: m.time_ms), None)
    clock = SimulatedClock()
    clock.tick(START, 1.0)
    events: list[AlertEvent] = []
    detect = DetectorConsumer(sessions, clock, on_alerts=events.extend)
    facts = ReadingFacts(DeviceTable(sessions))  # as ingest decides each reading's kind and activity
    facts.devices.refresh_if_due()
    batch: list[Entry] = []
    last_ms = 0
    for seq, m in enumerate(messages, 1):
        parsed = parse(m.topic, m.payload, m.time_ms, m.time_ms)
        assert isinstance(parsed, Message), parsed
        kind, change = (facts.judge(parsed.home, parsed.device, parsed.body)
                        if parsed.home is not None and parsed.device is not None and parsed.kind == Kind.STATE
                        else (None, None))
        batch.append(Entry(seq, str(parsed.kind), parsed.home, parsed.device, parsed.time_ms, parsed.received_ms,
                           parsed.timed_by_device, parsed.body, kind, change))
        if parsed.device is not None:
            last_ms = parsed.time_ms
        if len(batch) == 2000:
            detect.handle(batch)
            batch = []
    detect.handle(batch)
    return events, last_ms


def analysed(path: Path) -> list[dict[str, object]]:
    result = runner.invoke(app, ["analyse", str(path), "--tz", "Europe/London", "--learn-days", "0"])
    assert result.exit_code == 0, result.output
    return [orjson.loads(line) for line in result.stdout.splitlines()]


def iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms // 1000, UTC).isoformat().replace("+00:00", "Z")


def as_analyse_reports(events: list[AlertEvent]) -> list[tuple[object, ...]]:
    """The gateway's alert events as `telecare analyse` reports alerts: one per raise, with its first message and
    when it cleared (None while still open)."""
    open_: dict[tuple[str, str], list[object]] = {}
    done: list[list[object]] = []
    for e in events:
        key = (str(e.kind), e.subject)
        if e.action is Action.RAISE and key not in open_:
            open_[key] = [str(e.kind), e.subject, iso(e.at_ms), None, e.message]
        elif e.action is Action.CLEAR and key in open_:
            record = open_.pop(key)
            record[3] = iso(e.at_ms)
            done.append(record)
        elif e.action not in (Action.RAISE, Action.CLEAR):
            done.append([str(e.kind), e.subject, iso(e.at_ms), iso(e.at_ms), e.message])
    return sorted(tuple(r) for r in done + list(open_.values()))  # type: ignore[misc]


def test_the_gateway_and_analyse_on_the_export_raise_the_same_alerts(
        sessions: sessionmaker[Session], tmp_path: Path) -> None:
    scenario = tmp_path / "scenario.yaml"
    model = Scenario(days=DAYS, seed=SEED, homes=[default_home(HOME)], incidents=INCIDENTS, faults=FAULTS)
    scenario.write_text(yaml.safe_dump(model.model_dump(mode="json")))
    export = tmp_path / "export.csv"
    result = runner.invoke(app, ["sim", "export", "--out", str(export), "--days", str(DAYS), "--seed", str(SEED),
                                 "--start", "2026-01-05", "--scenario", str(scenario)])
    assert result.exit_code == 0, result.output

    events, end_ms = through_the_gateway(sessions)
    live = as_analyse_reports(events)
    end = iso(end_ms)
    assert end is not None
    # analyse looks a day past the end of the file (a fall at the end is still seen): compare what arose before.
    offline = sorted((a["kind"], a["subject"], a["raised_at"],
                      a["cleared_at"] if a["cleared_at"] is not None and a["cleared_at"] <= end else None,
                      a["message"])
                     for a in analysed(export) if a["raised_at"] <= end)  # type: ignore[operator]
    assert offline == live

    kinds = {(kind, subject) for kind, subject, *_ in live}
    assert {("low_battery", "hall_pir"), ("sensor_silent", "hall_pir"), ("sensor_silent", "kitchen_climate"),
            ("inactivity", "")} <= kinds, kinds
    with sessions() as s:  # and the gateway recorded them
        recorded = {(a.kind, a.subject) for a in s.scalars(select(Alert).where(Alert.home_id == HOME))}
    assert kinds <= recorded


def test_the_old_export_without_reports_loses_what_the_gateway_sees(tmp_path: Path) -> None:
    """What the test above guards against: values only (the seven columns) miss the battery going flat."""
    lossy = tmp_path / "values-only.csv"
    write_csv(simulation().observations(), lossy)
    assert all(o.battery is None and o.linkquality is None for o in read_csv(lossy))
    kinds = {(a["kind"], a["subject"]) for a in analysed(lossy)}
    assert ("low_battery", "hall_pir") not in kinds
