"""Issue 11, finding 2: one hub's flood of new device names and garbage topics costs its own home a bounded number
of rows and one alert, and another home's pendant press goes through. Through :class:`Ingest` into a real journal,
then the registry and the detectors over a real database (the worker's consumers, without the processes)."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import orjson
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from analytics.alerts import DEVICE_HEALTH, AlertKind
from gateway.clock import SimulatedClock
from gateway.config import load_settings
from gateway.contract import Kind
from gateway.db.models import Alert, DeadLetter, DetectorCheckpoint, Device
from gateway.detect import DetectorConsumer
from gateway.ingest import Ingest
from gateway.journal import Entry, Journal
from gateway.metrics import IngestMetrics
from gateway.quotas import HOUR_MS, HomeQuotas, stored_quotas
from gateway.registry import DeviceRegistry

from .conftest import HOME as VICTIM

HOSTILE = "h666"
T0 = 1_764_000_000_000 - 1_764_000_000_000 % HOUR_MS + 60_000  # a minute into an hour


class HandClock:
    def __init__(self) -> None:
        self.ms = T0

    def now_ms(self) -> int:
        return self.ms

    def wait(self, stop: threading.Event, seconds: float) -> bool:
        return stop.is_set()


def drain(ingest: Ingest) -> None:
    while ingest.step():
        pass


def consume(journal: Journal, sessions: sessionmaker[Session], detect: DetectorConsumer) -> list[Entry]:
    registry = DeviceRegistry(sessions)
    taken: list[Entry] = []
    while entries := journal.read("t", 2000):
        registry.apply(entries)
        detect.handle(entries)
        journal.advance("t", entries[-1].seq)
        taken += entries
    return taken


def count(sessions: sessionmaker[Session], model: type[Device] | type[DeadLetter], home: str) -> int:
    with sessions() as s:
        return s.scalar(select(func.count()).select_from(model).where(model.home_id == home)) or 0


def test_a_flood_from_one_hub_is_bounded_and_another_homes_pendant_still_raises(
        tmp_path: Path, db_url: str, sessions: sessionmaker[Session], caplog: pytest.LogCaptureFixture) -> None:
    journal = Journal(tmp_path / "j.sqlite3")
    journal.register("t")
    metrics = IngestMetrics()
    clock = HandClock()
    quotas = stored_quotas(load_settings(db_url=db_url, data_dir=tmp_path))  # defaults: 200, 50 an hour, 100
    assert quotas.known_devices(VICTIM) > 10, "the victim's devices are seeded from the database"
    ingest = Ingest(journal, clock, metrics, quotas=quotas, batch_max=1000)
    acks: list[int] = []
    ingest.ack = lambda mid, qos: acks.append(mid)
    offered = 0

    def offer(topic: str, payload: bytes) -> None:
        nonlocal offered
        offered += 1
        ingest.offer(offered, 1, topic, payload)

    with caplog.at_level(logging.WARNING, "gateway.quotas"):
        offer(f"telecare/{HOSTILE}/hall_pir", b'{"occupancy": false, "battery": 80}')  # a real device of its own
        drain(ingest)
        for hour in range(5):  # 5,000 new names over five hours: the cap (200) is reached on the fourth
            clock.ms = T0 + hour * HOUR_MS
            for i in range(1000):
                offer(f"telecare/{HOSTILE}/fake_{hour}_{i}", b'{"temperature": 21.5}')
            if hour == 0:
                for i in range(250):  # 500 garbage topics: 60 kB names (clipped) and payloads that are not JSON
                    offer(f"telecare/{HOSTILE}/" + "x" * 60_000, b"{}")
                    offer(f"telecare/{HOSTILE}/fake_0_{i}", b"{not json")
            offer(f"telecare/{HOSTILE}/hall_pir", b'{"occupancy": true, "battery": 80}')  # known: still taken
            drain(ingest)
        clock.ms += 60_000
        offer(f"telecare/{VICTIM}/pendant", b'{"action": "single", "battery": 95}')
        drain(ingest)

    assert sorted(acks) == list(range(1, offered + 1)), "refused messages are acknowledged too: not retried"
    sim_clock = SimulatedClock()
    sim_clock.tick(clock.ms, 1.0)
    detect = DetectorConsumer(sessions, sim_clock)
    entries = consume(journal, sessions, detect)

    assert count(sessions, Device, HOSTILE) == 200, "the cap: new names past it are refused"
    assert count(sessions, DeadLetter, HOSTILE) == 100, "one hour's dead letters"
    dropped = {q: metrics.sample("telecare_quota_dropped_total", {"quota": q})
               for q in ("devices", "new_devices", "dead_letters")}
    # 50 new names an hour (hall_pir the first) for three hours; the cap of 200 is reached in the fourth, from
    # then on every new name is refused by the cap. 100 of the 500 garbage messages are kept.
    assert dropped == {"new_devices": 951 + 2 * 950, "devices": 950 + 1000, "dead_letters": 400}
    hostile_pir = [e for e in entries if e.home == HOSTILE and e.device == "hall_pir"]
    assert len(hostile_pir) == 6, "the hub's known device kept working all along"
    reports = [e for e in entries if e.kind == Kind.QUOTA]
    assert {e.home for e in reports} == {HOSTILE} and len(reports) == 5, "at most one report per home per hour"
    assert "hub misbehaving" in caplog.text and HOSTILE in caplog.text

    with sessions() as s:
        alerts = list(s.scalars(select(Alert).order_by(Alert.id)))
        checkpoint = s.get(DetectorCheckpoint, HOSTILE)
        assert checkpoint is not None and len(checkpoint.state) < 100_000, "the hostile home's detectors stay small"
    misbehaving = [a for a in alerts if a.kind == AlertKind.HUB_MISBEHAVING]
    assert [(a.home_id, a.subject, a.state) for a in misbehaving] == [(HOSTILE, "hub", "raised")], "one alert"
    assert misbehaving[0].message.startswith("Hub misbehaving: the hub reported more than 50 new device names")
    [pendant] = [a for a in alerts if a.kind == AlertKind.PENDANT]
    assert pendant.home_id == VICTIM and pendant.state == "raised"
    assert not [a for a in alerts if a.home_id == VICTIM and a.kind in DEVICE_HEALTH]

    # An hour without refusals (two without a report, the ingest's cadence) clears it.
    last_report = reports[-1].time_ms
    detect.tick(last_report + 2 * HOUR_MS - 1)
    with sessions() as s:
        assert s.get(Alert, misbehaving[0].id).state == "raised"  # type: ignore[union-attr]
    detect.tick(last_report + 2 * HOUR_MS + 1)
    with sessions() as s:
        cleared = s.get(Alert, misbehaving[0].id)
        assert cleared is not None and cleared.state == "resolved"


def test_the_hubs_device_list_is_cut_to_the_quota_and_the_report_journaled_once(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite3")
    journal.register("t")
    metrics = IngestMetrics()
    ingest = Ingest(journal, HandClock(), metrics, quotas=HomeQuotas(), batch_max=100)
    listed = [{"friendly_name": f"d{i}", "ieee_address": f"0x{i:016x}", "type": "EndDevice"} for i in range(500)]
    ingest.offer(1, 1, f"telecare/{HOSTILE}/bridge/devices", orjson.dumps(listed))
    ingest.offer(2, 1, f"telecare/{HOSTILE}/bridge/devices", orjson.dumps(listed))
    drain(ingest)
    entries = journal.read("t", 100)
    assert [e.kind for e in entries] == ["quota", "bridge_devices", "bridge_devices"]
    assert [d["friendly_name"] for d in entries[1].body] == [f"d{i}" for i in range(50)]
    assert entries[2].body == entries[1].body, "the devices let in keep being listed"
    assert metrics.sample("telecare_quota_dropped_total", {"quota": "new_devices"}) == 2 * 450


def test_a_batch_that_fails_to_commit_gives_its_report_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    journal = Journal(tmp_path / "j.sqlite3")
    journal.register("t")
    ingest = Ingest(journal, HandClock(), IngestMetrics(), quotas=HomeQuotas(), batch_max=1000)
    for i in range(60):
        ingest.offer(i + 1, 1, f"telecare/{HOSTILE}/fake_{i}", b'{"temperature": 21.5}')
    append = journal.append
    failures = iter([True])

    def fail_once(entries: list[object], urgent: list[int] | tuple[()] = (), states: object = None) -> int:
        if next(failures, False):
            raise OSError("disk full")
        return append(entries, urgent, states)  # type: ignore[arg-type]

    monkeypatch.setattr(journal, "append", fail_once)
    with pytest.raises(OSError):
        ingest.step()
    drain(ingest)
    entries = journal.read("t", 100)
    assert [e.kind for e in entries].count("quota") == 1 and len(entries) == 51
